"""Hyperparameter tuning jobs: the candidates are really trained by the twin's training engine.

``CreateHyperParameterTuningJob`` with one ``TrainingJobDefinition`` for the built-in XGBoost image:

- candidates: ``Random`` samples every range (Integer / Continuous with ``Linear``, ``Logarithmic``
  or ``ReverseLogarithmic`` scaling; Categorical uniformly), seeded by ``RandomSeed``; ``Grid``
  enumerates the Cartesian product of the categorical values (and every integer of an integer
  range) in order. ``Bayesian`` and ``Hyperband`` are NOT modelled: the twin samples their
  candidates as ``Random`` does (the job's description keeps the requested strategy, the log says so);
- ``ResourceLimits.MaxNumberOfTrainingJobs`` candidates (Grid: at most the grid's size), at most
  ``MaxParallelTrainingJobs`` training at once, ``MaxRuntimeInSeconds`` stops the rest;
- each candidate is a training job ``<tuning job>-<NNN>-<8 hex>`` (StaticHyperParameters + the
  candidate's values + ``_tuning_objective_metric``, as SageMaker passes it; the built-in XGBoost then
  evaluates that metric) run by the training engine for real, listed by
  ``ListTrainingJobsForHyperParameterTuningJob``;
- the objective is the candidate's final value of ``HyperParameterTuningJobObjective.MetricName``
  (its FinalMetricDataList, from the metric definitions); ``BestTrainingJob`` is the real best
  (Maximize / Minimize); ``TuningJobCompletionCriteria.TargetObjectiveMetricValue`` stops launching
  once reached. All candidates failed -> Failed; else Completed. Early stopping is not modelled.
- ``WarmStartConfig``, several ``TrainingJobDefinitions`` and ``Autotune`` answer NotImplemented.

The status, stop and timing fields are the shared job runner's (``jobs.py``).
"""

from __future__ import annotations

import copy
import itertools
import logging
import math
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from ...core.errors import AwsError
from .images import NOT_XGBOOST, xgboost_version
from .jobs import Job, JobEngine, JobFailed, now
from .training import TrainingJob

log = logging.getLogger("aws_twin.sagemaker")


def _not_implemented(what: str) -> AwsError:
    return AwsError("NotImplemented", f"{what} is not implemented by aws_twin", 501, sender_fault=False)


def _number(text, name: str, integer: bool):
    try:
        return int(str(text)) if integer else float(str(text))
    except ValueError:
        raise AwsError(
            "ValidationException", f"Range of hyperparameter {name}: {text!r} is not a number."
        ) from None


def _sample(rng: random.Random, low: float, high: float, scaling: str) -> float:
    if scaling == "Logarithmic" and low > 0:
        return math.exp(rng.uniform(math.log(low), math.log(high)))
    if scaling == "ReverseLogarithmic" and high < 1:
        return 1 - math.exp(rng.uniform(math.log(1 - high), math.log(1 - low)))
    return rng.uniform(low, high)


def candidates(config: dict) -> list[dict[str, str]]:
    """The hyperparameter values of every candidate, in launch order."""
    ranges = config.get("ParameterRanges") or {}
    limits = config.get("ResourceLimits") or {}
    strategy = config.get("Strategy", "Bayesian")
    integers = [
        (
            r["Name"],
            _number(r["MinValue"], r["Name"], True),
            _number(r["MaxValue"], r["Name"], True),
            r.get("ScalingType", "Auto"),
        )
        for r in ranges.get("IntegerParameterRanges") or []
    ]
    continuous = [
        (
            r["Name"],
            _number(r["MinValue"], r["Name"], False),
            _number(r["MaxValue"], r["Name"], False),
            r.get("ScalingType", "Auto"),
        )
        for r in ranges.get("ContinuousParameterRanges") or []
    ]
    categorical = [(r["Name"], list(r["Values"])) for r in ranges.get("CategoricalParameterRanges") or []]
    for name, low, high, _ in integers + continuous:
        if low > high:
            raise AwsError(
                "ValidationException", f"Range of hyperparameter {name}: MinValue {low} > MaxValue {high}."
            )
    if strategy == "Grid":
        if continuous:
            raise AwsError(
                "ValidationException", "The Grid strategy takes only categorical and integer ranges."
            )
        axes = [[(n, str(v)) for v in values] for n, values in categorical]
        axes += [[(n, str(v)) for v in range(low, high + 1)] for n, low, high, _ in integers]
        grid = [dict(point) for point in itertools.product(*axes)]
        cap = limits.get("MaxNumberOfTrainingJobs")
        return grid[: int(cap)] if cap else grid
    count = limits.get("MaxNumberOfTrainingJobs")
    if not count:
        raise AwsError(
            "ValidationException", "ResourceLimits.MaxNumberOfTrainingJobs is required for this strategy."
        )
    rng = random.Random(config.get("RandomSeed"))
    out = []
    for _ in range(int(count)):
        point: dict[str, str] = {}
        for name, low, high, scaling in integers:
            point[name] = str(min(high, max(low, int(round(_sample(rng, low, high, scaling))))))
        for name, low, high, scaling in continuous:
            point[name] = repr(min(high, max(low, _sample(rng, low, high, scaling))))
        for name, values in categorical:
            point[name] = str(rng.choice(values))
        out.append(point)
    return out


