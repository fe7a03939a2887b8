"""Drift monitoring of the churn endpoint: an hourly SageMaker Processing job over the endpoint's
captured traffic, a drift report, and retraining when drift is confirmed.

After the AWS blog "Bring your own container to project model accuracy drift with Amazon SageMaker
Model Monitor", as two DAGs:

- ``churn_drift_baseline`` (scheduled on the churn pipeline's endpoint Asset): after each deploy, a
  Processing job computes the baseline of the deployed model from its training split and saves it
  next to the model's artifact;
- ``churn_drift_monitor`` (hourly, catchup): each run analyses exactly the capture partition of its
  data interval, writes a JSON result and an HTML report, publishes CloudWatch metrics and, after K
  consecutive drifting hours, updates the Asset the churn pipeline is scheduled on.

The analysis code is ``include/drift/drift_analysis.py`` (the same script runs on AWS in SageMaker's
scikit-learn image). See ``doc_md`` below and docs/drift_monitoring.md.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from airflow.sdk import Asset, CronDataIntervalTimetable, Param, dag, get_current_context, task
from aws_ml_provider.decorators.report import report_task
from aws_ml_provider.operators.sagemaker_processing import SageMakerProcessingAttachOperator

AWS_CONN_ID = "aws_default"
MONITOR_DAG_ID = "churn_drift_monitor"
BASELINE_DAG_ID = "churn_drift_baseline"

WAITER_DELAY = int(os.environ.get("AWS_ML_WAITER_DELAY", "30"))
WAITER_MAX_ATTEMPTS = max(1, 7200 // max(WAITER_DELAY, 1))
#: the first hour the monitor analyses: catchup creates a run for every hour from there, so set
#: CHURN_DRIFT_START_DATE (ISO time; on MWAA export it in the environment's startup script) to when
#: the endpoint went live. An hour without capture files is a cheap "no traffic" result (an S3 listing).
START_DATE = datetime.fromisoformat(os.environ.get("CHURN_DRIFT_START_DATE", "2026-11-30T00:00:00+00:00"))

DEFAULT_BUCKET = "aws-ml-provider-demo"
DEFAULT_SAGEMAKER_ROLE = "arn:aws:iam::123456789012:role/SageMakerExecutionRole"
#: the churn pipeline's data-capture destination (used when the endpoint does not exist)
DATACAPTURE_PREFIX = "churn/datacapture"
CODE_KEY = "churn/code/drift_analysis.py"
DRIFT_PREFIX = "churn/drift"
#: the processing script inside the container
CONTAINER_ROOT = "/opt/ml/processing"
SKLEARN_VERSION = "1.2-1"

#: the churn pipeline's endpoint Asset (declared identically in dags/churn_xgboost_pipeline.py; its
#: smoke test emits it with extra {"endpoint_name": ...})
ENDPOINT_ASSET = Asset(
    name="churn_xgboost_endpoint", uri="sagemaker://endpoint/churn-xgboost", group="ml-model"
)
#: confirmed drift: the churn pipeline is scheduled on it (declared identically there)
DRIFT_ASSET = Asset(
    name="churn_xgboost_drift", uri="sagemaker://endpoint/churn-xgboost/drift", group="ml-model"
)

PROCESSING_INSTANCE_TYPES = ["ml.t3.medium", "ml.m5.large", "ml.m5.xlarge", "ml.c5.xlarge"]

default_args = {
    "owner": "ml-platform",
    "retries": 2,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
    "execution_timeout": timedelta(hours=1),
    "aws_conn_id": AWS_CONN_ID,
}

COMMON_PARAMS = {
    "endpoint_name": Param(
        None,
        type=["null", "string"],
        pattern=r"^$|^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$",
        title="Endpoint name",
        description="Empty: the endpoint of the triggering deploy (baseline), else churn-xgboost.",
    ),
    "variant_name": Param("AllTraffic", type="string", minLength=1, title="Production variant"),
    "bucket": Param(
        None,
        type=["null", "string"],
        title="S3 bucket",
        description="Where code, baselines' jobs and results go. Empty: Variable ml_bucket "
        "(else aws-ml-provider-demo).",
    ),
    "sagemaker_role_arn": Param(
        None,
        type=["null", "string"],
        title="SageMaker execution role ARN",
        description="Empty: Variable sagemaker_role_arn.",
    ),
    "processing_instance_type": Param(
        "ml.m5.large", type="string", enum=PROCESSING_INSTANCE_TYPES, title="Processing instance type"
    ),
}


def _common(params: dict) -> dict:
    """Bucket, role, region, image, and the endpoint (Param, else the triggering deploy's, else the default)."""
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
    from airflow.sdk import Variable
    from aws_ml_provider.utils.sagemaker_images import sklearn_image_uri

    context = get_current_context()
    endpoint = params.get("endpoint_name")
    if not endpoint:
        for events in (context.get("triggering_asset_events") or {}).values():
            for event in events:
                endpoint = endpoint or (event.extra or {}).get("endpoint_name")
    region = AwsBaseHook(aws_conn_id=AWS_CONN_ID, client_type="sagemaker").conn_region_name
    return {
        "endpoint": endpoint or "churn-xgboost",
        "bucket": params["bucket"] or Variable.get("ml_bucket", default=DEFAULT_BUCKET),
        "role_arn": params["sagemaker_role_arn"]
        or Variable.get("sagemaker_role_arn", default=DEFAULT_SAGEMAKER_ROLE),
        "region": region,
        "image_uri": sklearn_image_uri(region, SKLEARN_VERSION),
    }


def _endpoint_model(endpoint: str, variant: str) -> dict | None:
    """{"artifact", "capture_uri"} of what the endpoint's variant serves; None when there is no endpoint."""
    from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
    from aws_ml_provider.operators.sagemaker_training import is_not_found
    from botocore.exceptions import ClientError

    sm = SageMakerHook(aws_conn_id=AWS_CONN_ID).conn
    try:
        described = sm.describe_endpoint(EndpointName=endpoint)
    except ClientError as error:
        if is_not_found(error):
            return None
        raise
    config = sm.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])
    chosen = next((v for v in config["ProductionVariants"] if v["VariantName"] == variant), None)
    if chosen is None:
        raise ValueError(f"endpoint {endpoint} has no variant {variant}")
    model = sm.describe_model(ModelName=chosen["ModelName"])
    container = model.get("PrimaryContainer") or (model.get("Containers") or [{}])[0]
    artifact = container.get("ModelDataUrl")
    if not artifact:
        package = sm.describe_model_package(ModelPackageName=container["ModelPackageName"])
        artifact = package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
    capture = (described.get("DataCaptureConfig") or {}).get("DestinationS3Uri") or (
        config.get("DataCaptureConfig") or {}
    ).get("DestinationS3Uri")
    return {"artifact": artifact, "capture_uri": capture, "model_name": chosen["ModelName"]}


