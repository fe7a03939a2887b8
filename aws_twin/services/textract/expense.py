"""AnalyzeExpense on OCR lines: layout heuristics for the summary fields and the line items.

General rules, no per-vendor templates:

- VENDOR_NAME: a row near the top with a company suffix (SDN BHD, LTD, INC, ...), a trade word
  (RESTAURANT, TRADING, ...) or else the first prominent text row; registration numbers are cut.
- VENDOR_ADDRESS: the rows after the vendor until a phone / tax-id / document-number row.
- INVOICE_RECEIPT_DATE: the first valid date, preferring one labelled "Date" (never an expiry).
- INVOICE_RECEIPT_ID: the value after Invoice/Receipt/Bill/Slip No labels.
- TOTAL / SUBTOTAL / TAX: rows whose label says so, with the amount on the same row (or the next);
  for TOTAL the final payable amount wins (grand / nett / payable / after rounding, else the last
  total before the tax summary).
- Line items: rows with an amount between the item header and the first summary row.

A field's value confidence is the OCR's confidence in the value's words times the heuristic's
certainty, so a faint or blurred value really comes out low.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field

from .layout import Row, Span, amounts, dates, lines_span, row_span, rows
from .ocr import OcrPage


@dataclass
class Field:
    type: str
    value: Span
    label: Span | None = None
    certainty: float = 0.9
    currency: str | None = None
    group: str | None = None  # "VENDOR" / "RECEIVER"

    def to_wire(self, page_number: int, group_ids: dict[str, str]) -> dict:
        out = {
            "Type": {"Text": self.type, "Confidence": round(self.certainty * 100, 4)},
            "ValueDetection": {
                "Text": self.value.text,
                "Geometry": self.value.geometry,
                "Confidence": round(self.value.confidence * self.certainty, 4),
            },
            "PageNumber": page_number,
        }
        if self.label is not None and self.label.words:
            out["LabelDetection"] = {
                "Text": self.label.text,
                "Geometry": self.label.geometry,
                "Confidence": round(self.label.confidence, 4),
            }
        if self.currency:
            out["Currency"] = {"Code": self.currency, "Confidence": round(80.0 * self.certainty, 4)}
        if self.group:
            types = [self.group] if self.group == "VENDOR" else [self.group, f"{self.group}_BILL_TO"]
            out["GroupProperties"] = [{"Types": types, "Id": group_ids[self.group]}]
        return out


@dataclass
class Extraction:
    summary: list[Field] = field(default_factory=list)
    items: list[list[Field]] = field(default_factory=list)

    def get(self, type_: str) -> Field | None:
        return next((f for f in self.summary if f.type == type_), None)


def compact(text: str) -> str:
    """Lower-case letters only: OCR drops and adds spaces and dots freely."""
    return re.sub(r"[^a-z]", "", text.lower().replace("0", "o"))


# ---- keyword sets ---------------------------------------------------------------------------
STRONG_SUFFIX = re.compile(
    r"(sdnbhd|sdnbh|bhd|berhad|sb|ltd|limited|inc|llc|corp|corporation|gmbh|plc|pty|company|co)$"
)
TRADE_WORDS = (
    "enterprise",
    "trading",
    "restaurant",
    "restoran",
    "cafe",
    "bakery",
    "bakeries",
    "stationery",
    "hardware",
    "mart",
    "shop",
    "store",
    "pharmacy",
    "kedai",
    "seafood",
    "pizza",
    "supermarket",
    "electrical",
    "supplies",
    "petrol",
    "motor",
    "books",
    "kitchen",
    "bistro",
    "market",
    "retail",
)
NOT_VENDOR = (
    "taxinvoice",
    "invoice",
    "receipt",
    "welcome",
    "cashsale",
    "official",
    "simplified",
    "guestcheck",
    "copy",
    "tableno",
    "date",
    "tel",
    "fax",
    "gst",
    "shoppinghours",
    "cashbill",
)
STOP_ADDRESS = re.compile(
    r"(^|[^a-z])(tel|te1|fax|phone|ph|hp|h/p|mobile|gst|sst|vat|reg|co\.?\s?no|company no|invoice|inv|receipt|"
    r"date|time|cashier|email|e-mail|www|http|tax|bill|slip|table|order|shopping|opening|hours|"
    r"customer|counter|terminal|pos|doc)([^a-z]|$)",
    re.I,
)
ADDRESS_HINT = re.compile(
    r"(jalan|jln|lorong|taman|lot|no\.?\s?\d|road|rd\.?|street|st\.|avenue|ave|blvd|lane|floor|flr|block|"
    r"level|suite|unit|kawasan|bandar|batu|(?<!\d)\d{5}(?!\d)|selangor|johor|kuala|lumpur|malaysia|city|square|"
    r"plaza|park|centre|center|building|seksyen|section)",
    re.I,
)
REG_ONLY = re.compile(
    r"^[\s(（]*(?:co\.?\s*(?:reg\.?)?\s*no\.?[:.]?\s*)?[\dA-Z]{0,3}\d{4,}[-\s]?[A-Z]?[\s)）.]*$", re.I
)
REG_NUMBER = re.compile(r"[(（][^()（）]*\d{4,}[^()（）]*(?:[)）]|$)|\b\d{5,}-[A-Z]\b", re.I)
STOP_COMPACT = re.compile(
    r"^(tel|fax|gst|sst|tax|vat|invoice|receipt|regno|coreg|cono|companyno|companyreg|date|time|cashier)"
    r"|gstid|gstreg|gstno|gstref|idno|taxinvoice|regno|email|website"
)
SUMMARY_SECTION = re.compile(r"(gst|tax|vat|sst)(summary|analysis|code)")
TOTAL_WORD = re.compile(r"[tli]ota[li]")
PAYMENT = (
    "received",
    "tendered",
    "cash",
    "change",
    "visa",
    "master",
    "card",
    "tender",
    "paid",
    "debit",
    "credit",
    "payment",
    "edc",
)


def _total_priority(label: str) -> int:
    """How surely a row label names the final total (0: not a total)."""
    c = compact(label)
    if not c:
        return 0
    strong = (
        "grandtotal",
        "totalpayable",
        "amountpayable",
        "amountdue",
        "balancedue",
        "totaldue",
        "nettotal",
        "netttotal",
        "finaltotal",
        "roundedtotal",
        "totalrounded",
        "totalafter",
        "totalamountpayable",
        "totaltopay",
    )
    if re.match(r"(gst|sst|tax|vat|service|serv)", c):
        return 0  # "GST 6% included in total"
    if any(k in c for k in strong) or re.match(r"net+(amt|amount)", c):
        return 3
    if not TOTAL_WORD.search(c):
        return 0
    if re.search(r"[tli]ota[li].*(after|atler|adj)", c):
        return 3
    excluded = (
        "sub",
        "qty",
        "quantity",
        "item",
        "count",
        "saving",
        "discount",
        "excl",
        "supplies",
        "point",
        "stamp",
        "tender",
        "weight",
        "unit",
    )
    if any(k in c for k in excluded):
        return 0
    if re.search(r"total(tax|gst|sst|vat)|(tax|gst|sst|vat)total", c) and "incl" not in c:
        return 0
    return 2


def _subtotal_priority(label: str) -> int:
    c = compact(label)
    if "subtotal" in c:
        return 3
    if "total" in c and ("excl" in c or "beforetax" in c or "beforegst" in c):
        return 2
    return 0


def _tax_priority(label: str) -> int:
    c = compact(label)
    if not re.search(r"gst|sst|tax|vat|6st|cst", c):
        return 0
    if re.search(r"(gst|tax|sst|vat)(id|reg|no|ref|invoice|summary|code|rate|excl|incl)", c):
        if not re.search(r"(gst|tax|sst|vat)(payable|amount|amt)", c):
            return 0
    if re.search(r"incl|inclusive|included", c):
        return 0
    if "total" in c and not re.search(r"total(tax|gst|sst|vat)|(tax|gst|sst|vat)total", c):
        return 0
    return 2 if re.search(r"payable|amount|amt|total|@|\d", label.lower()) else 1


# ---- the extraction -------------------------------------------------------------------------
def analyze_page(page: OcrPage) -> Extraction:
    rws = rows(page)
    out = Extraction()
    if not rws:
        return out
    summary_start = next(
        (i for i, r in enumerate(rws) if SUMMARY_SECTION.search(compact(r.text)) and i > 2), len(rws)
    )
    vendor_idx = _vendor(rws, out)
    _address(rws, vendor_idx, out)
    _receiver(page, out)
    _date(rws, out)
    _invoice_id(rws, out)
    _phone_and_tax_id(rws, vendor_idx, out)
    totals_start = _amount_fields(rws, summary_start, out)
    _line_items(rws, totals_start, out)
    return out


def _vendor(rws: list[Row], out: Extraction) -> list[int]:
    limit = min(len(rws), max(6, len(rws) // 3))
    best: tuple[float, int] | None = None
    # where the address / contact block starts: a name is above it
    boundary = next(
        (
            i
            for i, r in enumerate(rws[:limit])
            if ADDRESS_HINT.search(r.text) or STOP_COMPACT.search(compact(r.text))
        ),
        limit,
    )
    texts = {}
    for i, row in enumerate(rws[:limit]):
        # a title beside the name ("ACME LTD        INVOICE") is not part of it
        kept = [ln for ln in row.lines if compact(ln.text) not in NOT_VENDOR]
        if not kept:
            continue
        texts[i] = kept
        text = _cut_at_reg(" ".join(ln.text for ln in kept))
        c = compact(text).replace("shopping", "")
        if len(c) < 3 or row.confidence < 60:
            continue
        if any(c.startswith(k) for k in NOT_VENDOR) or STOP_ADDRESS.search(row.text) and not _has_suffix(c):
            continue
        letters = sum(ch.isalpha() for ch in text)
        if letters < 0.5 * len(text.replace(" ", "")):
            continue
        if ADDRESS_HINT.search(text) and not _has_suffix(c) and not any(k in c for k in TRADE_WORDS):
            continue
        if _has_suffix(c):
            score = 3.0
        elif any(k in c for k in TRADE_WORDS):
            score = 2.0
        else:
            score = 1.0 + (0.3 if text.strip().isupper() else 0.0)
        score -= 0.05 * i
        if i > boundary:
            score -= 1.0
        if best is None or score > best[0]:
            best = (score, i)
    if best is None:
        return []
    i = best[1]
    picked = [i]
    c = compact(REG_NUMBER.sub(" ", rws[i].text))
    # a suffix alone on its row ("CO. (M) SDN BHD"): the name is on the row above
    if i > 0 and re.fullmatch(r"(co|company)?m?(sdnbhd|bhd|berhad|ltd|limited|inc|sb)", c):
        picked = [i - 1, i]
    elif i + 1 < len(rws) and re.fullmatch(
        r"(co|company)?m?(sdnbhd|bhd|berhad|ltd|limited|inc|sb)",
        compact(REG_NUMBER.sub(" ", rws[i + 1].text)),
    ):
        picked = [i, i + 1]
    picked_lines = [ln for k in picked for ln in texts.get(k, rws[k].lines)]
    span = lines_span(picked_lines)
    name = fix_ocr_letters(_clean_vendor(" ".join(_cut_at_reg(ln.text) for ln in picked_lines)))
    certainty = 0.95 if best[0] >= 2.5 else 0.85 if best[0] >= 1.5 else 0.7
    out.summary.append(Field("VENDOR_NAME", Span(name, span.words), None, certainty, group="VENDOR"))
    return picked


def _has_suffix(c: str) -> bool:
    return bool(STRONG_SUFFIX.search(c)) or "sdnbhd" in c


def _cut_at_reg(text: str) -> str:
    """A company name ends at its registration number: "NAME SB (306295-X) FKA ..." -> "NAME SB"."""
    m = REG_NUMBER.search(text)
    if m and re.search(r"[A-Za-z]{2}", text[: m.start()]):
        return text[: m.start()]
    return text


def fix_ocr_letters(text: str) -> str:
    """Undo the OCR's usual digit/letter swaps inside words: "C0." -> "CO.", "L0T" -> "LOT", "4115O" -> "41150"."""

    def fix(tok: str) -> str:
        letters = sum(ch.isalpha() for ch in tok)
        digits = [ch for ch in tok if ch.isdigit()]
        if letters >= 1 and digits and set(digits) == {"0"} and len(digits) <= 2:
            return tok.replace("0", "O")
        if len(digits) >= 3 and re.fullmatch(r"[\dOo]+[,.]?", tok):
            return tok.replace("O", "0").replace("o", "0")
        return tok

    text = " ".join(fix(t) for t in text.split(" "))
    return re.sub(r"\bSDN\.?\s*BH\b\.?$", "SDN BHD", text)


