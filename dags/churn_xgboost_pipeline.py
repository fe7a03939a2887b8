"""Churn prediction with XGBoost: Glue preprocessing -> SageMaker training -> evaluation and quality
gate -> model registry -> real-time endpoint (created or updated in place) -> smoke test.

After the AWS blog "Orchestrate XGBoost ML Pipelines with Amazon MWAA", written the Airflow 3 way:
no AWS call, Variable read or data file read at parse time; every long wait deferred to the
triggerer; names deterministic per DAG run so a retried task attaches to what it started; XCom
carries only small JSON (URIs, names, metrics). See ``doc_md`` below for the details.
"""

from __future__ import annotations

import os
from datetime import timedelta

from airflow.providers.amazon.aws.utils.sagemaker import ApprovalStatus
from airflow.sdk import Asset, Param, TaskGroup, dag, get_current_context, task
from aws_ml_provider.decorators.report import report_task
from aws_ml_provider.operators.glue import GlueJobReasonOperator
from aws_ml_provider.operators.sagemaker_deploy import (
    SageMakerEndpointConfigIfAbsentOperator,
    SageMakerEndpointOnceOperator,
    SageMakerModelIfAbsentOperator,
    SageMakerRegisterModelVersionIdempotentOperator,
)
from aws_ml_provider.operators.sagemaker_training import SageMakerTrainingAttachOperator
from aws_ml_provider.utils import aws_patterns
from aws_ml_provider.utils import s3 as s3_utils
from aws_ml_provider.utils.paths import include_path

DAG_ID = "churn_xgboost_pipeline"
AWS_CONN_ID = "aws_default"
#: task groups: task ids are "<group>.<task>" (train, one task, is not in a group)
PREPARE, EVALUATE, DEPLOY = "prepare", "evaluate", "deploy"