def _baseline_uri(artifact: str) -> str:
    """``.../model/<job>/output/model.tar.gz`` -> ``.../model/<job>/drift-baseline`` (beside the artifact)."""
    head = artifact.rsplit("/", 1)[0]
    if head.endswith("/output"):
        head = head[: -len("/output")]
    return f"{head}/drift-baseline"


def _run_prefix(artifact: str) -> str:
    head, sep, _ = artifact.rpartition("/model/")
    if not sep:
        raise ValueError(f"model artifact {artifact} is not under a churn pipeline run's model/ prefix")
    return head


def _upload_code(bucket: str) -> tuple[str, str]:
    """The analysis script to s3://<bucket>/churn/code/ (URI, sha256 of its content)."""
    import hashlib

    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from aws_ml_provider.utils.paths import include_path

    body = include_path("drift/drift_analysis.py", anchor=__file__).read_bytes()
    S3Hook(aws_conn_id=AWS_CONN_ID).load_bytes(body, CODE_KEY, bucket, replace=True)
    return f"s3://{bucket}/{CODE_KEY}", hashlib.sha256(body).hexdigest()


def _input(name: str, uri: str) -> dict:
    return {
        "InputName": name,
        "S3Input": {
            "S3Uri": uri,
            "LocalPath": f"{CONTAINER_ROOT}/input/{name}",
            "S3DataType": "S3Prefix",
            "S3InputMode": "File",
            "S3DataDistributionType": "FullyReplicated",
        },
    }


