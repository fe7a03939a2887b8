"""The provider reads AnalyzeExpense responses by botocore's textract service model: a response that
fills every member the model's output shape has (built here from the model by a generic shape walker,
not written by hand) is accepted, and the values the normaliser reports come through unchanged.
amazon-textract-response-parser (trp), which the provider used before, refuses such a response; it
stays a test-only reference (tests/unit/test_expense_utils.py compares the two on the twin's
responses)."""

from __future__ import annotations

import copy
import csv
import io
import itertools

import botocore.session
import pytest
from aws_ml_provider.utils import expense as ex
from aws_ml_provider.utils.expense_response import AnalyzeExpenseResponse, ExpenseResponseError
from botocore.validate import ParamValidator

MODEL = botocore.session.get_session().get_service_model("textract")


def fill(shape, counter=None, depth: int = 0):
    """A value of a botocore shape with every optional member present: structures get all their
    members, lists two elements, maps one entry, strings a unique text (the first enum value where
    the shape is an enum), numbers a unique value."""
    counter = counter if counter is not None else itertools.count(1)
    assert depth < 20, f"recursive shape {shape.name}"
    kind = shape.type_name
    if kind == "structure":
        return {name: fill(member, counter, depth + 1) for name, member in shape.members.items()}
    if kind == "list":
        return [fill(shape.member, counter, depth + 1) for _ in range(2)]
    if kind == "map":
        return {fill(shape.key, counter, depth + 1): fill(shape.value, counter, depth + 1)}
    n = next(counter)
    if kind == "string":
        return shape.enum[0] if shape.enum else f"{shape.name}-{n}"
    if kind in ("integer", "long"):
        return n
    if kind in ("float", "double"):
        return round(min(99.0, 1.0 + n / 7), 4)  # a Percent, distinct per member
    if kind == "boolean":
        return True
    if kind == "blob":
        return b"blob"
    if kind == "timestamp":
        return "2024-01-01T00:00:00Z"
    raise AssertionError(f"shape type {kind} of {shape.name} not handled")


def missing_members(value, shape, where: str = "") -> list[str]:
    """The members of ``shape`` (recursively) that ``value`` lacks: the walker's own check."""
    if shape.type_name == "structure":
        out = [f"{where}.{name}" for name in shape.members if name not in value]
        for name, member in shape.members.items():
            if name in value:
                out += missing_members(value[name], member, f"{where}.{name}")
        return out
    if shape.type_name == "list":
        if not value:
            return [f"{where}[]"]
        return [m for i, v in enumerate(value) for m in missing_members(v, shape.member, f"{where}[{i}]")]
    return []


def full_response(operation: str) -> dict:
    shape = MODEL.operation_model(operation).output_shape
    response = fill(shape)
    assert missing_members(response, shape) == []
    report = ParamValidator().validate(response, shape)
    assert not report.has_errors(), report.generate_report()
    # make the first summary field a TOTAL and the first line-item cells an ITEM and a PRICE, so the
    # normaliser reports them; every other member keeps the walker's value
    for document in response["ExpenseDocuments"]:
        document["SummaryFields"][0]["Type"]["Text"] = "TOTAL"
        document["SummaryFields"][0]["ValueDetection"]["Text"] = "RM 1,234.50"
        cells = document["LineItemGroups"][0]["LineItems"][0]["LineItemExpenseFields"]
        cells[0]["Type"]["Text"] = "ITEM"
        cells[1]["Type"]["Text"] = "PRICE"
        cells[1]["ValueDetection"]["Text"] = "12.50"
    return response


