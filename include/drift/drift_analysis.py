"""Drift analysis of an endpoint's captured traffic against its training data (a SageMaker Processing
script: runs unchanged in SageMaker's scikit-learn processing image and on aws_twin).

After the AWS blog "Bring your own container to project model accuracy drift with Amazon SageMaker
Model Monitor". Only numpy, pandas, scipy and scikit-learn (what the scikit-learn image has).

Two commands (every path is an argument; the defaults are the container's ``/opt/ml/processing``):

``baseline`` -- inputs ``<input>/train`` (training split CSV: label first, no header), ``<input>/schema``
(the preprocessing job's ``schema.json``: ``feature_columns``, ``numeric_columns``,
``categorical_levels``), ``<input>/test`` (test split CSV) and ``<input>/predictions`` (the model's
scores on the test split, one a line). Writes to ``<output>``:

- ``baseline.json``: per numeric feature the training data's decile edges and bin probabilities, per
  categorical feature (decoded from its one-hot columns ``<column>_<level>``) the level
  probabilities; the model's test accuracy;
- ``training_sample.csv``: the training features (up to 20,000 rows, for the KS tests);
- ``reference.csv``: the test rows the model predicts well (right class at ``--threshold``), which the
  Isolation Forest of the accuracy projection is fitted on.

``analyse --start ISO --end ISO`` -- inputs ``<input>/baseline`` (the three files above) and
``<input>/capture`` (the data-capture JSON lines files of one hour, any depth). Writes
``<output>/result.json``:

- per feature: ``drift_score`` (sum over the baseline's bins -- or levels -- of the absolute
  difference of the bin probabilities, 0 to 2), ``p_value`` (two-sample Kolmogorov-Smirnov test against
  the training data for numeric features, chi-square goodness of fit against the training level
  frequencies for categorical ones) and ``drifted`` (p below ``--p-threshold`` and score above
  ``--score-threshold``);
- ``accuracy``: the projected drift in model accuracy -- an Isolation Forest fitted on ``reference.csv``;
  ``drift`` is the relative drop of its mean score (``score_samples``, higher = more normal) from the
  reference rows to the incoming rows, ``projected_accuracy`` = test accuracy x (1 - drift);
- ``records``: capture files, lines, rows analysed, and every skipped line or row counted by reason
  (a malformed JSON line, a row with the wrong number of fields, a non-numeric value, an inference time
  outside ``[start, end)``...), with the first examples (file, line, reason); a bad line never fails
  the job;
- ``status``: ``ok``, ``no_traffic`` (no capture record) or ``no_valid_rows`` -- results, not errors.

Exit status 1 (with the reason as the last line on stderr) only for a missing or unusable baseline.
"""

from __future__ import annotations

import argparse
import base64
import csv
import datetime as dt
import io
import json
import math
import os
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.ensemble import IsolationForest

ROOT = "/opt/ml/processing"
TRAINING_SAMPLE_ROWS = 20_000
EXAMPLES_KEPT = 20
#: level name of a categorical row whose one-hot columns are not exactly one 1
NO_LEVEL = "<none>"
FORMAT_VERSION = 1


class BaselineError(Exception):
    """The baseline's inputs are missing or unusable (the message names the file and the reason)."""


# ----------------------------------------------------------------------------------------- reading


def _one_file(directory: Path, what: str) -> Path:
    files = sorted(p for p in directory.rglob("*") if p.is_file()) if directory.is_dir() else []
    if not files:
        raise BaselineError(f"{what}: no file under {directory}")
    return files[0]


def read_labelled_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    frame = pd.read_csv(path, header=None, dtype=float)
    if frame.shape[1] < 2:
        raise BaselineError(f"{path}: expected a label column and features, got {frame.shape[1]} columns")
    return frame.iloc[:, 0].to_numpy(), frame.iloc[:, 1:].to_numpy()


def categorical_groups(schema: dict) -> dict[str, list[tuple[str, int]]]:
    """categorical column -> [(level, index of its one-hot column in feature_columns)]."""
    columns = schema["feature_columns"]
    index = {name: i for i, name in enumerate(columns)}
    groups = {}
    for column, levels in (schema.get("categorical_levels") or {}).items():
        pairs = []
        for level in levels:
            name = f"{column}_{level}"
            if name not in index:
                raise BaselineError(f"schema: one-hot column {name!r} is not in feature_columns")
            pairs.append((str(level), index[name]))
        groups[column] = pairs
    return groups


