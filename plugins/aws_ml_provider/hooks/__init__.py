"""Hooks of aws_ml_provider. Shared here: :class:`AwsMlHookMixin` (custom waiter file, retry default,
an S3 client with the hook's connection).

This module imports nothing heavy; the hook modules import ``AwsBaseHook``.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

#: folder of the custom waiter JSON files (botocore has no Textract or A2I waiters)
WAITERS_DIR = Path(__file__).resolve().parents[1] / "waiters"

#: used when neither the hook's ``config`` nor the connection's ``config_kwargs`` sets retries:
#: throttling (Textract's ProvisionedThroughputExceededException, A2I's ThrottlingException) and
#: 5xx answers are retried with exponential backoff and jitter
DEFAULT_RETRIES = {"mode": "standard", "max_attempts": 10}


class AwsMlHookMixin:
    """Mix into an ``AwsBaseHook`` subclass (before it) to load waiters from our own JSON.

    ``AwsGenericHook.waiter_path`` looks for ``<client_type>.json`` beside the Amazon provider's
    waiters; ours live in ``aws_ml_provider/waiters/<waiter_file>.json`` and are found by
    ``hook.get_waiter(name)`` / ``hook.list_waiters()`` the same way.
    """

    waiter_file: str = ""

    @property
    def waiter_path(self):  # type: ignore[override]
        path = WAITERS_DIR / f"{self.waiter_file}.json"
        return path if self.waiter_file and path.exists() else None

    @cached_property
    def s3_client(self):
        """A boto3 S3 client with this hook's connection, region, SSL and botocore settings."""
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

        return AwsBaseHook(
            aws_conn_id=self.aws_conn_id,  # type: ignore[attr-defined]
            region_name=self._region_name,  # type: ignore[attr-defined]
            verify=self._verify,  # type: ignore[attr-defined]
            config=self._config,  # type: ignore[attr-defined]
            client_type="s3",
        ).conn

    def _get_config(self, config=None):
        from botocore.config import Config

        config = super()._get_config(config)  # type: ignore[misc]
        if config.retries is None:
            config = config.merge(Config(retries=dict(DEFAULT_RETRIES)))
        return config
