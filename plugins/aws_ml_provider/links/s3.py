"""A link to an S3 object a task wrote (a report, a plot) that a browser can open.

On AWS it is the object's page in the S3 console (``Open`` there shows it, signed in). When the
connection has an ``endpoint_url`` that is not an AWS endpoint (aws_twin, offline), it is the twin's
object viewer ``<endpoint_url>/_twin/s3/<bucket>/<key>?token=<AWS_TWIN_VIEWER_TOKEN>``: S3 itself
refuses an unsigned GET, and the viewer serves the object with its content type to whoever holds the
token (``make up`` / ``make demo`` pass the same token to the twin and to Airflow's processes; AWS
never needs it).

The URL is built where the task runs (Airflow 3 stores it in XCom ``_link_S3ReportLink`` when the
task finishes) and the UI shows it among the task instance's extra links.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote, urlsplit

from airflow.providers.amazon.aws.links.base_aws import BaseAwsLink

#: the environment variable holding the twin's object viewer token
VIEWER_TOKEN_ENV = "AWS_TWIN_VIEWER_TOKEN"
_AWS_HOST_SUFFIXES = (".amazonaws.com", ".amazonaws.com.cn", ".api.aws")


def is_twin_endpoint(endpoint_url: str | None) -> bool:
    """An endpoint_url that is not AWS's own (a VPC or FIPS endpoint still is AWS)."""
    if not endpoint_url:
        return False
    host = (urlsplit(endpoint_url).hostname or "").lower()
    return not host.endswith(_AWS_HOST_SUFFIXES)


class S3ReportLink(BaseAwsLink):
    """The report (an S3 object) a task wrote: S3 console on AWS, the twin's object viewer offline."""

    name = "Report"
    key = "s3_report"
    format_str = "https://s3.console.{aws_domain}/s3/object/{bucket}?region={region_name}&prefix={key}"

    def format_link(self, **kwargs: Any) -> str:
        if not kwargs.get("bucket") or not kwargs.get("key"):
            return ""
        endpoint = kwargs.get("endpoint_url")
        if is_twin_endpoint(endpoint):
            url = f"{endpoint.rstrip('/')}/_twin/s3/{quote(kwargs['bucket'])}/{quote(kwargs['key'])}"
            token = os.environ.get(VIEWER_TOKEN_ENV)
            return f"{url}?token={quote(token, safe='')}" if token else url
        return super().format_link(**{**kwargs, "key": quote(str(kwargs["key"]), safe="")})

    @classmethod
    def persist_object(cls, context: Any, hook: Any, uri: str) -> None:
        """Store the link data of ``s3://bucket/key`` for the running task (``hook``: its AWS hook)."""
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        cls.persist(
            context=context,
            operator=context["task"],
            region_name=hook.conn_region_name,
            aws_partition=hook.conn_partition,
            bucket=bucket,
            key=key,
            endpoint_url=hook.conn_config.endpoint_url,
        )