def _clean_vendor(text: str) -> str:
    text = REG_NUMBER.sub(" ", text)
    # "Owned by: NAME SDN BHD" / "Dimiliki: ..."
    m = re.match(r"^\s*[A-Za-z ]{2,20}:\s*(.+)$", text)
    if m and _has_suffix(compact(m.group(1))):
        text = m.group(1)
    return re.sub(r"\s+", " ", text).strip(" -:,")


def _address(rws: list[Row], vendor_idx: list[int], out: Extraction) -> None:
    start = (max(vendor_idx) + 1) if vendor_idx else 0
    picked = _address_rows(rws[start : start + 8])
    if not picked and vendor_idx:
        picked = _address_rows(rws[: min(vendor_idx)])  # the address printed above the name
    if not picked:
        return
    words = [w for r in picked for w in r.words]
    text = " ".join(REG_NUMBER.sub(" ", r.text).strip() for r in picked)
    text = fix_ocr_letters(re.sub(r"^\s*(?:hq\s*)?(?:add|addr|address)\s*[:.]\s*", "", text, flags=re.I))
    text = re.sub(r"\s+", " ", text).strip(" ,")
    hints = sum(bool(ADDRESS_HINT.search(r.text)) for r in picked)
    certainty = 0.9 if hints >= 2 else 0.75
    out.summary.append(Field("VENDOR_ADDRESS", Span(text, words), None, certainty, group="VENDOR"))


