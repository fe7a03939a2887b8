"""A2I's state machine, free of any wire format: human task UIs, flow definitions, human loops,
worker answers and the output JSON a completed loop writes to S3.

Time-driven transitions are evaluated lazily (whenever a resource is read), so nothing polls:

- a flow definition is ``Initializing`` for :data:`FLOW_INIT_SECONDS`, then ``Active``;
- a stopped loop is ``Stopping`` for :data:`STOP_SECONDS`, then ``Stopped``;
- an ``InProgress`` loop that nobody finished within the flow's
  ``TaskAvailabilityLifetimeInSeconds`` becomes ``Failed`` (FailureCode ``TaskExpired``);
- a worker who accepted a task (opened its page) must submit within ``TaskTimeLimitInSeconds``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import render

UTC = dt.UTC
FLOW_INIT_SECONDS = 0.5
STOP_SECONDS = 0.5
#: A2I's defaults for a private work team
DEFAULT_AVAILABILITY_SECONDS = 864000
DEFAULT_TIME_LIMIT_SECONDS = 3600
NAME_RE = re.compile(r"^[a-z0-9](-*[a-z0-9])*$")
WORKER_ISSUER = "https://cognito-idp.{region}.amazonaws.com/{region}_TwinPool"


class A2IError(Exception):
    """A domain error; the handlers turn ``kind`` into the code each operation documents."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind  # not_found | conflict | in_use | invalid
        self.message = message


@dataclass
class TaskUi:
    name: str
    arn: str
    region: str
    content: str
    created: dt.datetime
    tags: list = field(default_factory=list)


@dataclass
class FlowDefinition:
    name: str
    arn: str
    region: str
    created: dt.datetime
    role_arn: str
    output_path: str
    human_loop_config: dict
    ui_content: str
    activation_config: dict | None = None
    request_source: dict | None = None
    kms_key_id: str | None = None
    tags: list = field(default_factory=list)

    @property
    def availability_seconds(self) -> int:
        return int(
            self.human_loop_config.get("TaskAvailabilityLifetimeInSeconds") or DEFAULT_AVAILABILITY_SECONDS
        )

    @property
    def time_limit_seconds(self) -> int:
        return int(self.human_loop_config.get("TaskTimeLimitInSeconds") or DEFAULT_TIME_LIMIT_SECONDS)

    @property
    def task_count(self) -> int:
        return int(self.human_loop_config.get("TaskCount") or 1)

    @property
    def title(self) -> str:
        return self.human_loop_config.get("TaskTitle", "")

    @property
    def description(self) -> str:
        return self.human_loop_config.get("TaskDescription", "")


@dataclass
class Answer:
    worker_id: str
    accepted: dt.datetime
    submitted: dt.datetime
    content: dict


@dataclass
class HumanLoop:
    name: str
    arn: str
    region: str
    flow: FlowDefinition
    input_content: str
    task_input: Any
    created: dt.datetime
    data_attributes: dict | None = None
    status: str = "InProgress"
    failure_reason: str | None = None
    failure_code: str | None = None
    output_s3_uri: str | None = None
    stop_requested: dt.datetime | None = None
    answers: list[Answer] = field(default_factory=list)
    accepted: dict[str, dt.datetime] = field(default_factory=dict)


