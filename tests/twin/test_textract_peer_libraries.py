"""The twin's Textract responses read by the client libraries people use on real ones:
``amazon-textract-textractor`` (its response parser), ``amazon-textract-response-parser`` (trp and
trp2) and ``amazon-textract-prettyprinter``. Each must find what the raw blocks hold (key-values,
tables, cells, query answers, lines, layout elements): a block the service would link and the twin
did not (a PAGE that does not list its KEY_VALUE_SETs, QUERYs or LAYOUT_* as CHILD) shows up as a
library that finds nothing.

Also: the PAGE lists every block on it, every polygon has 4 points, every LINE sits in exactly one
layout element. SIGNATURE blocks, read by textractor and trp2: tests/twin/test_textract_signatures.py.
"""

from __future__ import annotations

import copy
import time
from collections import Counter
from pathlib import Path

import pytest
from textractor.entities.document import Document as TextractorDocument
from textractor.parsers import response_parser
from textractprettyprinter.t_pretty_print import (
    convert_form_to_list_trp2,
    convert_queries_to_list_trp2,
    get_lines_string,
    get_text_from_layout_json,
)
from trp import Document as TrpDocument
from trp.trp2 import TDocumentSchema
from trp.trp2_expense import TAnalyzeExpenseDocumentSchema

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "include" / "data" / "receipts"
QUERIES = [
    {"Text": "What is the invoice number?", "Alias": "INVOICE_NO"},
    {"Text": "What is the date?"},
    {"Text": "What is the colour of the sky?"},
]
PAGE_LEVEL = {"LINE", "TABLE", "KEY_VALUE_SET", "QUERY", "QUERY_RESULT", "SIGNATURE"}


@pytest.fixture(scope="module")
def textract(twin):
    return twin.client("textract")


@pytest.fixture(scope="module")
def analysis(textract) -> dict:
    """AnalyzeDocument of the sample invoice with every feature the twin performs."""
    resp = textract.analyze_document(
        Document={"Bytes": (SAMPLES / "invoice_northwind.png").read_bytes()},
        FeatureTypes=["FORMS", "TABLES", "QUERIES", "LAYOUT"],
        QueriesConfig={"Queries": QUERIES},
    )
    resp.pop("ResponseMetadata", None)
    return resp


def raw_counts(blocks: list[dict]) -> dict:
    """What the blocks hold, counted from the blocks themselves."""
    by_id = {b["Id"]: b for b in blocks}

    def rel(block, kind):
        return [i for r in block.get("Relationships", []) for i in r["Ids"] if r["Type"] == kind]

    in_lists = {i for b in blocks if b["BlockType"] == "LAYOUT_LIST" for i in rel(b, "CHILD")}
    layouts = [b for b in blocks if b["BlockType"].startswith("LAYOUT_") and b["Id"] not in in_lists]
    return {
        "pages": sum(b["BlockType"] == "PAGE" for b in blocks),
        "lines": sum(b["BlockType"] == "LINE" for b in blocks),
        "keys": sum(b["BlockType"] == "KEY_VALUE_SET" and "KEY" in b["EntityTypes"] for b in blocks),
        "tables": sum(b["BlockType"] == "TABLE" for b in blocks),
        "cells": sum(b["BlockType"] == "CELL" for b in blocks),
        "queries": sum(b["BlockType"] == "QUERY" for b in blocks),
        "answers": {
            b["Query"]["Text"]: by_id[rel(b, "ANSWER")[0]]["Text"]
            for b in blocks
            if b["BlockType"] == "QUERY" and rel(b, "ANSWER")
        },
        "layouts": Counter(b["BlockType"] for b in layouts),
    }


def test_the_sample_holds_every_kind_of_block(analysis):
    """The counts the libraries are held to are not zeros: the invoice has them all."""
    counts = raw_counts(analysis["Blocks"])
    assert counts["keys"] >= 2 and counts["tables"] >= 1 and counts["cells"] >= 4
    assert counts["queries"] == len(QUERIES) and len(counts["answers"]) == 2
    assert counts["layouts"]["LAYOUT_TABLE"] >= 1 and counts["layouts"]["LAYOUT_KEY_VALUE"] >= 1
    assert sum(counts["layouts"].values()) >= 3


