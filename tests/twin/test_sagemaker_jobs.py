"""SageMaker jobs the twin used to fake through moto, now real (boto3 over HTTP, --strict): batch
transform with XGBoost models, hyperparameter tuning that trains its candidates, MetricDefinitions
(and the metrics in CloudWatch), endpoint log groups, the Deleting state, one-line FailureReasons,
and NotImplemented for what the twin cannot run."""

from __future__ import annotations

import asyncio
import io
import json
import re
import tarfile
import time
import uuid

import numpy as np
import pytest
from botocore.exceptions import ClientError, WaiterError

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
ROLE = "arn:aws:iam::123456789012:role/sagemaker-execution"
WAIT = {"Delay": 0.5, "MaxAttempts": 240}
HP = {"num_round": "8", "objective": "binary:logistic", "eval_metric": "auc", "max_depth": "3", "eta": "0.3"}


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _code(exc: pytest.ExceptionInfo) -> str:
    return exc.value.response["Error"]["Code"]


def _csv(rows) -> str:
    return "\n".join(",".join(repr(float(v)) for v in row) for row in rows) + "\n"


@pytest.fixture(scope="module")
def data(twin, s3):
    """A small random binary problem (label first), train / validation / two inference files."""
    rng = np.random.default_rng(int(uuid.uuid4().int % 2**32))
    x = rng.normal(size=(600, 4)).astype(np.float32)
    y = ((x[:, 0] + 0.5 * x[:, 1] - x[:, 2] + rng.normal(scale=0.5, size=600)) > 0).astype(int)
    bucket = _name("jobs")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="train/d.csv", Body=_csv(np.column_stack([y[:400], x[:400]])))
    s3.put_object(Bucket=bucket, Key="validation/d.csv", Body=_csv(np.column_stack([y[400:], x[400:]])))
    s3.put_object(Bucket=bucket, Key="batch/a.csv", Body=_csv(x[400:450]))
    s3.put_object(Bucket=bucket, Key="batch/more/b.csv", Body=_csv(x[450:470]))
    return {"bucket": bucket, "x": x, "y": y}


def _training(name: str, bucket: str, hp: dict, **algo) -> dict:
    return {
        "TrainingJobName": name,
        "RoleArn": ROLE,
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File", **algo},
        "HyperParameters": hp,
        "InputDataConfig": [
            {
                "ChannelName": channel,
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/{channel}/"}
                },
                "ContentType": "text/csv",
            }
            for channel in ("train", "validation")
        ],
        "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/models"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
    }


def _booster(s3, uri: str):
    import xgboost as xgb

    bucket, _, key = uri[5:].partition("/")
    with tarfile.open(fileobj=io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read())) as tar:
        raw = tar.extractfile("xgboost-model").read()
    booster = xgb.Booster()
    booster.load_model(bytearray(raw))
    return booster


@pytest.fixture(scope="module")
def trained(sm, s3, data):
    """One training job with a metric definition of its own; its model (CreateModel)."""
    name = _name("jobs-train")
    sm.create_training_job(
        **_training(
            name,
            data["bucket"],
            HP,
            MetricDefinitions=[
                {"Name": "validation:auc", "Regex": r"#011validation-auc:([0-9.]+)"},
                {"Name": "rounds", "Regex": r"trained ([0-9]+) rounds"},
            ],
        )
    )
    sm.get_waiter("training_job_completed_or_stopped").wait(TrainingJobName=name, WaiterConfig=WAIT)
    desc = sm.describe_training_job(TrainingJobName=name)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    model = _name("jobs-model")
    artifact = desc["ModelArtifacts"]["S3ModelArtifacts"]
    sm.create_model(
        ModelName=model, PrimaryContainer={"Image": IMAGE, "ModelDataUrl": artifact}, ExecutionRoleArn=ROLE
    )
    return {"job": desc, "model": model, "booster": _booster(s3, artifact)}


