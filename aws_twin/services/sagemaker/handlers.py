"""SageMaker operations (the ``sagemaker`` model): training, processing, transform and tuning jobs,
models, endpoint configs, endpoints and the model registry. Operations the twin cannot really perform
answer NotImplemented (:data:`REFUSED`); other SageMaker operations (metadata moto stores as given)
fall through to moto; A2I's flow definitions and human task UIs are another class on the same model.

Errors follow what SageMaker answers: an unknown training job / model / endpoint / endpoint config
/ package is a ``ValidationException`` (the provider's existence checks and botocore's waiters rely
on it); a duplicate training job name is ``ResourceInUse``.
"""

from __future__ import annotations

import copy
import datetime as dt

from ...core.errors import AwsError
from ...core.paging import page
from ...core.service import TwinService
from . import hosting, workers
from .hosting import HostingEngine
from .processing import ProcessingEngine
from .registry import Registry
from .training import TrainingEngine, TrainingJob, default_scratch, now
from .transform import TransformEngine
from .tuning import TuningEngine


def _aware(value):
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def filter_sort(
    items: list, params: dict, *, name, created, modified=None, status=None, default_order="Ascending"
):
    """Apply the usual SageMaker list filters (NameContains, StatusEquals, time ranges) and sort."""
    if params.get("NameContains"):
        needle = params["NameContains"].lower()
        items = [i for i in items if needle in name(i).lower()]
    if params.get("StatusEquals") and status:
        items = [i for i in items if status(i) == params["StatusEquals"]]
    for key, getter, after in (
        ("CreationTimeAfter", created, True),
        ("CreationTimeBefore", created, False),
        ("LastModifiedTimeAfter", modified, True),
        ("LastModifiedTimeBefore", modified, False),
    ):
        if params.get(key) and getter:
            bound = _aware(params[key])
            items = [i for i in items if (getter(i) > bound if after else getter(i) < bound)]
    sort_by = params.get("SortBy") or "CreationTime"
    keyf = {"Name": lambda i: name(i), "Status": lambda i: status(i) if status else ""}.get(sort_by, created)
    items = sorted(items, key=keyf, reverse=(params.get("SortOrder") or default_order) == "Descending")
    return items


#: operations moto would answer with a success while nothing runs (a job "Completed" that did no
#: work, a notebook or Studio domain "InService" that does not exist): the twin answers NotImplemented.
#: Metadata that moto stores faithfully (experiments, trials, model cards, monitoring job
#: definitions, pipelines' definitions, tags) still falls through to moto.
REFUSED = {
    # AutoML: no candidate search runs
    "CreateAutoMLJob": "AutoML jobs",
    "CreateAutoMLJobV2": "AutoML jobs",
    "DescribeAutoMLJob": "AutoML jobs",
    "DescribeAutoMLJobV2": "AutoML jobs",
    "ListAutoMLJobs": "AutoML jobs",
    "StopAutoMLJob": "AutoML jobs",
    "ListCandidatesForAutoMLJob": "AutoML jobs",
    # Neo compilation: nothing compiles
    "CreateCompilationJob": "compilation jobs (SageMaker Neo)",
    "DescribeCompilationJob": "compilation jobs (SageMaker Neo)",
    "ListCompilationJobs": "compilation jobs (SageMaker Neo)",
    "StopCompilationJob": "compilation jobs (SageMaker Neo)",
    "DeleteCompilationJob": "compilation jobs (SageMaker Neo)",
    # Ground Truth labeling
    "CreateLabelingJob": "labeling jobs (Ground Truth)",
    "DescribeLabelingJob": "labeling jobs (Ground Truth)",
    "ListLabelingJobs": "labeling jobs (Ground Truth)",
    "StopLabelingJob": "labeling jobs (Ground Truth)",
    # HyperPod clusters, notebook instances, Studio domains: billed machines that would not exist
    "CreateCluster": "HyperPod clusters",
    "DescribeCluster": "HyperPod clusters",
    "DescribeClusterNode": "HyperPod clusters",
    "ListClusters": "HyperPod clusters",
    "ListClusterNodes": "HyperPod clusters",
    "DeleteCluster": "HyperPod clusters",
    "CreateNotebookInstance": "notebook instances",
    "DescribeNotebookInstance": "notebook instances",
    "ListNotebookInstances": "notebook instances",
    "StartNotebookInstance": "notebook instances",
    "StopNotebookInstance": "notebook instances",
    "DeleteNotebookInstance": "notebook instances",
    "CreateDomain": "Studio domains",
    "DescribeDomain": "Studio domains",
    "ListDomains": "Studio domains",
    "DeleteDomain": "Studio domains",
    # Feature Store: no online / offline store behind the group
    "CreateFeatureGroup": "Feature Store feature groups",
    "DescribeFeatureGroup": "Feature Store feature groups",
    # pipelines: an execution would run no step
    "StartPipelineExecution": "pipeline executions",
    "DescribePipelineExecution": "pipeline executions",
    "ListPipelineExecutions": "pipeline executions",
    # the twin's endpoints are not moto's: moto would change nothing that serves
    "UpdateEndpointWeightsAndCapacities": "UpdateEndpointWeightsAndCapacities on the twin's endpoints",
    # moto's Search knows neither the twin's training jobs nor its models
    "Search": "Search",
}


