"""churn_drift_baseline and churn_drift_monitor end to end on the twin, with ``dag.test()``.

The churn pipeline (lean: num_round 20) deploys an endpoint with data capture; churn_drift_baseline
runs the baseline Processing job for it; include/drift/traffic.py sends held-out rows (the
validation split) to the endpoint, undrifted or with a sudden shift of two numeric features, and the
twin captures them. Capture lands in the partition of the hour it happens in; to give the monitor
several past hours, each batch of captured records is moved to the partition of a chosen hour of
the day before yesterday, its inference times set inside that hour (what SageMaker would have written then).

Then, with K = 2 (``consecutive_hours``):

- 09:00, undrifted traffic: no drift, no retraining;
- 10:00 and 11:00, shifted traffic: the shifted features are flagged (p < 0.05, score above the
  threshold), the projected accuracy drops; at 11:00 drift is confirmed, the drift Asset event is
  emitted and the scheduler's asset step queues a churn_xgboost_pipeline run;
- 08:00 backfilled afterwards: it reads only its own partition (its own rows, no drift);
- 12:00 without traffic: a "no traffic" result, not a failure.

Expected values come from the traffic sent (rows per hour) and from the analysis' own statistics
recomputed here (KS on the shifted columns).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid

import numpy as np
import pytest
from scipy import stats

from tests import drift_support as ds

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

SUFFIX = uuid.uuid4().hex[:6]
BUCKET = f"drift-e2e-{SUFFIX}"
ENDPOINT = f"drift-e2e-{SUFFIX}"
SHIFTED = ["total_day_minutes", "total_eve_calls"]
ROWS = 150
#: two days ago (CloudWatch takes metric data up to two weeks old; the monitor publishes none older)
DAY = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0) - dt.timedelta(days=2)
MONITOR = {
    "endpoint_name": ENDPOINT,
    "bucket": BUCKET,
    "consecutive_hours": 2,
    "min_rows": 50,
    "report_hours": 6,
}


def hour(h: int) -> dt.datetime:
    return DAY + dt.timedelta(hours=h)


def read(s3, uri: str) -> bytes:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


@pytest.fixture(scope="module")
def deployed(dag_runner):
    run = dag_runner(
        "churn_xgboost_pipeline",
        {"num_round": 20, "bucket": BUCKET, "endpoint_name": ENDPOINT, "model_package_group": ENDPOINT},
    )
    assert run.state == "success", run.task_states
    return run


@pytest.fixture(scope="module")
def baseline_run(dag_runner, deployed):
    return dag_runner(
        "churn_drift_baseline",
        {"endpoint_name": ENDPOINT, "bucket": BUCKET},
        dag_file="churn_drift_monitor.py",
    )


@pytest.fixture(scope="module")
def pool(twin, deployed):
    s3 = twin.client("s3")
    processed = deployed.xcom("prepare.resolve_config", "processed_uri")
    schema = json.loads(read(s3, f"{processed}/schema.json"))
    lines = read(s3, f"{processed}/validation/validation.csv").decode().split()
    return schema, np.array([[float(v) for v in line.split(",")[1:]] for line in lines])


def send_to_hour(twin, schema, pool, profile: dict, target: dt.datetime, seed: int) -> np.ndarray:
    """Send ROWS rows through the endpoint, then move the records the twin captured to ``target``'s
    partition (inference times shifted into that hour)."""
    traffic = ds.traffic()
    rows = traffic.generate(pool, schema, traffic.Profile(**profile), ROWS, seed=seed)
    s3 = twin.client("s3")
    base = f"churn/datacapture/{ENDPOINT}/AllTraffic/"
    # what was captured before (the churn pipeline's smoke test) is not part of this batch
    for key in ds.capture_keys(s3, BUCKET, base):
        if not key.startswith(f"{base}{target:%Y/%m/%d}/"):
            s3.delete_object(Bucket=BUCKET, Key=key)
    traffic.send(twin.client("sagemaker-runtime"), ENDPOINT, rows, rate=0, batch=10)
    moved = ds.move_capture_to_hour(s3, BUCKET, base, target, ROWS // 10)
    assert moved == ROWS // 10, f"{moved} capture records for {ROWS // 10} invocations"
    return rows


@pytest.fixture(scope="module")
def traffic_hours(twin, baseline_run, pool):
    schema, rows = pool
    calm = {"kind": "none"}
    shift = {"kind": "sudden", "features": SHIFTED, "shift": 1.5}
    return {
        8: send_to_hour(twin, schema, rows, calm, hour(8), seed=8),
        9: send_to_hour(twin, schema, rows, calm, hour(9), seed=9),
        10: send_to_hour(twin, schema, rows, shift, hour(10), seed=10),
        11: send_to_hour(twin, schema, rows, shift, hour(11), seed=11),
    }


def monitor(dag_runner, h: int):
    # a manual run's data interval is the hour before its logical date
    return dag_runner(
        "churn_drift_monitor", dict(MONITOR), dag_file="churn_drift_monitor.py", logical_date=hour(h + 1)
    )


@pytest.fixture(scope="module")
def runs(dag_runner, traffic_hours, twin):
    from airflow import settings
    from airflow.models.dag import DagModel
    from sqlalchemy import update

    out = {}
    with pytest.MonkeyPatch.context() as mp:
        # the monitor's first hour (a run's tasks are not created for hours before the start date)
        mp.setenv("CHURN_DRIFT_START_DATE", DAY.isoformat())
        for h in (9, 10):
            out[h] = monitor(dag_runner, h)
        # the churn pipeline unpaused (as it is when deployed), so the scheduler creates its runs
        with settings.Session() as session:
            session.execute(
                update(DagModel).where(DagModel.dag_id == "churn_xgboost_pipeline").values(is_paused=False)
            )
            session.commit()
        out[11] = monitor(dag_runner, 11)
        out[8] = monitor(dag_runner, 8)  # backfilled after the later hours
        out[12] = monitor(dag_runner, 12)
    return out


def result_of(twin, run) -> dict:
    return json.loads(read(twin.client("s3"), run.xcom("report")["result_uri"]))


def test_baseline_lies_beside_the_deployed_model(twin, baseline_run, deployed):
    assert baseline_run.state == "success", baseline_run.task_states
    artifact = deployed.xcom("evaluate.evaluate", "model_artifact")
    uri = baseline_run.xcom("resolve_baseline", "baseline_uri")
    assert uri == artifact.rsplit("/output/", 1)[0] + "/drift-baseline"
    baseline = json.loads(read(twin.client("s3"), f"{uri}/baseline.json"))
    metrics = deployed.xcom("evaluate.evaluate", "metrics")
    assert baseline["test_accuracy"] == pytest.approx(metrics["accuracy"], abs=1e-9)
    assert "total_day_minutes" in baseline["numeric"] and "state" in baseline["categorical"]


def test_undrifted_hour_reports_no_drift(twin, runs, traffic_hours):
    run = runs[9]
    assert run.state == "success", run.task_states
    assert run.task_states["analyse"] == "success" and run.task_states["request_retraining"] == "skipped"
    result = result_of(twin, run)
    assert result["status"] == "ok" and result["records"]["rows"] == ROWS
    assert result["drifted_features"] == []
    report = run.xcom("report")
    assert report["consecutive_drift_hours"] == 0 and not report["confirmed"]


def test_shifted_hours_flag_the_features_and_confirm_drift_after_k_hours(twin, runs, traffic_hours, pool):
    schema, _ = pool
    calm = result_of(twin, runs[9])
    for h in (10, 11):
        run = runs[h]
        assert run.state == "success", run.task_states
        result = result_of(twin, run)
        # the shifted features are flagged, with the smallest p-values of all features (with 150 rows
        # an unshifted feature can pass both thresholds by chance: the method's false positives)
        assert set(SHIFTED) <= set(result["drifted_features"]), result["drifted_features"]
        by_p = sorted(result["features"], key=lambda n: result["features"][n]["p_value"])
        assert sorted(by_p[:2]) == sorted(SHIFTED), by_p[:4]
        for name in SHIFTED:
            info = result["features"][name]
            assert info["p_value"] < 0.05 and info["drift_score"] > MONITOR.get("drift_score_threshold", 0.2)
        assert result["accuracy"]["projected_accuracy"] < calm["accuracy"]["projected_accuracy"]
    # the KS p-values are those of the rows sent against the training split
    train = np.array(
        [
            [float(v) for v in line.split(",")[1:]]
            for line in read(
                twin.client("s3"),
                runs[10].xcom("resolve", "baseline_uri").rsplit("/model/", 1)[0]
                + "/processed/train/train.csv",
            )
            .decode()
            .split()
        ]
    )
    i = schema["feature_columns"].index(SHIFTED[0])
    expected = stats.ks_2samp(train[:, i], traffic_hours[10][:, i]).pvalue
    assert result_of(twin, runs[10])["features"][SHIFTED[0]]["p_value"] == pytest.approx(expected, rel=1e-6)
    assert runs[10].task_states["request_retraining"] == "skipped"
    confirmed = runs[11].xcom("report")
    assert confirmed["consecutive_drift_hours"] == 2 and confirmed["confirmed"]
    assert runs[11].task_states["request_retraining"] == "success"
    assert set(SHIFTED) <= set(runs[11].xcom("request_retraining")["drifted_features"])
    page = read(twin.client("s3"), confirmed["report_uri"]).decode()
    assert "Drift confirmed" in page and all(name in page for name in SHIFTED)
    assert page.count("data:image/png;base64,") == 3


def test_confirmed_drift_emits_the_asset_event_and_queues_a_churn_run(runs):
    from airflow import settings
    from airflow.jobs.job import Job
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.models.dagrun import DagRun
    from airflow.utils.sqlalchemy import prohibit_commit
    from sqlalchemy import select

    with settings.Session() as session:
        events = session.scalars(
            select(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.name == "churn_xgboost_drift")
        ).all()
        assert [e.extra.get("endpoint_name") for e in events] == [ENDPOINT]
        assert events[0].source_dag_id == "churn_drift_monitor" and events[0].source_run_id == runs[11].run_id
        runner = SchedulerJobRunner(job=Job())
        with prohibit_commit(session) as guard:
            runner._create_dagruns_for_dags(guard, session)
        queued = session.scalars(
            select(DagRun).where(
                DagRun.dag_id == "churn_xgboost_pipeline", DagRun.run_type == "asset_triggered"
            )
        ).all()
        assert len(queued) == 1 and str(queued[0].state) in ("queued", "DagRunState.QUEUED")


def test_backfilled_hour_reads_only_its_own_partition(twin, runs):
    run = runs[8]
    assert run.state == "success", run.task_states
    result = result_of(twin, run)
    assert result["interval"]["start"] == hour(8).isoformat()
    assert result["records"]["files"] == 1 and result["records"]["rows"] == ROWS
    assert result["records"]["skipped"] == 0 and result["drifted_features"] == []
    assert run.xcom("resolve", "partition").endswith(f"/{ENDPOINT}/AllTraffic/{hour(8):%Y/%m/%d}/08/")


def test_an_hour_without_traffic_is_a_result(twin, runs):
    run = runs[12]
    assert run.state == "success", run.task_states
    assert run.task_states["analyse"] == "skipped" and run.task_states["no_traffic"] == "success"
    assert run.xcom("report")["status"] == "no_traffic"
    assert result_of(twin, run)["records"]["rows"] == 0


def test_metrics_reach_cloudwatch_with_endpoint_and_feature(twin, runs):
    cloudwatch = twin.client("cloudwatch")
    metrics = cloudwatch.list_metrics(
        Namespace="AwsMlProvider/ModelDrift",
        MetricName="DriftScore",
        Dimensions=[{"Name": "Endpoint", "Value": ENDPOINT}, {"Name": "Feature", "Value": SHIFTED[0]}],
    )["Metrics"]
    assert metrics and {m["MetricName"] for m in metrics} == {"DriftScore"}
    stats_ = cloudwatch.get_metric_statistics(
        Namespace="AwsMlProvider/ModelDrift",
        MetricName="DriftScore",
        Dimensions=[{"Name": "Endpoint", "Value": ENDPOINT}, {"Name": "Feature", "Value": SHIFTED[0]}],
        StartTime=hour(8),
        EndTime=hour(13),
        Period=3600,
        Statistics=["Maximum"],
    )["Datapoints"]
    result = result_of(twin, runs[11])
    assert max(p["Maximum"] for p in stats_) == pytest.approx(
        max(
            result["features"][SHIFTED[0]]["drift_score"],
            result_of(twin, runs[10])["features"][SHIFTED[0]]["drift_score"],
        )
    )
