"""AnalyzeDocument's SIGNATURES feature on the twin (boto3 over HTTP, --strict), sync and async.

Documents (tests/twin/data/signatures, made by make_documents.py there): printed forms with names
written in two handwriting typefaces (Dancing Script, Kristi; SIL OFL), one above its rule line,
one written across it, two signatures on one page; a scrawl of random smooth pen curves across its
line (which the OCR does not read); and the same form unsigned. truth.json holds the
box of each signature's ink, taken from the rendered signature itself. Real material: SROIE
receipt 217 carries a real pen signature after a printed "BY"; the other SROIE receipts of the
sample (some with pen circles, a tick, a stamp) and the shipped include/ documents must give no
SIGNATURE block.

Each response is read by textractor (``Document.signatures``) and trp2 (``signatures(page)``):
their counts must equal the raw SIGNATURE blocks (a PAGE that does not list its SIGNATUREs as CHILD
shows up as libraries that find none).
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import pytest
from textractor.entities.document import Document as TextractorDocument
from trp.trp2 import TDocumentSchema

from tests.shared_data import shared_dir

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data" / "signatures"
TRUTH = json.loads((DATA / "truth.json").read_text())
SAMPLES = ROOT / "include" / "data" / "receipts"
SROIE = shared_dir() / "data" / "receipts"
# printed receipts (257: a rounded thermal typeface whose letters touch), some with pen marks that
# are no signature (026 a "PAID" stamp, 094 a punched hole and "Pay", 249 and 254 circles around
# totals, 453 a tick); 217 has a real signature
NO_SIGNATURE_SROIE = ["007", "026", "072", "094", "249", "254", "257", "267", "333", "453", "552"]


@pytest.fixture(scope="module")
def textract(twin):
    return twin.client("textract")


def _box(block: dict) -> tuple[float, float, float, float]:
    bb = block["Geometry"]["BoundingBox"]
    return bb["Left"], bb["Top"], bb["Left"] + bb["Width"], bb["Top"] + bb["Height"]


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def _signatures(blocks: list[dict]) -> list[dict]:
    return [b for b in blocks if b["BlockType"] == "SIGNATURE"]


def _check_shape_and_libraries(resp: dict) -> list[dict]:
    """SIGNATURE blocks as Textract returns them, each listed by its PAGE, counted alike by
    textractor and trp2; returns them."""
    blocks = resp["Blocks"]
    sigs = _signatures(blocks)
    pages = {b["Page"]: b for b in blocks if b["BlockType"] == "PAGE"}
    for sig in sigs:
        assert set(sig) == {"BlockType", "Confidence", "Geometry", "Id", "Page"}
        assert 0 < sig["Confidence"] <= 100
        poly = sig["Geometry"]["Polygon"]
        assert len(poly) == 4
        left, top, right, bottom = _box(sig)
        assert min(p["X"] for p in poly) == pytest.approx(left)
        assert max(p["Y"] for p in poly) == pytest.approx(bottom)
        children = [
            i for r in pages[sig["Page"]].get("Relationships", []) if r["Type"] == "CHILD" for i in r["Ids"]
        ]
        assert sig["Id"] in children
    whole = {"DocumentMetadata": resp["DocumentMetadata"], "Blocks": blocks}
    doc = TextractorDocument.open(copy.deepcopy(whole))
    assert len(doc.signatures) == len(sigs)
    t_doc = TDocumentSchema().load(copy.deepcopy(whole))
    assert sum(len(t_doc.signatures(p)) for p in t_doc.pages) == len(sigs)
    return sigs


def _assert_matches_truth(sigs: list[dict], truth: list[list[float]]) -> None:
    assert len(sigs) == len(truth), [_box(s) for s in sigs]
    for true_box in truth:
        best = max((_iou(_box(s), true_box) for s in sigs), default=0.0)
        assert best >= 0.5, (true_box, [_box(s) for s in sigs])


@pytest.mark.parametrize("name", sorted(TRUTH))
def test_analyze_document_finds_the_signatures(textract, name):
    resp = textract.analyze_document(
        Document={"Bytes": (DATA / name).read_bytes()}, FeatureTypes=["FORMS", "SIGNATURES"]
    )
    sigs = _check_shape_and_libraries(resp)
    _assert_matches_truth(sigs, TRUTH[name]["signatures"])
    # the printed lines stay LINEs; the feature adds SIGNATURE blocks, it takes nothing away
    plain = textract.analyze_document(Document={"Bytes": (DATA / name).read_bytes()}, FeatureTypes=["FORMS"])
    assert _signatures(plain["Blocks"]) == []
    assert len(resp["Blocks"]) == len(plain["Blocks"]) + len(sigs)


def test_start_document_analysis_finds_the_signatures(twin, textract, bucket):
    name = "signed_across_line.png"
    twin.client("s3").put_object(Bucket=bucket, Key=name, Body=(DATA / name).read_bytes())
    job = textract.start_document_analysis(
        DocumentLocation={"S3Object": {"Bucket": bucket, "Name": name}}, FeatureTypes=["SIGNATURES"]
    )["JobId"]
    deadline = time.monotonic() + 120
    resp = textract.get_document_analysis(JobId=job)
    while resp["JobStatus"] == "IN_PROGRESS" and time.monotonic() < deadline:
        time.sleep(0.5)
        resp = textract.get_document_analysis(JobId=job)
    assert resp["JobStatus"] == "SUCCEEDED", resp.get("StatusMessage")
    assert "NextToken" not in resp
    sigs = _check_shape_and_libraries(resp)
    _assert_matches_truth(sigs, TRUTH[name]["signatures"])


@pytest.mark.slow  # 15 pages of OCR (15 s); make test keeps the signed-form and real-pen tests
def test_no_signature_on_printed_documents(textract, need):
    """The shipped sample documents and SROIE receipts with printed text (and pen marks that are no
    signature): no SIGNATURE."""
    need(SROIE.is_dir(), f"the shared SROIE receipts ({SROIE})")
    paths = [SAMPLES / n for n in ("invoice_northwind.png", "receipt_grocery.jpg", "receipt_cafe.tif")]
    paths += [SAMPLES / "receipt_faint_total.jpg"] + [SROIE / f"{stem}.jpg" for stem in NO_SIGNATURE_SROIE]
    found = {}
    for path in paths:
        resp = textract.analyze_document(Document={"Bytes": path.read_bytes()}, FeatureTypes=["SIGNATURES"])
        assert any(b["BlockType"] == "LINE" for b in resp["Blocks"])
        sigs = _check_shape_and_libraries(resp)
        if sigs:
            found[path.name] = [_box(s) for s in sigs]
    assert found == {}


def test_real_pen_signature_on_a_receipt(textract, need):
    """SROIE receipt 217 is signed by hand under its printed "APPROVED" (after a small printed
    "BY" the OCR does not read): one SIGNATURE starts just under that line, at its left half
    (the line's position from the twin's own OCR of the receipt)."""
    need(SROIE.is_dir(), f"the shared SROIE receipts ({SROIE})")
    resp = textract.analyze_document(
        Document={"Bytes": (SROIE / "217.jpg").read_bytes()}, FeatureTypes=["SIGNATURES"]
    )
    sigs = _check_shape_and_libraries(resp)
    (cue,) = [b for b in resp["Blocks"] if b["BlockType"] == "LINE" and b["Text"] == "APPROVED"]
    left, top, right, bottom = _box(cue)
    height = bottom - top
    near = [
        _box(s)
        for s in sigs
        if top <= _box(s)[1] <= bottom + 2 * height and left - height <= _box(s)[0] <= (left + right) / 2
    ]
    assert len(near) == 1, ([_box(s) for s in sigs], _box(cue))
