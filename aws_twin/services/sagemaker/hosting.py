"""Hosting: models, endpoint configurations, endpoints, and the boosters they serve.

CreateEndpoint -> Creating -> InService once every production variant's model is loaded (its
PrimaryContainer / first Container's ModelDataUrl, or the ModelDataUrl of the ModelPackageName's
InferenceSpecification), or Failed with a FailureReason when the image is not the built-in XGBoost
or the artifact cannot be downloaded or loaded. UpdateEndpoint -> Updating (the old variants keep
serving) -> InService with the new ones; a failed update rolls back (InService on the old config,
FailureReason set), as SageMaker does. Loaded boosters stay in memory per endpoint. xgboost is
imported in the background once the twin serves (:func:`warm_up`), so that the first endpoint does not
wait for a cold import (a load before the warm-up is done waits for it, or imports it itself).
"""

from __future__ import annotations

import copy
import datetime as dt
import io
import logging
import random
import tarfile
import threading
from dataclasses import dataclass, field
from typing import Any

from ...core.errors import AwsError
from .capture import CaptureWriter
from .images import NOT_XGBOOST, xgboost_version
from .jobs import LogWriter, now, split_s3
from .registry import Registry
from .xgb import one_line

log = logging.getLogger("aws_twin.sagemaker")

#: set once :func:`warm_up` has imported xgboost in the twin's process (the twin's state reports it)
WARMED = threading.Event()
#: how long a deleted endpoint stays visible as ``Deleting`` before DescribeEndpoint answers "not found"
DELETING_SECONDS = 2.0
ENDPOINT_LOG_GROUP = "/aws/sagemaker/Endpoints/{name}"


def warm_up() -> None:
    """Import xgboost in the twin's process, off the request path."""
    import xgboost  # noqa: F401

    WARMED.set()


@dataclass
class Model:
    name: str
    arn: str
    request: dict
    creation_time: dt.datetime

    def describe(self) -> dict:
        req = self.request
        out = {
            "ModelName": self.name,
            "PrimaryContainer": copy.deepcopy(req.get("PrimaryContainer")),
            "Containers": copy.deepcopy(req.get("Containers")),
            "InferenceExecutionConfig": req.get("InferenceExecutionConfig"),
            "ExecutionRoleArn": req.get("ExecutionRoleArn"),
            "VpcConfig": req.get("VpcConfig"),
            "CreationTime": self.creation_time,
            "ModelArn": self.arn,
            "EnableNetworkIsolation": bool(req.get("EnableNetworkIsolation", False)),
        }
        return {k: v for k, v in out.items() if v is not None}

    def container(self) -> dict:
        req = self.request
        return req.get("PrimaryContainer") or (req.get("Containers") or [{}])[0]


@dataclass
class EndpointConfig:
    name: str
    arn: str
    request: dict
    creation_time: dt.datetime

    def describe(self) -> dict:
        req = self.request
        out = {
            "EndpointConfigName": self.name,
            "EndpointConfigArn": self.arn,
            "ProductionVariants": copy.deepcopy(req["ProductionVariants"]),
            "DataCaptureConfig": copy.deepcopy(req.get("DataCaptureConfig")),
            "KmsKeyId": req.get("KmsKeyId"),
            "CreationTime": self.creation_time,
            "AsyncInferenceConfig": req.get("AsyncInferenceConfig"),
            "ExecutionRoleArn": req.get("ExecutionRoleArn"),
            "VpcConfig": req.get("VpcConfig"),
            "EnableNetworkIsolation": req.get("EnableNetworkIsolation"),
        }
        return {k: v for k, v in out.items() if v is not None}


@dataclass
class Variant:
    name: str
    model_name: str
    image: str
    booster: Any
    weight: float
    instance_count: int
    loaded_at: dt.datetime


