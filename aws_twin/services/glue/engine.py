"""Glue's real work: run a job script as a local Python process, ship its output to CloudWatch Logs.

No wire format here. The handlers keep the job and run records; :class:`JobRunner` downloads the
script from the twin's S3, runs it with Glue's ``--KEY value`` arguments, streams stdout/stderr to
the log groups Glue uses (stream name = the run id), and reports how the run ended: SUCCEEDED,
FAILED (with the last exception line of stderr as the error message), STOPPED or TIMEOUT.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("aws_twin.glue")

#: the awsglue shim (``awsglue.utils.getResolvedOptions``) put on the job's PYTHONPATH
SHIM_DIR = Path(__file__).resolve().parent / "shim"

#: CloudWatch Logs limits for PutLogEvents
_MAX_EVENT_BYTES = 256 * 1024 - 26
_MAX_BATCH_BYTES = 1_048_576
_MAX_BATCH_EVENTS = 10_000

_TRACEBACK = "Traceback (most recent call last):"


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key); ValueError for anything else."""
    match = re.fullmatch(r"s3a?://([^/]+)/(.+)", uri or "")
    if not match:
        raise ValueError(f"not an S3 object URI: {uri!r}")
    return match.group(1), match.group(2)


def build_argv(arguments: dict[str, str]) -> list[str]:
    """Glue passes each argument as two words, the key (``--name``) then the value."""
    argv: list[str] = []
    for key, value in arguments.items():
        argv += [key, "" if value is None else str(value)]
    return argv


def error_message(stderr_tail: list[str], returncode: int | None) -> str:
    """The error Glue reports for a failed run: the script's last exception line.

    The line after the last traceback's frames (``ValueError: ...``); else the last non-empty stderr
    line (``sys.exit("message")``); else the exit code.
    """
    lines = [line.rstrip("\n") for line in stderr_tail]
    start = None
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].startswith(_TRACEBACK):
            start = i
            break
    if start is not None:
        for line in lines[start + 1 :]:
            if line and not line[0].isspace():
                return line.strip()[:2048]
    for line in reversed(lines):
        if line.strip():
            return line.strip()[:2048]
    return f"Command failed with exit code {returncode}"


@dataclass
class RunSpec:
    """What one job run needs from the job definition and StartJobRun."""

    job_name: str
    run_id: str
    script_location: str
    arguments: dict[str, str]
    region: str
    log_group: str  # "/aws-glue/python-jobs": output goes to <group>/output, errors to <group>/error
    timeout_s: float
    extra_py_files: list[str] = field(default_factory=list)


@dataclass
class Outcome:
    state: str  # SUCCEEDED | FAILED | STOPPED | TIMEOUT
    error_message: str | None = None
    returncode: int | None = None


class LogShipper:
    """Buffers lines per (group, stream) and ships them to CloudWatch Logs in batches."""

    def __init__(self, logs_client):
        self.client = logs_client
        self.lock = threading.Lock()
        self.pending: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.created: set[tuple[str, str]] = set()

    def add(self, group: str, stream: str, message: str) -> None:
        message = message.rstrip("\r\n")
        if not message:
            return  # CloudWatch Logs rejects empty messages
        data = message.encode("utf-8")
        if len(data) > _MAX_EVENT_BYTES:
            message = data[:_MAX_EVENT_BYTES].decode("utf-8", "ignore")
        with self.lock:
            self.pending.setdefault((group, stream), []).append(
                {"timestamp": int(time.time() * 1000), "message": message}
            )

    def _ensure(self, group: str, stream: str) -> None:
        if (group, stream) in self.created:
            return
        for call, kwargs in (
            (self.client.create_log_group, {"logGroupName": group}),
            (self.client.create_log_stream, {"logGroupName": group, "logStreamName": stream}),
        ):
            try:
                call(**kwargs)
            except self.client.exceptions.ResourceAlreadyExistsException:
                pass
        self.created.add((group, stream))

    def create(self, group: str, stream: str) -> None:
        """Create the group and stream up front (Glue creates them when the run starts)."""
        try:
            self._ensure(group, stream)
        except Exception:
            log.exception("could not create log stream %s %s", group, stream)

    def flush(self) -> None:
        with self.lock:
            pending, self.pending = self.pending, {}
        for (group, stream), events in pending.items():
            try:
                self._ensure(group, stream)
                batch: list[dict[str, Any]] = []
                size = 0
                for event in events:
                    event_size = len(event["message"].encode("utf-8")) + 26
                    if batch and (size + event_size > _MAX_BATCH_BYTES or len(batch) >= _MAX_BATCH_EVENTS):
                        self._put(group, stream, batch)
                        batch, size = [], 0
                    batch.append(event)
                    size += event_size
                if batch:
                    self._put(group, stream, batch)
            except Exception:
                log.exception("could not ship %d log events to %s %s", len(events), group, stream)

    def _put(self, group: str, stream: str, events: list[dict[str, Any]]) -> None:
        self.client.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)