def decode_levels(features: np.ndarray, pairs: list[tuple[str, int]]) -> np.ndarray:
    """The level of each row from its one-hot columns (NO_LEVEL unless exactly one is 1)."""
    block = features[:, [i for _, i in pairs]] > 0.5
    names = np.array([level for level, _ in pairs] + [NO_LEVEL], dtype=object)
    which = np.where(block.sum(axis=1) == 1, block.argmax(axis=1), len(pairs))
    return names[which]


# ---------------------------------------------------------------------------------------- baseline


def bin_probabilities(values: np.ndarray, inner_edges: np.ndarray) -> np.ndarray:
    """Probabilities of the bins cut at ``inner_edges`` (open-ended first and last bins; a value
    equal to an edge goes to the bin above it)."""
    bins = np.searchsorted(inner_edges, values, side="right")
    counts = np.bincount(bins, minlength=len(inner_edges) + 1)
    return counts / max(len(values), 1)


def decile_edges(values: np.ndarray) -> np.ndarray:
    """The training data's deciles 10 %..90 % (the inner edges of 10 bins); repeated edges (a
    discrete feature) are merged, so such a feature has fewer, never empty-by-construction, bins."""
    return np.unique(np.quantile(values, np.linspace(0.1, 0.9, 9)))


def compute_baseline(
    schema: dict,
    train: np.ndarray,
    test_labels: np.ndarray,
    test: np.ndarray,
    scores: np.ndarray,
    threshold: float,
) -> tuple[dict, np.ndarray, np.ndarray]:
    """(baseline dict, training sample, well-predicted reference rows)."""
    columns = schema["feature_columns"]
    for what, array in (("training split", train), ("test split", test)):
        if array.shape[1] != len(columns):
            raise BaselineError(
                f"{what} has {array.shape[1]} feature columns, schema.json lists {len(columns)}"
            )
    if len(scores) != len(test):
        raise BaselineError(f"predictions: {len(scores)} scores for {len(test)} test rows")
    groups = categorical_groups(schema)
    onehot = {i for pairs in groups.values() for _, i in pairs}
    numeric = {}
    for i, name in enumerate(columns):
        if i in onehot:
            continue
        edges = decile_edges(train[:, i])
        numeric[name] = {
            "index": i,
            "inner_edges": edges.tolist(),
            "probabilities": bin_probabilities(train[:, i], edges).tolist(),
            "mean": float(train[:, i].mean()),
            "std": float(train[:, i].std()),
            "min": float(train[:, i].min()),
            "max": float(train[:, i].max()),
        }
    categorical = {}
    for column, pairs in groups.items():
        levels = decode_levels(train, pairs)
        counts = Counter(levels.tolist())
        categorical[column] = {
            "columns": [i for _, i in pairs],
            "levels": [level for level, _ in pairs],
            "probabilities": {level: counts.get(level, 0) / len(levels) for level, _ in pairs},
            "rows": int(len(levels)),
        }
    predicted = (scores >= threshold).astype(float)
    right = predicted == test_labels
    accuracy = float(right.mean()) if len(right) else float("nan")
    if right.sum() < 10:
        raise BaselineError(
            f"only {int(right.sum())} test rows are predicted right: too few to fit a reference"
        )
    sample = train
    if len(train) > TRAINING_SAMPLE_ROWS:
        picked = np.random.default_rng(0).choice(len(train), TRAINING_SAMPLE_ROWS, replace=False)
        sample = train[np.sort(picked)]
    baseline = {
        "format": FORMAT_VERSION,
        "feature_columns": columns,
        "numeric": numeric,
        "categorical": categorical,
        "label_column": schema.get("label_column"),
        "training_rows": int(len(train)),
        "test_rows": int(len(test)),
        "test_accuracy": accuracy,
        "decision_threshold": threshold,
        "reference_rows": int(right.sum()),
        "prediction_mean": float(scores.mean()),
    }
    return baseline, sample, test[right]


def write_matrix(path: Path, array: np.ndarray) -> None:
    np.savetxt(path, array, delimiter=",", fmt="%.10g")


