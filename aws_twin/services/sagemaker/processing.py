"""Processing jobs, run for real on SageMaker's scikit-learn framework image.

``CreateProcessingJob`` is accepted only for ``sagemaker-scikit-learn`` images as SageMaker publishes
them (``images.sklearn_version``: the region's registry account, partition DNS suffix, a published
``<version>-cpu-py3`` tag); any other image is refused with a ValidationException naming it. The twin
runs the container's work as the scikit-learn image would, as a local process:

1. the job directory ``<scratch>/processing/<job>-<ms>`` stands for the container's ``/``:
   ``/opt/ml/processing/...`` is ``<job dir>/opt/ml/processing/...``; ``/opt/ml/config/
   processingjobconfig.json`` and ``resourceconfig.json`` are written as SageMaker writes them;
2. every ``ProcessingInputs[].S3Input`` (``S3Prefix``, File mode) is downloaded to its LocalPath,
   each object at its key relative to the prefix (``s3://b/code/x.py`` -> ``<LocalPath>/x.py``);
3. ``AppSpecification.ContainerEntrypoint + ContainerArguments`` is run with ``/opt/ml`` rewritten to
   the job directory in every argument and ``Environment`` value. A ``python``/``python3`` entrypoint
   runs in the twin's own interpreter (its venv: scikit-learn, pandas, numpy, scipy, xgboost) through
   ``processing_launch.py``, which also maps ``/opt/ml`` paths the script hard-codes (see there);
   another entrypoint (``bash``, ``sh``) runs as a command with the venv's ``bin`` first on PATH.
   The program's stdout and stderr go to CloudWatch Logs ``/aws/sagemaker/ProcessingJobs``, stream
   ``<job>/algo-1-<epoch seconds>``. ``AWS_ENDPOINT_URL`` points boto3 in the script at the twin.
4. exit 0: every ``ProcessingOutputConfig.Outputs[].S3Output`` LocalPath is uploaded to its S3Uri
   (``EndOfJob``; ``Continuous`` outputs are uploaded at the end too) -> ``Completed``;
   an error -> ``Failed`` with ``FailureReason`` ``AlgorithmError: <the exception's last line>``
   (or the exit code); StopProcessingJob -> ``Stopping`` -> ``Stopped`` (process group killed);
   ``StoppingCondition.MaxRuntimeInSeconds`` -> ``Stopped`` with a FailureReason saying so.

The launch, the log stream, the status, stop and timing fields are the shared job runner's (``jobs.py``).
"""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from ...core.errors import AwsError
from .images import NOT_SKLEARN, sklearn_version
from .jobs import Job, JobEngine, JobFailed, LogWriter, error_code, list_input, now, split_s3

LOG_GROUP = "/aws/sagemaker/ProcessingJobs"
LAUNCHER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "processing_launch.py")
_OPT_ML = re.compile(r"(?<![\w./-])/opt/ml(?=/|$|[^\w.-])")
_PYTHON = re.compile(r"^python(\d+(\.\d+)?)?$")
LOCAL_ROOT = "/opt/ml/processing"
TERMINAL = ("Completed", "Failed", "Stopped")


def _not_implemented(what: str) -> AwsError:
    return AwsError("NotImplemented", f"{what} is not implemented by aws_twin", 501, sender_fault=False)


def validate_request(params: dict) -> None:
    """Refuse, at CreateProcessingJob, what the twin cannot run (never a fake success)."""
    app = params.get("AppSpecification") or {}
    image = app.get("ImageUri")
    if sklearn_version(image) is None:
        raise AwsError("ValidationException", NOT_SKLEARN.format(image=image))
    if not app.get("ContainerEntrypoint"):
        raise AwsError(
            "ValidationException",
            "The twin needs AppSpecification.ContainerEntrypoint (e.g. ['python3', "
            "'/opt/ml/processing/input/code/script.py']): the scikit-learn image has no default program.",
        )
    local_paths = []
    for item in params.get("ProcessingInputs") or []:
        name = item.get("InputName")
        if item.get("DatasetDefinition"):
            raise _not_implemented(f"ProcessingInputs {name!r}: DatasetDefinition (Athena / Redshift) input")
        s3 = item.get("S3Input")
        if not s3:
            raise AwsError("ValidationException", f"ProcessingInputs {name!r} needs an S3Input.")
        if s3.get("S3DataType") != "S3Prefix":
            raise _not_implemented(f"ProcessingInputs {name!r}: S3DataType {s3.get('S3DataType')}")
        if s3.get("S3InputMode", "File") != "File":
            raise _not_implemented(f"ProcessingInputs {name!r}: S3InputMode {s3.get('S3InputMode')}")
        local_paths.append(s3.get("LocalPath"))
    for item in (params.get("ProcessingOutputConfig") or {}).get("Outputs") or []:
        name = item.get("OutputName")
        if item.get("FeatureStoreOutput"):
            raise _not_implemented(f"ProcessingOutputConfig {name!r}: FeatureStoreOutput")
        s3 = item.get("S3Output")
        if not s3:
            raise AwsError(
                "ValidationException", f"ProcessingOutputConfig output {name!r} needs an S3Output."
            )
        local_paths.append(s3.get("LocalPath"))
    for path in local_paths:
        norm = os.path.normpath(path or "")
        if not (norm + "/").startswith(LOCAL_ROOT + "/") or norm == LOCAL_ROOT:
            raise AwsError(
                "ValidationException",
                f"LocalPath {path!r} must be a path under {LOCAL_ROOT}/ (e.g. {LOCAL_ROOT}/input).",
            )
    for uri in [i["S3Input"]["S3Uri"] for i in params.get("ProcessingInputs") or []] + [
        o["S3Output"]["S3Uri"] for o in (params.get("ProcessingOutputConfig") or {}).get("Outputs") or []
    ]:
        if not str(uri).startswith("s3://"):
            raise AwsError("ValidationException", f"S3Uri {uri!r} must be an s3:// URI.")


