"""Sensor for Amazon A2I human loops: waits (deferrable, for hours or days, holding no worker) until
one or many loops are Completed, and reports Stopped / Failed loops with their reason."""

from __future__ import annotations

import ast
import json
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.sensors.base_aws import AwsBaseSensor
from airflow.providers.amazon.aws.utils import validate_execute_complete_event
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, PokeReturnValue, conf

from ..hooks.a2i import LOOP_DONE, LOOP_RUNNING_STATES, A2IRuntimeHook, flow_definition_name_from_arn
from ..links import persist_link
from ..links.a2i import A2IHumanLoopLink, A2IReviewPageLink, review_page_url
from ..operators import trigger_connection
from ..triggers.a2i import A2IHumanLoopsCompleteTrigger, describe_failures

if TYPE_CHECKING:
    from airflow.sdk import Context


def loop_names(value: Any) -> list[str]:
    """Loop names from a name, a ``A2IStartHumanLoopOperator`` result dict, or a list of either
    (also as the text a non-native Jinja rendering of such a list or dict gives)."""
    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip()
        if text[:1] in ("[", "{"):
            try:
                return loop_names(json.loads(text))
            except ValueError:
                return loop_names(ast.literal_eval(text))
        return [text]
    if isinstance(value, dict):
        if "human_loop_name" not in value:
            raise ValueError(f"no human_loop_name in {value!r}")
        return [str(value["human_loop_name"])]
    names: list[str] = []
    for item in value:
        names.extend(loop_names(item))
    return list(dict.fromkeys(names))


def result_of(states: list[dict[str, Any]]) -> dict[str, Any]:
    """The sensor's XCom: every loop's state and the output URIs of the completed ones."""
    return {
        "human_loops": states,
        "output_s3_uris": [
            s["output_s3_uri"] for s in states if s["status"] == LOOP_DONE and s["output_s3_uri"]
        ],
        "completed": sum(1 for s in states if s["status"] == LOOP_DONE),
        "failed": sum(1 for s in states if s["status"] not in (LOOP_DONE, *LOOP_RUNNING_STATES)),
    }


class A2IHumanLoopSensor(AwsBaseSensor[A2IRuntimeHook]):
    """Wait until A2I human loops are Completed.

    A loop that ends Failed or Stopped (or no longer exists) fails the task without retries
    (``AirflowFailException``) with an error naming the loop, its status, FailureReason and
    FailureCode, unless ``allow_failed`` (then it is reported in the result and the others are
    still awaited). Not deferred, the sensor pokes in ``reschedule`` mode by default.

    Extra links: "A2I Human Loop" (the console page of the loop, or of its flow definition when
    there are many) and "A2I Review Page" (:class:`~aws_ml_provider.links.a2i.A2IReviewPageLink`:
    the work team's worker portal on AWS; the twin's review page offline).

    :param human_loop_names: a loop name, an ``A2IStartHumanLoopOperator`` result, or a list of
        either (e.g. the output of a mapped start task) (templated)
    :param allow_failed: do not fail on Failed / Stopped loops (default: False)
    :param deferrable: wait in the triggerer (default: ``[operators] default_deferrable``)
    :param waiter_delay: seconds between checks when deferred (default: 3600)
    :param waiter_max_attempts: checks before giving up when deferred (default: 336, two weeks)
    :return: ``{"human_loops": [{"human_loop_name", "status", "output_s3_uri", "failure_reason",
        "failure_code"}, ...], "output_s3_uris": [...], "completed": n, "failed": n}``
    """

    aws_hook_class = A2IRuntimeHook
    template_fields: Sequence[str] = aws_template_fields("human_loop_names")
    operator_extra_links = (A2IHumanLoopLink(), A2IReviewPageLink())

    def __init__(
        self,
        *,
        human_loop_names: Any,
        allow_failed: bool = False,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        waiter_delay: int = 3600,
        waiter_max_attempts: int = 336,
        **kwargs,
    ):
        # not deferred: poke every 10 minutes, releasing the worker slot in between
        kwargs.setdefault("mode", "reschedule")
        kwargs.setdefault("poke_interval", 600)
        kwargs.setdefault("timeout", 14 * 24 * 3600)
        super().__init__(**kwargs)
        self.human_loop_names = human_loop_names
        self.allow_failed = allow_failed
        self.deferrable = deferrable
        self.waiter_delay = waiter_delay
        self.waiter_max_attempts = waiter_max_attempts

    def _names(self) -> list[str]:
        names = loop_names(self.human_loop_names)
        if not names:
            raise AirflowException(f"{self.task_id}: no human loop names given ({self.human_loop_names!r})")
        return names

    def _states(self) -> list[dict[str, Any]]:
        return [self.hook.human_loop_state(name) for name in self._names()]

    def _check(self, states: list[dict[str, Any]]) -> bool:
        """True when every loop has ended; raises on a failed loop unless ``allow_failed``."""
        failed = [s for s in states if s["status"] not in (LOOP_DONE, *LOOP_RUNNING_STATES)]
        if failed:
            self.log.warning("%s", describe_failures(failed))
            if not self.allow_failed:  # a Failed / Stopped loop stays so: retrying would not help
                raise AirflowFailException(describe_failures(failed))
        running = [s["human_loop_name"] for s in states if s["status"] in LOOP_RUNNING_STATES]
        if running:
            self.log.info("%d of %d human loop(s) still in progress", len(running), len(states))
        return not running

    def poke(self, context: Context) -> PokeReturnValue | bool:
        states = self._states()
        if self._check(states):
            return PokeReturnValue(is_done=True, xcom_value=result_of(states))
        return False

    def execute(self, context: Context) -> Any:
        names = self._names()
        self._persist_links(context, names)
        if not self.deferrable:
            return super().execute(context)
        states = self._states()
        if self._check(states):
            return result_of(states)
        self.defer(
            trigger=A2IHumanLoopsCompleteTrigger(
                human_loop_names=names,
                allow_failed=self.allow_failed,
                waiter_delay=self.waiter_delay,
                waiter_max_attempts=self.waiter_max_attempts,
                **trigger_connection(self),
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout) if self.timeout else None,
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        event = validate_execute_complete_event(event)
        if event.get("status") != "success":
            states = event.get("human_loops") or []
            ended = [s for s in states if s.get("status") not in (LOOP_DONE, *LOOP_RUNNING_STATES)]
            # loops that failed stay failed (no retry); running out of attempts may be retried
            error = AirflowFailException if ended else AirflowException
            raise error(f"{self.task_id}: {event.get('message')}")
        return result_of(event["human_loops"])

    def _persist_links(self, context: Context, names: list[str]) -> None:
        """The console link (the loop; the flow definition's loops when there are many) and the
        review page link (:class:`A2IReviewPageLink`), from the first loop's flow definition."""
        try:
            flow = self.hook.describe_human_loop(names[0]).get("FlowDefinitionArn", "")
        except Exception:  # the links are a convenience; the sensor reports the loops itself
            flow = ""
        flow_name = flow_definition_name_from_arn(flow) if flow else ""
        persist_link(
            A2IHumanLoopLink,
            context,
            self,
            flow_definition_name=flow_name,
            human_loop_name=names[0] if len(names) == 1 else "",
        )
        persist_link(A2IReviewPageLink, context, self, review_url=review_page_url(self, names, flow_name))