# ---- MetricDefinitions and metrics ------------------------------------------------------------
def test_metric_definitions_and_cloudwatch_metrics(twin, sm, trained, data):
    import xgboost as xgb

    desc = trained["job"]
    definitions = {d["Name"]: d["Regex"] for d in desc["AlgorithmSpecification"]["MetricDefinitions"]}
    assert set(definitions) == {"validation:auc", "rounds"}
    final = {m["MetricName"]: m["Value"] for m in desc["FinalMetricDataList"]}
    assert final["rounds"] == 8
    x, y = data["x"], data["y"]
    from sklearn.metrics import roc_auc_score

    expected = roc_auc_score(y[400:], trained["booster"].predict(xgb.DMatrix(x[400:])))
    assert final["validation:auc"] == pytest.approx(expected, abs=1e-5)

    # the built-in algorithm's own definitions when the request has none (SDK's training_job_analytics)
    plain = _name("jobs-plain")
    sm.create_training_job(**_training(plain, data["bucket"], {**HP, "num_round": "3"}))
    sm.get_waiter("training_job_completed_or_stopped").wait(TrainingJobName=plain, WaiterConfig=WAIT)
    names = [
        d["Name"]
        for d in sm.describe_training_job(TrainingJobName=plain)["AlgorithmSpecification"][
            "MetricDefinitions"
        ]
    ]
    assert {"train:auc", "validation:auc", "validation:logloss", "validation:rmse"} <= set(names)

    cloudwatch = twin.client("cloudwatch")
    stats = cloudwatch.get_metric_statistics(
        Namespace="/aws/sagemaker/TrainingJobs",
        MetricName="validation:auc",
        Dimensions=[{"Name": "TrainingJobName", "Value": desc["TrainingJobName"]}],
        StartTime=desc["TrainingStartTime"].replace(second=0, microsecond=0),
        EndTime=desc["TrainingEndTime"].replace(second=59)
        if desc["TrainingEndTime"].second < 59
        else desc["TrainingEndTime"],
        Period=60,
        Statistics=["Maximum", "SampleCount"],
    )["Datapoints"]
    assert sum(p["SampleCount"] for p in stats) == 8  # one value per round
    assert max(p["Maximum"] for p in stats) >= final["validation:auc"] - 1e-4


def test_bad_objective_fails_with_one_line_reason(sm, data):
    name = _name("jobs-badobj")
    sm.create_training_job(**_training(name, data["bucket"], {**HP, "objective": "binary:nonsense"}))
    with pytest.raises(WaiterError):
        sm.get_waiter("training_job_completed_or_stopped").wait(TrainingJobName=name, WaiterConfig=WAIT)
    desc = sm.describe_training_job(TrainingJobName=name)
    assert desc["TrainingJobStatus"] == "Failed"
    assert desc["FailureReason"] == (
        "ClientError: XGBoost rejected the training job: Unknown objective function: `binary:nonsense`"
    )


# ---- batch transform --------------------------------------------------------------------------
def _transform(name: str, model: str, bucket: str, out: str, **extra) -> dict:
    request = {
        "TransformJobName": name,
        "ModelName": model,
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/batch/"}},
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        "TransformOutput": {"S3OutputPath": f"s3://{bucket}/{out}", "AssembleWith": "Line"},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
    }
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(request.get(key), dict):
            request[key] = {**request[key], **value}
        else:
            request[key] = value
    return request


def _read(s3, bucket: str, key: str) -> str:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()


