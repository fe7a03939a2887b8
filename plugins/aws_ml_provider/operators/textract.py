"""Amazon Textract operators: expense analysis, document analysis and text detection.

Each one analyses one document (``s3://bucket/key``), synchronously (a single image) or as an
asynchronous job (PDF, multi-page TIFF), writes the full result as one JSON document to S3 (the
service's response shape, every page merged; see ``hooks.textract``) and returns only a small
dict for XCom::

    {"document": "s3://in/receipts/001.jpg", "result_uri": "s3://out/.../001.jpg.json",
     "job_id": "..." or None (synchronous), "pages": 1}

Output location (``output_s3_uri``): a URI ending in ``.json`` is the result key itself; any other
URI is a prefix, under which the result goes to ``<prefix>/<document key>.json``; when unset,
``s3://<document bucket>/textract-output/<kind>/<document key>.json``.

Asynchronous jobs are idempotent under retries: the ClientRequestToken is a hash of the kind of
analysis, the document, the analysis arguments and the run (DAG id, run id, task id), and Textract
answers a repeated token with the JobId it started first, so a retried task attaches to its job.
On a retry (try_number > 1) whose attached job had FAILED, a new job is started with a token that
also covers the try number. Waiting is deferrable (``TextractJobCompleteTrigger``) or, when not
deferred, done by the custom waiter through ``waiter_with_logging.wait`` (no sleep loop).
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils import validate_execute_complete_event
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.amazon.aws.utils.waiter_with_logging import wait
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, conf
from botocore.exceptions import ClientError

from ..hooks.textract import TextractHook, textract_api
from ..links import persist_link
from ..links.textract import TextractConsoleLink, TextractResultLink
from ..triggers.textract import TextractJobCompleteTrigger
from ..utils import parse_s3_uri
from ..utils.errors import error_code, error_message
from . import run_identity, trigger_connection, try_number

if TYPE_CHECKING:
    from airflow.sdk import Context

#: extensions analysed as asynchronous jobs in mode "auto" (multi-page formats)
ASYNC_EXTENSIONS = (".pdf", ".tif", ".tiff")
MODES = ("auto", "sync", "async")
#: errors that say the document itself cannot be analysed: retrying would not help
BAD_DOCUMENT_ERRORS = (
    "BadDocumentException",
    "UnsupportedDocumentException",
    "DocumentTooLargeException",
    "InvalidS3ObjectException",
    "InvalidParameterException",
)


class TextractBaseOperator(AwsBaseOperator[TextractHook]):
    """Analyse one document with Amazon Textract (base class; use a subclass).

    :param document: the document, ``s3://bucket/key`` (templated)
    :param output_s3_uri: where the JSON result goes: a ``.json`` key or a prefix (templated;
        see the module doc for the default)
    :param mode: ``auto`` (asynchronous for .pdf/.tif/.tiff, synchronous otherwise), ``sync`` or
        ``async`` (templated)
    :param client_request_token: override the derived ClientRequestToken (templated)
    :param job_tag: JobTag of asynchronous jobs (templated)
    :param waiter_delay: seconds between job status checks (default: 10)
    :param waiter_max_attempts: status checks before giving up (default: 360)
    :param deferrable: wait for asynchronous jobs in the triggerer
        (default: ``[operators] default_deferrable``)
    :param aws_conn_id: the Airflow connection used for AWS credentials
    :param region_name: AWS region name
    :param verify: whether to verify SSL certificates
    :param botocore_config: configuration dictionary (key-values) for the botocore client
    """

    aws_hook_class = TextractHook
    kind: ClassVar[str]
    template_fields: Sequence[str] = aws_template_fields(
        "document", "output_s3_uri", "mode", "client_request_token", "job_tag"
    )
    operator_extra_links = (TextractConsoleLink(), TextractResultLink())
    ui_color = "#d1e8ff"

    def __init__(
        self,
        *,
        document: str,
        output_s3_uri: str | None = None,
        mode: str = "auto",
        client_request_token: str | None = None,
        job_tag: str | None = None,
        waiter_delay: int = 10,
        waiter_max_attempts: int = 360,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.document = document
        self.output_s3_uri = output_s3_uri
        self.mode = mode
        self.client_request_token = client_request_token
        self.job_tag = job_tag
        self.waiter_delay = waiter_delay
        self.waiter_max_attempts = waiter_max_attempts
        self.deferrable = deferrable

    # ---- what subclasses vary -------------------------------------------------------------------
    def api_kwargs(self) -> dict[str, Any]:
        """Arguments of both the synchronous call and the Start* call (besides the document)."""
        return {}

    # ---- resolution -----------------------------------------------------------------------------
    def resolve_mode(self) -> str:
        if self.mode not in MODES:
            raise AirflowFailException(f"{self.task_id}: mode must be one of {MODES}, got {self.mode!r}")
        if self.mode != "auto":
            return self.mode
        _, key = parse_s3_uri(self.document, what="document")
        return "async" if posixpath.splitext(key)[1].lower() in ASYNC_EXTENSIONS else "sync"

    def resolve_output_uri(self) -> str:
        bucket, key = parse_s3_uri(self.document, what="document")
        if not self.output_s3_uri:
            return f"s3://{bucket}/textract-output/{self.kind}/{key}.json"
        if self.output_s3_uri.endswith(".json"):
            parse_s3_uri(self.output_s3_uri, what="output_s3_uri")
            return self.output_s3_uri
        if not self.output_s3_uri.startswith("s3://") or len(self.output_s3_uri) <= len("s3://"):
            raise AirflowFailException(f"output_s3_uri {self.output_s3_uri!r} is not an s3:// URI")
        return f"{self.output_s3_uri.rstrip('/')}/{key}.json"

    def _summary(self, result_uri: str, job_id: str | None, pages: int) -> dict[str, Any]:
        return {"document": self.document, "result_uri": result_uri, "job_id": job_id, "pages": pages}

    def _bad_document(self, err: ClientError, action: str) -> Exception:
        code = error_code(err) or ""
        text = f"Textract {action} of {self.document} failed: {code}: {error_message(err)}"
        if code in BAD_DOCUMENT_ERRORS:
            return AirflowFailException(text)  # the document itself: a retry would not help
        return AirflowException(text)

    # ---- execution ------------------------------------------------------------------------------
    def execute(self, context: Context) -> dict[str, Any]:
        mode = self.resolve_mode()
        output_uri = self.resolve_output_uri()
        persist_link(TextractConsoleLink, context, self)
        if mode == "sync":
            return self._execute_sync(context, output_uri)

        job_id = self._start_job(context)
        if self.deferrable:
            self.log.info("Deferring until Textract %s job %s completes", self.kind, job_id)
            self.defer(
                trigger=TextractJobCompleteTrigger(
                    job_id=job_id,
                    kind=self.kind,
                    waiter_delay=self.waiter_delay,
                    waiter_max_attempts=self.waiter_max_attempts,
                    **trigger_connection(self),
                ),
                method_name="execute_complete",
            )
        api = textract_api(self.kind)
        try:
            wait(
                waiter=self.hook.get_waiter(api.waiter),
                waiter_delay=self.waiter_delay,
                waiter_max_attempts=self.waiter_max_attempts,
                args={"JobId": job_id, "MaxResults": 1},
                failure_message=f"Textract {self.kind} job {job_id} failed",
                status_message=f"Status of Textract {self.kind} job {job_id} is",
                status_args=["JobStatus", "StatusMessage"],
            )
        except AirflowException as err:
            raise AirflowException(self._failure_message(job_id, str(err))) from err
        return self._complete(context, job_id, output_uri)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        event = validate_execute_complete_event(event)
        job_id = event.get("job_id")
        if event.get("status") != "success":
            raise AirflowException(self._failure_message(job_id, event.get("message")))
        return self._complete(context, job_id, self.resolve_output_uri())

    def _execute_sync(self, context: Context, output_uri: str) -> dict[str, Any]:
        api = textract_api(self.kind)
        try:
            result = self.hook.analyze(self.kind, self.document, **self.api_kwargs())
        except ClientError as err:
            raise self._bad_document(err, api.sync) from err
        self.hook.write_json(result, output_uri)
        pages = int((result.get("DocumentMetadata") or {}).get("Pages") or 0)
        self._persist_result(context, output_uri)
        self.log.info(
            "Textract %s of %s (%d page(s)) written to %s", api.sync, self.document, pages, output_uri
        )
        return self._summary(output_uri, None, pages)

    def _token(self, context: Context) -> str:
        if self.client_request_token:
            return self.client_request_token
        dag_id, run_id, task_id = run_identity(context, self)
        args = json.dumps(self.api_kwargs(), sort_keys=True, default=str)
        return TextractHook.client_request_token(self.kind, self.document, args, dag_id, run_id, task_id)

    def _start_job(self, context: Context) -> str:
        api = textract_api(self.kind)
        token = self._token(context)
        try:
            job_id = self.hook.start_job(
                self.kind,
                self.document,
                client_request_token=token,
                job_tag=self.job_tag,
                **self.api_kwargs(),
            )
            tries = try_number(context)
            if tries > 1:
                status = self.hook.get_job(self.kind, job_id, MaxResults=1).get("JobStatus")
                if status == "FAILED":
                    self.log.warning(
                        "Textract job %s of an earlier try FAILED: starting a new one (try %d)", job_id, tries
                    )
                    job_id = self.hook.start_job(
                        self.kind,
                        self.document,
                        client_request_token=TextractHook.client_request_token(token, "try", tries),
                        job_tag=self.job_tag,
                        **self.api_kwargs(),
                    )
                else:
                    self.log.info("Attached to Textract job %s of an earlier try (%s)", job_id, status)
        except ClientError as err:
            raise self._bad_document(err, api.start) from err
        return job_id

    def _failure_message(self, job_id: str | None, detail: str | None) -> str:
        reason = None
        if job_id:
            try:
                job = self.hook.get_job(self.kind, job_id, MaxResults=1)
                reason = f"{job.get('JobStatus')}: {job.get('StatusMessage') or 'no status message'}"
            except Exception as exc:  # the message must still come out
                reason = f"status unavailable ({exc})"
        return f"Textract {self.kind} job {job_id} for {self.document} failed: {reason} ({detail})"

    def _complete(self, context: Context, job_id: str, output_uri: str) -> dict[str, Any]:
        summary = self.hook.job_result_to_s3(self.kind, job_id, output_uri)
        if summary["job_status"] == "PARTIAL_SUCCESS":
            self.log.warning(
                "Textract %s job %s for %s ended PARTIAL_SUCCESS; warnings: %s",
                self.kind,
                job_id,
                self.document,
                summary["warnings"],
            )
        self._persist_result(context, output_uri)
        return self._summary(output_uri, job_id, summary["pages"])

    def _persist_result(self, context: Context, output_uri: str) -> None:
        bucket, key = parse_s3_uri(output_uri)
        persist_link(TextractResultLink, context, self, bucket=bucket, key=key)


class TextractAnalyzeExpenseOperator(TextractBaseOperator):
    """Analyse an invoice or receipt: AnalyzeExpense for a single image, StartExpenseAnalysis /
    GetExpenseAnalysis for PDFs and multi-page TIFFs (see :class:`TextractBaseOperator`)."""

    kind = "expense"


class TextractDetectDocumentTextOperator(TextractBaseOperator):
    """Detect text: DetectDocumentText, or StartDocumentTextDetection /
    GetDocumentTextDetection (see :class:`TextractBaseOperator`)."""

    kind = "text_detection"


class TextractAnalyzeDocumentOperator(TextractBaseOperator):
    """Analyse forms, tables and queries: AnalyzeDocument, or StartDocumentAnalysis /
    GetDocumentAnalysis (see :class:`TextractBaseOperator`).

    :param feature_types: any of ``FORMS``, ``TABLES``, ``QUERIES``, ``SIGNATURES``, ``LAYOUT``
        (templated)
    :param queries: questions to ask (adds ``QUERIES``); a list of texts or of Textract ``Query``
        dicts (``{"Text", "Alias", "Pages"}``) (templated)
    :param queries_config: a full Textract ``QueriesConfig`` instead of ``queries`` (templated)
    """

    kind = "document_analysis"
    template_fields: Sequence[str] = (
        *TextractBaseOperator.template_fields,
        "feature_types",
        "queries",
        "queries_config",
    )
    template_fields_renderers: ClassVar[dict] = {"queries_config": "json"}

    def __init__(
        self,
        *,
        feature_types: Sequence[str] = ("FORMS", "TABLES"),
        queries: Sequence[str | dict] | None = None,
        queries_config: dict | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.feature_types = list(feature_types)
        self.queries = list(queries) if queries else None
        self.queries_config = queries_config

    def api_kwargs(self) -> dict[str, Any]:
        features = [str(f).upper() for f in self.feature_types]
        config = self.queries_config
        if config is None and self.queries:
            config = {"Queries": [q if isinstance(q, dict) else {"Text": str(q)} for q in self.queries]}
        if config and "QUERIES" not in features:
            features.append("QUERIES")
        if "QUERIES" in features and not config:
            raise AirflowFailException(
                f"{self.task_id}: feature type QUERIES needs queries or queries_config"
            )
        if not features:
            raise AirflowFailException(f"{self.task_id}: feature_types is empty")
        kwargs: dict[str, Any] = {"FeatureTypes": features}
        if config:
            kwargs["QueriesConfig"] = config
        return kwargs
