"""Binary-classification evaluation of a SageMaker XGBoost model artifact.

Pure functions over bytes and arrays (no AWS calls): the DAG's task downloads ``model.tar.gz`` and
the test split, calls these, and uploads what they return.

- :func:`load_xgboost_model` opens SageMaker's ``model.tar.gz`` (the built-in algorithm writes one
  file, ``xgboost-model``) into an ``xgboost.Booster``.
- :func:`read_labelled_csv` reads SageMaker's XGBoost CSV format: label first, no header.
- :func:`binary_metrics` computes AUC (rank statistic, ties averaged), accuracy, precision, recall,
  F1 and the confusion matrix at a probability threshold, with numpy only.
- :func:`roc_curve` gives the ROC points for the report's plot.
"""

from __future__ import annotations

import io
import tarfile
from typing import Any

#: metrics a quality gate may use (all "higher is better", in [0, 1])
GATE_METRICS = ("auc", "accuracy", "f1", "precision", "recall")


class EvaluationError(ValueError):
    """The artifact or the data cannot be evaluated; the message names the object and the reason."""


def load_xgboost_model(tar_bytes: bytes, source: str = "model.tar.gz"):
    """The Booster inside a SageMaker XGBoost ``model.tar.gz`` (member ``xgboost-model``, else the
    only regular file)."""
    import xgboost as xgb

    try:
        archive = tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:*")
    except tarfile.TarError as exc:
        raise EvaluationError(f"{source} is not a tar archive: {exc}") from exc
    with archive:
        members = [m for m in archive.getmembers() if m.isfile()]
        chosen = [m for m in members if m.name.rsplit("/", 1)[-1] == "xgboost-model"]
        if not chosen and len(members) == 1:
            chosen = members
        if not chosen:
            names = [m.name for m in members]
            raise EvaluationError(f"{source} holds no xgboost-model file (members: {names})")
        data = archive.extractfile(chosen[0]).read()
    booster = xgb.Booster()
    try:
        booster.load_model(bytearray(data))
    except xgb.core.XGBoostError as exc:
        raise EvaluationError(f"{source}: {chosen[0].name} is not an XGBoost model: {exc}") from exc
    return booster


def read_labelled_csv(data: bytes, source: str = "test.csv"):
    """(labels, features) from a headerless CSV whose first column is the 0/1 label."""
    import numpy as np

    text = data.decode("utf-8")
    rows = [line for line in text.splitlines() if line.strip()]
    if not rows:
        raise EvaluationError(f"{source} has no rows")
    # an empty field is a missing feature value (NaN), as XGBoost reads it
    try:
        cells = [[float(c) if c.strip() else np.nan for c in row.split(",")] for row in rows]
    except ValueError as exc:
        raise EvaluationError(f"{source} is not a numeric label-first CSV: {exc}") from exc
    widths = {len(row) for row in cells}
    if len(widths) != 1:
        raise EvaluationError(f"{source} is not a numeric label-first CSV: rows of {sorted(widths)} fields")
    array = np.asarray(cells, dtype=np.float64)
    if array.shape[1] < 2:
        raise EvaluationError(f"{source} has {array.shape[1]} column(s); expected the label and features")
    labels = array[:, 0]
    bad = sorted({str(v) for v in labels.tolist()} - {"0.0", "1.0"})
    if bad:
        raise EvaluationError(f"{source}: labels must be 0 or 1, found {bad[:5]}")
    return labels.astype(np.int64), array[:, 1:]


def predict(booster, features):
    """Probabilities for the rows of a 2-D feature array."""
    import numpy as np
    import xgboost as xgb

    return np.asarray(booster.predict(xgb.DMatrix(features)), dtype=np.float64)


def auc_score(labels, scores) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties)."""
    import numpy as np

    labels = np.asarray(labels)
    scores = np.asarray(scores, dtype=np.float64)
    n_pos = int((labels == 1).sum())
    n_neg = int((labels == 0).sum())
    if n_pos == 0 or n_neg == 0:
        raise EvaluationError(
            f"AUC needs both classes; the test split has {n_pos} positive and {n_neg} negative rows"
        )
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores), dtype=np.float64)
    i = 0
    while i < len(scores):
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    rank_sum = ranks[labels == 1].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def roc_curve(labels, scores) -> tuple[list[float], list[float]]:
    """(false positive rates, true positive rates) over every distinct threshold, from (0, 0) to (1, 1)."""
    import numpy as np

    labels = np.asarray(labels)
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores, sorted_labels = scores[order], labels[order]
    tps = np.cumsum(sorted_labels == 1)
    fps = np.cumsum(sorted_labels == 0)
    last = np.r_[np.flatnonzero(np.diff(sorted_scores)), len(scores) - 1]
    n_pos, n_neg = max(int(tps[-1]), 1), max(int(fps[-1]), 1)
    fpr = [0.0, *(fps[last] / n_neg).tolist()]
    tpr = [0.0, *(tps[last] / n_pos).tolist()]
    return fpr, tpr


def binary_metrics(labels, scores, threshold: float = 0.5) -> dict[str, Any]:
    """AUC, accuracy, precision, recall, F1 and the confusion matrix at ``threshold``."""
    import numpy as np

    labels = np.asarray(labels).astype(np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    if labels.shape != scores.shape:
        raise EvaluationError(f"{len(labels)} labels but {len(scores)} predictions")
    predicted = (scores >= threshold).astype(np.int64)
    tp = int(((predicted == 1) & (labels == 1)).sum())
    tn = int(((predicted == 0) & (labels == 0)).sum())
    fp = int(((predicted == 1) & (labels == 0)).sum())
    fn = int(((predicted == 0) & (labels == 1)).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "auc": round(auc_score(labels, scores), 6),
        "accuracy": round((tp + tn) / len(labels), 6),
        "precision": round(precision, 6),
        "recall": round(recall, 6),
        "f1": round(f1, 6),
        "threshold": threshold,
        "rows": len(labels),
        "positives": int((labels == 1).sum()),
        "confusion_matrix": {"tp": tp, "fp": fp, "tn": tn, "fn": fn},
    }


def gate_message(metric: str, value: float, threshold: float) -> str:
    """The quality gate's verdict in words, e.g. 'test auc 0.9132 is below the quality gate 0.9500 by 0.0368'."""
    if value >= threshold:
        return f"test {metric} {value:.4f} meets the quality gate {threshold:.4f} (margin {value - threshold:.4f})"
    return f"test {metric} {value:.4f} is below the quality gate {threshold:.4f} by {threshold - value:.4f}"
