"""Batch transform jobs, run for real with the built-in XGBoost models the twin hosts.

``CreateTransformJob`` needs a model (CreateModel) whose container is the built-in XGBoost image
(directly or through a registered model package), as hosting does; anything else is refused with a
ValidationException. The job then runs in the background, as SageMaker's batch transform does:

- every object under ``TransformInput.DataSource.S3DataSource.S3Uri`` (``S3Prefix``) is read
  (``CompressionType`` ``Gzip`` is unpacked); ``SplitType`` ``Line`` cuts it into records (one per
  non-empty line), ``None`` keeps the object as one record;
- records are sent to the model in mini-batches: ``BatchStrategy`` ``SingleRecord`` one record per
  request, ``MultiRecord`` (the default with SplitType Line) as many as fit in ``MaxPayloadInMB``
  (default 6); a record larger than that fails the job, as SageMaker does;
- the model answers as the XGBoost container does in a batch transform (``SAGEMAKER_BATCH``):
  ``text/csv`` one prediction per record per line, ``application/json`` ``{"predictions": [...]}``,
  ``application/jsonlines`` one object per record; the inference code is the hosting code's
  (:mod:`aws_twin.services.sagemaker.xgb`);
- ``DataProcessing``: ``InputFilter`` / ``OutputFilter`` with CSV column indexes (``$``,
  ``$[1:]``, ``$[0,3]``, ``$[2:4,7]``) and ``JoinSource`` ``Input`` (the input record, a comma, the
  prediction) for CSV; other JSONPath expressions answer NotImplemented;
- the responses are assembled per input object (``AssembleWith`` ``Line``: a newline after each
  response; ``None``: concatenated) to ``<S3OutputPath>/<key relative to the input prefix>.out``
  with ``TransformOutput.Accept`` as its content type;
- logs go to ``/aws/sagemaker/TransformJobs``, stream ``<job>/<instance id>-<epoch seconds>``.

Files are processed one after another (``MaxConcurrentTransforms`` is recorded, not parallel).
StopTransformJob stops between mini-batches -> Stopped. An error -> Failed with a one-line reason.
The log stream, the status, stop and timing fields are the shared job runner's (``jobs.py``).
"""

from __future__ import annotations

import copy
import gzip
import random
import re
import time
from dataclasses import dataclass
from typing import Any

from ...core.errors import AwsError
from . import xgb
from .hosting import LoadError
from .images import NOT_XGBOOST, xgboost_version
from .jobs import Job, JobEngine, JobFailed, LogWriter, error_code, list_input, now, split_s3

LOG_GROUP = "/aws/sagemaker/TransformJobs"
_FILTER = re.compile(r"^\$(\[(?P<items>[0-9:, -]+)\])?$")


def _not_implemented(what: str) -> AwsError:
    return AwsError("NotImplemented", f"{what} is not implemented by aws_twin", 501, sender_fault=False)


def parse_filter(expression: str | None, what: str):
    """A CSV column selector for ``$`` / ``$[i]`` / ``$[a:b]`` / ``$[i,a:b]`` (None: every column)."""
    expression = (expression or "$").replace(" ", "")
    match = _FILTER.match(expression)
    if not match:
        raise _not_implemented(f"{what} {expression!r} (the twin takes $ and $[...] CSV column indexes)")
    items = match.group("items")
    if not items:
        return None
    selectors = []
    for item in items.split(","):
        if ":" in item:
            start, _, stop = item.partition(":")
            selectors.append(slice(int(start) if start else None, int(stop) if stop else None))
        elif item:
            selectors.append(int(item))
    return selectors


def apply_filter(selectors, record: str) -> str:
    if selectors is None:
        return record
    cells = record.split(",")
    out: list[str] = []
    for selector in selectors:
        if isinstance(selector, slice):
            out += cells[selector]
        elif -len(cells) <= selector < len(cells):
            out.append(cells[selector])
        else:
            raise xgb.InferenceError(
                400, f"InputFilter column {selector} is out of range for a row of {len(cells)}"
            )
    return ",".join(out)


