"""aws_ml_provider's Textract hook, operators and trigger against the running twin (real boto3 over
HTTP, --strict, real OCR): synchronous expense analysis of an image, asynchronous analysis of a PDF
deferrable and not, paginated collection, retries attaching to their job, bad documents."""

from __future__ import annotations

import asyncio
import importlib
import json
import uuid
from pathlib import Path

import pytest
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, TaskDeferred
from aws_ml_provider.hooks.textract import TextractHook
from aws_ml_provider.links.textract import TextractResultLink
from aws_ml_provider.operators.textract import (
    TextractAnalyzeDocumentOperator,
    TextractAnalyzeExpenseOperator,
    TextractDetectDocumentTextOperator,
)
from aws_ml_provider.triggers.textract import TextractJobCompleteTrigger

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "include" / "data" / "receipts"
SUMMARY_KEYS = {"document", "result_uri", "job_id", "pages"}


@pytest.fixture(scope="module")
def truth() -> dict:
    return json.loads((SAMPLES / "ground_truth.json").read_text())


@pytest.fixture(scope="module")
def bucket(aws) -> str:
    s3 = aws.client("s3")
    name = f"textract-provider-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)
    for sample in ("receipt_grocery.jpg", "receipts_two_pages.pdf", "invoice_northwind.png", "corrupt.jpg"):
        s3.put_object(Bucket=name, Key=f"receipts/{sample}", Body=(SAMPLES / sample).read_bytes())
    s3.put_object(Bucket=name, Key="receipts/broken.pdf", Body=b"%PDF-1.4 this is not a PDF body")
    return name


def _read(aws, uri: str) -> dict:
    bucket, _, key = uri[len("s3://") :].partition("/")
    return json.loads(aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())


def _totals(result: dict) -> list[str]:
    """The TOTAL summary field text of every expense document, in order."""
    out = []
    for doc in result["ExpenseDocuments"]:
        texts = [
            f["ValueDetection"]["Text"]
            for f in doc.get("SummaryFields", [])
            if f.get("Type", {}).get("Text") == "TOTAL" and f.get("ValueDetection")
        ]
        out.append(" ".join(texts))
    return out


def _roundtrip(trigger):
    classpath, kwargs = trigger.serialize()
    json.dumps(kwargs)
    module, _, cls = classpath.rpartition(".")
    clone = getattr(importlib.import_module(module), cls)(**kwargs)
    assert clone.serialize() == (classpath, kwargs)
    return clone


async def _first_event(trigger) -> dict:
    async for event in trigger.run():
        return event.payload
    raise AssertionError("trigger ended without an event")


# ---- synchronous ---------------------------------------------------------------------------------------
def test_sync_expense_on_an_image_writes_the_result_to_s3(aws, bucket, truth, task_context):
    op = TextractAnalyzeExpenseOperator(
        task_id="expense",
        document=f"s3://{bucket}/receipts/receipt_grocery.jpg",
        output_s3_uri=f"s3://{bucket}/out/",
    )
    ctx = task_context()
    summary = op.execute(ctx)
    assert summary == {
        "document": f"s3://{bucket}/receipts/receipt_grocery.jpg",
        "result_uri": f"s3://{bucket}/out/receipts/receipt_grocery.jpg.json",
        "job_id": None,
        "pages": 1,
    }
    result = _read(aws, summary["result_uri"])
    assert result["DocumentMetadata"]["Pages"] == 1 and "ResponseMetadata" not in result
    (total,) = _totals(result)
    assert truth["receipt_grocery.jpg"]["documents"][0]["total"] in total
    link = TextractResultLink().format_link(**ctx["ti"].xcoms["textract_result"])
    assert link == (
        f"https://s3.console.aws.amazon.com/s3/object/{bucket}?region=us-east-1"
        "&prefix=out%2Freceipts%2Freceipt_grocery.jpg.json"
    )


def test_sync_text_detection_and_bad_document(aws, bucket, truth, task_context):
    summary = TextractDetectDocumentTextOperator(
        task_id="text",
        document=f"s3://{bucket}/receipts/invoice_northwind.png",
        output_s3_uri=f"s3://{bucket}/t.json",
    ).execute(task_context())
    assert summary["result_uri"] == f"s3://{bucket}/t.json" and summary["pages"] == 1
    lines = " ".join(
        b["Text"] for b in _read(aws, summary["result_uri"])["Blocks"] if b["BlockType"] == "LINE"
    )
    assert truth["invoice_northwind.png"]["documents"][0]["invoice_id"] in lines

    bad = TextractAnalyzeExpenseOperator(task_id="bad", document=f"s3://{bucket}/receipts/corrupt.jpg")
    with pytest.raises(AirflowFailException, match=r"receipts/corrupt\.jpg.*BadDocumentException"):
        bad.execute(task_context())
    with pytest.raises(ValueError, match="not of the form s3://bucket/key"):
        TextractAnalyzeExpenseOperator(task_id="bad", document="receipt.jpg").execute(task_context())