def test_batch_transform_predicts_every_line(twin, sm, s3, data, trained):
    import xgboost as xgb

    bucket, name = data["bucket"], _name("jobs-transform")
    sm.create_transform_job(**_transform(name, trained["model"], bucket, f"pred/{name}"))
    sm.get_waiter("transform_job_completed_or_stopped").wait(TransformJobName=name, WaiterConfig=WAIT)
    desc = sm.describe_transform_job(TransformJobName=name)
    assert desc["TransformJobStatus"] == "Completed", desc.get("FailureReason")
    expected = trained["booster"].predict(xgb.DMatrix(data["x"][400:470]))
    a = [float(v) for v in _read(s3, bucket, f"pred/{name}/a.csv.out").splitlines()]
    b = [float(v) for v in _read(s3, bucket, f"pred/{name}/more/b.csv.out").splitlines()]
    assert np.allclose(a + b, expected, atol=1e-6) and len(a) == 50 and len(b) == 20

    # one record per request, JSON lines out
    single = _name("jobs-single")
    sm.create_transform_job(
        **_transform(
            single,
            trained["model"],
            bucket,
            f"pred/{single}",
            BatchStrategy="SingleRecord",
            TransformOutput={"Accept": "application/jsonlines"},
        )
    )
    sm.get_waiter("transform_job_completed_or_stopped").wait(TransformJobName=single, WaiterConfig=WAIT)
    lines = _read(s3, bucket, f"pred/{single}/a.csv.out").splitlines()
    assert [json.loads(line)["score"] for line in lines] == pytest.approx(a, abs=1e-6)

    logs = twin.client("logs")
    streams = logs.describe_log_streams(
        logGroupName="/aws/sagemaker/TransformJobs", logStreamNamePrefix=single
    )
    stream = streams["logStreams"][0]["logStreamName"]
    assert re.fullmatch(rf"{single}/i-[0-9a-f]{{17}}-\d{{10}}", stream)
    messages = [
        e["message"]
        for e in logs.get_log_events(logGroupName="/aws/sagemaker/TransformJobs", logStreamName=stream)[
            "events"
        ]
    ]
    assert any("50 record(s) in 50 mini-batch(es)" in m for m in messages)
    listed = sm.list_transform_jobs(NameContains=single)["TransformJobSummaries"]
    assert [(j["TransformJobName"], j["TransformJobStatus"]) for j in listed] == [(single, "Completed")]


def test_batch_transform_filters_and_join(sm, s3, data, trained):
    import xgboost as xgb

    bucket = data["bucket"]
    ids = [f"{i},{','.join(repr(float(v)) for v in row)}" for i, row in enumerate(data["x"][:5])]
    s3.put_object(Bucket=bucket, Key="withid/rows.csv", Body="\n".join(ids) + "\n")
    name = _name("jobs-join")
    sm.create_transform_job(
        **_transform(
            name,
            trained["model"],
            bucket,
            f"pred/{name}",
            TransformInput={
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/withid/rows.csv"}
                }
            },
            DataProcessing={"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": "$[0,-1]"},
        )
    )
    sm.get_waiter("transform_job_completed_or_stopped").wait(TransformJobName=name, WaiterConfig=WAIT)
    out = [line.split(",") for line in _read(s3, bucket, f"pred/{name}/rows.csv.out").splitlines()]
    expected = trained["booster"].predict(xgb.DMatrix(data["x"][:5]))
    assert [int(row[0]) for row in out] == [0, 1, 2, 3, 4]
    assert np.allclose([float(row[1]) for row in out], expected, atol=1e-6)


