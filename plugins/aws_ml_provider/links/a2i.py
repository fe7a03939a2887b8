"""Console links for Amazon Augmented AI (A2I)."""

from __future__ import annotations

from airflow.providers.amazon.aws.links.base_aws import BASE_AWS_CONSOLE_LINK, BaseAwsLink

A2I_CONSOLE = BASE_AWS_CONSOLE_LINK + "/a2i/home?region={region_name}#"


class A2IFlowDefinitionLink(BaseAwsLink):
    """Link to an A2I human review workflow (flow definition)."""

    name = "A2I Human Review Workflow"
    key = "a2i_flow_definition"
    format_str = A2I_CONSOLE + "/human-review-workflows/{flow_definition_name}"


class A2IHumanLoopLink(BaseAwsLink):
    """Link to one human loop of a human review workflow."""

    name = "A2I Human Loop"
    key = "a2i_human_loop"
    format_str = A2I_CONSOLE + "/human-review-workflows/{flow_definition_name}/human-loops/{human_loop_name}"


class A2IHumanTaskUiLink(BaseAwsLink):
    """Link to an A2I worker task template (human task UI)."""

    name = "A2I Worker Task Template"
    key = "a2i_human_task_ui"
    format_str = A2I_CONSOLE + "/worker-task-templates/{human_task_ui_name}"
