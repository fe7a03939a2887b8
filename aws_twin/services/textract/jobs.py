"""Asynchronous Textract jobs: Start* records a job and runs it on the twin's background pool;
Get* pages through its results. JobStatus goes IN_PROGRESS -> SUCCEEDED / PARTIAL_SUCCESS / FAILED.

A job has a time limit (``AWS_TWIN_TEXTRACT_JOB_SECONDS``, default 900 s): a job still reading pages
then stops rendering more and ends FAILED, saying so (a 1,000-page PDF does not hold the twin's
pool for an hour)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass, field

from ...core.errors import AwsError
from . import documents, engine

log = logging.getLogger("aws_twin.textract")


def job_time_limit() -> float:
    """Seconds an asynchronous job may run (``AWS_TWIN_TEXTRACT_JOB_SECONDS``, default 900)."""
    return float(os.environ.get("AWS_TWIN_TEXTRACT_JOB_SECONDS") or 900)


class JobTimeLimit(Exception):
    """A job ran past its time limit while its pages were read."""


class _TimedDocument(documents.Document):
    """A document whose pages stop coming once the job's deadline has passed."""

    deadline: float = 0.0

    def render(self):
        for number, page in enumerate(super().render(), start=1):
            if time.monotonic() > self.deadline:
                raise JobTimeLimit(f"the job ran past its time limit after {number - 1} page(s)")
            yield page


KINDS = {
    # kind: (API name for notifications, result key, model version key, default / max MaxResults)
    "text": ("StartDocumentTextDetection", "Blocks", "DetectDocumentTextModelVersion", 1000),
    "analysis": ("StartDocumentAnalysis", "Blocks", "AnalyzeDocumentModelVersion", 1000),
    "expense": ("StartExpenseAnalysis", "ExpenseDocuments", "AnalyzeExpenseModelVersion", 20),
}


@dataclass
class Job:
    job_id: str
    kind: str
    location: dict
    params: dict
    token: str | None
    status: str = "IN_PROGRESS"
    message: str | None = None
    pages: int = 0
    results: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    created: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    done: threading.Event = field(default_factory=threading.Event)


