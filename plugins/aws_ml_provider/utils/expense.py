"""Expense documents (invoices and receipts): what the ``expense_documents`` DAG does between the
AWS calls, as plain functions that take and return JSON-able values.

- :func:`check_document` - cheap checks before Textract is called (empty, corrupt, unsupported
  type, over Textract's size/page limits) and the sync/async choice.
- :func:`normalise_expense` - an AnalyzeExpense response (sync, or the pages of an async job
  merged by :func:`merge_expense_pages`) read with :mod:`.expense_response` (botocore's textract
  model) into the summary fields and line items the DAG reports.
- :func:`review_fields` - which fields a human must look at (low confidence, required but missing).
- :func:`loop_input` / :func:`merge_review` - the A2I human loop's InputContent and the merge of
  the human answers over the machine values (recording which fields a human changed).
- :func:`pretty_outputs` - the seed's CSV and grid outputs (the rows amazon-textract-prettyprinter
  printed, written with tabulate), of the response with the human corrections applied.
- :func:`documents_csv` / :func:`line_items_csv` / :func:`run_summary` - the per-run outputs.
- :class:`TokenBucket` / :func:`per_task_tps` / :func:`textract_retry_config` - the TPS budget.

Imports nothing heavy at module level: tabulate (in MWAA's Airflow install), Pillow and pypdfium2
(in requirements.txt) load inside the functions that need them. amazon-textract-response-parser
and amazon-textract-prettyprinter are not used at run time (they cannot install under MWAA 3.3.1's
constraints); the tests keep them as the reference the outputs are compared with.
"""

from __future__ import annotations

import csv
import datetime
import hashlib
import io
import json
import math
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .errors import error_code
from .expense_response import AnalyzeExpenseResponse

SUMMARY_FIELDS = (
    "VENDOR_NAME",
    "INVOICE_RECEIPT_ID",
    "INVOICE_RECEIPT_DATE",
    "TOTAL",
    "SUBTOTAL",
    "TAX",
    "VENDOR_ADDRESS",
    "RECEIVER_ADDRESS",
)
LINE_ITEM_FIELDS = ("ITEM", "QUANTITY", "PRICE", "EXPENSE_ROW")
DEFAULT_REQUIRED = ("VENDOR_NAME", "INVOICE_RECEIPT_DATE", "TOTAL")
DEFAULT_THRESHOLD = 80.0
MONEY_FIELDS = ("TOTAL", "SUBTOTAL", "TAX", "PRICE")

MB = 1024 * 1024
#: Textract's limits (https://docs.aws.amazon.com/textract/latest/dg/limits-document.html)
SYNC_IMAGE_LIMIT = 10 * MB  # JPEG/PNG/single-page PDF or TIFF from S3, synchronous
ASYNC_DOCUMENT_LIMIT = 500 * MB  # PDF/TIFF, asynchronous
ASYNC_MAX_PAGES = 3000
MAX_IMAGE_SIDE = 10000
SUPPORTED_EXTENSIONS = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".pdf": "PDF",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}

#: Textract errors that mean "this document is bad", not "try again"
DOCUMENT_ERRORS = (
    "BadDocumentException",
    "UnsupportedDocumentException",
    "DocumentTooLargeException",
    "InvalidS3ObjectException",
)