# ---- asynchronous ------------------------------------------------------------------------------------
def test_async_expense_pdf_not_deferred_waits_with_the_waiter(aws, bucket, truth, task_context):
    document = f"s3://{bucket}/receipts/receipts_two_pages.pdf"
    op = TextractAnalyzeExpenseOperator(
        task_id="expense_pdf", document=document, waiter_delay=1, deferrable=False
    )
    summary = op.execute(task_context(task_id="expense_pdf"))
    assert set(summary) == SUMMARY_KEYS and summary["job_id"] and summary["pages"] == 2
    assert (
        summary["result_uri"] == f"s3://{bucket}/textract-output/expense/receipts/receipts_two_pages.pdf.json"
    )
    result = _read(aws, summary["result_uri"])
    assert result["JobStatus"] == "SUCCEEDED" and "NextToken" not in result
    expected = [d["total"] for d in truth["receipts_two_pages.pdf"]["documents"]]
    totals = _totals(result)
    assert len(totals) == len(expected) and all(e in t for e, t in zip(expected, totals, strict=True))

    # pagination: one document per Get* page merges into the same result
    hook = TextractHook()
    paged = hook.collect_job_results("expense", summary["job_id"], max_results=1)
    assert paged["ExpenseDocuments"] == result["ExpenseDocuments"]

    # a retry of the task attaches to the same job (same ClientRequestToken)
    again = op.execute(task_context(task_id="expense_pdf", try_number=2))
    assert again == summary


def test_async_expense_pdf_deferred_resumes_through_the_trigger(aws, bucket, truth, task_context):
    document = f"s3://{bucket}/receipts/receipts_two_pages.pdf"
    op = TextractAnalyzeExpenseOperator(
        task_id="expense_deferred",
        document=document,
        output_s3_uri=f"s3://{bucket}/deferred/",
        waiter_delay=1,
        deferrable=True,
    )
    with pytest.raises(TaskDeferred) as first:
        op.execute(task_context(task_id="expense_deferred"))
    with pytest.raises(TaskDeferred) as retried:
        op.execute(task_context(task_id="expense_deferred", try_number=2))
    assert first.value.method_name == "execute_complete"
    trigger = _roundtrip(first.value.trigger)
    assert isinstance(trigger, TextractJobCompleteTrigger)
    job_id = trigger.serialize()[1]["job_id"]
    assert retried.value.trigger.serialize()[1]["job_id"] == job_id

    event = asyncio.run(_first_event(trigger))
    assert event == {"status": "success", "job_id": job_id}
    summary = op.execute_complete(task_context(task_id="expense_deferred"), event)
    assert summary == {
        "document": document,
        "result_uri": f"s3://{bucket}/deferred/receipts/receipts_two_pages.pdf.json",
        "job_id": job_id,
        "pages": 2,
    }
    expected = [d["total"] for d in truth["receipts_two_pages.pdf"]["documents"]]
    assert all(e in t for e, t in zip(expected, _totals(_read(aws, summary["result_uri"])), strict=True))


def test_async_document_analysis_with_queries(aws, bucket, truth, task_context):
    op = TextractAnalyzeDocumentOperator(
        task_id="analyze",
        document=f"s3://{bucket}/receipts/invoice_northwind.png",
        mode="async",
        feature_types=["FORMS"],
        queries=["What is the invoice number?"],
        output_s3_uri=f"s3://{bucket}/analysis/invoice.json",
        waiter_delay=1,
    )
    summary = op.execute(task_context(task_id="analyze"))
    assert summary["job_id"] and summary["result_uri"] == f"s3://{bucket}/analysis/invoice.json"
    blocks = _read(aws, summary["result_uri"])["Blocks"]
    kinds = {b["BlockType"] for b in blocks}
    assert {"PAGE", "LINE", "KEY_VALUE_SET", "QUERY"} <= kinds
    (query,) = [b for b in blocks if b["BlockType"] == "QUERY"]
    assert query["Query"]["Text"] == "What is the invoice number?"
    with pytest.raises(AirflowFailException, match="QUERIES needs queries"):
        TextractAnalyzeDocumentOperator(
            task_id="q", document="s3://b/k.png", feature_types=["QUERIES"]
        ).execute(task_context())


