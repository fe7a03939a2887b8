"""SageMakerProcessingAttachOperator against the twin: a retried task finds the job its first try
started (by its deterministic name) instead of starting a second one; a job that failed fails the
retry without a new job, naming the job and SageMaker's reason."""

from __future__ import annotations

import uuid

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException
from aws_ml_provider.operators.sagemaker_processing import SageMakerProcessingAttachOperator
from aws_ml_provider.utils.sagemaker_images import sklearn_image_uri

ROLE = "arn:aws:iam::123456789012:role/sagemaker-execution"

GOOD = """
import os, sys
os.makedirs("/opt/ml/processing/output", exist_ok=True)
with open("/opt/ml/processing/output/answer.txt", "w") as fh:
    fh.write(sys.argv[1])
"""
BAD = "raise ValueError('the baseline has no numeric feature')\n"


def config(bucket: str, name: str) -> dict:
    return {
        "ProcessingJobName": name,
        "RoleArn": ROLE,
        "AppSpecification": {
            "ImageUri": sklearn_image_uri("us-east-1"),
            "ContainerEntrypoint": ["python3", f"/opt/ml/processing/input/code/{name}.py"],
            "ContainerArguments": [name],
        },
        "ProcessingInputs": [
            {
                "InputName": "code",
                "S3Input": {
                    "S3Uri": f"s3://{bucket}/code/{name}.py",
                    "LocalPath": "/opt/ml/processing/input/code",
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                },
            }
        ],
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": "out",
                    "S3Output": {
                        "S3Uri": f"s3://{bucket}/out/{name}",
                        "LocalPath": "/opt/ml/processing/output",
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ]
        },
        "ProcessingResources": {
            "ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 5}
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 300},
    }


def operator(bucket: str, name: str) -> SageMakerProcessingAttachOperator:
    return SageMakerProcessingAttachOperator(
        task_id="analyse", config=config(bucket, name), deferrable=False, check_interval=1, do_xcom_push=False
    )


def jobs_named(sm, name: str) -> list[str]:
    return [
        j["ProcessingJobName"] for j in sm.list_processing_jobs(NameContains=name)["ProcessingJobSummaries"]
    ]


def upload(s3, bucket: str, name: str, code: str) -> None:
    s3.put_object(Bucket=bucket, Key=f"code/{name}.py", Body=code.encode())


def test_a_retry_attaches_to_the_completed_job(airflow_aws_conn, s3, sm, bucket, task_context):
    name = f"drift-attach-{uuid.uuid4().hex[:8]}"
    upload(s3, bucket, name, GOOD)
    first = operator(bucket, name).execute(task_context(task_id="analyse"))
    assert first["Processing"]["ProcessingJobStatus"] == "Completed"
    body = s3.get_object(Bucket=bucket, Key=f"out/{name}/answer.txt")["Body"].read().decode()
    assert body == name
    again = operator(bucket, name).execute(task_context(task_id="analyse", try_number=2))
    assert again["Processing"]["ProcessingJobArn"] == first["Processing"]["ProcessingJobArn"]
    assert jobs_named(sm, name) == [name]


def test_a_retry_of_a_failed_job_fails_with_its_reason_and_starts_nothing(
    airflow_aws_conn, s3, sm, bucket, task_context
):
    name = f"drift-attach-{uuid.uuid4().hex[:8]}"
    upload(s3, bucket, name, BAD)
    with pytest.raises(Exception, match="the baseline has no numeric feature"):
        operator(bucket, name).execute(task_context(task_id="analyse"))
    with pytest.raises(
        AirflowFailException, match=rf"{name} ended Failed: .*the baseline has no numeric feature"
    ):
        operator(bucket, name).execute(task_context(task_id="analyse", try_number=2))
    assert jobs_named(sm, name) == [name]
