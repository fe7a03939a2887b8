"""AnalyzeDocument's LAYOUT feature from the OCR lines: every LINE of a page goes into exactly one
layout element, in reading order (top to bottom), and each element lists its lines as CHILD.

Rules, on the lines' geometry and text only (the twin sees no figures, so it never answers
LAYOUT_FIGURE):

- LAYOUT_TABLE: the runs of rows the TABLES feature reads as a table (2+ rows with side-by-side
  segments, one with 3+).
- The other lines form paragraphs: a line joins the paragraph it sits just under (a gap under
  0.8 lines, overlapping columns, similar text size), so side-by-side columns stay apart. Text
  size: the line box's height, and its width per character (the detector's boxes are coarse in
  height: a bold title's is hardly taller, its letters are wider).
- LAYOUT_KEY_VALUE: a paragraph most of whose lines the FORMS feature reads as "Label: value"
  with a short value (5 words or fewer; a sentence with a colon stays text).
- LAYOUT_LIST: 2+ paragraphs one under the other that start with a bullet ("-", "*", "•", "1.",
  "a)"); each is a LAYOUT_TEXT child of the list.
- The other paragraphs are classified:
  - LAYOUT_PAGE_NUMBER: one short line in the top or bottom margin that reads "7", "Page 7",
    "7 of 9", "- 7 -";
  - LAYOUT_HEADER / LAYOUT_FOOTER: in the top / bottom 6 % of the page, text no taller than
    the page's usual line, set apart from the rest by a gap of 2 lines or more;
  - LAYOUT_TITLE: the first paragraph in the top quarter, at most 3 lines, its text 1.2 times
    taller (or 1.25 times wider per character) than the page's median line or more (at most one
    per page);
  - LAYOUT_SECTION_HEADER: a one-line paragraph of 8 words or fewer, not ending with a full
    stop, followed by more text, its text 1.15 times larger than the median line or all in
    capitals (capitals count only where most of the page is not in capitals, as on receipts);
  - LAYOUT_TEXT: the rest.

A layout element's confidence is the mean OCR confidence of its lines (the rules themselves give
no score).
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass, field

from .layout import Row, geometry, rows
from .ocr import OcrLine, OcrPage

BULLET = re.compile(r"^\s*(?:[-*•●▪·–]|\(?\d{1,2}[.)]|\(?[a-zA-Z][.)])\s+\S")
PAGE_NUMBER = re.compile(r"^\s*(?:-\s*)?(?:page\s*)?\d{1,4}(?:\s*(?:of|/)\s*\d{1,4})?(?:\s*-)?\s*$", re.I)
MARGIN = 0.06


@dataclass
class Element:
    kind: str
    lines: list[OcrLine]
    items: list[Element] = field(default_factory=list)  # LAYOUT_LIST: its LAYOUT_TEXT items
    bullet: bool = False

    @property
    def top(self) -> float:
        return min(ln.top for ln in self.lines)

    @property
    def bottom(self) -> float:
        return max(ln.bottom for ln in self.lines)

    @property
    def left(self) -> float:
        return min(ln.left for ln in self.lines)

    @property
    def right(self) -> float:
        return max(ln.right for ln in self.lines)

    @property
    def text(self) -> str:
        return " ".join(ln.text for ln in self.lines)


def elements(page: OcrPage, find_tables, key_values) -> list[Element]:
    """The page's layout elements in reading order. ``find_tables(rows)``: the row runs the TABLES
    feature reads as tables; ``key_values(row)``: the pairs the FORMS feature reads in a row."""
    if not page.lines:
        return []
    median_h = statistics.median(ln.height for ln in page.lines) or 1e-3
    sized = [_pitch(ln) for ln in page.lines if len(ln.text) >= 4]
    median_pitch = statistics.median(sized) if sized else 1.0
    caps_page = sum(_capitals(ln.text) for ln in page.lines) > 0.5 * len(page.lines)
    out: list[Element] = []
    in_table: set[int] = set()
    for run in find_tables(rows(page)):
        lines = [ln for r in run for ln in r.lines]
        in_table.update(map(id, lines))
        out.append(Element("LAYOUT_TABLE", lines))
    paragraphs = _paragraphs([ln for ln in page.lines if id(ln) not in in_table], median_h)
    for para in paragraphs:
        kv = sum(_is_key_value(ln, key_values) for ln in para.lines)
        if kv and kv * 2 >= len(para.lines) + (1 if len(para.lines) > 1 else 0):
            para.kind = "LAYOUT_KEY_VALUE"
    out += _lists(paragraphs, median_h)
    out.sort(key=lambda el: (round(el.top / median_h), el.left))
    _classify(out, median_h, median_pitch, caps_page)
    return out


def _pitch(line: OcrLine) -> float:
    """Width per character: the text size where the detector's box heights are too coarse (a
    bold title's box is hardly taller than the body's, its letters are wider)."""
    return (line.right - line.left) / max(1, len(line.text))


def _size_break(above: OcrLine, below: OcrLine) -> bool:
    """Whether text size changes between two lines enough to end a paragraph: box heights 1.25
    times apart, or letters 1.4 times wider above (a title over its body text) or 1.6 times
    wider either way (per-character width varies with case and digits, so the margin is wide)."""
    if max(above.height, below.height) > 1.25 * min(above.height, below.height):
        return True
    if min(len(above.text), len(below.text)) < 4:
        return False
    a, b = _pitch(above), _pitch(below)
    return a > 1.4 * b or b > 1.6 * a


def _is_key_value(line: OcrLine, key_values) -> bool:
    """A "Label: value" line with a short value (a sentence with a colon is text)."""
    pairs = key_values(Row([line]))
    return bool(pairs) and all(len(v.text.split()) <= 5 for _k, v in pairs)


def _paragraphs(lines: list[OcrLine], median_h: float) -> list[Element]:
    """Lines into paragraphs: each line joins the open paragraph whose last line it sits just
    under (a gap under 0.8 lines, overlapping columns, similar text height); a bulleted line
    starts its own."""
    open_: list[Element] = []
    for line in sorted(lines, key=lambda ln: (ln.top, ln.left)):
        bullet = bool(BULLET.match(line.text))
        home = None
        if not bullet:
            for para in reversed(open_):
                last = max(para.lines, key=lambda ln: ln.bottom)
                h = min(last.height, line.height)
                gap = line.top - last.bottom
                if -0.5 * h < gap < 0.8 * min(h, 1.5 * median_h) and _overlap(para, line) > 0:
                    if not _size_break(last, line) and line.left >= para.left - 2 * h:
                        home = para
                        break
        if home is None:
            open_.append(Element("LAYOUT_TEXT", [line], bullet=bullet))
        else:
            home.lines.append(line)
    return open_


def _overlap(para: Element, line: OcrLine) -> float:
    return min(para.right, line.right) - max(para.left, line.left)


def _lists(paragraphs: list[Element], median_h: float) -> list[Element]:
    """2+ bulleted paragraphs one under the other, aligned left, become a LAYOUT_LIST of them."""
    out: list[Element] = []
    run: list[Element] = []

    def close():
        if len(run) >= 2:
            out.append(Element("LAYOUT_LIST", [ln for it in run for ln in it.lines], list(run)))
        else:
            out.extend(run)
        run.clear()

    for para in sorted(paragraphs, key=lambda p: (p.top, p.left)):
        if not para.bullet or para.kind != "LAYOUT_TEXT":
            close()
            out.append(para)
            continue
        if run and (
            para.top - run[-1].bottom > 1.5 * median_h or abs(para.left - run[0].left) > 2 * median_h
        ):
            close()
        run.append(para)
    close()
    return out


def _capitals(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    return len(letters) >= 4 and all(c.isupper() for c in letters)


def _height(el: Element) -> float:
    return statistics.median(ln.height for ln in el.lines)


def _large(el: Element, median_h: float, median_pitch: float, ratio: float) -> bool:
    """Text taller, or wider per character, than the page's usual by ``ratio``."""
    if _height(el) >= ratio * median_h:
        return True
    sized = [_pitch(ln) for ln in el.lines if len(ln.text) >= 4]
    return bool(sized) and statistics.median(sized) >= (ratio + 0.05) * median_pitch


