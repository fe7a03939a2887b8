"""churn_xgboost_pipeline end to end on the twin (Glue runs the real script, SageMaker trains the
real XGBoost and serves it), with ``dag.test()``.

Three DAG runs are shared by the assertions (lean: num_round 20):

1. the churn data with default Params (fresh bucket, staged by the DAG): everything lands in S3, a
   model version is registered, the endpoint is created and answers like the artifact, test AUC >= 0.90;
2. a generated CSV (text label in the middle, a categorical column, one bad row) given only through
   Params, deployed to the same endpoint: the endpoint is updated in place, not re-created;
3. an unreachable quality gate: the run stops at the gate with the message, nothing is registered
   or deployed.

Expected values are computed here from the artifacts (xgboost + scikit-learn), never taken from the
DAG's own outputs alone.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import tarfile
import uuid

import numpy as np
import pytest
import xgboost as xgb
from botocore.exceptions import ClientError
from sklearn.metrics import roc_auc_score

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

DAG_ID = "churn_xgboost_pipeline"
SUFFIX = uuid.uuid4().hex[:6]
BUCKET = f"churn-e2e-{SUFFIX}"
ENDPOINT = f"churn-e2e-{SUFFIX}"
GROUP = f"churn-e2e-{SUFFIX}"
FAST = {"num_round": 20, "bucket": BUCKET, "endpoint_name": ENDPOINT, "model_package_group": GROUP}


def s3_uri(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def read(twin, uri: str) -> bytes:
    bucket, key = s3_uri(uri)
    return twin.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()


def load_model(twin, artifact_uri: str) -> xgb.Booster:
    with tarfile.open(fileobj=io.BytesIO(read(twin, artifact_uri)), mode="r:gz") as archive:
        data = archive.extractfile("xgboost-model").read()
    booster = xgb.Booster()
    booster.load_model(bytearray(data))
    return booster


def load_test_split(twin, test_uri: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    lines = [line for line in read(twin, test_uri).decode().splitlines() if line.strip()]
    array = np.array([[float(v) for v in line.split(",")] for line in lines])
    return array[:, 0], array[:, 1:], lines


def invoke(twin, endpoint: str, rows: list[str]) -> list[float]:
    body = "\n".join(row.split(",", 1)[1] for row in rows)
    answer = twin.client("sagemaker-runtime").invoke_endpoint(
        EndpointName=endpoint, ContentType="text/csv", Accept="text/csv", Body=body.encode()
    )
    return [float(v) for v in re.split(r"[,\s]+", answer["Body"].read().decode().strip())]


def config(run, key: str):
    return run.xcom("prepare.resolve_config", key)


@pytest.fixture(scope="module")
def churn_run(dag_runner):
    return dag_runner(DAG_ID, dict(FAST))


@pytest.fixture(scope="module")
def other_csv(twin, churn_run) -> tuple[str, int]:
    """A generated binary-label CSV in S3: text label 'outcome' (churned/stayed) in the middle of the
    columns, a categorical column, and one row with a non-numeric value (must be quarantined)."""
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=1200, n_features=6, n_informative=4, n_redundant=1, class_sep=1.2, random_state=3
    )
    segments = np.array(["retail", "smb", "enterprise"])[np.digitize(x[:, 0], [-0.5, 0.5])]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["f0", "f1", "f2", "outcome", "segment", "f3", "f4", "f5"])
    for features, label, segment in zip(x, y, segments, strict=True):
        values = [f"{v:.5f}" for v in features]
        writer.writerow([*values[:3], "churned" if label else "stayed", segment, *values[3:]])
    writer.writerow(["0.1", "not-a-number", "0.3", "stayed", "smb", "0.4", "0.5", "0.6"])
    key = "incoming/generated.csv"
    twin.client("s3").put_object(Bucket=BUCKET, Key=key, Body=out.getvalue().encode())
    return f"s3://{BUCKET}/{key}", len(x) + 1


@pytest.fixture(scope="module")
def other_run(dag_runner, other_csv, churn_run):
    uri, _ = other_csv
    conf = {
        **FAST,
        "dataset_uri": uri,
        "label_column": "outcome",
        "positive_value": "churned",
        "quality_threshold": 0.8,
    }
    return dag_runner(DAG_ID, conf)


@pytest.fixture(scope="module")
def gate_run(dag_runner, churn_run):
    conf = {
        **FAST,
        "num_round": 5,
        "quality_metric": "auc",
        "quality_threshold": 0.999,
        "endpoint_name": f"{ENDPOINT}-gate",
        "model_package_group": f"{GROUP}-gate",
    }
    return dag_runner(DAG_ID, conf)


def test_churn_run_succeeds_and_leaves_data_model_and_report(churn_run, twin):
    assert churn_run.state == "success", churn_run.task_states
    assert churn_run.task_states["deploy.create_endpoint"] == "success"
    assert churn_run.task_states["deploy.update_endpoint"] == "skipped"
    s3 = twin.client("s3")
    # the bundled CSV was staged to the default dataset URI of the (new) bucket
    assert config(churn_run, "dataset_uri") == f"s3://{BUCKET}/churn/raw/mlc_churn.csv"
    processed = config(churn_run, "processed_uri")
    schema = json.loads(read(twin, f"{processed}/schema.json"))
    counts = schema["counts"]
    assert counts["received"] == 5000
    assert (
        counts["received"] == counts["quarantined"] + counts["train"] + counts["validation"] + counts["test"]
    )
    for split in ("train", "validation", "test"):
        rows = read(twin, f"{processed}/{split}/{split}.csv").decode().splitlines()
        assert len(rows) == counts[split]
        assert len(rows[0].split(",")) == 1 + len(schema["feature_columns"])
    s3.head_object(Bucket=BUCKET, Key=s3_uri(f"{processed}/quarantine/rows.jsonl")[1])

    evaluation = churn_run.xcom("evaluate.evaluate")
    artifact = evaluation["model_artifact"]
    assert artifact.startswith(f"s3://{BUCKET}/churn/runs/") and artifact.endswith("/output/model.tar.gz")
    report = read(twin, evaluation["report_uri"]).decode()
    assert "data:image/png;base64," in report
    assert f"{evaluation['metrics']['auc']:.4f}" in report
    assert "num_round" in report and str(counts["test"]) in report
    assert read(twin, evaluation["roc_uri"]).startswith(b"\x89PNG")


def test_evaluate_report_link_opens_the_report_in_a_browser(churn_run, twin):
    """The evaluate task's "Report" extra link (XCom ``_link_S3ReportLink``, what the UI shows): on
    the twin, its object viewer with the viewer token; it serves the real report.html (with the AUC
    of metrics.json), and nothing without the token."""
    import urllib.error
    import urllib.request

    evaluation = churn_run.xcom("evaluate.evaluate")
    link = churn_run.xcom("evaluate.evaluate", "_link_S3ReportLink")
    bucket, key = s3_uri(evaluation["report_uri"])
    assert link and link.startswith(f"{twin.url}/_twin/s3/{bucket}/"), link
    with urllib.request.urlopen(link, timeout=30) as resp:
        assert resp.headers["Content-Type"].startswith("text/html")
        page = resp.read().decode()
    assert page == read(twin, evaluation["report_uri"]).decode()
    auc = json.loads(read(twin, evaluation["metrics_uri"]))["auc"]
    assert f"{auc:.4f}" in page
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(link.split("?", 1)[0], timeout=30)
    assert refused.value.code == 403


def test_churn_model_reaches_auc_and_endpoint_answers_like_the_artifact(churn_run, twin):
    evaluation = churn_run.xcom("evaluate.evaluate")
    booster = load_model(twin, evaluation["model_artifact"])
    labels, features, rows = load_test_split(twin, config(churn_run, "test_uri"))
    scores = booster.predict(xgb.DMatrix(features))
    auc = roc_auc_score(labels, scores)
    assert auc >= 0.90
    assert abs(auc - evaluation["metrics"]["auc"]) < 1e-4
    accuracy = float(((scores >= 0.5) == labels).mean())
    assert abs(accuracy - evaluation["metrics"]["accuracy"]) < 1e-9

    sm = twin.client("sagemaker")
    endpoint = sm.describe_endpoint(EndpointName=ENDPOINT)
    assert endpoint["EndpointStatus"] == "InService"
    assert endpoint["EndpointConfigName"] == config(churn_run, "endpoint_config_name")
    capture = sm.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])[
        "DataCaptureConfig"
    ]
    assert capture["EnableCapture"] and capture["DestinationS3Uri"] == f"s3://{BUCKET}/churn/datacapture"

    picked = list(range(0, len(rows), max(1, len(rows) // 25)))
    answers = invoke(twin, ENDPOINT, [rows[i] for i in picked])
    np.testing.assert_allclose(answers, scores[picked], atol=1e-5)

    smoke = churn_run.xcom("deploy.smoke_test")
    assert smoke["endpoint_name"] == ENDPOINT
    np.testing.assert_allclose(smoke["sample_predictions"], scores[smoke["rows"]], atol=1e-5)


def test_churn_model_version_registered_with_metrics(churn_run, twin):
    sm = twin.client("sagemaker")
    versions = sm.list_model_packages(ModelPackageGroupName=GROUP)["ModelPackageSummaryList"]
    assert len(versions) == 1
    package = sm.describe_model_package(ModelPackageName=versions[0]["ModelPackageArn"])
    assert package["ModelApprovalStatus"] == "Approved"
    assert package["ModelPackageArn"] == churn_run.xcom("deploy.register_model")
    auc = churn_run.xcom("evaluate.evaluate")["metrics"]["auc"]
    assert float(package["CustomerMetadataProperties"]["test_auc"]) == pytest.approx(auc, abs=1e-6)
    container = package["InferenceSpecification"]["Containers"][0]
    assert container["ModelDataUrl"] == churn_run.xcom("evaluate.evaluate")["model_artifact"]
    # registered and deployed with the image and role the model was trained with
    assert container["Image"] == config(churn_run, "image_uri")
    model = sm.describe_model(ModelName=config(churn_run, "model_name"))
    assert model["ExecutionRoleArn"] == config(churn_run, "role_arn")
    assert model["PrimaryContainer"]["ModelPackageName"] == package["ModelPackageArn"]
    metrics_uri = package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
    assert json.loads(read(twin, metrics_uri))["auc"] == auc
    # one training job for the run
    job = config(churn_run, "training_job_name")
    jobs = sm.list_training_jobs(NameContains=job)["TrainingJobSummaries"]
    assert [j["TrainingJobName"] for j in jobs] == [job]


def test_other_csv_given_only_params_trains_and_updates_the_endpoint(other_run, other_csv, churn_run, twin):
    assert other_run.state == "success", other_run.task_states
    # the endpoint existed: updated in place, not created again
    assert other_run.task_states["deploy.update_endpoint"] == "success"
    assert other_run.task_states["deploy.create_endpoint"] == "skipped"
    _, sent_rows = other_csv
    schema = json.loads(read(twin, f"{config(other_run, 'processed_uri')}/schema.json"))
    assert schema["label_column"] == "outcome"
    assert schema["counts"]["quarantined"] == 1
    assert schema["counts"]["received"] == sent_rows
    assert "segment_enterprise" in schema["feature_columns"] and "outcome" not in schema["feature_columns"]
    quarantine = (
        read(twin, f"{config(other_run, 'processed_uri')}/quarantine/rows.jsonl").decode().splitlines()
    )
    assert "not-a-number" in quarantine[0]

    sm = twin.client("sagemaker")
    endpoint = sm.describe_endpoint(EndpointName=ENDPOINT)
    assert endpoint["EndpointStatus"] == "InService"
    assert endpoint["EndpointConfigName"] == config(other_run, "endpoint_config_name")
    assert endpoint["EndpointConfigName"] != config(churn_run, "endpoint_config_name")

    booster = load_model(twin, other_run.xcom("evaluate.evaluate")["model_artifact"])
    labels, features, rows = load_test_split(twin, config(other_run, "test_uri"))
    assert booster.num_features() == len(schema["feature_columns"]) == features.shape[1]
    scores = booster.predict(xgb.DMatrix(features))
    assert roc_auc_score(labels, scores) == pytest.approx(
        other_run.xcom("evaluate.evaluate")["metrics"]["auc"], abs=1e-4
    )
    np.testing.assert_allclose(invoke(twin, ENDPOINT, rows[:10]), scores[:10], atol=1e-5)
    assert len(sm.list_model_packages(ModelPackageGroupName=GROUP)["ModelPackageSummaryList"]) == 2


def test_unreachable_gate_stops_the_run_with_the_reason(gate_run, twin):
    assert gate_run.state == "failed"
    assert gate_run.task_states["evaluate.evaluate"] == "success"
    assert gate_run.task_states["evaluate.quality_gate"] == "failed"
    for task_id in (
        "deploy.register_model",
        "deploy.create_model",
        "deploy.create_endpoint_config",
        "deploy.choose_endpoint_action",
    ):
        assert gate_run.task_states[task_id] == "upstream_failed", task_id
    auc = gate_run.xcom("evaluate.evaluate")["metrics"]["auc"]
    verdict = gate_run.xcom("evaluate.quality_gate", "gate_verdict")
    assert verdict["passed"] is False and verdict["value"] == auc
    assert verdict["message"] == f"test auc {auc:.4f} is below the quality gate 0.9990 by {0.999 - auc:.4f}"
    sm = twin.client("sagemaker")
    with pytest.raises(ClientError) as no_endpoint:
        sm.describe_endpoint(EndpointName=f"{ENDPOINT}-gate")
    assert no_endpoint.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as no_model:
        sm.describe_model(ModelName=config(gate_run, "model_name"))
    assert no_model.value.response["Error"]["Code"] == "ValidationException"
    assert sm.list_model_packages(ModelPackageGroupName=f"{GROUP}-gate")["ModelPackageSummaryList"] == []


def test_retried_training_attaches_to_its_job(churn_run, twin, airflow_twin):
    """Two executions of the training operator for one job name: one training job, the second
    attaches (defers on it or returns it) instead of starting another."""
    from airflow.sdk.exceptions import TaskDeferred
    from aws_ml_provider.operators.sagemaker_training import SageMakerTrainingAttachOperator

    name = f"churn-retry-{SUFFIX}"
    job_config = {
        "TrainingJobName": name,
        "AlgorithmSpecification": {
            "TrainingImage": config(churn_run, "image_uri"),
            "TrainingInputMode": "File",
        },
        "RoleArn": config(churn_run, "role_arn"),
        "HyperParameters": {"num_round": "30", "objective": "binary:logistic"},
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "ContentType": "text/csv",
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": config(churn_run, "train_uri")}
                },
            }
        ],
        "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/retry-test"},
        "ResourceConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
    }

    def attempt():
        op = SageMakerTrainingAttachOperator(
            task_id="train", config=json.loads(json.dumps(job_config)), deferrable=True, check_interval=1
        )
        try:
            return op, op.execute({}), None
        except TaskDeferred as deferred:
            return op, None, deferred

    attempt()  # the first try starts the job (and defers, or finds it done)
    op, result, deferred = attempt()  # the retry
    sm = twin.client("sagemaker")
    jobs = sm.list_training_jobs(NameContains=name)["TrainingJobSummaries"]
    assert [j["TrainingJobName"] for j in jobs] == [name]
    if deferred is not None:
        assert deferred.trigger.job_name == name

        async def first_event():
            async for event in deferred.trigger.run():
                return event

        event = asyncio.run(first_event())
        assert event.payload["status"] == "success", event.payload
        result = op.execute_complete({}, event.payload)
    assert result["Training"]["TrainingJobName"] == name
    assert result["Training"]["TrainingJobStatus"] == "Completed"
    assert len(sm.list_training_jobs(NameContains=name)["TrainingJobSummaries"]) == 1


def test_missing_dataset_fails_fast_without_retries(dag_runner, churn_run, twin):
    """A dataset URI given by the user that does not exist stops the run at setup (no retries, no
    Glue run, nothing written for the run): the bundled data is staged only to the default URI."""
    missing = f"s3://{BUCKET}/incoming/does-not-exist.csv"
    run = dag_runner(DAG_ID, {**FAST, "dataset_uri": missing, "endpoint_name": f"{ENDPOINT}-missing"})
    assert run.state == "failed"
    assert run.task_states["prepare.setup"] == "failed"
    assert run.task_states["prepare.preprocess"] == "upstream_failed"
    s3 = twin.client("s3")
    with pytest.raises(ClientError) as absent:  # not staged: the bundled data goes to the default URI only
        s3.head_object(Bucket=BUCKET, Key="incoming/does-not-exist.csv")
    assert absent.value.response["Error"]["Code"] == "404"
    prefix = s3_uri(config(run, "processed_uri"))[1]
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("KeyCount", 0) == 0
