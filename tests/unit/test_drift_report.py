"""aws_ml_provider.ml.drift_report: the K-consecutive-hours rule, the CloudWatch metric data and the
HTML report, on results shaped as include/drift/drift_analysis.py writes them."""

from __future__ import annotations

import datetime as dt

from aws_ml_provider.ml import drift_report

HOUR = dt.datetime(2026, 6, 1, 10, tzinfo=dt.UTC)


def result(drift: bool, rows: int = 100, status: str = "ok") -> dict:
    features = {
        "total_day_minutes": {
            "type": "numeric",
            "drift_score": 0.9 if drift else 0.05,
            "p_value": 1e-9 if drift else 0.6,
            "drifted": drift,
            "baseline_mean": 180.0,
            "incoming_mean": 260.0 if drift else 181.0,
            "mean_shift_in_std": 1.5 if drift else 0.02,
        },
        "area_code": {
            "type": "categorical",
            "drift_score": 0.04,
            "p_value": 0.7,
            "drifted": False,
            "baseline_probabilities": {"a": 0.5, "b": 0.5},
            "incoming_probabilities": {"a": 0.52, "b": 0.48},
        },
    }
    return {
        "status": status,
        "drift": drift,
        "drifted_features": ["total_day_minutes"] if drift else [],
        "features": features if status == "ok" else {},
        "records": {"rows": rows, "skipped": 2, "files": 1, "records": rows, "skipped_by_reason": {"x": 2}},
        "thresholds": {"p_value": 0.05, "drift_score": 0.2},
        "accuracy": {
            "drift": 0.08 if drift else 0.001,
            "projected_accuracy": 0.87 if drift else 0.95,
            "baseline_accuracy": 0.95,
            "reference_mean_score": -0.42,
            "incoming_mean_score": -0.45,
        },
    }


def history(*hours) -> list:
    return [(HOUR - dt.timedelta(hours=len(hours) - 1 - k), r) for k, r in enumerate(hours)]


def test_consecutive_drift_counts_back_from_the_last_hour():
    assert (
        drift_report.consecutive_drift(history(result(True), result(False), result(True), result(True)), 30)
        == 2
    )
    assert drift_report.consecutive_drift(history(result(True), result(True), result(True)), 30) == 3
    assert drift_report.consecutive_drift(history(result(True), result(False)), 30) == 0


def test_no_traffic_missing_hours_and_thin_hours_break_the_run():
    assert drift_report.consecutive_drift(history(result(True), None, result(True)), 30) == 1
    quiet = result(False, rows=0, status="no_traffic")
    assert drift_report.consecutive_drift(history(result(True), quiet, result(True)), 30) == 1
    assert drift_report.consecutive_drift(history(result(True), result(True, rows=10)), 30) == 0


def test_metric_data_has_endpoint_and_feature_dimensions():
    data = drift_report.metric_data("ep", result(True), HOUR)
    by_name = {(d["MetricName"], d["Dimensions"][1]["Value"]): d for d in data}
    assert by_name[("DriftScore", "total_day_minutes")]["Value"] == 0.9
    assert by_name[("PValue", "area_code")]["Value"] == 0.7
    assert by_name[("ProjectedAccuracy", "ALL")]["Value"] == 0.87
    assert by_name[("CapturedRows", "ALL")]["Unit"] == "Count"
    assert all(d["Dimensions"][0] == {"Name": "Endpoint", "Value": "ep"} for d in data)
    assert len(data) == 3 + 2 * 2 + 2


def test_report_names_the_drifted_features_and_plots_the_hours():
    page = drift_report.render_html(
        endpoint="ep",
        hour=HOUR,
        result=result(True),
        history=history(result(False), None, result(True)),
        consecutive=2,
        required=2,
        confirmed=True,
        details={"partition": "s3://b/p/"},
    )
    assert "Drift in 1 feature(s): total_day_minutes." in page
    assert "Drift confirmed: 2 consecutive drifting hour(s) (K = 2)" in page
    assert "180 &rarr; 260 (+1.50 std)" in page
    assert page.count("data:image/png;base64,") == 3
    assert '<tr class="drift"><td>total_day_minutes</td>' in page