def _address_rows(candidates: list[Row]) -> list[Row]:
    picked: list[Row] = []
    for row in candidates:
        text = re.sub(r"^\s*(?:hq\s*)?(?:add|addr|address)\s*[:.]\s*", "", row.text, flags=re.I)
        if REG_ONLY.match(REG_NUMBER.sub("", text).strip() or "0000") or not re.search(r"[A-Za-z]{2}", text):
            if picked:
                break
            continue
        if dates(text) and not ADDRESS_HINT.search(text):
            if picked:
                break
            continue
        if STOP_ADDRESS.search(text) or STOP_COMPACT.search(compact(text)) or amounts(text):
            if picked or amounts(text):
                break
            continue  # the contact block may come before the address
        if not picked and not ADDRESS_HINT.search(text):
            continue  # a branch or slogan line before the address proper
        picked.append(row)
        if len(picked) >= 5:
            break
    return picked


def _receiver(page: OcrPage, out: Extraction) -> None:
    lines = sorted(page.lines, key=lambda ln: ln.cy)
    for i, ln in enumerate(lines):
        m = re.match(r"^\s*(bill(?:ed)?\s*to|sold\s*to|ship\s*to|customer)\s*[:.]?\s*(.*)$", ln.text, re.I)
        if not m:
            continue
        block = [m.group(2)] if m.group(2).strip() else []
        block_lines = []
        bottom = ln.bottom
        for nxt in lines[i + 1 :]:
            if nxt.top - bottom > 1.6 * ln.height:
                break
            if abs(nxt.left - ln.left) > 0.06:
                continue
            if STOP_ADDRESS.search(nxt.text) and not ADDRESS_HINT.search(nxt.text):
                break
            block_lines.append(nxt)
            bottom = nxt.bottom
            if len(block_lines) >= 5:
                break
        if not block_lines and not block:
            return
        if block_lines:
            name_line = block_lines[0]
            out.summary.append(
                Field("RECEIVER_NAME", Span(name_line.text, name_line.words), None, 0.85, group="RECEIVER")
            )
            rest = block_lines[1:]
            if rest:
                span = lines_span(rest)
                out.summary.append(Field("RECEIVER_ADDRESS", span, None, 0.85, group="RECEIVER"))
        return


