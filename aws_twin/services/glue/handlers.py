"""AWS Glue jobs and job runs on the twin: the script really runs (see :mod:`.engine`).

Operations: CreateJob, UpdateJob, GetJob, GetJobs, ListJobs, BatchGetJobs, DeleteJob, StartJobRun,
GetJobRun, GetJobRuns, BatchStopJobRun, GetTags, TagResource, UntagResource. Crawlers are
:mod:`.crawlers`; everything else in the Glue model (the Data Catalog, ...) falls through to moto.

Only Python shell jobs (``Command.Name`` ``pythonshell``) run: StartJobRun of a ``glueetl`` /
``gluestreaming`` (Spark) or ``glueray`` job answers NotImplemented naming the kind; such a script is
never run as plain Python (it would fail on ``import pyspark`` at best).

Runs go STARTING -> RUNNING -> SUCCEEDED | FAILED | STOPPED | TIMEOUT. Output is in CloudWatch Logs
at ``<LogGroupName>/output`` and ``<LogGroupName>/error``, stream = JobRunId; LogGroupName is
``/aws-glue/python-jobs`` for ``pythonshell`` jobs and ``/aws-glue/jobs`` for the others (as on AWS).
``AWS_TWIN_GLUE_MINUTE_SECONDS`` (default 60) sets how many seconds a minute of Timeout lasts.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import threading
import time
import uuid
from typing import Any

from ...core import models
from ...core.errors import AwsError
from ...core.paging import page
from ...core.service import RequestContext, TwinService
from .engine import JobRunner, RunSpec

log = logging.getLogger("aws_twin.glue")

ACTIVE_STATES = ("STARTING", "RUNNING", "STOPPING", "WAITING")
TERMINAL_STATES = ("STOPPED", "SUCCEEDED", "FAILED", "TIMEOUT", "ERROR", "EXPIRED")
PYTHON_SHELL_CAPACITIES = (0.0625, 1.0)
DEFAULT_TIMEOUT_MINUTES = 2880
#: the job kinds whose script the twin runs (a plain Python process); glueetl, gluestreaming
#: (Spark) and glueray (Ray) are refused at StartJobRun with NotImplemented
RUNNABLE_COMMANDS = ("pythonshell",)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _members(shape: str) -> set[str]:
    return set(models.service_model("glue").shape_for(shape).members)


def _invalid(message: str) -> AwsError:
    return AwsError("InvalidInputException", message)


class _Run:
    """A job run: its wire record plus the machinery to stop it."""

    def __init__(self, record: dict[str, Any]):
        self.record = record
        self.stop = threading.Event()
        self.started = time.monotonic()


class GlueService(TwinService):
    model = "glue"
    moto_fallthrough = True  # Data Catalog, crawlers, ... are moto's

    def reset(self) -> None:
        with self.lock:
            for runs in getattr(self, "runs", {}).values():
                for run in runs:
                    run.stop.set()
            self.jobs: dict[str, dict[str, Any]] = {}
            self.runs: dict[str, list[_Run]] = {}  # job name -> runs, oldest first
            self.tags: dict[str, dict[str, str]] = {}  # resource ARN -> tags

    def shutdown(self) -> None:
        with self.lock:
            for runs in self.runs.values():
                for run in runs:
                    run.stop.set()

    def state(self) -> dict[str, Any]:
        with self.lock:
            return {
                "jobs": sorted(self.jobs),
                "runs": {
                    name: [{"Id": r.record["Id"], "JobRunState": r.record["JobRunState"]} for r in runs]
                    for name, runs in self.runs.items()
                },
            }

    # ---- jobs -----------------------------------------------------------------------------
    def _job(self, name: str) -> dict[str, Any]:
        job = self.jobs.get(name)
        if job is None:
            raise AwsError("EntityNotFoundException", f"Job with name: {name} not found.")
        return job

    def _definition(self, name: str, params: dict[str, Any]) -> dict[str, Any]:
        """A job definition from CreateJob's params or UpdateJob's JobUpdate, with Glue's defaults."""
        if not name or len(name) > 255:
            raise _invalid("Job name must be between 1 and 255 characters long.")
        allowed = _members("Job")
        job = {k: v for k, v in params.items() if k in allowed and v is not None}
        job["Name"] = name
        if not job.get("Role"):
            raise _invalid("Role is required.")
        command = dict(job.get("Command") or {})
        if not command:
            raise _invalid("Command is required.")
        command.setdefault("Name", "glueetl")
        job["Command"] = command
        job.setdefault("ExecutionProperty", {"MaxConcurrentRuns": 1})
        job["ExecutionProperty"].setdefault("MaxConcurrentRuns", 1)
        if job["ExecutionProperty"]["MaxConcurrentRuns"] < 1:
            raise _invalid("MaxConcurrentRuns must be at least 1.")
        job.setdefault("MaxRetries", 0)
        job.setdefault("Timeout", DEFAULT_TIMEOUT_MINUTES)
        if job["Timeout"] < 1:
            raise _invalid("Timeout must be at least 1 minute.")
        job.setdefault("DefaultArguments", {})
        if command["Name"] == "pythonshell":
            if "WorkerType" in job or "NumberOfWorkers" in job:
                raise _invalid("WorkerType and NumberOfWorkers are not supported for pythonshell jobs.")
            job.setdefault("MaxCapacity", PYTHON_SHELL_CAPACITIES[0])
            if float(job["MaxCapacity"]) not in PYTHON_SHELL_CAPACITIES:
                raise _invalid(
                    f"Value for MaxCapacity must be 0.0625 or 1 for pythonshell jobs, got {job['MaxCapacity']}."
                )
            job["MaxCapacity"] = float(job["MaxCapacity"])
        else:
            if "MaxCapacity" in job and ("WorkerType" in job or "NumberOfWorkers" in job):
                raise _invalid("Please set either MaxCapacity or WorkerType and NumberOfWorkers, not both.")
            if ("WorkerType" in job) != ("NumberOfWorkers" in job):
                raise _invalid("WorkerType and NumberOfWorkers must be set together.")
            if "WorkerType" not in job:
                job.setdefault("MaxCapacity", 10.0)
        if "MaxCapacity" in job:
            job["AllocatedCapacity"] = max(1, int(job["MaxCapacity"]))
        return job

    def create_job(self, ctx: RequestContext, params: dict) -> dict:
        name = params["Name"]
        job = self._definition(name, params)
        with self.lock:
            if name in self.jobs:
                raise AwsError("AlreadyExistsException", f"{name} already exists.")
            now = _now()
            job["CreatedOn"] = now
            job["LastModifiedOn"] = now
            self.jobs[name] = job
            self.runs.setdefault(name, [])
            if params.get("Tags"):
                self.tags[ctx.arn(f"job/{name}")] = dict(params["Tags"])
        return {"Name": name}

    def update_job(self, ctx: RequestContext, params: dict) -> dict:
        name = params["JobName"]
        with self.lock:
            old = self._job(name)
            job = self._definition(name, dict(params.get("JobUpdate") or {}))  # overwrites, like Glue
            job["CreatedOn"] = old["CreatedOn"]
            job["LastModifiedOn"] = _now()
            self.jobs[name] = job
        return {"JobName": name}

    def get_job(self, ctx: RequestContext, params: dict) -> dict:
        with self.lock:
            return {"Job": self._job(params["JobName"])}

    def get_jobs(self, ctx: RequestContext, params: dict) -> dict:
        with self.lock:
            jobs = [self.jobs[n] for n in sorted(self.jobs)]
        chunk, more = page(jobs, params, default=100, maximum=1000, error_code="InvalidInputException")
        return {"Jobs": chunk, **more}

    def list_jobs(self, ctx: RequestContext, params: dict) -> dict:
        wanted = params.get("Tags") or {}
        with self.lock:
            names = [
                n
                for n in sorted(self.jobs)
                if all(self.tags.get(ctx.arn(f"job/{n}"), {}).get(k) == v for k, v in wanted.items())
            ]
        chunk, more = page(names, params, default=100, maximum=1000, error_code="InvalidInputException")
        return {"JobNames": chunk, **more}

    def batch_get_jobs(self, ctx: RequestContext, params: dict) -> dict:
        with self.lock:
            found = [self.jobs[n] for n in params["JobNames"] if n in self.jobs]
            missing = [n for n in params["JobNames"] if n not in self.jobs]
        return {"Jobs": found, "JobsNotFound": missing}

    def delete_job(self, ctx: RequestContext, params: dict) -> dict:
        name = params["JobName"]
        with self.lock:
            self.jobs.pop(name, None)
            for run in self.runs.pop(name, []):
                run.stop.set()
            self.tags.pop(ctx.arn(f"job/{name}"), None)
        return {"JobName": name}

    # ---- tags -----------------------------------------------------------------------------
    def _tag_target(self, arn: str) -> str:
        marker = ":job/"
        if marker in arn and arn.split(marker, 1)[1] not in self.jobs:
            raise AwsError("EntityNotFoundException", f"Resource {arn} not found.")
        return arn

    def get_tags(self, ctx: RequestContext, params: dict) -> dict:
        with self.lock:
            arn = self._tag_target(params["ResourceArn"])
            return {"Tags": dict(self.tags.get(arn, {}))}

    def tag_resource(self, ctx: RequestContext, params: dict) -> dict:
        with self.lock:
            arn = self._tag_target(params["ResourceArn"])
            self.tags.setdefault(arn, {}).update(params["TagsToAdd"])
        return {}

    def untag_resource(self, ctx: RequestContext, params: dict) -> dict:
        with self.lock:
            arn = self._tag_target(params["ResourceArn"])
            for key in params["TagsToRemove"]:
                self.tags.get(arn, {}).pop(key, None)
        return {}

    # ---- runs -----------------------------------------------------------------------------
    def _find_run(self, job_name: str, run_id: str) -> _Run:
        for run in self.runs.get(job_name, []):
            if run.record["Id"] == run_id:
                return run
        raise AwsError("EntityNotFoundException", f"Job Run with id: {run_id} not found for job {job_name}.")

    def start_job_run(self, ctx: RequestContext, params: dict) -> dict:
        name = params["JobName"]
        with self.lock:
            job = self._job(name)
            kind = job["Command"]["Name"]
            if kind not in RUNNABLE_COMMANDS:
                # a Spark (glueetl / gluestreaming) or Ray script needs that engine: never run as Python
                raise AwsError(
                    "NotImplemented",
                    f"Job {name} has Command.Name {kind!r}: aws_twin runs only Python shell jobs "
                    f"(Command.Name 'pythonshell'), whose script runs as a plain Python process. "
                    f"A {kind} script needs "
                    f"{'Spark and the awsglue libraries' if kind.startswith('glue') and kind != 'glueray' else 'Ray'},"
                    " which the twin does not provide; run the job on AWS Glue or as a pythonshell job.",
                    501,
                    False,
                )
            previous = self._find_run(name, params["JobRunId"]) if params.get("JobRunId") else None
            arguments = params.get("Arguments")
            if arguments is None:
                arguments = dict(previous.record.get("Arguments", {})) if previous else {}
            fixed = job.get("NonOverridableArguments") or {}
            clash = sorted(set(arguments) & set(fixed))
            if clash:
                raise _invalid(f"Arguments {clash} are non-overridable for job {name}.")
            active = sum(1 for r in self.runs.get(name, []) if r.record["JobRunState"] in ACTIVE_STATES)
            limit = job["ExecutionProperty"]["MaxConcurrentRuns"]
            if active >= limit:
                raise AwsError(
                    "ConcurrentRunsExceededException",
                    f"Concurrent runs exceeded for {name}: {active} active, MaxConcurrentRuns {limit}.",
                )
            timeout = params.get("Timeout") or job["Timeout"]
            if timeout < 1:
                raise _invalid("Timeout must be at least 1 minute.")
            record = self._new_record(ctx, job, arguments, params, timeout, previous)
            run = _Run(record)
            self.runs.setdefault(name, []).append(run)
        self.twin.background(self._execute, run, dict(job), ctx.region)
        return {"JobRunId": record["Id"]}

    def _new_record(self, ctx, job, arguments, params, timeout, previous) -> dict[str, Any]:
        now = _now()
        record: dict[str, Any] = {
            "Id": f"jr_{uuid.uuid4().hex}{uuid.uuid4().hex}",
            "Attempt": previous.record["Attempt"] + 1 if previous else 0,
            "JobName": job["Name"],
            "JobMode": job.get("JobMode", "SCRIPT"),
            "StartedOn": now,
            "LastModifiedOn": now,
            "JobRunState": "STARTING",
            "Arguments": dict(arguments),
            "PredecessorRuns": [],
            "ExecutionTime": 0,
            "Timeout": timeout,
            "LogGroupName": "/aws-glue/python-jobs"
            if job["Command"]["Name"] == "pythonshell"
            else "/aws-glue/jobs",
        }
        if previous:
            record["PreviousRunId"] = previous.record["Id"]
        for key in ("MaxCapacity", "WorkerType", "NumberOfWorkers", "GlueVersion", "ExecutionClass"):
            value = params.get(key, job.get(key))
            if value is not None:
                record[key] = value
        if "MaxCapacity" in record:
            record["AllocatedCapacity"] = max(1, int(record["MaxCapacity"]))
        for key in ("SecurityConfiguration", "NotificationProperty"):
            value = params.get(key, job.get(key))
            if value is not None:
                record[key] = value
        return record

    def _set(self, run: _Run, **changes: Any) -> None:
        with self.lock:
            run.record.update(changes)
            run.record["LastModifiedOn"] = _now()

    def _execute(self, run: _Run, job: dict[str, Any], region: str) -> None:
        """The background thread of one run."""
        record = run.record
        merged = {**job.get("DefaultArguments", {}), **record["Arguments"]}
        merged.update(job.get("NonOverridableArguments") or {})
        merged.update(
            {"--JOB_ID": f"j_{job['Name']}", "--JOB_RUN_ID": record["Id"], "--JOB_NAME": job["Name"]}
        )
        extra = [u.strip() for u in str(merged.get("--extra-py-files", "")).split(",") if u.strip()]
        minute = float(os.environ.get("AWS_TWIN_GLUE_MINUTE_SECONDS", "60"))
        spec = RunSpec(
            job_name=job["Name"],
            run_id=record["Id"],
            script_location=job["Command"].get("ScriptLocation", ""),
            arguments=merged,
            region=region,
            log_group=record["LogGroupName"],
            timeout_s=record["Timeout"] * minute,
            extra_py_files=extra,
        )
        runner = JobRunner(self.twin, spec, run.stop)
        try:
            if run.stop.is_set():
                self._finish(run, "STOPPED", None)
                return
            try:
                runner.start()
            except Exception as exc:  # script missing, bad URI, cannot start python
                self._finish(run, "FAILED", str(exc) or type(exc).__name__)
                return
            with self.lock:
                if record["JobRunState"] == "STARTING":
                    self._set(run, JobRunState="RUNNING")
            outcome = runner.wait()
            self._finish(run, outcome.state, outcome.error_message)
        except Exception as exc:
            log.exception("glue run %s crashed", record["Id"])
            self._finish(run, "ERROR", f"{type(exc).__name__}: {exc}")
        finally:
            runner.cleanup()
        self._maybe_retry(run, job, region)

    def _finish(self, run: _Run, state: str, error: str | None) -> None:
        seconds = max(1, math.ceil(time.monotonic() - run.started))
        changes: dict[str, Any] = {"JobRunState": state, "CompletedOn": _now(), "ExecutionTime": seconds}
        if error:
            changes["ErrorMessage"] = error
        self._set(run, **changes)

    def _maybe_retry(self, run: _Run, job: dict[str, Any], region: str) -> None:
        """Glue retries a FAILED run MaxRetries times: a new run with Attempt + 1 and PreviousRunId."""
        with self.lock:
            if run.record["JobRunState"] != "FAILED" or run.record["Attempt"] >= job.get("MaxRetries", 0):
                return
            if job["Name"] not in self.jobs:
                return
            record = dict(run.record)
            now = _now()
            record.update(
                Id=f"jr_{uuid.uuid4().hex}{uuid.uuid4().hex}",
                Attempt=run.record["Attempt"] + 1,
                PreviousRunId=run.record["Id"],
                StartedOn=now,
                LastModifiedOn=now,
                JobRunState="STARTING",
                ExecutionTime=0,
            )
            for key in ("CompletedOn", "ErrorMessage"):
                record.pop(key, None)
            retry = _Run(record)
            self.runs[job["Name"]].append(retry)
        self.twin.background(self._execute, retry, job, region)

    def get_job_run(self, ctx: RequestContext, params: dict) -> dict:
        with self.lock:
            self._job(params["JobName"])
            run = self._find_run(params["JobName"], params["RunId"])
            return {"JobRun": self._view(run)}

    def _view(self, run: _Run) -> dict[str, Any]:
        record = dict(run.record)
        if record["JobRunState"] in ACTIVE_STATES:
            record["ExecutionTime"] = int(time.monotonic() - run.started)
        return record

    def get_job_runs(self, ctx: RequestContext, params: dict) -> dict:
        with self.lock:
            self._job(params["JobName"])
            runs = [self._view(r) for r in reversed(self.runs.get(params["JobName"], []))]
        chunk, more = page(runs, params, default=100, maximum=200, error_code="InvalidInputException")
        return {"JobRuns": chunk, **more}

    def batch_stop_job_run(self, ctx: RequestContext, params: dict) -> dict:
        name = params["JobName"]
        ok, errors = [], []
        with self.lock:
            for run_id in params["JobRunIds"]:
                try:
                    self._job(name)
                    run = self._find_run(name, run_id)
                except AwsError as err:
                    errors.append(
                        {
                            "JobName": name,
                            "JobRunId": run_id,
                            "ErrorDetail": {"ErrorCode": err.code, "ErrorMessage": err.message},
                        }
                    )
                    continue
                if run.record["JobRunState"] in TERMINAL_STATES:
                    errors.append(
                        {
                            "JobName": name,
                            "JobRunId": run_id,
                            "ErrorDetail": {
                                "ErrorCode": "InvalidInputException",
                                "ErrorMessage": f"Job Run {run_id} is in state "
                                f"{run.record['JobRunState']} and cannot be stopped.",
                            },
                        }
                    )
                    continue
                if run.record["JobRunState"] != "STOPPING":
                    self._set(run, JobRunState="STOPPING")
                run.stop.set()
                ok.append({"JobName": name, "JobRunId": run_id})
        return {"SuccessfulSubmissions": ok, "Errors": errors}
