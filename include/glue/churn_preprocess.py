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
    --max_quarantined_share 0.05      optional: fail when a larger share of the rows is quarantined
    --max_category_levels 100         optional: cap categorical columns at this many levels

Outputs under ``output_uri``:

    train/train.csv, validation/validation.csv, test/test.csv
        label first (0/1), then the features; no header, no index (XGBoost's CSV format)
    quarantine/rows.jsonl
        one JSON object per rejected row: row_number (1-based data row), line_number (in the file),
        reason (names the column and the value), row (the raw fields). Written (possibly empty) on
        every run. Rejected: a wrong number of fields, a missing label, a value in a numeric column
        that is not a number (blanks are not rejected: see the input rules).
    schema.json
        {"label_column", "positive_value", "feature_columns", "numeric_columns",
         "categorical_levels", "input_rules", "label_values",
         "counts": {"received", "quarantined", "train", "validation", "test"},
         "split": {...}, "input_uri"} -- written last. received = quarantined + train + validation + test.

Input rules (each decision is printed to the job's log, and listed in schema.json "input_rules"):

- **Blank cells are missing values**, not bad rows: an empty field in the output CSV, which XGBoost
  reads as missing (NaN); a blank categorical value leaves all of its column's indicators empty.
  Only a blank label rejects a row. ``input_rules.missing_values``: {column: blank cells}.
- **Numeric columns**: most of the non-blank values are numbers. Numbers written with a currency
  sign (``$45.07``, ``-$3``, ``EUR`` signs ``€ £ ¥``), thousands separators (``1,234.5``) or a percent
  sign (``12%`` -> 12.0, the number as written) count as numbers and are parsed;
  ``input_rules.parsed_columns``: {column: ["currency", "percent", "thousands"] found}.
- **ID-like columns are dropped**: a non-numeric column whose values are all different (at least
  20 non-blank values, one per row), or an integer column whose values are all different and whose
  name ends in "id" (``customer_id``, ``customerID``). They identify rows, they do not describe them
  (one-hot encoding one would add a column per row). ``input_rules.dropped_columns``.
- **High-cardinality categories are capped**: a categorical column with more than
  ``--max_category_levels`` levels (default 100) keeps its most frequent levels (ties by name) up to
  that number and puts the rest in one ``__other__`` level. ``input_rules.capped_columns``.
- **The label must have two classes**: when ``positive_value`` matches no labelled row, or every
  labelled row, the job fails at once naming the label values found.
- **Row drops have a ceiling**: when more than ``--max_quarantined_share`` (default 0.05) of the
  rows are quarantined, the job fails (after writing the quarantine file) saying how many and why.

Fails (non-zero exit, ``PreprocessError: <reason>``, naming the input object) when the input does
not exist, is empty, has no data rows, lacks the label column, when the label has one class, when
too many rows are quarantined, or when no valid row remains. A PreprocessError is a fact about the
data or the arguments: running the job again does not change it. Prints a one-line JSON
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
#: optional arguments and their defaults (the DAG passes them from its Params)
OPTIONAL = {"max_quarantined_share": "0.05", "max_category_levels": "100"}
#: fewest non-blank values for "all different" to mean an ID column (a tiny sample is unique by chance)
ID_MIN_VALUES = 20
OTHER_LEVEL = "__other__"


class PreprocessError(Exception):
    """Bad input or arguments: the message names the object and the reason."""


def parse_s3_uri(uri: str, what: str, need_key: bool = True):
    match = re.fullmatch(r"s3://([^/]+)/?(.*)", (uri or "").strip())
    if not match or (need_key and not match.group(2)):
        raise PreprocessError(f"{what} must be an s3://bucket/key URI, got {uri!r}")
    return match.group(1), match.group(2)


def optional_arguments(argv):
    """``--name value`` of the optional arguments (getResolvedOptions knows only required ones)."""
    values = dict(OPTIONAL)
    for i, word in enumerate(argv[:-1]):
        if word.startswith("--") and word[2:] in OPTIONAL:
            values[word[2:]] = argv[i + 1]
    return values


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
    optional = optional_arguments(list(argv))
    try:
        validation_fraction = float(args["validation_fraction"])
        test_fraction = float(args["test_fraction"])
        seed = int(args["seed"])
        max_share = float(optional["max_quarantined_share"])
        max_levels = int(optional["max_category_levels"])
    except ValueError as exc:
        raise PreprocessError(f"bad numeric argument: {exc}") from exc
    if not 0 <= max_share <= 1:
        raise PreprocessError(f"max_quarantined_share must be in [0, 1], got {max_share}")
    if max_levels < 2:
        raise PreprocessError(f"max_category_levels must be at least 2, got {max_levels}")
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
        "max_quarantined_share": max_share,
        "max_category_levels": max_levels,
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


_UNITS = re.compile(
    r"^(?P<open>\()?(?P<sign>[+-])?(?P<cur>[$€£¥])?(?P<sign2>[+-])?"
    r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d*)?|\d+(?:\.\d*)?|\.\d+)(?P<pct>%)?(?P<close>\))?$"
)