def _date(rws: list[Row], out: Extraction) -> None:
    best = None
    for i, row in enumerate(rws):
        text = row.text
        for d in dates(text):
            before = compact(text[: d.start])[-20:]
            score = 0.0
            if re.search(r"(date|tarikh|dated|dt)$", before) or before.endswith("date"):
                score += 2
            if re.search(r"(expir|exp|valid|due|birth|print)", compact(text)):
                score -= 3
            score -= 0.02 * i
            if best is None or score > best[0]:
                best = (score, row, d)
    if best is None:
        return
    score, row, d = best
    label = None
    m = re.search(r"(date|tarikh)\s*[:.]?\s*$", row.text[: d.start], re.I)
    if m:
        label = row_span(row, m.start(), m.end(), row.text[m.start() : m.end()].strip(" :"))
    value = row_span(row, d.start, d.end, d.text)
    out.summary.append(Field("INVOICE_RECEIPT_DATE", value, label, 0.95 if score >= 1 else 0.85))


ID_LABEL = re.compile(
    r"(?P<label>(?:tax\s*|cash\s*)?(?:invoice|inv0ice|invo1ce|inv|receipt|rcpt|bill|slip|doc(?:ument)?|order|check|"
    r"chk|trans(?:action)?)\s*(?:no|n0|num|number|#|id)?\.?)\s*[:#.：]?\s*(?P<val>[A-Z0-9][A-Z0-9\-/]*\d[A-Z0-9\-/]*)",
    re.I,
)


