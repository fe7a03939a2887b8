"""Links for Amazon Augmented AI (A2I): the console pages of its resources and, for a task that
waits for reviewers, the page where a reviewer does the work (:class:`A2IReviewPageLink`)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlencode

from airflow.providers.amazon.aws.links.base_aws import BASE_AWS_CONSOLE_LINK, BaseAwsLink

A2I_CONSOLE = BASE_AWS_CONSOLE_LINK + "/a2i/home?region={region_name}#"
#: the twin's URL as the reviewer's browser reaches it, when it differs from the connection's
#: endpoint_url (docker compose: http://aws-twin:4566 for Airflow, http://localhost:4566 for you)
TWIN_PUBLIC_URL_ENV = "AWS_TWIN_PUBLIC_URL"
#: the twin's review token; offline only (``make up`` and docker compose set it for Airflow too)
TWIN_REVIEW_TOKEN_ENV = "AWS_TWIN_REVIEW_TOKEN"


class A2IFlowDefinitionLink(BaseAwsLink):
    """Link to an A2I human review workflow (flow definition)."""

    name = "A2I Human Review Workflow"
    key = "a2i_flow_definition"
    format_str = A2I_CONSOLE + "/human-review-workflows/{flow_definition_name}"


class A2IHumanLoopLink(BaseAwsLink):
    """Link to one human loop of a human review workflow; without a loop name (a task that waits
    for many loops), to the workflow, whose page lists its loops."""

    name = "A2I Human Loop"
    key = "a2i_human_loop"
    format_str = A2I_CONSOLE + "/human-review-workflows/{flow_definition_name}/human-loops/{human_loop_name}"

    def format_link(self, **kwargs) -> str:
        if not kwargs.get("human_loop_name"):
            return A2IFlowDefinitionLink().format_link(**kwargs)
        return super().format_link(**kwargs)


class A2IHumanTaskUiLink(BaseAwsLink):
    """Link to an A2I worker task template (human task UI)."""

    name = "A2I Worker Task Template"
    key = "a2i_human_task_ui"
    format_str = A2I_CONSOLE + "/worker-task-templates/{human_task_ui_name}"


class A2IReviewPageLink(BaseAwsLink):
    """Where a reviewer works on the task's human loops: the private work team's worker portal
    (``https://<SubDomain>`` of ``DescribeWorkteam``) on AWS, else the A2I console; against
    aws_twin (the connection has an ``endpoint_url``) the twin's review page of the loop, or its
    task list of the flow definition when the task waits for many loops."""

    name = "A2I Review Page"
    key = "a2i_review_page"
    format_str = "{review_url}"


def twin_review_url(
    endpoint_url: str,
    loop_names: Sequence[str],
    flow_definition_name: str = "",
    environ: Mapping[str, str] | None = None,
) -> str:
    """The twin's review page of one loop (``/review/<loop>``) or its task list of a flow
    definition (``/review/?flow=<name>``). The token rides along only when ``AWS_TWIN_REVIEW_TOKEN``
    is set (offline); otherwise the twin asks for it."""
    environ = os.environ if environ is None else environ
    base = (environ.get(TWIN_PUBLIC_URL_ENV) or endpoint_url).rstrip("/")
    query: dict[str, str] = {}
    if len(loop_names) == 1:
        path = f"/review/{quote(loop_names[0])}"
    else:
        path = "/review/"
        if flow_definition_name:
            query["flow"] = flow_definition_name
    if environ.get(TWIN_REVIEW_TOKEN_ENV):
        query["token"] = environ[TWIN_REVIEW_TOKEN_ENV]
    return base + path + (f"?{urlencode(query)}" if query else "")


def review_page_url(task: Any, loop_names: Sequence[str], flow_definition_name: str) -> str:
    """:class:`A2IReviewPageLink`'s URL for an operator or sensor whose ``hook`` is an A2I hook."""
    from ..hooks.a2i import A2IHook

    hook = task.hook
    endpoint_url = hook.conn_config.endpoint_url
    if endpoint_url:
        return twin_review_url(endpoint_url, loop_names, flow_definition_name)
    fields = {
        "region_name": hook.conn_region_name,
        "aws_domain": BaseAwsLink.get_aws_domain(hook.conn_partition),
        "flow_definition_name": flow_definition_name,
        "human_loop_name": loop_names[0] if len(loop_names) == 1 else "",
    }
    try:
        sagemaker = A2IHook(
            aws_conn_id=task.aws_conn_id,
            region_name=getattr(task, "region_name", None),
            verify=getattr(task, "verify", None),
            config=getattr(task, "botocore_config", None),
        )
        portal = sagemaker.worker_portal_url(flow_definition_name) if flow_definition_name else None
    except Exception:  # no DescribeWorkteam permission, ...: the console still leads there
        portal = None
    return portal or A2IHumanLoopLink().format_link(**fields)
