"""Amazon Rekognition operators: Custom Labels projects, datasets (from a Ground Truth manifest),
model training, start and stop (deferrable), and label detection over a batch of S3 images
(mappable, paced by a TPS budget, bad images quarantined with a reason).

Every create is looked up first: a retried task attaches to the project, dataset or model its
first try made. A running Custom Labels model is billed by the inference-unit hour: a DAG that
starts one stops it in a teardown task (``RekognitionStopProjectVersionOperator(...).as_teardown(
setups=start)``), which runs even when the tasks between fail, and does nothing when the model
is not running.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils import validate_execute_complete_event
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, conf

from ..hooks.rekognition import (
    DATASET_DONE,
    DATASET_FAILED,
    RUNNING,
    STOPPED,
    TRAINING_DONE,
    TRAINING_FAILED,
    RekognitionHook,
    RekognitionResourceError,
    project_name_from_arn,
    version_name,
    version_name_from_arn,
)
from ..links import persist_link
from ..links.rekognition import RekognitionConsoleLink, RekognitionModelLink, RekognitionProjectLink
from . import run_identity, trigger_connection

if TYPE_CHECKING:
    from airflow.sdk import Context


def _default_deferrable() -> bool:
    return conf.getboolean("operators", "default_deferrable", fallback=False)


class RekognitionCreateProjectOperator(AwsBaseOperator[RekognitionHook]):
    """Create a Rekognition Custom Labels project unless it exists.

    :param project_name: the project's name (templated)
    :param tags: tags of a new project
    :return: the ProjectArn (str)
    """

    aws_hook_class = RekognitionHook
    template_fields: Sequence[str] = aws_template_fields("project_name")
    operator_extra_links = (RekognitionProjectLink(),)

    def __init__(self, *, project_name: str, tags: dict[str, str] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.project_name = project_name
        self.tags = tags

    def execute(self, context: Context) -> str:
        result = self.hook.ensure_project(self.project_name, tags=self.tags)
        persist_link(RekognitionProjectLink, context, self, project_name=self.project_name)
        return result["project_arn"]


class RekognitionCreateDatasetOperator(AwsBaseOperator[RekognitionHook]):
    """Create the project's TRAIN or TEST dataset from a SageMaker Ground Truth manifest in S3
    (image classification or object detection) unless the project has one, and wait until it
    is CREATE_COMPLETE.

    A dataset of that type that exists is reused (``if_exists="reuse"``, the default: a retried
    task attaches to it) or deleted and created again from the manifest (``"replace"``: new data
    for a new model). A dataset that is CREATE_FAILED fails the task with Rekognition's message,
    which names the bad manifest line.

    :param project: the project's name or ARN (templated)
    :param dataset_type: ``TRAIN`` or ``TEST`` (templated)
    :param manifest_s3_uri: the Ground Truth manifest (templated)
    :param if_exists: ``reuse`` or ``replace``
    :param wait_for_completion: wait for CREATE_COMPLETE (default: True)
    :param deferrable: wait in the triggerer (default: ``[operators] default_deferrable``)
    :return: the DatasetArn (str)
    """

    aws_hook_class = RekognitionHook
    template_fields: Sequence[str] = aws_template_fields("project", "dataset_type", "manifest_s3_uri")
    operator_extra_links = (RekognitionProjectLink(),)

    def __init__(
        self,
        *,
        project: str,
        manifest_s3_uri: str,
        dataset_type: str = "TRAIN",
        if_exists: str = "reuse",
        wait_for_completion: bool = True,
        deferrable: bool = _default_deferrable(),
        waiter_delay: int = 10,
        waiter_max_attempts: int = 180,
        tags: dict[str, str] | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if if_exists not in ("reuse", "replace"):
            raise ValueError(f"{self.task_id}: if_exists must be 'reuse' or 'replace', got {if_exists!r}")
        self.project = project
        self.manifest_s3_uri = manifest_s3_uri
        self.dataset_type = dataset_type
        self.if_exists = if_exists
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.waiter_delay = waiter_delay
        self.waiter_max_attempts = waiter_max_attempts
        self.tags = tags

    def execute(self, context: Context) -> str:
        try:
            project_arn = self.hook.project_arn(self.project)
        except RekognitionResourceError as exc:
            raise AirflowFailException(str(exc)) from exc
        persist_link(RekognitionProjectLink, context, self, project_name=project_name_from_arn(project_arn))
        existing = self.hook.project_dataset(project_arn, self.dataset_type)
        if existing and self.if_exists == "replace" and existing.get("Status") != "DELETE_IN_PROGRESS":
            self.log.info("Replacing %s dataset %s", self.dataset_type, existing["DatasetArn"])
            self.hook.delete_dataset(existing["DatasetArn"])
            self._wait_deleted(existing["DatasetArn"])
            existing = None
        if existing:
            arn = existing["DatasetArn"]
            self.log.info("Reusing %s dataset %s (%s)", self.dataset_type, arn, existing.get("Status"))
        else:
            arn = self.hook.create_dataset(
                project_arn, self.dataset_type, self.manifest_s3_uri, tags=self.tags
            )
        if not self.wait_for_completion:
            return arn
        status = self.hook.describe_dataset(arn)
        if status["Status"] in DATASET_DONE or status["Status"] in DATASET_FAILED:
            return self._complete(arn)
        if self.deferrable:
            from ..triggers.rekognition import RekognitionDatasetCreatedTrigger

            self.defer(
                trigger=RekognitionDatasetCreatedTrigger(
                    dataset_arn=arn,
                    waiter_delay=self.waiter_delay,
                    waiter_max_attempts=self.waiter_max_attempts,
                    **trigger_connection(self),
                ),
                method_name="execute_complete",
            )
        from airflow.providers.amazon.aws.utils.waiter_with_logging import wait

        try:
            wait(
                waiter=self.hook.get_waiter("dataset_created"),
                waiter_delay=self.waiter_delay,
                waiter_max_attempts=self.waiter_max_attempts,
                args={"DatasetArn": arn},
                failure_message=f"Rekognition dataset {arn} was not created",
                status_message=f"Status of Rekognition dataset {arn} is",
                status_args=["DatasetDescription.Status", "DatasetDescription.StatusMessage"],
            )
        except AirflowException:
            pass  # _complete reports a failed dataset with its message
        return self._complete(arn)

    def _wait_deleted(self, dataset_arn: str) -> None:
        """DeleteDataset is asynchronous: wait (this provider's ``dataset_deleted`` waiter; a
        deletion takes seconds) before creating the new dataset of that type."""
        from airflow.providers.amazon.aws.utils.waiter_with_logging import wait

        wait(
            waiter=self.hook.get_waiter("dataset_deleted"),
            waiter_delay=min(self.waiter_delay, 5),
            waiter_max_attempts=self.waiter_max_attempts,
            args={"DatasetArn": dataset_arn},
            failure_message=f"the old {self.dataset_type} dataset {dataset_arn} was not deleted",
            status_message=f"Status of Rekognition dataset {dataset_arn} is",
            status_args=["DatasetDescription.Status"],
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> str:
        event = validate_execute_complete_event(event)
        return self._complete(event["dataset_arn"])

    def _complete(self, arn: str) -> str:
        described = self.hook.describe_dataset(arn)
        if described["Status"] not in DATASET_DONE:
            raise AirflowFailException(
                f"Rekognition {self.dataset_type} dataset {arn} from {self.manifest_s3_uri} is "
                f"{described['Status']}: {described.get('StatusMessage') or 'no message'}"
            )
        stats = described.get("DatasetStats") or {}
        self.log.info("Dataset %s: %s", arn, stats)
        return arn


class RekognitionTrainProjectVersionOperator(AwsBaseOperator[RekognitionHook]):
    """Train a Custom Labels model (a project version) on the project's datasets and wait for it.

    The version name is ``version_name``, else derived from the DAG, run and task (the same on
    every try): a retried task attaches to the training its first try started, and a model that
    is trained already is returned at once. TRAINING_FAILED fails the task with Rekognition's
    StatusMessage.

    :param project: the project's name or ARN (templated)
    :param output_s3_uri: where Rekognition writes the training and evaluation results (templated)
    :param version_name: the model's version name (templated)
    :param min_f1_score: fail when the F1 score on the test dataset is lower (templated)
    :param wait_for_completion: wait until the training ends (default: True)
    :param deferrable: wait in the triggerer (default: ``[operators] default_deferrable``);
        botocore's ``project_version_training_completed`` waiter
    :param waiter_delay: seconds between checks (default: 60)
    :param waiter_max_attempts: checks before giving up (default: 1440, a day)
    :return: ``{"project_arn", "project_version_arn", "version_name", "status", "f1_score",
        "evaluation_summary_uri", "billable_training_seconds"}``
    """

    aws_hook_class = RekognitionHook
    template_fields: Sequence[str] = aws_template_fields(
        "project", "output_s3_uri", "version_name", "min_f1_score"
    )
    operator_extra_links = (RekognitionModelLink(), RekognitionProjectLink())

    def __init__(
        self,
        *,
        project: str,
        output_s3_uri: str,
        version_name: str | None = None,
        min_f1_score: float | None = None,
        wait_for_completion: bool = True,
        deferrable: bool = _default_deferrable(),
        waiter_delay: int = 60,
        waiter_max_attempts: int = 1440,
        tags: dict[str, str] | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.project = project
        self.output_s3_uri = output_s3_uri
        self.version_name = version_name
        self.min_f1_score = min_f1_score
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.waiter_delay = waiter_delay
        self.waiter_max_attempts = waiter_max_attempts
        self.tags = tags

    def execute(self, context: Context) -> dict[str, Any]:
        try:
            project_arn = self.hook.project_arn(self.project)
        except RekognitionResourceError as exc:
            raise AirflowFailException(str(exc)) from exc
        version = self.version_name or version_name(*run_identity(context, self))
        started = self.hook.create_version(project_arn, version, self.output_s3_uri, tags=self.tags)
        arn = started["project_version_arn"]
        project_name = project_name_from_arn(project_arn)
        persist_link(RekognitionProjectLink, context, self, project_name=project_name)
        persist_link(RekognitionModelLink, context, self, project_name=project_name, version_name=version)
        if not self.wait_for_completion or started["status"] in (TRAINING_DONE, TRAINING_FAILED):
            return self._complete(arn, require_trained=self.wait_for_completion)
        if self.deferrable:
            from ..triggers.rekognition import RekognitionProjectVersionTrainedTrigger

            self.defer(
                trigger=RekognitionProjectVersionTrainedTrigger(
                    project_arn=project_arn,
                    project_version_arn=arn,
                    version_name=version,
                    waiter_delay=self.waiter_delay,
                    waiter_max_attempts=self.waiter_max_attempts,
                    **trigger_connection(self),
                ),
                method_name="execute_complete",
                timeout=timedelta(seconds=self.waiter_delay * self.waiter_max_attempts),
            )
        try:
            self.hook.wait_for(
                "project_version_training_completed",
                arn,
                delay=self.waiter_delay,
                max_attempts=self.waiter_max_attempts,
            )
        except AirflowException:
            pass  # _complete reports a failed training with its StatusMessage
        return self._complete(arn)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        event = validate_execute_complete_event(event)
        return self._complete(event["project_version_arn"])

    def _complete(self, arn: str, require_trained: bool = True) -> dict[str, Any]:
        described = self.hook.describe_version_arn(arn)
        status = described["Status"]
        if require_trained and status == TRAINING_FAILED:
            raise AirflowFailException(
                f"Rekognition model {arn} failed training: {described.get('StatusMessage') or 'no message'}"
            )
        if require_trained and status in ("TRAINING_IN_PROGRESS",):
            raise AirflowException(f"Rekognition model {arn} is still training")
        evaluation = described.get("EvaluationResult") or {}
        summary = (evaluation.get("Summary") or {}).get("S3Object") or {}
        result = {
            "project_arn": self.hook.project_arn(project_name_from_arn(arn)),
            "project_version_arn": arn,
            "version_name": version_name_from_arn(arn),
            "status": status,
            "f1_score": evaluation.get("F1Score"),
            "evaluation_summary_uri": f"s3://{summary['Bucket']}/{summary['Name']}" if summary else None,
            "billable_training_seconds": described.get("BillableTrainingTimeInSeconds"),
        }
        self.log.info("Model %s: %s", arn, result)
        if self.min_f1_score is not None and status == TRAINING_DONE:
            f1 = result["f1_score"]
            if f1 is None or float(f1) < float(self.min_f1_score):
                raise AirflowFailException(
                    f"Rekognition model {arn}: F1 score {f1} is below the minimum {self.min_f1_score}"
                )
        return result


def _version_arn(value: Any) -> str | None:
    """A model ARN from an ARN or a train / start result dict (None / '' when there is none)."""
    if isinstance(value, dict):
        return value.get("project_version_arn")
    return value or None


class RekognitionStartProjectVersionOperator(AwsBaseOperator[RekognitionHook]):
    """Start a trained Custom Labels model and wait until it is RUNNING (billed from then on, per
    inference unit and hour: stop it in a teardown task). A model that is running or starting
    already is attached to.

    :param project_version_arn: the model's ARN, or a train result dict (templated)
    :param min_inference_units: / :param max_inference_units: inference units (auto scaling)
    :param deferrable: wait in the triggerer (botocore's ``project_version_running`` waiter)
    :return: the ProjectVersionArn (str)
    """

    aws_hook_class = RekognitionHook
    template_fields: Sequence[str] = aws_template_fields("project_version_arn")
    operator_extra_links = (RekognitionModelLink(),)
    ui_color: ClassVar[str] = "#f6d9a8"

    def __init__(
        self,
        *,
        project_version_arn: Any,
        min_inference_units: int = 1,
        max_inference_units: int | None = None,
        wait_for_completion: bool = True,
        deferrable: bool = _default_deferrable(),
        waiter_delay: int = 30,
        waiter_max_attempts: int = 120,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.project_version_arn = project_version_arn
        self.min_inference_units = min_inference_units
        self.max_inference_units = max_inference_units
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.waiter_delay = waiter_delay
        self.waiter_max_attempts = waiter_max_attempts

    def execute(self, context: Context) -> str:
        arn = _version_arn(self.project_version_arn)
        if not arn:
            raise AirflowFailException(f"{self.task_id}: no model ARN given ({self.project_version_arn!r})")
        persist_link(
            RekognitionModelLink,
            context,
            self,
            project_name=project_name_from_arn(arn),
            version_name=version_name_from_arn(arn),
        )
        status = self.hook.start_version(arn, self.min_inference_units, self.max_inference_units)
        self.log.info("Model %s: %s", arn, status)
        if not self.wait_for_completion or status == RUNNING:
            return arn
        if self.deferrable:
            from ..triggers.rekognition import RekognitionProjectVersionRunningTrigger

            args = self.hook.waiter_args(arn)
            self.defer(
                trigger=RekognitionProjectVersionRunningTrigger(
                    project_arn=args["ProjectArn"],
                    project_version_arn=arn,
                    version_name=args["VersionNames"][0],
                    waiter_delay=self.waiter_delay,
                    waiter_max_attempts=self.waiter_max_attempts,
                    **trigger_connection(self),
                ),
                method_name="execute_complete",
            )
        self.hook.wait_for(
            "project_version_running", arn, delay=self.waiter_delay, max_attempts=self.waiter_max_attempts
        )
        return arn

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> str:
        event = validate_execute_complete_event(event)
        if event.get("status") != "success":
            raise AirflowException(f"{self.task_id}: {event.get('message')}")
        return event["project_version_arn"]


class RekognitionStopProjectVersionOperator(AwsBaseOperator[RekognitionHook]):
    """Stop a Custom Labels model and wait until it is STOPPED; a model that is not running (never
    started, stopped already, failed) is left as it is, and an empty ARN (the start task was
    skipped) does nothing: made to be a teardown task.

    :param project_version_arn: the model's ARN, or a train / start result (templated)
    :param deferrable: wait in the triggerer (this provider's ``project_version_stopped`` waiter)
    :return: the model's status at the end (str) or None when there was no model
    """

    aws_hook_class = RekognitionHook
    template_fields: Sequence[str] = aws_template_fields("project_version_arn")
    operator_extra_links = (RekognitionModelLink(),)
    ui_color: ClassVar[str] = "#f6d9a8"

    def __init__(
        self,
        *,
        project_version_arn: Any,
        wait_for_completion: bool = True,
        deferrable: bool = _default_deferrable(),
        waiter_delay: int = 30,
        waiter_max_attempts: int = 120,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.project_version_arn = project_version_arn
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.waiter_delay = waiter_delay
        self.waiter_max_attempts = waiter_max_attempts

    def execute(self, context: Context) -> str | None:
        arn = _version_arn(self.project_version_arn)
        if not arn or arn == "None":
            self.log.info("No model to stop")
            return None
        persist_link(
            RekognitionModelLink,
            context,
            self,
            project_name=project_name_from_arn(arn),
            version_name=version_name_from_arn(arn),
        )
        status = self.hook.stop_version(arn)
        self.log.info("Model %s: %s", arn, status)
        if not self.wait_for_completion or status != "STOPPING":
            return status
        if self.deferrable:
            from ..triggers.rekognition import RekognitionProjectVersionStoppedTrigger

            args = self.hook.waiter_args(arn)
            self.defer(
                trigger=RekognitionProjectVersionStoppedTrigger(
                    project_arn=args["ProjectArn"],
                    project_version_arn=arn,
                    version_name=args["VersionNames"][0],
                    waiter_delay=self.waiter_delay,
                    waiter_max_attempts=self.waiter_max_attempts,
                    **trigger_connection(self),
                ),
                method_name="execute_complete",
            )
        self.hook.wait_for(
            "project_version_stopped", arn, delay=self.waiter_delay, max_attempts=self.waiter_max_attempts
        )
        return STOPPED

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> str:
        event = validate_execute_complete_event(event)
        if event.get("status") != "success":
            raise AirflowException(f"{self.task_id}: {event.get('message')}")
        return STOPPED


class RekognitionDetectLabelsOperator(AwsBaseOperator[RekognitionHook]):
    """DetectLabels (or, with ``project_version_arn``, DetectCustomLabels) on a batch of S3 images;
    map it over batches (``.partial(...).expand(images=batches)``).

    - Calls are paced at ``tps`` per second (a token bucket; with N mapped tasks at once, give each
      the account's budget / N); throttling and 5xx answers are retried by botocore with backoff.
    - An image Rekognition refuses (``InvalidImageFormatException``, ``ImageTooLargeException``,
      ``InvalidS3ObjectException``, ``InvalidParameterException``) is quarantined: with a
      ``quarantine_prefix`` it is copied there with ``<name>.reason.json`` beside it, and the batch
      goes on. Any other error fails the task (and is retried with it).
    - ``hit_labels`` (``{label: minimum confidence}``) with ``stop_after_misses``: the batch stops
      after that many images in a row without any of those labels; the rest are counted as
      ``skipped_early_stop`` (not sent to Rekognition).
    - Results are written to ``<output_prefix>/<batch>.json`` as they come (every 10 images): a
      retried task continues where its first try stopped and calls nothing twice.

    :param images: S3 URIs; or a batch ``{"batch": id, "images": [...]}``; or ``{"batch": id,
        "manifest_uri": uri}`` where the JSON at ``uri`` has ``"images"`` (templated)
    :param output_prefix: where the batch's results go (templated)
    :param quarantine_prefix: where bad images go (templated)
    :param project_version_arn: a running Custom Labels model: DetectCustomLabels (templated)
    :param min_confidence: / :param max_labels: / :param features: / :param settings: DetectLabels'
    :return: ``{"batch", "results_uri", "images", "scanned", "quarantined", "skipped_early_stop",
        "hits"}``; the results file holds per image ``{"image", "status", "labels": [{"name",
        "confidence", "parents", "instances"}], "hit", "code", "reason"}``
    """

    aws_hook_class = RekognitionHook
    template_fields: Sequence[str] = aws_template_fields(
        "images",
        "output_prefix",
        "quarantine_prefix",
        "project_version_arn",
        "hit_labels",
        "stop_after_misses",
        "min_confidence",
        "tps",
    )
    template_fields_renderers: ClassVar[dict] = {"images": "json", "hit_labels": "json"}
    operator_extra_links = (RekognitionConsoleLink(),)

    SAVE_EVERY = 10

    def __init__(
        self,
        *,
        images: Any,
        output_prefix: str,
        quarantine_prefix: str | None = None,
        project_version_arn: Any = None,
        min_confidence: float | None = None,
        max_labels: int | None = None,
        features: list[str] | None = None,
        settings: dict[str, Any] | None = None,
        tps: float = 5.0,
        hit_labels: dict[str, float] | None = None,
        stop_after_misses: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.images = images
        self.output_prefix = output_prefix
        self.quarantine_prefix = quarantine_prefix
        self.project_version_arn = project_version_arn
        self.min_confidence = min_confidence
        self.max_labels = max_labels
        self.features = features
        self.settings = settings
        self.tps = tps
        self.hit_labels = hit_labels
        self.stop_after_misses = stop_after_misses

    def _batch(self, context: Context) -> tuple[str, list[str]]:
        from ..utils import s3 as s3_utils

        value = self.images
        if isinstance(value, dict):
            batch_id = str(value.get("batch", context["ti"].map_index))
            if "images" in value:
                return batch_id, list(value["images"])
            return batch_id, list(s3_utils.read_json(self.hook.s3_client, value["manifest_uri"])["images"])
        index = getattr(context["ti"], "map_index", -1)
        return (str(index) if index is not None and index >= 0 else "all"), list(value or [])

    def execute(self, context: Context) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        from ..hooks.rekognition import bad_image_reason
        from ..utils import s3 as s3_utils
        from ..utils.expense import TokenBucket
        from ..utils.rekognition import is_hit, label_records

        persist_link(RekognitionConsoleLink, context, self)
        model = _version_arn(self.project_version_arn)
        s3 = self.hook.s3_client
        batch_id, images = self._batch(context)
        results_uri = f"{self.output_prefix.rstrip('/')}/{batch_id}.json"
        state = (
            s3_utils.read_json(s3, results_uri, default={"records": {}})
            if s3_utils.exists(s3, results_uri)
            else {"records": {}}
        )
        records: dict[str, dict] = state["records"]
        if records:
            self.log.info("Resuming batch %s: %d of %d image(s) done", batch_id, len(records), len(images))
        bucket = TokenBucket(float(self.tps), burst=max(1.0, float(self.tps)))
        misses = 0
        stopped_at = None
        for position, image in enumerate(images):
            record = records.get(image)
            if record is None:
                if self.stop_after_misses and misses >= int(self.stop_after_misses):
                    stopped_at = stopped_at if stopped_at is not None else position
                    records[image] = {
                        "image": image,
                        "status": "skipped_early_stop",
                        "labels": [],
                        "hit": False,
                    }
                    continue
                bucket.acquire()
                try:
                    if model:
                        response = self.hook.detect_custom_labels(
                            model, image, min_confidence=self.min_confidence, max_results=self.max_labels
                        )
                        labels = label_records(response.get("CustomLabels") or [])
                    else:
                        response = self.hook.detect_labels(
                            image,
                            min_confidence=self.min_confidence,
                            max_labels=self.max_labels,
                            features=self.features,
                            settings=self.settings,
                        )
                        labels = label_records(response.get("Labels") or [])
                    record = {
                        "image": image,
                        "status": "scanned",
                        "labels": labels,
                        "hit": is_hit(labels, self.hit_labels),
                    }
                except ClientError as err:
                    bad = bad_image_reason(err, image)
                    if bad is None:
                        raise
                    record = {"image": image, "status": "quarantined", "labels": [], "hit": False}
                    record.update(self._quarantine(s3, image, bad[0], bad[1], context))
                records[image] = record
                if len(records) % self.SAVE_EVERY == 0:
                    s3_utils.write_json(s3, results_uri, {"batch": batch_id, "records": records})
            if record["status"] == "scanned":
                misses = 0 if record["hit"] or not self.hit_labels else misses + 1
        ordered = {image: records[image] for image in images if image in records}
        s3_utils.write_json(
            s3,
            results_uri,
            {"batch": batch_id, "records": ordered, "complete": True, "stopped_at": stopped_at},
        )
        statuses = [r["status"] for r in ordered.values()]
        result = {
            "batch": batch_id,
            "results_uri": results_uri,
            "images": len(images),
            "scanned": statuses.count("scanned"),
            "quarantined": statuses.count("quarantined"),
            "skipped_early_stop": statuses.count("skipped_early_stop"),
            "hits": sum(1 for r in ordered.values() if r["hit"]),
        }
        self.log.info("batch %s: %s (waited %.1f s for the TPS budget)", batch_id, result, bucket.waited)
        return result

    def _quarantine(self, s3, image: str, code: str, reason: str, context: Context) -> dict[str, Any]:
        from ..utils import s3 as s3_utils

        self.log.warning("quarantine %s: %s", image, reason)
        out: dict[str, Any] = {"code": code, "reason": reason}
        if not self.quarantine_prefix:
            return out
        src_bucket, src_key = s3_utils.split_object_uri(image)
        bucket, prefix = s3_utils.split_prefix(self.quarantine_prefix)
        key = prefix + src_key.rsplit("/", 1)[-1]
        try:
            s3.copy({"Bucket": src_bucket, "Key": src_key}, bucket, key)
            out["quarantine_uri"] = f"s3://{bucket}/{key}"
        except Exception as exc:  # an image S3 cannot read is recorded all the same
            out["copy_error"] = repr(exc)
        dag_id, run_id, _ = run_identity(context, self)
        s3_utils.write_json(
            s3,
            f"s3://{bucket}/{key}.reason.json",
            {"image": image, "code": code, "reason": reason, "dag_id": dag_id, "run_id": run_id, **out},
        )
        return out
