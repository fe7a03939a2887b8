"""Input sense for tabular data in the churn preprocessing job (include/glue/churn_preprocess.py),
run for real by the twin's Glue on small CSVs built from rows of ../shared/data/mlc_churn.csv and
mutated: blank cells, an ID column, "$" and "%" strings, a high-cardinality category, a label with
one class, a positive value that matches nothing, too many bad rows. And the task's own error: the
DAG's Glue operator raises the run's ErrorMessage, without retries for a data error.

Expected values come from the mutated rows themselves (which cells were blanked, which strings were
written), never from the job's own outputs alone.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import random
import time
import uuid
from pathlib import Path

import pytest

from tests.shared_data import shared_dir

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "include" / "glue" / "churn_preprocess.py"
ROLE = "arn:aws:iam::123456789012:role/glue-job-role"
ARGS = {
    "--label_column": "churn",
    "--positive_value": "yes",
    "--validation_fraction": "0.2",
    "--test_fraction": "0.1",
    "--seed": "5",
}


@pytest.fixture(scope="module")
def source(need) -> tuple[list[str], list[dict[str, str]]]:
    """(header, 300 rows of the real churn data, both classes), the same every run."""
    path = shared_dir() / "data" / "mlc_churn.csv"
    need(path.is_file(), str(path))
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        header = list(reader.fieldnames)
    return header, random.Random(11).sample(rows, 300)


@pytest.fixture(scope="module")
def glue(twin):
    return twin.client("glue")


@pytest.fixture(scope="module")
def rbucket(s3) -> str:
    name = f"rules-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="module")
def job(glue, s3, rbucket) -> str:
    name = f"churn-rules-{uuid.uuid4().hex[:8]}"
    s3.put_object(Bucket=rbucket, Key="code/churn_preprocess.py", Body=SCRIPT.read_bytes())
    glue.create_job(
        Name=name,
        Role=ROLE,
        Command={
            "Name": "pythonshell",
            "ScriptLocation": f"s3://{rbucket}/code/churn_preprocess.py",
            "PythonVersion": "3.9",
        },
        MaxCapacity=0.0625,
        ExecutionProperty={"MaxConcurrentRuns": 4},
    )
    return name


def to_csv(header: list[str], rows: list[dict[str, str]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def run_job(glue, s3, bucket: str, job: str, body: bytes, **extra: str) -> tuple[dict, str]:
    """Upload the CSV, run the job on it, wait: (the final JobRun, the output prefix)."""
    key = f"in/{uuid.uuid4().hex[:8]}.csv"
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    out = f"out/{uuid.uuid4().hex[:8]}"
    args = {**ARGS, "--input_uri": f"s3://{bucket}/{key}", "--output_uri": f"s3://{bucket}/{out}"}
    args.update({f"--{k}": v for k, v in extra.items()})
    run_id = glue.start_job_run(JobName=job, Arguments=args)["JobRunId"]
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        run = glue.get_job_run(JobName=job, RunId=run_id)["JobRun"]
        if run["JobRunState"] not in ("STARTING", "RUNNING", "STOPPING"):
            return run, out
        time.sleep(0.3)
    raise AssertionError(f"job run {run_id} did not finish")


def outputs(s3, bucket: str, out: str) -> tuple[dict, list[list[str]]]:
    """(schema.json, every output row of the three splits)."""
    schema = json.loads(s3.get_object(Bucket=bucket, Key=f"{out}/schema.json")["Body"].read())
    rows = []
    for split in ("train", "validation", "test"):
        text = s3.get_object(Bucket=bucket, Key=f"{out}/{split}/{split}.csv")["Body"].read().decode()
        rows += [row for row in csv.reader(io.StringIO(text)) if row]
    return schema, rows


def column(schema: dict, rows: list[list[str]], name: str) -> list[str]:
    """The output cells of feature ``name`` (the label is column 0)."""
    i = 1 + schema["feature_columns"].index(name)
    return [row[i] for row in rows]


def job_log(twin, run_id: str) -> list[str]:
    events = twin.client("logs").get_log_events(
        logGroupName="/aws-glue/python-jobs/output", logStreamName=run_id, startFromHead=True
    )["events"]
    return [e["message"] for e in events]


def test_blank_cells_are_missing_values_not_dropped_rows(glue, s3, rbucket, job, source, twin):
    header, rows = source
    rows = [dict(r) for r in rows]
    rng = random.Random(3)
    blank_minutes = rng.sample(range(len(rows)), 30)
    blank_plan = rng.sample(sorted(set(range(len(rows))) - set(blank_minutes)), 20)
    for i in blank_minutes:
        rows[i]["total_day_minutes"] = ""
    for i in blank_plan:
        rows[i]["international_plan"] = " "
    run, out = run_job(glue, s3, rbucket, job, to_csv(header, rows))
    assert run["JobRunState"] == "SUCCEEDED", run.get("ErrorMessage")
    schema, rows_out = outputs(s3, rbucket, out)
    counts = schema["counts"]
    assert counts["received"] == len(rows) and counts["quarantined"] == 0
    assert counts["train"] + counts["validation"] + counts["test"] == len(rows)
    minutes = column(schema, rows_out, "total_day_minutes")
    assert minutes.count("") == len(blank_minutes)
    plan_columns = [c for c in schema["feature_columns"] if c.startswith("international_plan_")]
    assert plan_columns == ["international_plan_no", "international_plan_yes"]
    for name in plan_columns:
        assert column(schema, rows_out, name).count("") == len(blank_plan)
    assert schema["input_rules"]["missing_values"] == {
        "total_day_minutes": len(blank_minutes),
        "international_plan": len(blank_plan),
    }
    log = job_log(twin, run["Id"])
    assert any("'total_day_minutes': 30 blank" in line for line in log), log


def test_id_columns_are_dropped(glue, s3, rbucket, job, source):
    header, rows = source
    rng = random.Random(4)
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    ids = [f"{rng.randint(1000, 9999)}-{''.join(rng.choices(letters, k=5))}" for _ in rows]
    assert len(set(ids)) == len(ids)
    rows = [
        {"customerID": cid, "row_id": str(1000 + i), **r}
        for i, (cid, r) in enumerate(zip(ids, rows, strict=True))
    ]
    run, out = run_job(glue, s3, rbucket, job, to_csv(["customerID", "row_id", *header], rows))
    assert run["JobRunState"] == "SUCCEEDED", run.get("ErrorMessage")
    schema, rows_out = outputs(s3, rbucket, out)
    dropped = schema["input_rules"]["dropped_columns"]
    assert sorted(dropped) == ["customerID", "row_id"]
    assert not [c for c in schema["feature_columns"] if c.startswith(("customerID", "row_id"))]
    # the other columns are all there: 51-ish states one-hot, the numbers as they were
    assert "account_length" in schema["feature_columns"]
    assert all(len(r) == 1 + len(schema["feature_columns"]) for r in rows_out)
    assert len(schema["feature_columns"]) < 100


def test_currency_and_percent_strings_are_parsed_as_numbers(glue, s3, rbucket, job, source):
    header, rows = source
    rows = [dict(r) for r in rows]
    for i, row in enumerate(rows):
        row["total_day_charge"] = f"${float(row['total_day_charge']):,.2f}"
        row["total_eve_charge"] = f"{float(row['total_eve_charge']) * 100:,.1f}"  # thousands separators
        row["discount"] = f"{i % 30}%"
    assert any("," in r["total_eve_charge"] for r in rows)
    run, out = run_job(glue, s3, rbucket, job, to_csv([*header, "discount"], rows))
    assert run["JobRunState"] == "SUCCEEDED", run.get("ErrorMessage")
    schema, rows_out = outputs(s3, rbucket, out)
    parsed = schema["input_rules"]["parsed_columns"]
    assert parsed == {
        "total_day_charge": ["currency"],
        "total_eve_charge": ["thousands"],
        "discount": ["percent"],
    }
    for name in ("total_day_charge", "total_eve_charge", "discount"):
        assert name in schema["numeric_columns"] and name in schema["feature_columns"]
    # the values themselves, matched back to the source rows by account (written in the same order)
    expected = sorted(float(r["total_day_charge"].lstrip("$").replace(",", "")) for r in rows)
    assert sorted(float(v) for v in column(schema, rows_out, "total_day_charge")) == expected
    assert sorted(float(v) for v in column(schema, rows_out, "discount")) == sorted(
        float(i % 30) for i in range(300)
    )


def test_high_cardinality_category_is_capped(glue, s3, rbucket, job, source):
    header, rows = source
    rng = random.Random(6)
    # 120 cities, not unique per row (an ID would be dropped instead): the first 10 are common
    cities = [f"city{n:03d}" for n in range(120)]
    picks = [cities[i % 120] if i < 240 else cities[i % 10] for i in range(len(rows))]
    rng.shuffle(picks)
    rows = [{**r, "city": c} for r, c in zip(rows, picks, strict=True)]
    run, out = run_job(glue, s3, rbucket, job, to_csv([*header, "city"], rows), max_category_levels="20")
    assert run["JobRunState"] == "SUCCEEDED", run.get("ErrorMessage")
    schema, rows_out = outputs(s3, rbucket, out)
    counts: dict[str, int] = {}
    for c in picks:
        counts[c] = counts.get(c, 0) + 1
    top = sorted(sorted(counts, key=lambda c: (-counts[c], c))[:20])
    assert schema["input_rules"]["capped_columns"]["city"]["levels"] == 120
    assert schema["categorical_levels"]["city"] == [*top, "__other__"]
    other = column(schema, rows_out, "city___other__")
    assert other.count("1") == sum(1 for c in picks if c not in top)


@pytest.mark.parametrize(
    ("mutate", "positive", "words"),
    [
        ("one_class", "yes", ["one class", "'no' (300 rows)"]),
        ("none", "churned", ["'churned' matches no row", "'no' (", "'yes' ("]),
    ],
)
def test_label_with_one_class_fails_at_once_naming_the_values(
    glue, s3, rbucket, job, source, mutate, positive, words
):
    header, rows = source
    if mutate == "one_class":
        rows = [{**r, "churn": "no"} for r in rows]
    run, out = run_job(glue, s3, rbucket, job, to_csv(header, rows), positive_value=positive)
    assert run["JobRunState"] == "FAILED"
    message = run["ErrorMessage"]
    assert message.startswith("PreprocessError: "), message
    for word in words:
        assert word in message, message
    assert "Contents" not in s3.list_objects_v2(Bucket=rbucket, Prefix=f"{out}/train/")


def test_too_many_quarantined_rows_fail_the_run(glue, s3, rbucket, job, source):
    header, rows = source
    rows = [dict(r) for r in rows]
    bad = random.Random(8).sample(range(len(rows)), 24)  # 8 %
    for i in bad:
        rows[i]["total_night_calls"] = "n/a"
    body = to_csv(header, rows)
    run, out = run_job(glue, s3, rbucket, job, body, max_quarantined_share="0.05")
    assert run["JobRunState"] == "FAILED"
    assert "24 of 300 rows (8.0%) were quarantined" in run["ErrorMessage"], run["ErrorMessage"]
    assert "max_quarantined_share 5.0%" in run["ErrorMessage"]
    quarantined = (
        s3.get_object(Bucket=rbucket, Key=f"{out}/quarantine/rows.jsonl")["Body"].read().splitlines()
    )
    assert sorted(json.loads(q)["row_number"] for q in quarantined) == sorted(i + 1 for i in bad)
    # under a higher ceiling the same data passes, the bad rows quarantined
    run, out = run_job(glue, s3, rbucket, job, body, max_quarantined_share="0.1")
    assert run["JobRunState"] == "SUCCEEDED", run.get("ErrorMessage")
    assert outputs(s3, rbucket, out)[0]["counts"]["quarantined"] == len(bad)


# ---- the task's own error ------------------------------------------------------------------
def _first_event(trigger) -> dict:
    async def first():
        async for event in trigger.run():
            return event.payload

    return asyncio.run(first())


@pytest.mark.parametrize("deferrable", [True, False])
def test_failed_glue_run_reason_is_the_task_error_and_not_retried(
    aws, glue, s3, rbucket, job, source, task_context, deferrable
):
    """The churn DAG's Glue operator: a data error (PreprocessError) fails the task for good
    (AirflowFailException) with the run's ErrorMessage in the exception."""
    from airflow.providers.common.compat.sdk import AirflowFailException, TaskDeferred
    from aws_ml_provider.operators.glue import GlueJobReasonOperator

    header, rows = source
    key = f"in/oneclass-{uuid.uuid4().hex[:6]}.csv"
    s3.put_object(Bucket=rbucket, Key=key, Body=to_csv(header, [{**r, "churn": "no"} for r in rows]))
    preprocess = GlueJobReasonOperator(
        task_id="preprocess",
        job_name=job,
        script_args={
            **ARGS,
            "--input_uri": f"s3://{rbucket}/{key}",
            "--output_uri": f"s3://{rbucket}/out/op",
        },
        deferrable=deferrable,
        waiter_delay=1,
        waiter_max_attempts=120,
        verbose=True,
        job_poll_interval=1,
        no_retry_errors=("PreprocessError",),
    )
    context = task_context(task_id="preprocess")
    with pytest.raises(AirflowFailException) as failed:
        if deferrable:
            with pytest.raises(TaskDeferred) as deferred:
                preprocess.execute(context)
            event = _first_event(deferred.value.trigger)
            assert event["status"] == "error"
            preprocess.execute_complete(context, event)
        else:
            preprocess.execute(context)
    message = str(failed.value)
    assert "PreprocessError" in message and "one class" in message and "'no' (300 rows)" in message, message
    assert job in message


