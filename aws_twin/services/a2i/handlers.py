"""A2I operations: human task UIs and flow definitions (``sagemaker`` model) and human loops
(``sagemaker-a2i-runtime``). Both classes share one :class:`A2IEngine` per twin; the runtime class
also serves the review page (:mod:`.web`)."""

from __future__ import annotations

import weakref
from typing import Any

from ...core.errors import AwsError
from ...core.paging import page
from ...core.service import TwinService
from .engine import A2IEngine, A2IError, FlowDefinition, HumanLoop
from .web import ReviewSite

_ENGINES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def engine_for(twin) -> A2IEngine:
    """The A2I engine of a twin (created on first use, shared by both service classes)."""
    engine = _ENGINES.get(twin)
    if engine is None:

        def write_output(uri: str, body: bytes) -> None:
            bucket, _, key = uri[len("s3://") :].partition("/")
            twin.client("s3").put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")

        engine = _ENGINES[twin] = A2IEngine(write_output)
    return engine


def _time_window(items: list, params: dict) -> list:
    after, before = params.get("CreationTimeAfter"), params.get("CreationTimeBefore")
    if after is not None:
        items = [i for i in items if i.created > after]
    if before is not None:
        items = [i for i in items if i.created < before]
    return sorted(
        items,
        key=lambda i: (i.created, i.name),
        reverse=params.get("SortOrder", "Descending") == "Descending",
    )


class A2IService(TwinService):
    """CreateHumanTaskUi ... ListFlowDefinitions, in the ``sagemaker`` model."""

    model = "sagemaker"
    moto_fallthrough = True

    _CODES = {"not_found": "ResourceNotFound", "in_use": "ResourceInUse", "invalid": "ValidationException"}

    def reset(self) -> None:
        self.engine = engine_for(self.twin)
        self.engine.reset()

    def state(self) -> dict[str, Any]:
        return self.engine.state()

    def _error(self, exc: A2IError) -> AwsError:
        return AwsError(self._CODES.get(exc.kind, "ValidationException"), exc.message)

    # ---- human task UIs -----------------------------------------------------------------------
    def create_human_task_ui(self, ctx, params):
        try:
            ui = self.engine.create_task_ui(
                ctx.region, params["HumanTaskUiName"], params["UiTemplate"]["Content"], params.get("Tags")
            )
        except A2IError as exc:
            raise self._error(exc) from exc
        return {"HumanTaskUiArn": ui.arn}

    def describe_human_task_ui(self, ctx, params):
        import hashlib

        try:
            ui = self.engine.get_task_ui(ctx.region, params["HumanTaskUiName"])
        except A2IError as exc:
            raise self._error(exc) from exc
        return {
            "HumanTaskUiArn": ui.arn,
            "HumanTaskUiName": ui.name,
            "HumanTaskUiStatus": "Active",
            "CreationTime": ui.created,
            "UiTemplate": {
                "Url": f"{self.twin.url}/review/ui/{ui.name}",
                "ContentSha256": hashlib.sha256(ui.content.encode()).hexdigest(),
            },
        }

    def delete_human_task_ui(self, ctx, params):
        try:
            self.engine.delete_task_ui(ctx.region, params["HumanTaskUiName"])
        except A2IError as exc:
            raise self._error(exc) from exc
        return {}

    def list_human_task_uis(self, ctx, params):
        items, more = page(
            _time_window(self.engine.list_task_uis(ctx.region), params), params, default=100, maximum=100
        )
        out: dict[str, Any] = {
            "HumanTaskUiSummaries": [
                {"HumanTaskUiName": u.name, "HumanTaskUiArn": u.arn, "CreationTime": u.created} for u in items
            ]
        }
        return out | more

    # ---- flow definitions ---------------------------------------------------------------------
    def create_flow_definition(self, ctx, params):
        try:
            flow = self.engine.create_flow(ctx.region, params)
        except A2IError as exc:
            raise self._error(exc) from exc
        return {"FlowDefinitionArn": flow.arn}

    def _describe_flow(self, flow: FlowDefinition) -> dict:
        out: dict[str, Any] = {
            "FlowDefinitionArn": flow.arn,
            "FlowDefinitionName": flow.name,
            "FlowDefinitionStatus": self.engine.flow_status(flow),
            "CreationTime": flow.created,
            "HumanLoopConfig": flow.human_loop_config,
            "OutputConfig": {"S3OutputPath": flow.output_path}
            | ({"KmsKeyId": flow.kms_key_id} if flow.kms_key_id else {}),
            "RoleArn": flow.role_arn,
        }
        if flow.activation_config:
            out["HumanLoopActivationConfig"] = flow.activation_config
        if flow.request_source:
            out["HumanLoopRequestSource"] = flow.request_source
        return out

    def describe_flow_definition(self, ctx, params):
        try:
            return self._describe_flow(self.engine.get_flow(ctx.region, params["FlowDefinitionName"]))
        except A2IError as exc:
            raise self._error(exc) from exc

    def delete_flow_definition(self, ctx, params):
        try:
            self.engine.delete_flow(ctx.region, params["FlowDefinitionName"])
        except A2IError as exc:
            raise self._error(exc) from exc
        return {}

    def list_flow_definitions(self, ctx, params):
        items, more = page(
            _time_window(self.engine.list_flows(ctx.region), params), params, default=100, maximum=100
        )
        out: dict[str, Any] = {
            "FlowDefinitionSummaries": [
                {
                    "FlowDefinitionName": f.name,
                    "FlowDefinitionArn": f.arn,
                    "FlowDefinitionStatus": self.engine.flow_status(f),
                    "CreationTime": f.created,
                }
                for f in items
            ]
        }
        return out | more

    # ---- work teams ---------------------------------------------------------------------------
    def describe_workteam(self, ctx, params):
        """Every private work team exists on the twin (flow definitions accept any work team ARN);
        its worker portal ``SubDomain`` has the shape of A2I's
        (``<id>.labeling.<region>.sagemaker.aws``), stable for the team's name."""
        import hashlib

        name = params["WorkteamName"]
        if not isinstance(name, str) or not 1 <= len(name) <= 63:
            raise AwsError("ValidationException", f"WorkteamName {name!r} is not valid.")
        portal = hashlib.sha256(f"{ctx.account_id}/{ctx.region}/{name}".encode()).hexdigest()[:12]
        return {
            "Workteam": {
                "WorkteamName": name,
                "WorkteamArn": ctx.arn(f"workteam/private-crowd/{name}", "sagemaker"),
                "WorkforceArn": ctx.arn("workforce/default", "sagemaker"),
                "Description": f"private work team {name} (aws_twin)",
                "MemberDefinitions": [
                    {
                        "CognitoMemberDefinition": {
                            "UserPool": f"{ctx.region}_TwinPool",
                            "UserGroup": name,
                            "ClientId": portal,
                        }
                    }
                ],
                "SubDomain": f"{portal}.labeling.{ctx.region}.sagemaker.aws",
                "CreateDate": self.engine.started,
                "LastUpdatedDate": self.engine.started,
            }
        }


