"""Triggers for Amazon A2I human loops (custom waiter ``human_loop_completed`` in
``waiters/a2i.json``). Human review takes hours or days: the defaults poll once an hour for two
weeks, in the triggerer, holding no worker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import TriggerEvent
from botocore.exceptions import WaiterError

from ..hooks.a2i import LOOP_DONE, A2IRuntimeHook, loop_state, loop_state_from_description
from .base import (
    CONNECTION_ERRORS,
    AwsMlResourceStateTrigger,
    AwsMlWaiterTrigger,
    is_transient,
    lost_message,
)

WAITER = "human_loop_completed"


def describe_failures(states: list[dict[str, Any]]) -> str:
    """One line per loop that did not complete: name, status, reason and code."""
    return "; ".join(
        f"human loop {s['human_loop_name']} is {s['status']}"
        + (f": {s['failure_reason']}" if s.get("failure_reason") else "")
        + (f" ({s['failure_code']})" if s.get("failure_code") else "")
        for s in states
    )


class A2IHumanLoopCompletedTrigger(AwsMlResourceStateTrigger):
    """Fire when one human loop is Completed (success) or Failed / Stopped / gone (error).

    :param human_loop_name: the loop to watch
    :param waiter_delay: seconds between attempts (default: 3600)
    :param waiter_max_attempts: attempts before giving up (default: 336, two weeks hourly)
    :param kwargs: ``aws_conn_id``, ``region_name``, ``verify``, ``botocore_config``
    """

    aws_hook_class = A2IRuntimeHook

    def __init__(
        self, *, human_loop_name: str, waiter_delay: int = 3600, waiter_max_attempts: int = 336, **kwargs: Any
    ) -> None:
        super().__init__(
            serialized_fields={"human_loop_name": human_loop_name},
            waiter_name=WAITER,
            waiter_args={"HumanLoopName": human_loop_name},
            resource=f"A2I human loop {human_loop_name}",
            failure="did not complete",
            status_queries=["HumanLoopStatus", "FailureReason"],
            return_key="human_loop_name",
            waiter_delay=waiter_delay,
            waiter_max_attempts=waiter_max_attempts,
            **kwargs,
        )


class A2IHumanLoopsCompleteTrigger(AwsMlWaiterTrigger):
    """Wait for many human loops at once (one trigger, one poll round every ``waiter_delay``).

    Each round runs the ``human_loop_completed`` waiter once (one DescribeHumanLoop) for every loop
    still in progress, with the hook's async client (a custom ``run``, like the Amazon provider's
    ``SageMakerPipelineTrigger``). Events:

    - ``{"status": "success", "human_loops": [state, ...]}`` when every loop is Completed (or,
      with ``allow_failed``, has ended in any way);
    - ``{"status": "error", "message": ..., "human_loops": [...]}`` as soon as a loop is Failed,
      Stopped or gone (unless ``allow_failed``), or when attempts run out.

    A state is ``{"human_loop_name", "status", "output_s3_uri", "failure_reason", "failure_code"}``,
    in the order of ``human_loop_names`` (``status`` is ``InProgress`` for a loop still running).
    ``kwargs``: ``aws_conn_id``, ``region_name``, ``verify``, ``botocore_config``.
    """

    aws_hook_class = A2IRuntimeHook

    def __init__(
        self,
        *,
        human_loop_names: list[str],
        allow_failed: bool = False,
        waiter_delay: int = 3600,
        waiter_max_attempts: int = 336,
        **kwargs: Any,
    ) -> None:
        self.human_loop_names = list(dict.fromkeys(human_loop_names))
        self.allow_failed = allow_failed
        super().__init__(
            serialized_fields={"human_loop_names": self.human_loop_names, "allow_failed": allow_failed},
            waiter_name=WAITER,
            waiter_args={},
            failure_message="A2I human loops did not complete",
            status_message="Status of A2I human loops is",
            status_queries=["HumanLoopStatus"],
            return_key="human_loops",
            return_value=None,
            waiter_delay=waiter_delay,
            waiter_max_attempts=waiter_max_attempts,
            **kwargs,
        )

    async def _check(self, client, waiter, name: str) -> dict[str, Any] | None:
        """The final state of one loop, or None while it is still in progress (or the poll met a
        transient error: connection, 5xx, throttling; the loop is polled again next round)."""
        try:
            await waiter.wait(HumanLoopName=name, WaiterConfig={"MaxAttempts": 1})
        except CONNECTION_ERRORS as err:
            self.log.warning(
                "human loop %s: transient connection error %s: %s", name, type(err).__name__, err
            )
            return None
        except WaiterError as err:
            reason = str(err)
            last = err.last_response or {}
            error = last.get("Error") if isinstance(last.get("Error"), dict) else None
            status = (last.get("ResponseMetadata") or {}).get("HTTPStatusCode")
            if error and error.get("Code") in self.lost_codes:
                return loop_state(
                    name,
                    "NotFound",
                    failure_reason=lost_message(
                        f"human loop {name}", error["Code"], error.get("Message", "")
                    ),
                    failure_code=error.get("Code"),
                )
            if "terminal failure" in reason:
                if error:
                    return loop_state(
                        name,
                        "Error",
                        failure_reason=error.get("Message") or reason,
                        failure_code=error.get("Code"),
                    )
                return loop_state_from_description(name, last)
            if error:
                if is_transient(error, status):
                    self.log.warning("human loop %s: transient error %s", name, error.get("Code"))
                    return None
                return loop_state(
                    name,
                    "Error",
                    failure_reason=f"{error.get('Code')}: {error.get('Message')}",
                    failure_code=error.get("Code"),
                )
            self.log.info("human loop %s is %s", name, last.get("HumanLoopStatus"))
            return None
        try:
            described = await client.describe_human_loop(HumanLoopName=name)
        except CONNECTION_ERRORS as err:
            self.log.warning(
                "human loop %s: transient connection error %s: %s", name, type(err).__name__, err
            )
            return None
        return loop_state_from_description(name, described)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = self.hook()
        states: dict[str, dict[str, Any]] = {}
        pending = list(self.human_loop_names)

        def ordered() -> list[dict[str, Any]]:
            return [states.get(n) or loop_state(n, "InProgress") for n in self.human_loop_names]

        async with await hook.get_async_conn() as client:
            waiter = hook.get_waiter(self.waiter_name, deferrable=True, client=client)
            attempt = 0
            while True:
                for name in list(pending):
                    state = await self._check(client, waiter, name)
                    if state is None:
                        continue
                    states[name] = state
                    pending.remove(name)
                    if state["status"] != LOOP_DONE:
                        self.log.warning("%s", describe_failures([state]))
                        if not self.allow_failed:
                            yield TriggerEvent(
                                {
                                    "status": "error",
                                    "message": describe_failures([state]),
                                    "human_loops": ordered(),
                                }
                            )
                            return
                attempt += 1
                if not pending:
                    break
                if attempt >= self.attempts:
                    yield TriggerEvent(
                        {
                            "status": "error",
                            "message": f"{len(pending)} human loop(s) still in progress after "
                            f"{attempt} attempts: {', '.join(pending)}",
                            "human_loops": ordered(),
                        }
                    )
                    return
                self.log.info(
                    "%d of %d human loop(s) done; next check in %ss",
                    len(states),
                    len(self.human_loop_names),
                    self.waiter_delay,
                )
                await asyncio.sleep(self.waiter_delay)
        yield TriggerEvent({"status": "success", "human_loops": ordered()})
