"""Airflow set-up shared by the end-to-end DAG tests.

tests/conftest.py gives the session its own AIRFLOW_HOME (sqlite) before Airflow is imported; here:

- ``airflow_db``: ``airflow db migrate`` once per session;
- ``airflow_twin``: the ``aws_default`` connection (``AIRFLOW_CONN_AWS_DEFAULT``) pointing at the
  session twin, for the whole session (the DAG's tasks and triggers read it);
- ``run_dag(dag_id, conf)``: parses the DAG file afresh and runs it with ``dag.test()`` (deferrable
  operators run their triggers inline), returning a :class:`DagRunResult` with the run's state, the
  state of every task and its XComs.

``deployment`` and ``pg_database`` (tests/deployment.py): the Airflow components as separate
processes on PostgreSQL, for tests/e2e/test_deployment.py.

The deferred waits of the DAGs poll every ``AWS_ML_WAITER_DELAY`` seconds (1 here; 30 on AWS).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.deployment import deployment, pg_database  # noqa: F401  (fixtures: tests/deployment.py)

ROOT = Path(__file__).resolve().parents[2]
os.environ.setdefault("AWS_ML_WAITER_DELAY", "1")


@dataclass
class DagRunResult:
    dag_id: str
    run_id: str
    state: str
    task_states: dict[str, str | None]
    xcoms: dict[tuple[str, str], object] = field(default_factory=dict)

    def xcom(self, task_id: str, key: str = "return_value"):
        return self.xcoms.get((task_id, key))


@pytest.fixture(scope="session")
def airflow_db() -> str:
    """Migrate the session's metadata DB once."""
    home = os.environ["AIRFLOW_HOME"]
    proc = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ.copy(),
    )
    assert proc.returncode == 0, f"airflow db migrate failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return home


@pytest.fixture(scope="session")
def airflow_twin(twin, airflow_db):
    """aws_default -> the session twin, for the whole session."""
    conn = {
        "conn_type": "aws",
        "login": "testing",
        "password": "testing",
        "extra": {"endpoint_url": twin.url, "region_name": "us-east-1"},
    }
    saved = {k: os.environ.get(k) for k in ("AIRFLOW_CONN_AWS_DEFAULT", "AWS_DEFAULT_REGION")}
    os.environ["AIRFLOW_CONN_AWS_DEFAULT"] = json.dumps(conn)
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
    yield twin
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def load_dag(dag_id: str, dag_file: str | None = None):
    """Parse the DAG's file afresh (so environment settings made by the tests apply)."""
    from airflow.dag_processing.dagbag import DagBag

    path = ROOT / "dags" / (dag_file or f"{dag_id}.py")
    bag = DagBag(dag_folder=str(path))
    assert not bag.import_errors, bag.import_errors
    return bag.dags[dag_id]


def run_dag(
    dag_id: str, conf: dict | None = None, dag_file: str | None = None, adjust=None, **test_kwargs
) -> DagRunResult:
    """Run the DAG once with ``dag.test()`` and collect what it left in the metadata DB;
    ``test_kwargs`` go to ``dag.test`` (``logical_date`` and ``run_after`` fix the run id);
    ``adjust(dag)``, when given, changes the parsed DAG first (a task's retries, say)."""
    from airflow import settings
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from sqlalchemy import select

    dag = load_dag(dag_id, dag_file)
    if adjust is not None:
        adjust(dag)
    dagrun = dag.test(run_conf=conf or {}, **test_kwargs)
    with settings.Session() as session:
        tis = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == dagrun.run_id)
        ).all()
        rows = session.scalars(
            select(XComModel).where(XComModel.dag_id == dag_id, XComModel.run_id == dagrun.run_id)
        ).all()
        xcoms = {(x.task_id, x.key): XComModel.deserialize_value(x) for x in rows}
        states = {ti.task_id: (str(getattr(ti.state, "value", ti.state)) if ti.state else None) for ti in tis}
    state = dagrun.state.value if hasattr(dagrun.state, "value") else str(dagrun.state)
    return DagRunResult(dag_id, dagrun.run_id, state, states, xcoms)


@pytest.fixture(scope="session")
def dag_runner(airflow_twin):
    """``run_dag`` with the DB migrated and aws_default on the twin."""
    return run_dag
