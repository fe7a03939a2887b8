"""churn_xgboost_pipeline under faults (issue 8, items 2 and 3): every create of the run has its first
answer lost (the twin executes it and answers 503, as when a response is lost on the way), and
polls meet throttling and 5xx answers. The run succeeds with its counts reconciled and exactly one
of each resource: one Glue run, one training job, one model package version, one model, one
endpoint config, one CreateEndpoint; then a second run updates the endpoint in place with one
UpdateEndpoint although that answer is lost too."""

from __future__ import annotations

import json
import uuid

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

DAG_ID = "churn_xgboost_pipeline"
SUFFIX = uuid.uuid4().hex[:6]
BUCKET = f"churn-faults-{SUFFIX}"
ENDPOINT = f"churn-faults-{SUFFIX}"
GROUP = f"churn-faults-{SUFFIX}"
CONF = {"num_round": 10, "bucket": BUCKET, "endpoint_name": ENDPOINT, "model_package_group": GROUP}
LOST = [
    "glue:StartJobRun",
    "sagemaker:CreateTrainingJob",
    "sagemaker:CreateModelPackage",
    "sagemaker:CreateModel",
    "sagemaker:CreateEndpointConfig",
    "sagemaker:CreateEndpoint",
    "sagemaker:UpdateEndpoint",
]
NOISE = [  # polls and look-ups meet throttling and 5xx (botocore's and the triggers' retries ride them out)
    "glue:GetJobRun:error=1,times=2",
    "sagemaker:DescribeTrainingJob:throttle=1,times=2",
    "sagemaker:DescribeEndpoint:error=1,times=2",
    "sagemaker:ListModelPackages:throttle=1,times=1",
]


def read(twin, uri: str) -> bytes:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return twin.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()


@pytest.fixture(scope="module")
def runs(twin, dag_runner):
    before = twin.control("state")["calls"]
    twin.set_faults(*[f"{op}:drop=1,times=1" for op in LOST], *NOISE)
    try:
        first = dag_runner(DAG_ID, dict(CONF))
        counters_first = twin.control("faults")["counters"]
        second = dag_runner(DAG_ID, {**CONF, "seed": 7})
        counters = twin.control("faults")["counters"]
        after = twin.control("state")["calls"]
        calls = {key: after[key] - before.get(key, 0) for key in after}
    finally:
        twin.control("faults", "DELETE")
    return {
        "first": first,
        "second": second,
        "counters_first": counters_first,
        "counters": counters,
        "calls": calls,
    }


def test_runs_succeed_under_lost_answers_throttling_and_5xx(runs):
    first, second = runs["first"], runs["second"]
    assert first.state == "success", first.task_states
    assert second.state == "success", second.task_states
    assert first.task_states["deploy.create_endpoint"] == "success"
    assert second.task_states["deploy.update_endpoint"] == "success"
    # every lost-answer rule was spent: each create's first answer was lost, and 6 of them in run 1
    assert runs["counters_first"]["dropped"] == len(LOST) - 1
    assert runs["counters"]["dropped"] == len(LOST)
    assert runs["counters"]["throttled"] >= 2 and runs["counters"]["errors"] >= 2


def test_counts_reconcile(runs, twin):
    for run in (runs["first"], runs["second"]):
        processed = run.xcom("prepare.resolve_config", "processed_uri")
        counts = json.loads(read(twin, f"{processed}/schema.json"))["counts"]
        assert counts["received"] == 5000
        assert (
            counts["received"]
            == counts["quarantined"] + counts["train"] + counts["validation"] + counts["test"]
        )


def test_exactly_one_of_each_resource_per_run(runs, twin):
    sm, glue = twin.client("sagemaker"), twin.client("glue")
    login = twin.airflow_connection()["login"]
    for run in (runs["first"], runs["second"]):
        job = run.xcom("prepare.resolve_config", "training_job_name")
        assert [
            j["TrainingJobName"] for j in sm.list_training_jobs(NameContains=job)["TrainingJobSummaries"]
        ] == [job]
        glue_runs = [
            r
            for r in glue.get_job_runs(JobName="churn-xgboost-preprocess", MaxResults=200)["JobRuns"]
            if run.run_id in (r.get("Arguments") or {}).get("--airflow_task_uuid", "")
        ]
        assert [r["JobRunState"] for r in glue_runs] == ["SUCCEEDED"], [
            (r["Id"][:12], r["Arguments"].get("--airflow_task_uuid"), str(r.get("StartedOn")))
            for r in glue_runs
        ]
        model = run.xcom("prepare.resolve_config", "model_name")
        assert sm.describe_model(ModelName=model)["ModelName"] == model
    packages = sm.list_model_packages(ModelPackageGroupName=GROUP)["ModelPackageSummaryList"]
    assert len(packages) == 2  # one version per run
    assert runs["calls"].get(f"{login} sagemaker:CreateEndpoint") == 1
    assert runs["calls"].get(f"{login} sagemaker:UpdateEndpoint") == 1
    endpoint = sm.describe_endpoint(EndpointName=ENDPOINT)
    assert endpoint["EndpointStatus"] == "InService"
    assert endpoint["EndpointConfigName"] == runs["second"].xcom(
        "prepare.resolve_config", "endpoint_config_name"
    )
