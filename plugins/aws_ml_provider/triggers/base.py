"""The base of this provider's waiter triggers: a wait that rides out transient errors.

The Amazon provider's ``async_wait`` (9.34.0) ends the trigger on the first connection error
(``Could not connect to the endpoint URL`` -> ``TaskDeferralError: Trigger failure``) and on the
first 5xx that outlasts botocore's own retries, and retries throttling without counting it against
``waiter_max_attempts``. :meth:`AwsMlWaiterTrigger.wait` keeps the same waiter, messages and events,
and:

- treats connection errors (refused, reset, timed out), 5xx answers and throttling as transient:
  logged, and polled again after ``waiter_delay``, each poll counting against the budget
  (``waiter_delay * waiter_max_attempts`` is the longest the wait takes, whatever happens);
- reports a resource the service no longer knows (``lost_codes``: ``InvalidJobIdException``,
  ``ResourceNotFoundException``...) as such: the operator started it, so "unknown" means the state
  was lost (a restarted twin, a deleted resource), which the message says, instead of a symptom
  one task later.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.providers.amazon.aws.triggers.base import AwsBaseWaiterTrigger
from airflow.providers.amazon.aws.utils.waiter_with_logging import RETRIABLE_ERROR_CODES, _LazyStatusFormatter
from airflow.providers.common.compat.sdk import AirflowException
from airflow.triggers.base import TriggerEvent
from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    ReadTimeoutError,
    WaiterError,
)

#: error codes of a poll worth polling again: throttling, and the 5xx codes AWS services answer
TRANSIENT_CODES = frozenset(RETRIABLE_ERROR_CODES) | {
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "InternalFailure",
    "InternalServerError",
    "InternalServerException",
    "InternalError",
    "InternalServiceError",
    "RequestTimeout",
    "RequestTimeoutException",
    "SlowDown",
}
#: botocore's connection-level errors (no HTTP answer at all)
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    EndpointConnectionError,
    ConnectionClosedError,
    ConnectTimeoutError,
    ReadTimeoutError,
    HTTPClientError,
    ConnectionError,
    asyncio.TimeoutError,
)
try:  # aiobotocore's transport
    import aiohttp

    CONNECTION_ERRORS = (*CONNECTION_ERRORS, aiohttp.ClientError)
except ImportError:  # pragma: no cover
    pass
#: codes meaning "no such resource" in the services these triggers poll
LOST_CODES = frozenset({"InvalidJobIdException", "ResourceNotFoundException", "ResourceNotFound"})


def is_transient(error: dict | None, status: int | None = None) -> bool:
    """A poll's error that another poll may not meet (throttling, 5xx)."""
    code = (error or {}).get("Code")
    return code in TRANSIENT_CODES or (status is not None and status >= 500)


def lost_message(what: str, code: str, message: str) -> str:
    return (
        f"AWS no longer knows {what} ({code}: {message}). It was started by this task, so its state "
        "was lost: was the endpoint restarted (aws_twin keeps its state in memory), or the resource "
        "deleted? Start it again with a new try or run."
    )


