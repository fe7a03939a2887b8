"""Glue on the twin: job scripts really run; the churn preprocessing job; the Amazon provider's
GlueJobOperator / GlueJobHook against the twin. boto3 over HTTP, the twin in --strict mode."""

from __future__ import annotations

import csv
import io
import json
import os
import time
import uuid
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

ROOT = Path(__file__).resolve().parents[2]
CHURN_SCRIPT = ROOT / "include" / "glue" / "churn_preprocess.py"
CHURN_CSV = ROOT / "include" / "data" / "mlc_churn.csv"
ROLE = "arn:aws:iam::123456789012:role/glue-job-role"
CHURN_ARGS = {
    "--label_column": "churn",
    "--positive_value": "yes",
    "--validation_fraction": "0.2",
    "--test_fraction": "0.1",
    "--seed": "42",
}

WRITER = """
import sys, boto3
from awsglue.utils import getResolvedOptions
args = getResolvedOptions(sys.argv, ["JOB_NAME", "JOB_RUN_ID", "bucket", "key", "greeting"])
body = "{} from {} run {}".format(args["greeting"], args["JOB_NAME"], args["JOB_RUN_ID"])
boto3.client("s3").put_object(Bucket=args["bucket"], Key=args["key"], Body=body.encode())
print("wrote s3://{}/{}".format(args["bucket"], args["key"]))
"""

FAILING = """
import sys
print("about to fail", file=sys.stderr)
def check(value):
    raise ValueError("reconciliation failed: {} rows missing".format(value))
check(int(sys.argv[sys.argv.index("--missing") + 1]))
"""

SLEEPER = """
import os, sys, time, boto3
from awsglue.utils import getResolvedOptions
args = getResolvedOptions(sys.argv, ["bucket", "key"])
boto3.client("s3").put_object(Bucket=args["bucket"], Key=args["key"], Body=str(os.getpid()).encode())
print("sleeping", flush=True)
time.sleep(120)
"""


@pytest.fixture(scope="module")
def glue(twin):
    return twin.client("glue")


@pytest.fixture(scope="module")
def logs(twin):
    return twin.client("logs")


@pytest.fixture(scope="module")
def gbucket(s3) -> str:
    name = f"glue-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def _job(glue, s3, bucket: str, source: str | bytes, **kwargs) -> str:
    name = f"job-{uuid.uuid4().hex[:10]}"
    key = f"scripts/{name}.py"
    s3.put_object(Bucket=bucket, Key=key, Body=source.encode() if isinstance(source, str) else source)
    glue.create_job(
        Name=name,
        Role=ROLE,
        Command={"Name": "pythonshell", "ScriptLocation": f"s3://{bucket}/{key}", "PythonVersion": "3.9"},
        MaxCapacity=kwargs.pop("MaxCapacity", 0.0625),
        **kwargs,
    )
    return name


def _wait(glue, job: str, run_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        run = glue.get_job_run(JobName=job, RunId=run_id)["JobRun"]
        if not seen or seen[-1] != run["JobRunState"]:
            seen.append(run["JobRunState"])
        if run["JobRunState"] not in ("STARTING", "RUNNING", "STOPPING", "WAITING"):
            run["_seen"] = seen
            return run
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} of {job} did not finish in {timeout}s: {seen}")


def _messages(logs, group: str, stream: str) -> list[str]:
    events = logs.get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True)["events"]
    return [e["message"] for e in events]


def _wait_for_state(glue, job: str, run_id: str, state: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if glue.get_job_run(JobName=job, RunId=run_id)["JobRun"]["JobRunState"] == state:
            return
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} never reached {state}")


# ---- the Glue API --------------------------------------------------------------------------
def test_script_writes_to_s3_and_logs_its_output(glue, s3, logs, gbucket):
    job = _job(glue, s3, gbucket, WRITER, DefaultArguments={"--greeting": "hello"})
    key = f"out/{uuid.uuid4().hex}.txt"
    run_id = glue.start_job_run(JobName=job, Arguments={"--bucket": gbucket, "--key": key})["JobRunId"]
    run = _wait(glue, job, run_id)

    assert run["JobRunState"] == "SUCCEEDED", run.get("ErrorMessage")
    assert run["_seen"][-1] == "SUCCEEDED" and set(run["_seen"]) <= {"STARTING", "RUNNING", "SUCCEEDED"}
    assert run["Arguments"] == {"--bucket": gbucket, "--key": key}
    assert run["Attempt"] == 0 and run["LogGroupName"] == "/aws-glue/python-jobs"
    assert run["StartedOn"] <= run["CompletedOn"] and run["ExecutionTime"] >= 1
    body = s3.get_object(Bucket=gbucket, Key=key)["Body"].read().decode()
    assert body == f"hello from {job} run {run_id}"  # DefaultArguments + run Arguments + --JOB_*
    assert f"wrote s3://{gbucket}/{key}" in _messages(logs, "/aws-glue/python-jobs/output", run_id)
    listed = glue.get_job_runs(JobName=job)["JobRuns"]
    assert [r["Id"] for r in listed] == [run_id]