def _number_with_units(value: str):
    """(number, units) for "$45.07", "-$3", "1,234.5", "12%", "($5.00)"; (None, ()) otherwise."""
    plain = _number(value)
    if plain is not None:
        return plain, ()
    match = _UNITS.match(value.replace(" ", ""))
    if not match or bool(match["open"]) != bool(match["close"]) or (match["sign"] and match["sign2"]):
        return None, ()
    number = _number(match["num"].replace(",", ""))
    if number is None:
        return None, ()
    units = []
    if match["cur"]:
        units.append("currency")
    if match["pct"]:
        units.append("percent")
    if "," in match["num"]:
        units.append("thousands")
    if "-" in (match["sign"] or "", match["sign2"] or "") or match["open"]:
        number = -number
    return number, tuple(units)


def classify_columns(header, rows, features):
    """({numeric column: sorted units found}, {column: missing count}): numeric when most non-empty
    values are finite numbers, currency / percent / thousands-separated ones included."""
    width = len(header)
    numeric = {}
    for column in features:
        i = header.index(column)
        values = [f[i].strip() for _, _, f in rows if len(f) == width and f[i].strip()]
        units = set()
        parsed = 0
        for value in values:
            number, found = _number_with_units(value)
            if number is not None:
                parsed += 1
                units.update(found)
        if values and parsed * 2 > len(values):
            numeric[column] = sorted(units)
    return numeric


def check_rows(header, rows, label, numeric):
    """Split rows into good ones (dict of stripped values, numbers parsed) and quarantine records.
    A blank feature is a missing value (None), not a reason to reject the row."""
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
            if not value:
                values[name] = None  # missing: NaN for XGBoost
            elif name in numeric:
                number, _ = _number_with_units(value)
                if number is None:
                    reasons.append(f"numeric column '{name}' has non-numeric value {value!r}")
                values[name] = number
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


_ID_NAME = re.compile(r"(?:^|[^a-zA-Z])[iI][dD]$|[a-z](?:Id|ID)$")


def id_like_columns(good, header, label, numeric):
    """{column: reason} of the columns that identify rows instead of describing them."""
    found = {}
    for name in header:
        if name == label:
            continue
        values = [row[name] for row in good if row[name] is not None]
        if len(values) < ID_MIN_VALUES or len(set(values)) != len(values) or len(values) != len(good):
            continue
        if name not in numeric:
            found[name] = (
                f"every one of its {len(values)} values is different (an identifier, not a category)"
            )
        elif all(float(v).is_integer() for v in values) and _ID_NAME.search(name):
            found[name] = f"integer values, all {len(values)} different, and an ID name"
    return found


def category_levels(good, name, max_levels):
    """(levels kept, sorted; the number of levels in the data): the ``max_levels`` most frequent."""
    counts = {}
    for row in good:
        value = row[name]
        if value is not None:
            counts[value] = counts.get(value, 0) + 1
    if len(counts) <= max_levels:
        return sorted(counts), len(counts)
    ranked = sorted(counts, key=lambda level: (-counts[level], level))
    return sorted(ranked[:max_levels]), len(counts)


def label_check(good, label, positive_value, uri):
    """{label value: rows}; fails when positive_value makes one class of every labelled row."""
    values = {}
    for row in good:
        values[row[label]] = values.get(row[label], 0) + 1
    positive = positive_value.strip().lower()
    positives = sum(n for value, n in values.items() if value.lower() == positive)
    found = ", ".join(f"{value!r} ({n} rows)" for value, n in sorted(values.items(), key=lambda kv: -kv[1]))
    if positives == 0:
        raise PreprocessError(
            f"input {uri}: positive_value {positive_value!r} matches no row of label column '{label}' "
            f"(compared stripped, case-insensitive), so every row would be class 0 (one class); "
            f"values found: {found}"
        )
    if positives == len(good):
        raise PreprocessError(
            f"input {uri}: label column '{label}' has one class, every labelled row is positive_value "
            f"{positive_value!r}; values found: {found}. A classifier needs both classes"
        )
    return values


