"""dags/churn_drift_monitor.py's two DAGs, parsed: the Assets they share with the churn pipeline are
the same ones (name and URI), the waits are deferred, the monitor is hourly with catchup."""

from __future__ import annotations

from pathlib import Path

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"


def parse(name: str):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS_DIR / name))
    assert not bag.import_errors, bag.import_errors
    return bag.dags


def test_monitor_and_pipeline_share_the_drift_and_endpoint_assets():
    monitor_dags = parse("churn_drift_monitor.py")
    churn = parse("churn_xgboost_pipeline.py")["churn_xgboost_pipeline"]
    monitor, baseline = monitor_dags["churn_drift_monitor"], monitor_dags["churn_drift_baseline"]
    (scheduled_on,) = churn.timetable.asset_condition.objects
    (emitted,) = monitor.task_dict["request_retraining"].outlets
    assert (emitted.name, emitted.uri) == (scheduled_on.name, scheduled_on.uri)
    (deployed,) = baseline.timetable.asset_condition.objects
    endpoint_outlets = [a for a in churn.task_dict["deploy.smoke_test"].outlets]
    assert [(a.name, a.uri) for a in endpoint_outlets] == [(deployed.name, deployed.uri)]


def test_monitor_is_hourly_with_catchup_and_defers_its_processing_job():
    dags = parse("churn_drift_monitor.py")
    monitor = dags["churn_drift_monitor"]
    assert monitor.catchup and monitor.max_active_runs == 1
    assert "0 * * * *" in repr(monitor.timetable)
    assert monitor.task_dict["analyse"].deferrable
    assert dags["churn_drift_baseline"].task_dict["compute_baseline"].deferrable
    assert monitor.task_dict["report"].trigger_rule == "none_failed_min_one_success"
    monitor.params.validate()
