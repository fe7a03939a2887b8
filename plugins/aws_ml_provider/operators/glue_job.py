"""``GlueJobOperator`` whose deferred wait runs without aiobotocore (see :mod:`.deferral`)."""

from __future__ import annotations

from airflow.providers.amazon.aws.operators.glue import GlueJobOperator

from aws_ml_provider.operators.deferral import TriggerSwapMixin


class GlueJobDeferrableOperator(TriggerSwapMixin, GlueJobOperator):
    """The provider's :class:`GlueJobOperator`, deferring on :class:`GlueJobRunTrigger`."""
