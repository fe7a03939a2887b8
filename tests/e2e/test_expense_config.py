"""expense_documents with its location and ARN Params left empty (what a scheduled run uses): the
run takes them from the Variables ``ml_bucket``, ``a2i_workteam_arn`` and ``sagemaker_role_arn``
(no ``a2i_role_arn``), and the A2I flow definition the twin holds carries those values."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e

WORKTEAM = "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/variable-team"
SAGEMAKER_ROLE = "arn:aws:iam::123456789012:role/variable-sagemaker-role"


@pytest.fixture
def variables(monkeypatch):
    bucket = f"expense-vars-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("AIRFLOW_VAR_ML_BUCKET", bucket)
    monkeypatch.setenv("AIRFLOW_VAR_A2I_WORKTEAM_ARN", WORKTEAM)
    monkeypatch.setenv("AIRFLOW_VAR_SAGEMAKER_ROLE_ARN", SAGEMAKER_ROLE)
    monkeypatch.delenv("AIRFLOW_VAR_A2I_ROLE_ARN", raising=False)
    return bucket


def test_empty_params_resolve_to_the_variables(variables, dag_runner, airflow_twin):
    bucket = variables
    flow_name = f"expense-review-{bucket[-8:]}"
    # one receipt in the Variable bucket's inbox: the run extracts it, so it publishes latest/
    s3 = airflow_twin.client("s3")
    s3.create_bucket(Bucket=bucket)
    receipt = ROOT / "include" / "data" / "receipts" / "receipt_grocery.jpg"
    s3.put_object(Bucket=bucket, Key="expenses/inbox/receipt_grocery.jpg", Body=receipt.read_bytes())
    no_review = {"confidence_threshold": 0, "required_fields": [], "consistency_checks": []}
    result = dag_runner("expense_documents", {"flow_definition_name": flow_name, **no_review})
    assert result.state == "success", result.task_states

    cfg = result.xcom("resolve_config")
    assert {k: cfg[k] for k in ("input_prefix", "output_prefix", "quarantine_prefix", "state_prefix")} == {
        "input_prefix": f"s3://{bucket}/expenses/inbox/",
        "output_prefix": f"s3://{bucket}/expenses/output/",
        "quarantine_prefix": f"s3://{bucket}/expenses/quarantine/",
        "state_prefix": f"s3://{bucket}/expenses/state/",
    }
    assert cfg["task_ui_template_path"].endswith("include/templates/expense_review.liquid.html")

    airflow_twin.client("s3").head_bucket(Bucket=bucket)  # prepare created it
    flow = airflow_twin.client("sagemaker").describe_flow_definition(FlowDefinitionName=flow_name)
    assert flow["HumanLoopConfig"]["WorkteamArn"] == WORKTEAM
    assert flow["RoleArn"] == SAGEMAKER_ROLE
    assert flow["OutputConfig"]["S3OutputPath"] == f"s3://{bucket}/expenses/output/a2i"

    summary = result.xcom("finalize")
    assert summary["received"] == summary["extracted"] == 1 and summary["reconciles"]
    assert summary["outputs"]["summary.json"].startswith(f"s3://{bucket}/expenses/output/runs/")

    # the Asset events name where this run wrote (the Assets' own URIs are bucket-independent)
    from airflow import settings
    from airflow.models.asset import AssetEvent, AssetModel
    from sqlalchemy import select

    with settings.Session() as session:
        events = session.execute(
            select(AssetModel.name, AssetEvent.extra)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetEvent.source_run_id == result.run_id)
        ).all()
    assert {name: extra["uri"] for name, extra in events} == {
        "expense_documents_csv": f"s3://{bucket}/expenses/output/latest/documents.csv",
        "expense_line_items_csv": f"s3://{bucket}/expenses/output/latest/line_items.csv",
        "expense_run_summary": f"s3://{bucket}/expenses/output/latest/summary.json",
    }
