"""Trigger for asynchronous Amazon Textract jobs (custom waiters in ``waiters/textract.json``)."""

from __future__ import annotations

from typing import Any

from ..hooks.textract import TextractHook, textract_api
from .base import AwsMlResourceStateTrigger


class TextractJobCompleteTrigger(AwsMlResourceStateTrigger):
    """Fire when a Textract job leaves IN_PROGRESS.

    SUCCEEDED and PARTIAL_SUCCESS yield ``{"status": "success", "job_id": ...}`` (the operator
    collects the results and logs the warnings of a partial success); FAILED or an unknown job
    yields ``{"status": "error", "message": ..., "job_id": ...}``.

    :param job_id: the JobId returned by the Start* call
    :param kind: ``expense`` | ``document_analysis`` | ``text_detection`` (picks the Get* operation)
    :param waiter_delay: seconds between attempts (default: 10)
    :param waiter_max_attempts: attempts before giving up (default: 360)
    :param kwargs: ``aws_conn_id``, ``region_name``, ``verify``, ``botocore_config`` (the
        connection, see ``AwsBaseWaiterTrigger``)
    """

    aws_hook_class = TextractHook

    def __init__(
        self, *, job_id: str, kind: str, waiter_delay: int = 10, waiter_max_attempts: int = 360, **kwargs: Any
    ) -> None:
        super().__init__(
            serialized_fields={"job_id": job_id, "kind": kind},
            waiter_name=textract_api(kind).waiter,
            # MaxResults=1: each poll reads the status, not a page of results
            waiter_args={"JobId": job_id, "MaxResults": 1},
            resource=f"Textract {kind} job {job_id}",
            failure="failed",
            status_queries=["JobStatus", "StatusMessage"],
            return_key="job_id",
            waiter_delay=waiter_delay,
            waiter_max_attempts=waiter_max_attempts,
            **kwargs,
        )
