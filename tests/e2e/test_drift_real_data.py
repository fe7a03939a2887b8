"""The drift monitor on real drift: Seattle's daily weather 2012-2015 (include/data/seattle_weather.csv,
NOAA data via the vega_datasets package; see its LICENSE file).

nannyml's US Census ACS employment data was the first choice; nannyml 0.13.1 resolves under the
MWAA constraints but pulls FLAML[automl] -> xgboost 2.1.4 (plus nvidia-nccl-cu12), which overwrites
the pinned xgboost-cpu 3.2.0 the twin serves models with, so it is not installed and nothing is read
from it (docs/drift_monitoring.md).

Its own small model: the churn pipeline (any CSV with a label) trains "is it a rain day" (XGBoost)
on 2012 -- precipitation, temp_max, temp_min, wind, month -- and deploys it with data capture. Each
later year is replayed through the endpoint as one hour of traffic (include/drift/traffic.py's
``encode_records``, as ``--replay`` does) and analysed by churn_drift_monitor. Whatever the monitor
finds is printed (docs/drift_monitoring.md records a run); the assertions are what the data decides:
the analysis' numbers equal the statistics recomputed here, its verdict follows its thresholds, and
the labels -- which the monitor never sees -- show the real accuracy of each year.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import uuid
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from tests import drift_support as ds

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


def read(s3, uri: str) -> bytes:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


SUFFIX = uuid.uuid4().hex[:6]
BUCKET = f"weather-e2e-{SUFFIX}"
ENDPOINT = f"weather-e2e-{SUFFIX}"
DATA = Path(__file__).resolve().parents[2] / "include" / "data" / "seattle_weather.csv"
FEATURES = ["precipitation", "temp_max", "temp_min", "wind", "month"]
DAY = dt.datetime(2026, 7, 1, tzinfo=dt.UTC)
YEARS = {2013: 1, 2014: 2, 2015: 3}  # year -> hour of DAY it is replayed in


def rows_of(year: int) -> list[dict]:
    out = []
    with DATA.open() as handle:
        for row in csv.DictReader(handle):
            if row["date"].startswith(str(year)):
                month = dt.date.fromisoformat(row["date"].replace("/", "-")).strftime("%b").lower()
                label = "yes" if row["weather"] == "rain" else "no"
                out.append({**{k: row[k] for k in FEATURES[:-1]}, "month": month, "rain": label})
    return out


@pytest.fixture(scope="module")
def deployed(twin, dag_runner):
    s3 = twin.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=[*FEATURES, "rain"])
    writer.writeheader()
    writer.writerows(rows_of(2012))
    s3.put_object(Bucket=BUCKET, Key="weather/2012.csv", Body=text.getvalue().encode())
    run = dag_runner(
        "churn_xgboost_pipeline",
        {
            "dataset_uri": f"s3://{BUCKET}/weather/2012.csv",
            "label_column": "rain",
            "positive_value": "yes",
            "quality_threshold": 0.5,
            "num_round": 20,
            "bucket": BUCKET,
            "endpoint_name": ENDPOINT,
            "model_package_group": ENDPOINT,
        },
    )
    assert run.state == "success", run.task_states
    baseline = dag_runner(
        "churn_drift_baseline",
        {"endpoint_name": ENDPOINT, "bucket": BUCKET},
        dag_file="churn_drift_monitor.py",
    )
    assert baseline.state == "success", baseline.task_states
    return run


@pytest.fixture(scope="module")
def years(twin, deployed, dag_runner):
    s3 = twin.client("s3")
    processed = deployed.xcom("prepare.resolve_config", "processed_uri")
    schema = json.loads(read(s3, f"{processed}/schema.json"))
    traffic = ds.traffic()
    base = f"churn/datacapture/{ENDPOINT}/AllTraffic/"
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CHURN_DRIFT_START_DATE", DAY.isoformat())
        for year, h in YEARS.items():
            for key in ds.capture_keys(s3, BUCKET, base):
                if not key.startswith(f"{base}2026/07/01/"):
                    s3.delete_object(Bucket=BUCKET, Key=key)
            records = rows_of(year)
            rows = traffic.encode_records(records, schema)
            sent = traffic.send(
                twin.client("sagemaker-runtime"), ENDPOINT, rows, 0, 50, keep_predictions=True
            )
            calls = -(-len(rows) // 50)
            assert ds.move_capture_to_hour(s3, BUCKET, base, DAY + dt.timedelta(hours=h), calls) == calls
            labels = np.array([r["rain"] == "yes" for r in records])
            accuracy = float(((np.array(sent["predictions"]) >= 0.5) == labels).mean())
            run = dag_runner(
                "churn_drift_monitor",
                {"endpoint_name": ENDPOINT, "bucket": BUCKET, "consecutive_hours": 2, "min_rows": 50},
                dag_file="churn_drift_monitor.py",
                logical_date=DAY + dt.timedelta(hours=h + 1),
            )
            out[year] = {"run": run, "rows": rows, "accuracy": accuracy, "schema": schema}
    return out


def test_the_monitor_on_real_drift(twin, deployed, years):
    s3 = twin.client("s3")
    processed = deployed.xcom("prepare.resolve_config", "processed_uri")
    train = np.array(
        [
            [float(v) for v in line.split(",")[1:]]
            for line in read(s3, f"{processed}/train/train.csv").decode().split()
        ]
    )
    test_accuracy = deployed.xcom("evaluate.evaluate", "metrics")["accuracy"]
    print(f"\n2012 (training year) test accuracy {test_accuracy:.3f}")
    for year, info in years.items():
        run = info["run"]
        assert run.state == "success", run.task_states
        summary = run.xcom("report")
        result = json.loads(read(s3, summary["result_uri"]))
        assert result["status"] == "ok" and result["records"]["rows"] == len(info["rows"])
        columns = info["schema"]["feature_columns"]
        for name in ("temp_min", "temp_max", "precipitation", "wind"):
            i = columns.index(name)
            expected = stats.ks_2samp(train[:, i], info["rows"][:, i]).pvalue
            assert result["features"][name]["p_value"] == pytest.approx(expected, rel=1e-6)
        for name, feature in result["features"].items():
            assert feature["drifted"] == (feature["p_value"] < 0.05 and feature["drift_score"] > 0.2), name
        found = {n: round(result["features"][n]["drift_score"], 3) for n in result["drifted_features"]}
        print(
            f"{year}: {len(info['rows'])} rows, drifted {found or 'none'}, projected accuracy "
            f"{result['accuracy']['projected_accuracy']:.3f} (drift {result['accuracy']['drift']:+.3f}); "
            f"real accuracy on the labels {info['accuracy']:.3f}; consecutive {summary['consecutive_drift_hours']}, "
            f"retraining {'requested' if summary['confirmed'] else 'not requested'}"
        )
        assert run.task_states["request_retraining"] == ("success" if summary["confirmed"] else "skipped")
    # the labels the monitor never sees: "rain" nearly vanishes from the 2014-2015 labels
    # (fog/sun instead), so the 2012 model's real accuracy falls, whatever the features show
    assert years[2014]["accuracy"] < test_accuracy - 0.1
