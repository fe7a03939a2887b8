"""churn_xgboost_pipeline's run-time check of its configuration (issue 8, item 6): the form checks
the Params, but a Variable (what a scheduled run uses) bypasses it. resolve_config checks the
bucket name and the role ARNs with AWS's rules (aws_ml_provider.utils.aws_patterns) and fails for
good (AirflowFailException): one try, no retry, nothing created."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e

DAG_ID = "churn_xgboost_pipeline"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ML_BUCKET", "Bad_Bucket name"),
        ("SAGEMAKER_ROLE_ARN", "SageMakerExecutionRole"),
        ("GLUE_ROLE_ARN", "arn:aws:iam::12345:role/glue"),
    ],
)
def test_a_bad_variable_fails_resolve_config_at_once_without_retries(
    variable, value, dag_runner, airflow_twin, monkeypatch
):
    from airflow import settings
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import select

    monkeypatch.setenv(f"AIRFLOW_VAR_{variable}", value)
    calls_before = sum(airflow_twin.control("state")["calls"].values())
    result = dag_runner(DAG_ID, {})
    assert result.state == "failed" and result.task_states["prepare.resolve_config"] == "failed", (
        result.task_states
    )
    with settings.Session() as session:
        ti = session.scalars(
            select(TaskInstance).where(
                TaskInstance.dag_id == DAG_ID,
                TaskInstance.run_id == result.run_id,
                TaskInstance.task_id == "prepare.resolve_config",
            )
        ).one()
    assert ti.try_number == 1 and ti.max_tries == 2  # it could have retried twice; it did not
    # nothing ran after it: no bucket made, no Glue job, no training job
    assert all(
        state in (None, "upstream_failed")
        for task, state in result.task_states.items()
        if task != "prepare.resolve_config"
    )
    assert (
        sum(airflow_twin.control("state")["calls"].values()) - calls_before <= 1
    )  # the region look-up at most
