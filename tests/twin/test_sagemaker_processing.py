"""SageMaker Processing jobs on the twin (boto3 over HTTP, --strict): a scikit-learn image job runs
its script for real (inputs from S3, outputs to S3, Environment, CloudWatch logs), a failing script
fails with the script's error, StopProcessingJob and MaxRuntimeInSeconds stop it, an image the twin
cannot run is refused, and the Amazon provider's SageMakerProcessingOperator (deferrable or not) and
botocore's waiter work against it."""

from __future__ import annotations

import asyncio
import csv
import io
import re
import statistics
import time
import uuid

import pytest
from botocore.exceptions import ClientError, WaiterError

SKLEARN = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
ROLE = "arn:aws:iam::123456789012:role/sagemaker-execution"
WAIT = {"Delay": 0.5, "MaxAttempts": 240}

# reads the CSV inputs from a hard-coded /opt/ml path (as SageMaker examples do), the output folder
# from an argument, and writes a summary computed from the data
SCRIPT = """
import argparse, csv, glob, json, os, statistics, sys
parser = argparse.ArgumentParser()
parser.add_argument("--output-dir")
parser.add_argument("--column")
args = parser.parse_args()
rows = []
for path in sorted(glob.glob("/opt/ml/processing/input/data/*.csv")):
    with open(path, newline="") as fh:
        rows += list(csv.DictReader(fh))
values = [float(r[args.column]) for r in rows]
print(f"read {len(rows)} rows, label={os.environ['RUN_LABEL']}")
os.makedirs(os.path.join(args.output_dir, "summary"), exist_ok=True)
with open(os.path.join(args.output_dir, "summary", "stats.json"), "w") as fh:
    json.dump({"rows": len(rows), "mean": statistics.mean(values), "label": os.environ["RUN_LABEL"]}, fh)
with open("/opt/ml/processing/report/report.txt", "w") as fh:
    fh.write(f"max={max(values)}")
"""

FAILING = """
import csv
with open("/opt/ml/processing/input/data/part-0.csv") as fh:
    header = next(csv.reader(fh))
print("columns:", header)
if "churn" not in header:
    raise KeyError(f"column 'churn' not in {header}")
"""

SLOW = """
import os, time
time.sleep(float(os.environ["SECONDS"]))
with open("/opt/ml/processing/output/done.txt", "w") as fh:
    fh.write("slept " + os.environ["SECONDS"])
"""

SLEEPING = """
import time
print("started", flush=True)
time.sleep(120)
"""


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _code(exc: pytest.ExceptionInfo) -> str:
    return exc.value.response["Error"]["Code"]


@pytest.fixture
def data(s3, bucket):
    """Two CSV parts (a few random rows) and the scripts, in a fresh bucket."""
    import random

    rng = random.Random(uuid.uuid4().int)
    parts = []
    for i in range(2):
        rows = [{"id": f"{i}-{j}", "amount": round(rng.uniform(1, 100), 3)} for j in range(rng.randint(3, 7))]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=["id", "amount"])
        writer.writeheader()
        writer.writerows(rows)
        s3.put_object(Bucket=bucket, Key=f"data/part-{i}.csv", Body=buf.getvalue().encode())
        parts.append(rows)
    for key, body in (
        ("code/summarise.py", SCRIPT),
        ("code/fail.py", FAILING),
        ("code/sleep.py", SLEEPING),
        ("code/slow.py", SLOW),
    ):
        s3.put_object(Bucket=bucket, Key=key, Body=body.encode())
    return {"bucket": bucket, "rows": [r for part in parts for r in part]}


