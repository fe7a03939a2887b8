"""Layout helpers on OCR lines: rows (lines side by side), text spans with their words, geometry
unions and amount/date parsing. Shared by the forms/tables builder and the expense heuristics."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .ocr import OcrLine, OcrPage, OcrWord

Point = tuple[float, float]


@dataclass
class Row:
    lines: list[OcrLine]

    @property
    def text(self) -> str:
        return " ".join(ln.text for ln in self.lines)

    @property
    def top(self) -> float:
        return min(ln.top for ln in self.lines)

    @property
    def bottom(self) -> float:
        return max(ln.bottom for ln in self.lines)

    @property
    def words(self) -> list[OcrWord]:
        return [w for ln in self.lines for w in ln.words]

    @property
    def confidence(self) -> float:
        return min(ln.confidence for ln in self.lines)


def rows(page: OcrPage) -> list[Row]:
    """Group a page's lines into rows: lines whose vertical middles lie within each other's band."""
    result: list[list[OcrLine]] = []
    for line in sorted(page.lines, key=lambda ln: ln.cy):
        placed = False
        for row in reversed(result[-3:]):
            ref_top = sum(x.top for x in row) / len(row)
            ref_bottom = sum(x.bottom for x in row) / len(row)
            ref_cy, ref_h = (ref_top + ref_bottom) / 2, ref_bottom - ref_top
            if abs(line.cy - ref_cy) < 0.5 * min(ref_h, line.height) and not _overlaps_x(line, row):
                row.append(line)
                placed = True
                break
        if not placed:
            result.append([line])
    return [Row(sorted(r, key=lambda ln: ln.left)) for r in result]


def _overlaps_x(line: OcrLine, row: list[OcrLine]) -> bool:
    return any(
        min(line.right, x.right) - max(line.left, x.left) > 0.3 * (line.right - line.left) for x in row
    )


def bbox(polys: list[list[Point]]) -> dict:
    xs = [p[0] for poly in polys for p in poly]
    ys = [p[1] for poly in polys for p in poly]
    left, top, right, bottom = min(xs), min(ys), max(xs), max(ys)
    return {"Width": right - left, "Height": bottom - top, "Left": left, "Top": top}


def geometry(polys: list[list[Point]]) -> dict:
    """Textract Geometry of one quadrilateral, or of the union box of several polygons (or of one
    that is not 4 points): Textract's polygons always have 4 points, clockwise from top-left."""
    if len(polys) == 1 and len(polys[0]) == 4:
        poly = polys[0]
    else:
        b = bbox(polys)
        poly = [
            (b["Left"], b["Top"]),
            (b["Left"] + b["Width"], b["Top"]),
            (b["Left"] + b["Width"], b["Top"] + b["Height"]),
            (b["Left"], b["Top"] + b["Height"]),
        ]
    return {
        "BoundingBox": bbox([poly]),
        "Polygon": [{"X": float(x), "Y": float(y)} for x, y in poly],
    }


@dataclass
class Span:
    """Some words of a row, with the text matched in them."""

    text: str
    words: list[OcrWord]

    @property
    def confidence(self) -> float:
        """The OCR's confidence in these words: the mean, pulled down by the weakest word."""
        if not self.words:
            return 0.0
        confs = [w.confidence for w in self.words]
        return 0.5 * (sum(confs) / len(confs)) + 0.5 * min(confs)

    @property
    def geometry(self) -> dict:
        return geometry([w.polygon for w in self.words])

    @property
    def left(self) -> float:
        return min(p[0] for w in self.words for p in w.polygon)

    @property
    def top(self) -> float:
        return min(p[1] for w in self.words for p in w.polygon)


def row_span(row: Row, start: int, end: int, text: str | None = None) -> Span:
    """The words of a row covering characters start..end of ``row.text``."""
    words, pos = [], 0
    for i, w in enumerate(row.words):
        if i:
            pos += 1  # the joining space
        w_start, w_end = pos, pos + len(w.text)
        if w_end > start and w_start < end:
            words.append(w)
        pos = w_end
    return Span(text if text is not None else row.text[start:end].strip(), words or row.words[:1])


def whole(row: Row) -> Span:
    return Span(row.text, row.words)


def lines_span(lines: list[OcrLine]) -> Span:
    return Span(" ".join(ln.text for ln in lines), [w for ln in lines for w in ln.words])


