"""Shared fixtures: one aws_twin per test session, started on a free port with --strict (every
twin response is validated against botocore's output shape; violations fail the session)."""

from __future__ import annotations

import atexit
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
    }
)
atexit.register(shutil.rmtree, _AIRFLOW_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def twin(tmp_path_factory) -> RunningTwin:
    log = tmp_path_factory.mktemp("twin") / "twin.log"
    running = start_twin(0, log_path=str(log))
    os.environ["AWS_TWIN_URL"] = running.url
    yield running
    try:
        violations = running.control("state").get("violations", [])
    finally:
        running.stop()
    assert not violations, "twin responses that do not fit botocore's models:\n" + "\n".join(violations)


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
    conn = {
        "conn_type": "aws",
        "login": "testing",
        "password": "testing",
        "extra": {"endpoint_url": twin.url, "region_name": "us-east-1"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(conn))
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return conn
