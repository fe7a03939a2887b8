"""Training jobs: state, status transitions, channel download, the XGBoost worker process,
CloudWatch logs and the model artifact.

A job runs on the twin's background pool: Starting -> Downloading (channels from the twin's S3 to
the work dir) -> Training (a worker process forked from a parent that has imported xgboost, see
``workers.py``; its stdout forwarded to CloudWatch Logs ``/aws/sagemaker/TrainingJobs`` stream
``<job>/algo-1-<epoch>``)
-> Uploading (``<S3OutputPath>/<job>/output/model.tar.gz`` holding ``xgboost-model``) -> Completed.
Failed carries a FailureReason a person can act on; StopTrainingJob kills the worker -> Stopped;
StoppingCondition.MaxRuntimeInSeconds -> Stopped / MaxRuntimeExceeded.
"""

from __future__ import annotations

import copy
import datetime as dt
import io
import json
import logging
import os
import shutil
import tarfile
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .images import NOT_XGBOOST, xgboost_version
from .workers import Worker

log = logging.getLogger("aws_twin.sagemaker")

LOG_GROUP = "/aws/sagemaker/TrainingJobs"
METRIC_NAMESPACE = "/aws/sagemaker/TrainingJobs"
UTC = dt.UTC

_NUMBER = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
#: the evaluation metrics the built-in XGBoost logs (``[7]#011train-auc:0.91``)
_XGB_METRICS = (
    "accuracy", "auc", "aucpr", "error", "f1", "gamma-deviance", "gamma-nloglik", "logloss", "mae",
    "map", "merror", "mlogloss", "mse", "ndcg", "poisson-nloglik", "rmse", "tweedie-nloglik",
    "cox-nloglik", "mape", "rmsle",
)  # fmt: skip
#: what DescribeTrainingJob shows as AlgorithmSpecification.MetricDefinitions for the built-in
#: XGBoost algorithm (its own definitions; the SDK's training_job_analytics reads the names)
XGBOOST_METRIC_DEFINITIONS = [
    {"Name": f"{channel}:{metric}", "Regex": rf".*\[[0-9]+\].*#011{channel}-{metric}:{_NUMBER}.*"}
    for channel in ("train", "validation")
    for metric in _XGB_METRICS
]


def metric_definitions(algorithm: dict) -> list[dict]:
    """The job's metric definitions: the request's, else the built-in XGBoost's."""
    return algorithm.get("MetricDefinitions") or XGBOOST_METRIC_DEFINITIONS


def parse_metrics(
    definitions: list[dict], lines: list[tuple[float, str]]
) -> dict[str, list[tuple[float, float]]]:
    """name -> [(epoch seconds, value)] for every log line a definition's regex matches (its first group)."""
    import re

    found: dict[str, list[tuple[float, float]]] = {}
    compiled = []
    for d in definitions:
        try:
            compiled.append((d["Name"], re.compile(d["Regex"])))
        except re.error:
            continue
    for stamp, line in lines:
        for name, regex in compiled:
            match = regex.search(line)
            if match and match.groups():
                try:
                    value = float(match.group(1))
                except ValueError:
                    continue
                if value == value:  # not NaN
                    found.setdefault(name, []).append((stamp, value))
    return found


_MESSAGES = {
    "Starting": "Preparing the instances for training",
    "Downloading": "Downloading input data",
    "Training": "Training image download completed. Training in progress.",
    "Uploading": "Uploading generated training model",
    "Completed": "Training job completed",
    "Failed": "Training job failed",
    "Stopping": "Stopping the training job",
    "Stopped": "Training job stopped",
    "MaxRuntimeExceeded": "Job stopped because it exceeded the MaxRuntimeInSeconds",
}


def now() -> dt.datetime:
    return dt.datetime.now(UTC)