def test_batch_transform_failures_and_refusals(sm, s3, data, trained):
    bucket = data["bucket"]
    s3.put_object(Bucket=bucket, Key="wide/rows.csv", Body="1,2,3,4,5,6\n")
    name = _name("jobs-wide")
    sm.create_transform_job(
        **_transform(
            name,
            trained["model"],
            bucket,
            f"pred/{name}",
            TransformInput={
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/wide/"}}
            },
        )
    )
    with pytest.raises(WaiterError):
        sm.get_waiter("transform_job_completed_or_stopped").wait(TransformJobName=name, WaiterConfig=WAIT)
    desc = sm.describe_transform_job(TransformJobName=name)
    assert desc["TransformJobStatus"] == "Failed"
    assert desc["FailureReason"] == (
        f"ClientError: s3://{bucket}/wide/rows.csv: Feature size mismatch: the model expects 4 features, "
        "the request has 6 columns"
    )

    other = _name("jobs-knn-model")
    sm.create_model(
        ModelName=other,
        PrimaryContainer={
            "Image": "382416733822.dkr.ecr.us-east-1.amazonaws.com/knn:1",
            "ModelDataUrl": f"s3://{bucket}/x",
        },
        ExecutionRoleArn=ROLE,
    )
    with pytest.raises(ClientError) as refused:
        sm.create_transform_job(**_transform(_name("jobs-knn"), other, bucket, "pred/knn"))
    assert _code(refused) == "ValidationException" and "knn:1" in refused.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as manifest:
        sm.create_transform_job(
            **_transform(
                _name("jobs-manifest"),
                trained["model"],
                bucket,
                "pred/m",
                TransformInput={
                    "DataSource": {
                        "S3DataSource": {"S3DataType": "ManifestFile", "S3Uri": f"s3://{bucket}/m"}
                    }
                },
            )
        )
    assert _code(manifest) == "NotImplemented"
    with pytest.raises(ClientError) as missing:
        sm.describe_transform_job(TransformJobName=_name("nope"))
    assert _code(missing) == "ValidationException"


def test_provider_transform_operator(airflow_aws_conn, sm, s3, data, trained):
    from airflow.providers.amazon.aws.operators.sagemaker import SageMakerTransformOperator

    bucket, name = data["bucket"], _name("jobs-op")
    result = SageMakerTransformOperator(
        task_id="transform",
        config=_transform(name, trained["model"], bucket, f"pred/{name}"),
        check_interval=1,
        max_ingestion_time=120,
    ).execute({})
    assert result["Transform"]["TransformJobStatus"] == "Completed"
    assert len(_read(s3, bucket, f"pred/{name}/a.csv.out").splitlines()) == 50


# ---- hyperparameter tuning --------------------------------------------------------------------
def _tuning(name: str, bucket: str, config: dict) -> dict:
    definition = _training("unused", bucket, {})
    for key in ("TrainingJobName", "HyperParameters"):
        definition.pop(key)
    definition["StaticHyperParameters"] = {"num_round": "6", "objective": "binary:logistic"}
    return {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": {
            "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "validation:auc"},
            **config,
        },
        "TrainingJobDefinition": definition,
    }


def _wait_tuning(sm, name: str, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        desc = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
        if desc["HyperParameterTuningJobStatus"] not in ("InProgress", "Stopping"):
            return desc
        time.sleep(0.5)
    raise AssertionError(f"tuning job {name} did not finish")


def test_tuning_trains_candidates_and_picks_the_real_best(twin, sm, data):
    name = _name("tune")[:32]
    sm.create_hyper_parameter_tuning_job(
        **_tuning(
            name,
            data["bucket"],
            {
                "Strategy": "Random",
                "RandomSeed": 7,
                "ResourceLimits": {"MaxNumberOfTrainingJobs": 4, "MaxParallelTrainingJobs": 2},
                "ParameterRanges": {
                    "IntegerParameterRanges": [{"Name": "max_depth", "MinValue": "1", "MaxValue": "6"}],
                    "ContinuousParameterRanges": [
                        {"Name": "eta", "MinValue": "0.01", "MaxValue": "0.5", "ScalingType": "Logarithmic"}
                    ],
                },
            },
        )
    )
    desc = _wait_tuning(sm, name)
    assert desc["HyperParameterTuningJobStatus"] == "Completed", desc.get("FailureReason")
    assert desc["TrainingJobStatusCounters"]["Completed"] == 4
    assert desc["ObjectiveStatusCounters"] == {"Succeeded": 4, "Pending": 0, "Failed": 0}
    jobs = sm.list_training_jobs_for_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)[
        "TrainingJobSummaries"
    ]
    assert len(jobs) == 4
    values = {}
    for job in jobs:
        assert re.fullmatch(rf"{name}-00[1-4]-[0-9a-f]{{8}}", job["TrainingJobName"])
        tuned = job["TunedHyperParameters"]
        assert 1 <= int(tuned["max_depth"]) <= 6 and 0.01 <= float(tuned["eta"]) <= 0.5
        training = sm.describe_training_job(TrainingJobName=job["TrainingJobName"])
        assert training["TuningJobArn"] == desc["HyperParameterTuningJobArn"]
        assert training["HyperParameters"]["max_depth"] == tuned["max_depth"]
        final = {m["MetricName"]: m["Value"] for m in training["FinalMetricDataList"]}
        values[job["TrainingJobName"]] = final["validation:auc"]  # evaluated though eval_metric was not set
        assert job["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == pytest.approx(
            final["validation:auc"]
        )
    best = max(values, key=values.get)
    assert desc["BestTrainingJob"]["TrainingJobName"] == best
    assert desc["BestTrainingJob"]["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == pytest.approx(
        values[best]
    )
    ordered = sm.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name,
        SortBy="FinalObjectiveMetricValue",
        SortOrder="Descending",
        MaxResults=1,
    )["TrainingJobSummaries"]
    assert ordered[0]["TrainingJobName"] == best