def _request(name: str, bucket: str, script: str, *, image: str = SKLEARN, max_runtime: int = 300, **extra):
    request = {
        "ProcessingJobName": name,
        "RoleArn": ROLE,
        "AppSpecification": {
            "ImageUri": image,
            "ContainerEntrypoint": ["python3", f"/opt/ml/processing/input/code/{script}"],
        },
        "ProcessingInputs": [
            {
                "InputName": "code",
                "S3Input": {
                    "S3Uri": f"s3://{bucket}/code/{script}",
                    "LocalPath": "/opt/ml/processing/input/code",
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                },
            },
            {
                "InputName": "data",
                "S3Input": {
                    "S3Uri": f"s3://{bucket}/data/",
                    "LocalPath": "/opt/ml/processing/input/data",
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                },
            },
        ],
        "ProcessingResources": {
            "ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 5}
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime},
    }
    request.update(extra)
    return request


def _outputs(bucket: str, name: str) -> dict:
    return {
        "Outputs": [
            {
                "OutputName": "summary",
                "S3Output": {
                    "S3Uri": f"s3://{bucket}/out/{name}/summary",
                    "LocalPath": "/opt/ml/processing/output",
                    "S3UploadMode": "EndOfJob",
                },
            },
            {
                "OutputName": "report",
                "S3Output": {
                    "S3Uri": f"s3://{bucket}/out/{name}/report",
                    "LocalPath": "/opt/ml/processing/report",
                    "S3UploadMode": "EndOfJob",
                },
            },
        ]
    }


def _log_messages(twin, name: str) -> list[str]:
    logs = twin.client("logs")
    streams = logs.describe_log_streams(
        logGroupName="/aws/sagemaker/ProcessingJobs", logStreamNamePrefix=name + "/"
    )["logStreams"]
    assert len(streams) == 1 and re.fullmatch(rf"{name}/algo-1-\d{{10}}", streams[0]["logStreamName"])
    events = logs.get_log_events(
        logGroupName="/aws/sagemaker/ProcessingJobs",
        logStreamName=streams[0]["logStreamName"],
        startFromHead=True,
    )["events"]
    return [e["message"] for e in events]


def test_script_reads_inputs_and_writes_outputs(twin, sm, s3, data):
    import json

    bucket, name = data["bucket"], _name("proc")
    label = uuid.uuid4().hex[:8]
    sm.create_processing_job(
        **_request(
            name,
            bucket,
            "summarise.py",
            ProcessingOutputConfig=_outputs(bucket, name),
            Environment={"RUN_LABEL": label},
        )
        | {
            "AppSpecification": {
                "ImageUri": SKLEARN,
                "ContainerEntrypoint": ["python3", "/opt/ml/processing/input/code/summarise.py"],
                "ContainerArguments": ["--output-dir", "/opt/ml/processing/output", "--column", "amount"],
            }
        }
    )
    assert sm.describe_processing_job(ProcessingJobName=name)["ProcessingJobStatus"] in (
        "InProgress",
        "Completed",
    )
    sm.get_waiter("processing_job_completed_or_stopped").wait(ProcessingJobName=name, WaiterConfig=WAIT)
    job = sm.describe_processing_job(ProcessingJobName=name)
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    assert job["ProcessingEndTime"] >= job["ProcessingStartTime"] >= job["CreationTime"]
    assert job["Environment"] == {"RUN_LABEL": label}

    amounts = [r["amount"] for r in data["rows"]]
    stats = json.loads(
        s3.get_object(Bucket=bucket, Key=f"out/{name}/summary/summary/stats.json")["Body"].read()
    )
    assert stats["rows"] == len(data["rows"]) and stats["label"] == label
    assert stats["mean"] == pytest.approx(statistics.mean(amounts))
    report = s3.get_object(Bucket=bucket, Key=f"out/{name}/report/report.txt")["Body"].read().decode()
    assert report == f"max={max(amounts)}"

    assert f"read {len(data['rows'])} rows, label={label}" in _log_messages(twin, name)
    listed = sm.list_processing_jobs(NameContains=name)["ProcessingJobSummaries"]
    assert [(j["ProcessingJobName"], j["ProcessingJobStatus"]) for j in listed] == [(name, "Completed")]
    with pytest.raises(ClientError) as again:
        sm.create_processing_job(**_request(name, bucket, "summarise.py"))
    assert _code(again) == "ResourceInUse"