def test_blocks_are_linked_as_textract_links_them(analysis):
    blocks = analysis["Blocks"]
    by_id = {b["Id"]: b for b in blocks}
    (page,) = [b for b in blocks if b["BlockType"] == "PAGE"]
    page_children = [i for r in page["Relationships"] if r["Type"] == "CHILD" for i in r["Ids"]]
    assert len(page_children) == len(set(page_children))
    # every block of a page-level kind, and every layout element, is a CHILD of its PAGE
    expected = {
        b["Id"] for b in blocks if b["BlockType"] in PAGE_LEVEL or b["BlockType"].startswith("LAYOUT_")
    }
    assert set(page_children) == expected
    assert {by_id[i]["BlockType"] for i in page_children} >= {
        "LINE",
        "TABLE",
        "KEY_VALUE_SET",
        "QUERY",
        "QUERY_RESULT",
        "LAYOUT_TABLE",
    }
    for b in blocks:
        assert len(b.get("Geometry", {"Polygon": [0] * 4})["Polygon"]) == 4, b["BlockType"]
    # every LINE is the child of exactly one layout element (a list's items hold their lines)
    owners = Counter(
        i
        for b in blocks
        if b["BlockType"].startswith("LAYOUT_") and b["BlockType"] != "LAYOUT_LIST"
        for r in b["Relationships"]
        for i in r["Ids"]
    )
    lines = {b["Id"] for b in blocks if b["BlockType"] == "LINE"}
    assert set(owners) == lines and set(owners.values()) == {1}


def test_textractor_reads_what_the_blocks_hold(analysis):
    counts = raw_counts(analysis["Blocks"])
    doc = TextractorDocument.open(copy.deepcopy(analysis))
    assert len(doc.pages) == 1
    assert len(doc.lines) == counts["lines"]
    assert len(doc.key_values) == counts["keys"]
    assert len(doc.tables) == counts["tables"]
    assert sum(len(t.table_cells) for t in doc.tables) == counts["cells"]
    assert len(doc.queries) == counts["queries"]
    assert {q.query: q.result.answer for q in doc.queries if q.result} == counts["answers"]


def test_textractor_reads_the_layout(textract):
    resp = textract.analyze_document(
        Document={"Bytes": (SAMPLES / "invoice_northwind.png").read_bytes()}, FeatureTypes=["LAYOUT"]
    )
    counts = raw_counts(resp["Blocks"])
    doc = response_parser.parse(copy.deepcopy(resp))
    assert Counter(layout.layout_type for layout in doc.layouts) == counts["layouts"]
    # the linearised text has every line, in reading order (textractor walks the layout tree)
    text = doc.get_text()
    lines = [b["Text"] for b in resp["Blocks"] if b["BlockType"] == "LINE"]
    assert lines and [line for line in lines if line not in text] == []
    title = next(b for b in resp["Blocks"] if b["BlockType"] == "LAYOUT_TITLE")
    (title_line,) = title["Relationships"][0]["Ids"]
    assert next(b for b in resp["Blocks"] if b["Id"] == title_line)["Text"] == "NORTHWIND TRADING LTD"


def test_trp_and_trp2_read_what_the_blocks_hold(analysis):
    counts = raw_counts(analysis["Blocks"])
    trp_page = TrpDocument(copy.deepcopy(analysis)).pages[0]
    assert len(trp_page.lines) == counts["lines"]
    assert len(trp_page.form.fields) == counts["keys"]
    assert len(trp_page.tables) == counts["tables"]
    assert sum(len(row.cells) for t in trp_page.tables for row in t.rows) == counts["cells"]

    t_doc = TDocumentSchema().load(copy.deepcopy(analysis))
    (page,) = t_doc.pages
    assert len(t_doc.lines(page)) == counts["lines"]
    assert len(t_doc.keys(page)) == counts["keys"]
    assert len(t_doc.tables(page)) == counts["tables"]
    assert len(t_doc.queries(page)) == counts["queries"]
    answers = {text: answer for text, _alias, answer in t_doc.get_query_answers(page) if answer}
    assert answers == counts["answers"]