@dataclass
class ProcessingJob(Job):
    exit_message: str | None = None

    def describe(self) -> dict:
        req = self.request
        with self.lock:
            out: dict[str, Any] = {
                "ProcessingInputs": req.get("ProcessingInputs"),
                "ProcessingOutputConfig": req.get("ProcessingOutputConfig"),
                "ProcessingJobName": self.name,
                "ProcessingResources": req.get("ProcessingResources"),
                "StoppingCondition": req.get("StoppingCondition"),
                "AppSpecification": req.get("AppSpecification"),
                "Environment": req.get("Environment"),
                "NetworkConfig": req.get("NetworkConfig"),
                "RoleArn": req.get("RoleArn"),
                "ExperimentConfig": req.get("ExperimentConfig"),
                "ProcessingJobArn": self.arn,
                "ProcessingJobStatus": self.status,
                "ExitMessage": self.exit_message,
                "FailureReason": self.failure_reason,
                "ProcessingEndTime": self.end_time,
                "ProcessingStartTime": self.start_time,
                "LastModifiedTime": self.last_modified or self.creation_time,
                "CreationTime": self.creation_time,
            }
        return {k: v for k, v in out.items() if v is not None}

    def summary(self) -> dict:
        with self.lock:
            out = {
                "ProcessingJobName": self.name,
                "ProcessingJobArn": self.arn,
                "CreationTime": self.creation_time,
                "ProcessingEndTime": self.end_time,
                "LastModifiedTime": self.last_modified or self.creation_time,
                "ProcessingJobStatus": self.status,
                "FailureReason": self.failure_reason,
                "ExitMessage": self.exit_message,
            }
        return {k: v for k, v in out.items() if v is not None}


def map_opt_ml(text: str, root: str) -> str:
    """``/opt/ml`` -> ``<root>/opt/ml`` wherever it starts a path in ``text``."""
    return _OPT_ML.sub(lambda m: root + "/opt/ml", text)


def _relative_key(key: str, prefix: str) -> str:
    """Where an object under an S3Prefix input lands below LocalPath (as SageMaker lays it out)."""
    if key == prefix:
        return os.path.basename(key)
    if prefix.endswith("/") or not prefix:
        return key[len(prefix) :]
    if key[len(prefix)] == "/":
        return key[len(prefix) + 1 :]
    return key[prefix.rfind("/") + 1 :]