def input_rules(good, header, label, numeric, max_levels):
    """The input rules' decisions: drops ID-like columns from ``numeric``, picks category levels.

    Returns {"missing_values", "parsed_columns", "dropped_columns", "capped_columns", "levels",
    "log"} ("levels" and "log" are taken out by the caller)."""
    log_lines = []
    missing = {}
    for name in header:
        if name == label:
            continue
        blank = sum(1 for row in good if row[name] is None)
        if blank:
            missing[name] = blank
            log_lines.append(
                f"column '{name}': {blank} blank cell(s) kept as missing values (empty in the output CSV)"
            )
    parsed = {name: units for name, units in numeric.items() if units}
    for name, units in parsed.items():
        log_lines.append(f"column '{name}': values with {' / '.join(units)} signs parsed as numbers")
    dropped = id_like_columns(good, header, label, numeric)
    levels, capped = {}, {}
    for name in header:
        if name == label or name in numeric or name in dropped:
            continue
        kept, total = category_levels(good, name, max_levels)
        if not kept:
            dropped[name] = "every value is blank"
            continue
        levels[name] = kept
        if total > len(kept):
            capped[name] = {"levels": total, "kept": len(kept), "other": OTHER_LEVEL}
            log_lines.append(
                f"column '{name}': {total} levels, more than max_category_levels {max_levels}: the "
                f"{len(kept)} most frequent kept, the other {total - len(kept)} grouped as {OTHER_LEVEL}"
            )
    for name, reason in dropped.items():
        numeric.pop(name, None)
        log_lines.append(f"column '{name}' dropped: {reason}")
    return {
        "missing_values": missing,
        "parsed_columns": parsed,
        "dropped_columns": dropped,
        "capped_columns": capped,
        "max_category_levels": max_levels,
        "levels": levels,
        "log": log_lines,
    }


def encode(good, header, label, positive_value, numeric, levels):
    """(DataFrame label first then features, feature column names). Missing values stay NaN."""
    frame = pd.DataFrame(good, columns=header)
    positive = positive_value.strip().lower()
    out = {label: (frame[label].str.lower() == positive).astype("int64")}
    feature_columns = []
    for name in header:
        if name == label or (name not in numeric and name not in levels):
            continue
        if name in numeric:
            values = pd.to_numeric(frame[name], errors="coerce").astype("float64")
            whole = values.dropna()
            if (whole == whole.round()).all() and (whole.abs() < 2**53).all():
                values = values.astype("Int64")  # "103", not "103.0"; missing stays empty
            out[name] = values
            feature_columns.append(name)
            continue
        column_levels = levels[name]
        missing = frame[name].isna()
        kept = set(column_levels)
        indicators = list(column_levels)
        if any(v not in kept for v in frame[name][~missing]):
            indicators.append(OTHER_LEVEL)
        for level in indicators:
            if level == OTHER_LEVEL:
                hit = ~frame[name].isin(kept)
            else:
                hit = frame[name] == level
            column = hit.astype("Int64")
            column[missing] = pd.NA
            encoded = f"{name}_{level}"
            out[encoded] = column
            feature_columns.append(encoded)
        levels[name] = indicators
    encoded_frame = pd.DataFrame(out, columns=[label, *feature_columns])
    return encoded_frame, feature_columns


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
    """Headerless CSV; a missing value as an empty field (XGBoost's missing value)."""
    buffer = io.StringIO()
    frame.to_csv(buffer, header=False, index=False, na_rep="")
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
    label_values = label_check(good, label, args["positive_value"], uri) if good else {}

    quarantine_uri = f"s3://{out_bucket}/{out_key('quarantine/rows.jsonl')}"
    quarantine = "".join(json.dumps(record, sort_keys=True) + "\n" for record in bad)
    s3.put_object(
        Bucket=out_bucket,
        Key=out_key("quarantine/rows.jsonl"),
        Body=quarantine.encode("utf-8"),
        ContentType="application/x-ndjson",
    )
    if not good:
        raise PreprocessError(
            f"input {uri}: no valid rows remain, all {len(bad)} rows were quarantined to {quarantine_uri}"
        )
    share = len(bad) / len(rows)
    if share > args["max_quarantined_share"]:
        reasons = "; ".join(f"row {r['row_number']}: {r['reason']}" for r in bad[:3])
        raise PreprocessError(
            f"input {uri}: {len(bad)} of {len(rows)} rows ({share:.1%}) were quarantined, more than "
            f"max_quarantined_share {args['max_quarantined_share']:.1%}; see {quarantine_uri} "
            f"(first: {reasons})"
        )

    rules = input_rules(good, header, label, numeric, args["max_category_levels"])
    for line in rules.pop("log"):
        print(f"input rule: {line}", flush=True)
    levels = rules.pop("levels")
    frame, feature_columns = encode(good, header, label, args["positive_value"], numeric, levels)
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
        "numeric_columns": [name for name in header if name in numeric],
        "categorical_levels": levels,
        "input_rules": rules,
        "label_values": label_values,
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
