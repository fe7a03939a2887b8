"""What the drift monitor does with the hourly results of include/drift/drift_analysis.py: the
"for K consecutive hours" rule, CloudWatch metric data, and the HTML report with plots of drift score,
p-values and projected accuracy over the last hours (matplotlib Agg, PNGs embedded)."""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
from typing import Any

#: CloudWatch namespace of the drift metrics
NAMESPACE = "AwsMlProvider/ModelDrift"
#: PutMetricData accepts up to 1000 metric data points per call
PUT_METRIC_BATCH = 1000
#: PutMetricData rejects data points older than two weeks
MAX_METRIC_AGE = dt.timedelta(days=14)


def counts_as_drift(result: dict | None, min_rows: int) -> bool:
    """An hour drifted when the analysis flagged a feature over at least ``min_rows`` rows (an hour
    with no traffic, or too little to judge, does not confirm drift)."""
    if not result or result.get("status") != "ok":
        return False
    return bool(result.get("drift")) and result.get("records", {}).get("rows", 0) >= min_rows


def consecutive_drift(history: list[tuple[dt.datetime, dict | None]], min_rows: int) -> int:
    """How many hours up to the last one of ``history`` (oldest first) drifted in a row."""
    count = 0
    for _, result in reversed(history):
        if not counts_as_drift(result, min_rows):
            break
        count += 1
    return count


