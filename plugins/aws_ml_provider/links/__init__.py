"""AWS console links (``BaseAwsLink`` subclasses) for the provider's operators."""

from __future__ import annotations

from typing import Any


def persist_link(link: Any, context: Any, task: Any, **fields: Any) -> None:
    """``link.persist`` for an AWS operator or sensor: region and partition from its hook."""
    link.persist(
        context=context,
        operator=task,
        region_name=task.hook.conn_region_name,
        aws_partition=task.hook.conn_partition,
        **fields,
    )
