"""Endpoint data capture, in SageMaker's format and S3 layout.

Every sampled invocation becomes one JSON line::

    {"captureData": {"endpointInput": {"observedContentType": "text/csv", "mode": "INPUT",
                                       "data": "1,2,3", "encoding": "CSV"},
                     "endpointOutput": {"observedContentType": "text/csv; charset=utf-8",
                                        "mode": "OUTPUT", "data": "0.52", "encoding": "CSV"}},
     "eventMetadata": {"eventId": "<uuid>", "inferenceTime": "2024-05-01T10:00:00Z"},
     "eventVersion": "0"}

written to ``<DestinationS3Uri>/<endpoint>/<variant>/yyyy/mm/dd/hh/<mm-ss-fff>-<uuid>.jsonl``
(the hour of the inference time, UTC; the file name as SageMaker writes it). Encoding: ``CSV`` for
the content types in CaptureContentTypeHeader.CsvContentTypes (default ``text/csv``), ``JSON`` for
JsonContentTypes (default ``application/json``), otherwise ``BASE64``. ``eventMetadata`` also holds
``inferenceId`` when the request had an InferenceId.

Invocations only append to an in-memory buffer; a flusher thread writes one object per
endpoint/variant/hour every ``interval`` seconds (and on endpoint deletion and twin shutdown).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import random
import threading
import uuid

log = logging.getLogger("aws_twin.sagemaker")


def _mode_set(config: dict) -> set[str]:
    modes = {str(o.get("CaptureMode", "")).lower() for o in config.get("CaptureOptions") or []}
    return modes or {"input", "output"}


def _encode(data: bytes, content_type: str | None, config: dict) -> tuple[str, str]:
    header = config.get("CaptureContentTypeHeader") or {}
    csv_types = header.get("CsvContentTypes") or ["text/csv"]
    json_types = header.get("JsonContentTypes") or ["application/json"]
    media = (content_type or "").split(";", 1)[0].strip().lower()
    try:
        if media in {t.lower() for t in csv_types}:
            return data.decode("utf-8"), "CSV"
        if media in {t.lower() for t in json_types}:
            return data.decode("utf-8"), "JSON"
    except UnicodeDecodeError:
        pass
    return base64.b64encode(data).decode("ascii"), "BASE64"


class CaptureWriter:
    def __init__(self, s3_client_factory, interval: float = 0.5):
        self._client = s3_client_factory
        self.interval = interval
        self._lock = threading.Lock()
        self._buffer: dict[tuple[str, str, str, str], list[str]] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._random = random.Random()
        self.written = 0

    def sampled(self, config: dict) -> bool:
        pct = float(config.get("InitialSamplingPercentage", 100))
        return pct >= 100 or self._random.random() * 100 < pct

    def record(
        self,
        config: dict,
        endpoint: str,
        variant: str,
        request: bytes,
        request_type: str | None,
        response: bytes,
        response_type: str | None,
        inference_id: str | None = None,
    ) -> None:
        stamp = dt.datetime.now(dt.UTC)
        modes = _mode_set(config)
        capture: dict = {}
        for mode, field, body, content_type in (
            ("input", "endpointInput", request, request_type),
            ("output", "endpointOutput", response, response_type),
        ):
            if mode in modes:
                data, enc = _encode(body, content_type, config)
                capture[field] = {
                    "observedContentType": content_type or "",
                    "mode": mode.upper(),
                    "data": data,
                    "encoding": enc,
                }
        meta = {
            "eventId": str(uuid.uuid4()),
            "inferenceTime": stamp.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        }
        if inference_id:
            meta["inferenceId"] = inference_id
        line = json.dumps({"captureData": capture, "eventMetadata": meta, "eventVersion": "0"})
        key = (config["DestinationS3Uri"].rstrip("/"), endpoint, variant, stamp.strftime("%Y/%m/%d/%H"))
        with self._lock:
            self._buffer.setdefault(key, []).append(line)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="sagemaker-capture", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            self.flush()

    def flush(self, endpoint: str | None = None) -> int:
        """Write buffered records (of one endpoint, or all) to S3; return how many."""
        with self._lock:
            if endpoint is None:
                batch, self._buffer = self._buffer, {}
            else:
                batch = {k: v for k, v in self._buffer.items() if k[1] == endpoint}
                for k in batch:
                    del self._buffer[k]
        count = 0
        for (dest, ep, variant, hour), lines in batch.items():
            if not dest.startswith("s3://"):
                continue
            bucket, _, prefix = dest[5:].partition("/")
            stamp = dt.datetime.now(dt.UTC)
            name = f"{stamp:%M-%S}-{stamp.microsecond // 1000:03d}-{uuid.uuid4()}.jsonl"
            key = "/".join(p for p in (prefix, ep, variant, hour, name) if p)
            try:
                self._client().put_object(
                    Bucket=bucket,
                    Key=key,
                    Body=("\n".join(lines) + "\n").encode(),
                    ContentType="application/jsonl",
                )
                count += len(lines)
            except Exception:
                log.exception(
                    "data capture: cannot write s3://%s/%s (%d records lost)", bucket, key, len(lines)
                )
        self.written += count
        return count

    def shutdown(self) -> None:
        self._stop.set()
        self._wake.set()
        self.flush()