class A2IRuntimeService(TwinService):
    """StartHumanLoop ... DeleteHumanLoop (``sagemaker-a2i-runtime``) and the review page."""

    model = "sagemaker-a2i-runtime"

    _CODES = {
        "not_found": "ResourceNotFoundException",
        "conflict": "ConflictException",
        "in_use": "ConflictException",
        "invalid": "ValidationException",
    }
    _STATUS = {"ResourceNotFoundException": 404, "ConflictException": 409, "ValidationException": 400}

    def reset(self) -> None:
        self.engine = engine_for(self.twin)
        self.engine.reset()

    def web_routes(self) -> list:
        return ReviewSite(self.twin, self.engine).rules()

    def _error(self, exc: A2IError) -> AwsError:
        code = self._CODES.get(exc.kind, "ValidationException")
        return AwsError(code, exc.message, self._STATUS[code])

    def start_human_loop(self, ctx, params):
        try:
            loop = self.engine.start_loop(
                ctx.region,
                params["HumanLoopName"],
                params["FlowDefinitionArn"],
                params["HumanLoopInput"]["InputContent"],
                params.get("DataAttributes"),
            )
        except A2IError as exc:
            raise self._error(exc) from exc
        return {"HumanLoopArn": loop.arn}

    def describe_human_loop(self, ctx, params):
        try:
            loop = self.engine.get_loop(ctx.region, params["HumanLoopName"])
        except A2IError as exc:
            raise self._error(exc) from exc
        out: dict[str, Any] = {
            "CreationTime": loop.created,
            "HumanLoopStatus": loop.status,
            "HumanLoopName": loop.name,
            "HumanLoopArn": loop.arn,
            "FlowDefinitionArn": loop.flow.arn,
        }
        if loop.failure_reason:
            out["FailureReason"] = loop.failure_reason
            out["FailureCode"] = loop.failure_code
        if loop.status == "Completed" and loop.output_s3_uri:
            out["HumanLoopOutput"] = {"OutputS3Uri": loop.output_s3_uri}
        return out

    def list_human_loops(self, ctx, params):
        try:
            loops: list[HumanLoop] = self.engine.list_loops(
                ctx.region,
                params["FlowDefinitionArn"],
                params.get("CreationTimeAfter"),
                params.get("CreationTimeBefore"),
                descending=params.get("SortOrder", "Descending") == "Descending",
            )
        except A2IError as exc:
            if exc.kind == "invalid":  # a malformed ARN
                raise self._error(exc) from exc
            raise AwsError("ResourceNotFoundException", exc.message, 404) from exc
        items, more = page(loops, params, default=100, maximum=100)
        out: dict[str, Any] = {
            "HumanLoopSummaries": [
                {
                    "HumanLoopName": loop.name,
                    "HumanLoopStatus": loop.status,
                    "CreationTime": loop.created,
                    "FlowDefinitionArn": loop.flow.arn,
                }
                | ({"FailureReason": loop.failure_reason} if loop.failure_reason else {})
                for loop in items
            ]
        }
        return out | more

    def stop_human_loop(self, ctx, params):
        try:
            self.engine.stop_loop(ctx.region, params["HumanLoopName"])
        except A2IError as exc:
            raise self._error(exc) from exc
        return {}

    def delete_human_loop(self, ctx, params):
        try:
            self.engine.delete_loop(ctx.region, params["HumanLoopName"])
        except A2IError as exc:
            raise self._error(exc) from exc
        return {}
