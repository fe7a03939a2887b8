"""Glue job runs: started once per task (:class:`GlueJobOnceOperator`), failing with their reason
(:class:`GlueJobReasonOperator`, which is also started once).

**Started once.** A Glue job run started once per task, whatever answers get lost.

The Amazon provider's :class:`GlueJobOperator` with ``resume_glue_job_on_retry=True`` tags the run
with ``--airflow_task_uuid`` (dag, task, run, map index: the same on every try) and a retried try
attaches to a run of that tag that is still RUNNING / STARTING. Two gaps remain, which this subclass
closes:

- StartJobRun is retried by botocore when its answer is lost, and the retry fails with
  ``ConcurrentRunsExceededException`` (the first request's run holds the job's one slot), so the
  provider fails the try, and the task's next try starts another run. Here StartJobRun is retried
  by botocore (standard mode, ``start_attempts`` attempts, its own backoff); when it fails all the
  same (concurrent runs exceeded, or a transient error botocore gave up on), the run is looked up
  by its tag and the wait attaches to the run the request started. This relies on the job's
  ``MaxConcurrentRuns`` being 1 (Glue's default): with more slots, a retry whose first request's
  answer was lost starts a second run, as StartJobRun has no idempotency token.
- A try whose run has already SUCCEEDED (the task failed after starting it, e.g. on a lost answer
  of a later call) starts no new run: the run's id is returned as the provider returns it.

**The reason of a failed run.** The Amazon provider's GlueJobOperator, with the failed run's reason in the task's own error.

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
from botocore.exceptions import ClientError

from ..utils.errors import error_code
from ..utils.idempotent import is_transient_failure, retried_create

if TYPE_CHECKING:
    from airflow.sdk import Context

#: Glue job run states of a run that is still going
ACTIVE_STATES = ("STARTING", "RUNNING", "WAITING", "STOPPING")


class GlueJobOnceOperator(GlueJobOperator):
    """:class:`GlueJobOperator` that starts at most one run per task (``resume_glue_job_on_retry``
    is forced on: the run's ``--airflow_task_uuid`` argument is its deterministic key).

    :param start_attempts: how many times botocore sends StartJobRun (its standard retry mode:
        throttling, 5xx and connection errors, with backoff)
    """

    def __init__(self, *, start_attempts: int = 4, **kwargs: Any):
        kwargs["resume_glue_job_on_retry"] = True
        super().__init__(**kwargs)
        self.start_attempts = start_attempts

    def _run_of_this_task(self, context: Context) -> tuple[str, str] | None:
        _, task_uuid = self._prepare_script_args_with_task_uuid(
            context, base_args=dict(self.script_args or {})
        )
        try:
            return self._find_job_run_id_by_task_uuid(task_uuid)
        except ClientError as error:
            if error_code(error) == "EntityNotFoundException":
                return None  # the job itself does not exist yet: the first try creates it
            raise

    def _attach(self, context: Context, found: tuple[str, str] | None) -> str | None:
        """Make this task's run ``found`` (id, state) the run of this try: its id when it has
        SUCCEEDED (nothing to start or wait for); None otherwise (one in progress is waited for)."""
        if not found:
            return None
        run_id, state = found
        if state == "SUCCEEDED":
            self.log.info("Glue run %s of this task has SUCCEEDED already: not starting another.", run_id)
            context["ti"].xcom_push(key="glue_job_run_id", value=run_id)
            self._job_run_id = run_id
            return run_id
        if state in ACTIVE_STATES:
            # attach to it here: the provider's own look-up runs a moment later and starts a new
            # run when this one has SUCCEEDED in between; with _job_run_id set it starts none
            self.log.info("Glue run %s of this task is %s: waiting for it.", run_id, state)
            self._job_run_id = run_id
            context["ti"].xcom_push(key="glue_job_run_id", value=run_id)
        return None

    def execute(self, context: Context):
        done = self._attach(context, self._run_of_this_task(context))
        if done:
            return done
        try:
            with retried_create(self.hook, "start_job_run", attempts=self.start_attempts):
                return super().execute(context)
        except Exception as exc:
            if not (is_transient_failure(exc) or error_code(exc) == "ConcurrentRunsExceededException"):
                raise
            found = self._run_of_this_task(context)
            if not found or found[1] not in ("SUCCEEDED", *ACTIVE_STATES):
                raise
            self.log.warning(
                "StartJobRun of %s failed (%s: %s), but this task's run %s is %s (the request whose "
                "answer was lost started it): attaching to it.",
                self.job_name,
                type(exc).__name__,
                exc,
                found[0],
                found[1],
            )
            done = self._attach(context, found)
            if done:
                return done
            return super().execute(context)  # waits for (or defers on) the run: _job_run_id is set


#: error log lines put in the task's error when the run has no ErrorMessage
LOG_TAIL_LINES = 10


class GlueJobReasonOperator(GlueJobOnceOperator):
    """:class:`GlueJobOnceOperator` whose failure names the run's reason; ``no_retry_errors``: the
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