# ---------------------------------------------------------------------------------------------
# names and S3 locations


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key); unlike ``aws_ml_provider.utils.parse_s3_uri`` the key
    may be empty (``s3://bucket/`` is a prefix)."""
    match = re.fullmatch(r"s3://([^/]+)/?(.*)", uri.strip())
    if not match:
        raise ValueError(f"not an S3 URI: {uri!r}")
    return match.group(1), match.group(2)


def document_id(key: str, etag: str) -> str:
    """A document's identity: its S3 key and content (ETag). A copy under another key is another
    document; new content under the same key is a new document."""
    return hashlib.sha256(f"{key}\n{etag.strip(chr(34))}".encode()).hexdigest()[:24]


def run_key(run_id: str) -> str:
    """An S3- and name-safe form of an Airflow run id."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", run_id).strip("-")[:120]


# ---------------------------------------------------------------------------------------------
# document checks (before Textract)


@dataclass
class DocumentCheck:
    ok: bool
    format: str | None = None
    pages: int = 0
    mode: str | None = None  # "sync" or "async"
    code: str | None = None  # why not ok: EmptyDocument, CorruptDocument, UnsupportedDocument, ...
    reason: str | None = None


def sniff_format(head: bytes) -> str | None:
    """The document format from its first bytes (None: not one Textract reads)."""
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if b"%PDF-" in head[:1024]:
        return "PDF"
    return None


def _extension(key: str) -> str:
    name = key.rsplit("/", 1)[-1]
    return "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""


def check_document(key: str, data: bytes, size: int | None = None) -> DocumentCheck:
    """Cheap checks of one document before any Textract call: empty, unsupported type, corrupt
    (signature, decodability), Textract's size and page limits; and whether it goes to the
    synchronous (single images) or asynchronous (PDF, multi-page TIFF) API."""
    size = len(data) if size is None else size
    where = key  # how the reasons name the document
    if size == 0 or not data:
        return DocumentCheck(False, code="EmptyDocument", reason=f"{where} is empty (0 bytes)")
    ext = _extension(key)
    fmt = sniff_format(data[:1024])
    if fmt is None:
        if ext in SUPPORTED_EXTENSIONS:
            return DocumentCheck(
                False,
                code="CorruptDocument",
                reason=f"{where} is named {ext} but its bytes are no {SUPPORTED_EXTENSIONS[ext]}"
                f" (first bytes {data[:8].hex()}): corrupt",
            )
        return DocumentCheck(
            False,
            code="UnsupportedDocument",
            reason=f"{where}: unsupported document type {ext or '(no extension)'}; Textract reads"
            " JPEG, PNG, PDF and TIFF",
        )
    limit = ASYNC_DOCUMENT_LIMIT if fmt in ("PDF", "TIFF") else SYNC_IMAGE_LIMIT
    if size > limit:
        return DocumentCheck(
            False,
            format=fmt,
            code="DocumentTooLarge",
            reason=f"{where} is {size} bytes; Textract's limit for {fmt} is {limit} bytes",
        )
    pages, problem = _pages(fmt, data)
    if problem == ENCRYPTED:
        return DocumentCheck(
            False,
            format=fmt,
            code="EncryptedDocument",
            reason=f"{where} is a password-protected (encrypted) PDF; Textract cannot read it:"
            " send it again without the password",
        )
    if problem and problem.startswith(TOO_MANY_PIXELS):
        return DocumentCheck(False, format=fmt, code="DocumentTooLarge", reason=f"{where}: {problem}")
    if problem:
        return DocumentCheck(False, format=fmt, code="CorruptDocument", reason=f"{where}: {problem}")
    if pages > ASYNC_MAX_PAGES:
        return DocumentCheck(
            False,
            format=fmt,
            pages=pages,
            code="DocumentTooLarge",
            reason=f"{where} has {pages} pages; Textract's limit is {ASYNC_MAX_PAGES}",
        )
    mode = "async" if fmt == "PDF" or (fmt == "TIFF" and pages > 1) else "sync"
    if mode == "sync" and size > SYNC_IMAGE_LIMIT:
        mode = "async"
    return DocumentCheck(True, format=fmt, pages=pages, mode=mode)


#: pypdfium2's ``PdfiumError.err_code`` for a document that needs a password (FPDF_ERR_PASSWORD)
PDFIUM_PASSWORD_ERROR = 4
#: what :func:`_pages` answers for an encrypted PDF
ENCRYPTED = "encrypted"
#: how :func:`_pages` starts the problem of an image over Textract's pixel limits
TOO_MANY_PIXELS = "image of"


def _pages(fmt: str, data: bytes) -> tuple[int, str | None]:
    """(page count, problem) of a document whose signature is right."""
    if fmt == "PDF":
        import pypdfium2 as pdfium

        if b"%%EOF" not in data[-2048:]:
            return 0, "truncated PDF (no %%EOF trailer): corrupt"
        try:
            pdf = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:  # corrupt, or encrypted (a password is needed to open it)
            if getattr(exc, "err_code", None) == PDFIUM_PASSWORD_ERROR:
                return 0, ENCRYPTED
            return 0, f"unreadable PDF ({exc}): corrupt"
        try:
            count = len(pdf)
        finally:
            pdf.close()
        return count, (None if count else "PDF without pages: corrupt")
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
            if max(width, height) > MAX_IMAGE_SIDE:
                return 1, f"{TOO_MANY_PIXELS} {width}x{height}; Textract's limit is {MAX_IMAGE_SIDE} a side"
            frames = getattr(img, "n_frames", 1) if fmt == "TIFF" else 1
            img.load()  # decodes: a truncated or damaged file fails here
    except Image.DecompressionBombError as exc:  # Pillow refuses to open it: far over any limit
        pixels = re.search(r"\((\d+) pixels\)", str(exc))
        count = f"{int(pixels[1]):,}" if pixels else "too many"
        return 1, (
            f"{TOO_MANY_PIXELS} {count} pixels, refused unopened as a decompression bomb;"
            f" Textract's limit is {MAX_IMAGE_SIDE} pixels a side"
        )
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        return 0, f"undecodable {fmt} image ({exc}): corrupt"
    return frames, None


def quarantine_record(
    *, source_uri: str, code: str, reason: str, run_id: str, size: int | None = None, etag: str | None = None
) -> dict:
    """The JSON put beside a quarantined object (``<quarantine prefix>/<run>/<name>.reason.json``)."""
    return {
        "source_uri": source_uri,
        "code": code,
        "reason": reason,
        "size": size,
        "etag": etag.strip('"') if etag else None,
        "run_id": run_id,
        "quarantined_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def textract_error_code(exc: BaseException) -> str | None:
    """The Textract error code of a botocore ClientError when it means a bad document."""
    code = error_code(exc)
    return code if code in DOCUMENT_ERRORS else None


# ---------------------------------------------------------------------------------------------
# normalisation (botocore's AnalyzeExpense shapes, see expense_response.py)


def merge_expense_pages(pages: Iterable[dict]) -> dict:
    """The responses of GetExpenseAnalysis (one per NextToken page) as one AnalyzeExpense-shaped
    response."""
    merged: dict[str, Any] = {"ExpenseDocuments": []}
    for page in pages:
        merged["ExpenseDocuments"].extend(page.get("ExpenseDocuments") or [])
        for key in ("DocumentMetadata", "AnalyzeExpenseModelVersion", "JobStatus", "StatusMessage"):
            if key in page and key not in merged:
                merged[key] = page[key]
    return merged


def _conf(*values: float | None) -> float:
    present = [float(v) for v in values if v is not None]
    return round(min(present), 1) if present else 0.0


def field_key(name: str, position: int = 1) -> str:
    """The key of a summary field of the ``position``-th invoice/receipt in a document: ``TOTAL``
    for the first, ``TOTAL_2`` for the second (a PDF may hold several)."""
    return name if position <= 1 else f"{name}_{position}"


def split_key(key: str) -> tuple[str, int]:
    """``TOTAL_2`` -> (``TOTAL``, 2); ``TOTAL`` -> (``TOTAL``, 1)."""
    head, _, tail = key.rpartition("_")
    if tail.isdigit() and head in SUMMARY_FIELDS:
        return head, int(tail)
    return key, 1


def normalise_expense(response: dict, *, document_id: str = "", source_uri: str = "") -> dict:
    """The summary fields and line items of an AnalyzeExpense response, read with
    :class:`~aws_ml_provider.utils.expense_response.AnalyzeExpenseResponse` (botocore's textract
    model; every member AnalyzeExpense may return is accepted).

    Every ExpenseDocument (one invoice or receipt; a PDF may hold several) gives its summary fields
    in :data:`SUMMARY_FIELDS` under :func:`field_key` (``TOTAL``, ``TOTAL_2``, ...): the detection
    with a value and the highest confidence, a field's confidence being the lower of the type's and
    the value's. Line items keep :data:`LINE_ITEM_FIELDS` per row. Money values also come parsed
    (``amount``) where they read as a number. A field's ``currency`` (ISO code) and ``groups``
    (GroupProperties: ``VENDOR``, ``RECEIVER_BILL_TO``, ... and the group id) are kept where
    Textract gives them; a line item's ``currency`` is its PRICE's (else any of its cells').
    """
    doc = AnalyzeExpenseResponse.from_wire(response)
    fields: dict[str, dict] = {}
    line_items: list[dict] = []
    for position, expense in enumerate(doc.documents, start=1):
        found: dict[str, dict] = {}
        for summary in expense.summary_fields:
            name = summary.type_text
            if name not in SUMMARY_FIELDS:
                continue
            value = summary.value_text
            candidate = {
                "value": value,
                "confidence": _conf(
                    summary.type.confidence if summary.type else None,
                    summary.value.confidence if summary.value else 0.0,
                ),
                "label": summary.label.text if summary.label else None,
                "page": summary.page_number,
                "expense_index": expense.index,
            }
            if name in MONEY_FIELDS:
                candidate["amount"] = parse_amount(value)
            if summary.currency is not None and summary.currency.code:
                candidate["currency"] = summary.currency.code
            if summary.group_properties:
                candidate["groups"] = [{"types": list(g.types), "id": g.id} for g in summary.group_properties]
            current = found.get(name)
            if current is None or (bool(value), candidate["confidence"]) > (
                bool(current["value"]),
                current["confidence"],
            ):
                found[name] = candidate
        for name in SUMMARY_FIELDS:
            if name in found:
                fields[field_key(name, position)] = found[name]
        for group in expense.line_item_groups:
            for row_index, item in enumerate(group.line_items):
                row: dict[str, Any] = {
                    "expense_index": position,
                    "group": group.index,
                    "row": row_index,
                    "page": next((c.page_number for c in item.fields if c.page_number is not None), None),
                }
                confidences = []
                currencies = {}
                for cell in item.fields:
                    name = cell.type_text
                    if cell.currency is not None and cell.currency.code:
                        currencies.setdefault(name, cell.currency.code)
                    if name not in LINE_ITEM_FIELDS or name in row:
                        continue
                    row[name] = cell.value_text
                    if name != "EXPENSE_ROW":
                        confidences.append(
                            _conf(
                                cell.type.confidence if cell.type else None,
                                cell.value.confidence if cell.value else 0.0,
                            )
                        )
                if "PRICE" in row:
                    row["amount"] = parse_amount(row["PRICE"])
                if currencies:
                    row["currency"] = currencies.get("PRICE", next(iter(currencies.values())))
                row["confidence"] = min(confidences) if confidences else 0.0
                line_items.append(row)
    return {
        "document_id": document_id,
        "source_uri": source_uri,
        "pages": doc.pages,
        "expense_count": max(1, len(doc.documents)),
        "fields": fields,
        "line_items": line_items,
    }


def _strip_metadata(response: dict) -> dict:
    """The response without boto3's ResponseMetadata (HTTP details, not Textract's answer)."""
    return {k: v for k, v in response.items() if k != "ResponseMetadata"}


_AMOUNT = re.compile(r"-?\d[\d,\s]*(?:[.,]\d{1,2})?|-?[.,]\d{1,2}")


def parse_amount(text: str | None) -> str | None:
    """``"RM 1,234.50"`` -> ``"1234.50"``; None when the text holds no number."""
    if not text:
        return None
    matches = _AMOUNT.findall(text)
    if not matches:
        return None
    raw = matches[-1].replace(" ", "")
    if re.search(r",\d{1,2}$", raw) and "." not in raw:
        raw = raw.replace(".", "").replace(",", ".")  # 12,50 -> 12.50
    raw = raw.replace(",", "")
    try:
        value = float(raw)
    except ValueError:
        return None
    return f"{value:.2f}"


# ---------------------------------------------------------------------------------------------
# the review decision, the loop input, the merge


def _percent(value: float) -> str:
    """A confidence for the reviewer, cut (not rounded) to one decimal: 79.96 is "79.9", never "80"
    beside a threshold of 80."""
    return f"{math.floor(value * 10) / 10:g}"


#: how far apart two amounts may be and still agree: cash rounding (to 0.05) and cents
AMOUNT_TOLERANCE = 0.05
#: the consistency checks of :func:`consistency_problems` (the DAG's ``consistency_checks``)
CONSISTENCY_CHECKS = ("subtotal_tax", "line_items", "date")


def parse_date(text: str | None) -> datetime.date | None:
    """The day a receipt's date field names (day first where it is ambiguous: ``03/04/2019`` is
    3 April), or None when it does not read as a date between 1990 and next year. A time after the
    date is allowed; other words are not."""
    if not text or not re.search(r"\d", text):
        return None
    from dateutil import parser

    try:
        when = parser.parse(text.strip(), dayfirst=True, default=datetime.datetime(2000, 1, 1))
    except (ValueError, OverflowError):
        return None
    if not 1990 <= when.year <= datetime.date.today().year + 1:
        return None
    return when.date()


def _amount(fields: dict, name: str, position: int) -> float | None:
    field = fields.get(field_key(name, position)) or {}
    amount = field.get("amount") if field.get("value") else None
    return None if amount is None else float(amount)


def consistency_problems(normalised: dict, checks: Iterable[str] = CONSISTENCY_CHECKS) -> list[dict]:
    """Fields that disagree with each other, whatever their confidence: per invoice/receipt,
    ``subtotal_tax``: TOTAL against SUBTOTAL + TAX (when all three read as amounts);
    ``line_items``: TOTAL against the sum of the line items' PRICEs (when every line item has one,
    and the sum is neither the TOTAL, the SUBTOTAL nor TOTAL - TAX); ``date``: a date that does
    not parse (:func:`parse_date`). Amounts agree within :data:`AMOUNT_TOLERANCE`. One entry per
    field: ``name``, ``value``, ``confidence``, ``reason``."""
    checks = set(checks)
    unknown = checks - set(CONSISTENCY_CHECKS)
    if unknown:
        raise ValueError(f"unknown consistency checks {sorted(unknown)}; use {list(CONSISTENCY_CHECKS)}")
    fields = normalised.get("fields", {})
    items = normalised.get("line_items", [])
    out: dict[str, dict] = {}

    def flag(name: str, position: int, reason: str) -> None:
        key = field_key(name, position)
        field = fields.get(key) or {}
        entry = out.setdefault(
            key,
            {
                "name": key,
                "value": field.get("value", ""),
                "confidence": field.get("confidence", 0.0),
                "reason": "",
            },
        )
        entry["reason"] = f"{entry['reason']}; {reason}" if entry["reason"] else reason

    def close(a: float, b: float) -> bool:
        return abs(a - b) <= AMOUNT_TOLERANCE + 1e-9

    for position in range(1, int(normalised.get("expense_count", 1)) + 1):
        total, subtotal, tax = (_amount(fields, n, position) for n in ("TOTAL", "SUBTOTAL", "TAX"))
        if (
            "subtotal_tax" in checks
            and None not in (total, subtotal, tax)
            and not close(subtotal + tax, total)
        ):
            reason = f"TOTAL {total:.2f} is not SUBTOTAL {subtotal:.2f} + TAX {tax:.2f}"
            for name in ("TOTAL", "SUBTOTAL", "TAX"):
                flag(name, position, reason)
        prices = [item.get("amount") for item in items if item.get("expense_index", 1) == position]
        if "line_items" in checks and total is not None and prices and None not in prices:
            summed = sum(float(p) for p in prices)
            agrees = [total] + [v for v in (subtotal,) if v is not None]
            agrees += [total - tax] if tax is not None else []
            if not any(close(summed, value) for value in agrees):
                flag(
                    "TOTAL",
                    position,
                    f"TOTAL {total:.2f} is not the sum of the {len(prices)} line items ({summed:.2f})",
                )
        date = fields.get(field_key("INVOICE_RECEIPT_DATE", position)) or {}
        if "date" in checks and date.get("value") and parse_date(date["value"]) is None:
            flag("INVOICE_RECEIPT_DATE", position, f"date {date['value']!r} does not parse")
    return list(out.values())


def review_fields(
    normalised: dict,
    threshold: float = DEFAULT_THRESHOLD,
    required: Iterable[str] = DEFAULT_REQUIRED,
    consistency: bool | Iterable[str] = True,
) -> list[dict]:
    """The fields a human must check: a summary field under the confidence threshold, a required
    field that is missing or empty (for every invoice/receipt in the document), and the fields
    that disagree with each other (:func:`consistency_problems`; ``consistency``: True for all
    :data:`CONSISTENCY_CHECKS`, False for none, or the names of some), so a confident misreading
    reaches a person too. ``[]`` when the machine result can be
    auto-approved. Names are :func:`field_key` s; a field is listed once, its reasons joined."""
    out = _confidence_review(normalised, threshold, required)
    checks = CONSISTENCY_CHECKS if consistency is True else () if consistency is False else tuple(consistency)
    if checks:
        listed = {entry["name"]: entry for entry in out}
        for problem in consistency_problems(normalised, checks):
            if problem["name"] in listed:
                listed[problem["name"]]["reason"] += f"; {problem['reason']}"
            else:
                out.append(problem)
    return out


def _confidence_review(normalised: dict, threshold: float, required: Iterable[str]) -> list[dict]:
    fields = normalised.get("fields", {})
    out: list[dict] = []
    required = [r.strip().upper() for r in required if r and r.strip()]
    for position in range(1, int(normalised.get("expense_count", 1)) + 1):
        for name in SUMMARY_FIELDS:
            key = field_key(name, position)
            field = fields.get(key)
            if field is None or not field.get("value"):
                if name in required:
                    out.append(
                        {"name": key, "value": "", "confidence": 0.0, "reason": "required field missing"}
                    )
                continue
            if field["confidence"] < threshold:
                out.append(
                    {
                        "name": key,
                        "value": field["value"],
                        "confidence": field["confidence"],
                        "reason": f"confidence {_percent(field['confidence'])} % < {threshold:g} %",
                    }
                )
    return out


def loop_input(
    normalised: dict, fields_to_review: list[dict], document_s3_uri: str, pages: dict | None = None
) -> dict:
    """The InputContent of a document's human loop (the task UI template reads these keys).

    ``document_name`` (the file name) and ``fields`` (``name``, ``value``, ``confidence``, one
    ``reason`` line) also name the task in aws_twin's task list. ``pages`` (a PDF or TIFF: the
    manifest of :func:`~aws_ml_provider.utils.review_pages.ensure_page_images`) adds
    ``page_images`` (S3 URIs of PNGs), ``page_count`` and ``pages_left_out``.
    """
    content = {
        "document_id": normalised.get("document_id", ""),
        "document_name": document_s3_uri.rsplit("/", 1)[-1],
        "document_s3_uri": document_s3_uri,
        "fields": fields_to_review,
        "machine_fields": {name: f.get("value", "") for name, f in normalised.get("fields", {}).items()},
    }
    if pages:
        content["page_images"] = list(pages["page_images"])
        content["page_count"] = int(pages["page_count"])
        content["pages_left_out"] = int(pages["page_count"]) - len(pages["page_images"])
    return content


def _answer_value(raw: Any) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, dict):  # crowd-* elements answer {"value": ...} or {"on": bool}
        raw = raw.get("value", raw.get("label"))
        if raw is None:
            return None
    return str(raw).strip()


def is_unreadable(answer: dict) -> bool:
    flag = answer.get("document_unreadable")
    if isinstance(flag, dict):
        return bool(flag.get("on"))
    if isinstance(flag, str):
        return flag.strip().lower() in ("true", "on", "yes", "1")
    return bool(flag)


def merge_review(normalised: dict, fields_reviewed: list[dict], answer: dict | None, loop: str = "") -> dict:
    """The machine result with a human's answers over it.

    ``answer`` is the answerContent of A2I's output.json (``{"field__TOTAL": "12.50", ...,
    "document_unreadable": {"on": false}}``). Every ``field__<NAME>`` answer replaces the machine
    value; the fields whose value a human changed are listed in ``human_changed``. A document the
    reviewer marks unreadable gets status ``unreadable`` (the DAG quarantines it).
    """
    merged = json.loads(json.dumps(normalised))
    merged["reviewed"] = True
    merged["review_loop"] = loop
    merged["review_reasons"] = fields_reviewed
    merged["human_changed"] = []
    answer = answer or {}
    if is_unreadable(answer):
        merged["status"] = "unreadable"
        return merged
    fields = merged.setdefault("fields", {})
    for key, raw in sorted(answer.items()):
        if not key.startswith("field__"):
            continue
        name = key[len("field__") :].upper()
        base, position = split_key(name)
        if base not in SUMMARY_FIELDS or position > int(merged.get("expense_count", 1)):
            continue
        value = _answer_value(raw)
        if value is None:
            continue
        machine = fields.get(name)
        machine_value = machine.get("value", "") if machine else ""
        if value == machine_value:
            if machine is not None:
                machine["source"] = "human-confirmed"
            continue
        entry = {
            "value": value,
            "confidence": 100.0,
            "source": "human",
            "machine_value": machine_value,
            "machine_confidence": machine.get("confidence", 0.0) if machine else 0.0,
        }
        if base in MONEY_FIELDS:
            entry["amount"] = parse_amount(value)
        fields[name] = entry
        merged["human_changed"].append(name)
    merged["human_changed"].sort(key=lambda k: (split_key(k)[1], SUMMARY_FIELDS.index(split_key(k)[0])))
    merged["status"] = "reviewed"
    return merged


def auto_approve(normalised: dict) -> dict:
    merged = json.loads(json.dumps(normalised))
    merged.update(reviewed=False, review_loop="", review_reasons=[], human_changed=[], status="auto_approved")
    return merged


# ---------------------------------------------------------------------------------------------
# outputs (tabulate)


def apply_corrections(response: dict, merged: dict) -> dict:
    """A copy of the AnalyzeExpense response with the human-changed summary values written into
    it, so the seed's pretty printer shows the final values."""
    patched = json.loads(json.dumps(_strip_metadata(response), default=str))
    documents = patched.setdefault("ExpenseDocuments", [])
    if not documents:
        documents.append({"ExpenseIndex": 1, "SummaryFields": [], "LineItemGroups": []})
    for key in merged.get("human_changed", []):
        value = merged["fields"][key]["value"]
        name, position = split_key(key)
        while len(documents) < position:
            documents.append({"ExpenseIndex": len(documents) + 1, "SummaryFields": [], "LineItemGroups": []})
        document = documents[position - 1]
        best = None
        for summary in document.get("SummaryFields") or []:
            if (summary.get("Type") or {}).get("Text") == name:
                conf = (summary.get("ValueDetection") or {}).get("Confidence", 0.0)
                if best is None or conf > best[0]:
                    best = (conf, summary)
        if best is not None:
            best[1].setdefault("ValueDetection", {})["Text"] = value
            best[1]["ValueDetection"]["Confidence"] = 100.0
        else:
            document.setdefault("SummaryFields", []).append(
                {
                    "Type": {"Text": name, "Confidence": 100.0},
                    "ValueDetection": {"Text": value, "Confidence": 100.0},
                    "PageNumber": 1,
                }
            )
    return patched