def test_failing_script_reports_its_exception(glue, s3, logs, gbucket):
    job = _job(glue, s3, gbucket, FAILING)
    run_id = glue.start_job_run(JobName=job, Arguments={"--missing": "17"})["JobRunId"]
    run = _wait(glue, job, run_id)

    assert run["JobRunState"] == "FAILED"
    assert run["ErrorMessage"] == "ValueError: reconciliation failed: 17 rows missing"
    errors = _messages(logs, "/aws-glue/python-jobs/error", run_id)
    assert "about to fail" in errors
    assert "Traceback (most recent call last):" in errors
    assert errors[-1] == "ValueError: reconciliation failed: 17 rows missing"


def test_missing_script_fails_the_run(glue, gbucket):
    name = f"job-{uuid.uuid4().hex[:10]}"
    glue.create_job(
        Name=name,
        Role=ROLE,
        Command={"Name": "pythonshell", "ScriptLocation": f"s3://{gbucket}/nope/missing.py"},
        MaxCapacity=1,
    )
    run = _wait(glue, name, glue.start_job_run(JobName=name)["JobRunId"])
    assert run["JobRunState"] == "FAILED"
    assert f"s3://{gbucket}/nope/missing.py" in run["ErrorMessage"]


def test_job_api_errors(glue, s3, gbucket):
    job = _job(glue, s3, gbucket, "print('x')")
    with pytest.raises(glue.exceptions.AlreadyExistsException):
        glue.create_job(Name=job, Role=ROLE, Command={"Name": "pythonshell", "ScriptLocation": "s3://x/y.py"})
    with pytest.raises(glue.exceptions.EntityNotFoundException):
        glue.get_job(JobName=f"{job}-absent")
    with pytest.raises(glue.exceptions.EntityNotFoundException):
        glue.start_job_run(JobName=f"{job}-absent")
    with pytest.raises(glue.exceptions.EntityNotFoundException):
        glue.get_job_run(JobName=job, RunId="jr_" + "0" * 64)
    with pytest.raises(glue.exceptions.InvalidInputException, match="MaxCapacity"):
        glue.create_job(
            Name=f"{job}-big",
            Role=ROLE,
            Command={"Name": "pythonshell", "ScriptLocation": "s3://x/y.py"},
            MaxCapacity=10,
        )
    got = glue.get_job(JobName=job)["Job"]
    assert got["ExecutionProperty"] == {"MaxConcurrentRuns": 1} and got["Timeout"] == 2880
    glue.update_job(
        JobName=job,
        JobUpdate={"Role": ROLE, "Command": got["Command"], "MaxCapacity": 1, "Description": "updated"},
    )
    updated = glue.get_job(JobName=job)["Job"]
    assert updated["Description"] == "updated" and updated["MaxCapacity"] == 1.0
    assert job in glue.list_jobs()["JobNames"]
    assert glue.delete_job(JobName=job)["JobName"] == job
    with pytest.raises(glue.exceptions.EntityNotFoundException):
        glue.get_job(JobName=job)


