"""Amazon Rekognition hook (boto3 ``rekognition`` client): DetectLabels, and the Custom Labels
lifecycle (projects, datasets from Ground Truth manifests, model versions: train, start, stop,
DetectCustomLabels), each create looked up first so that a retried task attaches to what its first
try made.

Waiters: botocore's own ``project_version_training_completed`` and ``project_version_running``;
this provider's ``project_version_stopped``, ``dataset_created`` and ``dataset_deleted`` (``waiters/rekognition.json``:
botocore has none for these).

Bad images: Rekognition answers :data:`BAD_IMAGE_CODES` for an image it cannot use; the batch
helpers turn them into a quarantine record naming the image and the reason instead of failing the
other images. Throttling (``ThrottlingException``, ``ProvisionedThroughputExceededException``) and
5xx answers are retried by botocore with backoff (:data:`~aws_ml_provider.hooks.DEFAULT_RETRIES`,
or the connection's / ``config``'s retries).
"""

from __future__ import annotations

from typing import Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from botocore.exceptions import ClientError

from ..utils import s3 as s3_utils
from ..utils import slug
from ..utils.errors import error_code, error_message
from . import AwsMlHookMixin

#: Rekognition's answers for an image it cannot use (the image is quarantined, the batch goes on)
BAD_IMAGE_CODES = (
    "InvalidImageFormatException",
    "ImageTooLargeException",
    "InvalidS3ObjectException",
    "InvalidParameterException",
)
#: model (project version) states
TRAINING_DONE = "TRAINING_COMPLETED"
TRAINING_FAILED = "TRAINING_FAILED"
RUNNING = "RUNNING"
STOPPED = "STOPPED"
#: states in which a model is not billed per inference hour and need not be stopped
NOT_RUNNING_STATES = (
    "TRAINING_IN_PROGRESS",
    TRAINING_DONE,
    TRAINING_FAILED,
    STOPPED,
    "FAILED",
    "DELETING",
    "COPYING_IN_PROGRESS",
    "COPYING_COMPLETED",
    "COPYING_FAILED",
    "DEPRECATED",
    "EXPIRED",
)
DATASET_DONE = ("CREATE_COMPLETE", "UPDATE_COMPLETE")
DATASET_FAILED = ("CREATE_FAILED", "UPDATE_FAILED")
DATASET_TYPES = ("TRAIN", "TEST")


class RekognitionResourceError(ValueError):
    """A Custom Labels resource is in a state the task cannot use (failed training, failed
    dataset, ...); the message names it and Rekognition's reason."""


def project_name_from_arn(arn: str) -> str:
    """``arn:aws:rekognition:REGION:ACCOUNT:project/NAME/...`` -> ``NAME`` (a name is returned as is)."""
    if not arn or ":project/" not in arn:
        return arn
    return arn.split(":project/", 1)[1].split("/", 1)[0]


def version_name_from_arn(arn: str) -> str:
    """``.../project/NAME/version/VERSION/TIMESTAMP`` -> ``VERSION`` ('' when not a version ARN)."""
    if not arn or "/version/" not in arn:
        return ""
    return arn.split("/version/", 1)[1].split("/", 1)[0]


def version_name(*parts: object, prefix: str = "v") -> str:
    """A deterministic model version name (``[a-zA-Z0-9_.-]``, at most 255 chars) from ``parts``
    (e.g. DAG id and run id): every try of a task derives the same name."""
    from ..utils import stable_hash

    return f"{prefix}-{slug('-'.join(str(p) for p in parts), 40)}-{stable_hash(*parts, length=12)}"


def s3_image(uri: str) -> dict[str, Any]:
    """``s3://bucket/key`` -> Rekognition's ``Image`` argument (``S3Object``)."""
    bucket, key = s3_utils.split_object_uri(uri, what="image URI")
    return {"S3Object": {"Bucket": bucket, "Name": key}}