def metric_data(endpoint: str, result: dict, timestamp: dt.datetime) -> list[dict]:
    """PutMetricData entries: per feature DriftScore and PValue (dimensions Endpoint, Feature); per
    endpoint (Feature ``ALL``) CapturedRows, SkippedRecords, DriftedFeatures, AccuracyDrift and
    ProjectedAccuracy."""

    def point(name: str, value: float, feature: str, unit: str = "None") -> dict:
        return {
            "MetricName": name,
            "Dimensions": [{"Name": "Endpoint", "Value": endpoint}, {"Name": "Feature", "Value": feature}],
            "Timestamp": timestamp,
            "Value": float(value),
            "Unit": unit,
        }

    records = result.get("records", {})
    data = [
        point("CapturedRows", records.get("rows", 0), "ALL", "Count"),
        point("SkippedRecords", records.get("skipped", 0), "ALL", "Count"),
        point("DriftedFeatures", len(result.get("drifted_features", [])), "ALL", "Count"),
    ]
    for feature, info in sorted(result.get("features", {}).items()):
        data.append(point("DriftScore", info["drift_score"], feature))
        data.append(point("PValue", info["p_value"], feature))
    accuracy = result.get("accuracy")
    if accuracy:
        data.append(point("AccuracyDrift", accuracy["drift"], "ALL"))
        data.append(point("ProjectedAccuracy", accuracy["projected_accuracy"], "ALL"))
    return data


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def _plots(
    history: list[tuple[dt.datetime, dict | None]], features: list[str], thresholds: dict
) -> list[str]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    hours = [h for h, _ in history]
    out = []
    for key, title, ylabel, line, log in (
        ("drift_score", "Drift score (sum of |bin probability differences|)", "score", "drift_score", False),
        ("p_value", "p-value (KS numeric, chi-square categorical)", "p-value (log)", "p_value", True),
    ):
        figure = Figure(figsize=(9, 3.6), dpi=90)
        FigureCanvasAgg(figure)
        axes = figure.add_subplot(1, 1, 1)
        for feature in features:
            values = [
                (r or {}).get("features", {}).get(feature, {}).get(key, float("nan"))
                if (r or {}).get("status") == "ok"
                else float("nan")
                for _, r in history
            ]
            if log:
                values = [max(v, 1e-300) for v in values]
            axes.plot(hours, values, marker="o", markersize=3, label=feature)
        axes.axhline(thresholds[line], color="#c92a2a", linestyle="--", linewidth=1, label="threshold")
        if log:
            axes.set_yscale("log")
        axes.set_title(title)
        axes.set_ylabel(ylabel)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7, loc="upper left", ncol=2)
        figure.autofmt_xdate()
        out.append(_png(figure))
    figure = Figure(figsize=(9, 3.6), dpi=90)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    projected = [
        (r or {}).get("accuracy", {}).get("projected_accuracy", float("nan")) if r else float("nan")
        for _, r in history
    ]
    baseline = next((r["accuracy"]["baseline_accuracy"] for _, r in history if r and r.get("accuracy")), None)
    axes.plot(hours, projected, marker="o", markersize=3, color="#1971c2", label="projected accuracy")
    if baseline is not None:
        axes.axhline(baseline, color="#868e96", linestyle="--", linewidth=1, label="test accuracy")
    axes.set_title("Projected model accuracy (Isolation Forest on the well-predicted test rows)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="lower left")
    figure.autofmt_xdate()
    out.append(_png(figure))
    return out


def render_html(
    *,
    endpoint: str,
    hour: dt.datetime,
    result: dict,
    history: list[tuple[dt.datetime, dict | None]],
    consecutive: int,
    required: int,
    confirmed: bool,
    details: dict[str, Any],
) -> str:
    """The report of one hour: verdict, drifted features and by how much, every feature's figures,
    the skipped capture records by reason, and plots over ``history`` (oldest first)."""
    esc = html.escape
    status = result.get("status", "?")
    drifted = result.get("drifted_features", [])
    features = result.get("features", {})
    if status != "ok":
        verdict = {
            "no_traffic": "No traffic in this hour.",
            "no_valid_rows": "No valid row in this hour.",
        }.get(status, status)
    elif drifted:
        verdict = f"Drift in {len(drifted)} feature(s): {', '.join(drifted)}."
    else:
        verdict = "No drift."
    confirmation = (
        f"Drift confirmed: {consecutive} consecutive drifting hour(s) (K = {required}); retraining requested."
        if confirmed
        else f"{consecutive} consecutive drifting hour(s) of the {required} that confirm drift."
    )
    rows = []
    for name, info in sorted(features.items(), key=lambda kv: -kv[1]["drift_score"]):
        extra = ""
        if info["type"] == "numeric":
            extra = (
                f"mean {info['baseline_mean']:.4g} &rarr; {info['incoming_mean']:.4g} "
                f"({info['mean_shift_in_std']:+.2f} std)"
            )
        else:
            moved = sorted(
                info["incoming_probabilities"],
                key=lambda k: (
                    -abs(info["incoming_probabilities"][k] - info["baseline_probabilities"].get(k, 0))
                ),
            )[:3]
            extra = "; ".join(
                f"{esc(k)}: {info['baseline_probabilities'].get(k, 0):.3f} &rarr; "
                f"{info['incoming_probabilities'][k]:.3f}"
                for k in moved
            )
        style = ' class="drift"' if info.get("drifted") else ""
        rows.append(
            f"<tr{style}><td>{esc(name)}</td><td>{info['type']}</td><td>{info['drift_score']:.4f}</td>"
            f"<td>{info['p_value']:.3g}</td><td>{'yes' if info.get('drifted') else ''}</td><td>{extra}</td></tr>"
        )
    records = result.get("records", {})
    skipped = "".join(
        f"<tr><td>{esc(reason)}</td><td>{count}</td></tr>"
        for reason, count in records.get("skipped_by_reason", {}).items()
    )
    accuracy = result.get("accuracy")
    acc_html = ""
    if accuracy:
        acc_html = (
            f"<p>Projected accuracy {accuracy['projected_accuracy']:.4f} (test accuracy "
            f"{accuracy['baseline_accuracy']:.4f}; Isolation Forest mean score "
            f"{accuracy['reference_mean_score']:.4f} on the well-predicted test rows, "
            f"{accuracy['incoming_mean_score']:.4f} on this hour's rows: drift {accuracy['drift']:+.2%}).</p>"
        )
    plotted = list(
        dict.fromkeys(
            drifted
            + sorted(features, key=lambda n: -features[n]["drift_score"])[:5]
            + [f for _, r in history if r for f in r.get("drifted_features", [])]
        )
    )[:10]
    thresholds = result.get("thresholds", {"drift_score": 0.2, "p_value": 0.05})
    images = "".join(
        f'<img alt="plot" src="data:image/png;base64,{png}">' for png in _plots(history, plotted, thresholds)
    )
    detail_rows = "".join(
        f"<tr><th>{esc(str(k))}</th><td>{esc(str(v))}</td></tr>" for k, v in details.items()
    )
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Drift report {esc(endpoint)} {hour:%Y-%m-%d %H:00} UTC</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:70em}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left;font-size:90%}}tr.drift td{{background:#ffe3e3}}
.verdict{{font-size:120%;font-weight:bold}}img{{display:block;margin:1em 0}}</style></head><body>
<h1>Drift report: endpoint {esc(endpoint)}, {hour:%Y-%m-%d %H:00}&ndash;{hour + dt.timedelta(hours=1):%H:00} UTC</h1>
<p class="verdict">{esc(verdict)}</p><p>{esc(confirmation)}</p>{acc_html}
<p>Capture: {records.get("files", 0)} file(s), {records.get("records", 0)} record(s), {records.get("rows", 0)} row(s)
analysed, {records.get("skipped", 0)} skipped. Thresholds: p &lt; {thresholds["p_value"]} and drift score &gt;
{thresholds["drift_score"]}.</p>
<table><tr><th>feature</th><th>type</th><th>drift score</th><th>p-value</th><th>drifted</th><th>change</th></tr>
{"".join(rows)}</table>
{"<h2>Skipped capture records</h2><table><tr><th>reason</th><th>count</th></tr>" + skipped + "</table>" if skipped else ""}
<h2>Last {len(history)} hours</h2>{images}
<h2>Details</h2><table>{detail_rows}</table>
</body></html>
"""