def pretty_outputs(response: dict) -> tuple[str, str]:
    """(CSV, fancy grid) of the summary fields and line item groups of a response.

    The rows are those amazon-textract-prettyprinter 0.1.10 printed (the seed's outputs; the test
    suite compares the two): per invoice/receipt a ``Key, Value`` table of its summary fields, a
    key being ``<label>(<TYPE>)`` (``(<TYPE>)`` without a label), in the CSV one after the other
    and then an empty row; then every line item group under the field types of its widest row as
    headers (EXPENSE_ROW left out), each followed by an empty row. The grid is tabulate's
    ``fancy_grid`` of the same rows with number parsing off, so "20.00" stays "20.00". Works with
    tabulate 0.9 (dev) and 0.10 (MWAA 3.3.1).
    """
    from tabulate import tabulate

    def grid(rows, headers=()):
        return tabulate(
            rows, headers=list(headers), tablefmt="fancy_grid", disable_numparse=True, missingval=""
        )

    doc = AnalyzeExpenseResponse.from_wire(response)  # ResponseMetadata is not a member: ignored
    out = io.StringIO()
    writer = _SafeWriter(csv.writer(out))
    summaries = [_summary_rows(expense) for expense in doc.documents]
    for rows in summaries:
        writer.writerows(rows)
    writer.writerow([])
    grid_text = "".join(grid(rows) + "\n\n" for rows in summaries)
    grids = []
    for expense in doc.documents:
        for group in expense.line_item_groups:
            rows = [
                [
                    (cell.value.text or "") if cell.value else ""
                    for cell in item.fields
                    if cell.type_text != "EXPENSE_ROW"
                ]
                for item in group.line_items
            ]
            headers = _line_item_headers(group)
            writer.writerow(headers)
            writer.writerows(rows)
            writer.writerow([])
            grids.append(grid(rows, headers))
    if grids:
        grid_text += "\n\n".join(grids) + "\n"
    return out.getvalue(), grid_text