@dataclass
class Endpoint:
    name: str
    arn: str
    config_name: str
    creation_time: dt.datetime
    status: str = "Creating"
    failure_reason: str | None = None
    last_modified: dt.datetime | None = None
    variants: list[Variant] = field(default_factory=list)
    capture: dict | None = None  # the DataCaptureConfig being honoured
    generation: int = 0
    #: (config name, start time) of an update in progress: DescribeEndpoint's PendingDeploymentSummary
    pending: tuple[str, dt.datetime] | None = None

    def describe(self) -> dict:
        out: dict[str, Any] = {
            "EndpointName": self.name,
            "EndpointArn": self.arn,
            "EndpointConfigName": self.config_name,
            "EndpointStatus": self.status,
            "FailureReason": self.failure_reason,
            "CreationTime": self.creation_time,
            "LastModifiedTime": self.last_modified or self.creation_time,
        }
        if self.pending and self.status == "Updating":
            out["PendingDeploymentSummary"] = {
                "EndpointConfigName": self.pending[0],
                "StartTime": self.pending[1],
            }
        if self.variants:
            out["ProductionVariants"] = [
                {
                    "VariantName": v.name,
                    "DeployedImages": [
                        {"SpecifiedImage": v.image, "ResolvedImage": v.image, "ResolutionTime": v.loaded_at}
                    ],
                    "CurrentWeight": v.weight,
                    "DesiredWeight": v.weight,
                    "CurrentInstanceCount": v.instance_count,
                    "DesiredInstanceCount": v.instance_count,
                }
                for v in self.variants
            ]
        cap = self.capture
        if cap:
            out["DataCaptureConfig"] = {
                "EnableCapture": bool(cap.get("EnableCapture", True)),
                "CaptureStatus": "Started" if cap.get("EnableCapture", True) else "Stopped",
                "CurrentSamplingPercentage": int(cap.get("InitialSamplingPercentage", 100)),
                "DestinationS3Uri": cap["DestinationS3Uri"],
                "KmsKeyId": cap.get("KmsKeyId", ""),
            }
        return {k: v for k, v in out.items() if v is not None}

    def summary(self) -> dict:
        return {
            "EndpointName": self.name,
            "EndpointArn": self.arn,
            "CreationTime": self.creation_time,
            "LastModifiedTime": self.last_modified or self.creation_time,
            "EndpointStatus": self.status,
        }


class LoadError(Exception):
    pass


