"""Amazon Textract on the twin (boto3 over HTTP, --strict): real OCR of the sample documents the
product ships (include/data/receipts, ground truth in ground_truth.json), forms / tables / queries,
expense analysis, the asynchronous Start/Get pairs with pagination and idempotency, Textract's
errors for bad documents, and a few real SROIE receipts (skipped when the shared data is missing,
failed under CI)."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, WaiterError
from botocore.waiter import WaiterModel, create_waiter_with_client

from tests.shared_data import shared_dir

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "include" / "data" / "receipts"
TRUTH = json.loads((SAMPLES / "ground_truth.json").read_text())


SROIE = shared_dir() / "data" / "receipts"
# a few real receipts of the benchmark set (bench/expense_bench.py runs all 40); 267 and 453 print
# a rounding adjustment after the total (the payable amount is the rounded one)
SROIE_SAMPLE = ["007", "026", "072", "094", "267", "333", "453", "552"]

WAITERS = WaiterModel(
    {
        "version": 2,
        "waiters": {
            name: {
                "operation": op,
                "delay": 1,
                "maxAttempts": 120,
                "acceptors": [
                    {"matcher": "path", "argument": "JobStatus", "expected": "SUCCEEDED", "state": "success"},
                    {
                        "matcher": "path",
                        "argument": "JobStatus",
                        "expected": "PARTIAL_SUCCESS",
                        "state": "success",
                    },
                    {"matcher": "path", "argument": "JobStatus", "expected": "FAILED", "state": "failure"},
                ],
            }
            for name, op in (
                ("TextDetectionDone", "GetDocumentTextDetection"),
                ("ExpenseAnalysisDone", "GetExpenseAnalysis"),
                ("DocumentAnalysisDone", "GetDocumentAnalysis"),
            )
        },
    }
)


def _norm(text: str | None) -> str:
    return re.sub(r"[\W_]+", "", (text or "").lower())


def _number(text: str | None) -> float | None:
    m = re.findall(r"\d[\d,]*\.\d{2}", text or "")
    return float(m[-1].replace(",", "")) if m else None


def _code(exc: pytest.ExceptionInfo) -> str:
    return exc.value.response["Error"]["Code"]


def _fields(expense_doc: dict) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for f in expense_doc["SummaryFields"]:
        out.setdefault(f["Type"]["Text"], f)
    return out


@pytest.fixture(scope="module")
def textract(twin):
    return twin.client("textract")


@pytest.fixture(scope="module")
def expense_results(textract) -> dict[str, dict]:
    """AnalyzeExpense of every single-page sample, once for the module."""
    results = {}
    for name, truth in TRUTH.items():
        if truth.get("pages") == 1:
            results[name] = textract.analyze_expense(Document={"Bytes": (SAMPLES / name).read_bytes()})
    return results


def test_detect_document_text_finds_words_with_sane_geometry(textract):
    resp = textract.detect_document_text(Document={"Bytes": (SAMPLES / "receipt_grocery.jpg").read_bytes()})
    assert resp["DocumentMetadata"]["Pages"] == 1
    assert resp["DetectDocumentTextModelVersion"]
    blocks = resp["Blocks"]
    by_id = {b["Id"]: b for b in blocks}
    assert len(by_id) == len(blocks), "block ids are unique"
    pages = [b for b in blocks if b["BlockType"] == "PAGE"]
    lines = [b for b in blocks if b["BlockType"] == "LINE"]
    words = [b for b in blocks if b["BlockType"] == "WORD"]
    assert len(pages) == 1 and len(lines) >= 15 and len(words) >= 40
    texts = {w["Text"].upper().strip(",.:") for w in words}
    for expected in ("GREENLEAF", "GROCERS", "TOTAL", "CASH", "33.18", "GL-100234"):
        assert expected in texts, f"{expected} not read; words: {sorted(texts)[:60]}"
    for b in lines + words:
        box = b["Geometry"]["BoundingBox"]
        assert 0 <= box["Left"] < 1 and 0 <= box["Top"] < 1
        assert 0 < box["Width"] <= 1 and 0 < box["Height"] < 0.2
        assert box["Left"] + box["Width"] <= 1.0001 and box["Top"] + box["Height"] <= 1.0001
        assert len(b["Geometry"]["Polygon"]) == 4
        assert 0 < b["Confidence"] <= 100
    # page -> lines -> words, and every word of a line lies inside the line's box
    assert set(pages[0]["Relationships"][0]["Ids"]) == {b["Id"] for b in lines}
    for line in lines:
        children = [by_id[i] for i in line["Relationships"][0]["Ids"]]
        assert all(c["BlockType"] == "WORD" for c in children)
        assert line["Text"] == " ".join(c["Text"] for c in children)
        lb = line["Geometry"]["BoundingBox"]
        for c in children:
            wb = c["Geometry"]["BoundingBox"]
            assert (
                wb["Left"] >= lb["Left"] - 0.01
                and wb["Left"] + wb["Width"] <= lb["Left"] + lb["Width"] + 0.01
            )
    # layout: the vendor is printed above the total, the total's amount right of its label
    top = {w["Text"]: w["Geometry"]["BoundingBox"] for w in words}
    assert top["GREENLEAF"]["Top"] < top["TOTAL"]["Top"]
    assert top["33.18"]["Left"] > top["TOTAL"]["Left"] + 0.3


@pytest.mark.parametrize("name", ["receipt_grocery.jpg", "invoice_northwind.png", "receipt_cafe.tif"])
def test_analyze_expense_matches_ground_truth(expense_results, name):
    resp = expense_results[name]
    truth = TRUTH[name]["documents"][0]
    assert resp["DocumentMetadata"]["Pages"] == 1
    (doc,) = resp["ExpenseDocuments"]
    fields = _fields(doc)
    assert _norm(fields["VENDOR_NAME"]["ValueDetection"]["Text"]) == _norm(truth["vendor"])
    assert _norm(fields["INVOICE_RECEIPT_DATE"]["ValueDetection"]["Text"]) == _norm(truth["date"])
    assert _norm(fields["INVOICE_RECEIPT_ID"]["ValueDetection"]["Text"]) == _norm(truth["invoice_id"])
    assert _number(fields["TOTAL"]["ValueDetection"]["Text"]) == float(truth["total"])
    assert _number(fields["SUBTOTAL"]["ValueDetection"]["Text"]) == float(truth["subtotal"])
    assert _number(fields["TAX"]["ValueDetection"]["Text"]) == float(truth["tax"])
    total = fields["TOTAL"]
    assert total["LabelDetection"]["Text"].upper().startswith("TOTAL")
    assert total["ValueDetection"]["Confidence"] > 80
    assert total["PageNumber"] == 1
    assert 0 < total["ValueDetection"]["Geometry"]["BoundingBox"]["Width"] < 0.5
    assert fields["VENDOR_NAME"]["GroupProperties"][0]["Types"] == ["VENDOR"]
    # line items: one per printed item, with the printed amounts
    (group,) = doc["LineItemGroups"]
    items = [
        {f["Type"]["Text"]: f["ValueDetection"]["Text"] for f in li["LineItemExpenseFields"]}
        for li in group["LineItems"]
    ]
    assert [_number(i["PRICE"]) for i in items] == [float(i["price"]) for i in truth["items"]]
    assert all("ITEM" in i and "EXPENSE_ROW" in i for i in items)
    matched = sum(_norm(i["ITEM"]) == _norm(t["item"]) for i, t in zip(items, truth["items"], strict=True))
    assert matched >= len(items) - 1
    # the page's text blocks come with the expense document
    assert any(b["BlockType"] == "PAGE" for b in doc["Blocks"])


def test_invoice_receiver_block(expense_results):
    truth = TRUTH["invoice_northwind.png"]["documents"][0]
    fields = _fields(expense_results["invoice_northwind.png"]["ExpenseDocuments"][0])
    assert _norm(fields["RECEIVER_NAME"]["ValueDetection"]["Text"]) == _norm(truth["receiver_name"])
    assert _norm(fields["RECEIVER_ADDRESS"]["ValueDetection"]["Text"]) == _norm(truth["receiver_address"])
    assert "RECEIVER" in fields["RECEIVER_NAME"]["GroupProperties"][0]["Types"]


def test_faint_total_comes_out_with_low_confidence(expense_results):
    faint = _fields(expense_results["receipt_faint_total.jpg"]["ExpenseDocuments"][0])
    others = [
        _fields(r["ExpenseDocuments"][0])["TOTAL"]["ValueDetection"]["Confidence"]
        for name, r in expense_results.items()
        if name != "receipt_faint_total.jpg"
    ]
    conf = faint["TOTAL"]["ValueDetection"]["Confidence"]
    assert conf < 80, f"the worn total should need review, got confidence {conf}"
    assert conf < min(others) - 10
    # the rest of that receipt is printed clearly
    truth = TRUTH["receipt_faint_total.jpg"]["documents"][0]
    assert _norm(faint["VENDOR_NAME"]["ValueDetection"]["Text"]) == _norm(truth["vendor"])
    assert faint["VENDOR_NAME"]["ValueDetection"]["Confidence"] > 80


def test_analyze_document_forms_tables_queries(textract):
    resp = textract.analyze_document(
        Document={"Bytes": (SAMPLES / "invoice_northwind.png").read_bytes()},
        FeatureTypes=["FORMS", "TABLES", "QUERIES"],
        QueriesConfig={
            "Queries": [
                {"Text": "What is the invoice number?", "Alias": "INVOICE_NO"},
                {"Text": "What is the date?"},
                {"Text": "What is the colour of the sky?"},
            ]
        },
    )
    blocks = resp["Blocks"]
    by_id = {b["Id"]: b for b in blocks}

    def text_of(block):
        ids = [i for r in block.get("Relationships", []) if r["Type"] == "CHILD" for i in r["Ids"]]
        return " ".join(by_id[i]["Text"] for i in ids)

    keys = [b for b in blocks if b["BlockType"] == "KEY_VALUE_SET" and b["EntityTypes"] == ["KEY"]]
    pairs = {}
    for key in keys:
        (value_id,) = next(r["Ids"] for r in key["Relationships"] if r["Type"] == "VALUE")
        assert by_id[value_id]["EntityTypes"] == ["VALUE"]
        pairs[_norm(text_of(key))] = text_of(by_id[value_id])
    assert pairs.get("invoiceno") == "INV-2024-0042", pairs
    assert pairs.get("date") == "15/03/2024", pairs

    tables = [b for b in blocks if b["BlockType"] == "TABLE"]
    assert tables
    cells = [by_id[i] for t in tables for r in t["Relationships"] for i in r["Ids"]]
    assert all(c["BlockType"] == "CELL" and c["RowIndex"] >= 1 and c["ColumnIndex"] >= 1 for c in cells)
    item_table = next(
        t for t in tables if "OFFICE CHAIR" in {text_of(by_id[i]) for i in t["Relationships"][0]["Ids"]}
    )
    grid = {
        (by_id[i]["RowIndex"], by_id[i]["ColumnIndex"]): text_of(by_id[i])
        for i in item_table["Relationships"][0]["Ids"]
    }
    row = next(r for (r, c), t in grid.items() if t == "OFFICE CHAIR")
    assert {grid[(row, c)] for c in range(1, 1 + max(c for _, c in grid))} >= {
        "OFFICE CHAIR",
        "4",
        "89.00",
        "356.00",
    }

    queries = [b for b in blocks if b["BlockType"] == "QUERY"]
    assert len(queries) == 3
    answers = {}
    for q in queries:
        ids = [i for r in q.get("Relationships", []) if r["Type"] == "ANSWER" for i in r["Ids"]]
        answers[q["Query"]["Text"]] = [by_id[i]["Text"] for i in ids]
        assert all(by_id[i]["BlockType"] == "QUERY_RESULT" for i in ids)
    assert answers["What is the invoice number?"] == ["INV-2024-0042"]
    assert answers["What is the date?"] == ["15/03/2024"]
    assert answers["What is the colour of the sky?"] == []


def test_async_text_detection_on_two_page_pdf(twin, textract, bucket):
    s3 = twin.client("s3")
    pdf = (SAMPLES / "receipts_two_pages.pdf").read_bytes()
    s3.put_object(Bucket=bucket, Key="in/two.pdf", Body=pdf)
    s3.put_object(Bucket=bucket, Key="in/other.pdf", Body=pdf)
    location = {"S3Object": {"Bucket": bucket, "Name": "in/two.pdf"}}
    token = uuid.uuid4().hex
    job_id = textract.start_document_text_detection(DocumentLocation=location, ClientRequestToken=token)[
        "JobId"
    ]
    # same token, same document: the same job (a retried task attaches to what it started)
    again = textract.start_document_text_detection(DocumentLocation=location, ClientRequestToken=token)[
        "JobId"
    ]
    assert again == job_id
    other = textract.start_document_text_detection(DocumentLocation=location)["JobId"]
    assert other != job_id
    with pytest.raises(ClientError) as exc:
        textract.start_document_text_detection(
            DocumentLocation={"S3Object": {"Bucket": bucket, "Name": "in/other.pdf"}},
            ClientRequestToken=token,
        )
    # the token of another request (a readable document, so only the token can be wrong)
    assert _code(exc) == "IdempotentParameterMismatchException"

    create_waiter_with_client("TextDetectionDone", WAITERS, textract).wait(JobId=job_id)
    first = textract.get_document_text_detection(JobId=job_id, MaxResults=40)
    assert first["JobStatus"] == "SUCCEEDED"
    assert first["DocumentMetadata"]["Pages"] == 2
    assert first["DetectDocumentTextModelVersion"]
    blocks, token_, calls = list(first["Blocks"]), first.get("NextToken"), 1
    assert len(blocks) == 40 and token_
    while token_:
        page = textract.get_document_text_detection(JobId=job_id, MaxResults=40, NextToken=token_)
        assert len(page["Blocks"]) <= 40
        blocks += page["Blocks"]
        token_ = page.get("NextToken")
        calls += 1
    assert calls >= 3
    assert len({b["Id"] for b in blocks}) == len(blocks)
    assert sorted(b["Page"] for b in blocks if b["BlockType"] == "PAGE") == [1, 2]
    words = {(b["Page"], b["Text"]) for b in blocks if b["BlockType"] == "WORD"}
    assert (1, "SH-30417") in words and (2, "MB-77810") in words
    with pytest.raises(ClientError) as exc:
        textract.get_document_text_detection(JobId=job_id, NextToken="not-a-token")
    assert _code(exc) == "InvalidParameterException"


def test_async_expense_analysis_on_two_page_pdf(twin, textract, bucket):
    twin.client("s3").put_object(
        Bucket=bucket, Key="two.pdf", Body=(SAMPLES / "receipts_two_pages.pdf").read_bytes()
    )
    job_id = textract.start_expense_analysis(
        DocumentLocation={"S3Object": {"Bucket": bucket, "Name": "two.pdf"}},
        OutputConfig={"S3Bucket": bucket, "S3Prefix": "textract-out"},
    )["JobId"]
    create_waiter_with_client("ExpenseAnalysisDone", WAITERS, textract).wait(JobId=job_id)
    first = textract.get_expense_analysis(JobId=job_id, MaxResults=1)
    assert first["JobStatus"] == "SUCCEEDED" and first["DocumentMetadata"]["Pages"] == 2
    assert first["AnalyzeExpenseModelVersion"]
    second = textract.get_expense_analysis(JobId=job_id, MaxResults=1, NextToken=first["NextToken"])
    assert "NextToken" not in second
    docs = first["ExpenseDocuments"] + second["ExpenseDocuments"]
    assert [d["ExpenseIndex"] for d in docs] == [1, 2]
    for doc, truth in zip(docs, TRUTH["receipts_two_pages.pdf"]["documents"], strict=True):
        fields = _fields(doc)
        assert _number(fields["TOTAL"]["ValueDetection"]["Text"]) == float(truth["total"])
        assert _norm(fields["INVOICE_RECEIPT_DATE"]["ValueDetection"]["Text"]) == _norm(truth["date"])
        assert _norm(fields["VENDOR_NAME"]["ValueDetection"]["Text"]) == _norm(truth["vendor"])
    assert {f["PageNumber"] for d in docs for f in d["SummaryFields"]} == {1, 2}
    # OutputConfig: the whole result under <prefix>/<JobId>/1
    body = twin.client("s3").get_object(Bucket=bucket, Key=f"textract-out/{job_id}/1")["Body"].read()
    written = json.loads(body)
    assert written["JobStatus"] == "SUCCEEDED" and len(written["ExpenseDocuments"]) == 2


def test_async_document_analysis_and_failed_job(twin, textract, bucket):
    s3 = twin.client("s3")
    s3.put_object(Bucket=bucket, Key="cafe.tif", Body=(SAMPLES / "receipt_cafe.tif").read_bytes())
    s3.put_object(Bucket=bucket, Key="corrupt.jpg", Body=(SAMPLES / "corrupt.jpg").read_bytes())
    job_id = textract.start_document_analysis(
        DocumentLocation={"S3Object": {"Bucket": bucket, "Name": "cafe.tif"}}, FeatureTypes=["FORMS"]
    )["JobId"]
    bad_id = textract.start_document_analysis(
        DocumentLocation={"S3Object": {"Bucket": bucket, "Name": "corrupt.jpg"}}, FeatureTypes=["TABLES"]
    )["JobId"]
    create_waiter_with_client("DocumentAnalysisDone", WAITERS, textract).wait(JobId=job_id)
    done = textract.get_document_analysis(JobId=job_id)
    assert done["JobStatus"] == "SUCCEEDED" and done["DocumentMetadata"]["Pages"] == 1
    assert any(b["BlockType"] == "KEY_VALUE_SET" for b in done["Blocks"])
    with pytest.raises(WaiterError):
        create_waiter_with_client("DocumentAnalysisDone", WAITERS, textract).wait(JobId=bad_id)
    failed = textract.get_document_analysis(JobId=bad_id)
    assert failed["JobStatus"] == "FAILED"
    assert "BadDocumentException" in failed["StatusMessage"]
    with pytest.raises(ClientError) as exc:
        textract.get_document_analysis(JobId="0" * 64)
    assert _code(exc) == "InvalidJobIdException"
    with pytest.raises(ClientError) as exc:  # a text-detection JobId is not an analysis job
        textract.get_expense_analysis(JobId=job_id)
    assert _code(exc) == "InvalidJobIdException"


def test_bad_documents_get_textracts_errors(twin, textract, bucket):
    s3 = twin.client("s3")
    s3.put_object(Bucket=bucket, Key="empty.jpg", Body=b"")

    def code_of(**kwargs) -> str:
        with pytest.raises(ClientError) as exc:
            textract.analyze_expense(**kwargs)
        return _code(exc)

    assert code_of(Document={"S3Object": {"Bucket": bucket, "Name": "empty.jpg"}}) == "BadDocumentException"
    assert code_of(Document={"Bytes": (SAMPLES / "corrupt.jpg").read_bytes()}) == "BadDocumentException"
    assert code_of(Document={"Bytes": b"name,total\nacme,12.00\n"}) == "UnsupportedDocumentException"
    assert (
        code_of(Document={"S3Object": {"Bucket": bucket, "Name": "no/such/key.jpg"}})
        == "InvalidS3ObjectException"
    )
    too_big = b"\xff\xd8\xff\xe0" + bytes(5 * 1024 * 1024)
    assert code_of(Document={"Bytes": too_big}) == "DocumentTooLargeException"
    # synchronous operations read single-page documents only
    pdf = (SAMPLES / "receipts_two_pages.pdf").read_bytes()
    assert code_of(Document={"Bytes": pdf}) == "UnsupportedDocumentException"
    with pytest.raises(ClientError) as exc:
        textract.analyze_document(Document={"Bytes": pdf}, FeatureTypes=["QUERIES"])
    assert _code(exc) == "InvalidParameterException"
    with pytest.raises(ClientError) as exc:
        textract.start_expense_analysis(
            DocumentLocation={"S3Object": {"Bucket": bucket, "Name": "missing.pdf"}}
        )
    assert _code(exc) == "InvalidS3ObjectException"


@pytest.mark.slow  # about a minute: make test leaves it out, CI runs it
def test_real_sroie_receipts_total_and_date(textract, need):
    """Every receipt of the sample, exactly (the OCR is deterministic; the other 32 receipts of the
    set, one of them misread, are measured by bench/expense_bench.py)."""
    need(SROIE.is_dir(), f"the shared SROIE receipts ({SROIE})")
    misses = []
    for stem in SROIE_SAMPLE:
        label = json.loads((SROIE / f"{stem}.json").read_text())
        resp = textract.analyze_expense(Document={"Bytes": (SROIE / f"{stem}.jpg").read_bytes()})
        fields = _fields(resp["ExpenseDocuments"][0])
        total = fields.get("TOTAL", {}).get("ValueDetection", {}).get("Text")
        date = fields.get("INVOICE_RECEIPT_DATE", {}).get("ValueDetection", {}).get("Text")
        ok_total = _number(total) is not None and _number(total) == _number(label["total"])
        if not (ok_total and _norm(date) == _norm(label["date"])):
            misses.append((stem, total, label["total"], date, label["date"]))
    assert misses == []
