"""The evaluation report: a ROC curve PNG and a self-contained HTML page (PNG embedded)."""

from __future__ import annotations

import base64
import html
import io
from typing import Any


def roc_png(fpr: list[float], tpr: list[float], auc: float, title: str = "ROC curve (test split)") -> bytes:
    """The ROC curve as PNG bytes: a matplotlib ``Figure`` drawn by the Agg canvas directly (no
    pyplot, no backend selection, no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5, 5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    axes.plot(fpr, tpr, color="#d9480f", linewidth=2, label=f"XGBoost (AUC = {auc:.4f})")
    axes.plot([0, 1], [0, 1], color="#868e96", linestyle="--", linewidth=1, label="chance")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.01)
    axes.set_xlabel("False positive rate")
    axes.set_ylabel("True positive rate")
    axes.set_title(title)
    axes.legend(loc="lower right")
    axes.grid(alpha=0.3)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def _table(rows: list[tuple[str, Any]]) -> str:
    body = "".join(
        f"<tr><th>{html.escape(str(key))}</th><td>{html.escape(str(value))}</td></tr>" for key, value in rows
    )
    return f"<table>{body}</table>"


def render_html(
    *,
    title: str,
    metrics: dict[str, Any],
    hyperparameters: dict[str, Any],
    counts: dict[str, Any],
    png: bytes,
    details: dict[str, Any] | None = None,
) -> str:
    """A standalone HTML report: metrics, confusion matrix, ROC curve, hyperparameters, data counts."""
    cm = metrics.get("confusion_matrix", {})
    metric_rows = [
        (name, f"{metrics[name]:.4f}")
        for name in ("auc", "accuracy", "precision", "recall", "f1")
        if name in metrics
    ]
    metric_rows += [("decision threshold", metrics.get("threshold")), ("test rows", metrics.get("rows"))]
    confusion = (
        "<table><tr><th></th><th>predicted 1</th><th>predicted 0</th></tr>"
        f"<tr><th>actual 1</th><td>{cm.get('tp', '')}</td><td>{cm.get('fn', '')}</td></tr>"
        f"<tr><th>actual 0</th><td>{cm.get('fp', '')}</td><td>{cm.get('tn', '')}</td></tr></table>"
    )
    image = base64.b64encode(png).decode("ascii")
    detail_rows = sorted((details or {}).items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #212529; }}
table {{ border-collapse: collapse; margin: 0 0 1.5rem; }}
th, td {{ border: 1px solid #dee2e6; padding: .3rem .7rem; text-align: left; }}
th {{ background: #f1f3f5; }}
section {{ display: inline-block; vertical-align: top; margin-right: 2.5rem; }}
</style></head>
<body>
<h1>{html.escape(title)}</h1>
<section><h2>Test metrics</h2>{_table(metric_rows)}<h2>Confusion matrix</h2>{confusion}</section>
<section><h2>ROC curve</h2><img alt="ROC curve" src="data:image/png;base64,{image}" width="400"></section>
<section><h2>Hyperparameters</h2>{_table(sorted(hyperparameters.items()))}</section>
<section><h2>Data</h2>{_table(list(counts.items()))}</section>
<section><h2>Run</h2>{_table(detail_rows)}</section>
</body></html>
"""
