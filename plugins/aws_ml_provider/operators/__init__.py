"""Operators of aws_ml_provider. Shared here: what identifies "this run" for deterministic names,
and the connection arguments a deferring task hands its trigger."""

from __future__ import annotations

from typing import Any


def run_identity(context: Any, task: Any) -> tuple[str, str, str]:
    """``(dag_id, run_id, task_id)`` of the running task: the same on every try of the task, so
    names and tokens derived from it make a retried task attach to what its first try started."""
    ti = context.get("ti") or context.get("task_instance")
    dag_id = getattr(ti, "dag_id", None) or getattr(task, "dag_id", None) or ""
    run_id = context.get("run_id") or getattr(ti, "run_id", None) or ""
    if not run_id and context.get("dag_run") is not None:
        run_id = getattr(context["dag_run"], "run_id", "") or ""
    task_id = getattr(ti, "task_id", None) or getattr(task, "task_id", "")
    return str(dag_id), str(run_id), str(task_id)


def try_number(context: Any) -> int:
    ti = context.get("ti") or context.get("task_instance")
    try:
        return int(getattr(ti, "try_number", 1) or 1)
    except (TypeError, ValueError):
        return 1


def trigger_connection(task: Any) -> dict[str, Any]:
    """The AWS connection arguments of an ``AwsBaseOperator`` / ``AwsBaseSensor`` that its
    ``AwsBaseWaiterTrigger`` takes, so the triggerer waits with the task's connection."""
    return {
        "aws_conn_id": task.aws_conn_id,
        "region_name": task.region_name,
        "verify": task.verify,
        "botocore_config": task.botocore_config,
    }