def iso_ms(value: dt.datetime) -> str:
    """A2I's timestamp format in output.json: ``2024-05-01T10:11:12.345Z``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _arn(region: str, account: str, resource: str) -> str:
    return f"arn:aws:sagemaker:{region}:{account}:{resource}"


def _parse_arn(arn: str, kind: str) -> tuple[str, str]:
    """(region, name) of a SageMaker ARN of the given resource kind."""
    match = re.fullmatch(rf"arn:aws[a-z\-]*:sagemaker:([a-z0-9\-]+):\d{{12}}:{kind}/(.+)", arn or "")
    if not match:
        raise A2IError("invalid", f"{arn!r} is not a valid {kind} ARN.")
    return match.group(1), match.group(2)


def _check_name(name: str, what: str) -> None:
    if not isinstance(name, str) or not 1 <= len(name) <= 63 or not NAME_RE.match(name):
        raise A2IError(
            "invalid",
            f"{what} {name!r} is not valid: use 1-63 lowercase letters, digits and hyphens, "
            "starting and ending with a letter or digit.",
        )


class A2IEngine:
    """All A2I state of one twin. ``write_output(s3_uri, body_bytes)`` stores output.json."""

    def __init__(
        self,
        write_output: Callable[[str, bytes], None],
        account_id: str = "123456789012",
        clock: Callable[[], dt.datetime] | None = None,
    ):
        self.write_output = write_output
        self.account_id = account_id
        self.clock = clock or (lambda: dt.datetime.now(UTC))
        self.lock = threading.RLock()
        self.started = self.clock()  # the work teams' creation time (every team exists)
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.task_uis: dict[tuple[str, str], TaskUi] = {}
            self.flows: dict[tuple[str, str], FlowDefinition] = {}
            self.loops: dict[tuple[str, str], HumanLoop] = {}

    def state(self) -> dict:
        with self.lock:
            return {
                "human_task_uis": sorted(n for _, n in self.task_uis),
                "flow_definitions": sorted(n for _, n in self.flows),
                "human_loops": {n: self._refresh(loop).status for (_, n), loop in sorted(self.loops.items())},
            }

    # ---- human task UIs ---------------------------------------------------------------------
    def create_task_ui(self, region: str, name: str, content: str, tags: list | None = None) -> TaskUi:
        _check_name(name, "HumanTaskUiName")
        try:
            render.parse_template(content)
        except render.TemplateError as exc:
            raise A2IError(
                "invalid", f"The UiTemplate content is not a valid Liquid template: {exc}"
            ) from exc
        with self.lock:
            if (region, name) in self.task_uis:
                raise A2IError("in_use", f"Human task UI {name} already exists.")
            ui = TaskUi(
                name,
                _arn(region, self.account_id, f"human-task-ui/{name}"),
                region,
                content,
                self.clock(),
                tags or [],
            )
            self.task_uis[(region, name)] = ui
            return ui

    def get_task_ui(self, region: str, name: str) -> TaskUi:
        with self.lock:
            ui = self.task_uis.get((region, name))
            if ui is None:
                raise A2IError("not_found", f"Human task UI {name} does not exist.")
            return ui

    def delete_task_ui(self, region: str, name: str) -> None:
        with self.lock:
            self.get_task_ui(region, name)
            del self.task_uis[(region, name)]

    def list_task_uis(self, region: str) -> list[TaskUi]:
        with self.lock:
            return [ui for (r, _), ui in self.task_uis.items() if r == region]

    # ---- flow definitions -------------------------------------------------------------------
    def create_flow(self, region: str, params: dict) -> FlowDefinition:
        name = params["FlowDefinitionName"]
        _check_name(name, "FlowDefinitionName")
        config = params.get("HumanLoopConfig")
        if not config:
            raise A2IError(
                "invalid", "HumanLoopConfig is required for a flow definition with a custom task UI."
            )
        output_path = (params.get("OutputConfig") or {}).get("S3OutputPath", "")
        if not re.fullmatch(r"s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?", output_path):
            raise A2IError("invalid", f"OutputConfig.S3OutputPath {output_path!r} is not an s3:// URI.")
        if not re.fullmatch(r"arn:aws[a-z\-]*:iam::\d{12}:role/.+", params.get("RoleArn", "")):
            raise A2IError("invalid", f"RoleArn {params.get('RoleArn')!r} is not an IAM role ARN.")
        if not re.fullmatch(
            r"arn:aws[a-z\-]*:sagemaker:[a-z0-9\-]*:\d{12}:workteam/.+", config["WorkteamArn"]
        ):
            raise A2IError("invalid", f"WorkteamArn {config['WorkteamArn']!r} is not a work team ARN.")
        ui_region, ui_name = _parse_arn(config["HumanTaskUiArn"], "human-task-ui")
        with self.lock:
            if (region, name) in self.flows:
                raise A2IError("in_use", f"Flow definition {name} already exists.")
            ui = self.task_uis.get((ui_region, ui_name))
            if ui is None:
                raise A2IError("invalid", f"Human task UI {config['HumanTaskUiArn']} does not exist.")
            flow = FlowDefinition(
                name=name,
                arn=_arn(region, self.account_id, f"flow-definition/{name}"),
                region=region,
                created=self.clock(),
                role_arn=params["RoleArn"],
                output_path=output_path.rstrip("/"),
                human_loop_config=dict(config),
                ui_content=ui.content,
                activation_config=params.get("HumanLoopActivationConfig"),
                request_source=params.get("HumanLoopRequestSource"),
                kms_key_id=(params.get("OutputConfig") or {}).get("KmsKeyId"),
                tags=params.get("Tags") or [],
            )
            self.flows[(region, name)] = flow
            return flow

    def flow_status(self, flow: FlowDefinition) -> str:
        elapsed = (self.clock() - flow.created).total_seconds()
        return "Active" if elapsed >= FLOW_INIT_SECONDS else "Initializing"

    def get_flow(self, region: str, name: str) -> FlowDefinition:
        with self.lock:
            flow = self.flows.get((region, name))
            if flow is None:
                raise A2IError("not_found", f"Flow definition {name} does not exist.")
            return flow

    def get_flow_by_arn(self, arn: str) -> FlowDefinition:
        region, name = _parse_arn(arn, "flow-definition")
        return self.get_flow(region, name)

    def delete_flow(self, region: str, name: str) -> None:
        with self.lock:
            flow = self.get_flow(region, name)
            active = [
                loop.name
                for loop in self.loops.values()
                if loop.flow is flow and self._refresh(loop).status in ("InProgress", "Stopping")
            ]
            if active:
                raise A2IError(
                    "in_use",
                    f"Flow definition {name} has {len(active)} active human loop(s) ({', '.join(active[:5])}); "
                    "stop them first.",
                )
            del self.flows[(region, name)]

    def list_flows(self, region: str) -> list[FlowDefinition]:
        with self.lock:
            return [f for (r, _), f in self.flows.items() if r == region]

    # ---- human loops ------------------------------------------------------------------------
    def start_loop(
        self,
        region: str,
        name: str,
        flow_arn: str,
        input_content: str,
        data_attributes: dict | None = None,
    ) -> HumanLoop:
        _check_name(name, "HumanLoopName")
        try:
            task_input = json.loads(input_content)
        except (TypeError, ValueError) as exc:
            raise A2IError("invalid", f"HumanLoopInput.InputContent is not valid JSON: {exc}") from exc
        with self.lock:
            try:
                flow = self.get_flow_by_arn(flow_arn)
            except A2IError as exc:
                raise A2IError("invalid", f"FlowDefinitionArn {flow_arn}: {exc.message}") from exc
            if flow.region != region:
                raise A2IError("invalid", f"Flow definition {flow_arn} is not in region {region}.")
            status = self.flow_status(flow)
            if status != "Active":
                raise A2IError("invalid", f"Flow definition {flow.name} is not Active (it is {status}).")
            if (region, name) in self.loops:
                raise A2IError(
                    "conflict",
                    f"A human loop named {name} already exists (human loop names are unique until the "
                    "loop is deleted).",
                )
            loop = HumanLoop(
                name=name,
                arn=_arn(region, self.account_id, f"human-loop/{name}"),
                region=region,
                flow=flow,
                input_content=input_content,
                task_input=task_input,
                created=self.clock(),
                data_attributes=data_attributes,
            )
            self.loops[(region, name)] = loop
            return loop

    def _refresh(self, loop: HumanLoop) -> HumanLoop:
        now = self.clock()
        if loop.status == "Stopping" and loop.stop_requested is not None:
            if (now - loop.stop_requested).total_seconds() >= STOP_SECONDS:
                loop.status = "Stopped"
        elif loop.status == "InProgress":
            lifetime = loop.flow.availability_seconds
            if (now - loop.created).total_seconds() > lifetime:
                loop.status = "Failed"
                loop.failure_code = "TaskExpired"
                loop.failure_reason = (
                    f"The human loop expired: {len(loop.answers)} of {loop.flow.task_count} worker(s) "
                    f"answered within TaskAvailabilityLifetimeInSeconds ({lifetime} s)."
                )
        return loop

    def get_loop(self, region: str, name: str) -> HumanLoop:
        with self.lock:
            loop = self.loops.get((region, name))
            if loop is None:
                raise A2IError("not_found", f"Human loop {name} does not exist.")
            return self._refresh(loop)

    def find_loop(self, name: str) -> HumanLoop:
        """A loop by name in any region (the review page's URLs carry only the name)."""
        with self.lock:
            matches = [self._refresh(loop) for (_, n), loop in self.loops.items() if n == name]
            if not matches:
                raise A2IError("not_found", f"Human loop {name} does not exist.")
            matches.sort(key=lambda loop: loop.status != "InProgress")
            return matches[0]

    def list_loops(
        self,
        region: str,
        flow_arn: str,
        after: dt.datetime | None = None,
        before: dt.datetime | None = None,
        descending: bool = True,
    ) -> list[HumanLoop]:
        with self.lock:
            flow = self.get_flow_by_arn(flow_arn)
            loops = [
                self._refresh(loop)
                for (r, _), loop in self.loops.items()
                if r == region and loop.flow.arn == flow.arn
            ]
        if after is not None:
            loops = [loop for loop in loops if loop.created > after]
        if before is not None:
            loops = [loop for loop in loops if loop.created < before]
        loops.sort(key=lambda loop: (loop.created, loop.name), reverse=descending)
        return loops

    def all_loops(self, status: str | None = None) -> list[HumanLoop]:
        with self.lock:
            loops = [self._refresh(loop) for loop in self.loops.values()]
        if status:
            loops = [loop for loop in loops if loop.status == status]
        loops.sort(key=lambda loop: (loop.created, loop.name))
        return loops

    def stop_loop(self, region: str, name: str) -> None:
        with self.lock:
            loop = self.get_loop(region, name)
            if loop.status in ("Stopping", "Stopped"):
                return
            if loop.status != "InProgress":
                raise A2IError(
                    "invalid", f"Human loop {name} is {loop.status}; only InProgress loops can be stopped."
                )
            loop.status = "Stopping"
            loop.stop_requested = self.clock()

    def delete_loop(self, region: str, name: str) -> None:
        with self.lock:
            loop = self.get_loop(region, name)
            if loop.status in ("InProgress", "Stopping"):
                raise A2IError(
                    "invalid",
                    f"Human loop {name} is {loop.status}; stop it before deleting it "
                    "(only Completed, Stopped and Failed loops can be deleted).",
                )
            del self.loops[(region, name)]

    # ---- workers ------------------------------------------------------------------------------
    def accept(self, loop: HumanLoop, worker_id: str) -> dt.datetime:
        """A worker opened the task: start (or keep) its clock."""
        with self.lock:
            now = self.clock()
            started = loop.accepted.get(worker_id)
            if started is None or (now - started).total_seconds() > loop.flow.time_limit_seconds:
                loop.accepted[worker_id] = now
            return loop.accepted[worker_id]

    def submit(
        self,
        name: str,
        worker_id: str,
        content: dict,
        acceptance_time: dt.datetime | None = None,
    ) -> HumanLoop:
        """Record one worker's answer; with TaskCount answers the loop completes and writes its output."""
        if not isinstance(content, dict):
            raise A2IError("invalid", "The answer content must be a JSON object.")
        if not worker_id:
            raise A2IError("invalid", "A worker id is required.")
        with self.lock:
            loop = self.find_loop(name)
            if loop.status != "InProgress":
                raise A2IError("conflict", f"Human loop {name} is {loop.status}; it takes no more answers.")
            if any(a.worker_id == worker_id for a in loop.answers):
                raise A2IError("conflict", f"Worker {worker_id} already answered human loop {name}.")
            now = self.clock()
            accepted = acceptance_time or loop.accepted.pop(worker_id, None) or now
            limit = loop.flow.time_limit_seconds
            if (now - accepted).total_seconds() > limit:
                raise A2IError(
                    "conflict",
                    f"Worker {worker_id} took longer than TaskTimeLimitInSeconds ({limit} s) on human loop "
                    f"{name}; the task went back to the queue: open it again.",
                )
            loop.answers.append(Answer(worker_id, accepted, now, content))
            if len(loop.answers) < loop.flow.task_count:
                return loop
            uri = self.output_uri(loop)
            body = json.dumps(self.output_document(loop), indent=None).encode()
            try:
                self.write_output(uri, body)
            except Exception as exc:
                loop.status = "Failed"
                loop.failure_code = "OutputWriteFailed"
                loop.failure_reason = f"Could not write the output to {uri}: {exc}"
                raise A2IError("invalid", loop.failure_reason) from exc
            loop.status = "Completed"
            loop.output_s3_uri = uri
            return loop

    @staticmethod
    def output_uri(loop: HumanLoop) -> str:
        stamp = loop.created.astimezone(UTC).strftime("%Y/%m/%d/%H/%M/%S")
        return f"{loop.flow.output_path}/{loop.flow.name}/{stamp}/{loop.name}/output.json"

    def output_document(self, loop: HumanLoop) -> dict:
        doc: dict[str, Any] = {}
        if loop.flow.request_source:
            doc["awsManagedHumanLoopRequestSource"] = loop.flow.request_source.get(
                "AwsManagedHumanLoopRequestSource"
            )
        doc["flowDefinitionArn"] = loop.flow.arn
        doc["humanAnswers"] = [
            {
                "acceptanceTime": iso_ms(a.accepted),
                "answerContent": a.content,
                "submissionTime": iso_ms(a.submitted),
                "timeSpentInSeconds": round((a.submitted - a.accepted).total_seconds(), 3),
                "workerId": a.worker_id,
                "workerMetadata": {
                    "identityData": {
                        "identityProviderType": "Cognito",
                        "issuer": WORKER_ISSUER.format(region=loop.region),
                        "sub": str(uuid.uuid5(uuid.NAMESPACE_URL, f"aws_twin-worker/{a.worker_id}")),
                    }
                },
            }
            for a in loop.answers
        ]
        doc["humanLoopName"] = loop.name
        doc["inputContent"] = loop.task_input
        return doc
