"""The few things the Amazon provider's SageMaker deployment operators lack for a retried task.

- :class:`SageMakerRegisterModelVersionIdempotentOperator`: the provider's register operator with
  ``extras`` templated (so metrics computed by an upstream task reach ``ModelMetrics`` /
  ``CustomerMetadataProperties`` through XCom) and with a retry that finds the version its first
  attempt registered (tagged with ``CustomerMetadataProperties["airflow_run_key"]``) instead of
  registering a second one.
- :class:`SageMakerModelIfAbsentOperator` / :class:`SageMakerEndpointConfigIfAbsentOperator`: create
  the model / endpoint config unless one of that (deterministic, per-run) name already exists, in
  which case its description is returned, as after a create.

The endpoint itself is created / updated by the provider's ``SageMakerEndpointOperator`` (deferrable).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from airflow.providers.amazon.aws.operators.sagemaker import (
    SageMakerEndpointConfigOperator,
    SageMakerModelOperator,
    SageMakerRegisterModelVersionOperator,
    serialize,
)
from botocore.exceptions import ClientError

from .sagemaker_training import is_not_found

if TYPE_CHECKING:
    from airflow.sdk import Context

RUN_KEY = "airflow_run_key"


class SageMakerRegisterModelVersionIdempotentOperator(SageMakerRegisterModelVersionOperator):
    """Register a model package version once per ``run_key``; ``extras`` is templated.

    :param run_key: identifies the registration (e.g. the training job name); stored in the
        version's ``CustomerMetadataProperties`` and looked up among the group's newest versions
        before registering.
    """

    template_fields: Sequence[str] = (
        *SageMakerRegisterModelVersionOperator.template_fields,
        "extras",
        "run_key",
    )
    template_fields_renderers = {"extras": "json"}
    #: how many of the group's newest versions a retry looks through for its own
    lookback = 20

    def __init__(self, *, run_key: str, **kwargs):
        super().__init__(**kwargs)
        self.run_key = run_key

    def find_registered(self) -> str | None:
        conn = self.hook.conn
        try:
            page = conn.list_model_packages(
                ModelPackageGroupName=self.package_group_name,
                SortBy="CreationTime",
                SortOrder="Descending",
                MaxResults=self.lookback,
            )
        except ClientError as error:
            if is_not_found(error):
                return None
            raise
        for summary in page.get("ModelPackageSummaryList", []):
            arn = summary["ModelPackageArn"]
            described = conn.describe_model_package(ModelPackageName=arn)
            if described.get("CustomerMetadataProperties", {}).get(RUN_KEY) == self.run_key:
                return arn
        return None

    def execute(self, context: Context) -> str:
        existing = self.find_registered()
        if existing:
            self.log.info(
                "Model version %s was already registered for %s; reusing it.", existing, self.run_key
            )
            return existing
        extras = dict(self.extras or {})
        metadata = dict(extras.get("CustomerMetadataProperties") or {})
        metadata[RUN_KEY] = self.run_key
        extras["CustomerMetadataProperties"] = {k: str(v) for k, v in metadata.items()}
        self.extras = extras
        arn = super().execute(context)
        self.log.info("Registered model version %s in group %s.", arn, self.package_group_name)
        return arn


class _ReuseExistingMixin:
    """``execute`` that returns the description of the existing resource named ``config[name_key]``
    (as the provider's operator returns after a create) and creates it only when there is none."""

    what: str  # for the log
    name_key: str  # the name in ``config``
    describe: str  # the SageMakerHook method that describes it
    result_key: str  # the operator's result key

    def execute(self, context: Context) -> dict:
        name = self.config[self.name_key]  # type: ignore[attr-defined]
        try:
            existing = getattr(self.hook, self.describe)(name)  # type: ignore[attr-defined]
        except ClientError as error:
            if not is_not_found(error):
                raise
            return super().execute(context)  # type: ignore[misc]
        self.log.info(  # type: ignore[attr-defined]
            "%s %s already exists (created by an earlier attempt); reusing it.", self.what, name
        )
        return {self.result_key: serialize(existing)}


class SageMakerModelIfAbsentOperator(_ReuseExistingMixin, SageMakerModelOperator):
    """:class:`SageMakerModelOperator` that returns the existing model of the same name."""

    what, name_key, describe, result_key = "Model", "ModelName", "describe_model", "Model"


class SageMakerEndpointConfigIfAbsentOperator(_ReuseExistingMixin, SageMakerEndpointConfigOperator):
    """:class:`SageMakerEndpointConfigOperator` that returns the existing config of the same name."""

    what, name_key, describe, result_key = (
        "Endpoint config",
        "EndpointConfigName",
        "describe_endpoint_config",
        "EndpointConfig",
    )
