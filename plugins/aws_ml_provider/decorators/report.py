"""``@report_task``: ``@task`` with the :class:`~aws_ml_provider.links.s3.S3ReportLink` extra link.

Airflow 3.3 has no way to give a ``@task`` an extra link (``operator_extra_links`` is a class
attribute of the operator; ``@task(extra_links=...)`` is only proposed upstream, apache/airflow#54527),
so this is ``@task`` built on an operator class that declares the link. The task body calls
``S3ReportLink.persist_object(context, hook, "s3://bucket/key")`` for the object to link to::

    @report_task(multiple_outputs=True)
    def evaluate(...):
        ...
        S3ReportLink.persist_object(get_current_context(), s3_hook, report_uri)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from airflow.providers.common.compat.sdk import DecoratedOperator, task_decorator_factory
from airflow.providers.standard.operators.python import PythonOperator

from aws_ml_provider.links.s3 import S3ReportLink


class ReportDecoratedOperator(DecoratedOperator, PythonOperator):
    """The operator behind ``@report_task``: ``@task``'s (``_PythonDecoratedOperator``) plus the link."""

    template_fields: Sequence[str] = ("templates_dict", "op_args", "op_kwargs")
    template_fields_renderers = {"templates_dict": "json", "op_args": "py", "op_kwargs": "py"}
    custom_operator_name: str = "@report_task"
    operator_extra_links = (S3ReportLink(),)

    def __init__(self, *, python_callable, op_args, op_kwargs, **kwargs) -> None:
        super().__init__(
            kwargs_to_upstream={
                "python_callable": python_callable,
                "op_args": op_args,
                "op_kwargs": op_kwargs,
            },
            python_callable=python_callable,
            op_args=op_args,
            op_kwargs=op_kwargs,
            **kwargs,
        )


def report_task(python_callable: Callable | None = None, multiple_outputs: bool | None = None, **kwargs: Any):
    """``@task`` whose task instances show a "Report" extra link (see the module docstring)."""
    return task_decorator_factory(
        python_callable=python_callable,
        multiple_outputs=multiple_outputs,
        decorated_operator_class=ReportDecoratedOperator,
        **kwargs,
    )
