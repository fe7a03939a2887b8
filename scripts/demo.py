"""``make demo``: run the churn XGBoost pipeline end to end on aws_twin, offline.

1. starts a twin (``aws_twin.testing.start_twin``) on $TWIN_PORT, or on a free port when that is busy
   or unset;
2. prepares AIRFLOW_HOME (default ``./.airflow``; ``airflow db migrate`` when its DB is not there yet)
   and points the ``aws_default`` connection at the twin (``AIRFLOW_CONN_AWS_DEFAULT``);
3. runs ``churn_xgboost_pipeline`` with ``dag.test()`` (the deferred waits run inline);
4. stops the twin and prints what happened, ending with one JSON line:
   ``{"dag_id", "state", "test_auc", "accuracy", "endpoint_name", "prediction", ...}``.

Exits 1 when the run did not succeed. Options: ``--conf '{"num_round": 50}'`` (DAG Params),
``--keep-twin`` (leave the twin running, print its URL).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DAG_ID = "churn_xgboost_pipeline"


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def prepare_airflow_home(home: Path) -> None:
    """Environment for Airflow (set before it is imported) and a migrated metadata DB."""
    home.mkdir(parents=True, exist_ok=True)
    os.environ["AIRFLOW_HOME"] = str(home)
    os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{home}/airflow.db")
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
    os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(ROOT / "plugins")
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ.setdefault("AWS_ML_WAITER_DELAY", "1")
    marker = home / ".demo-migrated"
    if marker.exists() and (home / "airflow.db").exists():
        return
    print(f"airflow db migrate ({home})", flush=True)
    proc = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"airflow db migrate failed with exit code {proc.returncode}")
    marker.write_text("ok\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conf", default="{}", help="DAG run conf (Params) as JSON")
    parser.add_argument("--keep-twin", action="store_true", help="leave the twin running")
    args = parser.parse_args(argv)
    conf = json.loads(args.conf)

    prepare_airflow_home(Path(os.environ.get("AIRFLOW_HOME") or ROOT / ".airflow").resolve())
    sys.path.insert(0, str(ROOT))
    from aws_twin.testing import start_twin

    wanted = int(os.environ.get("TWIN_PORT") or 0)
    port = wanted if wanted and port_free(wanted) else 0
    twin_log = Path(os.environ["AIRFLOW_HOME"]) / "twin.log"
    started = time.perf_counter()
    twin = start_twin(port, strict=True, log_path=str(twin_log))
    print(f"aws_twin at {twin.url} (log: {twin_log})", flush=True)
    os.environ["AIRFLOW_CONN_AWS_DEFAULT"] = json.dumps(
        {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {"endpoint_url": twin.url, "region_name": "us-east-1"},
        }
    )
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
    try:
        summary = run_pipeline(conf)
        summary["seconds"] = round(time.perf_counter() - started, 1)
        violations = twin.control("state").get("violations", [])
        if violations:
            summary["twin_violations"] = violations
    finally:
        if args.keep_twin:
            print(f"twin left running at {twin.url} (pid {twin.process.pid})", flush=True)
        else:
            twin.stop()

    print(json.dumps(summary), flush=True)
    return 0 if summary["state"] == "success" else 1


def run_pipeline(conf: dict) -> dict:
    from airflow import settings
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from sqlalchemy import select

    bag = DagBag(dag_folder=str(ROOT / "dags" / f"{DAG_ID}.py"))
    if bag.import_errors:
        raise SystemExit(f"DAG import errors: {bag.import_errors}")
    dag = bag.dags[DAG_ID]
    dagrun = dag.test(run_conf=conf)
    with settings.Session() as session:
        tis = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == DAG_ID, TaskInstance.run_id == dagrun.run_id)
        ).all()
        xcoms = {
            (x.task_id, x.key): XComModel.deserialize_value(x)
            for x in session.scalars(
                select(XComModel).where(XComModel.dag_id == DAG_ID, XComModel.run_id == dagrun.run_id)
            ).all()
        }
    states = {ti.task_id: (str(getattr(ti.state, "value", ti.state)) if ti.state else None) for ti in tis}
    metrics = xcoms.get(("evaluate", "metrics")) or {}
    smoke = xcoms.get(("smoke_test", "return_value")) or {}
    state = dagrun.state.value if hasattr(dagrun.state, "value") else str(dagrun.state)
    print("\ntask states:", flush=True)
    for task_id in (
        [t.task_id for t in dag.topological_sort()] if hasattr(dag, "topological_sort") else states
    ):
        print(f"  {task_id:24} {states.get(task_id)}", flush=True)
    if metrics:
        print(
            f"\ntest metrics: {json.dumps({k: metrics[k] for k in ('auc', 'accuracy', 'precision', 'recall', 'f1')})}"
        )
        print(f"report: {xcoms.get(('evaluate', 'report_uri'))}")
        print(f"model package: {xcoms.get(('register_model', 'return_value'))}")
    predictions = smoke.get("sample_predictions") or []
    return {
        "dag_id": DAG_ID,
        "run_id": dagrun.run_id,
        "state": state,
        "test_auc": metrics.get("auc"),
        "accuracy": metrics.get("accuracy"),
        "endpoint_name": smoke.get("endpoint_name"),
        "prediction": predictions[0] if predictions else None,
        "sample_predictions": predictions[:5],
        "report_uri": xcoms.get(("evaluate", "report_uri")),
        "model_package_arn": xcoms.get(("register_model", "return_value")),
        "quality_gate": (xcoms.get(("quality_gate", "gate_verdict")) or {}).get("message"),
        "failed_tasks": sorted(t for t, s in states.items() if s in ("failed", "upstream_failed")),
    }


if __name__ == "__main__":
    sys.exit(main())
