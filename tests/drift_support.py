"""Shared by the drift tests and bench/drift_bench.py: the churn data encoded as the churn pipeline's
Glue job encodes it (its own functions), split, a small model's test predictions, the baseline
inputs laid out as the Processing job sees them, and data-capture lines in SageMaker's format."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import sys
import uuid
from functools import cache
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ANALYSIS = ROOT / "include" / "drift" / "drift_analysis.py"
TRAFFIC = ROOT / "include" / "drift" / "traffic.py"


def load_module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@cache
def analysis():
    return load_module(ANALYSIS, "drift_analysis")


@cache
def traffic():
    return load_module(TRAFFIC, "drift_traffic")


@cache
def churn_encoded() -> tuple[np.ndarray, np.ndarray, dict]:
    """(labels, features, schema) of include/data/mlc_churn.csv, encoded by the Glue job's code."""
    glue = load_module(ROOT / "include" / "glue" / "churn_preprocess.py", "churn_preprocess_for_drift")
    text = (ROOT / "include" / "data" / "mlc_churn.csv").read_text()
    header, rows = glue.parse_csv(text, "mlc_churn.csv")
    features = [c for c in header if c != "churn"]
    numeric = glue.classify_columns(header, rows, features)
    good, bad = glue.check_rows(header, rows, "churn", numeric)
    assert not bad
    rules = glue.input_rules(good, header, "churn", numeric, 100)
    levels = rules["levels"]
    frame, columns = glue.encode(good, header, "churn", "yes", numeric, levels)
    schema = {
        "label_column": "churn",
        "feature_columns": columns,
        "numeric_columns": [name for name in header if name in numeric],
        "categorical_levels": levels,
    }
    array = frame.to_numpy(dtype=float)
    return array[:, 0], array[:, 1:], schema


@cache
def churn_split(seed: int = 7):
    """train (70 %), test (10 %) and held-out (20 %) rows, and a model's scores on test and held-out."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    labels, features, schema = churn_encoded()
    order = np.random.default_rng(seed).permutation(len(labels))
    n_train, n_test = int(0.7 * len(order)), int(0.1 * len(order))
    tr, te, ho = order[:n_train], order[n_train : n_train + n_test], order[n_train + n_test :]
    model = HistGradientBoostingClassifier(max_iter=60, random_state=0).fit(features[tr], labels[tr])
    return {
        "schema": schema,
        "train": (labels[tr], features[tr]),
        "test": (labels[te], features[te]),
        "held_out": (labels[ho], features[ho]),
        "test_scores": model.predict_proba(features[te])[:, 1],
        "model": model,
    }


def write_baseline_inputs(directory: Path, split: dict) -> Path:
    """input/{train,test,predictions,schema}/ as the baseline Processing job gets them."""
    inp = directory / "input"
    for name in ("train", "test", "predictions", "schema"):
        (inp / name).mkdir(parents=True, exist_ok=True)
    for name in ("train", "test"):
        labels, features = split[name]
        np.savetxt(
            inp / name / f"{name}.csv", np.column_stack([labels, features]), delimiter=",", fmt="%.10g"
        )
    (inp / "predictions" / "predictions.csv").write_text("".join(f"{p:.8f}\n" for p in split["test_scores"]))
    (inp / "schema" / "schema.json").write_text(json.dumps(split["schema"]))
    return inp


def capture_line(rows: list[str], when: dt.datetime, predictions: list[float] | None = None) -> str:
    """One data-capture JSON line as SageMaker (and aws_twin) writes it."""
    capture = {
        "endpointInput": {
            "observedContentType": "text/csv",
            "mode": "INPUT",
            "data": "\n".join(rows),
            "encoding": "CSV",
        }
    }
    if predictions is not None:
        capture["endpointOutput"] = {
            "observedContentType": "text/csv; charset=utf-8",
            "mode": "OUTPUT",
            "data": "\n".join(f"{p:.6f}" for p in predictions),
            "encoding": "CSV",
        }
    stamp = when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return json.dumps(
        {
            "captureData": capture,
            "eventMetadata": {"eventId": str(uuid.uuid4()), "inferenceTime": stamp},
            "eventVersion": "0",
        }
    )


def format_row(values) -> str:
    return ",".join(f"{v:.6g}" for v in values)


def capture_keys(s3, bucket: str, prefix: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def move_capture_to_hour(
    s3, bucket: str, base: str, target: dt.datetime, expected: int, timeout: float = 30
) -> int:
    """Move the records the twin captured under ``base`` (``.../<endpoint>/<variant>/``), outside
    ``target``'s day, into one file of ``target``'s hour partition, their inference times set 10 s
    apart inside that hour: what SageMaker would have written had the traffic come then. Waits (up to
    ``timeout`` s) for ``expected`` records (the twin flushes capture every 0.5 s); returns how many."""
    import time

    day = f"{base}{target:%Y/%m/%d}/"
    deadline = time.monotonic() + timeout
    while True:
        keys = [k for k in capture_keys(s3, bucket, base) if not k.startswith(day)]
        records = [
            json.loads(line)
            for key in keys
            for line in s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode().split("\n")
            if line.strip()
        ]
        if len(records) >= expected or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    for number, record in enumerate(records):
        stamp = target + dt.timedelta(seconds=10 * number)
        record["eventMetadata"]["inferenceTime"] = stamp.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    body = "\n".join(json.dumps(r) for r in records) + "\n"
    key = f"{base}{target:%Y/%m/%d/%H}/00-00-000-{uuid.uuid4()}.jsonl"
    s3.put_object(Bucket=bucket, Key=key, Body=body.encode())
    for old in keys:
        s3.delete_object(Bucket=bucket, Key=old)
    return len(records)
