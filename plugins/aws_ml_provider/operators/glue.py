"""A Glue job run started once per task, whatever answers get lost.

The Amazon provider's :class:`GlueJobOperator` with ``resume_glue_job_on_retry=True`` tags the run
with ``--airflow_task_uuid`` (dag, task, run, map index: the same on every try) and a retried try
attaches to a run of that tag that is still RUNNING / STARTING. Two gaps remain, which this subclass
closes:

- StartJobRun is retried by botocore when its answer is lost; the retry starts a second run (or
  fails with ``ConcurrentRunsExceededException``, and the task's next try starts another). Here it
  is sent once; after a transient failure (connection error, 5xx, throttling) the run is looked up
  by its tag before StartJobRun is sent again, and the wait attaches to the run the request started.
- A try whose run has already SUCCEEDED (the task failed after starting it, e.g. on a lost answer
  of a later call) starts no new run: the run's id is returned as the provider returns it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.operators.glue import GlueJobOperator
from botocore.exceptions import ClientError

from ..utils.idempotent import is_transient_failure, single_attempt

if TYPE_CHECKING:
    from airflow.sdk import Context


class GlueJobOnceOperator(GlueJobOperator):
    """:class:`GlueJobOperator` that starts at most one run per task (``resume_glue_job_on_retry``
    is forced on: the run's ``--airflow_task_uuid`` argument is its deterministic key).

    :param start_attempts: how many times StartJobRun is sent after transient failures (each after
        a look-up that found no run of this task)
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
            if error.response.get("Error", {}).get("Code") == "EntityNotFoundException":
                return None  # the job itself does not exist yet: the first try creates it
            raise

    def execute(self, context: Context):
        for attempt in range(1, self.start_attempts + 1):
            found = self._run_of_this_task(context)
            if found and found[1] == "SUCCEEDED":
                run_id = found[0]
                self.log.info("Glue run %s of this task has SUCCEEDED already: not starting another.", run_id)
                context["ti"].xcom_push(key="glue_job_run_id", value=run_id)
                self._job_run_id = run_id
                return run_id
            if found and found[1] in ("STARTING", "RUNNING", "WAITING", "STOPPING"):
                # attach to it here: the provider's own look-up runs a moment later and starts a new
                # run when this one has SUCCEEDED in between; with _job_run_id set it starts none
                self.log.info("Glue run %s of this task is %s: waiting for it.", found[0], found[1])
                self._job_run_id = found[0]
                context["ti"].xcom_push(key="glue_job_run_id", value=found[0])
            try:
                with single_attempt(self.hook, "start_job_run"):
                    return super().execute(context)
            except Exception as exc:
                if not is_transient_failure(exc) or attempt == self.start_attempts:
                    raise
                self.log.warning(
                    "No answer to StartJobRun of %s (%s: %s); looking for the run of this task before "
                    "starting one.",
                    self.job_name,
                    type(exc).__name__,
                    exc,
                )
                self._job_run_id = None
                time.sleep(min(2.0 * 2 ** (attempt - 1), 30))
        raise AssertionError("unreachable")
