"""A Textract AnalyzeExpense / GetExpenseAnalysis response as typed, read-only objects.

The classes follow botocore's ``textract`` service model, shape by shape (``ExpenseDocument``,
``ExpenseField``, ``ExpenseType``, ``ExpenseDetection``, ``ExpenseCurrency``,
``ExpenseGroupProperty``, ``LineItemGroup``, ``LineItemFields``, ``DocumentMetadata``), and read
every member those shapes have, so whatever AnalyzeExpense may return is accepted: a ``Currency``
on a line-item field, ``GroupProperties``, the ``Blocks`` of an ExpenseDocument (kept as the raw
dicts; the normaliser does not need them). Members a newer service model adds are ignored, as
botocore's own parser passes them through. A member of the wrong JSON type (a list that is not a
list, a number that is not a number) raises :class:`ExpenseResponseError` naming where it is.

It replaces amazon-textract-response-parser's ``trp.trp2_expense`` in the provider: that schema
refuses members it does not know (``Currency`` on line-item fields), and its marshmallow<4 pin does
not install under Amazon MWAA 3.3.1's constraints (marshmallow 4.3.0). Pure Python, no imports
beyond the standard library.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class ExpenseResponseError(ValueError):
    """The response does not have the shape botocore's textract model gives AnalyzeExpense."""