@dataclass
class TransformJob(Job):
    def describe(self) -> dict:
        req = self.request
        out: dict[str, Any] = {
            "TransformJobName": self.name,
            "TransformJobArn": self.arn,
            "TransformJobStatus": self.status,
            "FailureReason": self.failure_reason,
            "ModelName": req.get("ModelName"),
            "MaxConcurrentTransforms": req.get("MaxConcurrentTransforms"),
            "ModelClientConfig": req.get("ModelClientConfig"),
            "MaxPayloadInMB": req.get("MaxPayloadInMB"),
            "BatchStrategy": req.get("BatchStrategy"),
            "Environment": req.get("Environment"),
            "TransformInput": req.get("TransformInput"),
            "TransformOutput": req.get("TransformOutput"),
            "DataCaptureConfig": req.get("DataCaptureConfig"),
            "TransformResources": req.get("TransformResources"),
            "CreationTime": self.creation_time,
            "TransformStartTime": self.start_time,
            "TransformEndTime": self.end_time,
            "DataProcessing": req.get("DataProcessing"),
            "ExperimentConfig": req.get("ExperimentConfig"),
        }
        return {k: v for k, v in out.items() if v is not None}

    def summary(self) -> dict:
        out = {
            "TransformJobName": self.name,
            "TransformJobArn": self.arn,
            "CreationTime": self.creation_time,
            "TransformEndTime": self.end_time,
            "LastModifiedTime": self.last_modified or self.creation_time,
            "TransformJobStatus": self.status,
            "FailureReason": self.failure_reason,
        }
        return {k: v for k, v in out.items() if v is not None}


