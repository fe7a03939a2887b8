"""A deployment-shaped run of churn_xgboost_pipeline: api-server, scheduler, dag-processor and triggerer as
separate processes on a fresh PostgreSQL database (LocalExecutor), a twin of its own, the run triggered
through the public REST API with a JWT from the simple auth manager, the deferred waits resumed by the
triggerer process, the run reaching success; and an image_annotation run (Rekognition, A2I loops answered
by a reviewer while the sensor waits in the triggerer) on the same deployment.

The deployment (tests/deployment.py) needs PostgreSQL at 127.0.0.1:5432 (trust auth, user postgres):
without it the test skips on a developer machine and fails under CI. Each process logs to
<tmp>/logs/<name>.log; everything is stopped and the database dropped in teardown, pass or fail.
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid

import pytest

from tests.deployment import AIRFLOW_ACCESS_KEY, ROOT, query

DAG_ID = "churn_xgboost_pipeline"
#: the tasks of the DAG that defer (Glue run, training job, endpoint creation)
DEFERRING_TASKS = {"prepare.preprocess", "train", "deploy.create_endpoint"}
MWAA_POLICY = ROOT / "include" / "iam" / "mwaa-execution-role-policy.json"
#: botocore model -> IAM service prefix, where they differ
IAM_PREFIX = {"sagemaker-runtime": "sagemaker", "sagemaker-a2i-runtime": "sagemaker"}
#: the twin names S3 calls by method and target; the IAM action each needs
S3_ACTIONS = {
    "GetObject": "s3:GetObject",
    "HeadObject": "s3:GetObject",
    "PutObject": "s3:PutObject",
    "PostObject": "s3:PutObject",
    "DeleteObject": "s3:DeleteObject",
    "PostBucket": "s3:DeleteObject",
    "HeadBucket": "s3:ListBucket",
    "GetBucket": "s3:ListBucket",
    "PutBucket": "s3:CreateBucket",
}
#: actions every principal may call without a permission
NO_PERMISSION_NEEDED = {"sts:GetCallerIdentity"}

pytestmark = [pytest.mark.deployment, pytest.mark.timeout(1200)]


def test_dag_run_through_the_rest_api_with_deferrals_resumed_by_the_triggerer(deployment):
    dep = deployment
    started = time.monotonic()
    # every component heartbeats into the same PostgreSQL database, as separate jobs
    jobs = dict(query(dep.db, "SELECT job_type, count(*) FROM job WHERE state = 'running' GROUP BY job_type"))
    assert {"SchedulerJob", "TriggererJob", "DagProcessorJob"} <= set(jobs), jobs
    (triggerer_job_id,) = query(dep.db, "SELECT id FROM job WHERE job_type = 'TriggererJob'")[0]

    # the dag-processor parses every DAG of dags/ without an import error
    dag_files = [p for p in (ROOT / "dags").glob("*.py") if "dag" in p.read_text()]
    dep.wait(
        "the DAGs to be parsed",
        lambda: dep.request("GET", "/api/v2/dags")["total_entries"] >= len(dag_files),
        timeout=180,
    )
    errors = dep.request("GET", "/api/v2/importErrors")
    assert errors["total_entries"] == 0, errors
    plugins = {p["name"] for p in dep.request("GET", "/api/v2/plugins")["plugins"]}
    assert "aws_ml_provider" in plugins

    # configure as an operator would: a Variable, then unpause and trigger with conf
    bucket = f"deploy-{uuid.uuid4().hex[:10]}"
    dep.twin.client("s3").create_bucket(Bucket=bucket)  # the deployer creates the data bucket
    dep.request("POST", "/api/v2/variables", {"key": "ml_bucket", "value": bucket})
    dag = dep.request("GET", f"/api/v2/dags/{DAG_ID}")
    assert dag["is_paused"] is True  # paused at creation, as configured
    dep.request("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False})
    run = dep.request(
        "POST", f"/api/v2/dags/{DAG_ID}/dagRuns", {"logical_date": None, "conf": {"num_round": 10}}
    )
    run_id = run["dag_run_id"]
    assert run["conf"] == {"num_round": 10}

    seen: dict[str, set] = {}

    def finished():
        tis = dep.request("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances?limit=100")
        for ti in tis["task_instances"]:
            seen.setdefault(ti["task_id"], set()).add(ti["state"])
        state = dep.request("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")["state"]
        return state if state in {"success", "failed"} else None

    state = dep.wait(f"{DAG_ID} run {run_id}", finished, timeout=900, interval=1.0)
    run_seconds = time.monotonic() - started
    final = {
        t: s for t, s in query(dep.db, "SELECT task_id, state FROM task_instance WHERE run_id = %s", run_id)
    }
    assert state == "success", f"run {state}: {final}\n--- scheduler ---\n{dep.tail('scheduler')}"
    assert query(dep.db, "SELECT state FROM dag_run WHERE run_id = %s", run_id) == [("success",)]
    assert set(final.values()) <= {"success", "skipped"}, final

    # the deferring tasks went through DEFERRED and were resumed after the triggerer process fired
    # their trigger: the task log shows the deferral and the triggerer job's own log file for the
    # attempt (attempt=1.log.trigger.<triggerer job id>.log) shows the event it fired
    assert DEFERRING_TASKS <= set(final)
    run_logs = dep.home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}"
    for task_id in DEFERRING_TASKS:
        task_log = (run_logs / f"task_id={task_id}" / "attempt=1.log").read_text()
        assert "Pausing task as DEFERRED" in task_log, task_id
        trigger_log = run_logs / f"task_id={task_id}" / f"attempt=1.log.trigger.{triggerer_job_id}.log"
        events = [json.loads(line) for line in trigger_log.read_text().splitlines() if line.startswith("{")]
        fired = [e for e in events if e.get("event") == "Trigger fired event"]
        assert fired and "'status': 'success'" in fired[-1]["result"], (task_id, events[-3:])
        assert final[task_id] == "success"
    # and the REST API showed at least one of them in the deferred state while it waited
    assert any("deferred" in seen.get(t, set()) for t in DEFERRING_TASKS), seen

    # the work really happened on the twin, in the bucket the Variable named
    s3 = dep.twin.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="churn/runs/").get("Contents", [])]
    assert any(k.endswith("/output/model.tar.gz") for k in keys), keys
    metrics_key = next(k for k in keys if k.endswith("evaluation/metrics.json"))
    metrics = json.loads(s3.get_object(Bucket=bucket, Key=metrics_key)["Body"].read())
    assert "auc" in json.dumps(metrics)
    endpoint = dep.twin.client("sagemaker").describe_endpoint(EndpointName="churn-xgboost")
    assert endpoint["EndpointStatus"] == "InService"

    # the evaluate task's "Report" extra link, as the UI gets it: the twin's object viewer serving the
    # report with the AUC of metrics.json (the worker built it with the viewer token in its environment)
    links = dep.request(
        "GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/evaluate.evaluate/links"
    )
    report_url = links["extra_links"]["Report"]
    assert report_url.startswith(f"{dep.twin.url}/_twin/s3/{bucket}/"), links
    with urllib.request.urlopen(report_url, timeout=30) as resp:
        assert f"{metrics['auc']:.4f}" in resp.read().decode()

    # every AWS call the Airflow processes made is an action the MWAA execution role policy allows
    calls = _airflow_calls_allowed_by_the_mwaa_policy(dep)
    assert any(c.startswith("sagemaker:") for c in calls) and any(c.startswith("glue:") for c in calls), calls

    dep.timings["dag_run_s"] = round(run_seconds, 1)
    print(f"deployment timings: {dep.timings}")


def test_image_annotation_run_with_a_reviewer_answering_its_loops(deployment):
    """image_annotation as a deployment runs it: triggered through the REST API with the sample
    photos staged, DetectLabels on the twin, the review band's A2I loops answered by a reviewer
    (the twin's review API) while the sensor waits deferred in the triggerer, the run reaching
    success with counts that reconcile, every call allowed by the MWAA execution role policy."""
    from tests.e2e.test_image_annotation import Reviewer, photo_files, plan_targets, service_confidences

    dep = deployment
    dag_id = "image_annotation"
    s3 = dep.twin.client("s3")
    # targets just above / below what the twin's DetectLabels says of the photos: some are labelled,
    # some reviewed, some rejected
    scratch = f"deploy-plan-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=scratch)
    names = [p.name for p in photo_files()]
    for path in photo_files():
        s3.put_object(Bucket=scratch, Key=f"p/{path.name}", Body=path.read_bytes())
    targets = plan_targets(service_confidences(dep.twin, scratch, "p/", names))
    bucket = f"deploy-img-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    conf = {
        "input_prefix": f"s3://{bucket}/unlabeled/",
        "output_prefix": f"s3://{bucket}/labeled/",
        "quarantine_prefix": f"s3://{bucket}/quarantine/",
        "stage_samples": True,
        "target_labels": targets,
        "review_band": 10.0,
        "flow_definition_name": f"image-review-{bucket[-8:]}",
    }
    dep.wait(
        f"{dag_id} to be parsed",
        lambda: dag_id in {d["dag_id"] for d in dep.request("GET", "/api/v2/dags?limit=100")["dags"]},
        timeout=180,
    )
    dep.request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
    reviewer = Reviewer(dep.twin, bucket)
    reviewer.start()
    try:
        run_id = dep.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf})[
            "dag_run_id"
        ]

        def finished():
            state = dep.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"]
            return state if state in {"success", "failed"} else None

        state = dep.wait(f"{dag_id} run {run_id}", finished, timeout=600, interval=1.0)
    finally:
        reviewer.stop.set()
        reviewer.join(10)
    final = dict(query(dep.db, "SELECT task_id, state FROM task_instance WHERE run_id = %s", run_id))
    assert state == "success", f"run {state}: {final}\n--- scheduler ---\n{dep.tail('scheduler')}"
    assert final["wait_for_review"] == "success"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="labeled/_runs/").get("Contents", [])]
    (summary_key,) = [k for k in keys if k.endswith("/summary.json")]
    summary = json.loads(s3.get_object(Bucket=bucket, Key=summary_key)["Body"].read())
    assert summary["scanned"] == len(names)
    assert summary["scanned"] == (
        summary["labelled"] + summary["reviewed"] + summary["rejected"] + summary["quarantined"]
    )
    assert summary["reviewed"] == len(reviewer.answered) >= 1, (summary, reviewer.errors)
    assert summary["labelled"] >= 1 and summary["quarantined"] >= 1  # corrupt.jpg
    calls = _airflow_calls_allowed_by_the_mwaa_policy(dep)
    assert "rekognition:DetectLabels" in calls and "sagemaker-a2i-runtime:StartHumanLoop" in calls, calls


def _airflow_calls_allowed_by_the_mwaa_policy(dep) -> list[str]:
    """The AWS operations the Airflow processes called (the twin records them per access key),
    asserted to be actions the MWAA execution role policy allows."""
    calls = sorted(
        key.split(" ", 1)[1]
        for key in dep.twin.control("state")["calls"]
        if key.startswith(f"{AIRFLOW_ACCESS_KEY} ")
    )
    allowed = {
        action
        for statement in json.loads(MWAA_POLICY.read_text())["Statement"]
        if statement["Effect"] == "Allow"
        for action in (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
    }
    needed = {_iam_action(call) for call in calls}
    assert not needed - allowed - NO_PERMISSION_NEEDED, (
        f"not allowed by {MWAA_POLICY.name}: {needed - allowed}"
    )
    print(f"AWS operations called by Airflow: {calls}")
    return calls


def _iam_action(call: str) -> str:
    service, operation = call.split(":", 1)
    if service == "s3":
        return S3_ACTIONS.get(operation, f"s3:{operation}")
    return f"{IAM_PREFIX.get(service, service)}:{operation}"
