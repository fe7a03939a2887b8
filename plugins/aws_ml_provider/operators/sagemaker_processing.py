"""SageMaker Processing that a retried task re-attaches to instead of starting a second job.

The Amazon provider's :class:`SageMakerProcessingOperator` either fails when the job name exists
(``action_if_job_exists="fail"``) or starts another job under a timestamped name. With a job name that
is deterministic for what it computes (e.g. ``drift-<endpoint>-<hour>-<hash>``), a retry must find the
job its first attempt started. This subclass adds exactly that, like
:class:`~aws_ml_provider.operators.sagemaker_training.SageMakerTrainingAttachOperator`:

- no job with the name: create it, as the provider does (deferrable wait included);
- ``InProgress``/``Stopping``: defer on the provider's ``SageMakerTrigger`` for it;
- ``Completed``: return its description, as the provider does after a wait;
- ``Failed``/``Stopped``: fail without retries, naming the job and SageMaker's reason.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.operators.sagemaker import SageMakerProcessingOperator, serialize
from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger
from airflow.providers.common.compat.sdk import AirflowFailException
from botocore.exceptions import ClientError

from . import trigger_connection
from .sagemaker_training import MAX_JOB_NAME, is_not_found

if TYPE_CHECKING:
    from airflow.sdk import Context


class SageMakerProcessingAttachOperator(SageMakerProcessingOperator):
    """:class:`SageMakerProcessingOperator` that attaches to an existing job of the same name."""

    def __init__(self, **kwargs: Any):
        kwargs["action_if_job_exists"] = "fail"
        super().__init__(**kwargs)

    def describe_existing(self, name: str) -> dict | None:
        try:
            return self.hook.describe_processing_job(name)
        except ClientError as error:
            if is_not_found(error):
                return None
            raise

    def execute(self, context: Context) -> dict:
        name = self.config["ProcessingJobName"]
        if len(name) > MAX_JOB_NAME:
            raise AirflowFailException(
                f"processing job name {name!r} is longer than {MAX_JOB_NAME} characters"
            )
        existing = self.describe_existing(name)
        if existing is None:
            self.log.info("No processing job %s yet: creating it.", name)
            return super().execute(context)
        status = existing["ProcessingJobStatus"]
        self.log.info("Processing job %s already exists (status %s): attaching to it.", name, status)
        if status == "Completed":
            self.serialized_job = serialize(existing)
            return {"Processing": self.serialized_job}
        if status in self.hook.processing_job_failed_states:
            reason = existing.get("FailureReason", "(no reason given)")
            raise AirflowFailException(
                f"processing job {name} ended {status}: {reason}. Its name is deterministic, so it is not "
                "started again; fix the cause and clear the task with a change that renames the job."
            )
        if not self.wait_for_completion:
            return {"Processing": serialize(existing)}
        if self.deferrable:
            timeout = self.execution_timeout
            if self.max_ingestion_time:
                timeout = datetime.timedelta(seconds=self.max_ingestion_time)
            self.defer(
                timeout=timeout,
                trigger=SageMakerTrigger(
                    job_name=name,
                    job_type="Processing",
                    waiter_delay=self.check_interval,
                    waiter_max_attempts=self.max_attempts,
                    **trigger_connection(self),
                ),
                method_name="execute_complete",
            )
        self.hook.check_status(
            name,
            "ProcessingJobStatus",
            self.hook.describe_processing_job,
            self.check_interval,
            self.max_ingestion_time,
        )
        self.serialized_job = serialize(self.hook.describe_processing_job(name))
        return {"Processing": self.serialized_job}