class SageMakerService(TwinService):
    model = "sagemaker"
    moto_fallthrough = True

    def handler(self, operation: str):
        found = super().handler(operation)
        if found is None and operation in REFUSED:
            what = REFUSED[operation]

            def refuse(ctx, params):
                raise AwsError(
                    "NotImplemented",
                    f"sagemaker.{operation} is not implemented by aws_twin: it cannot really run {what}, "
                    "and does not fake a success.",
                    501,
                    sender_fault=False,
                )

            return refuse
        return found

    def reset(self) -> None:
        old = getattr(self, "training", None)
        if old is not None:
            old.shutdown()
        old_hosting = getattr(self, "hosting", None)
        if old_hosting is not None:
            old_hosting.shutdown()
        old_processing = getattr(self, "processing", None)
        if old_processing is not None:
            old_processing.shutdown()
        self.registry = Registry()
        self.training = TrainingEngine(self.twin, default_scratch(self.twin))
        self.hosting = HostingEngine(self.twin, self.registry)
        self.processing = ProcessingEngine(self.twin, default_scratch(self.twin))
        self.transform = TransformEngine(self.twin, self.hosting)
        self.tuning = TuningEngine(self.twin, self.training)

    def state(self) -> dict:
        return {
            "training_jobs": {n: j.status for n, j in sorted(self.training.jobs.items())},
            "processing_jobs": {n: j.status for n, j in sorted(self.processing.jobs.items())},
            "transform_jobs": {n: j.status for n, j in sorted(self.transform.jobs.items())},
            "tuning_jobs": {n: j.status for n, j in sorted(self.tuning.jobs.items())},
            "endpoints": {n: e.status for n, e in sorted(self.hosting.endpoints.items())},
            "models": sorted(self.hosting.models),
            "model_package_groups": sorted(self.registry.groups),
            "captured_records": self.hosting.capture.written,
            "training_workers": {
                n: {"pid": j.worker_pid, "preloaded": j.worker_preloaded}
                for n, j in sorted(self.training.jobs.items())
                if j.worker_pid is not None
            },
            "warm_up": {"training_workers": workers.WARMED.is_set(), "hosting": hosting.WARMED.is_set()},
        }

    def warm_up(self) -> None:
        """Pay the heavy imports before the first job needs them: the training workers' forkserver
        (imports xgboost in its own process) and xgboost in this one, for the endpoints."""
        workers.warm_up()
        hosting.warm_up()

    def shutdown(self) -> None:
        self.training.shutdown()
        self.hosting.shutdown()
        self.processing.shutdown()

    # ---- jobs (training, processing, transform, tuning) ---------------------------------------
    @staticmethod
    def _stop_in_progress(engine, job, kind: str) -> dict:
        """Stop{Kind}Job: only an InProgress job can be stopped, as SageMaker answers."""
        if job.status != "InProgress":
            raise AwsError(
                "ValidationException",
                f"The request was rejected because the {kind} job is in status {job.status}.",
            )
        engine.stop(job)
        return {}

    @staticmethod
    def _list_jobs(jobs, params, key: str) -> dict:
        """List{Kind}Jobs: SageMaker's name / time / status filters, sort and paging of ``jobs``."""
        chosen = filter_sort(
            list(jobs),
            params,
            name=lambda j: j.name,
            created=lambda j: j.creation_time,
            modified=lambda j: j.last_modified or j.creation_time,
            status=lambda j: j.status,
        )
        chunk, more = page(chosen, params, default=10, maximum=100)
        return {key: [j.summary() for j in chunk]} | more

    # ---- training -------------------------------------------------------------------------
    def create_training_job(self, ctx, params):
        name = params["TrainingJobName"]
        arn = ctx.arn(f"training-job/{name.lower()}")
        output = params.get("OutputDataConfig") or {}
        if not str(output.get("S3OutputPath", "")).startswith("s3://"):
            raise AwsError("ValidationException", "OutputDataConfig.S3OutputPath must be an s3:// URI.")
        algo = params.get("AlgorithmSpecification") or {}
        if not algo.get("TrainingImage") and not algo.get("AlgorithmName"):
            raise AwsError(
                "ValidationException", "AlgorithmSpecification needs a TrainingImage or an AlgorithmName."
            )
        job = TrainingJob(
            name=name, arn=arn, region=ctx.region, request=copy.deepcopy(params), creation_time=now()
        )
        self.training.start(
            job,
            exists="Training job names must be unique within an AWS account and region, and a training job "
            f"with this name already exists ({arn})",
        )
        return {"TrainingJobArn": arn}

    def describe_training_job(self, ctx, params):
        return self.training.job(params["TrainingJobName"]).describe()

    def stop_training_job(self, ctx, params):
        return self._stop_in_progress(self.training, self.training.job(params["TrainingJobName"]), "training")

    def list_training_jobs(self, ctx, params):
        return self._list_jobs(self.training.jobs.values(), params, "TrainingJobSummaries")

    # ---- processing ---------------------------------------------------------------------------
    def create_processing_job(self, ctx, params):
        return {"ProcessingJobArn": self.processing.create(ctx, params).arn}

    def describe_processing_job(self, ctx, params):
        return self.processing.job(params["ProcessingJobName"]).describe()

    def stop_processing_job(self, ctx, params):
        return self._stop_in_progress(
            self.processing, self.processing.job(params["ProcessingJobName"]), "processing"
        )

    def list_processing_jobs(self, ctx, params):
        return self._list_jobs(self.processing.jobs.values(), params, "ProcessingJobSummaries")

    # ---- batch transform ------------------------------------------------------------------------
    def create_transform_job(self, ctx, params):
        return {"TransformJobArn": self.transform.create(ctx, params).arn}

    def describe_transform_job(self, ctx, params):
        return self.transform.job(params["TransformJobName"]).describe()

    def stop_transform_job(self, ctx, params):
        return self._stop_in_progress(
            self.transform, self.transform.job(params["TransformJobName"]), "transform"
        )

    def list_transform_jobs(self, ctx, params):
        return self._list_jobs(self.transform.jobs.values(), params, "TransformJobSummaries")

    # ---- hyperparameter tuning ----------------------------------------------------------------
    def create_hyper_parameter_tuning_job(self, ctx, params):
        return {"HyperParameterTuningJobArn": self.tuning.create(ctx, params).arn}

    def describe_hyper_parameter_tuning_job(self, ctx, params):
        return self.tuning.job(params["HyperParameterTuningJobName"]).describe()

    def stop_hyper_parameter_tuning_job(self, ctx, params):
        self.tuning.stop(self.tuning.job(params["HyperParameterTuningJobName"]))
        return {}

    def delete_hyper_parameter_tuning_job(self, ctx, params):
        self.tuning.delete(self.tuning.job(params["HyperParameterTuningJobName"]))
        return {}

    def list_hyper_parameter_tuning_jobs(self, ctx, params):
        return self._list_jobs(self.tuning.jobs.values(), params, "HyperParameterTuningJobSummaries")

    def list_training_jobs_for_hyper_parameter_tuning_job(self, ctx, params):
        job = self.tuning.job(params["HyperParameterTuningJobName"])
        items = job.launched()
        if params.get("StatusEquals"):
            items = [c for c in items if c.job.status == params["StatusEquals"]]
        sort_by = params.get("SortBy") or "Name"
        descending = (params.get("SortOrder") or "Ascending") == "Descending"
        if sort_by == "FinalObjectiveMetricValue":
            # jobs without a value go last, whatever the order
            scored = [c for c in items if c.objective(job.metric) is not None]
            rest = [c for c in items if c.objective(job.metric) is None]
            items = sorted(scored, key=lambda c: c.objective(job.metric), reverse=descending) + rest
        else:
            keyf = {
                "Name": lambda c: c.job.name,
                "CreationTime": lambda c: c.job.creation_time,
                "Status": lambda c: c.job.status,
            }[sort_by]
            items = sorted(items, key=keyf, reverse=descending)
        chunk, more = page(items, params, default=10, maximum=100)
        return {"TrainingJobSummaries": [job.training_summary(c) for c in chunk]} | more

    # ---- models ---------------------------------------------------------------------------
    def create_model(self, ctx, params):
        return {"ModelArn": self.hosting.create_model(ctx, params).arn}

    def describe_model(self, ctx, params):
        return self.hosting.model(ctx, params["ModelName"]).describe()

    def delete_model(self, ctx, params):
        self.hosting.delete_model(ctx, params["ModelName"])
        return {}

    def list_models(self, ctx, params):
        items = filter_sort(
            list(self.hosting.models.values()),
            params,
            name=lambda m: m.name,
            created=lambda m: m.creation_time,
            default_order="Descending",
        )
        chunk, more = page(items, params, default=10, maximum=100)
        out = {
            "Models": [
                {"ModelName": m.name, "ModelArn": m.arn, "CreationTime": m.creation_time} for m in chunk
            ]
        }
        return out | more

    # ---- endpoint configs -----------------------------------------------------------------
    def create_endpoint_config(self, ctx, params):
        return {"EndpointConfigArn": self.hosting.create_config(ctx, params).arn}

    def describe_endpoint_config(self, ctx, params):
        return self.hosting.config(ctx, params["EndpointConfigName"]).describe()

    def delete_endpoint_config(self, ctx, params):
        self.hosting.delete_config(ctx, params["EndpointConfigName"])
        return {}

    def list_endpoint_configs(self, ctx, params):
        items = filter_sort(
            list(self.hosting.configs.values()),
            params,
            name=lambda c: c.name,
            created=lambda c: c.creation_time,
            default_order="Descending",
        )
        chunk, more = page(items, params, default=10, maximum=100)
        out = {
            "EndpointConfigs": [
                {"EndpointConfigName": c.name, "EndpointConfigArn": c.arn, "CreationTime": c.creation_time}
                for c in chunk
            ]
        }
        return out | more

    # ---- endpoints ------------------------------------------------------------------------
    def create_endpoint(self, ctx, params):
        return {"EndpointArn": self.hosting.create_endpoint(ctx, params).arn}

    def update_endpoint(self, ctx, params):
        return {"EndpointArn": self.hosting.update_endpoint(ctx, params).arn}

    def describe_endpoint(self, ctx, params):
        return self.hosting.endpoint(ctx, params["EndpointName"]).describe()

    def delete_endpoint(self, ctx, params):
        self.hosting.delete_endpoint(ctx, params["EndpointName"])
        return {}

    def list_endpoints(self, ctx, params):
        items = filter_sort(
            list(self.hosting.endpoints.values()),
            params,
            name=lambda e: e.name,
            created=lambda e: e.creation_time,
            modified=lambda e: e.last_modified or e.creation_time,
            status=lambda e: e.status,
            default_order="Descending",
        )
        chunk, more = page(items, params, default=10, maximum=100)
        out = {"Endpoints": [e.summary() for e in chunk]}
        return out | more

    # ---- model registry -------------------------------------------------------------------
    def create_model_package_group(self, ctx, params):
        return {"ModelPackageGroupArn": self.registry.create_group(ctx, params).arn}

    def describe_model_package_group(self, ctx, params):
        return self.registry.group(ctx, params["ModelPackageGroupName"]).describe()

    def delete_model_package_group(self, ctx, params):
        self.registry.delete_group(ctx, params["ModelPackageGroupName"])
        return {}

    def list_model_package_groups(self, ctx, params):
        items = filter_sort(
            list(self.registry.groups.values()),
            params,
            name=lambda g: g.name,
            created=lambda g: g.creation_time,
        )
        chunk, more = page(items, params, default=10, maximum=100)
        out = {"ModelPackageGroupSummaryList": [g.summary() for g in chunk]}
        return out | more

    def create_model_package(self, ctx, params):
        return {"ModelPackageArn": self.registry.create_package(ctx, params).arn}

    def describe_model_package(self, ctx, params):
        return self.registry.package(ctx, params["ModelPackageName"]).describe()

    def update_model_package(self, ctx, params):
        return {"ModelPackageArn": self.registry.update_package(ctx, params).arn}

    def delete_model_package(self, ctx, params):
        self.registry.delete_package(ctx, params["ModelPackageName"])
        return {}

    def list_model_packages(self, ctx, params):
        items = filter_sort(
            self.registry.list_packages(params),
            {k: v for k, v in params.items() if k != "NameContains"},
            name=lambda p: p.name,
            created=lambda p: p.creation_time,
        )
        chunk, more = page(items, params, default=10, maximum=100)
        out = {"ModelPackageSummaryList": [p.summary() for p in chunk]}
        return out | more