class HostingEngine:
    def __init__(self, twin, registry: Registry):
        self.twin = twin
        self.registry = registry
        self.lock = threading.RLock()
        self.models: dict[str, Model] = {}
        self.configs: dict[str, EndpointConfig] = {}
        self.endpoints: dict[str, Endpoint] = {}
        self.capture = CaptureWriter(lambda: twin.client("s3"))
        self._random = random.Random()
        self._logs: dict[tuple[str, str], LogWriter] = {}
        self._timers: list[threading.Timer] = []

    def log(self, ctx, endpoint: str, variant: str, message: str) -> None:
        """One line to the endpoint's CloudWatch log group ``/aws/sagemaker/Endpoints/<name>``, stream
        ``<variant>/i-<instance id>`` (what the container prints on SageMaker: model loading, errors)."""
        key = (endpoint, variant)
        with self.lock:
            writer = self._logs.get(key)
            if writer is None:
                instance = "i-" + "".join(self._random.choice("0123456789abcdef") for _ in range(17))
                writer = LogWriter(
                    self.twin.client("logs", ctx.region),
                    ENDPOINT_LOG_GROUP.format(name=endpoint),
                    f"{variant}/{instance}",
                )
                self._logs[key] = writer
        writer.write(message)
        writer.flush()

    # ---- models and configs ---------------------------------------------------------------
    def create_model(self, ctx, params: dict) -> Model:
        name = params["ModelName"]
        arn = ctx.arn(f"model/{name.lower()}")
        containers = (
            [params["PrimaryContainer"]] if params.get("PrimaryContainer") else params.get("Containers") or []
        )
        if not containers:
            raise AwsError("ValidationException", "Either PrimaryContainer or Containers must be provided.")
        for container in containers:
            if container.get("ModelPackageName"):
                self.registry.package(ctx, container["ModelPackageName"])  # must exist
            elif not container.get("Image"):
                raise AwsError("ValidationException", "A container needs an Image or a ModelPackageName.")
        with self.lock:
            if name in self.models:
                raise AwsError("ValidationException", f'Cannot create already existing model "{arn}".')
            model = Model(name, arn, copy.deepcopy(params), now())
            self.models[name] = model
        return model

    def _find(self, table: dict, ctx, name: str, resource: str, what: str):
        """``table[name]``, or the ValidationException SageMaker answers for an unknown name."""
        with self.lock:
            item = table.get(name)
        if item is None:
            arn = ctx.arn(f"{resource}/{name.lower()}")
            raise AwsError("ValidationException", f'Could not find {what} "{arn}".')
        return item

    def model(self, ctx, name: str) -> Model:
        return self._find(self.models, ctx, name, "model", "model")

    def delete_model(self, ctx, name: str) -> None:
        self.model(ctx, name)
        with self.lock:
            self.models.pop(name, None)

    def create_config(self, ctx, params: dict) -> EndpointConfig:
        name = params["EndpointConfigName"]
        arn = ctx.arn(f"endpoint-config/{name.lower()}")
        variants = params.get("ProductionVariants") or []
        if not variants:
            raise AwsError("ValidationException", "ProductionVariants must contain at least one variant.")
        seen = set()
        for variant in variants:
            if variant["VariantName"] in seen:
                raise AwsError("ValidationException", f"Duplicate VariantName {variant['VariantName']}.")
            seen.add(variant["VariantName"])
            if not variant.get("ModelName"):
                raise AwsError("ValidationException", f"Variant {variant['VariantName']} has no ModelName.")
            self.model(ctx, variant["ModelName"])
        capture = params.get("DataCaptureConfig")
        if capture and not str(capture.get("DestinationS3Uri", "")).startswith("s3://"):
            raise AwsError("ValidationException", "DataCaptureConfig.DestinationS3Uri must be an s3:// URI.")
        with self.lock:
            if name in self.configs:
                raise AwsError(
                    "ValidationException", f'Cannot create already existing endpoint configuration "{arn}".'
                )
            config = EndpointConfig(name, arn, copy.deepcopy(params), now())
            self.configs[name] = config
        return config

    def config(self, ctx, name: str) -> EndpointConfig:
        return self._find(self.configs, ctx, name, "endpoint-config", "endpoint configuration")

    def delete_config(self, ctx, name: str) -> None:
        self.config(ctx, name)
        with self.lock:
            self.configs.pop(name, None)

    # ---- endpoints ------------------------------------------------------------------------
    def endpoint(self, ctx, name: str) -> Endpoint:
        return self._find(self.endpoints, ctx, name, "endpoint", "endpoint")

    def create_endpoint(self, ctx, params: dict) -> Endpoint:
        name = params["EndpointName"]
        arn = ctx.arn(f"endpoint/{name.lower()}")
        config = self.config(ctx, params["EndpointConfigName"])
        with self.lock:
            if name in self.endpoints:
                raise AwsError("ValidationException", f'Cannot create already existing endpoint "{arn}".')
            endpoint = Endpoint(name, arn, config.name, now())
            self.endpoints[name] = endpoint
        self.twin.background(self._deploy, ctx, endpoint, config, endpoint.generation)
        return endpoint

    def update_endpoint(self, ctx, params: dict) -> Endpoint:
        endpoint = self.endpoint(ctx, params["EndpointName"])
        config = self.config(ctx, params["EndpointConfigName"])
        with self.lock:
            if endpoint.status != "InService":
                raise AwsError(
                    "ValidationException",
                    f'Cannot update in-progress endpoint "{endpoint.arn}".'
                    if endpoint.status in ("Creating", "Updating", "RollingBack")
                    else f'Cannot update endpoint "{endpoint.arn}" in status {endpoint.status}.',
                )
            endpoint.status = "Updating"
            endpoint.failure_reason = None
            endpoint.last_modified = now()
            endpoint.generation += 1
            endpoint.pending = (config.name, endpoint.last_modified)
            generation = endpoint.generation
        self.twin.background(self._deploy, ctx, endpoint, config, generation)
        return endpoint

    def delete_endpoint(self, ctx, name: str) -> None:
        endpoint = self.endpoint(ctx, name)
        with self.lock:
            if endpoint.status == "Deleting":
                return
            endpoint.generation += 1
            endpoint.status = "Deleting"
            endpoint.last_modified = now()
            generation = endpoint.generation
        self.capture.flush(endpoint=name)
        # visible as Deleting for a short while (botocore's endpoint_deleted waiter polls through it), then gone
        timer = threading.Timer(DELETING_SECONDS, self._forget, args=(endpoint, generation))
        timer.daemon = True
        timer.start()
        with self.lock:
            self._timers = [t for t in self._timers if t.is_alive()] + [timer]

    def _forget(self, endpoint: Endpoint, generation: int) -> None:
        with self.lock:
            if self.endpoints.get(endpoint.name) is endpoint and endpoint.generation == generation:
                del self.endpoints[endpoint.name]
                for key in [k for k in self._logs if k[0] == endpoint.name]:
                    self._logs.pop(key).flush()

    def _deploy(self, ctx, endpoint: Endpoint, config: EndpointConfig, generation: int) -> None:
        updating = endpoint.status == "Updating"
        try:
            variants = [self._load_variant(ctx, v) for v in config.request["ProductionVariants"]]
        except Exception as exc:
            if isinstance(exc, LoadError):
                reason = str(exc)
            else:  # a twin bug: fail the endpoint readably
                log.exception("deploying endpoint %s failed", endpoint.name)
                reason = f"the twin failed to deploy the endpoint: {type(exc).__name__}: {exc}"
            self.log(ctx, endpoint.name, config.request["ProductionVariants"][0]["VariantName"], reason)
            with self.lock:
                if endpoint.generation == generation:  # a failed update keeps serving the old variants
                    endpoint.failure_reason = reason
                    endpoint.status = "InService" if updating else "Failed"
                    endpoint.pending = None
                    endpoint.last_modified = now()
            return
        for v in variants:
            self.log(
                ctx,
                endpoint.name,
                v.name,
                f"aws_twin: variant {v.name} serves model {v.model_name} (image {v.image}, "
                f"{v.booster.num_features()} features, {v.booster.num_boosted_rounds()} trees)",
            )
        with self.lock:
            if endpoint.generation != generation:
                return
            endpoint.variants = variants
            endpoint.config_name = config.name
            capture = config.request.get("DataCaptureConfig")
            endpoint.capture = copy.deepcopy(capture) if capture else None
            endpoint.status = "InService"
            endpoint.pending = None
            endpoint.failure_reason = None
            endpoint.last_modified = now()

    def _resolve_container(self, ctx, model: Model) -> dict:
        container = dict(model.container())
        package_name = container.get("ModelPackageName")
        if package_name:
            try:
                package = self.registry.package(ctx, package_name)
            except AwsError as exc:
                raise LoadError(
                    f"Model package {package_name} of model {model.name} is gone: {exc.message}"
                ) from None
            inner = package.containers()
            if not inner:
                raise LoadError(f"Model package {package.arn} has no InferenceSpecification containers.")
            container = {**inner[0], **{k: v for k, v in container.items() if k != "ModelPackageName"}}
        return container

    def _load_variant(self, ctx, spec: dict) -> Variant:
        name = spec["VariantName"]
        model = self.models.get(spec["ModelName"])
        if model is None:
            raise LoadError(f"Model {spec['ModelName']} of production variant {name} was deleted.")
        container = self._resolve_container(ctx, model)
        image = container.get("Image", "")
        if xgboost_version(image) is None:
            raise LoadError(f"Production variant {name}: " + NOT_XGBOOST.format(image=image))
        url = container.get("ModelDataUrl") or (container.get("ModelDataSource") or {}).get(
            "S3DataSource", {}
        ).get("S3Uri")
        if not url:
            raise LoadError(f"Production variant {name}: model {model.name} has no ModelDataUrl.")
        booster = self.load_booster(url, name)
        return Variant(
            name=name,
            model_name=model.name,
            image=image,
            booster=booster,
            weight=float(spec.get("InitialVariantWeight", 1.0)),
            instance_count=int(spec.get("InitialInstanceCount") or 1),
            loaded_at=now(),
        )

    def load_booster(self, url: str, variant: str):
        try:
            bucket, key = split_s3(url)
            data = self.twin.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
            raise LoadError(
                f"Failed to download model data (bucket: {url[5:].partition('/')[0]}, key: "
                f"{url[5:].partition('/')[2]}): {code}. Please ensure that there is an object located at the "
                "URL and that the role passed to CreateModel has permissions to download the model."
            ) from None
        raw = data
        if data[:2] == b"\x1f\x8b" or url.endswith((".tar.gz", ".tgz", ".tar")):
            try:
                with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
                    members = [m for m in tar.getmembers() if m.isfile()]
                    chosen = next((m for m in members if m.name.split("/")[-1] == "xgboost-model"), None)
                    if chosen is None and len(members) == 1:
                        chosen = members[0]
                    if chosen is None:
                        names = ", ".join(m.name for m in members) or "nothing"
                        raise LoadError(
                            f"Production variant {variant}: {url} holds {names}; expected a file named xgboost-model."
                        )
                    raw = tar.extractfile(chosen).read()
            except tarfile.TarError as exc:
                raise LoadError(
                    f"Production variant {variant}: {url} is not a tar.gz archive: {exc}"
                ) from None
        import xgboost as xgb

        booster = xgb.Booster()
        try:
            booster.load_model(bytearray(raw))
        except xgb.core.XGBoostError as exc:
            raise LoadError(
                f"Production variant {variant}: the model in {url} could not be loaded by XGBoost: "
                f"{one_line(exc)}"
            ) from None
        return booster

    # ---- invocation -----------------------------------------------------------------------
    def pick_variant(self, endpoint: Endpoint, target: str | None) -> Variant:
        variants = endpoint.variants
        if target:
            for v in variants:
                if v.name == target:
                    return v
            raise AwsError(
                "ValidationError",
                f"TargetVariant {target} is not a production variant of endpoint {endpoint.name}.",
            )
        if len(variants) == 1:
            return variants[0]
        total = sum(v.weight for v in variants)
        if total <= 0:
            return variants[0]
        roll = self._random.random() * total
        for v in variants:
            roll -= v.weight
            if roll < 0:
                return v
        return variants[-1]

    def shutdown(self) -> None:
        with self.lock:
            timers, self._timers = self._timers, []
        for timer in timers:
            timer.cancel()
        self.capture.shutdown()