class JobStore:
    def __init__(self, twin):
        self.twin = twin
        self.lock = threading.Lock()
        self.jobs: dict[str, Job] = {}
        self.tokens: dict[tuple[str, str], str] = {}

    def start(self, kind: str, params: dict) -> str:
        location = params.get("DocumentLocation") or {}
        s3obj = location.get("S3Object")
        if not s3obj or not s3obj.get("Bucket") or not s3obj.get("Name"):
            raise documents.invalid_parameter("DocumentLocation.S3Object with Bucket and Name is required.")
        if kind == "analysis":
            _check_features(params)
        token = params.get("ClientRequestToken")
        fingerprint = json.dumps(
            {k: v for k, v in params.items() if k not in ("ClientRequestToken",)}, sort_keys=True, default=str
        )
        with self.lock:
            if token and (kind, token) in self.tokens:
                job = self.jobs[self.tokens[(kind, token)]]
                if job.params.get("_fingerprint") != fingerprint:
                    raise AwsError(
                        "IdempotentParameterMismatchException",
                        f"ClientRequestToken {token} was used with other parameters.",
                    )
                return job.job_id
        # the S3 object must exist when the job starts; format problems fail the job
        data, source = documents.read_s3(self.twin, s3obj)
        if token:
            job_id = hashlib.sha256(f"{kind}/{token}/{fingerprint}".encode()).hexdigest()
        else:
            job_id = secrets.token_hex(32)
        job = Job(job_id, kind, location, {**params, "_fingerprint": fingerprint}, token)
        with self.lock:
            if token and (kind, token) in self.tokens:  # a concurrent twin of this call won
                return self.tokens[(kind, token)]
            self.jobs[job_id] = job
            if token:
                self.tokens[(kind, token)] = job_id
        self.twin.background(self._run, job, data, source)
        return job_id

    def _run(self, job: Job, data: bytes, source: str) -> None:
        try:
            started = time.monotonic()
            limit = job_time_limit()
            doc = documents.inspect(data, source, asynchronous=True)
            doc = _TimedDocument(doc.data, doc.format, doc.source, doc.pages)
            doc.deadline = started + limit
            job.pages = doc.pages
            failed: list[int] = []
            timed_out: list[JobTimeLimit] = []

            def on_error(number, exc):
                if isinstance(exc, JobTimeLimit):
                    timed_out.append(exc)
                    return
                log.warning("textract job %s: page %d failed: %s", job.job_id, number, exc)
                failed.append(number)

            pages = engine.read_document(doc, on_error=on_error)
            if timed_out or time.monotonic() - started > limit:
                raise AwsError(
                    "InternalServerError",
                    f"The job did not finish within the twin's time limit of {limit:g} s "
                    f"(AWS_TWIN_TEXTRACT_JOB_SECONDS; {doc.pages} pages).",
                )
            seed = engine.seed_of(doc)
            if job.kind == "text":
                job.results = engine.text_blocks(pages, seed)
            elif job.kind == "analysis":
                features = job.params.get("FeatureTypes") or []
                queries = (job.params.get("QueriesConfig") or {}).get("Queries")
                job.results = engine.analysis_blocks(pages, seed, features, queries, doc)
            else:
                job.results = engine.expense_documents(pages, seed)
            if failed:
                job.warnings = [{"ErrorCode": "PAGE_PROCESSING_FAILED", "Pages": failed}]
                if len(failed) >= doc.pages:
                    job.status, job.message = "FAILED", f"Unable to process any page of {source}."
                else:
                    job.status = "PARTIAL_SUCCESS"
                    job.message = f"{len(failed)} of {doc.pages} pages could not be processed."
            else:
                job.status = "SUCCEEDED"
        except AwsError as err:
            job.status, job.message = "FAILED", f"{err.code}: {err.message}"
        except Exception as exc:  # a bug: the job fails, the twin goes on
            log.exception("textract job %s failed", job.job_id)
            job.status, job.message = "FAILED", f"InternalServerError: {type(exc).__name__}: {exc}"
        finally:
            job.done.set()
        self._output(job)
        self._notify(job)

    def _output(self, job: Job) -> None:
        """Write the whole result to OutputConfig's S3 prefix as <prefix>/<JobId>/1."""
        out = job.params.get("OutputConfig")
        if not out or job.status == "FAILED":
            return
        prefix = (out.get("S3Prefix") or "").strip("/")
        key = f"{prefix}/{job.job_id}/1" if prefix else f"{job.job_id}/1"
        body = json.dumps(self.result(job.job_id, None, None, paginate=False), default=_json_default)
        try:
            self.twin.client("s3").put_object(Bucket=out["S3Bucket"], Key=key, Body=body.encode())
        except Exception as exc:
            log.warning(
                "textract job %s: cannot write output to s3://%s/%s: %s",
                job.job_id,
                out["S3Bucket"],
                key,
                exc,
            )

    def _notify(self, job: Job) -> None:
        channel = job.params.get("NotificationChannel")
        if not channel or not channel.get("SNSTopicArn"):
            return
        message = {
            "JobId": job.job_id,
            "Status": job.status,
            "API": KINDS[job.kind][0],
            "JobTag": job.params.get("JobTag"),
            "Timestamp": int(dt.datetime.now(dt.UTC).timestamp() * 1000),
            "DocumentLocation": {
                "S3ObjectName": job.location["S3Object"]["Name"],
                "S3Bucket": job.location["S3Object"]["Bucket"],
            },
        }
        try:
            self.twin.client("sns").publish(TopicArn=channel["SNSTopicArn"], Message=json.dumps(message))
        except Exception as exc:
            log.warning("textract job %s: cannot notify %s: %s", job.job_id, channel["SNSTopicArn"], exc)

    def get(self, job_id: str | None, kind: str) -> Job:
        job = self.jobs.get(job_id or "")
        if job is None or job.kind != kind:
            raise AwsError(
                "InvalidJobIdException", f"Job {job_id} is not a {KINDS[kind][0]} job of this account."
            )
        return job

    def result(self, job_id: str, max_results, next_token, *, paginate: bool = True) -> dict:
        job = self.jobs[job_id]
        api, key, version_key, limit = KINDS[job.kind]
        out: dict = {"JobStatus": job.status, version_key: engine.MODEL_VERSION}
        if job.status == "IN_PROGRESS":
            return out
        out["DocumentMetadata"] = {"Pages": job.pages}
        if job.message:
            out["StatusMessage"] = job.message
        if job.warnings:
            out["Warnings"] = job.warnings
        if job.status == "FAILED":
            return out
        if not paginate:
            out[key] = job.results
            return out
        size = limit if not max_results else max(1, min(int(max_results), limit))
        start = _decode_token(next_token, job.job_id) if next_token else 0
        chunk = job.results[start : start + size]
        out[key] = chunk
        if start + size < len(job.results):
            out["NextToken"] = _encode_token(job.job_id, start + size)
        return out

    def state(self) -> dict:
        with self.lock:
            counts: dict[str, int] = {}
            for job in self.jobs.values():
                counts[job.status] = counts.get(job.status, 0) + 1
            return {"jobs": len(self.jobs), "by_status": counts}


def _check_features(params: dict) -> None:
    features = params.get("FeatureTypes") or []
    if not features:
        raise documents.invalid_parameter("FeatureTypes must name at least one feature.")
    if "QUERIES" in features and not (params.get("QueriesConfig") or {}).get("Queries"):
        raise documents.invalid_parameter("FeatureTypes QUERIES needs QueriesConfig.Queries.")
    if params.get("QueriesConfig") and "QUERIES" not in features:
        raise documents.invalid_parameter("QueriesConfig is given but FeatureTypes lacks QUERIES.")


def _encode_token(job_id: str, offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"j": job_id[:16], "o": offset}).encode()).decode()


def _decode_token(token: str, job_id: str) -> int:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        if data["j"] != job_id[:16]:
            raise ValueError("token of another job")
        return max(0, int(data["o"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise documents.invalid_parameter(f"NextToken {token[:40]} is not valid for job {job_id}.") from exc


def _json_default(value):
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise TypeError(type(value).__name__)