def run_baseline(args) -> dict:
    inp, out = Path(args.input_dir), Path(args.output_dir)
    schema_path = _one_file(inp / "schema", "schema.json")
    try:
        schema = json.loads(schema_path.read_text())
        schema["feature_columns"]  # noqa: B018
    except (ValueError, KeyError) as exc:
        raise BaselineError(f"{schema_path}: not a preprocessing schema.json ({exc!r})") from exc
    _, train = read_labelled_csv(_one_file(inp / "train", "training split"))
    test_labels, test = read_labelled_csv(_one_file(inp / "test", "test split"))
    scores_path = _one_file(inp / "predictions", "predictions")
    scores = np.array([float(v) for v in scores_path.read_text().split()])
    baseline, sample, reference = compute_baseline(schema, train, test_labels, test, scores, args.threshold)
    out.mkdir(parents=True, exist_ok=True)
    (out / "baseline.json").write_text(json.dumps(baseline, indent=1))
    write_matrix(out / "training_sample.csv", sample)
    write_matrix(out / "reference.csv", reference)
    summary = {
        "numeric_features": len(baseline["numeric"]),
        "categorical_features": len(baseline["categorical"]),
        "training_rows": baseline["training_rows"],
        "reference_rows": baseline["reference_rows"],
        "test_accuracy": baseline["test_accuracy"],
    }
    print(json.dumps(summary))
    return summary


def load_baseline(directory: Path) -> tuple[dict, np.ndarray, np.ndarray]:
    path = directory / "baseline.json"
    if not path.is_file():
        raise BaselineError(f"no baseline.json under {directory}")
    try:
        baseline = json.loads(path.read_text())
    except ValueError as exc:
        raise BaselineError(f"{path} is not JSON: {exc}") from exc
    if baseline.get("format") != FORMAT_VERSION:
        raise BaselineError(f"{path}: format {baseline.get('format')!r}, expected {FORMAT_VERSION}")
    width = len(baseline["feature_columns"])
    arrays = []
    for name in ("training_sample.csv", "reference.csv"):
        file = directory / name
        if not file.is_file():
            raise BaselineError(f"no {name} under {directory}")
        array = np.loadtxt(file, delimiter=",", ndmin=2)
        if array.shape[1] != width:
            raise BaselineError(f"{file}: {array.shape[1]} columns, baseline.json lists {width} features")
        arrays.append(array)
    return baseline, arrays[0], arrays[1]


# --------------------------------------------------------------------------------------- capture


