"""``make demo``: run the churn XGBoost pipeline end to end on aws_twin, offline.

1. starts a twin (``aws_twin.testing.start_twin``) on $TWIN_PORT, or on a free port when that is busy
   or unset;
2. prepares AIRFLOW_HOME (default ``./.airflow-demo``, apart from ``make up``'s; ``airflow db migrate``
   when its DB is not there yet) and points the ``aws_default`` connection at the twin
   (``AIRFLOW_CONN_AWS_DEFAULT``) and the report link at the twin's object viewer (its token in
   ``AWS_TWIN_VIEWER_TOKEN``);
3. runs ``churn_xgboost_pipeline`` with ``dag.test()`` (the deferred waits run inline); Airflow's and the
   tasks' logs go to ``<AIRFLOW_HOME>/demo.log``, the console shows only their warnings and errors;
4. stops the twin (unless ``--keep-twin``) and prints what happened: the task states, the metrics, how
   to open the HTML report (the twin's URL with its token, and the S3 URI), ending with one JSON line:
   ``{"dag_id", "state", "test_auc", "accuracy", "endpoint_name", "prediction", "report_url", ...}``.

Exits 1 when the run did not succeed. Options: ``--conf '{"num_round": 50}'`` (DAG Params),
``-v`` / ``--verbose`` (every log line on the console, as it comes; ``make demo V=1``),
``--keep-twin`` (leave the twin, and so the report, reachable; ``make demo KEEP=1``).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DAG_ID = "churn_xgboost_pipeline"
#: Airflow's [aws] session_factory for the hooks (one botocore loader per process)
SESSION_FACTORY = "aws_ml_provider.hooks.session_factory.SharedLoaderSessionFactory"
#: ``dag.test()`` runs every task, the deferred waits and Airflow's execution API in one process, whose
#: heap grows to about a million objects; Python's full collections (one after every 10 younger ones)
#: scan all of it, 0.1-0.4 s each: about 2 s of a 12-s churn run. One after every 1,000 makes the
#: run about 10 s, for some 20 MB more (bench/pipeline_bench.py --default-gc measures without).
FULL_GC_AFTER = 1000
#: a log line the quiet console still shows: a warning or an error, in Airflow's / structlog's /
#: Python logging's formats (``[warning  ]``, ``WARNING -``, ``level=error``), and a traceback's first
#: and last lines (``Traceback ...``, ``botocore.errorfactory.EntityNotFoundException: ...``)
ALERT = re.compile(
    r"(?i:\[(warn|warning|error|critical|exception)\s*\]|\blevel=(warning|error|critical)\b)"
    r"|\b(WARNING|ERROR|CRITICAL|FATAL)\b|^Traceback |^[A-Za-z_][\w.]*(Error|Exception)(: |$)"
)
#: ... but not the libraries' deprecation notices (``[py.warnings] category=DeprecationWarning``):
#: nothing a demo user can act on; they stay in the log file
NOISE = re.compile(r"category=\w*(Deprecat|FutureWarning)")


def alert(line: str) -> bool:
    return bool(ALERT.search(line)) and not NOISE.search(line)


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
    # the hooks' boto3 sessions share one botocore loader (aws_ml_provider.hooks.session_factory)
    os.environ.setdefault("AIRFLOW__AWS__SESSION_FACTORY", SESSION_FACTORY)
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


@contextlib.contextmanager
def logs_to_file(path: Path, show=alert):
    """Send everything written to file descriptors 1 and 2 (Airflow's logging, the tasks' output,
    warnings, subprocesses) to ``path``; echo the lines ``show`` matches to the real stderr as they come."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    read_fd, write_fd = os.pipe()
    console = os.fdopen(os.dup(saved[1]), "w", buffering=1, errors="replace")
    shown = [0]

    def pump() -> None:
        with open(read_fd, "rb") as pipe, open(path, "ab") as log:
            for raw in pipe:
                log.write(raw)
                log.flush()
                line = raw.decode(errors="replace")
                if show(line):
                    console.write(line)
                    shown[0] += 1

    thread = threading.Thread(target=pump, name="demo-log", daemon=True)
    thread.start()
    os.dup2(write_fd, 1)
    os.dup2(write_fd, 2)
    os.close(write_fd)
    try:
        yield shown
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)  # the pipe's last writers close: the pump thread ends
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)
        thread.join(30)
        console.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conf", default="{}", help="DAG run conf (Params) as JSON")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="print every log line (default: warnings and errors)"
    )
    parser.add_argument(
        "--keep-twin", action="store_true", help="leave the twin running, so the report stays reachable"
    )
    args = parser.parse_args(argv)
    conf = json.loads(args.conf)

    prepare_airflow_home(Path(os.environ.get("AIRFLOW_HOME") or ROOT / ".airflow-demo").resolve())
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
    # the evaluate task's "Report" link: the twin's object viewer, with its token
    os.environ["AWS_TWIN_VIEWER_TOKEN"] = twin.viewer_token
    log_path = Path(os.environ["AIRFLOW_HOME"]) / "demo.log"
    gc.set_threshold(*gc.get_threshold()[:2], FULL_GC_AFTER)
    try:
        if args.verbose:
            summary = run_pipeline(conf)
            report(summary)
        else:
            log_path.write_text("")
            print(f"running {DAG_ID} (a few minutes; warnings and errors only, -v for all); log: {log_path}")
            with logs_to_file(log_path):
                summary = run_pipeline(conf)
            report(summary)
            print(f"full log: {log_path}")
        summary["seconds"] = round(time.perf_counter() - started, 1)
        violations = twin.control("state").get("violations", [])
        if violations:
            summary["twin_violations"] = violations
    finally:
        if args.keep_twin:
            print(
                f"\naws_twin left running at {twin.url} (pid {twin.process.pid}); the report stays "
                f"reachable until you stop it: kill {twin.process.pid}",
                flush=True,
            )
        else:
            twin.stop()
    if summary.get("report_url") and not args.keep_twin:
        print("(the twin has stopped: `make demo KEEP=1` keeps it, and the report link, up)")

    print(json.dumps({k: v for k, v in summary.items() if k not in ("task_states", "metrics")}), flush=True)
    return 0 if summary["state"] == "success" else 1


