"""Glue Python shell job: churn CSV -> train / validation / test CSVs for SageMaker's XGBoost.

Runs on AWS Glue Python shell (Python 3.9, analytics library set: pandas, numpy, boto3) and on the
twin unchanged. Arguments (Glue job arguments, ``--name value``):

    --input_uri s3://bucket/key.csv   CSV with a header row
    --output_uri s3://bucket/prefix   where the outputs go (see below)
    --label_column churn              the label column
    --positive_value yes              label value that means 1 (case-insensitive, stripped); others 0
    --validation_fraction 0.2
    --test_fraction 0.1
    --seed 42                         the split is a deterministic function of the data and the seed

Outputs under ``output_uri``:

    train/train.csv, validation/validation.csv, test/test.csv
        label first (0/1), then the features; no header, no index (XGBoost's CSV format)
    quarantine/rows.jsonl
        one JSON object per rejected row: row_number (1-based data row), line_number (in the file),
        reason (names the column and the value), row (the raw fields). Written (possibly empty) on
        every run. Rejected: a wrong number of fields, a missing label, a missing or non-numeric
        value in a numeric column, a missing value in a categorical column.
    schema.json
        {"label_column", "positive_value", "feature_columns", "numeric_columns",
         "categorical_levels", "counts": {"received", "quarantined", "train", "validation", "test"},
         "split": {...}, "input_uri"} -- written last. received = quarantined + train + validation + test.

A column is numeric when most of its non-empty values parse as finite numbers; the others are
categorical and one-hot encoded as ``<column>_<level>`` (levels sorted; yes/no columns too), in the
input's column order. The split is stratified by label and shuffled with ``seed``.

Fails (non-zero exit, the error names the input object) when the input does not exist, is empty,
has no data rows, lacks the label column, or when no valid row remains. Prints a one-line JSON
summary to stdout.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import sys
import time

import boto3
import numpy as np
import pandas as pd
from botocore.exceptions import ClientError

ARGUMENTS = [
    "input_uri",
    "output_uri",
    "label_column",
    "positive_value",
    "validation_fraction",
    "test_fraction",
    "seed",
]


class PreprocessError(Exception):
    """Bad input or arguments: the message names the object and the reason."""


def parse_s3_uri(uri: str, what: str, need_key: bool = True):
    match = re.fullmatch(r"s3://([^/]+)/?(.*)", (uri or "").strip())
    if not match or (need_key and not match.group(2)):
        raise PreprocessError(f"{what} must be an s3://bucket/key URI, got {uri!r}")
    return match.group(1), match.group(2)


def resolve_arguments(argv):
    try:
        from awsglue.utils import getResolvedOptions
    except ImportError:  # run by hand, outside Glue and the twin
        getResolvedOptions = None  # noqa: N806
    if getResolvedOptions is not None:
        args = getResolvedOptions(argv, ARGUMENTS)
    else:
        import argparse

        parser = argparse.ArgumentParser()
        for name in ARGUMENTS:
            parser.add_argument("--" + name, required=True)
        args = vars(parser.parse_known_args(argv[1:])[0])
    try:
        validation_fraction = float(args["validation_fraction"])
        test_fraction = float(args["test_fraction"])
        seed = int(args["seed"])
    except ValueError as exc:
        raise PreprocessError(f"bad numeric argument: {exc}") from exc
    if not (
        0 <= validation_fraction < 1 and 0 <= test_fraction < 1 and validation_fraction + test_fraction < 1
    ):
        raise PreprocessError(
            "validation_fraction and test_fraction must be in [0, 1) and sum to less than 1, got "
            f"{validation_fraction} and {test_fraction}"
        )
    if not args["label_column"].strip():
        raise PreprocessError("label_column must not be empty")
    return {
        "input_uri": args["input_uri"].strip(),
        "output_uri": args["output_uri"].strip().rstrip("/"),
        "label_column": args["label_column"].strip(),
        "positive_value": args["positive_value"],
        "validation_fraction": validation_fraction,
        "test_fraction": test_fraction,
        "seed": seed,
    }


def read_text(s3, uri: str) -> str:
    bucket, key = parse_s3_uri(uri, "input_uri")
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchKey", "404", "NoSuchBucket", "NotFound"):
            raise PreprocessError(f"input {uri} does not exist ({code})") from exc
        raise PreprocessError(f"input {uri} could not be read: {exc}") from exc
    if not body.strip():
        raise PreprocessError(f"input {uri} is empty ({len(body)} bytes)")
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PreprocessError(f"input {uri} is not UTF-8 text: {exc}") from exc


def parse_csv(text: str, uri: str):
    """(header, rows): rows are (row_number, line_number, fields); blank lines are skipped."""
    reader = csv.reader(io.StringIO(text))
    header = None
    rows = []
    row_number = 0
    line_start = 1
    try:
        for fields in reader:
            line_number = line_start
            line_start = reader.line_num + 1
            if not fields or all(not f.strip() for f in fields):
                continue
            if header is None:
                header = [f.strip() for f in fields]
                continue
            row_number += 1
            rows.append((row_number, line_number, fields))
    except csv.Error as exc:
        raise PreprocessError(f"input {uri} is not valid CSV near line {reader.line_num}: {exc}") from exc
    if header is None:
        raise PreprocessError(f"input {uri} is empty (no header row)")
    if any(not name for name in header):
        raise PreprocessError(f"input {uri} has an empty column name in its header: {header}")
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise PreprocessError(f"input {uri} has duplicate columns: {duplicates}")
    if not rows:
        raise PreprocessError(f"input {uri} has a header but no data rows")
    return header, rows


def _number(value: str):
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def classify_columns(header, rows, features):
    """Numeric when most non-empty values are finite numbers; else categorical."""
    width = len(header)
    numeric = []
    for column in features:
        i = header.index(column)
        values = [f[i].strip() for _, _, f in rows if len(f) == width and f[i].strip()]
        parsed = sum(1 for v in values if _number(v) is not None)
        if values and parsed * 2 > len(values):
            numeric.append(column)
    return numeric


def check_rows(header, rows, label, numeric):
    """Split rows into good ones (dict of stripped values) and quarantine records."""
    width = len(header)
    good, bad = [], []
    for row_number, line_number, fields in rows:
        if len(fields) != width:
            bad.append(
                {
                    "row_number": row_number,
                    "line_number": line_number,
                    "reason": f"expected {width} fields, got {len(fields)}",
                    "row": fields,
                }
            )
            continue
        values = {name: fields[i].strip() for i, name in enumerate(header)}
        reasons = []
        if not values[label]:
            reasons.append(f"label column '{label}' is missing (value {fields[header.index(label)]!r})")
        for name in header:
            if name == label:
                continue
            value = values[name]
            if name in numeric:
                if not value:
                    reasons.append(f"numeric column '{name}' is missing (value {value!r})")
                elif _number(value) is None:
                    reasons.append(f"numeric column '{name}' has non-numeric value {value!r}")
            elif not value:
                reasons.append(f"categorical column '{name}' is missing (value {value!r})")
        if reasons:
            bad.append(
                {
                    "row_number": row_number,
                    "line_number": line_number,
                    "reason": "; ".join(reasons),
                    "row": {name: fields[i] for i, name in enumerate(header)},
                }
            )
        else:
            good.append(values)
    return good, bad


def encode(good, header, label, positive_value, numeric):
    """(DataFrame label first then features, feature column names, categorical levels)."""
    frame = pd.DataFrame(good, columns=header)
    positive = positive_value.strip().lower()
    out = {label: (frame[label].str.lower() == positive).astype("int64")}
    feature_columns = []
    levels = {}
    for name in header:
        if name == label:
            continue
        if name in numeric:
            out[name] = pd.to_numeric(frame[name])
            feature_columns.append(name)
        else:
            column_levels = sorted(frame[name].unique().tolist())
            levels[name] = column_levels
            for level in column_levels:
                encoded = f"{name}_{level}"
                out[encoded] = (frame[name] == level).astype("int64")
                feature_columns.append(encoded)
    encoded_frame = pd.DataFrame(out, columns=[label, *feature_columns])
    return encoded_frame, feature_columns, levels


def split_indices(labels, validation_fraction, test_fraction, seed):
    """Stratified by label, shuffled with ``seed``: (train, validation, test) index arrays."""
    rng = np.random.default_rng(seed)
    parts = {"train": [], "validation": [], "test": []}
    for value in sorted(np.unique(labels).tolist()):
        idx = rng.permutation(np.flatnonzero(labels == value))
        n = len(idx)
        n_test = int(round(n * test_fraction))
        n_val = int(round(n * validation_fraction))
        if n_test + n_val >= n and n > 1:  # keep at least one training row per class
            overflow = n_test + n_val - (n - 1)
            n_val = max(0, n_val - overflow)
            n_test = min(n_test, n - 1 - n_val)
        parts["test"].append(idx[:n_test])
        parts["validation"].append(idx[n_test : n_test + n_val])
        parts["train"].append(idx[n_test + n_val :])
    return {name: rng.permutation(np.concatenate(chunks)) for name, chunks in parts.items()}


def to_csv_bytes(frame) -> bytes:
    buffer = io.StringIO()
    frame.to_csv(buffer, header=False, index=False)
    return buffer.getvalue().encode("utf-8")


def run(argv, s3=None):
    started = time.time()
    args = resolve_arguments(argv)
    s3 = s3 or boto3.client("s3")
    uri, label = args["input_uri"], args["label_column"]
    out_bucket, out_prefix = parse_s3_uri(args["output_uri"], "output_uri", need_key=False)
    out_prefix = out_prefix.strip("/")

    def out_key(name):
        return f"{out_prefix}/{name}" if out_prefix else name

    text = read_text(s3, uri)
    header, rows = parse_csv(text, uri)
    if label not in header:
        raise PreprocessError(f"input {uri} has no label column '{label}'; its columns are {header}")
    features = [name for name in header if name != label]
    if not features:
        raise PreprocessError(f"input {uri} has no feature columns besides the label '{label}'")
    numeric = classify_columns(header, rows, features)
    good, bad = check_rows(header, rows, label, numeric)

    quarantine = "".join(json.dumps(record, sort_keys=True) + "\n" for record in bad)
    s3.put_object(
        Bucket=out_bucket,
        Key=out_key("quarantine/rows.jsonl"),
        Body=quarantine.encode("utf-8"),
        ContentType="application/x-ndjson",
    )
    if not good:
        raise PreprocessError(
            f"input {uri}: no valid rows remain, all {len(bad)} rows were quarantined to "
            f"s3://{out_bucket}/{out_key('quarantine/rows.jsonl')}"
        )

    frame, feature_columns, levels = encode(good, header, label, args["positive_value"], numeric)
    indices = split_indices(
        frame[label].to_numpy(), args["validation_fraction"], args["test_fraction"], args["seed"]
    )
    counts = {"received": len(rows), "quarantined": len(bad)}
    outputs = {}
    for name in ("train", "validation", "test"):
        part = frame.iloc[indices[name]]
        key = out_key(f"{name}/{name}.csv")
        s3.put_object(Bucket=out_bucket, Key=key, Body=to_csv_bytes(part), ContentType="text/csv")
        counts[name] = len(part)
        outputs[name] = f"s3://{out_bucket}/{key}"
    assert (
        counts["received"] == counts["quarantined"] + counts["train"] + counts["validation"] + counts["test"]
    )

    schema = {
        "label_column": label,
        "positive_value": args["positive_value"],
        "feature_columns": feature_columns,
        "numeric_columns": numeric,
        "categorical_levels": levels,
        "counts": counts,
        "split": {
            "validation_fraction": args["validation_fraction"],
            "test_fraction": args["test_fraction"],
            "seed": args["seed"],
            "stratified_by": label,
            "positives": {name: int(frame[label].iloc[indices[name]].sum()) for name in indices},
        },
        "input_uri": uri,
    }
    schema_key = out_key("schema.json")
    s3.put_object(
        Bucket=out_bucket,
        Key=schema_key,
        Body=json.dumps(schema, indent=2).encode("utf-8"),
        ContentType="application/json",
    )
    summary = {
        "status": "ok",
        "input_uri": uri,
        "output_uri": args["output_uri"],
        "counts": counts,
        "features": len(feature_columns),
        "schema_uri": f"s3://{out_bucket}/{schema_key}",
        "outputs": outputs,
        "seconds": round(time.time() - started, 3),
    }
    print(json.dumps(summary, sort_keys=True), flush=True)
    return summary


def main(argv=None):
    run(list(sys.argv if argv is None else argv))


if __name__ == "__main__":
    main()