class _SafeWriter:
    """A ``csv.writer`` whose cells go through :func:`csv_safe` (the grid keeps the raw text)."""

    def __init__(self, writer):
        self._writer = writer

    def writerow(self, row: Iterable[Any]) -> None:
        self._writer.writerow(csv_safe_row(row))

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def _summary_rows(expense) -> list[list[str]]:
    """``Key, Value`` rows of an ExpenseDocument's summary fields, in the response's order."""
    rows = [["Key", "Value"]]
    for summary in expense.summary_fields:
        key = f"({summary.type_text or ''})"
        if summary.label is not None:
            key = (summary.label.text or "") + key
        rows.append([key, (summary.value.text or "") if summary.value else ""])
    return rows


def _line_item_headers(group) -> list[str]:
    """Column titles of a line item group: the field types of its widest row (no EXPENSE_ROW)."""
    best: list[str] = []
    for item in group.line_items:
        names = [c.type_text or "" for c in item.fields if c.type_text != "EXPENSE_ROW"]
        if len(names) > len(best):
            best = names
    return best


DOCUMENT_COLUMNS = (
    "document_id",
    "source_uri",
    "expense_index",
    *SUMMARY_FIELDS,
    "status",
    "reviewed",
    "human_changed",
    "min_confidence",
    "review_loop",
    "result_uri",
)
LINE_ITEM_COLUMNS = (
    "document_id",
    "source_uri",
    "expense_index",
    "group",
    "row",
    *LINE_ITEM_FIELDS,
    "confidence",
)


