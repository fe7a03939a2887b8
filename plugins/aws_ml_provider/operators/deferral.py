"""The Amazon provider's Glue and SageMaker triggers, runnable without ``aiobotocore``.

The provider's triggers wait with an aiobotocore client, and no aiobotocore release supports the
botocore this project pins. These subclasses keep the provider's triggers (same arguments, same
events, so the provider operators' ``execute_complete`` handles them) and only change ``run`` when
aiobotocore is missing: each status call runs on a worker thread (``asyncio.to_thread``) and the
waits between calls are ``asyncio.sleep`` -- the triggerer's event loop is never blocked and no
worker slot is held. With aiobotocore installed they run the provider's code unchanged.

:class:`TriggerSwapMixin` makes a provider operator defer on these instead of the provider's class.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.providers.amazon.aws.triggers.glue import GlueJobCompleteTrigger
from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger
from airflow.triggers.base import TriggerEvent

from aws_ml_provider.triggers import AwsMlWaiterTrigger, has_aiobotocore

#: Glue job run states that end a run (JOB_RUN_TERMINAL_STATES of the provider's operator)
GLUE_FAILED_STATES = ("FAILED", "STOPPED", "TIMEOUT", "ERROR", "EXPIRED")


class SageMakerJobTrigger(SageMakerTrigger):
    """:class:`SageMakerTrigger` (training/transform/processing/tuning jobs, endpoints) without aiobotocore."""

    async def run(self) -> AsyncIterator[TriggerEvent]:
        runner = super().run if has_aiobotocore() else AwsMlWaiterTrigger.run.__get__(self)
        async for event in runner():
            yield event


class GlueJobRunTrigger(GlueJobCompleteTrigger):
    """:class:`GlueJobCompleteTrigger` without aiobotocore; ``verbose`` forwards the run's CloudWatch logs.

    Events: ``{"status": "success", "run_id"}`` or ``{"status": "error", "message", "run_id"}``, the
    message naming the job, the run, its final state and Glue's ``ErrorMessage``.
    """

    async def run(self) -> AsyncIterator[TriggerEvent]:
        if has_aiobotocore():
            async for event in super().run():
                yield event
            return
        hook = await asyncio.to_thread(self.hook)
        tokens = hook.LogContinuationTokens()
        state = "UNKNOWN"
        for _ in range(self.attempts):
            state = await asyncio.to_thread(hook.get_job_state, self.job_name, self.run_id)
            if self.verbose:
                try:
                    await asyncio.to_thread(hook.print_job_logs, self.job_name, self.run_id, tokens)
                except Exception as error:  # logs are a courtesy: never fail the wait on them
                    self.log.warning("could not read the logs of Glue run %s: %s", self.run_id, error)
            if state == "SUCCEEDED":
                yield TriggerEvent({"status": "success", "run_id": self.run_id})
                return
            if state in GLUE_FAILED_STATES:
                run = await asyncio.to_thread(
                    lambda: hook.conn.get_job_run(JobName=self.job_name, RunId=self.run_id)["JobRun"]
                )
                message = (
                    f"Glue job {self.job_name} run {self.run_id} ended {state}: "
                    f"{run.get('ErrorMessage') or '(no error message)'}"
                )
                yield TriggerEvent({"status": "error", "message": message, "run_id": self.run_id})
                return
            self.log.info("Glue job %s run %s is %s", self.job_name, self.run_id, state)
            await asyncio.sleep(self.waiter_delay)
        yield TriggerEvent(
            {
                "status": "error",
                "message": f"Glue job {self.job_name} run {self.run_id} still {state} after "
                f"{self.attempts} checks {self.waiter_delay}s apart",
                "run_id": self.run_id,
            }
        )


#: provider trigger class -> the subclass to defer on instead
SWAPS: dict[type, type] = {SageMakerTrigger: SageMakerJobTrigger, GlueJobCompleteTrigger: GlueJobRunTrigger}


def swap_trigger(trigger: Any) -> Any:
    """The same trigger (same serialized arguments) as the aiobotocore-free subclass, if there is one."""
    target = SWAPS.get(type(trigger))
    if target is None:
        return trigger
    _, kwargs = trigger.serialize()
    return target(**kwargs)


class TriggerSwapMixin:
    """Put before a provider operator: its ``self.defer(trigger=...)`` uses :data:`SWAPS`."""

    def defer(self, *, trigger, method_name: str, kwargs: dict | None = None, timeout=None):
        return super().defer(
            trigger=swap_trigger(trigger), method_name=method_name, kwargs=kwargs, timeout=timeout
        )
