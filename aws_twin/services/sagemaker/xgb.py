"""The built-in XGBoost algorithm, as the twin runs it: data formats, hyperparameters, training
(in a worker process forked by ``workers.py``; ``python -m aws_twin.services.sagemaker.xgb SPEC.json``
runs one by hand) and inference.

Nothing here knows about the wire format or S3: the training engine downloads the channels and
passes local files (with the ``s3://`` URI each came from, for error messages) in the spec.

Training data (SageMaker's XGBoost conventions):

- ``text/csv`` (also ``csv``, ``text/csv;label_size=1``): label in the first column, no header,
  numeric cells only (an empty cell is a missing value);
- ``text/libsvm`` (also ``libsvm``, ``text/x-libsvm``; the default when ContentType is absent).

Inference (what :func:`predict_payload` answers, like the SageMaker XGBoost 1.x container):

- request ``text/csv``: one row per line, no label; ``application/json``: ``{"instances":
  [{"features": [...]}, ...]}``, ``{"instances": [[...], ...]}`` or a bare list of rows;
  ``text/libsvm``: ``idx:value`` pairs per line (an optional leading label is ignored);
- response ``text/csv`` (the default): the predictions joined by commas on one line (rows of a
  multi-class ``multi:softprob`` answer are lines of comma-separated class probabilities);
  ``application/json``: ``{"predictions": [{"score": p}, ...]}``; ``application/jsonlines``: one
  ``{"score": p}`` per line. Floats are written with ``repr`` (exact float32 values).
- A model trained with early stopping predicts with its best iteration (``best_iteration``).
"""

from __future__ import annotations

import gzip
import json
import math
import os
import re
import sys
import time
from typing import Any

CSV_TYPES = {"text/csv", "csv"}
LIBSVM_TYPES = {"text/libsvm", "libsvm", "text/x-libsvm"}
JSON_TYPES = {"application/json"}
JSONLINES_TYPES = {"application/jsonlines", "application/jsonl"}

INT_PARAMS = {
    "num_round",
    "early_stopping_rounds",
    "max_depth",
    "seed",
    "num_class",
    "max_leaves",
    "max_bin",
    "num_parallel_tree",
    "nthread",
    "verbosity",
}
FLOAT_PARAMS = {
    "eta",
    "gamma",
    "min_child_weight",
    "subsample",
    "colsample_bytree",
    "colsample_bylevel",
    "colsample_bynode",
    "lambda",
    "alpha",
    "scale_pos_weight",
    "max_delta_step",
    "base_score",
    "tweedie_variance_power",
    "sketch_eps",
    "rate_drop",
    "skip_drop",
}
#: SageMaker-only hyperparameters that are not XGBoost parameters
SAGEMAKER_ONLY = {
    "num_round",
    "early_stopping_rounds",
    "csv_weights",
    "save_model_on_termination",
    "_tuning_objective_metric",
    "_kfold",
    "_num_cv_round",
    "silent",
    "use_dask_gpu_training",
}


class ClientError(Exception):
    """Bad input from the caller (SageMaker reports these as ``ClientError: ...``)."""


_XGB_PREFIX = re.compile(r"^\[\d\d:\d\d:\d\d\]\s+\S+:\d+:\s*")


def one_line(exc: BaseException) -> str:
    """An XGBoostError as one line a person can act on: the message's first line without the
    ``[hh:mm:ss] src/file.cc:NN:`` prefix, never the C++ stack trace or candidate list after it."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return _XGB_PREFIX.sub("", first).strip()


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


# ---- hyperparameters ------------------------------------------------------------------------
def parse_hyperparameters(hyperparameters: dict[str, str]) -> tuple[dict[str, Any], int, int | None]:
    """(xgboost params, num_round, early_stopping_rounds) from SageMaker's string hyperparameters."""
    typed: dict[str, Any] = {}
    for key, raw in (hyperparameters or {}).items():
        text = str(raw).strip()
        if key in INT_PARAMS:
            try:
                typed[key] = int(float(text))
            except ValueError:
                raise ClientError(f"Hyperparameter {key}: {text!r} is not an integer") from None
        elif key in FLOAT_PARAMS:
            try:
                typed[key] = float(text)
            except ValueError:
                raise ClientError(f"Hyperparameter {key}: {text!r} is not a number") from None
        elif key == "eval_metric":
            typed[key] = [m.strip() for m in text.split(",") if m.strip()]
        else:
            typed[key] = text
    if "num_round" not in typed:
        raise ClientError("Missing required hyperparameter: num_round")
    if typed["num_round"] < 1:
        raise ClientError(f"Hyperparameter num_round must be at least 1, got {typed['num_round']}")
    # a tuning job's objective (``validation:auc``): the container evaluates that metric too
    tuning = str(typed.get("_tuning_objective_metric") or "")
    if ":" in tuning:
        metric = tuning.split(":", 1)[1]
        metrics = typed.get("eval_metric") or []
        if metric not in metrics:
            typed["eval_metric"] = [*metrics, metric]
    num_round = typed["num_round"]
    early = typed.get("early_stopping_rounds")
    params = {k: v for k, v in typed.items() if k not in SAGEMAKER_ONLY}
    params.setdefault("objective", "reg:squarederror")
    return params, num_round, early