def test_other_failures_stay_retryable_with_their_reason(aws, glue, s3, rbucket, task_context):
    """A run that failed for another reason (here the script crashes) raises a plain
    AirflowException (retried) carrying Glue's ErrorMessage."""
    from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException
    from aws_ml_provider.operators.glue import GlueJobReasonOperator

    key = f"code/crash-{uuid.uuid4().hex[:6]}.py"
    s3.put_object(
        Bucket=rbucket, Key=key, Body=b"import sys\nraise ConnectionError('the database went away')\n"
    )
    name = f"crash-{uuid.uuid4().hex[:6]}"
    glue.create_job(
        Name=name, Role=ROLE, Command={"Name": "pythonshell", "ScriptLocation": f"s3://{rbucket}/{key}"}
    )
    crash = GlueJobReasonOperator(
        task_id="crash", job_name=name, job_poll_interval=1, no_retry_errors=("PreprocessError",)
    )
    with pytest.raises(AirflowException) as failed:
        crash.execute(task_context(task_id="crash"))
    assert not isinstance(failed.value, AirflowFailException)
    assert f"Glue job {name} run jr_" in str(failed.value)
    assert "FAILED: ConnectionError: the database went away" in str(failed.value)


def test_the_churn_dag_uses_it_for_preprocess():
    from airflow.dag_processing.dagbag import DagBag
    from aws_ml_provider.operators.glue import GlueJobReasonOperator

    bag = DagBag(dag_folder=str(ROOT / "dags" / "churn_xgboost_pipeline.py"))
    task = bag.dags["churn_xgboost_pipeline"].get_task("prepare.preprocess")
    assert isinstance(task, GlueJobReasonOperator)
    assert "PreprocessError" in task.no_retry_errors
    for name in ("--max_quarantined_share", "--max_category_levels"):
        assert name in task.script_args