#: seconds between status checks of the deferred waits (Glue run, training job, endpoint). 30 s
#: suits AWS, where each step takes minutes; the offline twin's tests and demo set a few seconds.
WAITER_DELAY = int(os.environ.get("AWS_ML_WAITER_DELAY", "30"))
#: give each deferred wait up to two hours
WAITER_MAX_ATTEMPTS = max(1, 7200 // max(WAITER_DELAY, 1))

#: fallbacks when neither the Param nor the Variable is set (the values the twin accepts)
DEFAULT_BUCKET = "aws-ml-provider-demo"
DEFAULT_SAGEMAKER_ROLE = "arn:aws:iam::123456789012:role/SageMakerExecutionRole"
DEFAULT_GLUE_ROLE = "arn:aws:iam::123456789012:role/AWSGlueServiceRole-churn"

GLUE_JOB_NAME = "churn-xgboost-preprocess"
#: S3 layout under the bucket
DATASET_KEY = "churn/raw/mlc_churn.csv"
GLUE_SCRIPT_KEY = "churn/code/churn_preprocess.py"
RUNS_PREFIX = "churn/runs"
DATACAPTURE_PREFIX = "churn/datacapture"

#: what downstream DAGs can be scheduled on
MODEL_PACKAGE_ASSET = Asset(
    name="churn_xgboost_model_package", uri="sagemaker://model-package-group/churn-xgboost", group="ml-model"
)
ENDPOINT_ASSET = Asset(
    name="churn_xgboost_endpoint", uri="sagemaker://endpoint/churn-xgboost", group="ml-model"
)
#: what the pipeline is scheduled on: updated by dags/churn_drift_monitor.py (declared identically
#: there) when drift of the deployed model is confirmed, so a confirmed drift starts retraining.
#: Manual runs (trigger form, Params) work as before; an asset-triggered run uses the Params' defaults.
DRIFT_ASSET = Asset(
    name="churn_xgboost_drift", uri="sagemaker://endpoint/churn-xgboost/drift", group="ml-model"
)

INSTANCE_TYPES = [
    "ml.m5.large",
    "ml.m5.xlarge",
    "ml.m5.2xlarge",
    "ml.m5.4xlarge",
    "ml.c5.xlarge",
    "ml.c5.2xlarge",
    "ml.c5.4xlarge",
    "ml.m4.xlarge",
]
ENDPOINT_INSTANCE_TYPES = ["ml.t2.medium", "ml.m5.large", "ml.m5.xlarge", "ml.c5.large", "ml.c5.xlarge"]

DOC_MD = """
### Churn prediction with XGBoost on Glue + SageMaker

Task groups: **prepare** (resolve_config, setup, preprocess) -> **train** -> **evaluate** (evaluate,
quality_gate) -> **deploy** (register_model .. smoke_test); task ids are `<group>.<task>`.

1. **setup** - creates the bucket if absent, stages the bundled churn CSV (`include/data/mlc_churn.csv`,
   MIT, from R's *modeldata*) to the default dataset URI when it is absent, uploads the Glue script
   (`include/glue/churn_preprocess.py`).
2. **preprocess** (`GlueJobReasonOperator`: the Amazon provider's `GlueJobOperator` starting one run per task, Python shell job `churn-xgboost-preprocess`,
   created or updated, deferrable): validates rows (bad ones quarantined to `quarantine/rows.jsonl`, counts reconcile in
   `schema.json`), one-hot encodes, writes stratified train / validation / test CSVs. Input rules (in
   `schema.json` `input_rules` and the task log): blank cells are missing values (XGBoost handles them),
   `$45.07` / `12%` / `1,234` are numbers, ID-like columns are dropped, categories beyond
   `max_category_levels` are grouped as `__other__`; a one-class label or more than `max_quarantined_share`
   rejected rows fails the task at once (no retries) with the reason from the Glue run.
3. **train** (SageMaker built-in XGBoost, image for the connection's region, deferrable). The job name
   `churn-xgb-<hash of the run id>` is deterministic: a retried task attaches to the job it started.
4. **evaluate** - test-split AUC, accuracy, precision, recall, F1, confusion matrix; ROC curve PNG and an
   HTML report in S3, opened by the task's **Report** extra link (the S3 console on AWS; on aws_twin its
   token-protected object viewer).
5. **quality_gate** - stops the run (no retries) when the chosen metric is below the threshold, saying by
   how much. Nothing is registered or deployed then.
6. **register_model** (model package group, approved, metrics attached) -> **create_model** ->
   **create_endpoint_config** (data capture to `s3://<bucket>/churn/datacapture`) -> **create_endpoint**
   or **update_endpoint** (chosen by describing the endpoint) -> **smoke_test** (sampled test rows sent
   to the endpoint; answers must match the evaluation's predictions).

S3 layout (`<bucket>` from the `bucket` Param, else Variable `ml_bucket`, else `aws-ml-provider-demo`):
`churn/raw/mlc_churn.csv`, `churn/code/churn_preprocess.py`,
`churn/runs/<run key>/processed/{train,validation,test}/...csv, schema.json, quarantine/rows.jsonl`,
`churn/runs/<run key>/model/<training job>/output/model.tar.gz`,
`churn/runs/<run key>/evaluation/{metrics.json,predictions.csv,roc.png,report.html}`.

The role comes from the `sagemaker_role_arn` Param, else Variable `sagemaker_role_arn` (Glue: `glue_role_arn`).
`resolve_config` checks the bucket name and role ARNs (and the Params) against AWS's rules at run time: a
bad value (a Variable is not checked by the form) fails the run at once, naming its source, with no retry.
Offline, point the `aws_default` connection's `endpoint_url` at aws_twin; nothing else changes.

Scheduled on the `churn_xgboost_drift` Asset: `churn_drift_monitor` updates it when drift of the
deployed model is confirmed, which queues a run with the Params' defaults (retraining). Manual runs
with the trigger form are unchanged.

The default split seed is 7. The test split is 10 % (about 70 churners), so the test AUC of the default
model moves with the split: 0.86 to 0.95 (mean 0.92) over seeds 40-59. The 0.90 gate is a real check.
"""


default_args = {
    "owner": "ml-platform",
    "retries": 2,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
    "execution_timeout": timedelta(hours=3),
    "aws_conn_id": AWS_CONN_ID,
}


@dag(
    dag_id=DAG_ID,
    schedule=[DRIFT_ASSET],
    catchup=False,
    max_active_runs=1,
    default_args=default_args,
    tags=["ml", "churn", "xgboost", "glue", "sagemaker"],
    doc_md=DOC_MD,
    params={
        "dataset_uri": Param(
            None,
            type=["null", "string"],
            pattern=aws_patterns.S3_OBJECT_PARAM,
            title="Dataset CSV (S3 URI)",
            description="CSV with a header row. Empty: s3://<bucket>/churn/raw/mlc_churn.csv, the bundled "
            "churn data, staged there when absent.",
        ),
        "label_column": Param("churn", type="string", minLength=1, title="Label column"),
        "positive_value": Param(
            "yes",
            type="string",
            minLength=1,
            title="Positive label value",
            description="Label value meaning 1.",
        ),
        "validation_fraction": Param(
            0.2, type="number", minimum=0.05, maximum=0.4, title="Validation fraction"
        ),
        "test_fraction": Param(0.1, type="number", minimum=0.05, maximum=0.4, title="Test fraction"),
        "seed": Param(7, type="integer", minimum=0, title="Split seed"),
        "max_quarantined_share": Param(
            0.05,
            type="number",
            minimum=0,
            maximum=1,
            title="Most rows that may be quarantined (share)",
            description="Preprocessing fails when a larger share of the rows is rejected (a wrong field "
            "count, a missing label, text in a numeric column). Blank cells are missing values, not "
            "rejections.",
        ),
        "max_category_levels": Param(
            100,
            type="integer",
            minimum=2,
            maximum=10000,
            title="Most levels per categorical column",
            description="A categorical column with more levels keeps the most frequent ones and groups "
            "the rest as __other__.",
        ),
        "num_round": Param(100, type="integer", minimum=1, maximum=5000, title="XGBoost num_round"),
        "max_depth": Param(5, type="integer", minimum=1, maximum=20, title="XGBoost max_depth"),
        "eta": Param(0.2, type="number", minimum=0.001, maximum=1, title="XGBoost eta (learning rate)"),
        "subsample": Param(0.8, type="number", minimum=0.1, maximum=1, title="XGBoost subsample"),
        "min_child_weight": Param(1, type="number", minimum=0, maximum=100, title="XGBoost min_child_weight"),
        "objective": Param(
            "binary:logistic", type="string", enum=["binary:logistic"], title="XGBoost objective"
        ),
        "eval_metric": Param(
            "auc", type="string", enum=["auc", "logloss", "error"], title="XGBoost eval_metric"
        ),
        "training_instance_type": Param(
            "ml.m5.large", type="string", enum=INSTANCE_TYPES, title="Training instance type"
        ),
        "endpoint_instance_type": Param(
            "ml.m5.large", type="string", enum=ENDPOINT_INSTANCE_TYPES, title="Endpoint instance type"
        ),
        "quality_metric": Param(
            "auc",
            type="string",
            enum=["auc", "accuracy", "f1", "precision", "recall"],
            title="Quality gate metric",
            description="Test-split metric the model must reach to be registered and deployed.",
        ),
        "quality_threshold": Param(0.90, type="number", minimum=0, maximum=1, title="Quality gate threshold"),
        "endpoint_name": Param(
            "churn-xgboost",
            type="string",
            pattern=aws_patterns.SAGEMAKER_NAME_PARAM,
            title="Endpoint name",
            description="Created on the first run, updated in place afterwards.",
        ),
        "model_package_group": Param(
            "churn-xgboost",
            type="string",
            pattern=aws_patterns.SAGEMAKER_NAME_PARAM,
            title="Model package group",
        ),
        "smoke_sample_size": Param(
            20, type="integer", minimum=1, maximum=500, title="Smoke test rows sent to the endpoint"
        ),
        "bucket": Param(
            None,
            type=["null", "string"],
            pattern=aws_patterns.BUCKET_PARAM,
            title="S3 bucket",
            description="Empty: Variable ml_bucket (else aws-ml-provider-demo).",
        ),
        "sagemaker_role_arn": Param(
            None,
            type=["null", "string"],
            pattern=aws_patterns.ROLE_ARN_PARAM,
            title="SageMaker execution role ARN",
            description="Empty: Variable sagemaker_role_arn.",
        ),
        "glue_role_arn": Param(
            None,
            type=["null", "string"],
            pattern=aws_patterns.ROLE_ARN_PARAM,
            title="Glue job role ARN",
            description="Empty: Variable glue_role_arn.",
        ),
    },
)
def churn_xgboost_pipeline():
    @task(multiple_outputs=True)
    def resolve_config() -> dict:
        """Bucket, roles, region, image and every name/URI of this run (nothing created yet)."""
        import hashlib

        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
        from airflow.sdk import Variable
        from aws_ml_provider.utils.sagemaker_images import xgboost_image_uri

        context = get_current_context()
        params = context["params"]

        def setting(param: str, variable: str, default: str, pattern: str, what: str) -> str:
            """The Param, else the Variable, else the default; checked against AWS's rules at run
            time (a Variable, or a run started without the form, skips the form's check): a bad
            value fails for good (AirflowFailException, no retry) naming where it came from."""
            if params[param]:
                return aws_patterns.require(params[param], pattern, what, f"Param {param}")
            return aws_patterns.require(
                Variable.get(variable, default=default), pattern, what, f"Variable {variable}"
            )

        bucket = setting("bucket", "ml_bucket", DEFAULT_BUCKET, aws_patterns.BUCKET_PARAM, "S3 bucket")
        role = setting(
            "sagemaker_role_arn",
            "sagemaker_role_arn",
            DEFAULT_SAGEMAKER_ROLE,
            aws_patterns.ROLE_ARN_PARAM,
            "SageMaker role ARN",
        )
        glue_role = setting(
            "glue_role_arn", "glue_role_arn", DEFAULT_GLUE_ROLE, aws_patterns.ROLE_ARN_PARAM, "Glue role ARN"
        )
        if params["dataset_uri"]:
            aws_patterns.require(
                params["dataset_uri"], aws_patterns.S3_OBJECT_PARAM, "dataset URI", "Param dataset_uri"
            )
        for name in ("endpoint_name", "model_package_group"):
            aws_patterns.require(params[name], aws_patterns.SAGEMAKER_NAME_PARAM, name, f"Param {name}")
        # the region a SageMaker client of the connection would use (the botocore config's, else the
        # session's: connection, then environment / profile), without building one (a client loads
        # SageMaker's API model: 0.2-0.7 s); none anywhere: the client's own error
        hook = AwsBaseHook(aws_conn_id=AWS_CONN_ID, client_type="sagemaker")
        config = hook.config
        region = (
            (config.region_name if config is not None else None)
            or hook.get_session(region_name=hook.region_name).region_name
            or hook.conn_region_name
        )
        run_id = context["run_id"]
        key = hashlib.sha256(f"{DAG_ID}/{run_id}".encode()).hexdigest()[:10]
        name = f"churn-xgb-{key}"
        run_prefix = f"s3://{bucket}/{RUNS_PREFIX}/{key}"
        processed = f"{run_prefix}/processed"
        return {
            "run_key": key,
            "run_id": run_id,
            "bucket": bucket,
            "region": region,
            "role_arn": role,
            "glue_role_arn": glue_role,
            "image_uri": xgboost_image_uri(region),
            "dataset_uri": params["dataset_uri"] or f"s3://{bucket}/{DATASET_KEY}",
            "glue_script_uri": f"s3://{bucket}/{GLUE_SCRIPT_KEY}",
            "processed_uri": processed,
            "train_uri": f"{processed}/train/",
            "validation_uri": f"{processed}/validation/",
            "test_uri": f"{processed}/test/test.csv",
            "schema_uri": f"{processed}/schema.json",
            "model_output_uri": f"{run_prefix}/model",
            "evaluation_uri": f"{run_prefix}/evaluation",
            "datacapture_uri": f"s3://{bucket}/{DATACAPTURE_PREFIX}",
            "training_job_name": name,
            "model_name": name,
            "endpoint_config_name": name,
        }

    @task
    def setup(bucket: str, dataset_uri: str, glue_script_uri: str, region: str) -> dict:
        """Bucket if absent; the bundled churn CSV at the default dataset URI if absent; the Glue script."""
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook
        from airflow.providers.common.compat.sdk import AirflowFailException

        s3 = S3Hook(aws_conn_id=AWS_CONN_ID)
        if not s3.check_for_bucket(bucket):
            s3.create_bucket(bucket_name=bucket, region_name=region)
            print(f"created bucket {bucket} in {region}")
        data_bucket, data_key = s3_utils.split_object_uri(dataset_uri)
        staged = False
        if not s3.check_for_key(data_key, data_bucket):
            if dataset_uri != f"s3://{bucket}/{DATASET_KEY}":
                raise AirflowFailException(f"dataset {dataset_uri} does not exist")
            s3.load_file(
                str(include_path("data/mlc_churn.csv", anchor=__file__)), data_key, data_bucket, replace=True
            )
            staged = True
            print(f"staged the bundled churn CSV to {dataset_uri}")
        script_bucket, script_key = s3_utils.split_object_uri(glue_script_uri)
        s3.load_file(
            str(include_path("glue/churn_preprocess.py", anchor=__file__)),
            script_key,
            script_bucket,
            replace=True,
        )
        return {"dataset_uri": dataset_uri, "staged": staged, "glue_script_uri": glue_script_uri}

    with TaskGroup(PREPARE, tooltip="Names and URIs of the run; bucket, data and script in S3; Glue"):
        cfg = resolve_config()
        prepared = setup(cfg["bucket"], cfg["dataset_uri"], cfg["glue_script_uri"], cfg["region"])
        preprocess = GlueJobReasonOperator(
            task_id="preprocess",
            job_name=GLUE_JOB_NAME,
            job_desc="Churn CSV -> validated, one-hot encoded train/validation/test CSVs for XGBoost",
            script_location=cfg["glue_script_uri"],
            iam_role_arn=cfg["glue_role_arn"],
            num_of_dpus=0.0625,
            create_job_kwargs={
                "Command": {
                    "Name": "pythonshell",
                    "PythonVersion": "3.9",
                    "ScriptLocation": cfg["glue_script_uri"],
                },
                "DefaultArguments": {"library-set": "analytics", "--enable-job-insights": "false"},
                "Timeout": 60,
            },
            script_args={
                "--input_uri": cfg["dataset_uri"],
                "--output_uri": cfg["processed_uri"],
                "--label_column": "{{ params.label_column }}",
                "--positive_value": "{{ params.positive_value }}",
                "--validation_fraction": "{{ params.validation_fraction }}",
                "--test_fraction": "{{ params.test_fraction }}",
                "--seed": "{{ params.seed }}",
                "--max_quarantined_share": "{{ params.max_quarantined_share }}",
                "--max_category_levels": "{{ params.max_category_levels }}",
            },
            # a failed run's ErrorMessage is the task's error; the script's PreprocessError is a
            # fact about the data (one label class, too many bad rows...): failed at once, no retry
            no_retry_errors=("PreprocessError",),
            update_config=True,
            deferrable=True,
            verbose=True,
            waiter_delay=WAITER_DELAY,
            waiter_max_attempts=WAITER_MAX_ATTEMPTS,
            stop_job_run_on_kill=True,
            # one run per task: botocore retries StartJobRun; when the retry meets the run its lost
            # answer started (ConcurrentRunsExceededException), the run tagged --airflow_task_uuid
            # is looked up and waited for, and a retried try attaches to that run
            # (GlueJobReasonOperator, a GlueJobOnceOperator, forces the provider's resume_glue_job_on_retry on)
        )
        prepared >> preprocess

    train = SageMakerTrainingAttachOperator(
        task_id="train",
        config={
            "TrainingJobName": cfg["training_job_name"],
            "AlgorithmSpecification": {"TrainingImage": cfg["image_uri"], "TrainingInputMode": "File"},
            "RoleArn": cfg["role_arn"],
            "HyperParameters": {
                "num_round": "{{ params.num_round }}",
                "max_depth": "{{ params.max_depth }}",
                "eta": "{{ params.eta }}",
                "subsample": "{{ params.subsample }}",
                "min_child_weight": "{{ params.min_child_weight }}",
                "objective": "{{ params.objective }}",
                "eval_metric": "{{ params.eval_metric }}",
            },
            "InputDataConfig": [
                {
                    "ChannelName": channel,
                    "ContentType": "text/csv",
                    "DataSource": {
                        "S3DataSource": {
                            "S3DataType": "S3Prefix",
                            "S3Uri": cfg[f"{channel}_uri"],
                            "S3DataDistributionType": "FullyReplicated",
                        }
                    },
                }
                for channel in ("train", "validation")
            ],
            "OutputDataConfig": {"S3OutputPath": cfg["model_output_uri"]},
            "ResourceConfig": {
                "InstanceCount": 1,
                "InstanceType": "{{ params.training_instance_type }}",
                "VolumeSizeInGB": 5,
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        },
        deferrable=True,
        check_interval=WAITER_DELAY,
        max_attempts=WAITER_MAX_ATTEMPTS,
        max_ingestion_time=7200,
        print_log=False,
    )

    @report_task(multiple_outputs=True)
    def evaluate(training: dict, test_uri: str, schema_uri: str, evaluation_uri: str) -> dict:
        """Metrics of the trained model on the test split; ROC PNG, HTML report, predictions to S3.
        The task's "Report" extra link opens report.html (S3 console; the twin's object viewer offline)."""
        import json

        from airflow.providers.amazon.aws.hooks.s3 import S3Hook
        from aws_ml_provider.links.s3 import S3ReportLink
        from aws_ml_provider.ml import evaluation, report

        description = training["Training"]
        artifact = description["ModelArtifacts"]["S3ModelArtifacts"]
        s3 = S3Hook(aws_conn_id=AWS_CONN_ID)
        client = s3.get_conn()  # one S3 client for reads and writes (S3Hook.get_key builds a resource too)

        def read(uri: str) -> bytes:
            return s3_utils.read_bytes(client, uri)

        def write(uri: str, data: bytes, content_type: str) -> str:
            return s3_utils.put_bytes(client, uri, data, content_type)

        booster = evaluation.load_xgboost_model(read(artifact), artifact)
        labels, features = evaluation.read_labelled_csv(read(test_uri), test_uri)
        scores = evaluation.predict(booster, features)
        metrics = evaluation.binary_metrics(labels, scores)
        schema = json.loads(read(schema_uri))
        fpr, tpr = evaluation.roc_curve(labels, scores)
        png = report.roc_png(fpr, tpr, metrics["auc"])
        page = report.render_html(
            title=f"Churn XGBoost evaluation - {description['TrainingJobName']}",
            metrics=metrics,
            hyperparameters=description.get("HyperParameters", {}),
            counts=schema.get("counts", {}),
            png=png,
            details={
                "training job": description["TrainingJobName"],
                "model artifact": artifact,
                "test split": test_uri,
                "label column": schema.get("label_column"),
                "features": len(schema.get("feature_columns", [])),
            },
        )
        predictions = "".join(f"{p:.8f}\n" for p in scores).encode()
        out = {
            "metrics_uri": write(
                f"{evaluation_uri}/metrics.json", json.dumps(metrics).encode(), "application/json"
            ),
            "predictions_uri": write(f"{evaluation_uri}/predictions.csv", predictions, "text/csv"),
            "roc_uri": write(f"{evaluation_uri}/roc.png", png, "image/png"),
            "report_uri": write(f"{evaluation_uri}/report.html", page.encode(), "text/html"),
        }
        S3ReportLink.persist_object(get_current_context(), s3, out["report_uri"])
        print(json.dumps({"metrics": metrics, **out}, indent=2))
        return {
            "metrics": metrics,
            "model_artifact": artifact,
            "training_job_name": description["TrainingJobName"],
            # what the deploy group registers and runs the model with: the image and role it was
            # trained with, and the test split the smoke test replays
            "image_uri": description["AlgorithmSpecification"]["TrainingImage"],
            "role_arn": description["RoleArn"],
            "test_uri": test_uri,
            "counts": schema.get("counts", {}),
            **out,
        }

    @task(multiple_outputs=True, retries=0)
    def quality_gate(metrics: dict) -> dict:
        """Fail the run (no retries, nothing downstream) when the model misses the gate."""
        from airflow.providers.common.compat.sdk import AirflowFailException
        from aws_ml_provider.ml.evaluation import gate_message

        context = get_current_context()
        params = context["params"]
        metric, threshold = params["quality_metric"], float(params["quality_threshold"])
        value = float(metrics[metric])
        verdict = {
            "metric": metric,
            "value": value,
            "threshold": threshold,
            "passed": value >= threshold,
            "message": gate_message(metric, value, threshold),
        }
        # kept in XCom for failed runs too (the UI shows why the model was not deployed)
        context["ti"].xcom_push(key="gate_verdict", value=verdict)
        if not verdict["passed"]:
            raise AirflowFailException(verdict["message"])
        print(verdict["message"])
        return {
            **verdict,
            "model_metadata": {
                **{
                    f"test_{name}": f"{metrics[name]:.6f}"
                    for name in ("auc", "accuracy", "precision", "recall", "f1")
                },
                "quality_gate": f"{metric}>={threshold}",
            },
        }

    @task.branch
    def choose_endpoint_action() -> str:
        """create_endpoint when the endpoint does not exist, update_endpoint when it is in service."""
        from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
        from aws_ml_provider.operators.sagemaker_training import is_not_found
        from botocore.exceptions import ClientError

        name = get_current_context()["params"]["endpoint_name"]
        hook = SageMakerHook(aws_conn_id=AWS_CONN_ID)
        try:
            status = hook.describe_endpoint(name)["EndpointStatus"]
        except ClientError as error:
            if is_not_found(error):
                print(f"endpoint {name} does not exist: creating it")
                return f"{DEPLOY}.create_endpoint"
            raise
        if status in ("InService", "OutOfService"):
            print(f"endpoint {name} is {status}: updating it in place")
            return f"{DEPLOY}.update_endpoint"
        if status == "Failed":
            print(f"endpoint {name} is Failed (it cannot be updated): deleting it, then creating it")
            hook.conn.delete_endpoint(EndpointName=name)
            # the endpoint is Deleting for a while; a create with its name fails until it is gone
            hook.conn.get_waiter("endpoint_deleted").wait(
                EndpointName=name, WaiterConfig={"Delay": WAITER_DELAY, "MaxAttempts": 60}
            )
            return f"{DEPLOY}.create_endpoint"
        # Creating / Updating / SystemUpdating / RollingBack / Deleting: let the retry (with backoff) wait
        raise RuntimeError(f"endpoint {name} is {status}; it can be deployed to once that finishes")

    @task(trigger_rule="none_failed_min_one_success", outlets=[ENDPOINT_ASSET])
    def smoke_test(test_uri: str, predictions_uri: str, endpoint_config_name: str) -> dict:
        """Sampled test rows (label dropped) -> InvokeEndpoint; the answers must match the evaluation."""
        import random

        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook
        from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

        params = get_current_context()["params"]
        name = params["endpoint_name"]
        described = SageMakerHook(aws_conn_id=AWS_CONN_ID).describe_endpoint(name)
        if (
            described["EndpointStatus"] != "InService"
            or described["EndpointConfigName"] != endpoint_config_name
        ):
            raise RuntimeError(
                f"endpoint {name} is {described['EndpointStatus']} with config {described['EndpointConfigName']}, "
                f"expected InService with {endpoint_config_name}"
            )
        s3 = S3Hook(aws_conn_id=AWS_CONN_ID).get_conn()  # a client: GetObject only, no resource
        rows = [line for line in s3_utils.read_bytes(s3, test_uri).decode().splitlines() if line.strip()]
        expected_all = [float(v) for v in s3_utils.read_bytes(s3, predictions_uri).decode().split()]
        if len(expected_all) != len(rows):
            raise RuntimeError(
                f"{predictions_uri} has {len(expected_all)} predictions for {len(rows)} test rows"
            )
        picked = sorted(
            random.Random(params["seed"]).sample(
                range(len(rows)), min(params["smoke_sample_size"], len(rows))
            )
        )
        payload = "\n".join(rows[i].split(",", 1)[1] for i in picked)  # drop the label column
        runtime = AwsBaseHook(aws_conn_id=AWS_CONN_ID, client_type="sagemaker-runtime").conn
        response = runtime.invoke_endpoint(
            EndpointName=name, ContentType="text/csv", Accept="text/csv", Body=payload.encode()
        )
        text = response["Body"].read().decode()
        answers = [float(v) for v in text.replace("\n", ",").split(",") if v.strip()]
        problems = []
        if len(answers) != len(picked):
            problems.append(f"{len(answers)} predictions for {len(picked)} rows")
        out_of_range = [p for p in answers if not 0.0 <= p <= 1.0]
        if out_of_range:
            problems.append(f"predictions outside [0, 1]: {out_of_range[:5]}")
        mismatches = [
            (i, got, expected_all[i])
            for i, got in zip(picked, answers, strict=False)
            if abs(got - expected_all[i]) > 1e-4
        ]
        if mismatches:
            problems.append(
                f"{len(mismatches)} predictions differ from the evaluation's (row, endpoint, evaluation): {mismatches[:5]}"
            )
        if problems:
            raise RuntimeError(f"smoke test of endpoint {name} failed: " + "; ".join(problems))
        print(f"endpoint {name} answered {len(answers)} rows, matching the evaluation's predictions")
        # the drift baseline DAG (scheduled on this Asset) reads which endpoint was deployed
        get_current_context()["outlet_events"][ENDPOINT_ASSET].extra = {
            "endpoint_name": name,
            "endpoint_config_name": endpoint_config_name,
        }
        return {
            "endpoint_name": name,
            "endpoint_config_name": endpoint_config_name,
            "rows": picked,
            "sample_predictions": [round(p, 6) for p in answers],
        }

    with TaskGroup(EVALUATE, tooltip="Test-split metrics, ROC curve and report; the quality gate"):
        ev = evaluate(train.output, cfg["test_uri"], cfg["schema_uri"], cfg["evaluation_uri"])
        gate = quality_gate(ev["metrics"])

    with TaskGroup(DEPLOY, tooltip="Register the model version, deploy it to the endpoint, smoke test"):
        register = SageMakerRegisterModelVersionIdempotentOperator(
            task_id="register_model",
            image_uri=ev["image_uri"],
            model_url=ev["model_artifact"],
            package_group_name="{{ params.model_package_group }}",
            package_group_desc="Churn XGBoost models registered by the churn_xgboost_pipeline DAG",
            package_desc="Churn XGBoost, training job {{ ti.xcom_pull(task_ids='evaluate.evaluate', key='training_job_name') }}",
            model_approval=ApprovalStatus.APPROVED,
            run_key=ev["training_job_name"],
            extras={
                "ModelMetrics": {
                    "ModelQuality": {
                        "Statistics": {"ContentType": "application/json", "S3Uri": ev["metrics_uri"]}
                    }
                },
                "CustomerMetadataProperties": gate["model_metadata"],
            },
            outlets=[MODEL_PACKAGE_ASSET],
        )

        create_model = SageMakerModelIfAbsentOperator(
            task_id="create_model",
            config={
                "ModelName": cfg["model_name"],
                "ExecutionRoleArn": ev["role_arn"],
                # deploy exactly the version that passed the gate and was registered (approved)
                "PrimaryContainer": {"ModelPackageName": register.output},
            },
        )

        endpoint_config = SageMakerEndpointConfigIfAbsentOperator(
            task_id="create_endpoint_config",
            config={
                "EndpointConfigName": cfg["endpoint_config_name"],
                "ProductionVariants": [
                    {
                        "VariantName": "AllTraffic",
                        "ModelName": cfg["model_name"],
                        "InitialInstanceCount": 1,
                        "InstanceType": "{{ params.endpoint_instance_type }}",
                        "InitialVariantWeight": 1.0,
                    }
                ],
                "DataCaptureConfig": {
                    "EnableCapture": True,
                    "InitialSamplingPercentage": 100,
                    "DestinationS3Uri": cfg["datacapture_uri"],
                    "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
                    "CaptureContentTypeHeader": {"CsvContentTypes": ["text/csv"]},
                },
            },
        )

        endpoint_args = {
            "config": {
                "EndpointName": "{{ params.endpoint_name }}",
                "EndpointConfigName": cfg["endpoint_config_name"],
            },
            "deferrable": True,
            "check_interval": WAITER_DELAY,
            "max_ingestion_time": 7200,
            "do_xcom_push": False,
        }
        create_endpoint = SageMakerEndpointOnceOperator(
            task_id="create_endpoint", operation="create", **endpoint_args
        )
        update_endpoint = SageMakerEndpointOnceOperator(
            task_id="update_endpoint", operation="update", **endpoint_args
        )

        action = choose_endpoint_action()
        smoke = smoke_test(ev["test_uri"], ev["predictions_uri"], cfg["endpoint_config_name"])
        register >> create_model >> endpoint_config >> action >> [create_endpoint, update_endpoint] >> smoke

    preprocess >> train
    gate >> register


churn_xgboost_pipeline()