def test_max_concurrent_runs_and_batch_stop(glue, s3, gbucket):
    job = _job(glue, s3, gbucket, SLEEPER, ExecutionProperty={"MaxConcurrentRuns": 1})
    pid_key = f"pids/{uuid.uuid4().hex}"
    first = glue.start_job_run(JobName=job, Arguments={"--bucket": gbucket, "--key": pid_key})["JobRunId"]
    with pytest.raises(ClientError) as exc:
        glue.start_job_run(JobName=job, Arguments={"--bucket": gbucket, "--key": "unused"})
    assert exc.value.response["Error"]["Code"] == "ConcurrentRunsExceededException"

    _wait_for_state(glue, job, first, "RUNNING")
    deadline = time.monotonic() + 30
    while True:  # the script is running once it has written its pid
        try:
            pid = int(s3.get_object(Bucket=gbucket, Key=pid_key)["Body"].read())
            break
        except s3.exceptions.NoSuchKey:
            assert time.monotonic() < deadline, "the sleeper never started"
            time.sleep(0.2)
    stopped = glue.batch_stop_job_run(JobName=job, JobRunIds=[first, "jr_" + "f" * 64])
    assert stopped["SuccessfulSubmissions"] == [{"JobName": job, "JobRunId": first}]
    assert [e["ErrorDetail"]["ErrorCode"] for e in stopped["Errors"]] == ["EntityNotFoundException"]
    run = _wait(glue, job, first, timeout=30)
    assert run["JobRunState"] == "STOPPED" and run["ExecutionTime"] < 60
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the script's process is gone, not just marked stopped
    again = glue.batch_stop_job_run(JobName=job, JobRunIds=[first])
    assert again["SuccessfulSubmissions"] == [] and len(again["Errors"]) == 1
    # the slot is free again
    second = glue.start_job_run(JobName=job, Arguments={"--bucket": gbucket, "--key": f"{pid_key}-2"})
    glue.batch_stop_job_run(JobName=job, JobRunIds=[second["JobRunId"]])
    assert _wait(glue, job, second["JobRunId"], timeout=30)["JobRunState"] == "STOPPED"


def test_max_retries_starts_new_attempts(glue, s3, gbucket):
    job = _job(glue, s3, gbucket, FAILING, MaxRetries=1)
    first = glue.start_job_run(JobName=job, Arguments={"--missing": "1"})["JobRunId"]
    assert _wait(glue, job, first)["JobRunState"] == "FAILED"
    deadline = time.monotonic() + 60
    while len(runs := glue.get_job_runs(JobName=job)["JobRuns"]) < 2:
        assert time.monotonic() < deadline, "no retry attempt"
        time.sleep(0.2)
    retry = _wait(glue, job, runs[0]["Id"])
    assert retry["Attempt"] == 1 and retry["PreviousRunId"] == first
    assert retry["JobRunState"] == "FAILED" and retry["Arguments"] == {"--missing": "1"}
    time.sleep(1)
    assert len(glue.get_job_runs(JobName=job)["JobRuns"]) == 2  # MaxRetries=1: no third attempt


def test_timeout_kills_the_run(tmp_path):
    """A twin of its own where a Timeout minute lasts six seconds (AWS_TWIN_GLUE_MINUTE_SECONDS): long
    enough for the job to start and record its pid on a loaded machine, short enough to time out."""
    from aws_twin.testing import start_twin

    fast = start_twin(0, env={"AWS_TWIN_GLUE_MINUTE_SECONDS": "6"}, log_path=str(tmp_path / "twin.log"))
    try:
        s3, glue = fast.client("s3"), fast.client("glue")
        s3.create_bucket(Bucket="timeout-bucket")
        job = _job(glue, s3, "timeout-bucket", SLEEPER, Timeout=1)
        args = {"--bucket": "timeout-bucket", "--key": "pid"}
        run = _wait(glue, job, glue.start_job_run(JobName=job, Arguments=args)["JobRunId"], timeout=60)
        assert run["JobRunState"] == "TIMEOUT" and run["Timeout"] == 1
        assert "timed out" in run["ErrorMessage"] and run["ExecutionTime"] < 30
        with pytest.raises(ProcessLookupError):
            os.kill(int(s3.get_object(Bucket="timeout-bucket", Key="pid")["Body"].read()), 0)
        assert not fast.control("state")["violations"]
    finally:
        fast.stop()


# ---- the churn preprocessing job -------------------------------------------------------------
@pytest.fixture(scope="module")
def churn_job(glue, s3, gbucket) -> str:
    return _job(glue, s3, gbucket, CHURN_SCRIPT.read_bytes(), ExecutionProperty={"MaxConcurrentRuns": 3})


def _read_csv_rows(s3, bucket: str, key: str) -> list[list[str]]:
    text = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    return [row for row in csv.reader(io.StringIO(text)) if row]


def _run_churn(glue, job: str, input_uri: str, output_uri: str, **extra: str) -> dict:
    args = {**CHURN_ARGS, "--input_uri": input_uri, "--output_uri": output_uri}
    args.update({f"--{k}": v for k, v in extra.items()})
    return _wait(glue, job, glue.start_job_run(JobName=job, Arguments=args)["JobRunId"], timeout=300)


