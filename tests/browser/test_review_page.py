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

from tests.shared_data import shared_dir

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "include" / "templates" / "expense_review.liquid.html"
RECEIPT = shared_dir() / "data" / "receipts" / "007.jpg"  # ../shared beside the checkout
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


def _active_flow(sm, name: str, bucket: str, title: str, output: str) -> str:
    """A task UI from the shipped template and an Active flow definition using it; its ARN."""
    ui_arn = sm.create_human_task_ui(
        HumanTaskUiName=f"{name}-ui", UiTemplate={"Content": TEMPLATE.read_text()}
    )["HumanTaskUiArn"]
    flow_arn = sm.create_flow_definition(
        FlowDefinitionName=name,
        RoleArn="arn:aws:iam::123456789012:role/a2i",
        HumanLoopConfig={
            "WorkteamArn": "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/reviewers",
            "HumanTaskUiArn": ui_arn,
            "TaskTitle": title,
            "TaskDescription": "Correct the fields the extraction was unsure of",
            "TaskCount": 1,
        },
        OutputConfig={"S3OutputPath": f"s3://{bucket}/{output}"},
    )["FlowDefinitionArn"]
    deadline = time.monotonic() + 10
    while sm.describe_flow_definition(FlowDefinitionName=name)["FlowDefinitionStatus"] != "Active":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    return flow_arn


def test_reviewer_corrects_a_field_and_submits(twin, page, tmp_path):
    s3, sm, a2i = twin.client("s3"), twin.client("sagemaker"), twin.client("sagemaker-a2i-runtime")
    suffix = uuid.uuid4().hex[:8]
    bucket = f"review-{suffix}"
    s3.create_bucket(Bucket=bucket)
    body, content_type, true_total = _document()
    s3.put_object(Bucket=bucket, Key="receipts/007.jpg", Body=body, ContentType=content_type)
    flow = f"expense-review-{suffix}"
    flow_arn = _active_flow(sm, flow, bucket, "Check receipt fields", "reviews")
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
    page.wait_for_url(re.compile(rf"/review/{loop}\?t=\w+$"))  # the loop's own link

    # the receipt image loads through the presigned URL
    image = page.locator("#document-image")
    image.wait_for()
    page.wait_for_function("document.getElementById('document-image').complete")
    assert image.evaluate("img => img.naturalWidth") > 0

    total = page.get_by_label("TOTAL", exact=True)
    assert total.input_value() == "2000"
    assert page.get_by_label("VENDOR_NAME").input_value() == "S.H.H. MOTOR"
    total.fill(true_total)
    page.get_by_label("Your name (recorded as the worker)").fill("Browser Reviewer")
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


def _pdf(sizes: list[tuple[int, int]]) -> bytes:
    """A PDF with pages of these sizes in points, each saying its number and a total."""
    from PIL import Image, ImageDraw

    pages = []
    for number, size in enumerate(sizes, start=1):
        page = Image.new("RGB", size, "white")
        draw = ImageDraw.Draw(page)
        draw.text((30, 30), f"INVOICE page {number}", fill="black")
        draw.text((30, size[1] - 60), "TOTAL 20.00", fill="black")
        pages.append(page)
    buf = io.BytesIO()
    pages[0].save(buf, format="PDF", save_all=True, append_images=pages[1:], resolution=72.0)
    return buf.getvalue()