@pytest.mark.parametrize("operation", ["AnalyzeExpense", "GetExpenseAnalysis"])
def test_a_response_with_every_member_of_the_model_is_read_and_its_values_kept(operation):
    response = full_response(operation)
    norm = ex.normalise_expense(response, document_id="d", source_uri="s3://b/k")
    documents = response["ExpenseDocuments"]
    assert norm["pages"] == response["DocumentMetadata"]["Pages"]
    assert norm["expense_count"] == len(documents) == 2
    for position, document in enumerate(documents, start=1):
        summary = document["SummaryFields"][0]
        total = norm["fields"][ex.field_key("TOTAL", position)]
        assert total["value"] == "RM 1,234.50" and total["amount"] == "1234.50"
        assert total["confidence"] == round(
            min(summary["Type"]["Confidence"], summary["ValueDetection"]["Confidence"]), 1
        )
        assert total["label"] == summary["LabelDetection"]["Text"]
        assert total["page"] == summary["PageNumber"]
        assert total["expense_index"] == document["ExpenseIndex"]
        assert total["currency"] == summary["Currency"]["Code"]
        assert total["groups"] == [{"types": g["Types"], "id": g["Id"]} for g in summary["GroupProperties"]]
        # the second summary field has the walker's type text: not one the DAG reports
        assert len([k for k in norm["fields"] if ex.split_key(k)[1] == position]) == 1
    rows = [item for item in norm["line_items"] if item["expense_index"] == 1]
    groups = documents[0]["LineItemGroups"]
    assert len(rows) == sum(len(g["LineItems"]) for g in groups)  # every row of every group
    first = rows[0]
    cells = groups[0]["LineItems"][0]["LineItemExpenseFields"]
    assert first["group"] == groups[0]["LineItemGroupIndex"] and first["row"] == 0
    assert first["ITEM"] == cells[0]["ValueDetection"]["Text"]
    assert first["PRICE"] == "12.50" and first["amount"] == "12.50"
    assert first["currency"] == cells[1]["Currency"]["Code"]  # Currency on a line-item field
    assert first["page"] == cells[0]["PageNumber"]
    assert first["confidence"] == min(
        round(min(c["Type"]["Confidence"], c["ValueDetection"]["Confidence"]), 1) for c in cells
    )
    # the outputs print the same response
    csv_text, grid = ex.pretty_outputs(response)
    table = list(csv.reader(io.StringIO(csv_text)))
    label = documents[0]["SummaryFields"][0]["LabelDetection"]["Text"]
    assert [f"{label}(TOTAL)", "RM 1,234.50"] in table
    assert ["ITEM", "PRICE"] == table[table.index([]) + 1]
    assert "RM 1,234.50" in grid and "12.50" in grid


def test_trp_refused_what_the_model_allows():
    """Why the provider no longer reads with trp: its schema rejects a Currency on a line-item
    field (and GroupProperties there), which the model allows and AnalyzeExpense returns."""
    from marshmallow import ValidationError
    from trp.trp2_expense import TAnalyzeExpenseDocumentSchema

    response = full_response("AnalyzeExpense")
    with pytest.raises(ValidationError) as refused:
        TAnalyzeExpenseDocumentSchema().load(response)
    assert "Currency" in str(refused.value)


def test_a_member_of_the_wrong_type_is_named():
    response = full_response("AnalyzeExpense")
    broken = copy.deepcopy(response)
    broken["ExpenseDocuments"][1]["LineItemGroups"][0]["LineItems"][1]["LineItemExpenseFields"][0][
        "PageNumber"
    ] = "1"
    with pytest.raises(
        ExpenseResponseError, match=r"ExpenseDocuments\[1\].*LineItems\[1\].*PageNumber is str"
    ):
        ex.normalise_expense(broken)
    broken = copy.deepcopy(response)
    broken["ExpenseDocuments"][0]["SummaryFields"] = {"Type": {}}
    with pytest.raises(ExpenseResponseError, match=r"ExpenseDocuments\[0\].SummaryFields is dict, not list"):
        AnalyzeExpenseResponse.from_wire(broken)
    broken = copy.deepcopy(response)
    broken["ExpenseDocuments"][0]["SummaryFields"][0]["Currency"]["Confidence"] = True
    with pytest.raises(ExpenseResponseError, match="Currency.Confidence is bool"):
        AnalyzeExpenseResponse.from_wire(broken)


def test_members_newer_than_the_model_and_empty_responses_are_accepted():
    response = full_response("AnalyzeExpense")
    response["SomethingNew"] = {"x": 1}
    response["ExpenseDocuments"][0]["SummaryFields"][0]["NewMember"] = [1, 2]
    assert ex.normalise_expense(response)["fields"]["TOTAL"]["value"] == "RM 1,234.50"
    empty = ex.normalise_expense({"ExpenseDocuments": []})
    assert (empty["fields"], empty["line_items"], empty["expense_count"], empty["pages"]) == ({}, [], 1, None)
    assert ex.pretty_outputs({"ExpenseDocuments": []}) == ("\r\n", "")
