"""Triggers for Amazon Rekognition Custom Labels: a model trained, running or stopped (botocore's
``project_version_training_completed`` and ``project_version_running``, this provider's
``project_version_stopped``), a dataset created (``dataset_created``). They poll in the triggerer,
holding no worker; transient errors (throttling, 5xx) are retried by ``AwsBaseWaiterTrigger``."""

from __future__ import annotations

from ..hooks.rekognition import RekognitionHook
from .base import AwsMlWaiterTrigger

_STATUS = ["ProjectVersionDescriptions[0].Status", "ProjectVersionDescriptions[0].StatusMessage"]


class _ProjectVersionTrigger(AwsMlWaiterTrigger):
    """A waiter over ``DescribeProjectVersions(ProjectArn, VersionNames=[version])``; the event's
    ``project_version_arn`` is the model's ARN."""

    aws_hook_class = RekognitionHook
    waiter: str = ""
    what: str = ""

    def __init__(
        self,
        *,
        project_arn: str,
        project_version_arn: str,
        version_name: str,
        waiter_delay: int = 30,
        waiter_max_attempts: int = 240,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict | None = None,
    ) -> None:
        super().__init__(
            serialized_fields={
                "project_arn": project_arn,
                "project_version_arn": project_version_arn,
                "version_name": version_name,
            },
            waiter_name=self.waiter,
            waiter_args={"ProjectArn": project_arn, "VersionNames": [version_name]},
            failure_message=f"Rekognition model {project_version_arn} {self.what}",
            status_message=f"Status of Rekognition model {project_version_arn} is",
            status_queries=_STATUS,
            return_key="project_version_arn",
            return_value=project_version_arn,
            waiter_delay=waiter_delay,
            waiter_max_attempts=waiter_max_attempts,
            aws_conn_id=aws_conn_id,
            region_name=region_name,
            verify=verify,
            botocore_config=botocore_config,
        )


class RekognitionProjectVersionTrainedTrigger(_ProjectVersionTrigger):
    """Fire when the model is TRAINING_COMPLETED (error event when TRAINING_FAILED)."""

    waiter = "project_version_training_completed"
    what = "did not finish training"


class RekognitionProjectVersionRunningTrigger(_ProjectVersionTrigger):
    """Fire when the model is RUNNING (error event when FAILED)."""

    waiter = "project_version_running"
    what = "did not start"


class RekognitionProjectVersionStoppedTrigger(_ProjectVersionTrigger):
    """Fire when the model is STOPPED (error event when FAILED)."""

    waiter = "project_version_stopped"
    what = "did not stop"


class RekognitionDatasetCreatedTrigger(AwsMlWaiterTrigger):
    """Fire when a Custom Labels dataset is CREATE_COMPLETE (error event when CREATE_FAILED)."""

    aws_hook_class = RekognitionHook

    def __init__(
        self,
        *,
        dataset_arn: str,
        waiter_delay: int = 10,
        waiter_max_attempts: int = 180,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict | None = None,
    ) -> None:
        super().__init__(
            serialized_fields={"dataset_arn": dataset_arn},
            waiter_name="dataset_created",
            waiter_args={"DatasetArn": dataset_arn},
            failure_message=f"Rekognition dataset {dataset_arn} was not created",
            status_message=f"Status of Rekognition dataset {dataset_arn} is",
            status_queries=["DatasetDescription.Status", "DatasetDescription.StatusMessage"],
            return_key="dataset_arn",
            return_value=dataset_arn,
            waiter_delay=waiter_delay,
            waiter_max_attempts=waiter_max_attempts,
            aws_conn_id=aws_conn_id,
            region_name=region_name,
            verify=verify,
            botocore_config=botocore_config,
        )
