"""Trigger for asynchronous Amazon Textract jobs (custom waiters in ``waiters/textract.json``)."""

from __future__ import annotations

from ..hooks.textract import TextractHook, textract_api
from .base import AwsMlWaiterTrigger


class TextractJobCompleteTrigger(AwsMlWaiterTrigger):
    """Fire when a Textract job leaves IN_PROGRESS.

    SUCCEEDED and PARTIAL_SUCCESS yield ``{"status": "success", "job_id": ...}`` (the operator
    collects the results and logs the warnings of a partial success); FAILED or an unknown job
    yields ``{"status": "error", "message": ..., "job_id": ...}``.

    :param job_id: the JobId returned by the Start* call
    :param kind: ``expense`` | ``document_analysis`` | ``text_detection`` (picks the Get* operation)
    :param waiter_delay: seconds between attempts (default: 10)
    :param waiter_max_attempts: attempts before giving up (default: 360)
    :param aws_conn_id: the Airflow connection used for AWS credentials
    :param region_name: the AWS region of the job
    :param verify: whether to verify SSL certificates
    :param botocore_config: configuration dictionary (key-values) for the botocore client
    """

    aws_hook_class = TextractHook

    def __init__(
        self,
        *,
        job_id: str,
        kind: str,
        waiter_delay: int = 10,
        waiter_max_attempts: int = 360,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict | None = None,
    ) -> None:
        api = textract_api(kind)
        super().__init__(
            serialized_fields={"job_id": job_id, "kind": kind},
            waiter_name=api.waiter,
            # MaxResults=1: each poll reads the status, not a page of results
            waiter_args={"JobId": job_id, "MaxResults": 1},
            failure_message=f"Textract {kind} job {job_id} failed",
            status_message=f"Status of Textract {kind} job {job_id} is",
            status_queries=["JobStatus", "StatusMessage"],
            return_key="job_id",
            return_value=job_id,
            waiter_delay=waiter_delay,
            waiter_max_attempts=waiter_max_attempts,
            aws_conn_id=aws_conn_id,
            region_name=region_name,
            verify=verify,
            botocore_config=botocore_config,
        )