def _processing_config(name: str, common: dict, params: dict, inputs: dict, output: str, args: list) -> dict:
    return {
        "ProcessingJobName": name,
        "RoleArn": common["role_arn"],
        "AppSpecification": {
            "ImageUri": common["image_uri"],
            "ContainerEntrypoint": ["python3", f"{CONTAINER_ROOT}/input/code/drift_analysis.py"],
            "ContainerArguments": [
                *args,
                "--input-dir",
                f"{CONTAINER_ROOT}/input",
                "--output-dir",
                f"{CONTAINER_ROOT}/output",
            ],
        },
        "ProcessingInputs": [_input(k, v) for k, v in inputs.items()],
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": "result",
                    "S3Output": {
                        "S3Uri": output,
                        "LocalPath": f"{CONTAINER_ROOT}/output",
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ]
        },
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": params["processing_instance_type"],
                "VolumeSizeInGB": 5,
            }
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 1800},
        "Environment": {"PYTHONUNBUFFERED": "1"},
    }


def _short_hash(*parts: str) -> str:
    import hashlib

    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:8]


# ------------------------------------------------------------------------------------------ baseline

BASELINE_DOC_MD = """
### Drift baseline of the deployed churn model

Runs after each deploy of `churn_xgboost_pipeline` (its endpoint Asset; the event names the endpoint)
or by hand (`endpoint_name` Param). From the endpoint it finds the model artifact it serves
(endpoint -> config -> model -> registered model package -> `.../churn/runs/<key>/model/<job>/output/model.tar.gz`),
then runs `include/drift/drift_analysis.py baseline` as a SageMaker Processing job (scikit-learn image)
on that run's training split, test split, the evaluation's predictions and `schema.json`. The
baseline (decile edges, level frequencies, the well-predicted test rows) goes beside the artifact:
`.../model/<job>/drift-baseline/{baseline.json,training_sample.csv,reference.csv}`. The job name
hashes the artifact: a retry attaches to the job, a second run for the same model does nothing new.
"""


@dag(
    dag_id=BASELINE_DAG_ID,
    schedule=[ENDPOINT_ASSET],
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args=default_args,
    tags=["ml", "churn", "drift", "sagemaker"],
    doc_md=BASELINE_DOC_MD,
    params={
        **COMMON_PARAMS,
        "decision_threshold": Param(
            0.5, type="number", minimum=0, maximum=1, title="Decision threshold (well-predicted rows)"
        ),
    },
)
def churn_drift_baseline():
    @task(multiple_outputs=True)
    def resolve_baseline() -> dict:
        """The deployed model's artifact, the baseline's inputs and output, the job's config."""
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook
        from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSkipException
        from aws_ml_provider.utils import s3 as s3_utils

        params = get_current_context()["params"]
        common = _common(params)
        model = _endpoint_model(common["endpoint"], params["variant_name"])
        if model is None:
            raise AirflowSkipException(
                f"endpoint {common['endpoint']} does not exist: no model to baseline yet"
            )
        artifact = model["artifact"]
        prefix = _run_prefix(artifact)
        inputs = {
            "train": f"{prefix}/processed/train/",
            "test": f"{prefix}/processed/test/",
            "predictions": f"{prefix}/evaluation/predictions.csv",
            "schema": f"{prefix}/processed/schema.json",
        }
        s3 = S3Hook(aws_conn_id=AWS_CONN_ID)
        for name in ("predictions", "schema"):
            if not s3_utils.exists(s3.get_conn(), inputs[name]):
                raise AirflowFailException(f"the deployed model's {name} {inputs[name]} does not exist")
        code_uri, code_hash = _upload_code(common["bucket"])
        inputs["code"] = code_uri
        output = _baseline_uri(artifact)
        threshold = str(params["decision_threshold"])
        name = f"drift-baseline-{_short_hash(artifact, code_hash, threshold)}"
        config = _processing_config(
            name, common, params, inputs, output, ["baseline", "--threshold", threshold]
        )
        print(f"baseline of {artifact} (endpoint {common['endpoint']}) -> {output}")
        return {
            "config": config,
            "baseline_uri": output,
            "artifact": artifact,
            "endpoint": common["endpoint"],
        }

    resolved = resolve_baseline()
    SageMakerProcessingAttachOperator(
        task_id="compute_baseline",
        config=resolved["config"],
        wait_for_completion=True,
        deferrable=True,
        check_interval=WAITER_DELAY,
        max_attempts=WAITER_MAX_ATTEMPTS,
        max_ingestion_time=3600,
        do_xcom_push=False,
    )


churn_drift_baseline()


# ------------------------------------------------------------------------------------------- monitor

