"""Airflow set-up shared by the DAG benchmarks (``expense_dag_bench``, ``pipeline_bench``): a
private AIRFLOW_HOME with this repository's dags/ and plugins/, its metadata DB, and the
``aws_default`` connection pointing at a twin. Imported by the scripts in this folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# what make demo sets for its dag.test() process (the hooks' session factory, the full-collection
# threshold): the benches measure the run as the demo runs it
sys.path.insert(0, str(ROOT / "scripts"))
from demo import FULL_GC_AFTER, SESSION_FACTORY  # noqa: E402, F401 (FULL_GC_AFTER: for pipeline_bench)


def airflow_env(home: Path) -> None:
    """Point this process (and the Airflow it imports later) at ``home``; waits polled every 1 s."""
    os.environ["AIRFLOW_HOME"] = str(home)
    os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{home}/airflow.db"
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
    os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(ROOT / "plugins")
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    # as make demo: the hooks' boto3 sessions share one botocore loader (unless set otherwise)
    os.environ.setdefault("AIRFLOW__AWS__SESSION_FACTORY", SESSION_FACTORY)
    os.environ.setdefault("AWS_ML_WAITER_DELAY", "1")


def migrate_db() -> bool:
    """``airflow db migrate`` in a subprocess; prints its output and returns False when it fails."""
    proc = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], capture_output=True, text=True)
    if proc.returncode:
        print(proc.stdout[-2000:], proc.stderr[-2000:])
    return proc.returncode == 0


def point_aws_default_at(twin) -> None:
    """The ``aws_default`` connection (and the default region) of this process -> the twin."""
    os.environ["AIRFLOW_CONN_AWS_DEFAULT"] = json.dumps(twin.airflow_connection())
    os.environ["AWS_DEFAULT_REGION"] = twin.region