def test_prettyprinter_prints_what_the_blocks_hold(analysis):
    counts = raw_counts(analysis["Blocks"])
    t_doc = TDocumentSchema().load(copy.deepcopy(analysis))
    (forms,) = convert_form_to_list_trp2(t_doc)
    assert len(forms) == counts["keys"]
    (queries,) = convert_queries_to_list_trp2(t_doc)
    assert len(queries) == counts["queries"]
    assert {row[3] for row in queries if row[3]} == set(counts["answers"].values())
    printed = get_lines_string(copy.deepcopy(analysis)).splitlines()
    assert len([ln for ln in printed if ln.strip()]) == counts["lines"]
    # the layout linearised (tables as grids, so a LINE across two cells is split): every word
    (layout_text,) = get_text_from_layout_json(copy.deepcopy(analysis)).values()
    words = [b["Text"] for b in analysis["Blocks"] if b["BlockType"] == "WORD"]
    assert words and [w for w in words if w not in layout_text] == []


def test_async_analysis_pages_read_by_textractor_and_trp2(twin, textract, bucket):
    """GetDocumentAnalysis of a two-page PDF, its pages of results put together as textractor's
    and trp2's users do: both libraries find each page's blocks."""
    twin.client("s3").put_object(
        Bucket=bucket, Key="two.pdf", Body=(SAMPLES / "receipts_two_pages.pdf").read_bytes()
    )
    job = textract.start_document_analysis(
        DocumentLocation={"S3Object": {"Bucket": bucket, "Name": "two.pdf"}},
        FeatureTypes=["FORMS", "TABLES", "LAYOUT"],
    )["JobId"]
    blocks, token, resp = [], None, {}
    for _ in range(600):
        resp = textract.get_document_analysis(
            JobId=job, MaxResults=100, **({"NextToken": token} if token else {})
        )
        if resp["JobStatus"] == "IN_PROGRESS":
            time.sleep(0.5)
            continue
        blocks += resp["Blocks"]
        token = resp.get("NextToken")
        if not token:
            break
    assert resp["JobStatus"] == "SUCCEEDED"
    whole = {"DocumentMetadata": resp["DocumentMetadata"], "Blocks": blocks}
    doc = TextractorDocument.open(copy.deepcopy(whole))
    assert len(doc.pages) == 2
    t_doc = TDocumentSchema().load(copy.deepcopy(whole))
    for number, (page, t_page) in enumerate(zip(doc.pages, t_doc.pages, strict=True), start=1):
        counts = raw_counts([b for b in blocks if b.get("Page") == number])
        assert counts["lines"] > 0
        assert len(page.lines) == len(t_doc.lines(t_page)) == counts["lines"]
        assert len(page.key_values) == len(t_doc.keys(t_page)) == counts["keys"]
        assert len(page.tables) == len(t_doc.tables(t_page)) == counts["tables"]


def test_analyze_expense_read_by_textractor_and_trp2(textract):
    resp = textract.analyze_expense(Document={"Bytes": (SAMPLES / "receipt_grocery.jpg").read_bytes()})
    resp.pop("ResponseMetadata", None)
    (raw,) = resp["ExpenseDocuments"]
    raw_items = sum(len(g["LineItems"]) for g in raw["LineItemGroups"])
    assert raw["SummaryFields"] and raw_items
    doc = response_parser.parser_analyze_expense_response(copy.deepcopy(resp))
    (expense,) = doc.expense_documents
    assert len(expense.summary_fields_list) == len(raw["SummaryFields"])
    assert sum(len(g.rows) for g in expense.line_items_groups) == raw_items
    assert len(doc.lines) == sum(b["BlockType"] == "LINE" for b in raw["Blocks"])
    (t_exp,) = TAnalyzeExpenseDocumentSchema().load(copy.deepcopy(resp)).expenses_documents
    assert len(t_exp.summaryfields) == len(raw["SummaryFields"])
    assert sum(len(g.lineitems) for g in t_exp.lineitemgroups) == raw_items