MONITOR_DOC_MD = """
### Hourly drift monitor of the churn endpoint

Each run covers its data interval (one hour, UTC) and reads exactly that hour's capture partition
`<capture destination>/<endpoint>/<variant>/yyyy/mm/dd/hh/` (catchup: a missed hour is analysed
later, from its own partition; a capture record whose inference time is outside the hour is skipped
and counted).

1. **resolve** - capture destination (the endpoint's DataCaptureConfig), the partition's objects,
   the deployed model's baseline (`churn_drift_baseline` writes it after each deploy), names.
2. **choose** - `analyse` when the partition has files, else `no_traffic` (an hour without traffic is
   a result, not a failure).
3. **analyse** - `include/drift/drift_analysis.py analyse` as a SageMaker Processing job (scikit-learn
   image; deferrable, a retry attaches to the job): per feature the drift score (sum of absolute
   differences of the training deciles' / levels' probabilities), a KS (numeric) or chi-square
   (categorical) p-value, and the projected drift in model accuracy (Isolation Forest). Malformed
   capture lines are counted and skipped with their reason.
4. **report** - `result.json` and `report.html` (plots over the last `report_hours` hours, read from the
   earlier hours' results) in `s3://<bucket>/churn/drift/<endpoint>/results/yyyy/mm/dd/hh/`; CloudWatch
   metrics (namespace `AwsMlProvider/ModelDrift`, dimensions Endpoint and Feature). The task's
   **Report** link opens the page.
5. **request_retraining** - when the last `consecutive_hours` hours all drifted (p below `p_value_threshold`
   and score above `drift_score_threshold`, over at least `min_rows` rows), updates the
   `churn_xgboost_drift` Asset, on which `churn_xgboost_pipeline` is scheduled (retraining); again every
   further `consecutive_hours` drifting hours. Otherwise skipped.
"""