# ---- training data --------------------------------------------------------------------------
def _open_text(path: str):
    with open(path, "rb") as probe:
        magic = probe.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")  # noqa: SIM115


def read_csv_files(files: list[tuple[str, str]], channel: str):
    """Labels and features from label-first CSV files; ClientError naming the cell on bad data."""
    import numpy as np

    labels: list[float] = []
    rows: list[list[float]] = []
    width = None
    nan = math.nan
    for local, uri in files:
        try:
            handle = _open_text(local)
        except OSError as exc:
            raise ClientError(f"cannot read {uri}: {exc}") from None
        with handle:
            for lineno, line in enumerate(handle, 1):
                text = line.strip()
                if not text:
                    continue
                cells = text.split(",")
                if width is None:
                    width = len(cells)
                    if width < 2:
                        raise ClientError(
                            f"row {lineno} of {uri} (channel {channel!r}) has {width} column: text/csv "
                            "training data needs the label in the first column and at least one feature"
                        )
                elif len(cells) != width:
                    raise ClientError(
                        f"row {lineno} of {uri} (channel {channel!r}) has {len(cells)} columns, "
                        f"the rows before it have {width}"
                    )
                values = []
                for col, cell in enumerate(cells, 1):
                    cell = cell.strip()
                    if not cell:
                        if col == 1:
                            raise ClientError(
                                f"missing label in row {lineno} column 1 of {uri} (channel {channel!r})"
                            )
                        values.append(nan)
                        continue
                    try:
                        values.append(float(cell))
                    except ValueError:
                        hint = " (is the first row a header? the built-in XGBoost reads CSV without header)"
                        raise ClientError(
                            f"Non-numeric value in channel {channel!r}: could not convert {cell!r} in row "
                            f"{lineno} column {col} of {uri}; text/csv training data must be numeric with "
                            f"the label in the first column{hint if lineno == 1 else ''}"
                        ) from None
                labels.append(values[0])
                rows.append(values[1:])
    if not rows:
        raise ClientError(f"no data rows in channel {channel!r} ({', '.join(u for _, u in files)})")
    return np.asarray(labels, dtype=np.float32), np.asarray(rows, dtype=np.float32)


def load_channel(files: list[tuple[str, str]], content_type: str | None, channel: str, work: str):
    """An xgboost DMatrix for one channel."""
    import xgboost as xgb

    kind = media_type(content_type) or "text/libsvm"
    if kind in CSV_TYPES:
        labels, features = read_csv_files(files, channel)
        return xgb.DMatrix(features, label=labels)
    if kind in LIBSVM_TYPES:
        merged = os.path.join(work, f"{channel}.libsvm")
        with open(merged, "w", encoding="utf-8") as out:
            for local, uri in files:
                try:
                    with _open_text(local) as handle:
                        for line in handle:
                            if line.strip():
                                out.write(line.rstrip("\r\n") + "\n")
                except (OSError, UnicodeDecodeError) as exc:
                    raise ClientError(f"cannot read {uri} as text/libsvm: {exc}") from None
        try:
            return xgb.DMatrix(f"{merged}?format=libsvm")
        except xgb.core.XGBoostError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "parse error"
            names = ", ".join(u for _, u in files)
            raise ClientError(
                f"could not parse text/libsvm data in channel {channel!r} ({names}): {first}"
            ) from None
    raise ClientError(
        f"Content type {content_type!r} of channel {channel!r} is not supported by the twin's XGBoost "
        "(use text/csv or text/libsvm)"
    )