def test_churn_preprocess_real_data(glue, s3, logs, gbucket, churn_job):
    raw = CHURN_CSV.read_bytes()
    s3.put_object(Bucket=gbucket, Key="raw/mlc_churn.csv", Body=raw)
    source = list(csv.DictReader(io.StringIO(raw.decode())))
    started = time.perf_counter()
    run = _run_churn(glue, churn_job, f"s3://{gbucket}/raw/mlc_churn.csv", f"s3://{gbucket}/prepared/run1")
    elapsed = time.perf_counter() - started
    print(
        f"churn_preprocess on {len(source)} rows: {elapsed:.2f}s wall, ExecutionTime {run['ExecutionTime']}s"
    )
    assert run["JobRunState"] == "SUCCEEDED", run.get("ErrorMessage")

    schema = json.loads(s3.get_object(Bucket=gbucket, Key="prepared/run1/schema.json")["Body"].read())
    counts = schema["counts"]
    assert counts["received"] == len(source)
    assert (
        counts["received"] == counts["quarantined"] + counts["train"] + counts["validation"] + counts["test"]
    )
    splits = {
        name: _read_csv_rows(s3, gbucket, f"prepared/run1/{name}/{name}.csv")
        for name in ("train", "validation", "test")
    }
    width = 1 + len(schema["feature_columns"])
    positives = 0
    for name, rows in splits.items():
        assert len(rows) == counts[name]
        assert all(len(row) == width for row in rows)
        assert {row[0] for row in rows} <= {"0", "1"}  # label first, 0/1
        positives += sum(row[0] == "1" for row in rows)
    assert positives == sum(r["churn"].strip().lower() == "yes" for r in source)
    n_good = len(source) - counts["quarantined"]
    assert abs(counts["test"] - 0.1 * n_good) <= 2 and abs(counts["validation"] - 0.2 * n_good) <= 2
    assert schema["categorical_levels"]["international_plan"] == ["no", "yes"]
    assert schema["categorical_levels"]["state"] == sorted({r["state"] for r in source})
    states = schema["categorical_levels"]["state"]
    assert schema["feature_columns"][: len(states)] == [f"state_{s}" for s in states]  # input column order
    assert "account_length" in schema["feature_columns"] and "churn" not in schema["feature_columns"]
    summary = json.loads(_messages(logs, "/aws-glue/python-jobs/output", run["Id"])[-1])
    assert summary["counts"] == counts

    # same input, same seed: the same split
    again = _run_churn(glue, churn_job, f"s3://{gbucket}/raw/mlc_churn.csv", f"s3://{gbucket}/prepared/run2")
    assert again["JobRunState"] == "SUCCEEDED", again.get("ErrorMessage")
    assert _read_csv_rows(s3, gbucket, "prepared/run2/test/test.csv") == splits["test"]


def test_churn_preprocess_quarantines_bad_rows(glue, s3, gbucket, churn_job):
    header = "state,account_length,intl_plan,total_day_minutes,churn"
    good = [
        f"{st},{100 + i},{plan},{150.5 + i},{label}"
        for i, (st, plan, label) in enumerate(
            [("KS", "no", "no"), ("OH", "yes", "Yes"), ("NJ", "no", " no "), ("KS", "yes", "yes")] * 5
        )
    ]
    bad = [
        "OH,abc,no,120.0,no",  # non-numeric account_length
        "NJ,101,no,130.0,",  # missing label
        "KS,102,no,140.0",  # a field short
    ]
    lines = [header, *good[:7], bad[0], *good[7:14], bad[1], *good[14:], bad[2]]
    s3.put_object(Bucket=gbucket, Key="raw/small.csv", Body=("\n".join(lines) + "\n").encode())
    run = _run_churn(
        glue,
        churn_job,
        f"s3://{gbucket}/raw/small.csv",
        f"s3://{gbucket}/prepared/small",
        max_quarantined_share="0.2",  # 3 of 23 rows
    )
    assert run["JobRunState"] == "SUCCEEDED", run.get("ErrorMessage")

    quarantined = [
        json.loads(line)
        for line in s3.get_object(Bucket=gbucket, Key="prepared/small/quarantine/rows.jsonl")["Body"]
        .read()
        .decode()
        .splitlines()
    ]
    assert [q["row_number"] for q in quarantined] == [8, 16, 23]
    assert "account_length" in quarantined[0]["reason"] and "'abc'" in quarantined[0]["reason"]
    assert quarantined[0]["row"]["account_length"] == "abc"
    assert "churn" in quarantined[1]["reason"] and "missing" in quarantined[1]["reason"]
    assert "expected 5 fields, got 4" in quarantined[2]["reason"]

    schema = json.loads(s3.get_object(Bucket=gbucket, Key="prepared/small/schema.json")["Body"].read())
    counts = schema["counts"]
    assert counts["received"] == len(lines) - 1 and counts["quarantined"] == 3
    assert (
        counts["received"] == counts["quarantined"] + counts["train"] + counts["validation"] + counts["test"]
    )
    assert schema["feature_columns"] == [
        "state_KS",
        "state_NJ",
        "state_OH",
        "account_length",
        "intl_plan_no",
        "intl_plan_yes",
        "total_day_minutes",
    ]
    rows = [
        row
        for name in ("train", "validation", "test")
        for row in _read_csv_rows(s3, gbucket, f"prepared/small/{name}/{name}.csv")
    ]
    assert sum(row[0] == "1" for row in rows) == 10  # "Yes" and "yes", stripped, case-insensitive
    by_account = {row[4]: row for row in rows}
    ks_yes = by_account["103"]  # good[3]: KS, yes, yes
    assert ks_yes == ["1", "1", "0", "0", "103", "0", "1", "153.5"]


