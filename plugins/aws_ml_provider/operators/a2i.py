"""Amazon Augmented AI (A2I) operators: worker task UI and flow definition (created or reused, safe
on every run; see ``hooks.a2i`` for the ``on_change`` policy) and human loops started under
deterministic names (a retried task attaches to the loop its first try started)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.amazon.aws.utils.waiter_with_logging import wait
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

from ..hooks.a2i import A2IHook, A2IResourceConflict, A2IRuntimeHook, flow_definition_name_from_arn
from ..links import persist_link
from ..links.a2i import (
    A2IFlowDefinitionLink,
    A2IHumanLoopLink,
    A2IHumanTaskUiLink,
    A2IReviewPageLink,
    review_page_url,
)
from . import run_identity

if TYPE_CHECKING:
    from airflow.sdk import Context


class A2ICreateHumanTaskUiOperator(AwsBaseOperator[A2IHook]):
    """Create the A2I worker task UI, or reuse it when it exists with the same template.

    The template is Liquid/crowd-html (``{{ task.input... }}``), so it is not a Jinja template
    field: pass its text as ``ui_template`` or a file to read at run time as ``ui_template_path``.

    :param human_task_ui_name: the name (templated)
    :param ui_template: the template text (not templated)
    :param ui_template_path: a file holding the template, read when the task runs; a relative
        path is tried as given, then beside the DAG file (templated)
    :param on_change: ``version`` (default: create ``<name>-<sha8>`` when the template differs) or
        ``fail``
    :return: the HumanTaskUiArn (str)
    """

    aws_hook_class = A2IHook
    template_fields: Sequence[str] = aws_template_fields(
        "human_task_ui_name", "ui_template_path", "on_change"
    )
    operator_extra_links = (A2IHumanTaskUiLink(),)

    def __init__(
        self,
        *,
        human_task_ui_name: str,
        ui_template: str | None = None,
        ui_template_path: str | None = None,
        on_change: str = "version",
        tags: list[dict] | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if (ui_template is None) == (ui_template_path is None):
            given = "both" if ui_template is not None else "neither"
            raise ValueError(
                f"{self.task_id}: pass exactly one of ui_template and ui_template_path, got {given}"
            )
        self.human_task_ui_name = human_task_ui_name
        self.ui_template = ui_template
        self.ui_template_path = ui_template_path
        self.on_change = on_change
        self.tags = tags

    def execute(self, context: Context) -> str:
        template = self.ui_template if self.ui_template is not None else self._read_template()
        try:
            result = self.hook.ensure_human_task_ui(
                self.human_task_ui_name, template, on_change=self.on_change, tags=self.tags
            )
        except A2IResourceConflict as exc:
            raise AirflowFailException(str(exc)) from exc
        persist_link(A2IHumanTaskUiLink, context, self, human_task_ui_name=result["name"])
        return result["arn"]

    def _read_template(self) -> str:
        """The template file; a relative path is tried as given, then beside the DAG file."""
        path = Path(str(self.ui_template_path))
        candidates = [path]
        if not path.is_absolute() and self.has_dag() and self.dag.fileloc:
            candidates.append(Path(self.dag.fileloc).parent / path)
        for candidate in candidates:
            if candidate.is_file():
                try:
                    return candidate.read_text(encoding="utf-8")
                except OSError as exc:
                    raise AirflowFailException(f"cannot read task UI template {candidate}: {exc}") from exc
        raise AirflowFailException(
            f"task UI template {self.ui_template_path} not found (looked at {', '.join(map(str, candidates))})"
        )


class A2ICreateFlowDefinitionOperator(AwsBaseOperator[A2IHook]):
    """Create the A2I flow definition (human review workflow) for a work team, or reuse it when it
    exists with the same configuration; wait until it is Active.

    :param flow_definition_name: the name (templated)
    :param human_task_ui_arn: the worker task UI (templated)
    :param workteam_arn: the private work team (templated)
    :param role_arn: the execution role (templated)
    :param output_s3_uri: where A2I writes loop outputs (templated)
    :param task_title: / :param task_description: shown to workers (templated)
    :param task_count: workers per loop (default: 1)
    :param task_time_limit_in_seconds: time a worker has for a task (default: 3600)
    :param task_availability_lifetime_in_seconds: time a task stays available (default: 10 days)
    :param on_change: ``version`` (default) or ``fail`` when the existing one differs
    :param wait_for_active: wait with the ``flow_definition_active`` waiter (default: True)
    :return: the FlowDefinitionArn (str)
    """

    aws_hook_class = A2IHook
    template_fields: Sequence[str] = aws_template_fields(
        "flow_definition_name",
        "human_task_ui_arn",
        "workteam_arn",
        "role_arn",
        "output_s3_uri",
        "task_title",
        "task_description",
        "on_change",
    )
    operator_extra_links = (A2IFlowDefinitionLink(),)

    def __init__(
        self,
        *,
        flow_definition_name: str,
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
        on_change: str = "version",
        tags: list[dict] | None = None,
        wait_for_active: bool = True,
        waiter_delay: int = 5,
        waiter_max_attempts: int = 60,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.flow_definition_name = flow_definition_name
        self.human_task_ui_arn = human_task_ui_arn
        self.workteam_arn = workteam_arn
        self.role_arn = role_arn
        self.output_s3_uri = output_s3_uri
        self.task_title = task_title
        self.task_description = task_description
        self.task_count = task_count
        self.task_time_limit_in_seconds = task_time_limit_in_seconds
        self.task_availability_lifetime_in_seconds = task_availability_lifetime_in_seconds
        self.task_keywords = task_keywords
        self.on_change = on_change
        self.tags = tags
        self.wait_for_active = wait_for_active
        self.waiter_delay = waiter_delay
        self.waiter_max_attempts = waiter_max_attempts

    def execute(self, context: Context) -> str:
        request = A2IHook.flow_definition_request(
            human_task_ui_arn=self.human_task_ui_arn,
            workteam_arn=self.workteam_arn,
            role_arn=self.role_arn,
            output_s3_uri=self.output_s3_uri,
            task_title=self.task_title,
            task_description=self.task_description,
            task_count=self.task_count,
            task_time_limit_in_seconds=self.task_time_limit_in_seconds,
            task_availability_lifetime_in_seconds=self.task_availability_lifetime_in_seconds,
            task_keywords=self.task_keywords,
        )
        try:
            result = self.hook.ensure_flow_definition(
                self.flow_definition_name, request, on_change=self.on_change, tags=self.tags
            )
        except A2IResourceConflict as exc:
            raise AirflowFailException(str(exc)) from exc
        persist_link(A2IFlowDefinitionLink, context, self, flow_definition_name=result["name"])
        if self.wait_for_active and result.get("status") != "Active":
            wait(
                waiter=self.hook.get_waiter("flow_definition_active"),
                waiter_delay=self.waiter_delay,
                waiter_max_attempts=self.waiter_max_attempts,
                args={"FlowDefinitionName": result["name"]},
                failure_message=f"A2I flow definition {result['name']} did not become Active",
                status_message=f"Status of A2I flow definition {result['name']} is",
                status_args=["FlowDefinitionStatus", "FailureReason"],
            )
        return result["arn"]


class A2IStartHumanLoopOperator(AwsBaseOperator[A2IRuntimeHook]):
    """Start a human loop for one document, under a deterministic name.

    The name is ``<slug of document_id>-<20 hex of SHA-256(document_id, flow definition, DAG id,
    run id, task id)>`` (at most 63 chars of ``[a-z0-9-]``), unless ``human_loop_name`` is given.
    When A2I answers ConflictException (the loop exists: a retried task), the existing loop is
    described and returned, so no second loop is created.

    :param flow_definition_arn: the flow definition (templated)
    :param document_id: what identifies the document, e.g. its S3 URI (templated)
    :param human_loop_input: the InputContent the task UI renders, a dict (templated)
    :param human_loop_name: override the derived name (templated)
    :param content_classifiers: DataAttributes.ContentClassifiers (e.g.
        ``["FreeOfPersonallyIdentifiableInformation"]``)
    :return: ``{"human_loop_name", "human_loop_arn", "status", "document_id", "flow_definition_arn"}``
    """

    aws_hook_class = A2IRuntimeHook
    template_fields: Sequence[str] = aws_template_fields(
        "flow_definition_arn", "document_id", "human_loop_input", "human_loop_name"
    )
    template_fields_renderers: ClassVar[dict] = {"human_loop_input": "json"}
    operator_extra_links = (A2IHumanLoopLink(), A2IFlowDefinitionLink(), A2IReviewPageLink())

    def __init__(
        self,
        *,
        flow_definition_arn: str,
        document_id: str,
        human_loop_input: dict[str, Any] | str,
        human_loop_name: str | None = None,
        content_classifiers: list[str] | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.flow_definition_arn = flow_definition_arn
        self.document_id = document_id
        self.human_loop_input = human_loop_input
        self.human_loop_name = human_loop_name
        self.content_classifiers = content_classifiers

    def loop_name(self, context: Context) -> str:
        if self.human_loop_name:
            return self.human_loop_name
        dag_id, run_id, task_id = run_identity(context, self)
        return A2IRuntimeHook.human_loop_name(
            str(self.document_id),
            flow_definition_name_from_arn(self.flow_definition_arn),
            dag_id,
            run_id,
            task_id,
        )

    def execute(self, context: Context) -> dict[str, Any]:
        if not self.document_id:
            raise AirflowFailException(f"{self.task_id}: document_id is empty")
        name = self.loop_name(context)
        try:
            result = self.hook.start_human_loop(
                name,
                self.flow_definition_arn,
                self.human_loop_input,
                content_classifiers=self.content_classifiers,
            )
        except A2IResourceConflict as exc:
            raise AirflowException(f"document {self.document_id}: {exc}") from exc
        flow_name = flow_definition_name_from_arn(self.flow_definition_arn)
        persist_link(A2IHumanLoopLink, context, self, flow_definition_name=flow_name, human_loop_name=name)
        persist_link(A2IFlowDefinitionLink, context, self, flow_definition_name=flow_name)
        persist_link(A2IReviewPageLink, context, self, review_url=review_page_url(self, [name], flow_name))
        return {
            "human_loop_name": result["human_loop_name"],
            "human_loop_arn": result["human_loop_arn"],
            "status": result["status"],
            "document_id": str(self.document_id),
            "flow_definition_arn": self.flow_definition_arn,
        }