# ---- training (worker process) --------------------------------------------------------------
def _say(text: str) -> None:
    print(text, flush=True)


def train(spec: dict) -> dict:
    """Train as the SageMaker XGBoost container does; return {metrics, rounds, best_iteration}."""
    import xgboost as xgb

    params, num_round, early = parse_hyperparameters(spec.get("hyperparameters") or {})
    work = spec["work_dir"]
    channels = spec["channels"]
    if "train" not in channels:
        raise ClientError(
            f"The built-in XGBoost needs a channel named 'train'; got {sorted(channels) or 'no channels'}"
        )
    _say(f"aws_twin: built-in XGBoost on xgboost {xgb.__version__} (image {spec.get('image')})")
    _say(f"aws_twin: hyperparameters {json.dumps(spec.get('hyperparameters') or {}, sort_keys=True)}")
    matrices = {}
    for name in ("train", "validation"):
        if name in channels:
            ch = channels[name]
            matrices[name] = load_channel(ch["files"], ch.get("content_type"), name, work)
            dm = matrices[name]
            _say(f"aws_twin: {name} matrix has {dm.num_row()} rows and {dm.num_col()} columns")
    evals = [(matrices["train"], "train")]
    if "validation" in matrices:
        evals.append((matrices["validation"], "validation"))
    if early and "validation" not in matrices:
        _say("aws_twin: early_stopping_rounds needs a validation channel; training all rounds")
        early = None
    _say("aws_twin: Single node training.")

    class LogEval(xgb.callback.TrainingCallback):
        def after_iteration(self, model, epoch, evals_log):
            parts = [f"[{epoch}]"]
            for data_name, metrics in evals_log.items():
                for metric, values in metrics.items():
                    parts.append(f"{data_name}-{metric}:{values[-1]:.5f}")
            _say("#011".join(parts))
            return False

    history: dict = {}
    started = time.perf_counter()
    try:
        booster = xgb.train(
            params,
            matrices["train"],
            num_boost_round=num_round,
            evals=evals,
            evals_result=history,
            early_stopping_rounds=early,
            verbose_eval=False,
            callbacks=[LogEval()],
        )
    except xgb.core.XGBoostError as exc:
        raise ClientError(f"XGBoost rejected the training job: {one_line(exc)}") from None
    elapsed = time.perf_counter() - started
    booster.save_model(os.path.join(spec["model_dir"], "xgboost-model"))
    metrics = {}
    for data_name, by_metric in history.items():
        for metric, values in by_metric.items():
            if values:
                metrics[f"{data_name}:{metric}"] = float(values[-1])
    rounds = booster.num_boosted_rounds()
    best = booster.attr("best_iteration")
    _say(f"aws_twin: trained {rounds} rounds in {elapsed:.3f}s")
    return {
        "metrics": metrics,
        "rounds": rounds,
        "best_iteration": int(best) if best is not None else None,
        "train_seconds": elapsed,
    }


def worker_main(spec_path: str, preloaded: bool = False) -> int:
    """Train the job of ``spec_path``; write its result JSON (``preloaded``: whether the worker found
    xgboost already imported, recorded for the twin's state); return the exit code."""
    with open(spec_path, encoding="utf-8") as fh:
        spec = json.load(fh)
    result_path = spec["result_path"]
    try:
        result = {"status": "ok", **train(spec)}
        code = 0
    except ClientError as exc:
        result = {"status": "failed", "reason": f"ClientError: {exc}"}
        code = 2
    except Exception as exc:  # an algorithm crash: report it like SageMaker's AlgorithmError
        result = {"status": "failed", "reason": f"AlgorithmError: {type(exc).__name__}: {one_line(exc)}"}
        code = 3
    result["preloaded"] = preloaded
    if code:
        _say(result["reason"])
    with open(result_path + ".tmp", "w", encoding="utf-8") as fh:
        json.dump(result, fh)
    os.replace(result_path + ".tmp", result_path)
    return code