@pytest.mark.parametrize(
    ("key", "body", "expected"),
    [
        ("raw/absent.csv", None, "does not exist"),
        ("raw/empty.csv", b"", "is empty"),
        ("raw/nolabel.csv", b"a,b\n1,2\n", "no label column 'churn'"),
    ],
)
def test_churn_preprocess_rejects_bad_input(glue, s3, gbucket, churn_job, key, body, expected):
    if body is not None:
        s3.put_object(Bucket=gbucket, Key=key, Body=body)
    run = _run_churn(glue, churn_job, f"s3://{gbucket}/{key}", f"s3://{gbucket}/prepared/bad")
    assert run["JobRunState"] == "FAILED"
    assert f"s3://{gbucket}/{key}" in run["ErrorMessage"] and expected in run["ErrorMessage"]


# ---- the Amazon provider against the twin ----------------------------------------------------
class _TaskInstance:
    """What GlueJobOperator touches on ``context["ti"]`` outside a scheduler."""

    dag_id, task_id, run_id, map_index = "glue_test", "run_glue", "manual__1", -1

    def __init__(self, try_number: int = 1):
        self.try_number = try_number
        self.xcom: dict[str, object] = {}

    def xcom_push(self, key, value):
        self.xcom[key] = value

    def xcom_pull(self, key, task_ids=None):
        return self.xcom.get(key)  # a new attempt starts without XComs, as on Airflow 3


def test_glue_job_operator_runs_to_completion(airflow_aws_conn, s3, glue, gbucket, tmp_path, capfd):
    from airflow.providers.amazon.aws.operators.glue import GlueJobOperator

    script = tmp_path / "write_marker.py"
    script.write_text(WRITER)
    key = f"airflow/{uuid.uuid4().hex}.txt"
    job_name = f"airflow-{uuid.uuid4().hex[:8]}"
    script_uri = f"s3://{gbucket}/artifacts/glue-scripts/write_marker.py"
    run_glue = GlueJobOperator(
        task_id="run_glue",
        job_name=job_name,
        script_location=str(script),  # uploaded to s3_bucket by the operator, as on AWS
        s3_bucket=gbucket,
        iam_role_arn=ROLE,
        num_of_dpus=1,
        create_job_kwargs={
            "Command": {"Name": "pythonshell", "ScriptLocation": script_uri, "PythonVersion": "3.9"},
            "DefaultArguments": {"--greeting": "hi"},
        },
        script_args={"--bucket": gbucket, "--key": key},
        verbose=True,
        job_poll_interval=0.5,
    )
    ti = _TaskInstance()
    run_id = run_glue.execute({"ti": ti})

    assert ti.xcom["glue_job_run_id"] == run_id
    run = glue.get_job_run(JobName=job_name, RunId=run_id)["JobRun"]
    assert run["JobRunState"] == "SUCCEEDED"
    assert (
        s3.get_object(Bucket=gbucket, Key=key)["Body"].read().decode() == f"hi from {job_name} run {run_id}"
    )
    task_log = capfd.readouterr().out
    assert "Glue Job Run /aws-glue/python-jobs/output Logs:" in task_log  # verbose: CloudWatch output
    assert f"wrote s3://{gbucket}/{key}" in task_log
    assert glue.get_job(JobName=job_name)["Job"]["MaxCapacity"] == 1.0


