"""SageMaker training that a retried task re-attaches to instead of starting a second job.

The Amazon provider's :class:`SageMakerTrainingOperator` either fails when the job name exists
(``action_if_job_exists="fail"``) or starts another job under a timestamped name. With a job name
that is deterministic for the DAG run (e.g. ``churn-xgb-<hash of the run id>``), a retry must find
the job its first attempt started and wait for that one. This subclass adds exactly that:

- no job with the name: create it, as the provider does (deferrable wait included);
- the job exists and is ``InProgress``/``Stopping``: defer on the provider's ``SageMakerTrigger``
  for it (no worker slot held while it runs);
- it is ``Completed``: return its description, as the provider does after a wait;
- it is ``Failed``/``Stopped``: fail without retries, naming the job and SageMaker's reason
  (the name belongs to this run; a new attempt needs a new run).

CreateTrainingJob is sent once (no botocore retry): when its answer is lost (a connection error, a
5xx), the job is looked up by its name, and attached to when the create did happen, instead of a
retried create failing on "job names must be unique" (and costing the task a try).
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.operators.sagemaker import SageMakerTrainingOperator, serialize
from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger
from airflow.providers.common.compat.sdk import AirflowFailException
from botocore.exceptions import ClientError

from ..utils.errors import error_code, error_message
from ..utils.idempotent import is_transient_failure, single_attempt
from . import trigger_connection

if TYPE_CHECKING:
    from airflow.sdk import Context

#: SageMaker training job names: 1-63 characters, letters, digits and hyphens
MAX_JOB_NAME = 63


def is_not_found(error: ClientError) -> bool:
    """SageMaker answers Describe* for an unknown name with ValidationException ("Requested resource not
    found.", "Could not find endpoint ...", "... does not exist.")."""
    message = error_message(error).lower()
    return error_code(error) in ("ValidationException", "ResourceNotFound") and any(
        words in message for words in ("not found", "could not find", "does not exist")
    )


class SageMakerTrainingAttachOperator(SageMakerTrainingOperator):
    """:class:`SageMakerTrainingOperator` that attaches to an existing job of the same name.

    Takes the provider operator's arguments; ``check_if_job_exists``/``action_if_job_exists`` are
    replaced by the attach behaviour (the job name is used as given, never renamed).
    """

    def __init__(self, **kwargs: Any):
        kwargs["check_if_job_exists"] = False
        super().__init__(**kwargs)

    def describe_existing(self, name: str) -> dict | None:
        try:
            return self.hook.describe_training_job(name)
        except ClientError as error:
            if is_not_found(error):
                return None
            raise

    def execute(self, context: Context) -> dict:
        name = self.config["TrainingJobName"]
        if len(name) > MAX_JOB_NAME:
            raise AirflowFailException(f"training job name {name!r} is longer than {MAX_JOB_NAME} characters")
        existing = self.describe_existing(name)
        if existing is None:
            self.log.info("No training job %s yet: creating it.", name)
            try:
                with single_attempt(self.hook, "create_training_job"):
                    return super().execute(context)
            except Exception as exc:
                if not is_transient_failure(exc):
                    raise
                existing = self.describe_existing(name)
                if existing is None:
                    raise
                self.log.warning(
                    "No answer to CreateTrainingJob %s (%s), but the job exists: attaching to it.", name, exc
                )
        status = existing["TrainingJobStatus"]
        self.log.info("Training job %s already exists (status %s): attaching to it.", name, status)
        if status == "Completed":
            self.serialized_training_data = serialize(existing)
            return {"Training": self.serialized_training_data}
        if status in self.hook.training_failed_states:
            reason = existing.get("FailureReason", "(no reason given)")
            raise AirflowFailException(
                f"training job {name} of this run ended {status}: {reason}. Its name is deterministic for "
                "the run, so it is not started again; trigger a new run."
            )
        if not self.wait_for_completion:
            return {"Training": serialize(existing)}
        if self.deferrable:
            timeout = self.execution_timeout
            if self.max_ingestion_time:
                timeout = datetime.timedelta(seconds=self.max_ingestion_time)
            self.defer(
                timeout=timeout,
                trigger=SageMakerTrigger(
                    job_name=name,
                    job_type="Training",
                    waiter_delay=self.check_interval,
                    waiter_max_attempts=self.max_attempts,
                    **trigger_connection(self),
                ),
                method_name="execute_complete",
            )
        self.hook.check_training_status_with_log(
            name,
            self.hook.non_terminal_states,
            self.hook.training_failed_states,
            wait_for_completion=True,
            check_interval=self.check_interval,
            max_ingestion_time=self.max_ingestion_time,
        )
        return self.serialize_result(name)
