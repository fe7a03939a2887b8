"""Pipeline benchmark: the churn DAG's wall time on the twin next to a plain script doing the same
compute, their ratio, where the DAG's time goes, and the parse time of every file in dags/.

    .venv/bin/python bench/pipeline_bench.py [--num-round 100] [--parse-repeats 5] [--skip-dag] [--skip-parse]
        [--default-session-factory] [--default-gc]

- DAG: ``churn_xgboost_pipeline`` with ``dag.test()`` against a fresh twin (Glue runs the script in a
  process, SageMaker trains and serves XGBoost), deferred waits polled every AWS_ML_WAITER_DELAY
  seconds (1 here); wall time of the run and of every task (start to end, deferral included), and
  the steps users wait for: the time before the first task starts, the Glue run (StartedOn ->
  CompletedOn), the training job (CreationTime -> TrainingEndTime) and the endpoint (CreationTime
  -> InService), as the twin reports them.
- Plain: the same preprocessing (the Glue script's own functions), ``xgboost.train`` with the DAG's
  default hyperparameters and a prediction of the test split, no AWS, as a script in a fresh
  interpreter (its imports included: what a user running it would wait for); its own split too.
- Session factory: the hooks' sessions share one botocore loader (``SharedLoaderSessionFactory``, as
  ``make demo`` configures); ``--default-session-factory`` measures the Amazon provider's own.
- Garbage collection: a full collection after every 1,000 younger ones, as ``make demo`` sets for its
  ``dag.test()`` process (``FULL_GC_AFTER``); ``--default-gc`` measures Python's default (10).
- Parse: each dags/ file in a fresh interpreter (cold: imports included) and again in this process
  (warm: median of repeats).

Prints figures only (no asserts), then one JSON line with all of them. README.md's figures table
quotes a run of it.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from airflow_setup import FULL_GC_AFTER, ROOT, airflow_env, migrate_db, point_aws_default_at

DAG_ID = "churn_xgboost_pipeline"
DEFAULT_SESSION_FACTORY = "airflow.providers.amazon.aws.hooks.base_aws.BaseSessionFactory"
GLUE_JOB_NAME = "churn-xgboost-preprocess"  # the DAG's GLUE_JOB_NAME
CHURN = ROOT / "include" / "data" / "mlc_churn.csv"
GLUE_SCRIPT = ROOT / "include" / "glue" / "churn_preprocess.py"
DAG_FILES = sorted(p for p in (ROOT / "dags").glob("**/*.py") if "__pycache__" not in p.parts)

_COLD_PARSE = """
import sys, time
started = time.perf_counter()
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
print("PARSE", time.perf_counter() - started, len(bag.dags), len(bag.import_errors))
"""


def parse_times(repeats: int) -> dict[str, dict]:
    from airflow.dag_processing.dagbag import DagBag

    out = {}
    for path in DAG_FILES:
        proc = subprocess.run(
            [sys.executable, "-c", _COLD_PARSE, str(path)],
            capture_output=True,
            text=True,
            env=os.environ.copy(),
        )
        marks = [line.split() for line in proc.stdout.splitlines() if line.startswith("PARSE ")]
        cold = float(marks[-1][1]) if marks else None
        warm = []
        dags = errors = 0
        for _ in range(repeats):
            started = time.perf_counter()
            bag = DagBag(dag_folder=str(path))
            warm.append(time.perf_counter() - started)
            dags, errors = len(bag.dags), len(bag.import_errors)
        out[path.name] = {
            "cold_s": round(cold, 3) if cold is not None else None,
            "warm_median_s": round(statistics.median(warm), 4),
            "dags": dags,
            "import_errors": errors,
        }
    return out


def plain_script(num_round: int) -> dict:
    """The DAG's compute, in process: preprocess (the Glue script's functions), train, predict."""
    started = time.perf_counter()
    import numpy as np
    import xgboost as xgb

    imported = time.perf_counter()
    spec = importlib.util.spec_from_file_location("churn_preprocess", GLUE_SCRIPT)
    prep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(prep)
    text = CHURN.read_text()
    header, rows = prep.parse_csv(text, str(CHURN))
    features = [h for h in header if h != "churn"]
    numeric = prep.classify_columns(header, rows, features)
    good, _bad = prep.check_rows(header, rows, "churn", numeric)
    rules = prep.input_rules(good, header, "churn", numeric, 100)  # the DAG's max_category_levels
    frame, _cols = prep.encode(good, header, "churn", "yes", numeric, rules["levels"])
    idx = prep.split_indices(frame["churn"].to_numpy(), 0.2, 0.1, 7)
    data = frame.to_numpy(dtype=np.float64, na_value=np.nan)
    train, validation, test = (data[idx[name]] for name in ("train", "validation", "test"))
    prepared = time.perf_counter()
    params = {
        "objective": "binary:logistic",
        "eval_metric": "auc",
        "max_depth": 5,
        "eta": 0.2,
        "subsample": 0.8,
        "min_child_weight": 1,
    }
    booster = xgb.train(
        params,
        xgb.DMatrix(train[:, 1:], label=train[:, 0]),
        num_round,
        evals=[(xgb.DMatrix(validation[:, 1:], label=validation[:, 0]), "validation")],
        verbose_eval=False,
    )
    trained = time.perf_counter()
    scores = booster.predict(xgb.DMatrix(test[:, 1:]))
    done = time.perf_counter()
    from aws_ml_provider.ml.evaluation import auc_score

    return {
        "total_s": round(done - started, 3),
        "imports_s": round(imported - started, 3),
        "preprocess_s": round(prepared - imported, 3),
        "train_s": round(trained - prepared, 3),
        "predict_s": round(done - trained, 4),
        "test_auc": round(auc_score(test[:, 0], scores), 6),
    }


def plain_fresh(num_round: int) -> dict:
    """:func:`plain_script` as a script in a fresh interpreter: wall time from the interpreter's
    start to its exit, and the script's own split (imports, preprocess, train, predict)."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "--plain-only", "--num-round", str(num_round)],
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    if proc.returncode:
        raise RuntimeError(f"the plain script failed:\n{proc.stderr[-3000:]}")
    inner = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"wall_s": round(wall, 3), **inner}