class RekognitionHook(AwsMlHookMixin, AwsBaseHook):
    """Interact with Amazon Rekognition (labels and Custom Labels).

    Additional arguments (such as ``aws_conn_id``) may be specified and are passed down to the
    underlying ``AwsBaseHook``.
    """

    waiter_file = "rekognition"

    def __init__(self, *args, **kwargs) -> None:
        kwargs["client_type"] = "rekognition"
        super().__init__(*args, **kwargs)

    # ---- projects ----------------------------------------------------------------------------
    def describe_project(self, project_name: str) -> dict[str, Any] | None:
        """The project's description (``ProjectArn``, ``Status``, ``Datasets``...), None when absent."""
        response = self.conn.describe_projects(ProjectNames=[project_name])
        for project in response.get("ProjectDescriptions", []):
            if project_name_from_arn(project["ProjectArn"]) == project_name:
                return project
        return None

    def ensure_project(
        self, project_name: str, *, feature: str = "CUSTOM_LABELS", tags: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """Create the project unless it exists. :return: ``{"project_arn", "created"}``"""
        found = self.describe_project(project_name)
        if found:
            self.log.info("Reusing Rekognition project %s", found["ProjectArn"])
            return {"project_arn": found["ProjectArn"], "created": False}
        params: dict[str, Any] = {"ProjectName": project_name}
        if feature and feature != "CUSTOM_LABELS":
            params["Feature"] = feature
        if tags:
            params["Tags"] = tags
        try:
            arn = self.conn.create_project(**params)["ProjectArn"]
        except ClientError as err:
            if error_code(err) != "ResourceInUseException":
                raise
            found = self.describe_project(project_name)  # created meanwhile by a concurrent task
            if not found:
                raise
            return {"project_arn": found["ProjectArn"], "created": False}
        self.log.info("Created Rekognition project %s", arn)
        return {"project_arn": arn, "created": True}

    def project_arn(self, project: str) -> str:
        """A project ARN from an ARN or a name (looked up); ``RekognitionResourceError`` when absent."""
        if project.startswith("arn:"):
            return project
        found = self.describe_project(project)
        if not found:
            raise RekognitionResourceError(f"Rekognition project {project!r} does not exist")
        return found["ProjectArn"]

    # ---- datasets ----------------------------------------------------------------------------
    def project_dataset(self, project_arn: str, dataset_type: str) -> dict[str, Any] | None:
        """The project's dataset of ``dataset_type`` (TRAIN / TEST) as DescribeProjects lists it."""
        project = self.describe_project(project_name_from_arn(project_arn)) or {}
        for dataset in project.get("Datasets") or []:
            if dataset.get("DatasetType") == dataset_type:
                return dataset
        return None

    def describe_dataset(self, dataset_arn: str) -> dict[str, Any]:
        return self.conn.describe_dataset(DatasetArn=dataset_arn)["DatasetDescription"]

    def create_dataset(
        self,
        project_arn: str,
        dataset_type: str,
        manifest_s3_uri: str | None = None,
        *,
        source_dataset_arn: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> str:
        """CreateDataset from a Ground Truth manifest in S3, or from another dataset (copy)."""
        if dataset_type not in DATASET_TYPES:
            raise ValueError(f"dataset_type must be one of {DATASET_TYPES}, got {dataset_type!r}")
        if bool(manifest_s3_uri) == bool(source_dataset_arn):
            raise ValueError("pass exactly one of manifest_s3_uri and source_dataset_arn")
        source: dict[str, Any]
        if manifest_s3_uri:
            bucket, key = s3_utils.split_object_uri(manifest_s3_uri, what="manifest URI")
            source = {"GroundTruthManifest": {"S3Object": {"Bucket": bucket, "Name": key}}}
        else:
            source = {"DatasetArn": source_dataset_arn}
        params: dict[str, Any] = {
            "ProjectArn": project_arn,
            "DatasetType": dataset_type,
            "DatasetSource": source,
        }
        if tags:
            params["Tags"] = tags
        arn = self.conn.create_dataset(**params)["DatasetArn"]
        self.log.info(
            "Created %s dataset %s from %s", dataset_type, arn, manifest_s3_uri or source_dataset_arn
        )
        return arn

    def delete_dataset(self, dataset_arn: str) -> None:
        self.conn.delete_dataset(DatasetArn=dataset_arn)

    # ---- model versions ----------------------------------------------------------------------
    def describe_version(self, project_arn: str, version: str) -> dict[str, Any] | None:
        """The description of the project's model ``version`` (a name), None when absent."""
        try:
            response = self.conn.describe_project_versions(ProjectArn=project_arn, VersionNames=[version])
        except ClientError as err:
            if error_code(err) == "ResourceNotFoundException":
                return None
            raise
        for described in response.get("ProjectVersionDescriptions", []):
            if version_name_from_arn(described["ProjectVersionArn"]) == version:
                return described
        return None

    def describe_version_arn(self, project_version_arn: str) -> dict[str, Any]:
        """The description of a model by its ARN; ``RekognitionResourceError`` when it is gone."""
        project = self.project_arn(project_name_from_arn(project_version_arn))
        described = self.describe_version(project, version_name_from_arn(project_version_arn))
        if described is None:
            raise RekognitionResourceError(f"Rekognition model {project_version_arn} does not exist")
        return described

    def create_version(
        self,
        project_arn: str,
        version: str,
        output_s3_uri: str,
        *,
        tags: dict[str, str] | None = None,
        kms_key_id: str | None = None,
        description: str | None = None,
    ) -> dict[str, Any]:
        """Train model ``version`` unless the project has it. A version that exists is returned as it is
        (a retried task attaches to its training). It trains on the project's TRAIN dataset and is
        evaluated on its TEST dataset (Custom Labels splits the TRAIN dataset 80/20 when there is none).

        :return: ``{"project_version_arn", "status", "created"}``
        """
        found = self.describe_version(project_arn, version)
        if found:
            self.log.info(
                "Model %s exists (%s): attaching to it", found["ProjectVersionArn"], found["Status"]
            )
            return {
                "project_version_arn": found["ProjectVersionArn"],
                "status": found["Status"],
                "created": False,
            }
        bucket, prefix = s3_utils.split_uri(output_s3_uri, what="output S3 URI")
        params: dict[str, Any] = {
            "ProjectArn": project_arn,
            "VersionName": version,
            "OutputConfig": {"S3Bucket": bucket, "S3KeyPrefix": prefix.rstrip("/")},
        }
        if tags:
            params["Tags"] = tags
        if kms_key_id:
            params["KmsKeyId"] = kms_key_id
        if description:
            params["VersionDescription"] = description
        try:
            arn = self.conn.create_project_version(**params)["ProjectVersionArn"]
        except ClientError as err:
            if error_code(err) != "ResourceInUseException":
                raise
            found = self.describe_version(project_arn, version)
            if not found:
                raise
            return {
                "project_version_arn": found["ProjectVersionArn"],
                "status": found["Status"],
                "created": False,
            }
        self.log.info("Training Rekognition model %s", arn)
        return {"project_version_arn": arn, "status": "TRAINING_IN_PROGRESS", "created": True}

    def start_version(
        self, project_version_arn: str, min_inference_units: int = 1, max_inference_units: int | None = None
    ) -> str:
        """Start the model unless it is running or starting. :return: the status after the call."""
        status = self.describe_version_arn(project_version_arn)["Status"]
        if status in (RUNNING, "STARTING"):
            self.log.info("Model %s is %s already", project_version_arn, status)
            return status
        if status == "STOPPING":
            self.log.info("Model %s is stopping; waiting before starting it again", project_version_arn)
            self.wait_for("project_version_stopped", project_version_arn, delay=5, max_attempts=120)
        params: dict[str, Any] = {
            "ProjectVersionArn": project_version_arn,
            "MinInferenceUnits": int(min_inference_units),
        }
        if max_inference_units:
            params["MaxInferenceUnits"] = int(max_inference_units)
        try:
            return self.conn.start_project_version(**params)["Status"]
        except ClientError as err:
            if error_code(err) != "ResourceInUseException":
                raise
            return self.describe_version_arn(project_version_arn)["Status"]

    def stop_version(self, project_version_arn: str) -> str:
        """Stop the model unless it is not running (nothing billed): STOPPED, STOPPING, a trained
        model never started... :return: the status after the call."""
        status = self.describe_version_arn(project_version_arn)["Status"]
        if status in NOT_RUNNING_STATES or status == "STOPPING":
            self.log.info("Model %s is %s: nothing to stop", project_version_arn, status)
            return status
        if status == "STARTING":  # Rekognition stops a model once it has started
            self.wait_for("project_version_running", project_version_arn, delay=5, max_attempts=120)
        try:
            return self.conn.stop_project_version(ProjectVersionArn=project_version_arn)["Status"]
        except ClientError as err:
            if error_code(err) != "ResourceInUseException":
                raise
            return self.describe_version_arn(project_version_arn)["Status"]

    def waiter_args(self, project_version_arn: str) -> dict[str, Any]:
        """DescribeProjectVersions arguments that select one model (for the waiters)."""
        return {
            "ProjectArn": self.project_arn(project_name_from_arn(project_version_arn)),
            "VersionNames": [version_name_from_arn(project_version_arn)],
        }

    def wait_for(
        self, waiter: str, project_version_arn: str, *, delay: int = 30, max_attempts: int = 60
    ) -> None:
        """Wait (in the worker) with one of the model waiters, logging the status."""
        from airflow.providers.amazon.aws.utils.waiter_with_logging import wait

        wait(
            waiter=self.get_waiter(waiter),
            waiter_delay=delay,
            waiter_max_attempts=max_attempts,
            args=self.waiter_args(project_version_arn),
            failure_message=f"Rekognition model {project_version_arn}: {waiter} failed",
            status_message=f"Status of Rekognition model {project_version_arn} is",
            status_args=[
                "ProjectVersionDescriptions[0].Status",
                "ProjectVersionDescriptions[0].StatusMessage",
            ],
        )

    # ---- detection ---------------------------------------------------------------------------
    def detect_labels(
        self,
        image_uri: str,
        *,
        min_confidence: float | None = None,
        max_labels: int | None = None,
        features: list[str] | None = None,
        settings: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """DetectLabels on an S3 image; the response less ResponseMetadata."""
        params: dict[str, Any] = {"Image": s3_image(image_uri)}
        if min_confidence is not None:
            params["MinConfidence"] = float(min_confidence)
        if max_labels is not None:
            params["MaxLabels"] = int(max_labels)
        if features:
            params["Features"] = list(features)
        if settings:
            params["Settings"] = settings
        response = self.conn.detect_labels(**params)
        response.pop("ResponseMetadata", None)
        return response

    def detect_custom_labels(
        self,
        project_version_arn: str,
        image_uri: str,
        *,
        min_confidence: float | None = None,
        max_results: int | None = None,
    ) -> dict[str, Any]:
        """DetectCustomLabels with a running model on an S3 image; the response less ResponseMetadata."""
        params: dict[str, Any] = {"ProjectVersionArn": project_version_arn, "Image": s3_image(image_uri)}
        if min_confidence is not None:
            params["MinConfidence"] = float(min_confidence)
        if max_results is not None:
            params["MaxResults"] = int(max_results)
        response = self.conn.detect_custom_labels(**params)
        response.pop("ResponseMetadata", None)
        return response


def bad_image_reason(err: ClientError, image_uri: str) -> tuple[str, str] | None:
    """``(code, reason)`` when Rekognition refused the image itself (quarantine it), else None."""
    code = error_code(err)
    if code not in BAD_IMAGE_CODES:
        return None
    message = error_message(err) or code
    return code, f"Rekognition {code} for {image_uri}: {message}"


def label_confidences(labels: list[dict[str, Any]]) -> dict[str, float]:
    """``{name: confidence}`` of DetectLabels ``Labels`` (aliases map to their label's confidence)
    or DetectCustomLabels ``CustomLabels`` (the best of a label's instances); names are kept as
    Rekognition spells them."""
    out: dict[str, float] = {}
    for label in labels or []:
        names = [label.get("Name", "")] + [a.get("Name", "") for a in label.get("Aliases") or []]
        for name in filter(None, names):
            out[name] = max(out.get(name, 0.0), float(label.get("Confidence") or 0.0))
    return out
