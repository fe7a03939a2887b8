"""The Amazon provider's own SageMaker example DAGs (tests/provider_examples/, each adaptation listed
at the top of its file) run with ``dag.test()`` against the twin: every step the twin claims to
support passes, and the steps it refuses (AutoML) fail with NotImplemented, not a fake success."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

EXAMPLES = ROOT / "tests" / "provider_examples"


@pytest.fixture
def raw_boto3_on_the_twin(airflow_twin, monkeypatch):
    """The example DAGs' own ``boto3.client(...)`` calls (outside the provider's hooks) go to the twin."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", airflow_twin.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    # dag.test() writes the DAG to the metadata DB from its bundle: the examples' folder is the
    # dags-folder bundle for the test
    from airflow import settings

    monkeypatch.setattr(settings, "DAGS_FOLDER", str(EXAMPLES))
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(EXAMPLES))
    return airflow_twin


def test_example_sagemaker(dag_runner, raw_boto3_on_the_twin):
    twin = raw_boto3_on_the_twin
    result = dag_runner("example_sagemaker", dag_file=str(EXAMPLES / "example_sagemaker.py"))
    refused = {"auto_ML": "failed", "await_auto_ML": "upstream_failed", "stop_automl_job": "failed"}
    for task_id, state in result.task_states.items():
        assert state == refused.get(task_id, "success"), (task_id, result.task_states)
    assert len(result.task_states) == 23
    assert result.state == "failed"  # the AutoML steps, honestly

    sm = twin.client("sagemaker")
    with pytest.raises(Exception) as automl:
        sm.describe_auto_ml_job(AutoMLJobName="sm-example-automl")
    assert automl.value.response["Error"]["Code"] == "NotImplemented"

    # the steps ran for real: the processing script wrote the splits the training and transform read
    processing = sm.describe_processing_job(ProcessingJobName="sm-example-processing")
    assert processing["ProcessingJobStatus"] == "Completed"
    training = sm.describe_training_job(TrainingJobName="sm-example-train")
    assert training["TrainingJobStatus"] == "Completed"
    assert {m["MetricName"] for m in training["FinalMetricDataList"]} == {"train:mlogloss"}
    tuning = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="sm-example-tune")
    assert tuning["HyperParameterTuningJobStatus"] == "Completed"
    jobs = sm.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="sm-example-tune"
    )["TrainingJobSummaries"]
    assert len(jobs) == 3 and all(j["TrainingJobStatus"] == "Completed" for j in jobs)
    merror = {j["TrainingJobName"]: j["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for j in jobs}
    assert merror[tuning["BestTrainingJob"]["TrainingJobName"]] == min(merror.values())
    transform = sm.describe_transform_job(TransformJobName="sm-example-transform")
    assert transform["TransformJobStatus"] == "Completed", transform.get("FailureReason")
    # teardown: the model is gone, the bucket too
    with pytest.raises(Exception) as model:
        sm.describe_model(ModelName="sm-example-KNN-model")
    assert model.value.response["Error"]["Code"] == "ValidationException"


def test_example_sagemaker_endpoint(dag_runner, raw_boto3_on_the_twin):
    import numpy as np
    import xgboost as xgb

    twin = raw_boto3_on_the_twin
    result = dag_runner(
        "example_sagemaker_endpoint", dag_file=str(EXAMPLES / "example_sagemaker_endpoint.py")
    )
    assert result.state == "success", result.task_states
    assert set(result.task_states.values()) == {"success"} and len(result.task_states) == 15

    # the endpoint answered what the trained model predicts (the same training, here)
    rows = np.array([[4.9, 2.5, 4.5, 1.7], [7.0, 3.2, 4.7, 1.4], [7.3, 2.9, 6.3, 1.8], [5.1, 3.5, 1.4, 0.2]])
    booster = xgb.train(
        {"objective": "multi:softmax", "num_class": 3},
        xgb.DMatrix(rows, label=[0, 1, 0, 2]),
        num_boost_round=5,
    )
    expected = float(booster.predict(xgb.DMatrix(np.array([[6.4, 3.2, 4.5, 1.5]])))[0])
    assert result.xcom("call_endpoint") == [{"score": expected}]

    logs = twin.client("logs")
    group = "/aws/sagemaker/Endpoints/sm-endpoint-example-endpoint"
    described = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
    assert [(g["logGroupName"], g.get("retentionInDays")) for g in described] == [(group, 1)]
    sm = twin.client("sagemaker")
    sm.get_waiter("endpoint_deleted").wait(  # Deleting for a moment, then gone
        EndpointName="sm-endpoint-example-endpoint", WaiterConfig={"Delay": 0.5, "MaxAttempts": 20}
    )
    with pytest.raises(Exception) as gone:
        sm.describe_endpoint(EndpointName="sm-endpoint-example-endpoint")
    assert gone.value.response["Error"]["Code"] == "ValidationException"