class TransformEngine(JobEngine):
    kind = "transform"
    log_group = LOG_GROUP

    def __init__(self, twin, hosting):
        super().__init__(twin)
        self.hosting = hosting

    def create(self, ctx, params: dict) -> TransformJob:
        name = params["TransformJobName"]
        arn = ctx.arn(f"transform-job/{name.lower()}")
        model = self.hosting.model(ctx, params["ModelName"])
        try:
            container = self.hosting._resolve_container(ctx, model)
        except LoadError as exc:
            raise AwsError("ValidationException", str(exc)) from None
        image = container.get("Image", "")
        if xgboost_version(image) is None:
            raise AwsError("ValidationException", f"Model {model.name}: " + NOT_XGBOOST.format(image=image))
        source = ((params.get("TransformInput") or {}).get("DataSource") or {}).get("S3DataSource") or {}
        if source.get("S3DataType", "S3Prefix") != "S3Prefix":
            raise _not_implemented(f"TransformInput S3DataType {source.get('S3DataType')}")
        split = params["TransformInput"].get("SplitType", "None")
        if split not in ("None", "Line"):
            raise _not_implemented(f"TransformInput SplitType {split}")
        processing = params.get("DataProcessing") or {}
        parse_filter(processing.get("InputFilter"), "DataProcessing.InputFilter")
        parse_filter(processing.get("OutputFilter"), "DataProcessing.OutputFilter")
        accept = xgb.media_type((params.get("TransformOutput") or {}).get("Accept")) or "text/csv"
        if processing.get("JoinSource", "None") == "Input" and accept not in xgb.CSV_TYPES:
            raise _not_implemented("DataProcessing.JoinSource Input with a non-CSV Accept")
        for uri in (source.get("S3Uri"), (params.get("TransformOutput") or {}).get("S3OutputPath")):
            if not str(uri or "").startswith("s3://"):
                raise AwsError("ValidationException", f"{uri!r} must be an s3:// URI.")
        job = TransformJob(name, arn, ctx.region, copy.deepcopy(params), now())
        self.start(
            job,
            container,
            exists=f"Transform job names must be unique within an AWS account and region, and a transform "
            f"job with this name already exists ({arn})",
        )
        return job

    def log_stream_name(self, job: TransformJob) -> str:
        instance = "i-" + "".join(random.choice("0123456789abcdef") for _ in range(17))
        return f"{job.name}/{instance}-{int(time.time())}"

    # ---- the job --------------------------------------------------------------------------
    def body(self, job: TransformJob, work, logs: LogWriter, container: dict) -> None:
        url = container.get("ModelDataUrl") or (container.get("ModelDataSource") or {}).get(
            "S3DataSource", {}
        ).get("S3Uri")
        if not url:
            raise JobFailed(f"ClientError: model {job.request['ModelName']} has no ModelDataUrl")
        try:
            booster = self.hosting.load_booster(url, "transform")
        except LoadError as exc:
            raise JobFailed(
                f"ClientError: {str(exc).removeprefix('Production variant transform: ')}"
            ) from None
        logs.write(f"aws_twin: model {job.request['ModelName']} loaded from {url}")
        self._transform(job, booster, logs)

    def _transform(self, job: TransformJob, booster, logs: LogWriter) -> None:
        req = job.request
        tin, tout = req["TransformInput"], req["TransformOutput"]
        source = tin["DataSource"]["S3DataSource"]
        bucket, prefix = split_s3(source["S3Uri"])
        out_bucket, out_prefix = split_s3(tout["S3OutputPath"])
        out_prefix = out_prefix.rstrip("/")
        s3 = self.twin.client("s3", job.region)
        keys = list_input(s3, source["S3Uri"])
        content_type = tin.get("ContentType") or "text/csv"
        accept = tout.get("Accept") or "text/csv"
        kind = xgb.media_type(accept)
        split = tin.get("SplitType", "None")
        strategy = req.get("BatchStrategy") or ("MultiRecord" if split == "Line" else "SingleRecord")
        max_bytes = int(req.get("MaxPayloadInMB") or 6) * 1024 * 1024
        processing = req.get("DataProcessing") or {}
        in_filter = parse_filter(processing.get("InputFilter"), "InputFilter")
        out_filter = parse_filter(processing.get("OutputFilter"), "OutputFilter")
        join = processing.get("JoinSource", "None") == "Input"
        assemble_line = tout.get("AssembleWith", "None") == "Line"
        for key in sorted(keys):
            self.check_stop(job)
            raw = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            if tin.get("CompressionType") == "Gzip" or raw[:2] == b"\x1f\x8b":
                try:
                    raw = gzip.decompress(raw)
                except OSError as exc:
                    raise JobFailed(f"ClientError: s3://{bucket}/{key} is not gzip data: {exc}") from None
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise JobFailed(f"ClientError: s3://{bucket}/{key} is not UTF-8 text") from None
            records = [line for line in text.splitlines() if line.strip()] if split == "Line" else [text]
            batches = self._batches(records, strategy, max_bytes, f"s3://{bucket}/{key}")
            responses = []
            for batch in batches:
                self.check_stop(job)
                try:
                    responses.append(
                        self._predict(booster, batch, content_type, accept, kind, in_filter, out_filter, join)
                    )
                except xgb.InferenceError as exc:
                    raise JobFailed(f"ClientError: s3://{bucket}/{key}: {exc.message}") from None
            if assemble_line:
                body = "".join(r if r.endswith("\n") else r + "\n" for r in responses)
            else:
                body = "".join(responses)
            relative = key[len(prefix) :].lstrip("/") if key != prefix else key.rsplit("/", 1)[-1]
            if not relative:
                relative = key.rsplit("/", 1)[-1]
            out_key = f"{out_prefix}/{relative}.out" if out_prefix else f"{relative}.out"
            try:
                s3.put_object(Bucket=out_bucket, Key=out_key, Body=body.encode(), ContentType=accept)
            except Exception as exc:
                raise JobFailed(
                    f"ClientError: cannot write s3://{out_bucket}/{out_key}: {error_code(exc)}"
                ) from None
            logs.write(
                f"aws_twin: s3://{bucket}/{key}: {len(records)} record(s) in {len(batches)} mini-batch(es) "
                f"-> s3://{out_bucket}/{out_key}"
            )

    @staticmethod
    def _batches(records: list[str], strategy: str, max_bytes: int, where: str) -> list[list[str]]:
        batches: list[list[str]] = []
        current: list[str] = []
        size = 0
        for record in records:
            length = len(record.encode()) + 1
            if length > max_bytes:
                raise JobFailed(
                    f"ClientError: a record of {length} bytes in {where} exceeds MaxPayloadInMB "
                    f"({max_bytes // (1024 * 1024)} MB)"
                )
            if current and (strategy == "SingleRecord" or size + length > max_bytes):
                batches.append(current)
                current, size = [], 0
            current.append(record)
            size += length
        if current:
            batches.append(current)
        return batches

    @staticmethod
    def _predict(booster, batch, content_type, accept, kind, in_filter, out_filter, join) -> str:
        csv_in = xgb.media_type(content_type) in xgb.CSV_TYPES
        if (in_filter is not None or join) and not csv_in:
            raise xgb.InferenceError(
                415, "DataProcessing filters and JoinSource need text/csv input on the twin"
            )
        inputs = [apply_filter(in_filter, r.strip()) for r in batch] if csv_in else batch
        array = xgb.parse_payload("\n".join(inputs).encode(), content_type, booster.num_features())
        preds = xgb.predict(booster, array)
        if kind in xgb.CSV_TYPES or kind in ("", "*/*"):
            if preds.ndim == 1:
                lines = [repr(float(v)) for v in preds.tolist()]
            else:
                lines = [",".join(repr(float(v)) for v in row) for row in preds.tolist()]
            if join:
                lines = [f"{record.strip()},{line}" for record, line in zip(batch, lines, strict=True)]
            lines = [apply_filter(out_filter, line) for line in lines]
            return "\n".join(lines) + "\n"
        if out_filter is not None:
            raise xgb.InferenceError(415, "OutputFilter needs text/csv output on the twin")
        body, _ = xgb.encode_predictions(preds, accept)
        return body.decode()