def report(summary: dict) -> None:
    """What the run did, for a person: task states, metrics, where the report is."""
    print("\ntask states:", flush=True)
    for task_id, state in summary["task_states"].items():
        print(f"  {task_id:24} {state}")
    metrics = summary.get("metrics") or {}
    if metrics:
        shown = {k: metrics[k] for k in ("auc", "accuracy", "precision", "recall", "f1") if k in metrics}
        print(f"\ntest metrics: {json.dumps(shown)}")
        print(f"model package: {summary.get('model_package_arn')}")
    if summary.get("report_uri"):
        print(f"\nreport (HTML): {summary.get('report_url') or '(no link)'}")
        print(f"          S3: {summary['report_uri']}")
    if summary.get("quality_gate"):
        print(f"quality gate: {summary['quality_gate']}")
    sys.stdout.flush()


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
    metrics = xcoms.get(("evaluate.evaluate", "metrics")) or {}
    smoke = xcoms.get(("deploy.smoke_test", "return_value")) or {}
    state = dagrun.state.value if hasattr(dagrun.state, "value") else str(dagrun.state)
    order = [t.task_id for t in dag.topological_sort()] if hasattr(dag, "topological_sort") else list(states)
    predictions = smoke.get("sample_predictions") or []
    summary = {
        "dag_id": DAG_ID,
        "run_id": dagrun.run_id,
        "state": state,
        "test_auc": metrics.get("auc"),
        "accuracy": metrics.get("accuracy"),
        "endpoint_name": smoke.get("endpoint_name"),
        "prediction": predictions[0] if predictions else None,
        "sample_predictions": predictions[:5],
        "report_uri": xcoms.get(("evaluate.evaluate", "report_uri")),
        # the evaluate task's "Report" extra link (the twin's object viewer, with its token)
        "report_url": xcoms.get(("evaluate.evaluate", "_link_S3ReportLink")) or None,
        "model_package_arn": xcoms.get(("deploy.register_model", "return_value")),
        "quality_gate": (xcoms.get(("evaluate.quality_gate", "gate_verdict")) or {}).get("message"),
        "failed_tasks": sorted(t for t, s in states.items() if s in ("failed", "upstream_failed")),
    }
    # for report(); not in the JSON line
    summary["task_states"] = {t: states.get(t) for t in order}
    summary["metrics"] = metrics
    return summary


if __name__ == "__main__":
    sys.exit(main())
