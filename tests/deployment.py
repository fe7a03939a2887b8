"""A deployment-shaped Airflow for the tests: api-server, scheduler, dag-processor and triggerer as
separate processes (LocalExecutor) on a fresh PostgreSQL database, with the project's dags/ and
plugins/, the simple auth manager (every user an admin) and ``aws_default`` pointing at a twin of
its own. Used by tests/e2e/test_deployment.py and tests/browser/test_trigger_forms.py.

Fixtures (import them into the test module):

- ``pg_database``: a fresh database on PostgreSQL at 127.0.0.1:5432 (trust auth, user postgres),
  dropped afterwards; without a server the test skips on a developer machine and fails under CI
  (the ``need`` fixture of tests/conftest.py);
- ``deployment``: a :class:`Deployment` with every component healthy, for one test module; each
  process logs to <tmp>/logs/<name>.log; everything is stopped and the twin checked for responses
  that do not fit botocore's models in teardown, pass or fail.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aws_twin.testing import start_twin

ROOT = Path(__file__).resolve().parents[1]
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
#: the access key of the Airflow processes' aws_default connection: on the twin it tells their calls
#: from those of the Glue job and the training job (which run as their own roles on AWS)
AIRFLOW_ACCESS_KEY = "AKIAMWAAEXECUTIONROLE"
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def pg_database(need):
    import psycopg2  # psycopg2-binary is a requirement: only the server may be absent

    try:
        admin = psycopg2.connect(dbname="postgres", connect_timeout=3, **PG)
    except psycopg2.OperationalError as exc:
        need(False, f"PostgreSQL at {PG['host']}:{PG['port']} ({exc})")
    admin.autocommit = True
    name = f"airflow_deploy_{uuid.uuid4().hex[:10]}"
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def query(db: str, sql: str, *args) -> list[tuple]:
    import psycopg2

    with psycopg2.connect(dbname=db, **PG) as conn, conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchall()


class Deployment:
    def __init__(self, tmp_path: Path, db: str, twin_url: str):
        self.logs = tmp_path / "logs"
        self.logs.mkdir()
        self.home = tmp_path / "airflow_home"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = db
        self.processes: dict[str, subprocess.Popen] = {}
        self._token = None
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://postgres@127.0.0.1:5432/{db}",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": "4",
                "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                # the test session's (tests/conftest.py), as make up sets it
                "AIRFLOW__AWS__SESSION_FACTORY": os.environ["AIRFLOW__AWS__SESSION_FACTORY"],
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
                "AIRFLOW__CORE__AUTH_MANAGER": (
                    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
                ),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__BASE_URL": self.url,
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
                # shared by every process: the scheduler signs task tokens the api-server checks
                "AIRFLOW__API_AUTH__JWT_SECRET": uuid.uuid4().hex,
                "AIRFLOW__API__SECRET_KEY": uuid.uuid4().hex,
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
                "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(
                    {
                        "conn_type": "aws",
                        "login": AIRFLOW_ACCESS_KEY,
                        "password": "testing",
                        "extra": {"endpoint_url": twin_url, "region_name": "us-east-1"},
                    }
                ),
                "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_ML_WAITER_DELAY": "1",
                # churn_drift_monitor catches up hourly from its start date: from the last hour here
                "CHURN_DRIFT_START_DATE": (
                    datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
                ).isoformat(),
                "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            }
        )
        self.env = env

    # --- processes -----------------------------------------------------------------------------
    def airflow(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "airflow", *args],
            env=self.env,
            cwd=self.home.parent,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start(self, name: str, *args: str) -> None:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "airflow", name, *args],
            env=self.env,
            cwd=self.home.parent,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: teardown reaches its children too
        )
        log.close()

    def check_alive(self) -> None:
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                raise AssertionError(f"airflow {name} exited with {proc.returncode}:\n{self.tail(name)}")

    def tail(self, name: str, lines: int = 60) -> str:
        path = self.logs / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def stop(self) -> None:
        for proc in self.processes.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for proc in self.processes.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            with contextlib.suppress(
                ProcessLookupError, PermissionError
            ):  # whatever is left in the group (task workers, log servers)
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)

    # --- REST API ------------------------------------------------------------------------------
    def request(self, method: str, path: str, body: dict | None = None, auth: bool = True):
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token()}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.url}{path}", data=data, method=method, headers=headers)
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read() or b"null")

    def token(self) -> str:
        if self._token is None:
            # simple auth manager with all_admins: GET /auth/token hands out an admin JWT
            self._token = self.request("GET", "/auth/token", auth=False)["access_token"]
        return self._token

    def wait(self, what: str, check, timeout: float, interval: float = 1.0):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                last = check()
                if last:
                    return last
            except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
                last = exc
            time.sleep(interval)
        logs = "\n".join(f"--- {n} ---\n{self.tail(n, 30)}" for n in self.processes)
        raise AssertionError(f"timed out waiting for {what} (last: {last!r})\n{logs}")


@pytest.fixture(scope="module")
def deployment(pg_database, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("deployment")
    started = time.monotonic()
    twin = start_twin(0, log_path=str(tmp / "twin.log"))
    dep = Deployment(tmp, pg_database, twin.url)
    dep.env["AWS_TWIN_VIEWER_TOKEN"] = twin.viewer_token  # as make up passes it to Airflow
    dep.twin = twin
    try:
        migrate = dep.airflow("db", "migrate")
        assert migrate.returncode == 0, migrate.stdout[-3000:] + migrate.stderr[-3000:]
        dep.timings = {"migrate_s": round(time.monotonic() - started, 1)}
        for name in COMPONENTS:
            dep.start(name)

        def healthy():
            health = dep.request("GET", "/api/v2/monitor/health", auth=False)
            components = ("metadatabase", "scheduler", "triggerer", "dag_processor")
            return (
                health if all((health.get(c) or {}).get("status") == "healthy" for c in components) else None
            )

        dep.health = dep.wait("all components healthy", healthy, timeout=240, interval=2)
        dep.timings["components_up_s"] = round(time.monotonic() - started, 1)
        yield dep
    finally:
        dep.stop()
        try:
            violations = twin.control("state").get("violations", [])
        finally:
            twin.stop()
        print(f"deployment timings: {dep.__dict__.get('timings')}; logs in {dep.logs}")
    assert not violations, "twin responses that do not fit botocore's models:\n" + "\n".join(violations)