def _classify(out: list[Element], median_h: float, median_pitch: float, caps_page: bool) -> None:
    texts = [k for k, el in enumerate(out) if el.kind == "LAYOUT_TEXT"]
    for k in texts:
        el = out[k]
        gap_above = el.top - out[k - 1].bottom if k > 0 else el.top
        gap_below = out[k + 1].top - el.bottom if k + 1 < len(out) else 1.0 - el.bottom
        in_top, in_bottom = el.bottom <= MARGIN, el.top >= 1 - MARGIN
        if len(el.lines) == 1 and (in_top or in_bottom) and PAGE_NUMBER.match(el.text):
            el.kind = "LAYOUT_PAGE_NUMBER"
        elif in_top and k + 1 < len(out) and gap_below >= 2 * median_h and _height(el) <= 1.05 * median_h:
            el.kind = "LAYOUT_HEADER"
        elif in_bottom and k > 0 and gap_above >= 2 * median_h and _height(el) <= 1.05 * median_h:
            el.kind = "LAYOUT_FOOTER"
    body = [k for k in texts if out[k].kind == "LAYOUT_TEXT"]
    for k in body[:1]:
        el = out[k]
        if el.top < 0.25 and len(el.lines) <= 3 and _large(el, median_h, median_pitch, 1.2):
            el.kind = "LAYOUT_TITLE"
    for k in body:
        el = out[k]
        if el.kind != "LAYOUT_TEXT" or len(el.lines) != 1 or k + 1 >= len(out):
            continue
        words = el.text.split()
        if not words or len(words) > 8 or el.text.rstrip().endswith("."):
            continue
        taller = _large(el, median_h, median_pitch, 1.15)
        if taller or (not caps_page and _capitals(el.text)):
            el.kind = "LAYOUT_SECTION_HEADER"


def confidence(lines: list[OcrLine]) -> float:
    return round(sum(ln.confidence for ln in lines) / len(lines), 4)


def box(lines: list[OcrLine]) -> dict:
    """One line's quadrilateral, or the box around several."""
    return geometry([ln.polygon for ln in lines])