@dataclass
class Candidate:
    index: int
    values: dict[str, str]
    job: TrainingJob | None = None

    def objective(self, metric: str) -> float | None:
        if self.job is None or self.job.status != "Completed":
            return None
        for m in self.job.metrics:
            if m["MetricName"] == metric:
                return float(m["Value"])
        return None


@dataclass
class TuningJob(Job):
    candidates: list[Candidate] = field(default_factory=list)

    @property
    def config(self) -> dict:
        return self.request["HyperParameterTuningJobConfig"]

    @property
    def metric(self) -> str:
        return self.config["HyperParameterTuningJobObjective"]["MetricName"]

    @property
    def maximize(self) -> bool:
        return self.config["HyperParameterTuningJobObjective"]["Type"] == "Maximize"

    def training_summary(self, c: Candidate) -> dict:
        job = c.job
        value = c.objective(self.metric)
        out: dict[str, Any] = {
            "TrainingJobName": job.name,
            "TrainingJobArn": job.arn,
            "TuningJobName": self.name,
            "CreationTime": job.creation_time,
            "TrainingStartTime": job.start_time,
            "TrainingEndTime": job.end_time,
            "TrainingJobStatus": job.status,
            "TunedHyperParameters": dict(c.values),
            "FailureReason": job.failure_reason,
            "ObjectiveStatus": self.objective_status(c),
        }
        if value is not None:
            out["FinalHyperParameterTuningJobObjectiveMetric"] = {
                "Type": self.config["HyperParameterTuningJobObjective"]["Type"],
                "MetricName": self.metric,
                "Value": value,
            }
        return {k: v for k, v in out.items() if v is not None}

    def objective_status(self, c: Candidate) -> str:
        if c.job is None or c.job.status in ("InProgress", "Stopping"):
            return "Pending"
        return "Succeeded" if c.objective(self.metric) is not None else "Failed"

    def launched(self) -> list[Candidate]:
        return [c for c in self.candidates if c.job is not None]

    def best(self) -> Candidate | None:
        scored = [(c.objective(self.metric), c) for c in self.launched()]
        scored = [(v, c) for v, c in scored if v is not None]
        if not scored:
            return None
        scored.sort(key=lambda vc: (-vc[0] if self.maximize else vc[0], vc[1].index))
        return scored[0][1]

    def counters(self) -> tuple[dict, dict]:
        training = {
            "Completed": 0,
            "InProgress": 0,
            "RetryableError": 0,
            "NonRetryableError": 0,
            "Stopped": 0,
        }
        objective = {"Succeeded": 0, "Pending": 0, "Failed": 0}
        for c in self.launched():
            status = c.job.status
            key = {"Failed": "NonRetryableError", "Stopping": "InProgress"}.get(status, status)
            training[key] = training.get(key, 0) + 1
            objective[self.objective_status(c)] += 1
        return training, objective

    def describe(self) -> dict:
        training, objective = self.counters()
        best = self.best()
        out: dict[str, Any] = {
            "HyperParameterTuningJobName": self.name,
            "HyperParameterTuningJobArn": self.arn,
            "HyperParameterTuningJobConfig": copy.deepcopy(self.config),
            "TrainingJobDefinition": copy.deepcopy(self.request.get("TrainingJobDefinition")),
            "HyperParameterTuningJobStatus": self.status,
            "CreationTime": self.creation_time,
            "HyperParameterTuningEndTime": self.end_time,
            "LastModifiedTime": self.last_modified or self.creation_time,
            "TrainingJobStatusCounters": training,
            "ObjectiveStatusCounters": objective,
            "BestTrainingJob": self.training_summary(best) if best else None,
            "FailureReason": self.failure_reason,
        }
        return {k: v for k, v in out.items() if v is not None}

    def summary(self) -> dict:
        training, objective = self.counters()
        out = {
            "HyperParameterTuningJobName": self.name,
            "HyperParameterTuningJobArn": self.arn,
            "HyperParameterTuningJobStatus": self.status,
            "Strategy": self.config.get("Strategy", "Bayesian"),
            "CreationTime": self.creation_time,
            "HyperParameterTuningEndTime": self.end_time,
            "LastModifiedTime": self.last_modified or self.creation_time,
            "TrainingJobStatusCounters": training,
            "ObjectiveStatusCounters": objective,
            "ResourceLimits": self.config.get("ResourceLimits"),
        }
        return {k: v for k, v in out.items() if v is not None}