def _first_event(trigger) -> dict:
    """The first event of ``trigger.run()``, run as the triggerer runs it (aiobotocore client)."""
    import asyncio

    async def first():
        async for event in trigger.run():
            return event.payload
        raise AssertionError("trigger ended without an event")

    return asyncio.run(first())


def test_glue_job_operator_deferrable(airflow_aws_conn, s3, glue, gbucket, capfd):
    import importlib

    from airflow.providers.amazon.aws.operators.glue import GlueJobOperator
    from airflow.providers.amazon.aws.triggers.glue import GlueJobCompleteTrigger
    from airflow.providers.common.compat.sdk import AirflowException, TaskDeferred

    job = _job(glue, s3, gbucket, FAILING)
    defer_glue = GlueJobOperator(
        task_id="defer_glue",
        job_name=job,
        script_args={"--missing": "3"},
        deferrable=True,
        verbose=True,
        waiter_delay=1,
        waiter_max_attempts=60,
    )
    with pytest.raises(TaskDeferred) as deferred:
        defer_glue.execute({"ti": _TaskInstance()})
    # what the triggerer stores and rebuilds
    classpath, kwargs = deferred.value.trigger.serialize()
    json.dumps(kwargs)
    module, cls = classpath.rsplit(".", 1)
    trigger = getattr(importlib.import_module(module), cls)(**kwargs)
    assert isinstance(trigger, GlueJobCompleteTrigger) and trigger.verbose
    run_id = trigger.run_id
    # verbose: the trigger polls GetJobRun and forwards both CloudWatch streams through the twin
    capfd.readouterr()
    payload = _first_event(trigger)
    assert payload == {
        "status": "error",
        "message": f"Glue Job {job} Run {run_id} exited with state: FAILED",
        "run_id": run_id,
    }
    trigger_log = capfd.readouterr().out
    assert "Glue Job Run /aws-glue/python-jobs/error Logs:" in trigger_log  # the error stream, forwarded
    assert "ValueError: reconciliation failed: 3 rows missing" in trigger_log
    assert glue.get_job_run(JobName=job, RunId=run_id)["JobRun"]["ErrorMessage"].startswith("ValueError")
    with pytest.raises(AirflowException, match="FAILED"):
        defer_glue.execute_complete({}, payload)


def test_glue_job_complete_trigger_waits_with_the_waiter(airflow_aws_conn, s3, glue, gbucket):
    """Not verbose: the provider's ``job_complete`` waiter on the async client (AwsBaseWaiterTrigger.run)."""
    from airflow.providers.amazon.aws.triggers.glue import GlueJobCompleteTrigger

    job = _job(glue, s3, gbucket, WRITER)
    key = f"trigger/{uuid.uuid4().hex}.txt"
    run_id = glue.start_job_run(
        JobName=job, Arguments={"--bucket": gbucket, "--key": key, "--greeting": "hello"}
    )["JobRunId"]
    payload = _first_event(GlueJobCompleteTrigger(job_name=job, run_id=run_id, waiter_delay=1))
    assert payload == {"status": "success", "run_id": run_id}
    assert glue.get_job_run(JobName=job, RunId=run_id)["JobRun"]["JobRunState"] == "SUCCEEDED"
    assert s3.get_object(Bucket=gbucket, Key=key)["Body"].read().decode() == f"hello from {job} run {run_id}"


