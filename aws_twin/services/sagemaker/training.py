"""Training jobs: state, status transitions, channel download, the XGBoost worker process,
CloudWatch logs and the model artifact.

A job runs on the twin's background pool: Starting -> Downloading (channels from the twin's S3 to
the work dir) -> Training (a worker process forked from a parent that has imported xgboost, see
``workers.py``; its stdout forwarded to CloudWatch Logs ``/aws/sagemaker/TrainingJobs`` stream
``<job>/algo-1-<epoch>``)
-> Uploading (``<S3OutputPath>/<job>/output/model.tar.gz`` holding ``xgboost-model``) -> Completed.
Failed carries a FailureReason a person can act on; StopTrainingJob kills the worker -> Stopped;
StoppingCondition.MaxRuntimeInSeconds -> Stopped / MaxRuntimeExceeded. The launch, the log
stream, the status, stop and timing fields are the shared job runner's (``jobs.py``).
"""

from __future__ import annotations

import copy
import datetime as dt
import io
import json
import logging
import os
import tarfile
import tempfile
from dataclasses import dataclass, field
from typing import Any

from ...core.errors import AwsError
from .images import NOT_XGBOOST, xgboost_version
from .jobs import Job, JobEngine, JobFailed, LogWriter, error_code, list_input, now, split_s3
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


@dataclass
class TrainingJob(Job):
    secondary: str = "Starting"
    transitions: list[dict] = field(default_factory=list)
    metrics: list[dict] = field(default_factory=list)
    #: the job's worker process id, and whether the worker found xgboost imported when it started
    #: (forked from the warm parent): the twin's state reports both
    worker_pid: int | None = None
    worker_preloaded: bool | None = None
    #: the hyperparameter tuning job that launched this one
    tuning_job_arn: str | None = None
    #: (epoch seconds, line) of the worker's output, for the metric definitions
    log_lines: list = field(default_factory=list)

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


class TrainingEngine(JobEngine):
    kind = "training"
    log_group = LOG_GROUP
    work_folder = "training"

    def not_found(self, name: str) -> AwsError:
        return AwsError("ValidationException", "Requested resource not found.")

    def on_start(self, job: TrainingJob) -> None:
        job.transition("Starting")

    def on_stopping(self, job: TrainingJob) -> None:
        job.transition("Stopping")

    def on_finish(self, job: TrainingJob, status: str) -> None:
        if status == "Stopped":
            job.transition("MaxRuntimeExceeded" if job.stop_reason == "max_runtime" else "Stopped")
        else:
            job.transition(status)

    def body(self, job: TrainingJob, work: str, logs: LogWriter) -> None:
        image = (job.request.get("AlgorithmSpecification") or {}).get("TrainingImage")
        if xgboost_version(image) is None:
            algo = (job.request.get("AlgorithmSpecification") or {}).get("AlgorithmName")
            raise JobFailed("ClientError: " + NOT_XGBOOST.format(image=image or algo or ""))
        self.check_stop(job)
        job.transition("Downloading")
        channels = self._download(job, work, logs)
        self.check_stop(job)
        job.transition("Training")
        result = self._train(job, work, channels, image, logs)
        self.check_stop(job)
        job.transition("Uploading")
        self._upload(job, os.path.join(work, "model"))
        job.metrics = self._metrics(job, result)

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
            keys = list_input(s3, uri, f" (channel {name!r})", lead="Data download failed: ")
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
        job.worker_pid = proc.pid
        self.launch(job, proc)
        job.log_lines = self.stream(job, proc, logs)
        self.check_stop(job)
        try:
            with open(spec["result_path"], encoding="utf-8") as fh:
                result = json.load(fh)
        except (OSError, ValueError):
            detail = " | ".join(line for _, line in job.log_lines[-5:])
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
            raise JobFailed(
                f"ClientError: cannot upload the model to {job.artifact_uri}: {error_code(exc)}"
            ) from None


def default_scratch(twin) -> str:
    base = getattr(twin, "work_dir", None) or tempfile.mkdtemp(prefix="aws_twin-")
    path = os.path.join(base, "sagemaker")
    os.makedirs(path, exist_ok=True)
    return path
