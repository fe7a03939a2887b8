"""Start a twin in a subprocess on a free port; used by the tests, the demo and the benchmarks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field

import boto3


@dataclass
class RunningTwin:
    url: str
    process: subprocess.Popen
    review_url: str = ""
    #: token of the S3 object viewer ``GET /_twin/s3/<bucket>/<key>?token=`` (printed at start-up)
    viewer_token: str = ""
    #: token of the control endpoints (``/_twin/reset``, ``/_twin/faults``, ``/_twin/state``),
    #: printed at start-up; :meth:`control` sends it
    control_token: str = ""
    output: list[str] = field(default_factory=list)
    region: str = "us-east-1"

    def session(self) -> boto3.Session:
        return boto3.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=self.region
        )

    def client(self, service: str, **kwargs):
        return self.session().client(service, endpoint_url=self.url, **kwargs)

    def viewer_url(self, bucket: str, key: str) -> str:
        """The twin's browser URL of an S3 object (``/_twin/s3/<bucket>/<key>?token=``)."""
        from urllib.parse import quote

        return f"{self.url}/_twin/s3/{quote(bucket)}/{quote(key)}?token={quote(self.viewer_token)}"

    def airflow_connection(self) -> dict:
        """Airflow's ``aws_default`` connection (``AIRFLOW_CONN_AWS_DEFAULT`` as JSON) pointing at
        this twin: the only change a DAG needs to run offline."""
        return {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {"endpoint_url": self.url, "region_name": self.region},
        }

    def control(self, path: str, method: str = "GET", body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.url}/_twin/{path}", data=data, method=method)
        req.add_header("Content-Type", "application/json")
        req.add_header("X-Twin-Control-Token", self.control_token)
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def reset(self) -> None:
        self.control("reset", "POST")

    def set_faults(self, *specs: str, rules: list[dict] | None = None) -> dict:
        return self.control("faults", "POST", {"specs": list(specs), "rules": rules or []})

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start_twin(
    port: int = 0,
    *args: str,
    strict: bool = True,
    env: dict | None = None,
    timeout: float = 120.0,
    log_path: str | None = None,
) -> RunningTwin:
    """Start ``python -m aws_twin serve`` and wait for its ready line."""
    cmd = [sys.executable, "-m", "aws_twin", "serve", "--host", "127.0.0.1", "--port", str(port), *args]
    if strict:
        cmd.append("--strict")
    full_env = {**os.environ, **(env or {})}
    full_env.setdefault("AWS_TWIN_LOG_LEVEL", "WARNING")
    stderr = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, env=full_env, text=True)
    deadline = time.monotonic() + timeout
    twin = RunningTwin(url="", process=proc)
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                raise RuntimeError(f"aws_twin exited with {proc.returncode}: {''.join(twin.output)}")
            continue
        twin.output.append(line)
        if line.startswith("aws_twin control token "):
            twin.control_token = line.split(" ", 3)[3].strip()
        if line.startswith("aws_twin review page "):
            twin.review_url = line.split(" ", 3)[3].strip()
        if line.startswith("aws_twin object viewer "):
            twin.viewer_token = line.strip().rsplit("?token=", 1)[1]
        if line.startswith("aws_twin ready "):
            twin.url = line.split(" ", 2)[2].strip()
            return twin
    proc.kill()
    raise RuntimeError("aws_twin did not become ready in time")