def test_glue_job_operator_retry_reattaches_to_its_run(airflow_aws_conn, s3, glue, gbucket):
    """``resume_glue_job_on_retry`` (amazon provider 9.34.0, MWAA 3.3.1's; later releases call it
    ``durable``): the provider tags the run with ``--airflow_task_uuid``; a retried task (try 2,
    same dag/task/run, no XCom left) scans GetJobRuns for that tag and attaches to the run still
    going instead of starting a second one."""
    from airflow.providers.amazon.aws.operators.glue import GlueJobOperator
    from airflow.providers.common.compat.sdk import TaskDeferred

    job = _job(glue, s3, gbucket, SLEEPER, ExecutionProperty={"MaxConcurrentRuns": 2})

    def submit(ti) -> str:
        run_glue = GlueJobOperator(
            task_id="run_glue",
            job_name=job,
            script_args={"--bucket": gbucket, "--key": f"durable/{job}"},
            deferrable=True,
            resume_glue_job_on_retry=True,
        )
        with pytest.raises(TaskDeferred) as deferred:
            run_glue.execute({"ti": ti})
        return deferred.value.trigger.run_id

    first = submit(_TaskInstance(try_number=1))
    retry_ti = _TaskInstance(try_number=2)
    retried = submit(retry_ti)
    try:
        assert retried == first
        assert retry_ti.xcom["glue_job_run_id"] == first
        runs = glue.get_job_runs(JobName=job)["JobRuns"]
        assert [r["Id"] for r in runs] == [first]
        assert runs[0]["Arguments"]["--airflow_task_uuid"] == "glue_test:run_glue:manual__1:-1"
        # another task instance of the same job is not mistaken for this one
        other = _TaskInstance(try_number=2)
        other.run_id = "manual__2"
        assert submit(other) != first
        assert len(glue.get_job_runs(JobName=job)["JobRuns"]) == 2
    finally:
        ids = [r["Id"] for r in glue.get_job_runs(JobName=job)["JobRuns"]]
        glue.batch_stop_job_run(JobName=job, JobRunIds=ids)
    for run_id in ids:
        assert _wait(glue, job, run_id, timeout=30)["JobRunState"] == "STOPPED"


def test_glue_once_operator_starts_one_run_when_the_answer_is_lost(airflow_aws_conn, twin, s3, glue, gbucket):
    """StartJobRun executed, its answer lost (the twin's drop_response fault): botocore retries it, and
    the retry meets ConcurrentRunsExceededException (the first request's run holds the job's one
    slot); GlueJobOnceOperator finds the run by its --airflow_task_uuid and waits for that one. A later
    try of the task, once the run has SUCCEEDED, starts nothing. (The script sleeps 3 s first: a real
    Glue run lasts far longer than botocore's first retry delay, at most 1 s; a twin run of a bare
    script can end within it, and a retry after the run ended would start a second run.)"""
    from aws_ml_provider.operators.glue import GlueJobOnceOperator

    job_name = f"once-{uuid.uuid4().hex[:8]}"
    key = f"once/{uuid.uuid4().hex}.txt"
    script_uri = f"s3://{gbucket}/scripts/write_marker.py"
    s3.put_object(
        Bucket=gbucket, Key="scripts/write_marker.py", Body=("import time\ntime.sleep(3)\n" + WRITER).encode()
    )

    def operator() -> GlueJobOnceOperator:
        return GlueJobOnceOperator(
            task_id="run_glue",
            job_name=job_name,
            script_location=script_uri,
            iam_role_arn=ROLE,
            num_of_dpus=1,
            create_job_kwargs={
                "Command": {"Name": "pythonshell", "ScriptLocation": script_uri, "PythonVersion": "3.9"},
                "DefaultArguments": {"--greeting": "once"},
            },
            script_args={"--bucket": gbucket, "--key": key},
            job_poll_interval=0.5,
        )

    starts = f"{twin.airflow_connection()['login']} glue:StartJobRun"
    before = twin.control("state")["calls"].get(starts, 0)
    twin.set_faults("glue:StartJobRun:drop=1,times=1")
    try:
        run_id = operator().execute({"ti": _TaskInstance()})
        assert twin.control("faults")["counters"]["dropped"] == 1
    finally:
        twin.control("faults", "DELETE")
    # the lost one and botocore's retry (ConcurrentRunsExceededException), no start of the operator's own
    assert twin.control("state")["calls"].get(starts, 0) - before == 2
    runs = glue.get_job_runs(JobName=job_name)["JobRuns"]
    assert [(r["Id"], r["JobRunState"]) for r in runs] == [(run_id, "SUCCEEDED")]
    assert (
        s3.get_object(Bucket=gbucket, Key=key)["Body"].read().decode() == f"once from {job_name} run {run_id}"
    )
    # the task's next try (a later failure made Airflow retry it): the run is found, none started
    again = _TaskInstance(try_number=2)
    assert operator().execute({"ti": again}) == run_id
    assert again.xcom["glue_job_run_id"] == run_id
    assert len(glue.get_job_runs(JobName=job_name)["JobRuns"]) == 1