def _invoice_id(rws: list[Row], out: Extraction) -> None:
    order = ("invoice", "inv", "receipt", "rcpt", "bill", "slip", "doc", "order", "check", "chk", "trans")
    best = None
    for row in rws:
        for m in ID_LABEL.finditer(row.text):
            label = compact(m.group("label"))
            rank = next((k for k, w in enumerate(order) if label.startswith(w) or w in label), len(order))
            if "tax" in label and "invoice" in label and not re.search(r"(no|num|#)", m.group("label"), re.I):
                continue  # the "TAX INVOICE" title
            val = m.group("val")
            if len(val) < 3:
                continue
            if best is None or rank < best[0]:
                best = (rank, row, m)
    if best is None:
        return
    rank, row, m = best
    label = row_span(row, m.start("label"), m.end("label"), m.group("label").strip())
    value = row_span(row, m.start("val"), m.end("val"), m.group("val"))
    out.summary.append(Field("INVOICE_RECEIPT_ID", value, label, 0.93 if rank <= 3 else 0.8))


def _phone_and_tax_id(rws: list[Row], vendor_idx: list[int], out: Extraction) -> None:
    limit = min(len(rws), (max(vendor_idx) if vendor_idx else 0) + 10)
    for row in rws[:limit]:
        m = re.search(r"(?P<label>tel|te1|phone|ph)\s*[.:]?\s*(?P<val>\+?\d[\d\- ()/]{6,}\d)", row.text, re.I)
        if m and not out.get("VENDOR_PHONE"):
            out.summary.append(
                Field(
                    "VENDOR_PHONE",
                    row_span(row, m.start("val"), m.end("val"), m.group("val").strip()),
                    row_span(row, m.start("label"), m.end("label"), m.group("label")),
                    0.9,
                    group="VENDOR",
                )
            )
        m = re.search(
            r"(?P<label>gst\s*(?:id|reg|ref)?[\s.]*(?:no|n0)?)\s*[.:=]?\s*(?P<val>\d{8,})", row.text, re.I
        )
        if m and not out.get("VENDOR_GST_NUMBER"):
            out.summary.append(
                Field(
                    "VENDOR_GST_NUMBER",
                    row_span(row, m.start("val"), m.end("val"), m.group("val")),
                    row_span(row, m.start("label"), m.end("label"), m.group("label").strip()),
                    0.9,
                    group="VENDOR",
                )
            )


def _row_amount(rws: list[Row], i: int, label_end: int):
    """The amount for a label on row i: the last one right of the label, or the next row's."""
    row = rws[i]
    found = [a for a in amounts(row.text) if a.start >= label_end - 1]
    if found:
        return row, found[-1]
    if i + 1 < len(rws):
        nxt = rws[i + 1]
        if not re.search(r"[A-Za-z]{3}", re.sub(r"RM|MYR|USD|SR", "", nxt.text)):
            found = amounts(nxt.text)
            if found and nxt.top - row.bottom < 1.5 * (row.bottom - row.top):
                return nxt, found[-1]
    return None, None


def _label_end(row: Row) -> int:
    """Where the label part of a row ends: before its first amount."""
    found = amounts(row.text)
    return found[0].start if found else len(row.text)