# ---- amounts --------------------------------------------------------------------------------
AMOUNT = re.compile(
    r"(?<![\w.])(?P<neg>-)?\s?(?P<cur>RM|MYR|USD|EUR|GBP|S\$|\$|€|£|R[NH]|[FP]M|M)?\s?(?P<neg2>-)?"
    r"(?P<num>\d{1,3}(?:,\d{3})+\.\d{2}|\d+\.\d{2}|\d+,\d{2}(?!\d))(?![\d])(?!\s?%)"
)
# OCR reads "$" as "S" before a digit now and then
AMOUNT_S = re.compile(r"(?<![A-Za-z])S(?P<num>\d+\.\d{2})(?!\d)")
CURRENCIES = {"RM": "MYR", "MYR": "MYR", "$": "USD", "S$": "SGD", "USD": "USD", "€": "EUR", "EUR": "EUR"}
CURRENCIES |= {"£": "GBP", "GBP": "GBP"}


@dataclass
class Amount:
    value: float
    start: int
    end: int
    text: str
    currency: str | None


def amounts(text: str) -> list[Amount]:
    found = []
    for m in AMOUNT.finditer(text):
        num = m.group("num")
        if "," in num and "." not in num:
            num = num.replace(",", ".")
        value = float(num.replace(",", ""))
        if m.group("neg") or m.group("neg2"):
            value = -value
        found.append(
            Amount(value, m.start(), m.end(), m.group(0).strip(), CURRENCIES.get(m.group("cur") or ""))
        )
    if not found:
        for m in AMOUNT_S.finditer(text):
            found.append(Amount(float(m.group("num")), m.start(), m.end(), m.group(0), "USD"))
    return found


def parse_amount(text: str) -> float | None:
    found = amounts(text or "")
    if found:
        return found[-1].value
    m = re.search(r"\d+(?:\.\d+)?", (text or "").replace(",", ""))
    return float(m.group(0)) if m else None


# ---- dates ----------------------------------------------------------------------------------
MONTHS = {
    m: i + 1
    for i, names in enumerate(
        [
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ]
    )
    for m in names
}
_MON = r"(?P<mon>jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sept?(?:ember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
# a year is 4 digits (19xx/20xx) or 2; a time glued to the date ("23-01-201913:14") is allowed
_Y4 = r"(?:19|20)\d{2}"
_YEAR = rf"(?P<y>{_Y4}(?!\d)|{_Y4}(?=\d{{1,2}}:)|\d{{2}}(?!\d)|\d{{2}}(?=\d{{1,2}}:))"
_SEP = r"\s?(?P<sep>[-/.])\s?"
DATE_PATTERNS = [
    re.compile(rf"(?<!\d)(?P<Y>{_Y4})(?P<sep>[-/.])(?P<m>\d{{1,2}})(?P=sep)(?P<d>\d{{1,2}})(?!\d)"),
    re.compile(rf"(?<!\d)(?P<d>\d{{1,2}}){_SEP}(?P<m>\d{{1,2}})\s?(?P=sep)\s?{_YEAR}"),
    re.compile(rf"(?<!\d)(?P<d>\d{{1,2}})\s?[-/ .]?\s?{_MON}[a-z]*\.?\s?[-/ ,.]?\s?{_YEAR}", re.I),
    re.compile(rf"(?<![a-z]){_MON}[a-z]*\.?\s?(?P<d>\d{{1,2}})(?:st|nd|rd|th)?,?\s?(?P<y>{_Y4})(?!\d)", re.I),
]


@dataclass
class DateMatch:
    year: int
    month: int
    day: int
    start: int
    end: int
    text: str

    def iso(self) -> str:
        return f"{self.year:04d}-{self.month:02d}-{self.day:02d}"


_THIS_YEAR = __import__("datetime").date.today().year


def dates(text: str) -> list[DateMatch]:
    found: list[DateMatch] = []
    taken: list[tuple[int, int]] = []
    for pattern in DATE_PATTERNS:
        for m in pattern.finditer(text):
            if any(m.start() < e and m.end() > s for s, e in taken):
                continue
            g = m.groupdict()
            try:
                if g.get("Y"):
                    year = int(g["Y"])
                else:
                    year = int(g["y"])
                    if year < 100:
                        year += 2000 if year <= _THIS_YEAR % 100 + 1 else 1900
                month = MONTHS[g["mon"].lower()] if g.get("mon") else int(g["m"])
                day = int(g["d"])
            except (KeyError, TypeError, ValueError):
                continue
            if not (1 <= month <= 12 and 1 <= day <= 31 and 1970 <= year <= 2100):
                continue
            found.append(DateMatch(year, month, day, m.start(), m.end(), m.group(0).strip()))
            taken.append((m.start(), m.end()))
    return sorted(found, key=lambda d: d.start)


def parse_date(text: str) -> str | None:
    """ISO date of the first date in a text (day-first for numeric dates), None if none."""
    found = dates(text or "")
    return found[0].iso() if found else None
