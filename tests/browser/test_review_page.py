"""The A2I review page in a real browser: a reviewer opens the token URL, finds the pending expense
task, sees the receipt, corrects the total and submits; the human loop completes and its output.json
holds the corrected value."""

from __future__ import annotations

import io
import json
import re
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "include" / "templates" / "expense_review.liquid.html"
RECEIPT = ROOT.parent / "shared" / "data" / "receipts" / "007.jpg"  # ../shared beside the checkout
RECEIPT_LABEL = RECEIPT.with_suffix(".json")

pytestmark = pytest.mark.browser


def _document() -> tuple[bytes, str, str]:
    """(image bytes, content type, the true total): a real receipt scan when available."""
    if RECEIPT.exists() and RECEIPT_LABEL.exists():
        return RECEIPT.read_bytes(), "image/jpeg", json.loads(RECEIPT_LABEL.read_text())["total"]
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (360, 480), "white")
    ImageDraw.Draw(image).text((40, 400), "TOTAL 20.00", fill="black")
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue(), "image/png", "20.00"


def test_reviewer_corrects_a_field_and_submits(twin, page, tmp_path):
    s3, sm, a2i = twin.client("s3"), twin.client("sagemaker"), twin.client("sagemaker-a2i-runtime")
    suffix = uuid.uuid4().hex[:8]
    bucket = f"review-{suffix}"
    s3.create_bucket(Bucket=bucket)
    body, content_type, true_total = _document()
    s3.put_object(Bucket=bucket, Key="receipts/007.jpg", Body=body, ContentType=content_type)
    ui_arn = sm.create_human_task_ui(
        HumanTaskUiName=f"expense-ui-{suffix}", UiTemplate={"Content": TEMPLATE.read_text()}
    )["HumanTaskUiArn"]
    flow = f"expense-review-{suffix}"
    flow_arn = sm.create_flow_definition(
        FlowDefinitionName=flow,
        RoleArn="arn:aws:iam::123456789012:role/a2i",
        HumanLoopConfig={
            "WorkteamArn": "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/reviewers",
            "HumanTaskUiArn": ui_arn,
            "TaskTitle": "Check receipt fields",
            "TaskDescription": "Correct the fields the extraction was unsure of",
            "TaskCount": 1,
        },
        OutputConfig={"S3OutputPath": f"s3://{bucket}/reviews"},
    )["FlowDefinitionArn"]
    deadline = time.monotonic() + 10
    while sm.describe_flow_definition(FlowDefinitionName=flow)["FlowDefinitionStatus"] != "Active":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    loop = f"receipt-007-{suffix}"
    task_input = {
        "document_id": "007",
        "document_s3_uri": f"s3://{bucket}/receipts/007.jpg",
        "fields": [
            {"name": "TOTAL", "value": "2000", "confidence": 48.2, "reason": "confidence below 90"},
            {
                "name": "VENDOR_NAME",
                "value": "S.H.H. MOTOR",
                "confidence": 81.0,
                "reason": "confidence below 90",
            },
        ],
    }
    a2i.start_human_loop(
        HumanLoopName=loop,
        FlowDefinitionArn=flow_arn,
        HumanLoopInput={"InputContent": json.dumps(task_input)},
    )

    # without the token the page is closed
    assert page.goto(f"{twin.url}/review/").status == 403

    # the start-up URL lists the pending task
    assert page.goto(twin.review_url).status == 200
    row = page.locator("#pending tr", has_text=loop)
    assert row.count() == 1
    row.get_by_role("link").click()
    page.wait_for_url(re.compile(rf"/review/{loop}$"))

    # the receipt image loads through the presigned URL
    image = page.locator("#document-image")
    image.wait_for()
    page.wait_for_function("document.getElementById('document-image').complete")
    assert image.evaluate("img => img.naturalWidth") > 0

    total = page.get_by_label("TOTAL")
    assert total.input_value() == "2000"
    assert page.get_by_label("VENDOR_NAME").input_value() == "S.H.H. MOTOR"
    total.fill(true_total)
    page.screenshot(path=str(tmp_path / "review_task.png"), full_page=True)
    page.get_by_role("button", name="Submit").click()
    page.wait_for_url(re.compile(r"/review/\?done="))
    assert loop in page.locator(".banner").inner_text()
    assert page.locator("#pending tr", has_text=loop).count() == 0

    desc = a2i.describe_human_loop(HumanLoopName=loop)
    assert desc["HumanLoopStatus"] == "Completed"
    out_bucket, _, key = desc["HumanLoopOutput"]["OutputS3Uri"][len("s3://") :].partition("/")
    out = json.loads(s3.get_object(Bucket=out_bucket, Key=key)["Body"].read())
    assert out["humanLoopName"] == loop
    assert out["inputContent"] == task_input
    answer = out["humanAnswers"][0]["answerContent"]
    assert answer == {
        "field__TOTAL": true_total,
        "field__VENDOR_NAME": "S.H.H. MOTOR",
        "document_unreadable": {"on": False},
    }
    assert out["humanAnswers"][0]["timeSpentInSeconds"] > 0
