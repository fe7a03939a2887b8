"""The batch extraction step of the ``expense_documents`` DAG: Textract AnalyzeExpense for a batch
of documents, with cheap checks and quarantine before the calls, a shared TPS budget, and
deferral while asynchronous jobs run.

Imports nothing heavy at module level (the hooks, botocore and the trigger load inside methods).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import BaseOperator

from ..utils import s3 as s3_utils
from ..utils.expense_state import quarantine, run_prefix


class ExpenseBatchExtractOperator(BaseOperator):
    """AnalyzeExpense for one batch of documents (a manifest in S3).

    Per document: skip when this run already has its machine result (a retried task); check it
    cheaply and quarantine a bad one; single images go to ``AnalyzeExpense``, PDFs and multi-page
    TIFFs to ``StartExpenseAnalysis`` (ClientRequestToken from the document and the run, so a
    retry attaches to its job). While jobs run, the task defers (``TextractJobCompleteTrigger``)
    and picks up every finished job when it resumes. Textract calls share the budget
    ``textract_tps / tps_slots`` (token bucket) and retry throttling with backoff
    (``textract_retry_mode``).

    :param batch: ``{"batch", "manifest_uri", "documents"}`` from ``list_documents`` (templated)
    :param config: the run's resolved locations and ARNs (``resolve_config``; templated)
    :param aws_conn_id: the AWS connection (Textract and S3)
    :param tps_slots: batch tasks that may call Textract at once (the DAG's
        ``max_active_tis_per_dag``); each gets ``textract_tps / tps_slots``
    :param waiter_delay: seconds between checks of the running Textract jobs while deferred
    :param job_timeout: how long the task waits for its Textract jobs

    Returns ``{"batch", "manifest_uri", "extracted", "quarantined", "needs_review"}``.
    """

    template_fields = ("batch", "config")
    ui_color = "#d1e8ff"

    def __init__(
        self,
        *,
        batch: dict | Any,
        config: dict | Any,
        aws_conn_id: str = "aws_default",
        tps_slots: int = 4,
        waiter_delay: int = 10,
        job_timeout: timedelta = timedelta(hours=2),
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.batch = batch
        self.config = config
        self.aws_conn_id = aws_conn_id
        self.tps_slots = tps_slots
        self.waiter_delay = waiter_delay
        self.job_timeout = job_timeout

    # ---- clients ------------------------------------------------------------------------------
    def _params(self, context) -> dict:
        return {**context["params"], **self.config}

    def _hook(self, params: dict):
        from botocore.config import Config

        from ..hooks.textract import TextractHook
        from ..utils.expense import textract_retry_config

        retries = textract_retry_config(mode=params["textract_retry_mode"])
        return TextractHook(aws_conn_id=self.aws_conn_id, config=Config(**retries))

    def _bucket(self, params: dict):
        from ..utils.expense import TokenBucket, per_task_tps

        rate = per_task_tps(float(params["textract_tps"]), self.tps_slots)
        return TokenBucket(rate, burst=max(1.0, rate))

    # ---- execution ----------------------------------------------------------------------------
    def execute(self, context):
        params, run_id = self._params(context), context["run_id"]
        s3 = s3_utils.client(self.aws_conn_id)
        manifest = s3_utils.read_json(s3, self.batch["manifest_uri"])
        hook, bucket = self._hook(params), self._bucket(params)
        state = self._load_state(s3, params, run_id)
        running = {item["document_id"] for item in state["pending"]}
        for doc in manifest["documents"]:
            if doc["document_id"] in state["done"] or doc["document_id"] in running:
                continue
            try:
                outcome = self._extract_one(s3, hook, bucket, params, run_id, doc)
            except Exception as exc:
                outcome = self._failed(s3, params, run_id, doc, exc)
            if outcome.get("job_id"):
                state["pending"].append({"document_id": doc["document_id"], "job_id": outcome["job_id"]})
            else:
                self._record(state, doc, outcome)
            self._save_state(s3, params, run_id, state)
        return self._continue(context, state)

    def resume(self, context, event: dict | None = None, **_: Any):
        """Back from the trigger (the job state is read again here; the event only woke us)."""
        params, run_id = self._params(context), context["run_id"]
        s3 = s3_utils.client(self.aws_conn_id)
        manifest = s3_utils.read_json(s3, self.batch["manifest_uri"])
        docs = {d["document_id"]: d for d in manifest["documents"]}
        hook, bucket = self._hook(params), self._bucket(params)
        state = self._load_state(s3, params, run_id)
        still: list[dict] = []
        for item in state["pending"]:
            doc = docs[item["document_id"]]
            bucket.acquire()
            status = hook.get_job("expense", item["job_id"], MaxResults=1).get("JobStatus")
            if status == "IN_PROGRESS":
                still.append(item)
                continue
            try:
                outcome = self._finish_job(s3, hook, bucket, params, run_id, doc, item)
            except Exception as exc:
                outcome = self._failed(s3, params, run_id, doc, exc)
            self._record(state, doc, outcome)
        state["pending"] = still
        self._save_state(s3, params, run_id, state)
        return self._continue(context, state)

    def _failed(self, s3, params, run_id, doc, exc: Exception) -> dict:
        """A document whose extraction raised: an AWS or network error fails the task (its retry
        goes on where this try stopped); anything else is the document's (a malformed response,
        an image the checks let through that a library refuses) and quarantines it alone."""
        from ..utils.expense_state import is_transient, quarantine_failure

        if is_transient(exc):
            raise exc
        self.log.warning("quarantine %s: extraction raised %r", doc["source_uri"], exc)
        return {
            "status": "quarantined",
            "quarantine": quarantine_failure(s3, params, run_id, doc, exc, "extraction"),
        }

    @staticmethod
    def _record(state: dict, doc: dict, outcome: dict) -> None:
        state["done"][doc["document_id"]] = outcome["status"]
        if outcome.get("quarantine"):
            state["quarantined"].append(outcome["quarantine"])

    def _continue(self, context, state: dict):
        pending = state["pending"]
        if pending:
            from ..triggers.textract import TextractJobCompleteTrigger

            self.log.info("%d Textract job(s) running; deferring", len(pending))
            self.defer(
                trigger=TextractJobCompleteTrigger(
                    job_id=pending[0]["job_id"],
                    kind="expense",
                    waiter_delay=self.waiter_delay,
                    waiter_max_attempts=max(1, int(self.job_timeout.total_seconds()) // self.waiter_delay),
                    aws_conn_id=self.aws_conn_id,
                ),
                method_name="resume",
            )
        statuses = list(state["done"].values())
        result = {
            "batch": self.batch["batch"],
            "manifest_uri": self.batch["manifest_uri"],
            "extracted": sum(1 for s in statuses if s in ("needs_review", "auto_approve")),
            "quarantined": sum(1 for s in statuses if s == "quarantined"),
            "needs_review": sum(1 for s in statuses if s == "needs_review"),
        }
        self.log.info("batch %s: %s", self.batch["batch"], result)
        return result

    # ---- per document -------------------------------------------------------------------------
    def _state_uri(self, params: dict, run_id: str) -> str:
        return f"{run_prefix(params, run_id)}/extract/{self.batch['batch']:05d}.json"

    def _load_state(self, s3, params, run_id) -> dict:
        state = s3_utils.read_json(s3, self._state_uri(params, run_id), default={})
        for key, empty in (("done", {}), ("pending", []), ("quarantined", [])):
            state.setdefault(key, empty)
        return state

    def _save_state(self, s3, params, run_id, state) -> None:
        s3_utils.write_json(s3, self._state_uri(params, run_id), state)

    def _extract_one(self, s3, hook, bucket, params, run_id, doc) -> dict:
        from botocore.exceptions import ClientError

        from ..utils.errors import error_code, error_message
        from ..utils.expense import (
            ASYNC_DOCUMENT_LIMIT,
            check_document,
            textract_error_code,
        )

        if doc["size"] > ASYNC_DOCUMENT_LIMIT:  # no need to download it to know
            reason = f"{doc['source_uri']} is {doc['size']} bytes; Textract's limit is {ASYNC_DOCUMENT_LIMIT}"
            return {
                "status": "quarantined",
                "quarantine": quarantine(s3, params, run_id, doc, "DocumentTooLarge", reason),
            }
        try:
            data = s3.get_object(Bucket=doc["bucket"], Key=doc["key"])["Body"].read()
        except ClientError as err:
            if error_code(err) not in ("NoSuchKey", "404"):
                raise
            reason = f"{doc['source_uri']} was deleted after the run listed it"
            return {
                "status": "quarantined",
                "quarantine": quarantine(s3, params, run_id, doc, "DocumentDeleted", reason, copy=False),
            }
        check = check_document(doc["source_uri"], data, doc["size"])
        if not check.ok:
            self.log.warning("quarantine %s: %s", doc["source_uri"], check.reason)
            record = quarantine(s3, params, run_id, doc, check.code or "BadDocument", check.reason or "")
            return {"status": "quarantined", "quarantine": record}
        try:
            bucket.acquire()
            if check.mode == "async":
                token = hook.client_request_token("expense", doc["document_id"], run_id)
                job_id = hook.start_job("expense", doc["source_uri"], client_request_token=token)
                return {"status": "running", "job_id": job_id}
            response = hook.analyze("expense", doc["source_uri"])
        except ClientError as err:
            code = textract_error_code(err)
            if code is None:
                raise
            reason = f"Textract {code} for {doc['source_uri']}: {error_message(err)}"
            return {"status": "quarantined", "quarantine": quarantine(s3, params, run_id, doc, code, reason)}
        return {"status": self._store_machine_result(s3, params, run_id, doc, response)}

    def _finish_job(self, s3, hook, bucket, params, run_id, doc, item) -> dict:
        from ..hooks.textract import TextractJobFailed

        try:
            bucket.acquire()
            response = hook.collect_job_results("expense", item["job_id"])
        except TextractJobFailed as exc:
            return {
                "status": "quarantined",
                "quarantine": quarantine(s3, params, run_id, doc, "TextractJobFailed", str(exc)),
            }
        return {"status": self._store_machine_result(s3, params, run_id, doc, response)}

    def _store_machine_result(self, s3, params, run_id, doc, response: dict) -> str:
        from ..utils.expense import CONSISTENCY_CHECKS, normalise_expense, review_fields

        raw_uri = f"{params['output_prefix'].rstrip('/')}/documents/{doc['folder']}/textract.json"
        s3_utils.write_json(s3, raw_uri, response)
        normalised = normalise_expense(response, document_id=doc["document_id"], source_uri=doc["source_uri"])
        to_review = review_fields(
            normalised,
            float(params["confidence_threshold"]),
            list(params["required_fields"] or []),
            consistency=list(params.get("consistency_checks", CONSISTENCY_CHECKS) or []),
        )
        s3_utils.write_json(
            s3,
            f"{run_prefix(params, run_id)}/machine/{doc['document_id']}.json",
            {"document": doc, "normalised": normalised, "review_fields": to_review, "raw_uri": raw_uri},
        )
        return "needs_review" if to_review else "auto_approve"
