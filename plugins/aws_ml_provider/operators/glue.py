"""The Amazon provider's GlueJobOperator, with the failed run's reason in the task's own error.

When a Glue job run fails, :class:`GlueJobOperator` raises ``Error in glue job: {... 'message':
'Glue Job X Run jr_... exited with state: FAILED'}`` (deferrable) or ``Exiting Job jr_... Run
State: FAILED``: the reason is only in the Glue console or the job's log, and the task is retried
even when the run failed on a fact about the data that no retry changes.

This subclass changes only what happens after a run failed: it reads the run (``GetJobRun``: state,
``ErrorMessage``) and the tail of its error log (CloudWatch ``<LogGroupName>/error``, stream = the
run id), and raises

- :class:`AirflowFailException` (no retries) when the ``ErrorMessage`` is one of
  ``no_retry_errors`` (exception class names the script raises for deterministic input errors, e.g.
  ``PreprocessError``): ``Glue job J run R FAILED: PreprocessError: <reason>``;
- else :class:`AirflowException` (retried as usual) with the same message and the log tail.

Starting, resuming on retry, deferring and the links are the provider's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.operators.glue import GlueJobOperator
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

if TYPE_CHECKING:
    from airflow.sdk import Context

#: error log lines put in the task's error when the run has no ErrorMessage
LOG_TAIL_LINES = 10


class GlueJobReasonOperator(GlueJobOperator):
    """:class:`GlueJobOperator` whose failure names the run's reason; ``no_retry_errors``: the
    exception names (``ErrorMessage`` starts with ``<name>:``) that fail the task without retries."""

    def __init__(self, *, no_retry_errors: Sequence[str] = (), **kwargs: Any):
        super().__init__(**kwargs)
        self.no_retry_errors = tuple(no_retry_errors)

    def execute(self, context: Context):
        try:
            return super().execute(context)
        except AirflowException as exc:
            if not self._job_run_id or isinstance(exc, AirflowFailException):
                raise
            raise self._failure(self._job_run_id, str(exc)) from exc

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> str:
        if event and event.get("status") != "success":
            run_id = event.get("run_id") or self._job_run_id
            if run_id:
                raise self._failure(run_id, str(event.get("message", "")))
        return super().execute_complete(context, event)

    # ---- the reason -----------------------------------------------------------------------
    def _failure(self, run_id: str, fallback: str) -> AirflowException:
        conn = self.hook.conn
        try:
            run = conn.get_job_run(JobName=self.job_name, RunId=run_id)["JobRun"]
        except Exception as exc:  # the reason is unknown; keep the provider's message
            self.log.warning("could not read Glue job run %s: %s", run_id, exc)
            return AirflowException(f"Glue job {self.job_name} run {run_id} failed: {fallback}")
        state = run.get("JobRunState", "?")
        reason = (run.get("ErrorMessage") or "").strip()
        tail = self._log_tail(run)
        message = f"Glue job {self.job_name} run {run_id} {state}: {reason or 'no ErrorMessage'}"
        if tail and not reason:
            message += "\nlast lines of its error log:\n" + "\n".join(tail)
        if state == "FAILED" and any(reason.startswith(f"{name}:") for name in self.no_retry_errors):
            self.log.error("%s (a data or argument error: not retried)", message)
            return AirflowFailException(message)
        return AirflowException(message)

    def _log_tail(self, run: dict[str, Any]) -> list[str]:
        group = f"{run.get('LogGroupName') or '/aws-glue/jobs'}/error"
        try:
            events = self.hook.logs_hook.conn.get_log_events(
                logGroupName=group, logStreamName=run["Id"], startFromHead=False, limit=LOG_TAIL_LINES
            )["events"]
        except Exception as exc:
            self.log.info("no error log for Glue job run %s in %s: %s", run.get("Id"), group, exc)
            return []
        return [e["message"].rstrip() for e in events if e.get("message", "").strip()]