def _member(data: Mapping, name: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = data.get(name)
    if value is None:
        return None
    # bool is an int in Python; the model's integers and floats are never booleans
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ExpenseResponseError(f"{where}.{name} is {type(value).__name__}, not {_kind_name(kind)}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def _structure(data: Any, where: str) -> Mapping:
    if not isinstance(data, Mapping):
        raise ExpenseResponseError(f"{where} is {type(data).__name__}, not a structure")
    return data


def _list(data: Mapping, name: str, where: str) -> list:
    return _member(data, name, list, where) or []


def _number(data: Mapping, name: str, where: str) -> float | None:
    value = _member(data, name, (int, float), where)
    return None if value is None else float(value)


def _integer(data: Mapping, name: str, where: str) -> int | None:
    return _member(data, name, int, where)


def _string(data: Mapping, name: str, where: str) -> str | None:
    return _member(data, name, str, where)


@dataclass(frozen=True)
class ExpenseType:
    """``ExpenseType``: the normalised field type (``TOTAL``, ``ITEM``, ``OTHER``, ...)."""

    text: str | None = None
    confidence: float | None = None

    @classmethod
    def from_wire(cls, data: Any, where: str) -> ExpenseType:
        data = _structure(data, where)
        return cls(_string(data, "Text", where), _number(data, "Confidence", where))


@dataclass(frozen=True)
class ExpenseDetection:
    """``ExpenseDetection``: a label or a value as read on the page (``Geometry`` kept raw)."""

    text: str | None = None
    confidence: float | None = None
    geometry: Mapping | None = None

    @classmethod
    def from_wire(cls, data: Any, where: str) -> ExpenseDetection:
        data = _structure(data, where)
        return cls(
            _string(data, "Text", where),
            _number(data, "Confidence", where),
            _member(data, "Geometry", Mapping, where),
        )


@dataclass(frozen=True)
class ExpenseCurrency:
    """``ExpenseCurrency``: the ISO code (``USD``, ``MYR``, ...) of a money field."""

    code: str | None = None
    confidence: float | None = None

    @classmethod
    def from_wire(cls, data: Any, where: str) -> ExpenseCurrency:
        data = _structure(data, where)
        return cls(_string(data, "Code", where), _number(data, "Confidence", where))


@dataclass(frozen=True)
class ExpenseGroupProperty:
    """``ExpenseGroupProperty``: the group a field belongs to (``VENDOR``, ``RECEIVER_BILL_TO``, ...)."""

    types: tuple[str, ...] = ()
    id: str | None = None

    @classmethod
    def from_wire(cls, data: Any, where: str) -> ExpenseGroupProperty:
        data = _structure(data, where)
        types = _list(data, "Types", where)
        for i, value in enumerate(types):
            if not isinstance(value, str):
                raise ExpenseResponseError(f"{where}.Types[{i}] is {type(value).__name__}, not str")
        return cls(tuple(types), _string(data, "Id", where))


@dataclass(frozen=True)
class ExpenseField:
    """``ExpenseField``: a summary field or a line-item cell."""

    type: ExpenseType | None = None
    label: ExpenseDetection | None = None
    value: ExpenseDetection | None = None
    page_number: int | None = None
    currency: ExpenseCurrency | None = None
    group_properties: tuple[ExpenseGroupProperty, ...] = ()

    @classmethod
    def from_wire(cls, data: Any, where: str) -> ExpenseField:
        data = _structure(data, where)

        def nested(name, kind):
            raw = data.get(name)
            return None if raw is None else kind.from_wire(raw, f"{where}.{name}")

        return cls(
            type=nested("Type", ExpenseType),
            label=nested("LabelDetection", ExpenseDetection),
            value=nested("ValueDetection", ExpenseDetection),
            page_number=_integer(data, "PageNumber", where),
            currency=nested("Currency", ExpenseCurrency),
            group_properties=tuple(
                ExpenseGroupProperty.from_wire(g, f"{where}.GroupProperties[{i}]")
                for i, g in enumerate(_list(data, "GroupProperties", where))
            ),
        )

    @property
    def type_text(self) -> str | None:
        return self.type.text if self.type else None

    @property
    def value_text(self) -> str:
        """The value's text, stripped; ``""`` when there is none."""
        return (self.value.text or "").strip() if self.value else ""


@dataclass(frozen=True)
class LineItemFields:
    """``LineItemFields``: one row of a line item group."""

    fields: tuple[ExpenseField, ...] = ()

    @classmethod
    def from_wire(cls, data: Any, where: str) -> LineItemFields:
        data = _structure(data, where)
        cells = _list(data, "LineItemExpenseFields", where)
        return cls(
            tuple(
                ExpenseField.from_wire(c, f"{where}.LineItemExpenseFields[{i}]") for i, c in enumerate(cells)
            )
        )


@dataclass(frozen=True)
class LineItemGroup:
    """``LineItemGroup``: a table of line items."""

    index: int | None = None
    line_items: tuple[LineItemFields, ...] = ()

    @classmethod
    def from_wire(cls, data: Any, where: str) -> LineItemGroup:
        data = _structure(data, where)
        items = _list(data, "LineItems", where)
        return cls(
            _integer(data, "LineItemGroupIndex", where),
            tuple(LineItemFields.from_wire(r, f"{where}.LineItems[{i}]") for i, r in enumerate(items)),
        )


@dataclass(frozen=True)
class ExpenseDocument:
    """``ExpenseDocument``: one invoice or receipt (a PDF may hold several)."""

    index: int | None = None
    summary_fields: tuple[ExpenseField, ...] = ()
    line_item_groups: tuple[LineItemGroup, ...] = ()
    blocks: tuple[Mapping, ...] = ()

    @classmethod
    def from_wire(cls, data: Any, where: str) -> ExpenseDocument:
        data = _structure(data, where)
        return cls(
            _integer(data, "ExpenseIndex", where),
            tuple(
                ExpenseField.from_wire(f, f"{where}.SummaryFields[{i}]")
                for i, f in enumerate(_list(data, "SummaryFields", where))
            ),
            tuple(
                LineItemGroup.from_wire(g, f"{where}.LineItemGroups[{i}]")
                for i, g in enumerate(_list(data, "LineItemGroups", where))
            ),
            tuple(_structure(b, f"{where}.Blocks[{i}]") for i, b in enumerate(_list(data, "Blocks", where))),
        )


@dataclass(frozen=True)
class AnalyzeExpenseResponse:
    """``AnalyzeExpenseResponse`` (or the pages of ``GetExpenseAnalysisResponse`` merged)."""

    pages: int | None = None
    documents: tuple[ExpenseDocument, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)  # JobStatus, model version, ...

    @classmethod
    def from_wire(cls, data: Any) -> AnalyzeExpenseResponse:
        where = "AnalyzeExpense response"
        data = _structure(data, where)
        metadata = data.get("DocumentMetadata")
        pages = None
        if metadata is not None:
            pages = _integer(
                _structure(metadata, f"{where}.DocumentMetadata"), "Pages", f"{where}.DocumentMetadata"
            )
        documents = tuple(
            ExpenseDocument.from_wire(d, f"ExpenseDocuments[{i}]")
            for i, d in enumerate(_list(data, "ExpenseDocuments", where))
        )
        extra = {k: v for k, v in data.items() if k not in ("DocumentMetadata", "ExpenseDocuments")}
        return cls(pages, documents, extra)
