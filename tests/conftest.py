"""Shared fixtures: one aws_twin per test session, started on a free port with --strict (every
twin response is validated against botocore's output shape; violations fail the session)."""

from __future__ import annotations

import atexit
import gc
import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest

from aws_twin.testing import RunningTwin, start_twin

ROOT = Path(__file__).resolve().parents[1]

# Airflow reads AIRFLOW_HOME and its metadata DB URL when first imported: give the test session a
# home of its own before any test module imports it (tests/e2e/conftest.py migrates its DB once).
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="airflow-tests-")
os.environ.update(
    {
        "AIRFLOW_HOME": _AIRFLOW_HOME,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_AIRFLOW_HOME}/airflow.db",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # as the demo, make up and docker-compose: the hooks' sessions share one botocore loader
        "AIRFLOW__AWS__SESSION_FACTORY": "aws_ml_provider.hooks.session_factory.SharedLoaderSessionFactory",
    }
)
atexit.register(shutil.rmtree, _AIRFLOW_HOME, ignore_errors=True)
# as make demo's dag.test() process (scripts/demo.py FULL_GC_AFTER): one heap holds Airflow, its
# execution API and every test's imports; a full collection after every 1,000 younger ones, not 10
gc.set_threshold(*gc.get_threshold()[:2], 1000)


#: markers whose tests are long runs (a whole DAG, a deployment, a browser): they carry ``slow`` too, and
#: ``make test`` leaves ``slow`` out; ``make test SLOW=1`` (CI, ``.ci/run``) runs everything
LONG_RUN_MARKERS = ("e2e", "browser", "deployment")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    for item in items:
        if any(item.get_closest_marker(name) for name in LONG_RUN_MARKERS):
            item.add_marker(pytest.mark.slow)


def _need(available: bool, what: str) -> None:
    if available:
        return
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(f"{what} is missing (required under CI)", pytrace=False)
    pytest.skip(f"{what} is missing")


@pytest.fixture(scope="session")
def need():
    """``need(available, what)``: skip a test whose external dependency (Chromium, the ../shared
    data) is absent on a developer machine, but fail it under CI (``CI`` set), where those
    dependencies are provided, so a missing one cannot pass unnoticed as a skip."""
    return _need


@pytest.fixture(scope="session")
def twin(tmp_path_factory) -> RunningTwin:
    log = tmp_path_factory.mktemp("twin") / "twin.log"
    running = start_twin(0, log_path=str(log))
    os.environ["AWS_TWIN_URL"] = running.url
    # the twin's object viewer token, as make up / make demo pass it to Airflow (S3ReportLink reads it)
    os.environ["AWS_TWIN_VIEWER_TOKEN"] = running.viewer_token
    yield running
    try:
        violations = running.control("state").get("violations", [])
    finally:
        running.stop()
    assert not violations, "twin responses that do not fit botocore's models:\n" + "\n".join(violations)


@pytest.fixture(scope="session")
def s3(twin):
    """A boto3 S3 client of the twin."""
    return twin.client("s3")


@pytest.fixture(scope="session")
def sm(twin):
    """A boto3 SageMaker client of the twin."""
    return twin.client("sagemaker")


@pytest.fixture
def boto(twin):
    """A boto3 session (credentials, region) whose clients need ``endpoint_url=twin.url``."""
    return twin.session()


@pytest.fixture
def bucket(twin) -> str:
    """A fresh S3 bucket on the twin."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    twin.client("s3").create_bucket(Bucket=name)
    return name


@pytest.fixture
def airflow_aws_conn(twin, monkeypatch):
    """Point Airflow's aws_default connection at the twin, the only change a DAG needs offline."""
    conn = twin.airflow_connection()
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(conn))
    monkeypatch.setenv("AWS_DEFAULT_REGION", twin.region)
    return conn


@pytest.fixture(scope="module")
def aws(twin):
    """``airflow_aws_conn`` for a whole module (for module-scoped setup that runs operators)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(twin.airflow_connection()))
        mp.setenv("AWS_DEFAULT_REGION", twin.region)
        yield twin


@pytest.fixture(scope="session")
def review_token(twin) -> str:
    """The token of the twin's A2I review page (printed by the twin at start-up)."""
    assert "token=" in twin.review_url, twin.output
    return twin.review_url.split("token=", 1)[1]


class FakeTI:
    """What the provider's operators read from the task instance: identity, try number,
    ``xcom_push`` (console links), ``xcom_pull`` of its own XComs and the first reschedule date (a sensor's first poke)."""

    def __init__(self, dag_id="test_dag", run_id="manual__2026-01-01", task_id="task", try_number=1):
        self.dag_id, self.run_id, self.task_id, self.try_number = dag_id, run_id, task_id, try_number
        self.map_index = -1
        self.xcoms: dict = {}

    def xcom_push(self, key, value):
        self.xcoms[key] = value

    def xcom_pull(self, key="return_value", task_ids=None, **kw):
        """This task's own XCom (what the Glue operator's ``resume_glue_job_on_retry`` reads)."""
        return self.xcoms.get(key) if task_ids in (None, self.task_id) else None

    def get_first_reschedule_date(self, context):
        return None


@pytest.fixture(scope="session")
def task_context():
    """``task_context(task_id=..., try_number=..., run_id=..., dag_id=...)``: the context dict an
    operator's ``execute`` gets, around a :class:`FakeTI`."""

    def make(**kw) -> dict:
        ti = FakeTI(**kw)
        return {"ti": ti, "task_instance": ti, "run_id": ti.run_id}

    return make
