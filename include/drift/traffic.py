"""Send realistic traffic to a deployed churn endpoint, with a drift profile (as the AWS blog's
traffic generator did): rows sampled from held-out data the model never trained on, sent at a rate.

Profiles (``--profile``):

- ``none``: the held-out rows as they are;
- ``sudden``: from ``--at`` (a fraction of the rows sent, default 0) on, the ``--features`` are
  shifted by ``--shift`` training standard deviations;
- ``gradual``: the shift grows linearly from 0 (first row) to ``--shift`` (last row);
- ``category``: ``--category column=level:fraction`` -- rows are drawn so that ``fraction`` of them have
  that level of the categorical column (one-hot encoded as ``<column>_<level>``); combinable with a
  numeric shift.

``--replay raw.csv`` sends instead the rows of a CSV with a header (e.g. a later period of the data
the model was trained on: real drift), in order, encoded with the schema (``encode_records``).

The rows are the endpoint's model's held-out split, found from the endpoint (endpoint -> config ->
model -> registered model package -> artifact ``s3://<bucket>/churn/runs/<key>/model/...`` ->
``.../processed/validation/validation.csv`` and ``schema.json``), or given with ``--data`` (a CSV,
label first, no header; an S3 URI or a local path) and ``--schema``.

Usage (against aws_twin: ``--endpoint-url http://127.0.0.1:4566``; on AWS the default credentials)::

    python include/drift/traffic.py --endpoint churn-xgboost --rows 600 --rate 20
    python include/drift/traffic.py --endpoint churn-xgboost --rows 600 --profile sudden \\
        --features total_day_minutes,total_eve_minutes --shift 1.5
    python include/drift/traffic.py --endpoint churn-xgboost --profile category \\
        --category international_plan=yes:0.6

Only boto3 and numpy; prints a JSON summary (rows sent, invocations, mean prediction).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

PROFILES = ("none", "sudden", "gradual", "category")


@dataclass
class Profile:
    kind: str = "none"
    features: list[str] = field(default_factory=list)
    shift: float = 0.0
    at: float = 0.0
    category: tuple[str, str, float] | None = None

    def __post_init__(self):
        if self.kind not in PROFILES:
            raise ValueError(f"profile {self.kind!r}: expected one of {PROFILES}")
        if self.kind in ("sudden", "gradual") and not self.features:
            raise ValueError(f"profile {self.kind} needs features to shift")
        if self.kind == "category" and self.category is None:
            raise ValueError("profile category needs column=level:fraction")


def parse_category(text: str) -> tuple[str, str, float]:
    try:
        column, rest = text.split("=", 1)
        level, fraction = rest.rsplit(":", 1)
        value = float(fraction)
    except ValueError as exc:
        raise ValueError(f"--category {text!r}: expected column=level:fraction") from exc
    if not 0 <= value <= 1:
        raise ValueError(f"--category {text!r}: fraction must be in [0, 1]")
    return column, level, value


def draw(rng: np.random.Generator, indices: np.ndarray, count: int) -> np.ndarray:
    """``count`` of ``indices`` in random order, each once before any repeats (a held-out customer is
    not sent twice while others were not sent at all: a with-replacement draw from a small pool would
    inflate the sampling noise the drift tests see)."""
    rounds = -(-count // len(indices))
    return np.concatenate([rng.permutation(indices) for _ in range(rounds)])[:count]


def generate(pool: np.ndarray, schema: dict, profile: Profile, count: int, seed: int = 0) -> np.ndarray:
    """``count`` rows drawn from ``pool`` (features only, the endpoint's columns) with the profile."""
    rng = np.random.default_rng(seed)
    columns = schema["feature_columns"]
    index = {name: i for i, name in enumerate(columns)}
    if profile.category is not None:
        column, level, fraction = profile.category
        name = f"{column}_{level}"
        if name not in index:
            raise ValueError(f"category {column}={level}: no one-hot column {name!r} in the schema")
        has = pool[:, index[name]] > 0.5
        if not has.any() or has.all():
            raise ValueError(f"category {column}={level}: the held-out rows do not have both kinds")
        with_level, without = np.flatnonzero(has), np.flatnonzero(~has)
        take = rng.random(count) < fraction
        picks = np.where(take, draw(rng, with_level, count), draw(rng, without, count))
    else:
        picks = draw(rng, np.arange(len(pool)), count)
    rows = pool[picks].astype(float, copy=True)
    if profile.features and profile.shift:
        numeric = set(schema.get("numeric_columns") or columns)
        progress = np.linspace(0, 1, count) if count > 1 else np.ones(1)
        if profile.kind == "gradual":
            factor = progress
        else:
            factor = (progress >= profile.at).astype(float)
        for feature in profile.features:
            if feature not in index or feature not in numeric:
                raise ValueError(f"feature {feature!r} is not a numeric column of the schema")
            i = index[feature]
            std = float(pool[:, i].std()) or 1.0
            rows[:, i] += factor * profile.shift * std
    return rows


def encode_records(records: list[dict], schema: dict) -> np.ndarray:
    """Raw rows (column -> text, e.g. from ``csv.DictReader``) encoded as the churn pipeline's Glue job
    encodes its features: numeric columns as numbers, categorical ones one-hot (``<column>_<level>``,
    all 0 for a level the model never saw), in ``schema["feature_columns"]`` order."""
    columns = schema["feature_columns"]
    numeric = set(schema.get("numeric_columns") or [])
    levels = schema.get("categorical_levels") or {}
    out = np.zeros((len(records), len(columns)))
    index = {name: i for i, name in enumerate(columns)}
    for r, record in enumerate(records):
        for name in numeric:
            out[r, index[name]] = float(record[name])
        for column in levels:
            key = f"{column}_{str(record[column]).strip()}"
            if key in index:
                out[r, index[key]] = 1.0
    return out


def format_rows(rows: np.ndarray) -> list[str]:
    return [",".join(f"{v:.6g}" for v in row) for row in rows]


def send(
    runtime, endpoint: str, rows: np.ndarray, rate: float, batch: int = 10, keep_predictions: bool = False
) -> dict:
    """InvokeEndpoint with ``batch`` rows per request, paced to ``rate`` rows per second (0: as fast
    as the endpoint answers); ``keep_predictions``: the answers too (``predictions``)."""
    lines = format_rows(rows)
    started = time.monotonic()
    predictions: list[float] = []
    calls = 0
    for start in range(0, len(lines), batch):
        chunk = lines[start : start + batch]
        answer = runtime.invoke_endpoint(
            EndpointName=endpoint, ContentType="text/csv", Accept="text/csv", Body="\n".join(chunk).encode()
        )
        text = answer["Body"].read().decode()
        predictions += [float(v) for v in text.replace("\n", ",").split(",") if v.strip()]
        calls += 1
        if rate > 0:
            due = started + (start + len(chunk)) / rate
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
    summary = {
        "endpoint": endpoint,
        "rows": len(lines),
        "invocations": calls,
        "seconds": round(time.monotonic() - started, 2),
        "mean_prediction": float(np.mean(predictions)) if predictions else None,
    }
    if keep_predictions:
        summary["predictions"] = predictions
    return summary


def read_uri(s3, uri: str) -> bytes:
    if uri.startswith("s3://"):
        bucket, _, key = uri[5:].partition("/")
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return Path(uri).read_bytes()


def endpoint_artifact(sagemaker, endpoint: str, variant: str | None = None) -> str:
    """The model artifact (ModelDataUrl) the endpoint's variant serves."""
    config_name = sagemaker.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"]
    variants = sagemaker.describe_endpoint_config(EndpointConfigName=config_name)["ProductionVariants"]
    chosen = next((v for v in variants if variant in (None, v["VariantName"])), None)
    if chosen is None:
        raise ValueError(f"endpoint {endpoint} has no variant {variant}")
    model = sagemaker.describe_model(ModelName=chosen["ModelName"])
    container = model.get("PrimaryContainer") or (model.get("Containers") or [{}])[0]
    if container.get("ModelDataUrl"):
        return container["ModelDataUrl"]
    package = sagemaker.describe_model_package(ModelPackageName=container["ModelPackageName"])
    return package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]