def _amount_fields(rws: list[Row], summary_start: int, out: Extraction) -> int:
    """TOTAL, SUBTOTAL, TAX, AMOUNT_PAID; returns the index of the first summary row."""
    totals, subtotals, taxes = [], [], []
    first_summary = summary_start
    for i, row in enumerate(rws[:summary_start]):
        end = _label_end(row)
        label_text = row.text[:end]
        if not re.search(r"[A-Za-z]{2}", label_text):
            continue
        for kind, prio_fn, bucket in (
            ("TOTAL", _total_priority, totals),
            ("SUBTOTAL", _subtotal_priority, subtotals),
            ("TAX", _tax_priority, taxes),
        ):
            prio = prio_fn(label_text)
            if not prio:
                continue
            arow, amount = _row_amount(rws, i, end)
            if amount is None or (kind == "TOTAL" and amount.value <= 0):
                continue
            bucket.append((prio, i, row, arow, amount, label_text))
            first_summary = min(first_summary, i)
            break
    if totals:
        prio, i, row, arow, amount, label_text = max(totals, key=lambda t: (t[0], t[1]))
        certainty = 0.97 if prio >= 3 else 0.93
        rounded = _rounded(rws, i, amount.value, summary_start)
        if rounded is not None:
            row, arow, amount, label_text = rounded
            certainty = 0.9
        out.summary.append(_amount_field("TOTAL", row, arow, amount, label_text, certainty))
    else:
        fallback = _largest_amount(rws[:summary_start])
        if fallback:
            arow, amount = fallback
            out.summary.append(
                Field("TOTAL", row_span(arow, amount.start, amount.end, amount.text), None, 0.55)
            )
    for kind, bucket in (("SUBTOTAL", subtotals), ("TAX", taxes)):
        if bucket:
            prio, i, row, arow, amount, label_text = max(bucket, key=lambda t: (t[0], -t[1]))
            out.summary.append(_amount_field(kind, row, arow, amount, label_text, 0.9 if prio >= 2 else 0.8))
    # the amount paid: cash / card tendered
    for i, row in enumerate(rws[first_summary:summary_start], start=first_summary):
        end = _label_end(row)
        c = compact(row.text[:end])
        if c and any(c.startswith(p) for p in PAYMENT) and "change" not in c:
            arow, amount = _row_amount(rws, i, end)
            if amount is not None and amount.value > 0:
                out.summary.append(_amount_field("AMOUNT_PAID", row, arow, amount, row.text[:end], 0.85))
                break
    return first_summary


def _rounded(rws: list[Row], i: int, value: float, end: int):
    """After a rounding-adjustment row below the total, the next amount row is the rounded total."""
    for r in range(i + 1, min(end, i + 4)):
        c = compact(rws[r].text[: _label_end(rws[r])])
        if "round" not in c or TOTAL_WORD.search(c):
            continue
        for k in range(r + 1, min(end, r + 3)):
            label = rws[k].text[: _label_end(rws[k])]
            lc = compact(label)
            if any(lc.startswith(p) for p in PAYMENT):
                return None
            arow, amount = _row_amount(rws, k, _label_end(rws[k]))
            if amount is not None and 0 < abs(amount.value - value) <= 0.1:
                return rws[k], arow, amount, label
        return None
    return None


def _amount_field(kind, row, arow, amount, label_text, certainty) -> Field:
    label_text = label_text.strip(" :")
    value = row_span(arow, amount.start, amount.end, amount.text)
    label = row_span(row, 0, len(label_text), label_text) if label_text else None
    return Field(kind, value, label, certainty, currency=amount.currency)


def _largest_amount(rws: list[Row]):
    best = None
    for row in rws:
        c = compact(row.text)
        if any(p in c for p in PAYMENT):
            continue
        for a in amounts(row.text):
            if best is None or a.value > best[1].value:
                best = (row, a)
    return best


HEADER_WORDS = (
    "item",
    "description",
    "desc",
    "qty",
    "quantity",
    "price",
    "amount",
    "unitprice",
    "up",
    "disc",
)


