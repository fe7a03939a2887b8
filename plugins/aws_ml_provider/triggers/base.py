"""The base of this provider's waiter triggers."""

from __future__ import annotations

from airflow.providers.amazon.aws.triggers.base import AwsBaseWaiterTrigger


class AwsMlWaiterTrigger(AwsBaseWaiterTrigger):
    """``AwsBaseWaiterTrigger`` whose hook is built from ``aws_hook_class``.

    apache-airflow-providers-amazon 9.34.0 (the version Amazon MWAA 3.3.1 installs) has an abstract
    ``hook()`` that every trigger implements; later releases build it from ``aws_hook_class``
    themselves. This does what those releases do, so the triggers run on both.
    """

    aws_hook_class: type

    def hook(self):
        return self.aws_hook_class(
            aws_conn_id=self.aws_conn_id,
            region_name=self.region_name,
            verify=self.verify,
            config=self.botocore_config,
        )