# ---- inference ------------------------------------------------------------------------------
class InferenceError(Exception):
    """The container's 4xx answer: (status, message)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def parse_payload(body: bytes, content_type: str | None, num_features: int):
    import numpy as np

    kind = media_type(content_type) or "text/csv"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InferenceError(415, f"request body is not UTF-8 text ({kind})") from None
    if kind in CSV_TYPES:
        rows = []
        for lineno, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line:
                continue
            try:
                rows.append([float(c) if c.strip() else math.nan for c in line.split(",")])
            except ValueError as exc:
                raise InferenceError(
                    415,
                    "Loading csv data failed with Exception, please ensure data is in csv format: "
                    f"line {lineno}: {exc}",
                ) from None
        if not rows:
            raise InferenceError(400, "Empty request body: no CSV rows to predict")
        widths = {len(r) for r in rows}
        if len(widths) != 1:
            raise InferenceError(415, f"CSV rows have different numbers of columns: {sorted(widths)}")
        array = np.asarray(rows, dtype=np.float32)
    elif kind in JSON_TYPES or kind in JSONLINES_TYPES:
        try:
            if kind in JSON_TYPES:
                doc = json.loads(text)
            else:
                doc = {"instances": [json.loads(line) for line in text.splitlines() if line.strip()]}
        except ValueError as exc:
            raise InferenceError(415, f"request body is not valid JSON: {exc}") from None
        instances = doc.get("instances", doc.get("features")) if isinstance(doc, dict) else doc
        if isinstance(instances, list) and instances and not isinstance(instances[0], list | dict):
            instances = [instances]
        rows = []
        for item in instances if isinstance(instances, list) else []:
            if isinstance(item, dict):
                item = item.get("features", item.get("data"))
            if not isinstance(item, list):
                raise InferenceError(
                    415,
                    'JSON input must be {"instances": [{"features": [...]}, ...]}, {"instances": [[...]]} '
                    "or a list of rows",
                )
            rows.append([math.nan if v is None else v for v in item])
        if not rows:
            raise InferenceError(400, "Empty request: no instances to predict")
        try:
            array = np.asarray(rows, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise InferenceError(
                415, f"JSON instances must be equal-length lists of numbers: {exc}"
            ) from None
    elif kind in LIBSVM_TYPES:
        lines = [line.split() for line in text.splitlines() if line.strip()]
        array = np.full((len(lines), num_features), np.nan, dtype=np.float32)
        for i, tokens in enumerate(lines):
            for token in tokens:
                if ":" not in token:
                    continue  # a leading label
                idx, _, val = token.partition(":")
                try:
                    j = int(idx)
                    array[i, j] = float(val)
                except (ValueError, IndexError) as exc:
                    raise InferenceError(415, f"bad libsvm token {token!r} on line {i + 1}: {exc}") from None
    else:
        raise InferenceError(
            415,
            f"Content type {content_type} is not supported by this model (text/csv, application/json, "
            "application/jsonlines, text/libsvm)",
        )
    if num_features and array.shape[1] != num_features:
        raise InferenceError(
            400,
            f"Feature size mismatch: the model expects {num_features} features, the request has "
            f"{array.shape[1]} columns",
        )
    return array


def predict(booster, array):
    import numpy as np

    best = booster.attr("best_iteration")
    kwargs = {"iteration_range": (0, int(best) + 1)} if best is not None else {}
    return np.asarray(booster.inplace_predict(array, missing=np.nan, **kwargs))


def encode_predictions(preds, accept: str | None) -> tuple[bytes, str]:
    kind = media_type(accept)
    if kind in ("", "*/*"):
        kind = "text/csv"
    values = preds.tolist()
    if kind in CSV_TYPES:
        if preds.ndim == 1:
            return ",".join(repr(float(v)) for v in values).encode(), "text/csv; charset=utf-8"
        lines = [",".join(repr(float(v)) for v in row) for row in values]
        return "\n".join(lines).encode(), "text/csv; charset=utf-8"
    if kind in JSON_TYPES:
        return json.dumps({"predictions": [{"score": v} for v in values]}).encode(), "application/json"
    if kind in JSONLINES_TYPES:
        body = "\n".join(json.dumps({"score": v}) for v in values)
        return body.encode(), "application/jsonlines"
    raise InferenceError(
        406, f"Accept type {accept} is not supported (text/csv, application/json, application/jsonlines)"
    )


def predict_payload(booster, body: bytes, content_type: str | None, accept: str | None) -> tuple[bytes, str]:
    array = parse_payload(body, content_type, booster.num_features())
    try:
        preds = predict(booster, array)
    except Exception as exc:  # xgboost errors on odd input
        raise InferenceError(400, f"prediction failed: {exc}") from None
    return encode_predictions(preds, accept)


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1]))