class JobRunner:
    """Runs one job run to its end. ``stop`` (an Event) asks for BatchStopJobRun's kill."""

    def __init__(self, twin, spec: RunSpec, stop: threading.Event):
        self.twin = twin
        self.spec = spec
        self.stop = stop
        self.proc: subprocess.Popen | None = None
        self.stderr_tail: deque[str] = deque(maxlen=400)
        self.shipper = LogShipper(twin.client("logs", spec.region))
        base = Path(twin.work_dir or "/tmp") / "glue" / spec.job_name.replace("/", "_") / spec.run_id
        self.run_dir = base

    # -- preparation ------------------------------------------------------------------------
    def _download(self, uri: str, dest_dir: Path) -> Path:
        bucket, key = parse_s3_uri(uri)
        dest = dest_dir / Path(key).name
        s3 = self.twin.client("s3", self.spec.region)
        try:
            s3.download_file(bucket, key, str(dest))
        except Exception as exc:  # NoSuchKey / 404 / NoSuchBucket
            raise FileNotFoundError(f"Script not found at {uri}: {exc}") from exc
        return dest

    def _env(self, python_path: list[str]) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AWS_", "AIRFLOW_CONN_")) and k not in ("PYTHONPATH", "PYTHONHOME")
        }
        env.update(
            {
                "AWS_ENDPOINT_URL": self.twin.url,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": self.spec.region,
                "AWS_REGION": self.spec.region,
                "PYTHONPATH": os.pathsep.join(python_path),
                "PYTHONUNBUFFERED": "1",
                "GLUE_JOB_NAME": self.spec.job_name,
                "GLUE_JOB_RUN_ID": self.spec.run_id,
            }
        )
        return env

    # -- running ----------------------------------------------------------------------------
    def _pump(self, pipe, group: str, keep_tail: bool, path: Path) -> None:
        with open(path, "ab") as copy:
            for raw in iter(pipe.readline, b""):
                copy.write(raw)
                line = raw.decode("utf-8", "replace")
                if keep_tail:
                    self.stderr_tail.append(line)
                self.shipper.add(group, self.spec.run_id, line)
        pipe.close()

    def start(self) -> None:
        """Download the script (and ``--extra-py-files``) and start the process."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        script = self._download(self.spec.script_location, self.run_dir)
        extra_dir = self.run_dir / "extra"
        python_path = [str(SHIM_DIR)]
        for uri in self.spec.extra_py_files:
            extra_dir.mkdir(exist_ok=True)
            path = self._download(uri, extra_dir)
            python_path.append(str(path) if path.suffix in (".zip", ".egg", ".whl") else str(extra_dir))
        python_path = list(dict.fromkeys(python_path))
        out_group, err_group = f"{self.spec.log_group}/output", f"{self.spec.log_group}/error"
        self.shipper.create(out_group, self.spec.run_id)
        self.shipper.create(err_group, self.spec.run_id)
        cmd = [sys.executable, str(script), *build_argv(self.spec.arguments)]
        self.proc = subprocess.Popen(
            cmd,
            cwd=self.run_dir,
            env=self._env(python_path),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group: a stop kills the children too
        )
        self.pumps = [
            threading.Thread(
                target=self._pump,
                args=(self.proc.stdout, out_group, False, self.run_dir / "stdout.log"),
                daemon=True,
            ),
            threading.Thread(
                target=self._pump,
                args=(self.proc.stderr, err_group, True, self.run_dir / "stderr.log"),
                daemon=True,
            ),
        ]
        for pump in self.pumps:
            pump.start()

    def _kill(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(5)

    def wait(self) -> Outcome:
        """Wait for the process; ship logs about once a second; honour stop and timeout."""
        assert self.proc is not None
        started = time.monotonic()
        last_flush = started
        ended_by: str | None = None
        while self.proc.poll() is None:
            if self.stop.wait(0.2):
                ended_by = "STOPPED"
                self._kill()
                break
            if time.monotonic() - started > self.spec.timeout_s:
                ended_by = "TIMEOUT"
                self._kill()
                break
            if time.monotonic() - last_flush >= 1.0:
                self.shipper.flush()
                last_flush = time.monotonic()
        for pump in self.pumps:
            pump.join(10)
        self.shipper.flush()
        rc = self.proc.returncode
        if ended_by == "STOPPED":
            return Outcome("STOPPED", None, rc)
        if ended_by == "TIMEOUT":
            minutes = self.spec.timeout_s / 60
            return Outcome(
                "TIMEOUT",
                f"Job run timed out after {minutes:g} minutes (job timeout), the process was killed.",
                rc,
            )
        if rc == 0:
            return Outcome("SUCCEEDED", None, rc)
        return Outcome("FAILED", error_message(list(self.stderr_tail), rc), rc)

    def cleanup(self) -> None:
        if os.environ.get("AWS_TWIN_KEEP_GLUE_RUNS") != "1":
            shutil.rmtree(self.run_dir / "extra", ignore_errors=True)