class ProcessingEngine(JobEngine):
    kind = "processing"
    log_group = LOG_GROUP
    work_folder = "processing"

    def create(self, ctx, params: dict) -> ProcessingJob:
        name = params["ProcessingJobName"]
        arn = ctx.arn(f"processing-job/{name.lower()}")
        validate_request(params)
        job = ProcessingJob(
            name=name, arn=arn, region=ctx.region, request=copy.deepcopy(params), creation_time=now()
        )
        self.start(
            job,
            exists=f"Processing job names must be unique within an AWS account and region, and a "
            f"processing job with this name already exists ({arn})",
        )
        return job

    def end_process(self, proc, kill: bool = False) -> None:
        _kill(proc)  # the program's whole process group, at once

    def on_finish(self, job: ProcessingJob, status: str) -> None:
        if status == "Stopped" and job.stop_reason == "max_runtime":
            seconds = job.request["StoppingCondition"]["MaxRuntimeInSeconds"]
            job.failure_reason = f"Processing job exceeded MaxRuntimeInSeconds ({seconds} s) and was stopped."

    def body(self, job: ProcessingJob, root: str, logs: LogWriter) -> None:
        self._config_files(job, root)
        self._download(job, root, logs)
        self.check_stop(job)
        self._execute(job, root, logs)
        self.check_stop(job)
        self._upload(job, root, logs)

    def _config_files(self, job: ProcessingJob, root: str) -> None:
        config = os.path.join(root, "opt", "ml", "config")
        os.makedirs(config, exist_ok=True)
        with open(os.path.join(config, "processingjobconfig.json"), "w", encoding="utf-8") as fh:
            json.dump(job.request, fh, default=str, indent=2)
        with open(os.path.join(config, "resourceconfig.json"), "w", encoding="utf-8") as fh:
            json.dump({"current_host": "algo-1", "hosts": ["algo-1"]}, fh)

    def _download(self, job: ProcessingJob, root: str, logs: LogWriter) -> None:
        s3 = self.twin.client("s3", job.region)
        for item in job.request.get("ProcessingInputs") or []:
            name = item["InputName"]
            source = item["S3Input"]
            uri = source["S3Uri"]
            bucket, prefix = split_s3(uri)
            target = root + os.path.normpath(source["LocalPath"])
            os.makedirs(target, exist_ok=True)
            keys = list_input(s3, uri, f" (input {name!r})")
            for key in sorted(keys):
                relative = _relative_key(key, prefix)
                local = os.path.normpath(os.path.join(target, relative))
                if not local.startswith(target):
                    raise JobFailed(f"ClientError: object key {key!r} escapes the input directory")
                os.makedirs(os.path.dirname(local), exist_ok=True)
                try:
                    s3.download_file(bucket, key, local)
                except Exception as exc:
                    raise JobFailed(f"ClientError: cannot download s3://{bucket}/{key}: {exc}") from None
            logs.write(f"aws_twin: input {name}: {len(keys)} object(s) from {uri} to {source['LocalPath']}")
        for item in (job.request.get("ProcessingOutputConfig") or {}).get("Outputs") or []:
            os.makedirs(root + os.path.normpath(item["S3Output"]["LocalPath"]), exist_ok=True)

    def _command(self, job: ProcessingJob, root: str, reason_file: str) -> tuple[list[str], dict]:
        app = job.request["AppSpecification"]
        command = [map_opt_ml(a, root) for a in (app.get("ContainerEntrypoint") or [])]
        command += [map_opt_ml(a, root) for a in (app.get("ContainerArguments") or [])]
        if _PYTHON.match(os.path.basename(command[0])):
            command = [sys.executable, LAUNCHER, root, reason_file, "--", *command[1:]]
        env = dict(os.environ)
        env.update(
            {
                "PATH": os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", ""),
                "PYTHONUNBUFFERED": "1",
                "AWS_ENDPOINT_URL": self.twin.url,
                "AWS_REGION": job.region,
                "AWS_DEFAULT_REGION": job.region,
                "AWS_ACCESS_KEY_ID": "processing-job",
                "AWS_SECRET_ACCESS_KEY": "processing-job",
                "AWS_TWIN_OPT_ML": root + "/opt/ml",
            }
        )
        env.pop("AWS_SESSION_TOKEN", None)
        env.pop("AWS_PROFILE", None)
        for key, value in (job.request.get("Environment") or {}).items():
            env[key] = map_opt_ml(value, root)
        return command, env

    def _execute(self, job: ProcessingJob, root: str, logs: LogWriter) -> None:
        reason_file = os.path.join(root, ".twin-failure-reason")
        command, env = self._command(job, root, reason_file)
        try:
            proc = subprocess.Popen(
                command,
                cwd=root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                start_new_session=True,
            )
        except OSError as exc:
            raise JobFailed(f"ClientError: cannot start {command[0]!r}: {exc.strerror}") from None
        self.launch(job, proc)
        tail = [line for _, line in self.stream(job, proc, logs, keep=200) if line.strip()]
        message = os.path.join(root, "opt", "ml", "output", "message")
        if os.path.isfile(message):
            with open(message, encoding="utf-8", errors="replace") as fh:
                job.exit_message = fh.read(1024) or None
        self.check_stop(job)
        if proc.returncode != 0:
            reason = ""
            if os.path.isfile(reason_file):
                with open(reason_file, encoding="utf-8", errors="replace") as fh:
                    reason = fh.read().strip()
            if not reason:
                reason = f"the program exited with code {proc.returncode}"
                if tail:
                    reason += ": " + tail[-1].strip()
            reason = " ".join(reason.split())[:900].replace(root, "")
            raise JobFailed(f"AlgorithmError: {reason}")

    def _upload(self, job: ProcessingJob, root: str, logs: LogWriter) -> None:
        s3 = self.twin.client("s3", job.region)
        for item in (job.request.get("ProcessingOutputConfig") or {}).get("Outputs") or []:
            name = item["OutputName"]
            target = item["S3Output"]
            local = root + os.path.normpath(target["LocalPath"])
            bucket, prefix = split_s3(target["S3Uri"])
            prefix = prefix.rstrip("/")
            count = 0
            for folder, _dirs, files in os.walk(local):
                for file in sorted(files):
                    path = os.path.join(folder, file)
                    relative = os.path.relpath(path, local).replace(os.sep, "/")
                    key = f"{prefix}/{relative}" if prefix else relative
                    try:
                        s3.upload_file(path, bucket, key)
                    except Exception as exc:
                        raise JobFailed(
                            f"ClientError: cannot upload output {name!r} to s3://{bucket}/{key}: "
                            + error_code(exc)
                        ) from None
                    count += 1
            logs.write(f"aws_twin: output {name}: {count} file(s) to {target['S3Uri']}")


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        try:
            proc.kill()
        except OSError:
            pass
