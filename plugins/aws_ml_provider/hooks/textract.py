"""Amazon Textract hook: synchronous analysis, asynchronous jobs with deterministic client request
tokens, paginated result collection written to S3 as one JSON document.

The JSON written to S3 has the shape of the service's own response, with the paginated list
(``ExpenseDocuments`` or ``Blocks``) merged across all pages and ``NextToken`` removed, so the
provider's ``utils.expense_response`` and other Textract tooling (``trp``, ...) read it as is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

from ..utils import parse_s3_uri, stable_hash
from ..utils.s3 import write_json
from . import AwsMlHookMixin


@dataclass(frozen=True)
class TextractApi:
    """The operations and waiter of one kind of Textract analysis."""

    kind: str
    sync: str  # boto3 method for the synchronous call
    start: str  # boto3 method that starts the asynchronous job
    get: str  # boto3 method that reads the job (paginated with NextToken)
    waiter: str  # custom waiter in waiters/textract.json
    items: str  # the list paginated by the Get* operation
    model_version: str  # version key of the response


TEXTRACT_APIS: dict[str, TextractApi] = {
    "expense": TextractApi(
        "expense",
        "analyze_expense",
        "start_expense_analysis",
        "get_expense_analysis",
        "expense_analysis_complete",
        "ExpenseDocuments",
        "AnalyzeExpenseModelVersion",
    ),
    "document_analysis": TextractApi(
        "document_analysis",
        "analyze_document",
        "start_document_analysis",
        "get_document_analysis",
        "document_analysis_complete",
        "Blocks",
        "AnalyzeDocumentModelVersion",
    ),
    "text_detection": TextractApi(
        "text_detection",
        "detect_document_text",
        "start_document_text_detection",
        "get_document_text_detection",
        "text_detection_complete",
        "Blocks",
        "DetectDocumentTextModelVersion",
    ),
}

#: job states after which Get* returns results
SUCCEEDED_STATES = ("SUCCEEDED", "PARTIAL_SUCCESS")


def textract_api(kind: str) -> TextractApi:
    try:
        return TEXTRACT_APIS[kind]
    except KeyError:
        raise ValueError(
            f"unknown Textract analysis kind {kind!r}; use one of {sorted(TEXTRACT_APIS)}"
        ) from None


class TextractJobFailed(RuntimeError):
    """A Textract job ended FAILED (or is unknown); the message names the job and the reason."""


class TextractHook(AwsMlHookMixin, AwsBaseHook):
    """Interact with Amazon Textract (boto3 ``textract`` client).

    Custom waiters (``hook.get_waiter(name)``, from ``waiters/textract.json``):
    ``expense_analysis_complete``, ``document_analysis_complete``, ``text_detection_complete``
    (JobStatus SUCCEEDED / PARTIAL_SUCCESS -> success, FAILED -> failure, IN_PROGRESS -> retry).

    Additional arguments (such as ``aws_conn_id``) may be specified and are passed down to the
    underlying AwsBaseHook.
    """

    waiter_file = "textract"

    def __init__(self, *args, **kwargs) -> None:
        kwargs["client_type"] = "textract"
        super().__init__(*args, **kwargs)

    # ---- helpers ------------------------------------------------------------------------------
    @staticmethod
    def client_request_token(*parts: object) -> str:
        """A ClientRequestToken (``[a-zA-Z0-9-_]``, at most 64 chars) derived from the parts.

        Textract answers a Start* call that repeats a token with the JobId of the first call, so a
        token derived from the document and the run makes a retried task attach to its job.
        """
        return stable_hash(*parts, length=64)

    @staticmethod
    def document(s3_uri: str) -> dict[str, Any]:
        bucket, key = parse_s3_uri(s3_uri, what="document")
        return {"S3Object": {"Bucket": bucket, "Name": key}}

    # ---- synchronous ---------------------------------------------------------------------------
    def analyze(self, kind: str, document_uri: str, **kwargs: Any) -> dict[str, Any]:
        """The synchronous call (AnalyzeExpense, AnalyzeDocument, DetectDocumentText)."""
        api = textract_api(kind)
        response = getattr(self.conn, api.sync)(Document=self.document(document_uri), **kwargs)
        response.pop("ResponseMetadata", None)
        return response

    # ---- asynchronous jobs ---------------------------------------------------------------------
    def start_job(
        self,
        kind: str,
        document_uri: str,
        *,
        client_request_token: str | None = None,
        job_tag: str | None = None,
        **kwargs: Any,
    ) -> str:
        """Start an asynchronous job; return its JobId (the same one again for a repeated token)."""
        api = textract_api(kind)
        bucket, key = parse_s3_uri(document_uri, what="document")
        params: dict[str, Any] = {"DocumentLocation": {"S3Object": {"Bucket": bucket, "Name": key}}, **kwargs}
        if client_request_token:
            params["ClientRequestToken"] = client_request_token
        if job_tag:
            params["JobTag"] = job_tag
        job_id = getattr(self.conn, api.start)(**params)["JobId"]
        self.log.info(
            "Textract %s job %s for %s (token %s)", kind, job_id, document_uri, client_request_token
        )
        return job_id

    def get_job(self, kind: str, job_id: str, **kwargs: Any) -> dict[str, Any]:
        """One Get* call (``MaxResults=1`` is enough to read JobStatus and StatusMessage)."""
        response = getattr(self.conn, textract_api(kind).get)(JobId=job_id, **kwargs)
        response.pop("ResponseMetadata", None)
        return response

    def collect_job_results(self, kind: str, job_id: str, max_results: int = 1000) -> dict[str, Any]:
        """All pages of a finished job merged into one response-shaped dict.

        Raises :class:`TextractJobFailed` when the job is FAILED, and ``ValueError`` while it runs.
        """
        api = textract_api(kind)
        get = getattr(self.conn, api.get)
        merged: dict[str, Any] | None = None
        warnings: list[dict] = []
        seen_warnings: set[str] = set()
        next_token: str | None = None
        pages_read = 0
        while True:
            params: dict[str, Any] = {"JobId": job_id, "MaxResults": max_results}
            if next_token:
                params["NextToken"] = next_token
            response = get(**params)
            status = response.get("JobStatus")
            if status == "FAILED":
                raise TextractJobFailed(
                    f"Textract {kind} job {job_id} FAILED: {response.get('StatusMessage') or 'no reason given'}"
                )
            if status not in SUCCEEDED_STATES:
                raise ValueError(f"Textract {kind} job {job_id} is {status}, not finished")
            pages_read += 1
            for warning in response.get("Warnings") or []:
                key = json.dumps(warning, sort_keys=True)
                if key not in seen_warnings:
                    seen_warnings.add(key)
                    warnings.append(warning)
            if merged is None:
                merged = {k: v for k, v in response.items() if k not in ("ResponseMetadata", "NextToken")}
                merged[api.items] = list(response.get(api.items) or [])
            else:
                merged[api.items].extend(response.get(api.items) or [])
            next_token = response.get("NextToken")
            if not next_token:
                break
        assert merged is not None
        if warnings:
            merged["Warnings"] = warnings
        else:
            merged.pop("Warnings", None)
        self.log.info(
            "Textract %s job %s: %s, %d %s over %d result page(s)",
            kind,
            job_id,
            merged.get("JobStatus"),
            len(merged[api.items]),
            api.items,
            pages_read,
        )
        return merged

    # ---- S3 ------------------------------------------------------------------------------------
    def write_json(self, data: Any, s3_uri: str) -> str:
        """Write ``data`` as JSON to ``s3_uri``; return the URI."""
        write_json(self.s3_client, s3_uri, data, compact=True, what="output URI")
        self.log.info("Wrote Textract output to %s", s3_uri)
        return s3_uri

    def job_result_to_s3(self, kind: str, job_id: str, output_uri: str) -> dict[str, Any]:
        """Collect every page of a finished job, write it to ``output_uri``; return a summary
        ``{"result_uri", "job_id", "job_status", "pages", "warnings"}``."""
        result = self.collect_job_results(kind, job_id)
        self.write_json(result, output_uri)
        return {
            "result_uri": output_uri,
            "job_id": job_id,
            "job_status": result.get("JobStatus"),
            "pages": int((result.get("DocumentMetadata") or {}).get("Pages") or 0),
            "warnings": result.get("Warnings") or [],
        }
