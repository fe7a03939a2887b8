"""Deferrable triggers of aws_ml_provider.

:class:`AwsMlWaiterTrigger` is ``AwsBaseWaiterTrigger`` (serialization, hook from the serialized
connection settings, ``async_wait`` logging and retry rules) whose ``run`` also works without
``aiobotocore``: the Amazon provider's triggers need it for an async client, and no aiobotocore
release supports the botocore this project pins. Without it, each single-attempt waiter call runs
on a worker thread (``asyncio.to_thread``) and the waits between attempts are ``asyncio.sleep``,
so the triggerer's event loop is never blocked and no worker slot is held.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsGenericHook
from airflow.providers.amazon.aws.triggers.base import AwsBaseWaiterTrigger
from airflow.providers.amazon.aws.utils.waiter_with_logging import async_wait
from airflow.providers.common.compat.sdk import AirflowException
from airflow.triggers.base import TriggerEvent


def has_aiobotocore() -> bool:
    try:
        import aiobotocore  # noqa: F401
    except ImportError:
        return False
    return True


class ThreadedWaiter:
    """A sync botocore waiter with an awaitable ``wait`` (for ``async_wait``)."""

    def __init__(self, waiter):
        self.waiter = waiter
        self.name = getattr(waiter, "name", "")

    async def wait(self, **kwargs: Any) -> None:
        await asyncio.to_thread(self.waiter.wait, **kwargs)


@asynccontextmanager
async def awaitable_waiter(hook, waiter_name: str, config_overrides: dict | None = None):
    """Yield ``(waiter, call)``: a waiter of ``hook`` with an awaitable ``wait`` and ``call(method,
    **kwargs)``, an awaitable client call; aiobotocore's when installed, else threaded."""
    if has_aiobotocore():
        async with await hook.get_async_conn() as client:
            waiter = hook.get_waiter(
                waiter_name, deferrable=True, client=client, config_overrides=config_overrides
            )

            async def call(method: str, **kwargs: Any) -> dict:
                return await getattr(client, method)(**kwargs)

            yield waiter, call
        return
    # building the client reads the Airflow connection: keep that off the event loop
    sync_waiter = await asyncio.to_thread(hook.get_waiter, waiter_name, config_overrides=config_overrides)

    async def call(method: str, **kwargs: Any) -> dict:
        return await asyncio.to_thread(getattr(hook.conn, method), **kwargs)

    yield ThreadedWaiter(sync_waiter), call


class AwsMlWaiterTrigger(AwsBaseWaiterTrigger):
    """``AwsBaseWaiterTrigger`` that runs with or without aiobotocore (see the module doc).

    Subclasses set ``aws_hook_class`` like the Amazon provider's triggers.
    """

    # placeholder so that AwsBaseWaiterTrigger's class check accepts this abstract base
    aws_hook_class = AwsGenericHook

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.hook is AwsBaseWaiterTrigger.hook and cls.aws_hook_class is AwsGenericHook:
            raise AttributeError(f"Class attribute '{cls.__name__}.aws_hook_class' should be set")

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = self.hook()
        async with awaitable_waiter(hook, self.waiter_name, self.waiter_config_overrides) as (waiter, _):
            try:
                await async_wait(
                    waiter,
                    self.waiter_delay,
                    self.attempts,
                    self.waiter_args,
                    self.failure_message,
                    self.status_message,
                    self.status_queries,
                )
            except AirflowException as error:
                yield self._event_from_exception(error)
            else:
                yield TriggerEvent({"status": "success", self.return_key: self.return_value})
