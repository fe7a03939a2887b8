"""The few things the Amazon provider's SageMaker deployment operators lack for a retried task.

- :class:`SageMakerRegisterModelVersionIdempotentOperator`: the provider's register operator with
  ``extras`` templated (so metrics computed by an upstream task reach ``ModelMetrics`` /
  ``CustomerMetadataProperties`` through XCom) and with a retry that finds the version its first
  attempt registered (tagged with ``CustomerMetadataProperties["airflow_run_key"]``) instead of
  registering a second one.
- :class:`SageMakerModelIfAbsentOperator` / :class:`SageMakerEndpointConfigIfAbsentOperator`: create
  the model / endpoint config unless one of that (deterministic, per-run) name already exists, in
  which case its description is returned, as after a create.

- :class:`SageMakerEndpointOnceOperator`: the provider's endpoint operator that does not create or
  update an endpoint twice: an endpoint already on (or being moved to) the config is waited for, not
  updated again, and when the answer to CreateEndpoint / UpdateEndpoint is lost the endpoint is
  looked up by its config name before anything is sent again.

The resource is looked up by its deterministic key before each create (:mod:`..utils.idempotent`).
CreateModelPackage, CreateModel and CreateEndpointConfig are then retried by botocore itself (a
retried CreateModelPackage gets the first request's version back through its ``ClientToken``; a
retried CreateModel / CreateEndpointConfig meets "already exists", and the look-up attaches to it).
CreateEndpoint / UpdateEndpoint are sent once: their retry would be a second deployment request.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.operators.sagemaker import (
    SageMakerEndpointConfigOperator,
    SageMakerEndpointOperator,
    SageMakerModelOperator,
    SageMakerRegisterModelVersionOperator,
    serialize,
)
from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger
from botocore.exceptions import ClientError

from ..utils.idempotent import create_once, is_transient_failure, retried_create, single_attempt
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

        # the group first: the provider's execute deletes a group it created when the create fails,
        # which fails itself (and hides the look-up) when the lost create did register the version
        self.hook.create_model_package_group(self.package_group_name, self.package_desc)

        def register() -> str:
            with retried_create(self.hook, "create_model_package"):
                return SageMakerRegisterModelVersionOperator.execute(self, context)

        arn, created = create_once(
            self.find_registered, register, f"model version for {self.run_key}", self.log
        )
        if created:
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

        def lookup() -> dict | None:
            try:
                return getattr(self.hook, self.describe)(name)  # type: ignore[attr-defined]
            except ClientError as error:
                if not is_not_found(error):
                    raise
                return None

        def create() -> dict:
            with retried_create(self.hook, self.create_operation):  # type: ignore[attr-defined]
                return super(_ReuseExistingMixin, self).execute(context)  # type: ignore[misc]

        existing, created = create_once(lookup, create, f"{self.what} {name}", self.log)  # type: ignore[attr-defined]
        if created:
            return existing
        self.log.info(  # type: ignore[attr-defined]
            "%s %s already exists (created by an earlier attempt); reusing it.", self.what, name
        )
        return {self.result_key: serialize(existing)}


class SageMakerModelIfAbsentOperator(_ReuseExistingMixin, SageMakerModelOperator):
    """:class:`SageMakerModelOperator` that returns the existing model of the same name."""

    what, name_key, describe, result_key = "Model", "ModelName", "describe_model", "Model"
    create_operation = "create_model"


class SageMakerEndpointConfigIfAbsentOperator(_ReuseExistingMixin, SageMakerEndpointConfigOperator):
    """:class:`SageMakerEndpointConfigOperator` that returns the existing config of the same name."""

    what, name_key, describe, result_key = (
        "Endpoint config",
        "EndpointConfigName",
        "describe_endpoint_config",
        "EndpointConfig",
    )
    create_operation = "create_endpoint_config"


class SageMakerEndpointOnceOperator(SageMakerEndpointOperator):
    """:class:`SageMakerEndpointOperator` (``config`` = the Endpoint request) that sends at most one
    CreateEndpoint / UpdateEndpoint per config:

    - the endpoint already serves ``EndpointConfigName``: nothing is sent, its description returned;
    - it is being created or updated to that config (a retried task, a lost answer): the wait is
      deferred on the provider's ``SageMakerTrigger``, nothing is sent;
    - else the provider's create / update, sent once; a lost answer is followed by a look-up, and
      the wait attaches to the deployment the request did start.
    """

    def _endpoint(self) -> tuple[str, str]:
        info = self.config.get("Endpoint", self.config)
        return info["EndpointName"], info["EndpointConfigName"]

    def _describe(self, name: str) -> dict | None:
        try:
            return self.hook.describe_endpoint(name)
        except ClientError as error:
            if is_not_found(error):
                return None
            raise

    @staticmethod
    def _state(described: dict | None, target: str) -> str | None:
        """``"done"`` (serving the config), ``"moving"`` (being deployed with it) or None."""
        if not described:
            return None
        status = described.get("EndpointStatus")
        pending = (described.get("PendingDeploymentSummary") or {}).get("EndpointConfigName")
        if status == "Updating" and pending == target:
            return "moving"
        if described.get("EndpointConfigName") == target:
            if status == "InService":
                return "done"
            if status in ("Creating", "Updating", "SystemUpdating"):
                return "moving"
        return None

    def _attach(self, context: Context, name: str, target: str, described: dict) -> dict:
        if self._state(described, target) == "done":
            return {
                "EndpointConfig": serialize(self.hook.describe_endpoint_config(target)),
                "Endpoint": serialize(described),
            }
        if self.deferrable:
            self.defer(
                trigger=SageMakerTrigger(
                    job_name=name,
                    job_type="endpoint",
                    waiter_delay=self.check_interval,
                    aws_conn_id=self.aws_conn_id,
                ),
                method_name="execute_complete",
                timeout=datetime.timedelta(seconds=self.max_ingestion_time),
            )
        self.hook.get_waiter("endpoint_in_service").wait(
            EndpointName=name,
            WaiterConfig={"Delay": self.check_interval, "MaxAttempts": self.max_ingestion_time},
        )
        return {
            "EndpointConfig": serialize(self.hook.describe_endpoint_config(target)),
            "Endpoint": serialize(self.hook.describe_endpoint(name)),
        }

    def execute(self, context: Context) -> dict[str, Any]:
        name, target = self._endpoint()
        described = self._describe(name)
        state = self._state(described, target)
        if state:
            self.log.info(
                "Endpoint %s is %s with config %s already (an earlier attempt): not sending it again.",
                name,
                described["EndpointStatus"],
                target,
            )
            return self._attach(context, name, target, described)
        try:
            with single_attempt(self.hook, "create_endpoint", "update_endpoint"):
                return super().execute(context)
        except Exception as exc:
            if not is_transient_failure(exc):
                raise
            described = self._describe(name)
            if not self._state(described, target):
                raise
            self.log.warning(
                "No answer to the %s of endpoint %s (%s), but it is deploying config %s: waiting for it.",
                self.operation,
                name,
                exc,
                target,
            )
            return self._attach(context, name, target, described)