def _seconds(start, end) -> float | None:
    return round((end - start).total_seconds(), 2) if start and end else None


def twin_steps(twin) -> dict:
    """What the twin reports of the run's AWS work: the Glue run, the training job, the endpoint."""
    glue, sagemaker = twin.client("glue"), twin.client("sagemaker")
    runs = glue.get_job_runs(JobName=GLUE_JOB_NAME)["JobRuns"]
    jobs = sagemaker.list_training_jobs()["TrainingJobSummaries"]
    job = sagemaker.describe_training_job(TrainingJobName=jobs[0]["TrainingJobName"]) if jobs else {}
    endpoints = sagemaker.list_endpoints()["Endpoints"]
    endpoint = sagemaker.describe_endpoint(EndpointName=endpoints[0]["EndpointName"]) if endpoints else {}
    run = runs[0] if runs else {}
    return {
        "glue_run_s": _seconds(run.get("StartedOn"), run.get("CompletedOn")),
        "training_job_s": _seconds(job.get("CreationTime"), job.get("TrainingEndTime")),
        "training_job_status": job.get("TrainingJobStatus"),
        "endpoint_to_in_service_s": _seconds(endpoint.get("CreationTime"), endpoint.get("LastModifiedTime"))
        if endpoint.get("EndpointStatus") == "InService"
        else None,
    }