def _line_items(rws: list[Row], totals_start: int, out: Extraction) -> None:
    header = None
    for i, row in enumerate(rws[:totals_start]):
        words = {compact(w.text) for w in row.words}
        c = compact(row.text)
        hits = sum(1 for h in HEADER_WORDS if h in words or (len(h) > 3 and h in c))
        if hits >= 2:
            header = i
            break
    start = header + 1 if header is not None else 0
    if header is None:
        anchor = [
            f
            for f in out.summary
            if f.type in ("INVOICE_RECEIPT_DATE", "INVOICE_RECEIPT_ID", "VENDOR_ADDRESS")
        ]
        if not anchor:
            return
        bottom = max(f.value.top for f in anchor)
        start = next((i for i, r in enumerate(rws) if r.top > bottom + 0.005), len(rws))
    body = rws[start:totals_start]
    used: set[int] = set()
    items = []
    for k, row in enumerate(body):
        found = amounts(row.text)
        if not found or found[-1].value <= 0:
            continue
        price = found[-1]
        desc = _description(row.text[: found[0].start])
        desc_row = row
        if len(re.sub(r"[^A-Za-z]", "", desc)) < 3:
            # the description sits on a row of its own, below (or above) the amounts
            for j in (k + 1, k - 1):
                if 0 <= j < len(body) and j not in used and not amounts(body[j].text):
                    cand = _description(body[j].text)
                    if len(re.sub(r"[^A-Za-z]", "", cand)) >= 3:
                        desc, desc_row = cand, body[j]
                        used.add(j)
                        break
        if len(re.sub(r"[^A-Za-z]", "", desc)) < 2:
            continue
        used.add(k)
        fields = []
        d_start = desc_row.text.find(desc.split()[0]) if desc.split() else 0
        fields.append(Field("ITEM", row_span(desc_row, d_start, d_start + len(desc), desc), None, 0.9))
        qty = _quantity(row.text, found)
        if qty is not None:
            q_start, q_end, q_text = qty
            fields.append(Field("QUANTITY", row_span(row, q_start, q_end, q_text), None, 0.85))
        if len(found) >= 2:
            unit = found[-2]
            fields.append(
                Field("UNIT_PRICE", row_span(row, unit.start, unit.end, unit.text), None, 0.85, unit.currency)
            )
        fields.append(
            Field("PRICE", row_span(row, price.start, price.end, price.text), None, 0.9, price.currency)
        )
        row_words = row.words + ([w for w in desc_row.words] if desc_row is not row else [])
        text = (
            row.text
            if desc_row is row
            else f"{desc_row.text} {row.text}"
            if desc_row.top < row.top
            else (f"{row.text} {desc_row.text}")
        )
        fields.append(Field("EXPENSE_ROW", Span(text, row_words), None, 0.9))
        items.append(fields)
    out.items = items


def _description(text: str) -> str:
    text = re.sub(r"\b\d+\s?(?:x|pc|pcs|@)\b", " ", text, flags=re.I)
    text = re.sub(r"(?<![\w.,])\d+(?![\w.,])", " ", text)
    return re.sub(r"\s+", " ", text).strip(" -*:")


def _quantity(text: str, found) -> tuple[int, int, str] | None:
    m = re.search(r"(?<![\d.])(\d{1,3})\s?(?:x|pc|pcs|@|ea|unit)", text, re.I)
    if m:
        return m.start(1), m.end(1), m.group(1)
    first_amount = found[0].start if found else len(text)
    ints = [m for m in re.finditer(r"(?<![\w.,])(\d{1,3})(?![\w.,%])", text)]
    if ints:
        # the integer closest to the amounts (a column of its own)
        cands = [m for m in ints if m.start() > 0] or ints
        m = max(cands, key=lambda x: x.start() if x.start() < first_amount else -1)
        return m.start(1), m.end(1), m.group(1)
    return None


# ---- wire format ----------------------------------------------------------------------------
def expense_document(page: OcrPage, page_number: int, index: int, blocks: list[dict], seed: str) -> dict:
    ext = analyze_page(page)
    group_ids = {
        g: str(uuid.uuid5(uuid.NAMESPACE_URL, f"{seed}/{page_number}/{g}")) for g in ("VENDOR", "RECEIVER")
    }
    summary = [f.to_wire(page_number, group_ids) for f in ext.summary]
    items = [
        {"LineItemExpenseFields": [f.to_wire(page_number, group_ids) for f in item]} for item in ext.items
    ]
    doc = {
        "ExpenseIndex": index,
        "SummaryFields": summary,
        "LineItemGroups": [{"LineItemGroupIndex": 1, "LineItems": items}] if items else [],
        "Blocks": blocks,
    }
    return doc