def test_tuning_grid_and_failures(sm, data):
    name = _name("grid")
    sm.create_hyper_parameter_tuning_job(
        **_tuning(
            name,
            data["bucket"],
            {
                "Strategy": "Grid",
                "ResourceLimits": {"MaxParallelTrainingJobs": 2},
                "ParameterRanges": {
                    "CategoricalParameterRanges": [{"Name": "max_depth", "Values": ["1", "4"]}]
                },
            },
        )
    )
    desc = _wait_tuning(sm, name)
    assert desc["HyperParameterTuningJobStatus"] == "Completed"
    jobs = sm.list_training_jobs_for_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)[
        "TrainingJobSummaries"
    ]
    assert sorted(j["TunedHyperParameters"]["max_depth"] for j in jobs) == ["1", "4"]

    # every candidate fails (a metric XGBoost does not know): the tuning job fails, saying why in one line
    bad = _name("badtune")
    request = _tuning(
        bad,
        data["bucket"],
        {
            "Strategy": "Random",
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 2, "MaxParallelTrainingJobs": 2},
            "ParameterRanges": {
                "IntegerParameterRanges": [{"Name": "max_depth", "MinValue": "1", "MaxValue": "3"}]
            },
        },
    )
    request["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]["MetricName"] = (
        "validation:bogus"
    )
    sm.create_hyper_parameter_tuning_job(**request)
    desc = _wait_tuning(sm, bad)
    assert desc["HyperParameterTuningJobStatus"] == "Failed" and "BestTrainingJob" not in desc
    assert (
        desc["FailureReason"].endswith("Unknown metric function bogus") and "\n" not in desc["FailureReason"]
    )
    with pytest.raises(ClientError) as missing:
        sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=_name("nope"))
    assert _code(missing) == "ResourceNotFound"


def test_provider_tuning_operator_deferrable(airflow_aws_conn, sm, data):
    from airflow.providers.amazon.aws.operators.sagemaker import SageMakerTuningOperator
    from airflow.providers.common.compat.sdk import TaskDeferred

    name = _name("optune")
    config = _tuning(
        name,
        data["bucket"],
        {
            "Strategy": "Bayesian",  # sampled as Random by the twin
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 2, "MaxParallelTrainingJobs": 1},
            "ParameterRanges": {
                "IntegerParameterRanges": [{"Name": "max_depth", "MinValue": "2", "MaxValue": "5"}]
            },
        },
    )
    operator = SageMakerTuningOperator(task_id="operator", config=config, deferrable=True, check_interval=1)
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute({})
    trigger = deferred.value.trigger

    async def first_event():
        async for event in trigger.run():
            return event.payload

    payload = asyncio.run(first_event())
    assert payload["status"] == "success"
    done = operator.execute_complete({}, payload)
    assert done["Tuning"]["HyperParameterTuningJobStatus"] == "Completed"
    assert done["Tuning"]["HyperParameterTuningJobConfig"]["Strategy"] == "Bayesian"


