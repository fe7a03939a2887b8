"""Twin benchmark: start-up time, S3 round trips, XGBoost training via the twin next to plain
``xgboost.train``, and InvokeEndpoint latency / throughput.

    .venv/bin/python bench/twin_bench.py [--startups 5] [--s3-calls 200] [--invokes 200]

Prints figures only (no asserts). Uses include/data/mlc_churn.csv (the churn data, one-hot encoded).
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
import uuid
from pathlib import Path

import numpy as np

from aws_twin.testing import start_twin

ROOT = Path(__file__).resolve().parents[1]

CHURN = ROOT / "include" / "data" / "mlc_churn.csv"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
HP = {
    "num_round": "100",
    "objective": "binary:logistic",
    "eval_metric": "auc",
    "max_depth": "5",
    "eta": "0.2",
}


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def churn_frames():
    import pandas as pd

    frame = pd.read_csv(CHURN)
    label = (frame.pop("churn") == "yes").astype(int)
    features = pd.get_dummies(
        frame, columns=["state", "area_code", "international_plan", "voice_mail_plan"], dtype=float
    )
    data = pd.concat([label.rename("label"), features], axis=1).sample(frac=1.0, random_state=0)
    return data.iloc[:4000], data.iloc[4000:]


def bench_startup(runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        twin = start_twin(0, strict=False)
        times.append(time.perf_counter() - started)
        twin.stop()
    return times


def bench_s3(twin, calls: int) -> list[float]:
    s3 = twin.client("s3")
    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    body = b"x" * 1024
    s3.put_object(Bucket=bucket, Key="warm", Body=body)
    times = []
    for i in range(calls):
        started = time.perf_counter()
        s3.put_object(Bucket=bucket, Key=f"k{i}", Body=body)
        assert s3.get_object(Bucket=bucket, Key=f"k{i}")["Body"].read() == body
        times.append(time.perf_counter() - started)
    return times


def bench_training(twin, train, validation) -> dict:
    import xgboost as xgb

    s3, sm = twin.client("s3"), twin.client("sagemaker")
    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="train/data.csv", Body=train.to_csv(header=False, index=False))
    s3.put_object(Bucket=bucket, Key="validation/data.csv", Body=validation.to_csv(header=False, index=False))
    name = f"bench-{uuid.uuid4().hex[:8]}"
    channels = [
        {
            "ChannelName": ch,
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/{ch}/"}},
            "ContentType": "text/csv",
        }
        for ch in ("train", "validation")
    ]
    started = time.perf_counter()
    sm.create_training_job(
        TrainingJobName=name,
        RoleArn="arn:aws:iam::123456789012:role/bench",
        AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        HyperParameters=HP,
        InputDataConfig=channels,
        OutputDataConfig={"S3OutputPath": f"s3://{bucket}/models"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        StoppingCondition={"MaxRuntimeInSeconds": 600},
    )
    sm.get_waiter("training_job_completed_or_stopped").wait(
        TrainingJobName=name, WaiterConfig={"Delay": 0.05, "MaxAttempts": 6000}
    )
    twin_wall = time.perf_counter() - started
    desc = sm.describe_training_job(TrainingJobName=name)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    logs = twin.client("logs")
    stream = logs.describe_log_streams(
        logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix=name + "/"
    )["logStreams"][0]["logStreamName"]
    worker_train = None
    for event in logs.get_log_events(
        logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=stream, startFromHead=True
    )["events"]:
        match = re.search(r"trained \d+ rounds in ([\d.]+)s", event["message"])
        if match:
            worker_train = float(match.group(1))

    params = {"objective": "binary:logistic", "eval_metric": "auc", "max_depth": 5, "eta": 0.2}
    started = time.perf_counter()
    dtrain = xgb.DMatrix(train.iloc[:, 1:].to_numpy(np.float32), label=train.iloc[:, 0].to_numpy())
    dval = xgb.DMatrix(validation.iloc[:, 1:].to_numpy(np.float32), label=validation.iloc[:, 0].to_numpy())
    xgb.train(
        params,
        dtrain,
        num_boost_round=100,
        evals=[(dtrain, "train"), (dval, "validation")],
        verbose_eval=False,
    )
    local = time.perf_counter() - started
    metrics = {m["MetricName"]: m["Value"] for m in desc["FinalMetricDataList"]}
    return {
        "name": name,
        "artifact": desc["ModelArtifacts"]["S3ModelArtifacts"],
        "twin_wall": twin_wall,
        "worker_train": worker_train,
        "local": local,
        "validation_auc": metrics.get("validation:auc"),
    }


def deploy(sm, artifact: str, capture_uri: str | None) -> str:
    suffix = uuid.uuid4().hex[:8]
    sm.create_model(
        ModelName=f"m-{suffix}",
        PrimaryContainer={"Image": IMAGE, "ModelDataUrl": artifact},
        ExecutionRoleArn="arn:aws:iam::123456789012:role/bench",
    )
    extra = {}
    if capture_uri:
        extra["DataCaptureConfig"] = {
            "EnableCapture": True,
            "InitialSamplingPercentage": 100,
            "DestinationS3Uri": capture_uri,
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        }
    sm.create_endpoint_config(
        EndpointConfigName=f"c-{suffix}",
        ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": f"m-{suffix}", "InitialInstanceCount": 1}
        ],
        **extra,
    )
    sm.create_endpoint(EndpointName=f"e-{suffix}", EndpointConfigName=f"c-{suffix}")
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName=f"e-{suffix}", WaiterConfig={"Delay": 0.1, "MaxAttempts": 600}
    )
    return f"e-{suffix}"


def bench_invoke(twin, endpoint: str, rows: np.ndarray, single_calls: int, batches: int) -> dict:
    rt = twin.client("sagemaker-runtime")

    def csv(block):
        return "\n".join(",".join(repr(float(v)) for v in row) for row in block)

    one = csv(rows[:1])
    rt.invoke_endpoint(EndpointName=endpoint, ContentType="text/csv", Body=one)["Body"].read()
    single = []
    for _ in range(single_calls):
        started = time.perf_counter()
        rt.invoke_endpoint(EndpointName=endpoint, ContentType="text/csv", Body=one)["Body"].read()
        single.append(time.perf_counter() - started)
    batch = csv(rows[:1000])
    started = time.perf_counter()
    for _ in range(batches):
        answer = rt.invoke_endpoint(EndpointName=endpoint, ContentType="text/csv", Body=batch)["Body"].read()
    elapsed = time.perf_counter() - started
    assert len(answer.split(b",")) == 1000
    return {"single": single, "rows_per_s": batches * 1000 / elapsed, "batch_s": elapsed / batches}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--startups", type=int, default=5)
    parser.add_argument("--s3-calls", type=int, default=200)
    parser.add_argument("--invokes", type=int, default=200)
    parser.add_argument("--batches", type=int, default=20)
    args = parser.parse_args()

    startup = bench_startup(args.startups)
    print(
        f"twin start-up (spawn to ready line, {len(startup)} runs): median {statistics.median(startup):.2f}s "
        f"min {min(startup):.2f}s max {max(startup):.2f}s"
    )
    twin = start_twin(0, strict=False)
    try:
        s3 = bench_s3(twin, args.s3_calls)
        print(
            f"S3 put+get 1 KiB round trip ({len(s3)} runs): median {pct(s3, 50) * 1000:.1f}ms "
            f"p95 {pct(s3, 95) * 1000:.1f}ms"
        )
        if not CHURN.exists():
            print(f"{CHURN} missing: skipping the SageMaker figures")
            return 0
        train, validation = churn_frames()
        result = bench_training(twin, train, validation)
        print(
            f"XGBoost on churn (4,000 x {train.shape[1] - 1} train, 1,000 validation, 100 rounds, depth 5): "
            f"twin job {result['twin_wall']:.2f}s end to end (create -> Completed; worker's xgboost.train "
            f"{result['worker_train']:.2f}s), in-process xgboost.train {result['local']:.2f}s, "
            f"ratio {result['twin_wall'] / result['local']:.1f}x; validation:auc {result['validation_auc']:.4f}"
        )
        sm = twin.client("sagemaker")
        rows = validation.iloc[:, 1:].to_numpy(np.float32)
        rows = np.concatenate([rows] * 2)[:1000]
        for label, capture in (("no capture", None), ("100% data capture", f"s3://{_bucket(twin)}/capture")):
            started = time.perf_counter()
            endpoint = deploy(sm, result["artifact"], capture)
            ready = time.perf_counter() - started
            inv = bench_invoke(twin, endpoint, rows, args.invokes, args.batches)
            print(
                f"InvokeEndpoint ({label}; endpoint InService in {ready:.2f}s): 1 row p50 "
                f"{pct(inv['single'], 50) * 1000:.1f}ms p95 {pct(inv['single'], 95) * 1000:.1f}ms; "
                f"1,000-row batches {inv['rows_per_s']:,.0f} rows/s ({inv['batch_s'] * 1000:.0f}ms per batch)"
            )
    finally:
        twin.stop()
    return 0


def _bucket(twin) -> str:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    twin.client("s3").create_bucket(Bucket=name)
    return name


if __name__ == "__main__":
    sys.exit(main())