def document_rows(merged: dict, result_uri: str = "") -> list[dict]:
    """The run CSV rows of a document: one per invoice/receipt in it (``expense_index``)."""
    fields = merged.get("fields", {})
    rows = []
    for position in range(1, int(merged.get("expense_count", 1)) + 1):
        mine = {name: fields.get(field_key(name, position)) for name in SUMMARY_FIELDS}
        confidences = [f.get("confidence", 0.0) for f in mine.values() if f]
        row = {
            "document_id": merged.get("document_id", ""),
            "source_uri": merged.get("source_uri", ""),
            "expense_index": position,
            "status": merged.get("status", ""),
            "reviewed": "true" if merged.get("reviewed") else "false",
            "human_changed": ";".join(
                split_key(k)[0] for k in merged.get("human_changed", []) if split_key(k)[1] == position
            ),
            "min_confidence": f"{min(confidences):.1f}" if confidences else "",
            "review_loop": merged.get("review_loop", ""),
            "result_uri": result_uri,
        }
        for name in SUMMARY_FIELDS:
            row[name] = (mine[name] or {}).get("value", "")
        rows.append(row)
    return rows


#: what makes a spreadsheet read a cell as a formula (OWASP, "CSV Injection")
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(?:\d[\d,]*(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def csv_safe(value: Any) -> Any:
    """A CSV cell that no spreadsheet runs as a formula (OWASP's CSV injection advice): text
    starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading ``'``, so
    ``=HYPERLINK(...)`` is written ``'=HYPERLINK(...)``. A number stays as it is (``-1.50``,
    ``+3``, ``-1,234.50``, ``-2e3``: a spreadsheet reads it as a number, never a formula), as does
    anything that is not text."""
    if not isinstance(value, str) or not value.startswith(FORMULA_TRIGGERS):
        return value
    if _NUMBER.fullmatch(value):
        return value
    return "'" + value


def csv_safe_row(row: Iterable[Any]) -> list[Any]:
    """:func:`csv_safe` of every cell of a row."""
    return [csv_safe(cell) for cell in row]


def _csv(columns: Iterable[str], rows: Iterable[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: csv_safe(value) for key, value in row.items()})
    return out.getvalue()


def documents_csv(rows: Iterable[dict]) -> str:
    """One row per invoice/receipt of each document (from :func:`document_rows`)."""
    return _csv(DOCUMENT_COLUMNS, rows)


def line_items_csv(documents: Iterable[dict]) -> str:
    rows = []
    for merged in documents:
        for item in merged.get("line_items", []):
            rows.append(
                {
                    "document_id": merged.get("document_id", ""),
                    "source_uri": merged.get("source_uri", ""),
                    **item,
                }
            )
    return _csv(LINE_ITEM_COLUMNS, rows)


def run_summary(*, run_id: str, received: int, statuses: dict[str, int], quarantined: int, **extra) -> dict:
    """Counts of a run; ``received == extracted + quarantined`` or it raises."""
    reviewed = statuses.get("reviewed", 0)
    auto = statuses.get("auto_approved", 0)
    extracted = reviewed + auto
    summary = {
        "run_id": run_id,
        "received": received,
        "extracted": extracted,
        "quarantined": quarantined,
        "reviewed": reviewed,
        "auto_approved": auto,
        "reconciles": received == extracted + quarantined,
        **extra,
    }
    if not summary["reconciles"]:
        raise ValueError(f"counts do not reconcile: {summary}")
    return summary


# ---------------------------------------------------------------------------------------------
# the TPS budget


def per_task_tps(total_tps: float, concurrent_tasks: int) -> float:
    """Each of ``concurrent_tasks`` batch tasks gets an equal share of the account's TPS."""
    if total_tps <= 0:
        raise ValueError("textract_tps must be > 0")
    return total_tps / max(1, int(concurrent_tasks))


class TokenBucket:
    """Paces calls to ``rate`` per second (burst ``burst``, default one second's worth)."""

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if rate <= 0:
            raise ValueError("rate must be > 0")
        self.rate = float(rate)
        self.capacity = float(burst if burst is not None else max(1.0, rate))
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.capacity
        self._stamp = clock()
        self._lock = threading.Lock()
        self.waited = 0.0

    def acquire(self, tokens: float = 1.0) -> float:
        """Take ``tokens``, sleeping until they are there; returns the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
                self._stamp = now
                if self._tokens + 1e-9 >= tokens:  # (float rounding must not spin)
                    self._tokens -= tokens
                    self.waited += waited
                    return waited
                delay = (tokens - self._tokens) / self.rate
            self._sleep(delay)
            waited += delay


def textract_retry_config(max_attempts: int = 12, mode: str = "adaptive") -> dict:
    """botocore ``retries`` settings for the Textract client (adaptive: client-side rate limiting
    on top of exponential backoff with jitter on ThrottlingException)."""
    return {"retries": {"max_attempts": max_attempts, "mode": mode}}