# ---- endpoints: logs and Deleting -------------------------------------------------------------
def test_endpoint_logs_and_deleting_state(twin, sm, trained):
    config, endpoint = _name("jobs-cfg"), _name("jobs-ep")
    sm.create_endpoint_config(
        EndpointConfigName=config,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": trained["model"],
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
            }
        ],
    )
    sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=config)
    sm.get_waiter("endpoint_in_service").wait(EndpointName=endpoint, WaiterConfig=WAIT)
    runtime = twin.client("sagemaker-runtime")
    with pytest.raises(ClientError):
        runtime.invoke_endpoint(EndpointName=endpoint, ContentType="text/csv", Body=b"1,2")
    logs = twin.client("logs")
    group = f"/aws/sagemaker/Endpoints/{endpoint}"
    streams = logs.describe_log_streams(logGroupName=group)["logStreams"]
    assert [re.fullmatch(r"AllTraffic/i-[0-9a-f]{17}", s["logStreamName"]) is not None for s in streams] == [
        True
    ]
    messages = [
        e["message"]
        for e in logs.get_log_events(logGroupName=group, logStreamName=streams[0]["logStreamName"])["events"]
    ]
    assert any(f"serves model {trained['model']}" in m and "4 features" in m for m in messages)
    assert any("Feature size mismatch" in m for m in messages)

    sm.delete_endpoint(EndpointName=endpoint)
    assert sm.describe_endpoint(EndpointName=endpoint)["EndpointStatus"] == "Deleting"
    with pytest.raises(ClientError):
        runtime.invoke_endpoint(EndpointName=endpoint, ContentType="text/csv", Body=b"1,2,3,4")
    sm.get_waiter("endpoint_deleted").wait(EndpointName=endpoint, WaiterConfig=WAIT)
    with pytest.raises(ClientError) as gone:
        sm.describe_endpoint(EndpointName=endpoint)
    assert _code(gone) == "ValidationException"


# ---- no silent fakes --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "call",
    [
        lambda sm: sm.create_auto_ml_job_v2(
            AutoMLJobName="automl",
            AutoMLJobInputDataConfig=[
                {
                    "ChannelType": "training",
                    "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://b/x"}},
                }
            ],
            OutputDataConfig={"S3OutputPath": "s3://b/out"},
            AutoMLProblemTypeConfig={"TabularJobConfig": {"TargetAttributeName": "y"}},
            RoleArn=ROLE,
        ),
        lambda sm: sm.create_compilation_job(
            CompilationJobName="neo",
            RoleArn=ROLE,
            InputConfig={"S3Uri": "s3://b/m.tar.gz", "DataInputConfig": "{}", "Framework": "XGBOOST"},
            OutputConfig={"S3OutputLocation": "s3://b/out", "TargetDevice": "ml_m5"},
            StoppingCondition={"MaxRuntimeInSeconds": 60},
        ),
        lambda sm: sm.create_notebook_instance(
            NotebookInstanceName="nb", InstanceType="ml.t3.medium", RoleArn=ROLE
        ),
        lambda sm: sm.describe_auto_ml_job(AutoMLJobName="automl"),
        lambda sm: sm.start_pipeline_execution(PipelineName="p"),
    ],
    ids=["automl", "compilation", "notebook", "describe-automl", "pipeline-execution"],
)
def test_what_the_twin_cannot_run_answers_not_implemented(sm, call):
    with pytest.raises(ClientError) as refused:
        call(sm)
    assert _code(refused) == "NotImplemented"
    assert "not implemented by aws_twin" in refused.value.response["Error"]["Message"]