def run_prefix(artifact: str) -> str:
    """``s3://b/churn/runs/<key>/model/<job>/output/model.tar.gz`` -> ``s3://b/churn/runs/<key>``."""
    head, sep, _ = artifact.rpartition("/model/")
    if not sep:
        raise ValueError(f"model artifact {artifact} is not under a churn pipeline run's model/ prefix")
    return head


def main(argv: list[str] | None = None) -> int:
    import boto3

    parser = argparse.ArgumentParser(description="Send held-out rows to an endpoint with a drift profile.")
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--rows", type=int, default=300, help="rows to send (default 300)")
    parser.add_argument("--rate", type=float, default=10.0, help="rows per second; 0 = unpaced (default 10)")
    parser.add_argument("--batch", type=int, default=10, help="rows per InvokeEndpoint (default 10)")
    parser.add_argument("--profile", choices=PROFILES, default="none")
    parser.add_argument("--features", default="", help="numeric features to shift, comma-separated")
    parser.add_argument("--shift", type=float, default=1.0, help="shift in standard deviations (default 1)")
    parser.add_argument("--at", type=float, default=0.0, help="sudden: fraction of rows before the shift")
    parser.add_argument("--category", default=None, help="column=level:fraction")
    parser.add_argument("--data", default=None, help="held-out CSV (label first); default: from the endpoint")
    parser.add_argument("--schema", default=None, help="schema.json of the data; default: from the endpoint")
    parser.add_argument(
        "--replay",
        default=None,
        help="a CSV with a header of raw rows (e.g. a later period of the training data), sent in order, "
        "encoded with the schema; the profile is not applied",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--endpoint-url", default=None, help="e.g. http://127.0.0.1:4566 for aws_twin")
    parser.add_argument("--region", default=None)
    args = parser.parse_args(argv)
    session = boto3.session.Session(region_name=args.region)

    def client(name):
        return session.client(name, endpoint_url=args.endpoint_url)

    s3 = client("s3")
    data, schema_uri = args.data, args.schema
    if not data or not schema_uri:
        prefix = run_prefix(endpoint_artifact(client("sagemaker"), args.endpoint))
        data = data or f"{prefix}/processed/validation/validation.csv"
        schema_uri = schema_uri or f"{prefix}/processed/schema.json"
    schema = json.loads(read_uri(s3, schema_uri))
    if args.replay:
        import csv
        import io

        records = list(csv.DictReader(io.StringIO(read_uri(s3, args.replay).decode("utf-8-sig"))))
        rows = encode_records(records[: args.rows] if args.rows else records, schema)
        summary = send(client("sagemaker-runtime"), args.endpoint, rows, args.rate, args.batch)
        summary.update({"profile": "replay", "data": args.replay})
        print(json.dumps(summary))
        return 0
    lines = [line for line in read_uri(s3, data).decode().splitlines() if line.strip()]
    pool = np.array([[float(v) for v in line.split(",")[1:]] for line in lines])
    try:
        profile = Profile(
            kind=args.profile,
            features=[f.strip() for f in args.features.split(",") if f.strip()],
            shift=args.shift if args.features else 0.0,
            at=args.at,
            category=parse_category(args.category) if args.category else None,
        )
        rows = generate(pool, schema, profile, args.rows, seed=args.seed)
    except ValueError as exc:
        parser.error(str(exc))
    summary = send(client("sagemaker-runtime"), args.endpoint, rows, args.rate, args.batch)
    summary.update({"profile": args.profile, "data": data})
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