def split_s3(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


@dataclass
class TrainingJob:
    name: str
    arn: str
    region: str
    request: dict
    creation_time: dt.datetime
    status: str = "InProgress"
    secondary: str = "Starting"
    transitions: list[dict] = field(default_factory=list)
    failure_reason: str | None = None
    last_modified: dt.datetime | None = None
    start_time: dt.datetime | None = None
    end_time: dt.datetime | None = None
    metrics: list[dict] = field(default_factory=list)
    stop_reason: str | None = None  # "user" | "max_runtime"
    process: Worker | None = None
    log_stream: str | None = None
    #: the job's worker process id, and whether the worker found xgboost imported when it started
    #: (forked from the warm parent): the twin's state reports both
    worker_pid: int | None = None
    worker_preloaded: bool | None = None
    #: the hyperparameter tuning job that launched this one
    tuning_job_arn: str | None = None
    #: (epoch seconds, line) of the worker's output, for the metric definitions
    log_lines: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def artifact_uri(self) -> str:
        out = self.request["OutputDataConfig"]["S3OutputPath"].rstrip("/")
        return f"{out}/{self.name}/output/model.tar.gz"

    def transition(self, status: str, message: str | None = None) -> None:
        stamp = now()
        with self.lock:
            if self.transitions and "EndTime" not in self.transitions[-1]:
                self.transitions[-1]["EndTime"] = stamp
            entry = {
                "Status": status,
                "StartTime": stamp,
                "StatusMessage": message or _MESSAGES.get(status, status),
            }
            if status in ("Completed", "Failed", "Stopped", "MaxRuntimeExceeded"):
                entry["EndTime"] = stamp
            self.transitions.append(entry)
            self.secondary = status
            self.last_modified = stamp

    def describe(self) -> dict:
        req = self.request
        with self.lock:
            out: dict[str, Any] = {
                "TrainingJobName": self.name,
                "TrainingJobArn": self.arn,
                "ModelArtifacts": {"S3ModelArtifacts": self.artifact_uri},
                "TrainingJobStatus": self.status,
                "SecondaryStatus": self.secondary,
                "FailureReason": self.failure_reason,
                "HyperParameters": req.get("HyperParameters"),
                "AlgorithmSpecification": {
                    **(req.get("AlgorithmSpecification") or {}),
                    "MetricDefinitions": metric_definitions(req.get("AlgorithmSpecification") or {}),
                },
                "RoleArn": req.get("RoleArn"),
                "InputDataConfig": req.get("InputDataConfig"),
                "OutputDataConfig": req.get("OutputDataConfig"),
                "ResourceConfig": req.get("ResourceConfig"),
                "VpcConfig": req.get("VpcConfig"),
                "StoppingCondition": req.get("StoppingCondition") or {"MaxRuntimeInSeconds": 86400},
                "CreationTime": self.creation_time,
                "TrainingStartTime": self.start_time,
                "TrainingEndTime": self.end_time,
                "LastModifiedTime": self.last_modified or self.creation_time,
                "SecondaryStatusTransitions": copy.deepcopy(self.transitions),
                "FinalMetricDataList": copy.deepcopy(self.metrics) or None,
                "EnableNetworkIsolation": bool(req.get("EnableNetworkIsolation", False)),
                "EnableInterContainerTrafficEncryption": bool(
                    req.get("EnableInterContainerTrafficEncryption", False)
                ),
                "EnableManagedSpotTraining": bool(req.get("EnableManagedSpotTraining", False)),
                "CheckpointConfig": req.get("CheckpointConfig"),
                "Environment": req.get("Environment"),
                "RetryStrategy": req.get("RetryStrategy"),
                "TuningJobArn": self.tuning_job_arn,
                "ExperimentConfig": req.get("ExperimentConfig"),
            }
            if self.start_time and self.end_time:
                seconds = max(1, int(round((self.end_time - self.start_time).total_seconds())))
                count = int((req.get("ResourceConfig") or {}).get("InstanceCount") or 1)
                out["TrainingTimeInSeconds"] = seconds
                out["BillableTimeInSeconds"] = seconds * count
        return {k: v for k, v in out.items() if v is not None}

    def summary(self) -> dict:
        with self.lock:
            out = {
                "TrainingJobName": self.name,
                "TrainingJobArn": self.arn,
                "CreationTime": self.creation_time,
                "TrainingEndTime": self.end_time,
                "LastModifiedTime": self.last_modified or self.creation_time,
                "TrainingJobStatus": self.status,
                "SecondaryStatus": self.secondary,
            }
        return {k: v for k, v in out.items() if v is not None}


class JobStopped(Exception):
    pass


class JobFailed(Exception):
    pass


class LogWriter:
    """Lines to one CloudWatch Logs stream, sent in small batches (thread-safe: a job's reader
    thread writes while a timer may flush)."""

    def __init__(self, logs_client, group: str, stream: str):
        self.client = logs_client
        self._lock = threading.Lock()
        self.group = group
        self.stream = stream
        self.pending: list[dict] = []
        self.last_flush = time.monotonic()
        self.ok = True
        try:
            try:
                self.client.create_log_group(logGroupName=group)
            except self.client.exceptions.ResourceAlreadyExistsException:
                pass
            self.client.create_log_stream(logGroupName=group, logStreamName=stream)
        except Exception:  # logs are a side channel: never fail a job for them
            log.exception("cannot create log stream %s %s", group, stream)
            self.ok = False

    def write(self, message: str) -> None:
        with self._lock:
            self.pending.append({"timestamp": int(time.time() * 1000), "message": message})
            due = len(self.pending) >= 200 or time.monotonic() - self.last_flush > 0.5
        if due:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            if not self.pending or not self.ok:
                self.pending.clear()
                return
            batch, self.pending = self.pending, []
            self.last_flush = time.monotonic()
        try:
            self.client.put_log_events(logGroupName=self.group, logStreamName=self.stream, logEvents=batch)
        except Exception:
            log.exception("cannot write training logs to %s", self.stream)


class TrainingEngine:
    def __init__(self, twin, scratch: str):
        self.twin = twin
        self.scratch = scratch
        self.jobs: dict[str, TrainingJob] = {}
        self.lock = threading.RLock()

    # ---- lifecycle ------------------------------------------------------------------------
    def start(self, job: TrainingJob) -> None:
        with self.lock:
            self.jobs[job.name] = job
        job.transition("Starting")
        self.twin.background(self.run, job)

    def stop(self, job: TrainingJob, reason: str = "user") -> None:
        with job.lock:
            if job.status != "InProgress":
                return
            job.status = "Stopping"
            job.stop_reason = reason
            proc = job.process
        job.transition("Stopping")
        if proc is not None and proc.poll() is None:
            proc.terminate()

    def shutdown(self) -> None:
        with self.lock:
            jobs = list(self.jobs.values())
        for job in jobs:
            proc = job.process
            if proc is not None and proc.poll() is None:
                proc.kill()

    # ---- the job --------------------------------------------------------------------------
    def run(self, job: TrainingJob) -> None:
        work = os.path.join(self.scratch, "training", f"{job.name}-{int(time.time() * 1000)}")
        os.makedirs(work, exist_ok=True)
        timer = None
        max_runtime = (job.request.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds")
        if max_runtime:
            timer = threading.Timer(float(max_runtime), self.stop, args=(job, "max_runtime"))
            timer.daemon = True
            timer.start()
        logs = None
        try:
            job.start_time = now()
            image = (job.request.get("AlgorithmSpecification") or {}).get("TrainingImage")
            job.log_stream = f"{job.name}/algo-1-{int(time.time())}"
            logs = LogWriter(self.twin.client("logs", job.region), LOG_GROUP, job.log_stream)
            if xgboost_version(image) is None:
                algo = (job.request.get("AlgorithmSpecification") or {}).get("AlgorithmName")
                raise JobFailed("ClientError: " + NOT_XGBOOST.format(image=image or algo or ""))
            self._check_stop(job)
            job.transition("Downloading")
            channels = self._download(job, work, logs)
            self._check_stop(job)
            job.transition("Training")
            result = self._train(job, work, channels, image, logs)
            self._check_stop(job)
            job.transition("Uploading")
            self._upload(job, os.path.join(work, "model"))
            job.metrics = self._metrics(job, result)
            self._finish(job, "Completed")
        except JobStopped:
            self._finish(job, "Stopped")
        except JobFailed as exc:
            if job.stop_reason:
                self._finish(job, "Stopped")
            else:
                job.failure_reason = str(exc)
                if logs:
                    logs.write(str(exc))
                self._finish(job, "Failed")
        except Exception as exc:  # a twin bug: still end the job, readably
            log.exception("training job %s crashed", job.name)
            job.failure_reason = (
                f"InternalServerError: the twin failed running the job: {type(exc).__name__}: {exc}"
            )
            self._finish(job, "Failed")
        finally:
            if timer:
                timer.cancel()
            if logs:
                logs.flush()
            shutil.rmtree(work, ignore_errors=True)

    def _metrics(self, job: TrainingJob, result: dict) -> list[dict]:
        """FinalMetricDataList (each definition's last value in the log; the worker's final
        evaluation values for the built-in metrics it reports) and the per-round values as CloudWatch
        metrics ``/aws/sagemaker/TrainingJobs`` {TrainingJobName}, as SageMaker publishes them."""
        definitions = metric_definitions(job.request.get("AlgorithmSpecification") or {})
        series = parse_metrics(definitions, job.log_lines)
        stamp = now()
        final = {name: values[-1][1] for name, values in series.items()}
        final.update(
            {k: float(v) for k, v in (result.get("metrics") or {}).items() if k in final or not series}
        )
        try:
            cloudwatch = self.twin.client("cloudwatch", job.region)
            data = [
                {
                    "MetricName": name,
                    "Dimensions": [{"Name": "TrainingJobName", "Value": job.name}],
                    "Timestamp": dt.datetime.fromtimestamp(when, UTC),
                    "Value": value,
                }
                for name, values in series.items()
                for when, value in values
            ]
            for i in range(0, len(data), 500):
                cloudwatch.put_metric_data(Namespace=METRIC_NAMESPACE, MetricData=data[i : i + 500])
        except Exception:  # metrics are a side channel: never fail a job for them
            log.exception("cannot publish the metrics of training job %s", job.name)
        return [
            {"MetricName": name, "Value": float(value), "Timestamp": stamp}
            for name, value in sorted(final.items())
        ]

    def _finish(self, job: TrainingJob, status: str) -> None:
        job.end_time = now()
        if status == "Stopped":
            job.transition("MaxRuntimeExceeded" if job.stop_reason == "max_runtime" else "Stopped")
        else:
            job.transition(status)
        with job.lock:
            job.status = status
            job.process = None

    def _check_stop(self, job: TrainingJob) -> None:
        if job.stop_reason:
            raise JobStopped()

    def _download(self, job: TrainingJob, work: str, logs: LogWriter) -> dict:
        s3 = self.twin.client("s3", job.region)
        channels = {}
        for channel in job.request.get("InputDataConfig") or []:
            name = channel["ChannelName"]
            source = (channel.get("DataSource") or {}).get("S3DataSource")
            if not source:
                raise JobFailed(f"ClientError: channel {name!r}: the twin reads only S3DataSource channels")
            if source.get("S3DataType", "S3Prefix") != "S3Prefix":
                raise JobFailed(
                    f"ClientError: channel {name!r}: S3DataType {source.get('S3DataType')} is not supported "
                    "by the twin (use S3Prefix)"
                )
            uri = source["S3Uri"]
            try:
                bucket, prefix = split_s3(uri)
            except ValueError as exc:
                raise JobFailed(f"ClientError: channel {name!r}: {exc}") from None
            keys = []
            try:
                paginator = s3.get_paginator("list_objects_v2")
                for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                    keys += [o["Key"] for o in page.get("Contents", []) if not o["Key"].endswith("/")]
            except Exception as exc:
                code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
                raise JobFailed(f"ClientError: Data download failed: cannot list {uri}: {code}") from None
            if not keys:
                raise JobFailed(
                    f"ClientError: Data download failed: no objects found under {uri} (channel {name!r})"
                )
            target = os.path.join(work, "input", "data", name)
            os.makedirs(target, exist_ok=True)
            files = []
            for i, key in enumerate(sorted(keys)):
                local = os.path.join(target, f"{i:05d}-{os.path.basename(key) or 'object'}")
                try:
                    s3.download_file(bucket, key, local)
                except Exception as exc:
                    raise JobFailed(
                        f"ClientError: Data download failed: s3://{bucket}/{key}: {exc}"
                    ) from None
                files.append((local, f"s3://{bucket}/{key}"))
            channels[name] = {"files": files, "content_type": channel.get("ContentType")}
            logs.write(f"aws_twin: channel {name}: {len(files)} object(s) from {uri}")
        return channels

    def _train(self, job: TrainingJob, work: str, channels: dict, image: str, logs: LogWriter) -> dict:
        model_dir = os.path.join(work, "model")
        os.makedirs(model_dir, exist_ok=True)
        spec = {
            "hyperparameters": job.request.get("HyperParameters") or {},
            "channels": channels,
            "image": image,
            "work_dir": work,
            "model_dir": model_dir,
            "result_path": os.path.join(work, "result.json"),
        }
        spec_path = os.path.join(work, "spec.json")
        with open(spec_path, "w", encoding="utf-8") as fh:
            json.dump(spec, fh)
        proc = Worker(spec_path, cwd=work, name=f"training-{job.name}")
        with job.lock:
            job.process = proc
            job.worker_pid = proc.pid
            stopping = job.stop_reason is not None
        if stopping:
            proc.terminate()
        tail: list[str] = []
        lines: list[tuple[float, str]] = []
        for line in proc.stdout:
            line = line.rstrip("\n")
            logs.write(line)
            lines.append((time.time(), line))
            tail = (tail + [line])[-20:]
        proc.wait()
        job.log_lines = lines
        logs.flush()
        if job.stop_reason:
            raise JobStopped()
        try:
            with open(spec["result_path"], encoding="utf-8") as fh:
                result = json.load(fh)
        except (OSError, ValueError):
            detail = " | ".join(tail[-5:])
            raise JobFailed(
                f"AlgorithmError: the XGBoost worker exited with code {proc.returncode}: {detail}"
            ) from None
        job.worker_preloaded = result.get("preloaded")
        if result.get("status") != "ok":
            raise JobFailed(result.get("reason") or "AlgorithmError: training failed")
        return result

    def _upload(self, job: TrainingJob, model_dir: str) -> None:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for name in sorted(os.listdir(model_dir)):
                tar.add(os.path.join(model_dir, name), arcname=name)
        bucket, key = split_s3(job.artifact_uri)
        try:
            self.twin.client("s3", job.region).put_object(Bucket=bucket, Key=key, Body=buf.getvalue())
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
            raise JobFailed(f"ClientError: cannot upload the model to {job.artifact_uri}: {code}") from None


def default_scratch(twin) -> str:
    base = getattr(twin, "work_dir", None) or tempfile.mkdtemp(prefix="aws_twin-")
    path = os.path.join(base, "sagemaker")
    os.makedirs(path, exist_ok=True)
    return path