class TuningEngine(JobEngine):
    kind = "tuning"

    def __init__(self, twin, training):
        super().__init__(twin)
        self.training = training

    def create(self, ctx, params: dict) -> TuningJob:
        name = params["HyperParameterTuningJobName"]
        arn = ctx.arn(f"hyper-parameter-tuning-job/{name.lower()}")
        if params.get("TrainingJobDefinitions"):
            raise _not_implemented("TrainingJobDefinitions (several training definitions in one tuning job)")
        if params.get("WarmStartConfig"):
            raise _not_implemented("WarmStartConfig")
        if params.get("Autotune"):
            raise _not_implemented("Autotune")
        definition = params.get("TrainingJobDefinition")
        if not definition:
            raise AwsError("ValidationException", "TrainingJobDefinition is required.")
        config = params.get("HyperParameterTuningJobConfig") or {}
        if not config.get("HyperParameterTuningJobObjective"):
            raise AwsError(
                "ValidationException",
                "HyperParameterTuningJobConfig.HyperParameterTuningJobObjective is required.",
            )
        image = (definition.get("AlgorithmSpecification") or {}).get("TrainingImage")
        if xgboost_version(image) is None:
            raise AwsError("ValidationException", NOT_XGBOOST.format(image=image))
        points = candidates(config)
        if not points:
            raise AwsError("ValidationException", "The parameter ranges give no candidate to train.")
        job = TuningJob(name, arn, ctx.region, copy.deepcopy(params), now())
        job.candidates = [Candidate(i + 1, p) for i, p in enumerate(points)]
        self.start(job, ctx, exists=f"Hyperparameter tuning job {arn} already exists.")
        return job

    def not_found(self, name: str) -> AwsError:
        return AwsError("ResourceNotFound", f"Amazon SageMaker can't find a tuning job with name {name}")

    def stop(self, job: TuningJob, reason: str = "user") -> bool:
        if not super().stop(job, reason):
            raise AwsError(
                "ValidationException",
                f"The request was rejected because the tuning job is in status {job.status}.",
            )
        return True

    def on_stopping(self, job: TuningJob) -> None:
        for c in job.launched():
            if c.job.status == "InProgress":
                self.training.stop(c.job)

    def delete(self, job: TuningJob) -> None:
        with self.lock:
            if job.status in ("InProgress", "Stopping"):
                raise AwsError(
                    "ValidationException", f"Tuning job {job.name} is in status {job.status}; stop it first."
                )
            self.jobs.pop(job.name, None)

    def _launch(self, ctx, job: TuningJob, c: Candidate) -> None:
        definition = job.request["TrainingJobDefinition"]
        hp = {
            **(definition.get("StaticHyperParameters") or {}),
            **c.values,
            "_tuning_objective_metric": job.metric,
        }
        name = f"{job.name}-{c.index:03d}-{uuid.uuid4().hex[:8]}"
        request = {
            "TrainingJobName": name,
            "HyperParameters": hp,
            **{
                k: copy.deepcopy(v)
                for k, v in definition.items()
                if k
                not in ("StaticHyperParameters", "HyperParameterRanges", "TuningObjective", "DefinitionName")
            },
        }
        training = TrainingJob(
            name=name,
            arn=ctx.arn(f"training-job/{name.lower()}"),
            region=job.region,
            request=request,
            creation_time=now(),
        )
        training.tuning_job_arn = job.arn
        c.job = training
        self.training.start(training)

    def body(self, job: TuningJob, work, logs, ctx) -> None:
        config = job.config
        limits = config.get("ResourceLimits") or {}
        parallel = max(1, int(limits.get("MaxParallelTrainingJobs") or 1))
        deadline = (
            time.monotonic() + float(limits["MaxRuntimeInSeconds"])
            if limits.get("MaxRuntimeInSeconds")
            else None
        )
        target = (config.get("TuningJobCompletionCriteria") or {}).get("TargetObjectiveMetricValue")
        strategy = config.get("Strategy", "Bayesian")
        if strategy in ("Bayesian", "Hyperband"):
            log.info("tuning job %s: strategy %s is sampled as Random by the twin", job.name, strategy)
        pending = list(job.candidates)
        while True:
            running = [c for c in job.launched() if c.job.status in ("InProgress", "Stopping")]
            reached = False
            if target is not None:
                best = job.best()
                value = best.objective(job.metric) if best else None
                reached = value is not None and (value >= target if job.maximize else value <= target)
            timed_out = deadline is not None and time.monotonic() > deadline
            if timed_out and not job.stop_reason:
                for c in running:
                    self.training.stop(c.job)
            if job.stop_reason or reached or timed_out:
                pending = []
            while pending and len(running) < parallel:
                c = pending.pop(0)
                self._launch(ctx, job, c)
                running.append(c)
            if not pending and not running:
                break
            time.sleep(0.2)
        job.candidates = [c for c in job.candidates if c.job is not None]
        self.check_stop(job)
        if job.best() is None:
            reasons = {c.job.failure_reason for c in job.candidates if c.job.failure_reason}
            raise JobFailed(
                f"All training jobs failed or did not report the objective metric {job.metric}"
                + (f": {sorted(reasons)[0]}" if reasons else ".")
            )