def dag_run(num_round: int) -> dict:
    from aws_twin.testing import start_twin

    started_twin = time.perf_counter()
    twin = start_twin(0, strict=True)
    twin_s = time.perf_counter() - started_twin
    point_aws_default_at(twin)
    try:
        from airflow import settings
        from airflow.dag_processing.dagbag import DagBag
        from airflow.models.taskinstance import TaskInstance
        from airflow.models.xcom import XComModel
        from sqlalchemy import select

        dag = DagBag(dag_folder=str(ROOT / "dags" / f"{DAG_ID}.py")).dags[DAG_ID]
        started_at = datetime.now(UTC)
        started = time.perf_counter()
        dagrun = dag.test(run_conf={"num_round": num_round})
        wall = time.perf_counter() - started
        steps = twin_steps(twin)
        with settings.Session() as session:
            tis = session.scalars(
                select(TaskInstance).where(
                    TaskInstance.dag_id == DAG_ID, TaskInstance.run_id == dagrun.run_id
                )
            ).all()
            metrics = session.scalars(
                select(XComModel).where(
                    XComModel.dag_id == DAG_ID,
                    XComModel.run_id == dagrun.run_id,
                    XComModel.task_id == "evaluate.evaluate",
                    XComModel.key == "metrics",
                )
            ).first()
            auc = XComModel.deserialize_value(metrics)["auc"] if metrics is not None else None
            tasks = {
                ti.task_id: round((ti.end_date - ti.start_date).total_seconds(), 2)
                for ti in tis
                if ti.start_date and ti.end_date
            }
            first_start = min((ti.start_date for ti in tis if ti.start_date), default=None)
            last_end = max((ti.end_date for ti in tis if ti.end_date), default=None)
        state = getattr(dagrun.state, "value", dagrun.state)
    finally:
        twin.stop()
    return {
        "state": str(state),
        "wall_s": round(wall, 2),
        "first_task_to_last_task_s": round((last_end - first_start).total_seconds(), 2)
        if first_start
        else None,
        "before_first_task_s": _seconds(started_at, first_start),
        "twin_start_s": round(twin_s, 2),
        "test_auc": auc,
        "steps": steps,
        "task_s": tasks,
        "waiter_delay_s": int(os.environ["AWS_ML_WAITER_DELAY"]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-round", type=int, default=100)
    parser.add_argument("--parse-repeats", type=int, default=5)
    parser.add_argument("--skip-dag", action="store_true", help="only the plain script and the parse times")
    parser.add_argument(
        "--skip-parse", action="store_true", help="no parse times (the DAG and the plain script)"
    )
    parser.add_argument(
        "--default-session-factory",
        action="store_true",
        help="the Amazon provider's BaseSessionFactory instead of the shared-loader one",
    )
    parser.add_argument(
        "--default-gc",
        action="store_true",
        help="Python's default full-collection threshold, not make demo's",
    )
    parser.add_argument("--plain-only", action="store_true", help=argparse.SUPPRESS)  # plain_fresh's child
    args = parser.parse_args(argv)
    if args.plain_only:
        print(json.dumps(plain_script(args.num_round)))
        return 0

    home = Path(tempfile.mkdtemp(prefix="pipeline-bench-airflow-"))
    if args.default_session_factory:
        os.environ["AIRFLOW__AWS__SESSION_FACTORY"] = DEFAULT_SESSION_FACTORY
    airflow_env(home)
    results: dict = {
        "num_round": args.num_round,
        "session_factory": os.environ["AIRFLOW__AWS__SESSION_FACTORY"],
    }

    results["parse"] = {} if args.skip_parse else parse_times(args.parse_repeats)
    if results["parse"]:
        print("DAG file parse time (cold: fresh interpreter, imports included; warm: median of repeats)")
    for name, figures in results["parse"].items():
        print(
            f"  {name:36} cold {figures['cold_s']} s   warm {figures['warm_median_s'] * 1000:.1f} ms"
            f"   {figures['dags']} DAG(s), {figures['import_errors']} import error(s)"
        )

    results["plain"] = plain_fresh(args.num_round)
    plain = results["plain"]
    print(
        f"\nplain script, fresh interpreter: {plain['wall_s']} s wall (imports {plain['imports_s']} s, "
        f"preprocess {plain['preprocess_s']} s, train {plain['train_s']} s, predict {plain['predict_s']} s), "
        f"test AUC {plain['test_auc']}"
    )

    if not args.skip_dag:
        if not migrate_db():
            return 1
        if not args.default_gc:
            gc.set_threshold(*gc.get_threshold()[:2], FULL_GC_AFTER)
        results["gc_threshold"] = gc.get_threshold()
        results["dag"] = dag_run(args.num_round)
        results["dag"]["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        dag = results["dag"]
        print(
            f"\n{DAG_ID} on the twin: {dag['state']} in {dag['wall_s']} s wall (dag.test; first task start to "
            f"last task end {dag['first_task_to_last_task_s']} s; waits polled every {dag['waiter_delay_s']} s), "
            f"test AUC {dag['test_auc']}; session factory {results['session_factory'].rsplit('.', 1)[-1]}, "
            f"gc thresholds {results['gc_threshold']}; peak RSS of this process {dag['peak_rss_mb']} MB"
        )
        steps = dag["steps"]
        print(
            f"  before the first task starts {dag['before_first_task_s']} s; on the twin: Glue run "
            f"{steps['glue_run_s']} s, training job create -> {steps['training_job_status']} "
            f"{steps['training_job_s']} s, endpoint create -> InService {steps['endpoint_to_in_service_s']} s"
        )
        print("  tasks (start to end, deferral included):")
        for task_id, seconds in sorted(dag["task_s"].items(), key=lambda kv: -kv[1]):
            print(f"    {task_id:32} {seconds:7.2f} s")
        results["ratio"] = round(dag["wall_s"] / max(plain["wall_s"], 1e-9), 1)
        print(f"ratio DAG / plain script: {results['ratio']}x ({dag['wall_s']} s / {plain['wall_s']} s)")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
