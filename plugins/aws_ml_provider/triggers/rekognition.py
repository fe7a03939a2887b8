"""Triggers for Amazon Rekognition Custom Labels: a model trained, running or stopped (botocore's
``project_version_training_completed`` and ``project_version_running``, this provider's
``project_version_stopped``), a dataset created (``dataset_created``). They poll in the triggerer,
holding no worker; transient errors (throttling, 5xx, connection) are polled again (see ``base``).

Each takes ``waiter_delay``, ``waiter_max_attempts`` and the connection arguments (``aws_conn_id``,
``region_name``, ``verify``, ``botocore_config``) besides what names the resource."""

from __future__ import annotations

from typing import Any

from ..hooks.rekognition import RekognitionHook
from .base import AwsMlResourceStateTrigger

_STATUS = ["ProjectVersionDescriptions[0].Status", "ProjectVersionDescriptions[0].StatusMessage"]


class _ProjectVersionTrigger(AwsMlResourceStateTrigger):
    """A waiter over ``DescribeProjectVersions(ProjectArn, VersionNames=[version])``; the event's
    ``project_version_arn`` is the model's ARN."""

    aws_hook_class = RekognitionHook
    waiter: str = ""
    failure: str = ""

    def __init__(
        self,
        *,
        project_arn: str,
        project_version_arn: str,
        version_name: str,
        waiter_delay: int = 30,
        waiter_max_attempts: int = 240,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            serialized_fields={
                "project_arn": project_arn,
                "project_version_arn": project_version_arn,
                "version_name": version_name,
            },
            waiter_name=self.waiter,
            waiter_args={"ProjectArn": project_arn, "VersionNames": [version_name]},
            resource=f"Rekognition model {project_version_arn}",
            failure=self.failure,
            status_queries=_STATUS,
            return_key="project_version_arn",
            waiter_delay=waiter_delay,
            waiter_max_attempts=waiter_max_attempts,
            **kwargs,
        )


class RekognitionProjectVersionTrainedTrigger(_ProjectVersionTrigger):
    """Fire when the model is TRAINING_COMPLETED (error event when TRAINING_FAILED)."""

    waiter = "project_version_training_completed"
    failure = "did not finish training"


class RekognitionProjectVersionRunningTrigger(_ProjectVersionTrigger):
    """Fire when the model is RUNNING (error event when FAILED)."""

    waiter = "project_version_running"
    failure = "did not start"


class RekognitionProjectVersionStoppedTrigger(_ProjectVersionTrigger):
    """Fire when the model is STOPPED (error event when FAILED)."""

    waiter = "project_version_stopped"
    failure = "did not stop"


class RekognitionDatasetCreatedTrigger(AwsMlResourceStateTrigger):
    """Fire when a Custom Labels dataset is CREATE_COMPLETE (error event when CREATE_FAILED)."""

    aws_hook_class = RekognitionHook

    def __init__(
        self, *, dataset_arn: str, waiter_delay: int = 10, waiter_max_attempts: int = 180, **kwargs: Any
    ) -> None:
        super().__init__(
            serialized_fields={"dataset_arn": dataset_arn},
            waiter_name="dataset_created",
            waiter_args={"DatasetArn": dataset_arn},
            resource=f"Rekognition dataset {dataset_arn}",
            failure="was not created",
            status_queries=["DatasetDescription.Status", "DatasetDescription.StatusMessage"],
            return_key="dataset_arn",
            waiter_delay=waiter_delay,
            waiter_max_attempts=waiter_max_attempts,
            **kwargs,
        )