@dag(
    dag_id=MONITOR_DAG_ID,
    # a data interval of one hour [h, h+1), run at h+1 (cron "@hourly" in Airflow 3 is a trigger with
    # an empty interval)
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
    start_date=START_DATE,
    catchup=True,
    max_active_runs=1,
    default_args=default_args,
    tags=["ml", "churn", "drift", "sagemaker", "monitoring"],
    doc_md=MONITOR_DOC_MD,
    params={
        **COMMON_PARAMS,
        "capture_uri": Param(
            None,
            type=["null", "string"],
            pattern=r"^$|^s3://[^/]+(/.*)?$",
            title="Capture destination (S3 URI)",
            description="Empty: the endpoint's DataCaptureConfig (else s3://<bucket>/churn/datacapture).",
        ),
        "p_value_threshold": Param(0.05, type="number", minimum=0, maximum=1, title="p-value threshold"),
        "drift_score_threshold": Param(
            0.2, type="number", minimum=0, maximum=2, title="Drift score threshold (0 to 2)"
        ),
        "consecutive_hours": Param(
            3, type="integer", minimum=1, maximum=48, title="Drifting hours in a row that confirm drift"
        ),
        "min_rows": Param(30, type="integer", minimum=1, title="Rows an hour needs for its drift to count"),
        "report_hours": Param(
            24, type="integer", minimum=1, maximum=720, title="Hours plotted in the report"
        ),
    },
)
def churn_drift_monitor():
    @task(multiple_outputs=True)
    def resolve() -> dict:
        """The hour, its capture partition and its files; the baseline; the Processing job config."""
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook
        from airflow.providers.common.compat.sdk import AirflowFailException
        from aws_ml_provider.utils import s3 as s3_utils

        context = get_current_context()
        params = context["params"]
        common = _common(params)
        endpoint, variant = common["endpoint"], params["variant_name"]
        start = context["data_interval_start"].astimezone(UTC)
        end = context["data_interval_end"].astimezone(UTC)
        if end - start != timedelta(hours=1) or start.minute or start.second:
            raise AirflowFailException(f"the data interval {start} - {end} is not one whole hour")
        model = _endpoint_model(endpoint, variant)
        capture = (params["capture_uri"] or (model or {}).get("capture_uri") or "").rstrip("/")
        capture = capture or f"s3://{common['bucket']}/{DATACAPTURE_PREFIX}"
        partition = f"{capture}/{endpoint}/{variant}/{start:%Y/%m/%d/%H}/"
        bucket, prefix = s3_utils.split_prefix(partition)
        s3 = S3Hook(aws_conn_id=AWS_CONN_ID)
        # no capture bucket: nothing was captured (not an error: the endpoint may not exist yet)
        keys = (s3.list_keys(bucket_name=bucket, prefix=prefix) or []) if s3.check_for_bucket(bucket) else []
        if not s3.check_for_bucket(common["bucket"]):
            # where the results go (the churn pipeline's setup creates it too)
            s3.create_bucket(bucket_name=common["bucket"], region_name=common["region"])
        results_uri = f"s3://{common['bucket']}/{DRIFT_PREFIX}/{endpoint}/results/{start:%Y/%m/%d/%H}"
        out = {
            "endpoint": endpoint,
            "variant": variant,
            "bucket": common["bucket"],
            "start": start.isoformat(),
            "end": end.isoformat(),
            "partition": partition,
            "capture_files": len(keys),
            "results_uri": results_uri,
            "config": None,
            "baseline_uri": None,
        }
        print(f"hour {start:%Y-%m-%d %H:00} UTC: {len(keys)} capture file(s) under {partition}")
        if not keys:
            return out
        if model is None:
            raise AirflowFailException(
                f"{partition} has capture files but endpoint {endpoint} does not exist: no baseline to compare with"
            )
        baseline = _baseline_uri(model["artifact"])
        if not s3_utils.exists(s3.get_conn(), f"{baseline}/baseline.json"):
            raise AirflowFailException(
                f"no drift baseline at {baseline}/ for the model endpoint {endpoint} serves ({model['artifact']}): "
                f"run {BASELINE_DAG_ID} (it runs after each deploy of the churn pipeline)"
            )
        code_uri, code_hash = _upload_code(common["bucket"])
        thresholds = [str(params["p_value_threshold"]), str(params["drift_score_threshold"])]
        name = f"drift-{endpoint[:24]}-{start:%Y%m%d%H}-{_short_hash(partition, baseline, code_hash, *thresholds)}"
        args = ["analyse", "--start", out["start"], "--end", out["end"], "--endpoint", endpoint]
        args += ["--p-threshold", thresholds[0], "--score-threshold", thresholds[1]]
        inputs = {"code": code_uri, "baseline": f"{baseline}/", "capture": partition}
        out["config"] = _processing_config(name, common, params, inputs, results_uri, args)
        out["baseline_uri"] = baseline
        return out

    @task.branch
    def choose(capture_files: int) -> str:
        return "analyse" if capture_files else "no_traffic"

    @task
    def no_traffic(results_uri: str, start: str, end: str, endpoint: str, partition: str) -> str:
        """The result of an hour without capture files (the analysis script's format)."""
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook
        from aws_ml_provider.utils import s3 as s3_utils

        result = {
            "format": 1,
            "status": "no_traffic",
            "endpoint": endpoint,
            "interval": {"start": start, "end": end},
            "records": {
                "files": 0,
                "lines": 0,
                "records": 0,
                "rows": 0,
                "skipped": 0,
                "skipped_by_reason": {},
                "skipped_examples": [],
            },
            "features": {},
            "drifted_features": [],
            "drift": False,
            "partition": partition,
        }
        s3 = S3Hook(aws_conn_id=AWS_CONN_ID).get_conn()
        return s3_utils.write_json(s3, f"{results_uri}/result.json", result)

    @report_task(trigger_rule="none_failed_min_one_success")
    def report(resolved: dict) -> dict:
        """This hour's result, the earlier hours' results, the HTML report, CloudWatch metrics."""
        import json

        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook
        from aws_ml_provider.links.s3 import S3ReportLink
        from aws_ml_provider.ml import drift_report
        from aws_ml_provider.utils import s3 as s3_utils

        params = get_current_context()["params"]
        hook = S3Hook(aws_conn_id=AWS_CONN_ID)
        s3 = hook.get_conn()
        endpoint, bucket = resolved["endpoint"], resolved["bucket"]
        hour = datetime.fromisoformat(resolved["start"])
        result_uri = f"{resolved['results_uri']}/result.json"
        result = s3_utils.read_json(s3, result_uri, default={})
        if not result:
            raise RuntimeError(f"{result_uri} does not exist: the analysis wrote no result")
        history = []
        for back in range(params["report_hours"] - 1, 0, -1):
            earlier = hour - timedelta(hours=back)
            uri = f"s3://{bucket}/{DRIFT_PREFIX}/{endpoint}/results/{earlier:%Y/%m/%d/%H}/result.json"
            history.append((earlier, s3_utils.read_json(s3, uri, default={}) or None))
        history.append((hour, result))
        required = params["consecutive_hours"]
        consecutive = drift_report.consecutive_drift(history, params["min_rows"])
        # confirmed at K drifting hours in a row, and again every K more (drift that persists after a
        # retraining asks again, but not every hour)
        confirmed = consecutive >= required and consecutive % required == 0
        page = drift_report.render_html(
            endpoint=endpoint,
            hour=hour,
            result=result,
            history=history,
            consecutive=consecutive,
            required=required,
            confirmed=confirmed,
            details={
                "capture partition": resolved["partition"],
                "baseline": resolved["baseline_uri"] or "(not needed: no traffic)",
                "processing job": (resolved["config"] or {}).get("ProcessingJobName", "(none: no traffic)"),
                "result": result_uri,
            },
        )
        report_uri = s3_utils.put_text(s3, f"{resolved['results_uri']}/report.html", page, "text/html")
        S3ReportLink.persist_object(get_current_context(), hook, report_uri)
        end = datetime.fromisoformat(resolved["end"])
        data = drift_report.metric_data(endpoint, result, end)
        if datetime.now(UTC) - end > drift_report.MAX_METRIC_AGE:
            # PutMetricData refuses data points older than two weeks (a late catchup or backfill)
            print(f"metrics of {end:%Y-%m-%d %H:00} not published: CloudWatch takes data up to two weeks old")
            data = []
        cloudwatch = AwsBaseHook(aws_conn_id=AWS_CONN_ID, client_type="cloudwatch").conn
        for k in range(0, len(data), drift_report.PUT_METRIC_BATCH):
            cloudwatch.put_metric_data(
                Namespace=drift_report.NAMESPACE, MetricData=data[k : k + drift_report.PUT_METRIC_BATCH]
            )
        drifted = {
            name: round(result["features"][name]["drift_score"], 4)
            for name in result.get("drifted_features", [])
        }
        summary = {
            "endpoint": endpoint,
            "hour": resolved["start"],
            "status": result["status"],
            "rows": result["records"]["rows"],
            "skipped": result["records"]["skipped"],
            "drift": bool(result.get("drift")),
            "drifted_features": drifted,
            "projected_accuracy": (result.get("accuracy") or {}).get("projected_accuracy"),
            "consecutive_drift_hours": consecutive,
            "confirmed": confirmed,
            "result_uri": result_uri,
            "report_uri": report_uri,
            "metrics_published": len(data),
        }
        print(json.dumps(summary, indent=2))
        return summary

    @task(outlets=[DRIFT_ASSET])
    def request_retraining(summary: dict) -> dict:
        """Update the churn pipeline's drift Asset when drift is confirmed; skipped otherwise."""
        from airflow.providers.common.compat.sdk import AirflowSkipException

        if not summary["confirmed"]:
            raise AirflowSkipException(
                f"{summary['consecutive_drift_hours']} consecutive drifting hour(s): drift not confirmed"
            )
        extra = {
            "endpoint_name": summary["endpoint"],
            "hour": summary["hour"],
            "consecutive_drift_hours": summary["consecutive_drift_hours"],
            "drifted_features": summary["drifted_features"],
            "report_uri": summary["report_uri"],
        }
        get_current_context()["outlet_events"][DRIFT_ASSET].extra = extra
        print(f"drift confirmed on {summary['endpoint']}: retraining requested ({extra})")
        return extra

    resolved = resolve()
    branch = choose(resolved["capture_files"])
    analyse = SageMakerProcessingAttachOperator(
        task_id="analyse",
        config=resolved["config"],
        wait_for_completion=True,
        deferrable=True,
        check_interval=WAITER_DELAY,
        max_attempts=WAITER_MAX_ATTEMPTS,
        max_ingestion_time=3600,
        do_xcom_push=False,
    )
    quiet = no_traffic(
        resolved["results_uri"],
        resolved["start"],
        resolved["end"],
        resolved["endpoint"],
        resolved["partition"],
    )
    summary = report(resolved)
    branch >> [analyse, quiet] >> summary
    request_retraining(summary)


churn_drift_monitor()