def parse_time(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


class CaptureReader:
    """Rows (features, prediction) of the capture files; every skipped line or row counted by reason."""

    def __init__(self, width: int, start: dt.datetime | None, end: dt.datetime | None):
        self.width, self.start, self.end = width, start, end
        self.files = self.lines = self.records = 0
        self.skipped: Counter = Counter()
        self.examples: list[dict] = []
        self.rows: list[list[float]] = []
        self.predictions: list[float] = []

    def skip(self, reason: str, file: str, line: int, count: int = 1) -> None:
        self.skipped[reason] += count
        if len(self.examples) < EXAMPLES_KEPT:
            self.examples.append({"file": file, "line": line, "reason": reason})

    def read_dir(self, directory: Path) -> None:
        files = sorted(p for p in directory.rglob("*") if p.is_file()) if directory.is_dir() else []
        for path in files:
            self.files += 1
            with path.open("rb") as handle:
                for number, raw in enumerate(handle, 1):
                    if raw.strip():
                        self.lines += 1
                        self.read_line(raw, str(path.relative_to(directory)), number)

    @staticmethod
    def _payload(block: dict) -> str:
        encoding = str(block.get("encoding", "")).upper()
        data = block.get("data")
        if not isinstance(data, str):
            raise ValueError("no data")
        if encoding == "BASE64":
            return base64.b64decode(data).decode("utf-8")
        if encoding == "CSV":
            return data
        raise ValueError(f"encoding {encoding or '(none)'} is not CSV")

    def read_line(self, raw: bytes, file: str, line: int) -> None:
        try:
            event = json.loads(raw)
            capture = event["captureData"]
            block = capture["endpointInput"]
        except (ValueError, KeyError, TypeError):
            self.skip("not a data-capture JSON line (captureData.endpointInput missing)", file, line)
            return
        self.records += 1
        when = (event.get("eventMetadata") or {}).get("inferenceTime")
        if self.start is not None and when:
            try:
                stamp = parse_time(when)
            except ValueError:
                self.skip("inferenceTime is not an ISO time", file, line)
                return
            if not (self.start <= stamp < self.end):
                self.skip("inferenceTime outside the data interval", file, line)
                return
        try:
            text = self._payload(block)
        except (ValueError, UnicodeDecodeError) as exc:
            self.skip(f"endpointInput unreadable: {str(exc)[:80]}", file, line)
            return
        rows = [r for r in csv.reader(io.StringIO(text)) if r and any(f.strip() for f in r)]
        outputs: list[float] | None = None
        out_block = capture.get("endpointOutput")
        if isinstance(out_block, dict):
            try:
                outputs = [
                    float(v) for v in self._payload(out_block).replace("\n", ",").split(",") if v.strip()
                ]
            except (ValueError, UnicodeDecodeError):
                outputs = None
        if outputs is not None and len(outputs) != len(rows):
            outputs = None
        for k, row in enumerate(rows):
            if len(row) != self.width:
                self.skip(f"expected {self.width} fields, got {len(row)}", file, line)
                continue
            try:
                values = [float(v) for v in row]
            except ValueError:
                self.skip("non-numeric value", file, line)
                continue
            if not all(math.isfinite(v) for v in values):
                self.skip("non-finite value", file, line)
                continue
            self.rows.append(values)
            if outputs is not None:
                self.predictions.append(outputs[k])

    def summary(self) -> dict:
        return {
            "files": self.files,
            "lines": self.lines,
            "records": self.records,
            "rows": len(self.rows),
            "skipped": int(sum(self.skipped.values())),
            "skipped_by_reason": dict(self.skipped.most_common()),
            "skipped_examples": self.examples,
        }


# --------------------------------------------------------------------------------------- analysis


def numeric_drift(spec: dict, training: np.ndarray, incoming: np.ndarray) -> dict:
    edges = np.asarray(spec["inner_edges"])
    base = np.asarray(spec["probabilities"])
    now = bin_probabilities(incoming, edges)
    score = float(np.abs(base - now).sum())
    p_value = float(stats.ks_2samp(training, incoming).pvalue)
    return {
        "type": "numeric",
        "test": "ks",
        "drift_score": score,
        "p_value": p_value,
        "baseline_mean": spec["mean"],
        "incoming_mean": float(incoming.mean()),
        "mean_shift_in_std": float((incoming.mean() - spec["mean"]) / spec["std"]) if spec["std"] else 0.0,
        "bin_probabilities": [round(float(v), 6) for v in now],
    }


def categorical_drift(spec: dict, levels: np.ndarray) -> dict:
    names = list(spec["levels"])
    counts = Counter(levels.tolist())
    if counts.get(NO_LEVEL):
        names.append(NO_LEVEL)
    observed = np.array([counts.get(n, 0) for n in names], dtype=float)
    n = observed.sum()
    base = np.array([spec["probabilities"].get(n_, 0.0) for n_ in names])
    score = float(np.abs(base - observed / n).sum())
    # expected counts from the training frequencies, add-half smoothed so an unseen level (or the
    # NO_LEVEL bucket) has a finite expectation
    smoothed = (base * spec["rows"] + 0.5) / (spec["rows"] + 0.5 * len(names))
    expected = smoothed / smoothed.sum() * n
    p_value = float(stats.chisquare(observed, expected).pvalue) if len(names) > 1 else 1.0
    return {
        "type": "categorical",
        "test": "chi-square",
        "drift_score": score,
        "p_value": p_value,
        "baseline_probabilities": {k: round(float(v), 6) for k, v in zip(names, base, strict=True)},
        "incoming_probabilities": {k: round(float(c / n), 6) for k, c in zip(names, observed, strict=True)},
    }


def forest_features(baseline: dict, rows: np.ndarray) -> np.ndarray:
    """The Isolation Forest's view of a row: the numeric features, and each categorical feature as
    the code of its level (not its one-hot columns: 51 state columns would otherwise take most of
    the forest's random splits and hide the drift of the rest)."""
    columns = [rows[:, spec["index"]] for spec in baseline["numeric"].values()]
    for spec in baseline["categorical"].values():
        block = rows[:, spec["columns"]] > 0.5
        columns.append(np.where(block.sum(axis=1) == 1, block.argmax(axis=1), len(spec["columns"])))
    return np.column_stack(columns).astype(float)


def accuracy_projection(baseline: dict, reference: np.ndarray, incoming: np.ndarray) -> dict:
    reference, incoming = forest_features(baseline, reference), forest_features(baseline, incoming)
    forest = IsolationForest(n_estimators=200, random_state=0).fit(reference)
    ref_score = float(forest.score_samples(reference).mean())
    in_score = float(forest.score_samples(incoming).mean())
    drift = (ref_score - in_score) / abs(ref_score) if ref_score else 0.0
    accuracy = baseline["test_accuracy"]
    return {
        "method": "isolation forest on the test rows predicted right",
        "reference_rows": int(len(reference)),
        "reference_mean_score": ref_score,
        "incoming_mean_score": in_score,
        "drift": drift,
        "baseline_accuracy": accuracy,
        "projected_accuracy": accuracy * (1 - drift),
    }


def analyse(
    baseline: dict,
    training: np.ndarray,
    reference: np.ndarray,
    reader: CaptureReader,
    p_threshold: float,
    score_threshold: float,
) -> dict:
    result: dict = {
        "format": FORMAT_VERSION,
        "thresholds": {"p_value": p_threshold, "drift_score": score_threshold},
        "records": reader.summary(),
        "features": {},
        "drifted_features": [],
        "drift": False,
    }
    if reader.records == 0:
        result["status"] = "no_traffic"
        return result
    if not reader.rows:
        result["status"] = "no_valid_rows"
        return result
    result["status"] = "ok"
    incoming = np.asarray(reader.rows, dtype=float)
    features = {}
    for name, spec in baseline["numeric"].items():
        i = spec["index"]
        features[name] = numeric_drift(spec, training[:, i], incoming[:, i])
    for name, spec in baseline["categorical"].items():
        pairs = list(zip(spec["levels"], spec["columns"], strict=True))
        features[name] = categorical_drift(spec, decode_levels(incoming, pairs))
    for info in features.values():
        info["drifted"] = bool(info["p_value"] < p_threshold and info["drift_score"] > score_threshold)
    result["features"] = features
    drifted = sorted(
        (n for n, f in features.items() if f["drifted"]), key=lambda n: -features[n]["drift_score"]
    )
    result["drifted_features"] = drifted
    result["drift"] = bool(drifted)
    result["accuracy"] = accuracy_projection(baseline, reference, incoming)
    if reader.predictions:
        result["prediction_mean"] = {
            "baseline": baseline.get("prediction_mean"),
            "incoming": float(np.mean(reader.predictions)),
        }
    return result


def run_analyse(args) -> dict:
    inp, out = Path(args.input_dir), Path(args.output_dir)
    baseline, training, reference = load_baseline(inp / "baseline")
    start = parse_time(args.start) if args.start else None
    end = parse_time(args.end) if args.end else None
    if (start is None) != (end is None):
        raise SystemExit("--start and --end go together")
    reader = CaptureReader(len(baseline["feature_columns"]), start, end)
    reader.read_dir(inp / "capture")
    result = analyse(baseline, training, reference, reader, args.p_threshold, args.score_threshold)
    result["interval"] = {"start": args.start, "end": args.end}
    result["endpoint"] = args.endpoint
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps(result, indent=1))
    brief = {k: result[k] for k in ("status", "drift", "drifted_features")}
    brief["rows"] = result["records"]["rows"]
    brief["skipped"] = result["records"]["skipped"]
    print(json.dumps(brief))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("baseline", "analyse"):
        command = sub.add_parser(name)
        command.add_argument("--input-dir", default=os.path.join(ROOT, "input"))
        command.add_argument("--output-dir", default=os.path.join(ROOT, "output"))
    sub.choices["baseline"].add_argument("--threshold", type=float, default=0.5)
    analyse_cmd = sub.choices["analyse"]
    analyse_cmd.add_argument("--start", help="data interval start (ISO time, UTC)")
    analyse_cmd.add_argument("--end", help="data interval end (ISO time, UTC)")
    analyse_cmd.add_argument("--endpoint", default=None)
    analyse_cmd.add_argument("--p-threshold", type=float, default=0.05)
    analyse_cmd.add_argument("--score-threshold", type=float, default=0.2)
    args = parser.parse_args(argv)
    try:
        (run_baseline if args.command == "baseline" else run_analyse)(args)
    except BaselineError as exc:
        print(f"BaselineError: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
