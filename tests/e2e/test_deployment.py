"""A deployment-shaped run of churn_xgboost_pipeline: api-server, scheduler, dag-processor and triggerer as
separate processes on a fresh PostgreSQL database (LocalExecutor), a twin of its own, the run triggered
through the public REST API with a JWT from the simple auth manager, the deferred waits resumed by the
triggerer process, the run reaching success.

Needs PostgreSQL at 127.0.0.1:5432 (trust auth, user postgres); skipped when it does not answer. Each
process logs to tmp_path/logs/<name>.log; everything is stopped and the database dropped in teardown,
pass or fail.
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
from pathlib import Path

import pytest

from aws_twin.testing import start_twin

ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "churn_xgboost_pipeline"
#: the tasks of the DAG that defer (Glue run, training job, endpoint creation)
DEFERRING_TASKS = {"preprocess", "train", "create_endpoint"}
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
#: the access key of the Airflow processes' aws_default connection: on the twin it tells their calls
#: from those of the Glue job and the training job (which run as their own roles on AWS)
AIRFLOW_ACCESS_KEY = "AKIAMWAAEXECUTIONROLE"
MWAA_POLICY = ROOT / "include" / "iam" / "mwaa-execution-role-policy.json"
#: botocore model -> IAM service prefix, where they differ
IAM_PREFIX = {"sagemaker-runtime": "sagemaker", "sagemaker-a2i-runtime": "sagemaker"}
#: the twin names S3 calls by method and target; the IAM action each needs
S3_ACTIONS = {
    "GetObject": "s3:GetObject",
    "HeadObject": "s3:GetObject",
    "PutObject": "s3:PutObject",
    "PostObject": "s3:PutObject",
    "DeleteObject": "s3:DeleteObject",
    "PostBucket": "s3:DeleteObject",
    "HeadBucket": "s3:ListBucket",
    "GetBucket": "s3:ListBucket",
    "PutBucket": "s3:CreateBucket",
}
#: actions every principal may call without a permission
NO_PERMISSION_NEEDED = {"sts:GetCallerIdentity"}
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")

pytestmark = [pytest.mark.deployment, pytest.mark.timeout(1200)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def pg_database():
    import psycopg2  # psycopg2-binary is a requirement: only the server may be absent

    try:
        admin = psycopg2.connect(dbname="postgres", connect_timeout=3, **PG)
    except psycopg2.OperationalError as exc:
        pytest.skip(f"no PostgreSQL at {PG['host']}:{PG['port']}: {exc}")
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


def _query(db: str, sql: str, *args) -> list[tuple]:
    import psycopg2

    with psycopg2.connect(dbname=db, **PG) as conn, conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchall()


class Deployment:
    def __init__(self, tmp_path: Path, db: str, twin_url: str):
        self.logs = tmp_path / "logs"
        self.logs.mkdir()
        self.home = tmp_path / "airflow_home"
        self.port = _free_port()
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
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(_free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(_free_port()),
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


def test_dag_run_through_the_rest_api_with_deferrals_resumed_by_the_triggerer(deployment):
    dep = deployment
    started = time.monotonic()
    # every component heartbeats into the same PostgreSQL database, as separate jobs
    jobs = dict(
        _query(dep.db, "SELECT job_type, count(*) FROM job WHERE state = 'running' GROUP BY job_type")
    )
    assert {"SchedulerJob", "TriggererJob", "DagProcessorJob"} <= set(jobs), jobs
    (triggerer_job_id,) = _query(dep.db, "SELECT id FROM job WHERE job_type = 'TriggererJob'")[0]

    # the dag-processor parses every DAG of dags/ without an import error
    dag_files = [p for p in (ROOT / "dags").glob("*.py") if "dag" in p.read_text()]
    dep.wait(
        "the DAGs to be parsed",
        lambda: dep.request("GET", "/api/v2/dags")["total_entries"] >= len(dag_files),
        timeout=180,
    )
    errors = dep.request("GET", "/api/v2/importErrors")
    assert errors["total_entries"] == 0, errors
    plugins = {p["name"] for p in dep.request("GET", "/api/v2/plugins")["plugins"]}
    assert "aws_ml_provider" in plugins

    # configure as an operator would: a Variable, then unpause and trigger with conf
    bucket = f"deploy-{uuid.uuid4().hex[:10]}"
    dep.twin.client("s3").create_bucket(Bucket=bucket)  # the deployer creates the data bucket
    dep.request("POST", "/api/v2/variables", {"key": "ml_bucket", "value": bucket})
    dag = dep.request("GET", f"/api/v2/dags/{DAG_ID}")
    assert dag["is_paused"] is True  # paused at creation, as configured
    dep.request("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False})
    run = dep.request(
        "POST", f"/api/v2/dags/{DAG_ID}/dagRuns", {"logical_date": None, "conf": {"num_round": 10}}
    )
    run_id = run["dag_run_id"]
    assert run["conf"] == {"num_round": 10}

    seen: dict[str, set] = {}

    def finished():
        tis = dep.request("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances?limit=100")
        for ti in tis["task_instances"]:
            seen.setdefault(ti["task_id"], set()).add(ti["state"])
        state = dep.request("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")["state"]
        return state if state in {"success", "failed"} else None

    state = dep.wait(f"{DAG_ID} run {run_id}", finished, timeout=900, interval=1.0)
    run_seconds = time.monotonic() - started
    final = {
        t: s for t, s in _query(dep.db, "SELECT task_id, state FROM task_instance WHERE run_id = %s", run_id)
    }
    assert state == "success", f"run {state}: {final}\n--- scheduler ---\n{dep.tail('scheduler')}"
    assert _query(dep.db, "SELECT state FROM dag_run WHERE run_id = %s", run_id) == [("success",)]
    assert set(final.values()) <= {"success", "skipped"}, final

    # the deferring tasks went through DEFERRED and were resumed after the triggerer process fired
    # their trigger: the task log shows the deferral and the triggerer job's own log file for the
    # attempt (attempt=1.log.trigger.<triggerer job id>.log) shows the event it fired
    assert DEFERRING_TASKS <= set(final)
    run_logs = dep.home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}"
    for task_id in DEFERRING_TASKS:
        task_log = (run_logs / f"task_id={task_id}" / "attempt=1.log").read_text()
        assert "Pausing task as DEFERRED" in task_log, task_id
        trigger_log = run_logs / f"task_id={task_id}" / f"attempt=1.log.trigger.{triggerer_job_id}.log"
        events = [json.loads(line) for line in trigger_log.read_text().splitlines() if line.startswith("{")]
        fired = [e for e in events if e.get("event") == "Trigger fired event"]
        assert fired and "'status': 'success'" in fired[-1]["result"], (task_id, events[-3:])
        assert final[task_id] == "success"
    # and the REST API showed at least one of them in the deferred state while it waited
    assert any("deferred" in seen.get(t, set()) for t in DEFERRING_TASKS), seen

    # the work really happened on the twin, in the bucket the Variable named
    s3 = dep.twin.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="churn/runs/").get("Contents", [])]
    assert any(k.endswith("/output/model.tar.gz") for k in keys), keys
    metrics_key = next(k for k in keys if k.endswith("evaluation/metrics.json"))
    metrics = json.loads(s3.get_object(Bucket=bucket, Key=metrics_key)["Body"].read())
    assert "auc" in json.dumps(metrics)
    endpoint = dep.twin.client("sagemaker").describe_endpoint(EndpointName="churn-xgboost")
    assert endpoint["EndpointStatus"] == "InService"

    # every AWS call the Airflow processes made is an action the MWAA execution role policy allows
    calls = sorted(
        key.split(" ", 1)[1]
        for key in dep.twin.control("state")["calls"]
        if key.startswith(f"{AIRFLOW_ACCESS_KEY} ")
    )
    assert any(c.startswith("sagemaker:") for c in calls) and any(c.startswith("glue:") for c in calls), calls
    allowed = {
        action
        for statement in json.loads(MWAA_POLICY.read_text())["Statement"]
        if statement["Effect"] == "Allow"
        for action in (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
    }
    needed = {_iam_action(call) for call in calls}
    assert not needed - allowed - NO_PERMISSION_NEEDED, (
        f"not allowed by {MWAA_POLICY.name}: {needed - allowed}"
    )
    print(f"AWS operations called by Airflow: {calls}")

    dep.timings["dag_run_s"] = round(run_seconds, 1)
    print(f"deployment timings: {dep.timings}")


def _iam_action(call: str) -> str:
    service, operation = call.split(":", 1)
    if service == "s3":
        return S3_ACTIONS.get(operation, f"s3:{operation}")
    return f"{IAM_PREFIX.get(service, service)}:{operation}"
