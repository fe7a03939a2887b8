"""The job runner the training, processing, transform and tuning engines share.

A SageMaker job of any kind lives the same way in the twin; :class:`JobEngine` does that part once:

- ``start``: a name already taken -> ResourceInUse; else the job is kept and run on the twin's
  background pool;
- ``run``: the job's work directory (``<scratch>/<kind>/<job>-<ms>``, removed at the end), its
  ``StoppingCondition.MaxRuntimeInSeconds`` timer (a stop with reason ``max_runtime``), its CloudWatch
  Logs stream (the engine's log group, ``<job>/algo-1-<epoch seconds>``), the start / end / last
  modified times, and the end of every path: the engine's :meth:`JobEngine.body` returns ->
  ``Completed``; raises :class:`JobStopped` (or anything once the job is being stopped) -> ``Stopped``;
  raises :class:`JobFailed` -> ``Failed`` with the message as FailureReason (one line, also written to
  the job's log); any other exception (a twin bug) -> ``Failed`` / ``InternalServerError: ...``;
- ``stop``: InProgress -> Stopping, the reason kept, the job's process ended (the engine says how);
- ``launch`` / ``stream``: a job's process (a training worker, a processing program) is attached so a
  stop reaches it, and its output goes line by line to the job's log stream (flushed at least every
  second, so a quiet program's last lines show up while it runs).

Engines add their own steps through hooks: ``on_start``, ``on_stopping``, ``on_finish``,
``end_process``, ``log_stream_name``, ``not_found``.
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ...core.errors import AwsError

log = logging.getLogger("aws_twin.sagemaker")

#: SageMaker's FailureReason holds at most 1,024 characters
REASON_LIMIT = 1000


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def split_s3(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


def one_line(text: str, limit: int = REASON_LIMIT) -> str:
    """``text`` as one line (every run of whitespace, newlines included, one space), cut to ``limit``."""
    return " ".join(str(text).split())[:limit]


def error_code(exc: Exception) -> str:
    """An AWS error's code (botocore's ClientError), else the exception's type name."""
    return getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)


def list_input(s3, uri: str, where: str = "", lead: str = "") -> list[str]:
    """The object keys under an S3Prefix input ``uri`` (folder markers left out); JobFailed when it
    cannot be listed or holds nothing (``where`` names the input in the reason, ``lead`` starts it)."""
    bucket, prefix = split_s3(uri)
    keys = []
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys += [o["Key"] for o in page.get("Contents", []) if not o["Key"].endswith("/")]
    except Exception as exc:
        raise JobFailed(f"ClientError: {lead}cannot list {uri}{where}: {error_code(exc)}") from None
    if not keys:
        raise JobFailed(f"ClientError: {lead}no objects found under {uri}{where}")
    return keys


class JobFailed(Exception):
    """The job fails; the message is its FailureReason."""


class JobStopped(Exception):
    """The job ends Stopped (StopXxxJob, or its MaxRuntimeInSeconds)."""


@dataclass
class Job:
    """What every kind of job has; the engines' job classes add their own fields."""

    name: str
    arn: str
    region: str
    request: dict
    creation_time: dt.datetime
    status: str = "InProgress"
    failure_reason: str | None = None
    last_modified: dt.datetime | None = None
    start_time: dt.datetime | None = None
    end_time: dt.datetime | None = None
    stop_reason: str | None = None  # "user" | "max_runtime"
    process: Any = None
    log_stream: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)


class LogWriter:
    """Lines to one CloudWatch Logs stream, sent in small batches (thread-safe: a job's reader
    thread writes while a timer may flush)."""

    def __init__(self, logs_client, group: str, stream: str):
        self.client = logs_client
        self._lock = threading.Lock()
        self.group = group
        self.stream = stream
        self.pending: list[dict] = []
        self.last_flush = time.monotonic()
        self.ok = True
        try:
            try:
                self.client.create_log_group(logGroupName=group)
            except self.client.exceptions.ResourceAlreadyExistsException:
                pass
            self.client.create_log_stream(logGroupName=group, logStreamName=stream)
        except Exception:  # logs are a side channel: never fail a job for them
            log.exception("cannot create log stream %s %s", group, stream)
            self.ok = False

    def write(self, message: str) -> None:
        with self._lock:
            self.pending.append({"timestamp": int(time.time() * 1000), "message": message})
            due = len(self.pending) >= 200 or time.monotonic() - self.last_flush > 0.5
        if due:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            if not self.pending or not self.ok:
                self.pending.clear()
                return
            batch, self.pending = self.pending, []
            self.last_flush = time.monotonic()
        try:
            self.client.put_log_events(logGroupName=self.group, logStreamName=self.stream, logEvents=batch)
        except Exception:
            log.exception("cannot write job logs to %s %s", self.group, self.stream)