def test_a_pdf_loop_shows_its_pages_as_images(twin, page, tmp_path, airflow_aws_conn, monkeypatch):
    """The provider renders a PDF's pages for its human loop (start_loops_for_batch, as the
    expense DAG's start_review_loops does); the reviewer sees each page with "Page i of n", the
    pages over the limit named, and the task list names the file and the field to check."""
    import pypdfium2 as pdfium
    from aws_ml_provider.utils import expense as ex
    from aws_ml_provider.utils import expense_state
    from aws_ml_provider.utils import review_pages as rp
    from PIL import Image

    s3, sm = twin.client("s3"), twin.client("sagemaker")
    suffix = uuid.uuid4().hex[:8]
    bucket = f"review-pdf-{suffix}"
    s3.create_bucket(Bucket=bucket)
    data = _pdf([(300, 420), (420, 300), (300, 420)])
    pdf = pdfium.PdfDocument(data)
    points = [pdf[i].get_size() for i in range(len(pdf))]
    pdf.close()
    key = "inbox/invoice-three-pages.pdf"
    s3.put_object(Bucket=bucket, Key=key, Body=data, ContentType="application/pdf")
    flow = f"expense-pdf-{suffix}"
    flow_arn = _active_flow(sm, flow, bucket, "Check the fields of an invoice or receipt", "a2i")

    # what the extraction left for start_review_loops: the batch manifest and the machine result
    params = {"output_prefix": f"s3://{bucket}/output/", "a2i_tps": 10}
    run_id = f"manual__pdf-{suffix}"
    doc = {"document_id": f"pdf{suffix}", "key": key, "source_uri": f"s3://{bucket}/{key}"}
    normalised = {
        "document_id": doc["document_id"],
        "expense_count": 1,
        "fields": {
            "VENDOR_NAME": {"value": "Northwind", "confidence": 99.0},
            "INVOICE_RECEIPT_DATE": {"value": "2026-01-02", "confidence": 98.0},
            "TOTAL": {"value": "2000", "confidence": 61.04},
        },
    }
    fields = ex.review_fields(normalised)
    prefix = expense_state.run_prefix(params, run_id)
    manifest_uri = f"{prefix}/batches/00000.json"
    s3.put_object(Bucket=bucket, Key=manifest_uri.split("/", 3)[3], Body=json.dumps({"documents": [doc]}))
    machine = {"normalised": normalised, "review_fields": fields}
    s3.put_object(
        Bucket=bucket,
        Key=f"{prefix}/machine/{doc['document_id']}.json".split("/", 3)[3],
        Body=json.dumps(machine),
    )
    monkeypatch.setattr(rp, "MAX_REVIEW_PAGES", 2)  # a 3-page PDF goes over the limit
    started = expense_state.start_loops_for_batch(
        params, run_id, {"batch": 0, "manifest_uri": manifest_uri}, flow_arn, dag_id="expense_documents"
    )
    (loop,) = started["loops"]

    # the task list names the file and the field to check, with one reason line
    assert page.goto(twin.review_url + f"&flow={flow}").status == 200
    row = page.locator(f"#pending tr[data-human-loop='{loop}']")
    assert row.locator("a.task-link").inner_text() == "invoice-three-pages.pdf"
    (reason,) = [f["reason"] for f in fields]
    assert row.locator("li[data-field='TOTAL']").inner_text() == f"TOTAL · {reason}"
    row.locator("a.task-link").click()
    page.wait_for_url(re.compile(rf"/review/{loop}\?t=\w+$"))  # the loop's own link

    assert page.locator("#document-image").count() == 0  # no broken <img> of the PDF itself
    indicators = page.locator(".page-indicator").all_inner_texts()
    assert indicators == [f"Page {i} of {len(points)}" for i in (1, 2)]
    assert "Only the first 2 of 3 pages" in page.locator("#pages-left-out").inner_text()
    images = page.locator("img.page-image")
    assert images.count() == 2
    page.wait_for_function("[...document.querySelectorAll('img.page-image')].every(i => i.complete)")
    for index, (width, height) in enumerate(points[:2]):
        image = images.nth(index)
        assert image.evaluate("img => img.naturalWidth") > 0  # the browser decoded it
        got = page.request.get(image.get_attribute("src"))
        assert got.status == 200
        with Image.open(io.BytesIO(got.body())) as png:
            assert png.format == "PNG"
            expected = (width * rp.REVIEW_DPI / 72, height * rp.REVIEW_DPI / 72)
            assert abs(png.size[0] - expected[0]) <= 1 and abs(png.size[1] - expected[1]) <= 1, png.size
    assert page.locator(".field[data-field='TOTAL'] .reason").inner_text() == reason
    page.screenshot(path=str(tmp_path / "review_pdf_task.png"), full_page=True)