def test_failing_script_fails_with_its_error(twin, sm, data):
    name = _name("proc-fail")
    sm.create_processing_job(**_request(name, data["bucket"], "fail.py"))
    with pytest.raises(WaiterError):
        sm.get_waiter("processing_job_completed_or_stopped").wait(ProcessingJobName=name, WaiterConfig=WAIT)
    job = sm.describe_processing_job(ProcessingJobName=name)
    assert job["ProcessingJobStatus"] == "Failed"
    assert job["FailureReason"] == "AlgorithmError: KeyError: \"column 'churn' not in ['id', 'amount']\""
    messages = _log_messages(twin, name)
    assert "columns: ['id', 'amount']" in messages
    assert any(m.startswith("Traceback") for m in messages)
    assert (
        sm.list_processing_jobs(NameContains=name, StatusEquals="Failed")["ProcessingJobSummaries"][0][
            "FailureReason"
        ]
        == job["FailureReason"]
    )


def _wait_for_log(twin, name: str, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if text in _log_messages(twin, name):
                return
        except (AssertionError, ClientError):
            pass
        time.sleep(0.3)
    raise AssertionError(f"{text!r} never logged by {name}")


def test_stop_ends_the_running_script(twin, sm, data):
    name = _name("proc-stop")
    sm.create_processing_job(**_request(name, data["bucket"], "sleep.py"))
    _wait_for_log(twin, name, "started")
    started = time.monotonic()
    sm.stop_processing_job(ProcessingJobName=name)
    assert sm.describe_processing_job(ProcessingJobName=name)["ProcessingJobStatus"] in (
        "Stopping",
        "Stopped",
    )
    sm.get_waiter("processing_job_completed_or_stopped").wait(ProcessingJobName=name, WaiterConfig=WAIT)
    assert time.monotonic() - started < 30  # not the script's 120 s sleep
    job = sm.describe_processing_job(ProcessingJobName=name)
    assert job["ProcessingJobStatus"] == "Stopped" and "FailureReason" not in job
    with pytest.raises(ClientError) as again:
        sm.stop_processing_job(ProcessingJobName=name)
    assert _code(again) == "ValidationException"


def test_max_runtime_stops_the_job(sm, data):
    name = _name("proc-limit")
    started = time.monotonic()
    sm.create_processing_job(**_request(name, data["bucket"], "sleep.py", max_runtime=3))
    sm.get_waiter("processing_job_completed_or_stopped").wait(ProcessingJobName=name, WaiterConfig=WAIT)
    assert time.monotonic() - started < 60
    job = sm.describe_processing_job(ProcessingJobName=name)
    assert job["ProcessingJobStatus"] == "Stopped"
    assert "MaxRuntimeInSeconds (3 s)" in job["FailureReason"]


@pytest.mark.parametrize(
    "image",
    [
        "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-processing:latest",
        # the us-east-1 registry's account with eu-west-1's name: not a published image
        "683313688378.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3",
        "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:9.9-1-cpu-py3",
    ],
)
def test_an_image_the_twin_cannot_run_is_refused(sm, data, image):
    name = _name("proc-image")
    with pytest.raises(ClientError) as refused:
        sm.create_processing_job(**_request(name, data["bucket"], "summarise.py", image=image))
    assert _code(refused) == "ValidationException"
    assert image in refused.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as missing:
        sm.describe_processing_job(ProcessingJobName=name)
    assert _code(missing) == "ValidationException"


def test_sklearn_images_of_every_published_region_are_accepted():
    """The twin's table: every region's published scikit-learn image is one it runs."""
    from aws_twin.services.sagemaker.images import REGISTRIES, SKLEARN_VERSIONS, image_uri, sklearn_version

    assert len(REGISTRIES) >= 30
    for region in REGISTRIES:
        for version in SKLEARN_VERSIONS:
            assert (
                sklearn_version(image_uri("sagemaker-scikit-learn", region, f"{version}-cpu-py3")) == version
            )
    assert image_uri("sagemaker-scikit-learn", "cn-north-1", "1.2-1-cpu-py3").startswith(
        "450853457545.dkr.ecr.cn-north-1.amazonaws.com.cn/"
    )


def test_inputs_the_twin_cannot_read_answer_not_implemented(sm, data):
    request = _request(_name("proc-athena"), data["bucket"], "summarise.py")
    request["ProcessingInputs"][1]["S3Input"]["S3InputMode"] = "Pipe"
    with pytest.raises(ClientError) as refused:
        sm.create_processing_job(**request)
    assert _code(refused) == "NotImplemented" and "Pipe" in refused.value.response["Error"]["Message"]
    request = _request(_name("proc-path"), data["bucket"], "summarise.py")
    request["ProcessingInputs"][1]["S3Input"]["LocalPath"] = "/tmp/data"
    with pytest.raises(ClientError) as bad_path:
        sm.create_processing_job(**request)
    assert (
        _code(bad_path) == "ValidationException"
        and "/tmp/data" in bad_path.value.response["Error"]["Message"]
    )


def test_provider_processing_operator(airflow_aws_conn, sm, s3, data):
    from airflow.providers.amazon.aws.operators.sagemaker import SageMakerProcessingOperator
    from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger
    from airflow.providers.common.compat.sdk import AirflowException, TaskDeferred

    bucket = data["bucket"]
    name = _name("op-proc")
    config = _request(name, bucket, "summarise.py", ProcessingOutputConfig=_outputs(bucket, name))
    config["AppSpecification"]["ContainerArguments"] = [
        "--output-dir",
        "/opt/ml/processing/output",
        "--column",
        "amount",
    ]
    config["Environment"] = {"RUN_LABEL": "op"}
    result = SageMakerProcessingOperator(
        task_id="process", config=config, check_interval=1, max_ingestion_time=120
    ).execute({})
    assert result["Processing"]["ProcessingJobStatus"] == "Completed"
    assert s3.head_object(Bucket=bucket, Key=f"out/{name}/summary/summary/stats.json")["ContentLength"] > 0

    with pytest.raises(AirflowException, match="KeyError"):
        SageMakerProcessingOperator(
            task_id="fail", config=_request(_name("op-fail"), bucket, "fail.py"), check_interval=1
        ).execute({})

    # deferrable: the trigger runs the provider's waiter (processing_job_completed_or_stopped) on aiobotocore
    deferred_name = _name("op-proc-defer")
    config = _request(deferred_name, bucket, "slow.py")
    config["Environment"] = {"SECONDS": "4"}  # still running at the operator's first describe
    config["ProcessingOutputConfig"] = {
        "Outputs": [
            {
                "OutputName": "done",
                "S3Output": {
                    "S3Uri": f"s3://{bucket}/out/{deferred_name}",
                    "LocalPath": "/opt/ml/processing/output",
                    "S3UploadMode": "EndOfJob",
                },
            }
        ]
    }
    operator = SageMakerProcessingOperator(
        task_id="operator",
        config=config,
        deferrable=True,
        check_interval=1,
    )
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, SageMakerTrigger)

    async def first_event():
        async for event in trigger.run():
            return event.payload

    payload = asyncio.run(first_event())
    assert payload == {"status": "success", "job_name": deferred_name}
    done = operator.execute_complete({}, payload)
    assert done["Processing"]["ProcessingJobStatus"] == "Completed"
    body = s3.get_object(Bucket=bucket, Key=f"out/{deferred_name}/done.txt")["Body"].read()
    assert body == b"slept 4"
