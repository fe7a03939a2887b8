"""Amazon Augmented AI (A2I) hooks.

- :class:`A2IHook` (boto3 ``sagemaker`` client): worker task UIs and flow definitions, created or
  reused idempotently (safe to run on every DAG run).
- :class:`A2IRuntimeHook` (boto3 ``sagemaker-a2i-runtime`` client): human loops, started under a
  deterministic name (a retried task attaches to its loop), described, and their output read.

Create-or-reuse policy (``on_change``), for task UIs and flow definitions alike: describe the name
first; create it when absent; reuse it when its content (task UI: SHA-256 of the template; flow
definition: task UI, work team, role, output path, title, description, task count and time limits)
is what was asked for. When it differs, ``on_change="version"`` (default) creates (or reuses) the
name suffixed with the first 8 hex characters of the content's SHA-256, e.g. ``receipt-review-1a2b3c4d``,
and logs a warning: A2I resources are immutable, in-flight loops keep the old one, and the same
content always maps to the same name, so re-runs stay idempotent. ``on_change="fail"`` raises an
error that names the resource and what differs.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from botocore.exceptions import ClientError

from ..utils import slug, stable_hash, versioned_name
from ..utils.errors import error_code, error_message
from . import AwsMlHookMixin

ON_CHANGE = ("version", "fail")
#: human loop states
LOOP_DONE = "Completed"
LOOP_FAILED_STATES = ("Failed", "Stopped")
LOOP_RUNNING_STATES = ("InProgress", "Stopping")


class A2IResourceConflict(ValueError):
    """An existing task UI / flow definition / human loop differs from what was asked for."""


def flow_definition_name_from_arn(arn: str) -> str:
    """``arn:aws:sagemaker:...:flow-definition/NAME`` -> ``NAME`` (a bare name is returned as is)."""
    return arn.rsplit("/", 1)[-1] if arn else arn


def human_loop_name(document_id: str, *run_parts: object, prefix: str | None = None) -> str:
    """A deterministic human loop name for a document in a run, within A2I's 63-char limit and
    pattern ``^[a-z0-9](-*[a-z0-9])*$``: ``[prefix-]<slug of document id>-<20 hex of SHA-256>``.

    The hash covers the full document id and ``run_parts`` (e.g. flow definition, DAG id, run id,
    task id), so two documents whose slugs collide still get different names.
    """
    digest = stable_hash(document_id, *run_parts, length=20)
    head = slug(f"{prefix}-{document_id}" if prefix else document_id, 63 - len(digest) - 1)
    return f"{head}-{digest}" if head else f"loop-{digest}"


class A2IHook(AwsMlHookMixin, AwsBaseHook):
    """A2I resources that live in the SageMaker API (boto3 ``sagemaker`` client).

    Custom waiters (``waiters/a2i.json``): ``flow_definition_active``, ``human_task_ui_active``.
    """

    waiter_file = "a2i"

    def __init__(self, *args, **kwargs) -> None:
        kwargs["client_type"] = "sagemaker"
        super().__init__(*args, **kwargs)

    # ---- task UIs -----------------------------------------------------------------------------
    def describe_human_task_ui(self, name: str) -> dict[str, Any] | None:
        try:
            return self.conn.describe_human_task_ui(HumanTaskUiName=name)
        except ClientError as err:
            if error_code(err) in ("ResourceNotFound", "ResourceNotFoundException"):
                return None
            raise

    def _template_sha256(self, described: dict[str, Any]) -> str | None:
        ui = described.get("UiTemplate") or {}
        if ui.get("ContentSha256"):
            return ui["ContentSha256"].lower()
        if ui.get("Url"):  # no checksum: fetch the template itself (a presigned URL)
            import urllib.request

            with urllib.request.urlopen(ui["Url"], timeout=30) as resp:  # noqa: S310
                return hashlib.sha256(resp.read()).hexdigest()
        return None

    def ensure_human_task_ui(
        self, name: str, ui_template: str, *, on_change: str = "version", tags: list[dict] | None = None
    ) -> dict[str, Any]:
        """Create the worker task UI or reuse an identical one; see the module doc for ``on_change``.

        :return: ``{"name", "arn", "created"}``
        """
        if on_change not in ON_CHANGE:
            raise ValueError(
                f"worker task UI {name!r}: on_change must be one of {ON_CHANGE}, got {on_change!r}"
            )
        wanted = hashlib.sha256(ui_template.encode()).hexdigest()
        described = self.describe_human_task_ui(name)
        if described is None:
            return self._create_human_task_ui(name, ui_template, tags)
        current = self._template_sha256(described)
        if current == wanted:
            self.log.info("Reusing worker task UI %s (template unchanged)", name)
            return {"name": name, "arn": described["HumanTaskUiArn"], "created": False}
        message = (
            f"worker task UI {name!r} exists with a different template "
            f"(existing sha256 {current}, wanted {wanted})"
        )
        if on_change == "fail":
            raise A2IResourceConflict(message + "; delete it or use another name")
        new_name = versioned_name(name, wanted)
        if new_name == name:
            raise A2IResourceConflict(message)
        self.log.warning("%s: using the versioned name %s", message, new_name)
        return self.ensure_human_task_ui(new_name, ui_template, on_change="fail", tags=tags)

    def _create_human_task_ui(self, name: str, ui_template: str, tags: list[dict] | None) -> dict[str, Any]:
        params: dict[str, Any] = {"HumanTaskUiName": name, "UiTemplate": {"Content": ui_template}}
        if tags:
            params["Tags"] = tags
        try:
            arn = self.conn.create_human_task_ui(**params)["HumanTaskUiArn"]
        except ClientError as err:
            if error_code(err) != "ResourceInUse":
                raise
            # created meanwhile by a concurrent task: check it is ours
            described = self.describe_human_task_ui(name) or {}
            if self._template_sha256(described) != hashlib.sha256(ui_template.encode()).hexdigest():
                raise A2IResourceConflict(
                    f"worker task UI {name!r} was created concurrently with a different template"
                ) from err
            return {"name": name, "arn": described["HumanTaskUiArn"], "created": False}
        self.log.info("Created worker task UI %s: %s", name, arn)
        return {"name": name, "arn": arn, "created": True}

    # ---- flow definitions -----------------------------------------------------------------------
    def describe_flow_definition(self, name: str) -> dict[str, Any] | None:
        try:
            return self.conn.describe_flow_definition(FlowDefinitionName=name)
        except ClientError as err:
            if error_code(err) in ("ResourceNotFound", "ResourceNotFoundException"):
                return None
            raise

    def worker_portal_url(self, flow_definition_name: str) -> str | None:
        """``https://<SubDomain>`` of the work team of a flow definition (``DescribeWorkteam``):
        where its private workers sign in and find their tasks; None when unknown."""
        flow = self.describe_flow_definition(flow_definition_name) or {}
        team_arn = flow.get("HumanLoopConfig", {}).get("WorkteamArn", "")
        if ":workteam/" not in team_arn:
            return None  # a public or vendor work team has no portal of the account
        team = self.conn.describe_workteam(WorkteamName=team_arn.rsplit("/", 1)[-1]).get("Workteam", {})
        subdomain = team.get("SubDomain")
        return f"https://{subdomain}" if subdomain else None

    @staticmethod
    def flow_definition_request(
        *,
        human_task_ui_arn: str,
        workteam_arn: str,
        role_arn: str,
        output_s3_uri: str,
        task_title: str,
        task_description: str,
        task_count: int = 1,
        task_time_limit_in_seconds: int = 3600,
        task_availability_lifetime_in_seconds: int = 864000,
        task_keywords: list[str] | None = None,
    ) -> dict[str, Any]:
        """The CreateFlowDefinition arguments (less the name) for a work-team flow definition."""
        loop_config: dict[str, Any] = {
            "WorkteamArn": workteam_arn,
            "HumanTaskUiArn": human_task_ui_arn,
            "TaskTitle": task_title,
            "TaskDescription": task_description,
            "TaskCount": int(task_count),
            "TaskTimeLimitInSeconds": int(task_time_limit_in_seconds),
            "TaskAvailabilityLifetimeInSeconds": int(task_availability_lifetime_in_seconds),
        }
        if task_keywords:
            loop_config["TaskKeywords"] = list(task_keywords)
        return {
            "HumanLoopConfig": loop_config,
            "OutputConfig": {"S3OutputPath": output_s3_uri},
            "RoleArn": role_arn,
        }

    @staticmethod
    def _flow_fingerprint(request: dict[str, Any]) -> dict[str, Any]:
        loop = request.get("HumanLoopConfig") or {}
        keys = (
            "WorkteamArn",
            "HumanTaskUiArn",
            "TaskTitle",
            "TaskDescription",
            "TaskCount",
            "TaskTimeLimitInSeconds",
            "TaskAvailabilityLifetimeInSeconds",
        )
        out = {k: loop.get(k) for k in keys}
        out["S3OutputPath"] = ((request.get("OutputConfig") or {}).get("S3OutputPath") or "").rstrip("/")
        out["RoleArn"] = request.get("RoleArn")
        return out

    def ensure_flow_definition(
        self,
        name: str,
        request: dict[str, Any],
        *,
        on_change: str = "version",
        tags: list[dict] | None = None,
    ) -> dict[str, Any]:
        """Create the flow definition or reuse an identical one; see the module doc for ``on_change``.

        :param request: CreateFlowDefinition arguments less the name (``flow_definition_request``)
        :return: ``{"name", "arn", "created", "status"}``
        """
        if on_change not in ON_CHANGE:
            raise ValueError(
                f"flow definition {name!r}: on_change must be one of {ON_CHANGE}, got {on_change!r}"
            )
        wanted = self._flow_fingerprint(request)
        digest = hashlib.sha256(json.dumps(wanted, sort_keys=True).encode()).hexdigest()
        described = self.describe_flow_definition(name)
        if described is None:
            return self._create_flow_definition(name, request, wanted, tags)
        current = self._flow_fingerprint(described)
        if described.get("FlowDefinitionStatus") == "Failed":
            raise A2IResourceConflict(
                f"flow definition {name!r} exists but is Failed "
                f"({described.get('FailureReason') or 'no reason given'}); delete it or use another name"
            )
        if current == wanted:
            self.log.info("Reusing flow definition %s (configuration unchanged)", name)
            return {
                "name": name,
                "arn": described["FlowDefinitionArn"],
                "created": False,
                "status": described.get("FlowDefinitionStatus"),
            }
        differences = {k: (current.get(k), v) for k, v in wanted.items() if current.get(k) != v}
        message = f"flow definition {name!r} exists with a different configuration: " + ", ".join(
            f"{k} is {old!r}, wanted {new!r}" for k, (old, new) in differences.items()
        )
        if on_change == "fail":
            raise A2IResourceConflict(message + "; delete it or use another name")
        new_name = versioned_name(name, digest)
        if new_name == name:
            raise A2IResourceConflict(message)
        self.log.warning("%s: using the versioned name %s", message, new_name)
        return self.ensure_flow_definition(new_name, request, on_change="fail", tags=tags)

    def _create_flow_definition(
        self, name: str, request: dict[str, Any], wanted: dict[str, Any], tags: list[dict] | None
    ) -> dict[str, Any]:
        params = {"FlowDefinitionName": name, **request}
        if tags:
            params["Tags"] = tags
        try:
            arn = self.conn.create_flow_definition(**params)["FlowDefinitionArn"]
        except ClientError as err:
            if error_code(err) != "ResourceInUse":
                raise
            described = self.describe_flow_definition(name) or {}
            if self._flow_fingerprint(described) != wanted:
                raise A2IResourceConflict(
                    f"flow definition {name!r} was created concurrently with a different configuration"
                ) from err
            return {
                "name": name,
                "arn": described["FlowDefinitionArn"],
                "created": False,
                "status": described.get("FlowDefinitionStatus"),
            }
        self.log.info("Created flow definition %s: %s", name, arn)
        return {"name": name, "arn": arn, "created": True, "status": "Initializing"}


class A2IRuntimeHook(AwsMlHookMixin, AwsBaseHook):
    """Human loops (boto3 ``sagemaker-a2i-runtime`` client).

    Custom waiter (``waiters/a2i.json``): ``human_loop_completed`` (Completed -> success; Failed,
    Stopped, ResourceNotFoundException -> failure; InProgress, Stopping -> retry).
    """

    waiter_file = "a2i"

    def __init__(self, *args, **kwargs) -> None:
        kwargs["client_type"] = "sagemaker-a2i-runtime"
        super().__init__(*args, **kwargs)

    human_loop_name = staticmethod(human_loop_name)

    def describe_human_loop(self, name: str) -> dict[str, Any]:
        response = self.conn.describe_human_loop(HumanLoopName=name)
        response.pop("ResponseMetadata", None)
        return response

    def start_human_loop(
        self,
        name: str,
        flow_definition_arn: str,
        input_content: dict[str, Any] | str,
        *,
        content_classifiers: list[str] | None = None,
    ) -> dict[str, Any]:
        """Start a human loop, or attach to the one of that name (ConflictException) when it was
        started for the same flow definition: a retried task creates no second loop.

        :return: ``{"human_loop_name", "human_loop_arn", "status", "created"}``
        """
        content = input_content if isinstance(input_content, str) else json.dumps(input_content)
        params: dict[str, Any] = {
            "HumanLoopName": name,
            "FlowDefinitionArn": flow_definition_arn,
            "HumanLoopInput": {"InputContent": content},
        }
        if content_classifiers:
            params["DataAttributes"] = {"ContentClassifiers": list(content_classifiers)}
        try:
            arn = self.conn.start_human_loop(**params)["HumanLoopArn"]
        except ClientError as err:
            if error_code(err) != "ConflictException":
                raise
            existing = self.describe_human_loop(name)
            if existing.get("FlowDefinitionArn") and existing["FlowDefinitionArn"] != flow_definition_arn:
                raise A2IResourceConflict(
                    f"human loop {name!r} exists for flow definition {existing['FlowDefinitionArn']}, "
                    f"not {flow_definition_arn}"
                ) from err
            self.log.info(
                "Human loop %s already exists (%s): attaching to it", name, existing.get("HumanLoopStatus")
            )
            return {
                "human_loop_name": name,
                "human_loop_arn": existing["HumanLoopArn"],
                "status": existing.get("HumanLoopStatus"),
                "created": False,
            }
        self.log.info("Started human loop %s: %s", name, arn)
        return {"human_loop_name": name, "human_loop_arn": arn, "status": "InProgress", "created": True}

    def human_loop_state(self, name: str) -> dict[str, Any]:
        """``{"human_loop_name", "status", "output_s3_uri", "failure_reason", "failure_code"}``;
        a loop that does not exist (any more) is reported with status ``NotFound``."""
        try:
            described = self.describe_human_loop(name)
        except ClientError as err:
            if error_code(err) != "ResourceNotFoundException":
                raise
            return loop_state(
                name,
                "NotFound",
                failure_reason=error_message(err) or "human loop not found",
                failure_code="ResourceNotFoundException",
            )
        return loop_state_from_description(name, described)

    def read_output(self, output_s3_uri: str) -> dict[str, Any]:
        """The A2I output JSON of a completed loop (see ``utils.a2i_output``)."""
        from ..utils.a2i_output import read_human_loop_output

        return read_human_loop_output(self.s3_client, output_s3_uri)


def loop_state(
    name: str,
    status: str | None,
    *,
    output_s3_uri: str | None = None,
    failure_reason: str | None = None,
    failure_code: str | None = None,
) -> dict[str, Any]:
    """The provider's JSON summary of one human loop (hook, sensor, triggers and XCom share it)."""
    return {
        "human_loop_name": name,
        "status": status,
        "output_s3_uri": output_s3_uri,
        "failure_reason": failure_reason,
        "failure_code": failure_code,
    }


def loop_state_from_description(name: str, described: dict[str, Any]) -> dict[str, Any]:
    """:func:`loop_state` of a DescribeHumanLoop response."""
    return loop_state(
        described.get("HumanLoopName") or name,
        described.get("HumanLoopStatus"),
        output_s3_uri=(described.get("HumanLoopOutput") or {}).get("OutputS3Uri"),
        failure_reason=described.get("FailureReason"),
        failure_code=described.get("FailureCode"),
    )