class JobEngine:
    """One kind of job: the jobs by name and their life (see the module's docstring)."""

    #: the kind, as the twin's log names it ("training job x crashed")
    kind = "job"
    #: the CloudWatch Logs group of the jobs' streams (None: the jobs write no log)
    log_group: str | None = None
    #: the scratch sub-folder of the jobs' work directories (None: the jobs need none)
    work_folder: str | None = None

    def __init__(self, twin, scratch: str | None = None):
        self.twin = twin
        self.scratch = scratch
        self.jobs: dict[str, Job] = {}
        self.lock = threading.RLock()

    # ---- hooks ------------------------------------------------------------------------------
    def body(self, job: Job, work: str | None, logs: LogWriter | None, *args) -> None:
        """The job's own work; returns (Completed) or raises JobFailed / JobStopped."""
        raise NotImplementedError

    def on_start(self, job: Job) -> None:
        """Just before the job is handed to the background pool."""

    def on_stopping(self, job: Job) -> None:
        """The job has just turned Stopping."""

    def on_finish(self, job: Job, status: str) -> None:
        """The job is about to end with ``status``."""

    def end_process(self, proc, kill: bool = False) -> None:
        """End a job's process (``kill``: the twin is shutting down)."""
        if proc.poll() is None:
            if kill:
                proc.kill()
            else:
                proc.terminate()

    def log_stream_name(self, job: Job) -> str:
        return f"{job.name}/algo-1-{int(time.time())}"

    def not_found(self, name: str) -> AwsError:
        return AwsError("ValidationException", f"Could not find requested job with name {name}")

    # ---- lifecycle ----------------------------------------------------------------------------
    def job(self, name: str) -> Job:
        job = self.jobs.get(name)
        if job is None:
            raise self.not_found(name)
        return job

    def start(self, job: Job, *args, exists: str | None = None) -> None:
        """Keep ``job`` and run it in the background (``exists``: the ResourceInUse message when its
        name is taken; None: the caller made the name unique)."""
        with self.lock:
            if exists is not None and job.name in self.jobs:
                raise AwsError("ResourceInUse", exists)
            self.jobs[job.name] = job
        self.on_start(job)
        self.twin.background(self.run, job, *args)

    def stop(self, job: Job, reason: str = "user") -> bool:
        """InProgress -> Stopping; False when the job was not InProgress (nothing done)."""
        with job.lock:
            if job.status != "InProgress":
                return False
            job.status = "Stopping"
            job.stop_reason = reason
            job.last_modified = now()
            proc = job.process
        self.on_stopping(job)
        if proc is not None:
            self.end_process(proc)
        return True

    def shutdown(self) -> None:
        with self.lock:
            jobs = list(self.jobs.values())
        for job in jobs:
            proc = job.process
            if proc is not None:
                self.end_process(proc, kill=True)

    def check_stop(self, job: Job) -> None:
        if job.stop_reason:
            raise JobStopped()

    # ---- the run ------------------------------------------------------------------------------
    def run(self, job: Job, *args) -> None:
        work = None
        if self.work_folder:
            work = os.path.abspath(
                os.path.join(self.scratch, self.work_folder, f"{job.name}-{int(time.time() * 1000)}")
            )
            os.makedirs(work, exist_ok=True)
        timer = None
        max_runtime = (job.request.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds")
        if max_runtime:
            timer = threading.Timer(float(max_runtime), self.stop, args=(job, "max_runtime"))
            timer.daemon = True
            timer.start()
        logs = None
        try:
            job.start_time = now()
            if self.log_group:
                job.log_stream = self.log_stream_name(job)
                logs = LogWriter(self.twin.client("logs", job.region), self.log_group, job.log_stream)
            self.body(job, work, logs, *args)
            self.finish(job, "Completed")
        except JobStopped:
            self.finish(job, "Stopped")
        except JobFailed as exc:
            if job.stop_reason:  # the failure came from being stopped
                self.finish(job, "Stopped")
            else:
                job.failure_reason = one_line(str(exc))
                if logs:
                    logs.write(job.failure_reason)
                self.finish(job, "Failed")
        except Exception as exc:  # a twin bug: still end the job, readably
            log.exception("%s job %s crashed", self.kind, job.name)
            job.failure_reason = one_line(
                f"InternalServerError: the twin failed running the job: {type(exc).__name__}: {exc}"
            )
            self.finish(job, "Failed")
        finally:
            if timer:
                timer.cancel()
            if logs:
                logs.flush()
            if work:
                shutil.rmtree(work, ignore_errors=True)

    def finish(self, job: Job, status: str) -> None:
        stamp = now()
        job.end_time = stamp
        self.on_finish(job, status)
        with job.lock:
            job.last_modified = max(stamp, job.last_modified or stamp)
            job.status = status
            job.process = None

    # ---- the job's process --------------------------------------------------------------------
    def launch(self, job: Job, proc) -> None:
        """Attach the job's process (a stop from now on ends it); one asked for while it started
        ends it now."""
        with job.lock:
            job.process = proc
            stopping = job.stop_reason is not None
        if stopping:
            self.end_process(proc)

    def stream(self, job: Job, proc, logs: LogWriter, keep: int | None = None) -> list[tuple[float, str]]:
        """The process's output, line by line, to the job's log until it exits; the (epoch seconds,
        line) pairs read (``keep``: only the last ``keep`` of them)."""
        done = threading.Event()

        def flush_now_and_then() -> None:  # a quiet program's last lines reach the log within a second
            while not done.wait(1.0):
                logs.flush()

        flusher = threading.Thread(target=flush_now_and_then, name=f"logs-{job.name}", daemon=True)
        flusher.start()
        lines: collections.deque = collections.deque(maxlen=keep)
        try:
            for line in proc.stdout:
                line = line.rstrip("\n")
                logs.write(line)
                lines.append((time.time(), line))
            proc.wait()
        finally:
            done.set()
        logs.flush()
        return list(lines)