def test_failed_job_is_reported_and_a_retry_starts_a_new_job(aws, bucket, task_context):
    document = f"s3://{bucket}/receipts/broken.pdf"
    op = TextractDetectDocumentTextOperator(task_id="broken", document=document, waiter_delay=1)
    with pytest.raises(AirflowException) as err:
        op.execute(task_context(task_id="broken"))
    message = str(err.value)
    assert "receipts/broken.pdf" in message and "FAILED" in message and "BadDocumentException" in message

    deferred = TextractDetectDocumentTextOperator(
        task_id="broken", document=document, waiter_delay=1, deferrable=True
    )
    with pytest.raises(TaskDeferred) as same_try:
        deferred.execute(task_context(task_id="broken", try_number=1))
    with pytest.raises(TaskDeferred) as retry:
        deferred.execute(task_context(task_id="broken", try_number=2))
    failed_job = same_try.value.trigger.serialize()[1]["job_id"]
    new_job = retry.value.trigger.serialize()[1]["job_id"]
    assert new_job != failed_job  # try 2 does not attach to the FAILED job of try 1
    event = asyncio.run(_first_event(retry.value.trigger))
    assert event["status"] == "error" and event["job_id"] == new_job
    with pytest.raises(
        AirflowException, match=r"receipts/broken\.pdf failed: FAILED: .*BadDocumentException"
    ):
        deferred.execute_complete(task_context(task_id="broken", try_number=2), event)


def test_throttling_is_retried_with_backoff_and_nothing_is_lost(aws, bucket, task_context):
    """A Textract quota of one request per second: paging a finished job one document at a time and
    a retried task attaching to it both get throttled, retried, and return the whole result."""
    document = f"s3://{bucket}/receipts/receipts_two_pages.pdf"
    # the same task as in the non-deferred test: attaches to its job (no second OCR) when run after it
    op = TextractAnalyzeExpenseOperator(
        task_id="expense_pdf", document=document, waiter_delay=1, deferrable=False
    )
    summary = op.execute(task_context(task_id="expense_pdf"))
    expected = _read(aws, summary["result_uri"])
    aws.set_faults("textract:*:rps=1")
    try:
        paged = TextractHook().collect_job_results("expense", summary["job_id"], max_results=1)
        throttled_paging = aws.control("faults")["counters"]["throttled"]
        again = op.execute(task_context(task_id="expense_pdf", try_number=3))
        throttled = aws.control("faults")["counters"]["throttled"]
    finally:
        aws.set_faults()
    assert throttled_paging >= 1 and throttled > throttled_paging  # both were throttled
    assert paged["ExpenseDocuments"] == expected["ExpenseDocuments"]
    assert again == summary and _read(aws, again["result_uri"]) == expected


def _tiff_with_a_broken_second_page() -> bytes:
    """Two deflate-compressed TIFF pages; the second page's first strip is zeroed (undecodable)."""
    import io

    from PIL import Image, ImageDraw

    pages = []
    for text in ("PAGE ONE TOTAL 10.00", "PAGE TWO TOTAL 20.00"):
        image = Image.new("RGB", (600, 300), "white")
        ImageDraw.Draw(image).text((20, 100), text, fill="black")
        pages.append(image)
    buf = io.BytesIO()
    pages[0].save(buf, format="TIFF", save_all=True, append_images=pages[1:], compression="tiff_deflate")
    data = bytearray(buf.getvalue())
    second = Image.open(io.BytesIO(bytes(data)))
    second.seek(1)
    offset, count = second.tag_v2[273][0], second.tag_v2[279][0]
    data[offset : offset + count] = bytes(count)
    return bytes(data)


def test_partial_success_is_a_success_with_a_warning(aws, bucket, capsys, task_context):
    aws.client("s3").put_object(
        Bucket=bucket, Key="receipts/partial.tif", Body=_tiff_with_a_broken_second_page()
    )
    op = TextractDetectDocumentTextOperator(
        task_id="partial", document=f"s3://{bucket}/receipts/partial.tif", waiter_delay=1, deferrable=True
    )
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(task_context(task_id="partial"))
    event = asyncio.run(_first_event(deferred.value.trigger))
    assert event["status"] == "success"
    capsys.readouterr()
    summary = op.execute_complete(task_context(task_id="partial"), event)
    captured = capsys.readouterr()  # Airflow's task loggers write through structlog
    logged = captured.out + captured.err
    assert summary["pages"] == 2
    result = _read(aws, summary["result_uri"])
    assert result["JobStatus"] == "PARTIAL_SUCCESS"
    assert result["Warnings"] == [{"ErrorCode": "PAGE_PROCESSING_FAILED", "Pages": [2]}]
    (warning,) = [line for line in logged.splitlines() if "ended PARTIAL_SUCCESS" in line]
    assert "warning" in warning and "receipts/partial.tif" in warning and "PAGE_PROCESSING_FAILED" in warning