class AwsMlWaiterTrigger(AwsBaseWaiterTrigger):
    """``AwsBaseWaiterTrigger`` whose hook is built from ``aws_hook_class`` and whose wait rides out
    transient errors (see the module).

    apache-airflow-providers-amazon 9.34.0 (the version Amazon MWAA 3.3.1 installs) has an abstract
    ``hook()`` that every trigger implements; later releases build it from ``aws_hook_class``
    themselves. This does what those releases do, so the triggers run on both.
    """

    aws_hook_class: type
    #: error codes of a poll that mean the resource is gone
    lost_codes: frozenset[str] = LOST_CODES

    def hook(self):
        return self.aws_hook_class(
            aws_conn_id=self.aws_conn_id,
            region_name=self.region_name,
            verify=self.verify,
            config=self.botocore_config,
        )

    @property
    def watched(self) -> str:
        """What the wait is for, in messages (e.g. ``Textract expense job 1f2e...``)."""
        return self.status_message.removeprefix("Status of ").removesuffix(" is")

    async def poll(self, waiter, args: dict[str, Any]) -> tuple[bool, str]:
        """One poll: (done, what to log). Raises ``AirflowException`` for a final failure."""
        try:
            await waiter.wait(**args, WaiterConfig={"MaxAttempts": 1})
        except WaiterError as error:
            last = error.last_response or {}
            err = last.get("Error") if isinstance(last.get("Error"), dict) else None
            status = (last.get("ResponseMetadata") or {}).get("HTTPStatusCode")
            if err and err.get("Code") in self.lost_codes:
                raise AirflowException(
                    lost_message(self.watched, err["Code"], err.get("Message", ""))
                ) from error
            if "terminal failure" in str(error):
                raise AirflowException(
                    f"{self.failure_message}: {_LazyStatusFormatter(self.status_queries, last)}\n{error}"
                ) from error
            if err:
                if is_transient(err, status):
                    return False, f"transient error {err.get('Code')}: {err.get('Message', '')}"
                raise AirflowException(f"{self.failure_message}\n{last}\n{error}") from error
            return False, f"{self.status_message}: {_LazyStatusFormatter(self.status_queries, last)}"
        except CONNECTION_ERRORS as error:
            return False, f"transient connection error {type(error).__name__}: {error}"
        return True, ""

    async def wait(self, waiter, args: dict[str, Any]) -> None:
        """Poll until done, at most ``self.attempts`` polls ``self.waiter_delay`` apart."""
        last = ""
        for attempt in range(1, self.attempts + 1):
            if attempt > 1:
                await asyncio.sleep(self.waiter_delay)
            done, last = await self.poll(waiter, args)
            if done:
                return
            level = self.log.warning if last.startswith("transient") else self.log.info
            level("poll %d/%d: %s", attempt, self.attempts, last)
        raise AirflowException(
            f"{self.failure_message}: still not done after {self.attempts} polls "
            f"{self.waiter_delay} s apart (the wait's budget); last: {last}"
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = self.hook()
        async with await hook.get_async_conn() as client:
            waiter = hook.get_waiter(
                self.waiter_name,
                deferrable=True,
                client=client,
                config_overrides=self.waiter_config_overrides,
            )
            try:
                await self.wait(waiter, self.waiter_args)
            except AirflowException as e:
                yield TriggerEvent({"status": "error", "message": str(e), self.return_key: self.return_value})
            else:
                yield TriggerEvent({"status": "success", self.return_key: self.return_value})


class AwsMlResourceStateTrigger(AwsMlWaiterTrigger):
    """Describe one resource until its state is one the waiter accepts: the shape of every trigger
    here that watches one thing (a job, a model version, a dataset, a human loop). The waiter JSON
    holds the states (success / failure acceptors); this holds what the messages and the event say.

    A subclass sets ``aws_hook_class`` and keeps its own keyword-only ``__init__`` (its parameters
    are what ``serialize()`` writes and the triggerer passes back: the Amazon provider's pattern),
    calling this with:

    :param serialized_fields: the subclass's own ``__init__`` parameters and their values
    :param waiter_name: / :param waiter_args: the waiter and the Describe call's arguments
    :param resource: what is watched, in messages (``Textract expense job 1f2e...``): the failure
        message is ``<resource> <failure>``, the status message ``Status of <resource> is``
    :param failure: what went wrong, e.g. ``did not complete``
    :param status_queries: JMESPath queries of the status to log and report
    :param return_key: one of ``serialized_fields``: the event carries it with its value
    :param kwargs: ``waiter_delay``, ``waiter_max_attempts`` and the connection arguments
        (``aws_conn_id``, ``region_name``, ``verify``, ``botocore_config``), passed through
    """

    def __init__(
        self,
        *,
        serialized_fields: dict[str, Any],
        waiter_name: str,
        waiter_args: dict[str, Any],
        resource: str,
        failure: str,
        status_queries: list[str],
        return_key: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            serialized_fields=serialized_fields,
            waiter_name=waiter_name,
            waiter_args=waiter_args,
            failure_message=f"{resource} {failure}",
            status_message=f"Status of {resource} is",
            status_queries=status_queries,
            return_key=return_key,
            return_value=serialized_fields[return_key],
            **kwargs,
        )
