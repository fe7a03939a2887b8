"""S3ReportLink (the churn evaluation's "Report" extra link) and the ``@report_task`` decorator:
the S3 console URL on AWS, the twin's object viewer when the connection has a twin endpoint_url;
opened with urllib, the viewer URL returns the object, and 403 without the token."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from aws_ml_provider.links.s3 import VIEWER_TOKEN_ENV, S3ReportLink, is_twin_endpoint


def test_aws_form_without_endpoint_url(monkeypatch):
    monkeypatch.setenv(VIEWER_TOKEN_ENV, "not-used-on-aws")
    link = S3ReportLink()
    conf = {"region_name": "eu-central-1", "aws_domain": "aws.amazon.com", "endpoint_url": None}
    url = link.format_link(**conf, bucket="ml-bucket", key="churn/runs/abc/evaluation/report.html")
    assert url == (
        "https://s3.console.aws.amazon.com/s3/object/ml-bucket?region=eu-central-1"
        "&prefix=churn%2Fruns%2Fabc%2Fevaluation%2Freport.html"
    )
    # an AWS endpoint_url (VPC / FIPS endpoint) is still AWS: the console, never the twin path
    vpce = "https://bucket.vpce-0abc.s3.eu-central-1.vpce.amazonaws.com"
    assert link.format_link(**{**conf, "endpoint_url": vpce}, bucket="b", key="k.html").startswith(
        "https://s3.console.aws.amazon.com/s3/object/b?"
    )
    assert link.format_link(**conf, bucket="b", key="") == ""


@pytest.mark.parametrize(
    ("endpoint", "twin"),
    [
        (None, False),
        ("", False),
        ("http://127.0.0.1:4566", True),
        ("http://aws-twin:4566/", True),
        ("https://s3.us-east-1.amazonaws.com", False),
        ("https://s3.cn-north-1.amazonaws.com.cn", False),
        ("https://s3.dualstack.us-east-1.api.aws", False),
    ],
)
def test_is_twin_endpoint(endpoint, twin):
    assert is_twin_endpoint(endpoint) is twin


def _open(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_link_persisted_by_a_task_opens_the_object_on_the_twin(
    twin, bucket, airflow_aws_conn, monkeypatch, task_context
):
    """What the task does (persist_object with its hook), then what Airflow does when it finishes
    (get_link reads the persisted data), then what the user's browser does (GET the URL)."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    monkeypatch.setenv(VIEWER_TOKEN_ENV, twin.viewer_token)
    metrics = {"auc": 0.9123456}
    key = "churn/runs/x1/evaluation/report.html"
    html = f"<html><body>AUC {metrics['auc']:.4f}</body></html>"
    twin.client("s3").put_object(Bucket=bucket, Key=key, Body=html.encode(), ContentType="text/html")

    hook = S3Hook(aws_conn_id="aws_default")
    context = task_context(task_id="evaluate")
    context["task"] = type("Task", (), {"do_xcom_push": True})()
    S3ReportLink.persist_object(context, hook, f"s3://{bucket}/{key}")
    data = context["ti"].xcoms[S3ReportLink.key]
    assert json.loads(json.dumps(data)) == data  # JSON-serialisable, as XCom stores it
    assert data["endpoint_url"] == twin.url and data["region_name"] == "us-east-1"
    url = S3ReportLink().format_link(**data)
    assert url.startswith(f"{twin.url}/_twin/s3/{bucket}/")

    status, body = _open(url)
    assert status == 200 and f"AUC {metrics['auc']:.4f}" in body.decode()
    status, body = _open(url.split("?", 1)[0])
    assert status == 403 and b"AUC" not in body
    # a link made where the token is not set has no token: the twin refuses it
    monkeypatch.delenv(VIEWER_TOKEN_ENV)
    assert _open(S3ReportLink().format_link(**data))[0] == 403


def test_report_task_declares_the_link_and_serializes_it():
    from airflow.sdk import DAG
    from airflow.serialization.serialized_objects import DagSerialization
    from aws_ml_provider.decorators.report import report_task

    @report_task(multiple_outputs=True)
    def evaluate() -> dict:
        return {"report_uri": "s3://b/k"}

    with DAG("report_link_dag", schedule=None) as dag:
        evaluate()
    (task,) = dag.tasks
    assert [type(link) for link in task.operator_extra_links] == [S3ReportLink]
    encoded = DagSerialization.to_dict(dag)
    (op,) = encoded["dag"]["tasks"]
    assert op["__var"]["_operator_extra_links"] == {"Report": "_link_S3ReportLink"}
    restored = DagSerialization.from_dict(encoded)
    assert [link.name for link in restored.get_task("evaluate").operator_extra_links] == ["Report"]
