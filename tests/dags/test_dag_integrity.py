"""Every file in dags/ imports cleanly, offline, and every DAG carries the metadata operators need.

Each file is parsed on its own with a DagBag while sockets are blocked (``socket.connect`` raises),
so a DAG that calls AWS, a Variable backend or anything else on the network at parse time fails
here with an import error naming the call. Heavy libraries (XGBoost, pandas, OCR, ...) must not be
imported at parse time either: a fresh interpreter parses every file and reports what each one
pulled in. The parse time of every file is printed (bench/pipeline_bench.py prints the figures).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
DAG_FILES = sorted(p for p in DAGS_DIR.glob("**/*.py") if "__pycache__" not in p.parts)
#: top-level packages a DAG file may use inside tasks but must not import while being parsed
HEAVY = {
    "xgboost",
    "sklearn",
    "pandas",
    "matplotlib",
    "rapidocr_onnxruntime",
    "onnxruntime",
    "cv2",
    "pypdfium2",
    "PIL",
    "trp",
    "textractprettyprinter",
}


class NetworkAtParseTime(RuntimeError):
    pass


@pytest.fixture
def no_network(monkeypatch):
    def refuse(self, address, *args, **kwargs):
        raise NetworkAtParseTime(f"network access at DAG parse time: connect to {address!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(
        socket, "create_connection", lambda address, *a, **k: refuse(None, address), raising=True
    )


def parse(path: Path):
    from airflow.dag_processing.dagbag import DagBag

    started = time.perf_counter()
    bag = DagBag(dag_folder=str(path))
    return bag, time.perf_counter() - started


def test_dags_folder_has_dag_files():
    assert DAG_FILES, f"no DAG files in {DAGS_DIR}"
    assert DAGS_DIR / "churn_xgboost_pipeline.py" in DAG_FILES


def test_sockets_really_blocked(no_network):
    with pytest.raises(NetworkAtParseTime):
        socket.create_connection(("127.0.0.1", 9))


@pytest.mark.parametrize("path", DAG_FILES, ids=[p.name for p in DAG_FILES])
def test_dag_file_imports_offline_with_metadata(path, no_network, capsys):
    bag, seconds = parse(path)
    with capsys.disabled():
        print(f"\n  parse {path.name}: {seconds * 1000:.0f} ms, {len(bag.dags)} DAG(s)")
    assert not bag.import_errors, f"{path.name} fails to import offline:\n" + "\n".join(
        bag.import_errors.values()
    )
    for dag_id, dag in bag.dags.items():
        assert dag.tags, f"{dag_id}: no tags"
        owners = {task.owner for task in dag.tasks}
        assert owners and "airflow" not in owners and all(owners), (
            f"{dag_id}: tasks without an owner: {owners}"
        )
        assert (dag.default_args or {}).get("retries", 0) >= 1, f"{dag_id}: default_args retries < 1"
        assert dag.doc_md and len(dag.doc_md.strip()) > 40, f"{dag_id}: no doc_md"
        # the hourly drift monitor catches up on purpose: a missed hour is analysed later
        assert not dag.catchup or dag_id == "churn_drift_monitor", f"{dag_id}: catchup is on"


def test_churn_pipeline_waits_are_deferred_and_gate_does_not_retry(no_network):
    bag, _ = parse(DAGS_DIR / "churn_xgboost_pipeline.py")
    dag = bag.dags["churn_xgboost_pipeline"]
    tasks = dag.task_dict
    for task_id in ("prepare.preprocess", "train", "deploy.create_endpoint", "deploy.update_endpoint"):
        assert tasks[task_id].deferrable, f"{task_id} holds a worker while it waits"
    assert tasks["evaluate.quality_gate"].retries == 0
    assert tasks["deploy.smoke_test"].trigger_rule == "none_failed_min_one_success"
    # scheduled on the drift Asset only (dags/churn_drift_monitor.py updates it): no time schedule
    assert dag.max_active_runs == 1
    assert [a.name for a in dag.timetable.asset_condition.objects] == ["churn_xgboost_drift"]
    assert {a.name for t in dag.tasks for a in t.outlets} == {
        "churn_xgboost_model_package",
        "churn_xgboost_endpoint",
    }
    # every Param default validates, so the trigger form opens with a runnable configuration
    dag.params.validate()
    assert dag.params["quality_threshold"] == 0.9


@pytest.mark.parametrize("path", DAG_FILES, ids=[p.name for p in DAG_FILES])
def test_optional_params_are_nullable_so_the_trigger_form_does_not_require_them(path, no_network):
    """Airflow's trigger form marks a field required unless its schema type allows "null" (and then
    keeps the Trigger button disabled while it is empty): a Param without a value must be nullable,
    and every Param's default must validate (tests/browser/test_trigger_forms.py clicks the form)."""
    bag, _ = parse(path)
    for dag_id, dag in bag.dags.items():
        dag.params.validate()
        for name in dag.params:
            param = dag.params.get_param(name)
            schema_type = param.schema.get("type")
            form_requires_it = bool(schema_type) and not (
                isinstance(schema_type, list) and "null" in schema_type
            )
            if param.value in (None, ""):
                assert not form_requires_it, (
                    f"{dag_id}: Param {name} has no default but its type {schema_type!r} does not allow "
                    "null: the trigger form requires it (use Param(None, type=['null', ...]))"
                )


def test_a_parse_time_aws_call_is_caught(tmp_path, no_network):
    """The check can fail: a DAG file that calls S3 while being parsed gets an import error."""
    dag_file = tmp_path / "calls_aws_at_parse_time.py"
    dag_file.write_text(
        "import boto3\n"
        "from airflow.sdk import dag\n"
        "BUCKETS = boto3.client('s3', region_name='us-east-1', endpoint_url='http://127.0.0.1:9',\n"
        "    aws_access_key_id='x', aws_secret_access_key='x').list_buckets()\n"
        "@dag(tags=['x'])\n"
        "def calls_aws_at_parse_time():\n"
        "    pass\n"
        "calls_aws_at_parse_time()\n"
    )
    bag, _ = parse(dag_file)
    assert not bag.dags
    assert "network access at DAG parse time" in "\n".join(bag.import_errors.values())


def test_parsing_imports_no_heavy_library(tmp_path):
    """In a fresh interpreter (this session has them all loaded already), parse each DAG file and
    list the heavy packages it newly imported; a file importing XGBoost at top level shows the check
    can fail."""
    heavy_dag = tmp_path / "imports_xgboost_at_parse_time.py"
    heavy_dag.write_text("import xgboost\nfrom airflow.sdk import dag\n")
    files = [str(p) for p in DAG_FILES] + [str(heavy_dag)]
    code = (
        "import json, sys\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"heavy, out = {sorted(HEAVY)!r}, {{}}\n"
        f"for path in {files!r}:\n"
        "    before = set(sys.modules)\n"
        "    DagBag(dag_folder=path)\n"
        "    new = {m.split('.')[0] for m in set(sys.modules) - before}\n"
        "    out[path] = sorted(new & set(heavy))\n"
        "print(json.dumps(out))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    imported = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "xgboost" in imported.pop(str(heavy_dag))
    assert imported == {str(p): [] for p in DAG_FILES}
