"""The A2I human review of a DAG as one task group: the worker task UI, the flow definition, the
DAG's own task that starts the human loops, the loop names and the deferred wait.

    review = a2i_human_review(
        settings=cfg,  # resolve_config's output (multiple_outputs)
        start_loops=lambda flow_arn: start_review_loops(cfg, decided, flow_arn),
        what="image",
        task_title="Which label does this image show?",
        ...
    )
    prepared >> review.task_ui
    summary = merge(cfg, decided, review.started)
    review.wait >> summary

Task ids are the group's tasks' own (``task_ui``, ``flow_definition``, ``review_loop_names``,
``wait_for_review`` and the start task's): the group does not prefix them, so links, XCom reads
and REST calls that name them keep working; the Airflow UI shows them folded in one group.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, NamedTuple

from airflow.sdk import TaskGroup, task

from ..operators.a2i import A2ICreateFlowDefinitionOperator, A2ICreateHumanTaskUiOperator
from ..sensors.a2i import A2IHumanLoopSensor


class HumanReview(NamedTuple):
    """What :func:`a2i_human_review` made, for the DAG's dependencies."""

    group: TaskGroup
    task_ui: A2ICreateHumanTaskUiOperator
    flow: A2ICreateFlowDefinitionOperator
    #: what ``start_loops`` returned (its XCom: ``{"loops": [...], ...}``, or a mapped list of them)
    started: Any
    wait: A2IHumanLoopSensor


@task
def review_loop_names(started: Any, what: str = "item") -> list[str]:
    """The run's loops, for one sensor: from a start task's ``{"loops": [...]}`` or from the list a
    mapped start task gives; skips the wait when no ``what`` needs review."""
    from airflow.providers.common.compat.sdk import AirflowSkipException

    batches = [started] if isinstance(started, dict) else started
    names = sorted({name for batch in batches for name in batch["loops"]})
    if not names:
        raise AirflowSkipException(f"no {what} needs human review")
    return names


def a2i_human_review(
    *,
    settings: Any,
    start_loops: Callable[[Any], Any],
    what: str,
    task_title: str,
    task_description: str,
    poll_seconds: int,
    timeout: timedelta,
    allow_failed: bool,
    human_task_ui_name: str | None = None,
    flow_definition_name: str | None = None,
    aws_conn_id: str | None = "aws_default",
    flow_waiter_delay: int = 1,
    group_id: str = "human_review",
    tooltip: str = "A2I human review: task UI, flow definition, human loops, deferred wait",
) -> HumanReview:
    """Build the review group in the current DAG.

    :param settings: the run's resolved settings (a resolve_config task's output, read with
        ``settings[key]``): ``workteam_arn``, ``a2i_role_arn`` (see ``utils.run_config.a2i_arns``),
        ``a2i_output_uri`` (where A2I writes the answers), ``task_ui_template_path`` and, unless
        given here, ``human_task_ui_name`` and ``flow_definition_name``
    :param start_loops: called with the flow definition's ARN (an XComArg); creates the DAG's task
        that starts the loops and returns its output (``{"loops": [names], ...}`` per task)
    :param what: what a loop reviews, in the skip message (``image``, ``document``)
    :param task_title: / :param task_description: what workers see of the task (templated)
    :param poll_seconds: seconds between the deferred sensor's checks
    :param timeout: the longest the review may take (the sensor's timeout and attempts budget)
    :param allow_failed: a Failed / Stopped loop does not fail the wait (the DAG's merge handles it)
    :param human_task_ui_name: / :param flow_definition_name: the names, instead of the settings'
        (templated, e.g. ``{{ params.flow_definition_name }}``)
    """
    with TaskGroup(group_id, prefix_group_id=False, tooltip=tooltip) as group:
        task_ui = A2ICreateHumanTaskUiOperator(
            task_id="task_ui",
            aws_conn_id=aws_conn_id,
            human_task_ui_name=human_task_ui_name or settings["human_task_ui_name"],
            ui_template_path=settings["task_ui_template_path"],
        )
        flow = A2ICreateFlowDefinitionOperator(
            task_id="flow_definition",
            aws_conn_id=aws_conn_id,
            flow_definition_name=flow_definition_name or settings["flow_definition_name"],
            human_task_ui_arn=task_ui.output,
            workteam_arn=settings["workteam_arn"],
            role_arn=settings["a2i_role_arn"],
            output_s3_uri=settings["a2i_output_uri"],
            task_title=task_title,
            task_description=task_description,
            waiter_delay=flow_waiter_delay,
        )
        started = start_loops(flow.output)
        wait = A2IHumanLoopSensor(
            task_id="wait_for_review",
            aws_conn_id=aws_conn_id,
            human_loop_names=review_loop_names(started, what=what),
            allow_failed=allow_failed,
            deferrable=True,
            waiter_delay=poll_seconds,
            waiter_max_attempts=max(1, int(timeout.total_seconds()) // poll_seconds),
            timeout=timeout.total_seconds(),
        )
    return HumanReview(group, task_ui, flow, started, wait)
