"""Textract Blocks from OCR pages: PAGE / LINE / WORD, and for AnalyzeDocument KEY_VALUE_SET
(FORMS), TABLE / CELL (TABLES), QUERY / QUERY_RESULT (QUERIES), LAYOUT_* (LAYOUT) and SIGNATURE
(SIGNATURES).

Linked as Textract links them: the PAGE lists every block on it as a CHILD (LINE, TABLE,
KEY_VALUE_SET, QUERY, QUERY_RESULT, LAYOUT_*, SIGNATURE), a LINE its WORDs, a TABLE its CELLs, a CELL and a
KEY_VALUE_SET their WORDs, a KEY its VALUE, a QUERY its ANSWER, a LAYOUT_* element its LINEs.
Every polygon has 4 points.

Ids are deterministic (uuid5 of a seed and the block's place), so the same document analysed twice
gives the same blocks.
"""

from __future__ import annotations

import re
import uuid

from . import page_layout
from .layout import Row, Span, amounts, geometry, row_span, rows
from .ocr import OcrPage, OcrWord

FULL_PAGE = {
    "BoundingBox": {"Width": 1.0, "Height": 1.0, "Left": 0.0, "Top": 0.0},
    "Polygon": [{"X": 0.0, "Y": 0.0}, {"X": 1.0, "Y": 0.0}, {"X": 1.0, "Y": 1.0}, {"X": 0.0, "Y": 1.0}],
}


class BlockBuilder:
    """Builds the blocks of one page; ``word_ids`` maps OCR words to their WORD block ids."""

    def __init__(self, page: OcrPage, page_number: int, seed: str):
        self.page = page
        self.page_number = page_number
        self.seed = seed
        self.counter = 0
        self.word_ids: dict[int, str] = {}
        self.line_ids: dict[int, str] = {}
        self.blocks: list[dict] = []

    def new_id(self, kind: str) -> str:
        self.counter += 1
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.seed}/{self.page_number}/{kind}/{self.counter}"))

    def text_blocks(self) -> list[dict]:
        page_id = self.new_id("page")
        lines, words = [], []
        for line in self.page.lines:
            line_id = self.new_id("line")
            self.line_ids[id(line)] = line_id
            child_ids = []
            for word in line.words:
                wid = self.new_id("word")
                self.word_ids[id(word)] = wid
                child_ids.append(wid)
                words.append(
                    {
                        "BlockType": "WORD",
                        "Confidence": word.confidence,
                        "Text": word.text,
                        "TextType": "PRINTED",
                        "Geometry": geometry([word.polygon]),
                        "Id": wid,
                        "Page": self.page_number,
                    }
                )
            lines.append(
                {
                    "BlockType": "LINE",
                    "Confidence": line.confidence,
                    "Text": line.text,
                    "Geometry": geometry([line.polygon]),
                    "Id": line_id,
                    "Relationships": [{"Type": "CHILD", "Ids": child_ids}] if child_ids else [],
                    "Page": self.page_number,
                }
            )
        page_block = {
            "BlockType": "PAGE",
            "Geometry": FULL_PAGE,
            "Id": page_id,
            "Relationships": [{"Type": "CHILD", "Ids": [b["Id"] for b in lines]}] if lines else [],
            "Page": self.page_number,
        }
        self.page_block = page_block
        self.blocks = [page_block, *lines, *words]
        return self.blocks

    def _ids(self, words: list[OcrWord]) -> list[str]:
        return [self.word_ids[id(w)] for w in words if id(w) in self.word_ids]

    def _add_to_page(self, block_id: str) -> None:
        """The PAGE lists every block on it as a CHILD, as Textract does: LINE, TABLE,
        KEY_VALUE_SET (keys and values), QUERY, QUERY_RESULT, LAYOUT_*, SIGNATURE."""
        rels = self.page_block.setdefault("Relationships", [])
        if not rels:
            rels.append({"Type": "CHILD", "Ids": []})
        rels[0]["Ids"].append(block_id)

    # ---- FORMS --------------------------------------------------------------------------------
    def forms(self) -> list[dict]:
        """KEY_VALUE_SET pairs from 'Label: value' and 'Label   value' rows."""
        out = []
        self.pairs: list[tuple[Span, Span | None, float]] = []
        for row in rows(self.page):
            for key, value in key_values(row):
                key_id, value_id = self.new_id("key"), self.new_id("value")
                conf = min(key.confidence, value.confidence) if value.words else key.confidence
                out.append(
                    {
                        "BlockType": "KEY_VALUE_SET",
                        "Confidence": round(conf, 4),
                        "Geometry": key.geometry,
                        "Id": key_id,
                        "Relationships": [
                            {"Type": "VALUE", "Ids": [value_id]},
                            {"Type": "CHILD", "Ids": self._ids(key.words)},
                        ],
                        "EntityTypes": ["KEY"],
                        "Page": self.page_number,
                    }
                )
                value_block = {
                    "BlockType": "KEY_VALUE_SET",
                    "Confidence": round(conf, 4),
                    "Geometry": value.geometry if value.words else key.geometry,
                    "Id": value_id,
                    "EntityTypes": ["VALUE"],
                    "Page": self.page_number,
                }
                if value.words:
                    value_block["Relationships"] = [{"Type": "CHILD", "Ids": self._ids(value.words)}]
                out.append(value_block)
                self._add_to_page(key_id)
                self._add_to_page(value_id)
                self.pairs.append((key, value, conf))
        self.blocks.extend(out)
        return out

    # ---- TABLES -------------------------------------------------------------------------------
    def tables(self) -> list[dict]:
        out = []
        for table_rows in find_tables(rows(self.page)):
            bands = column_bands(table_rows)
            table_id = self.new_id("table")
            cells = []
            for r, row in enumerate(table_rows, start=1):
                top, bottom = row.top, row.bottom
                owner = {id(w): _nearest_band(bands, _cx(w)) for w in row.words}
                for c, (left, right) in enumerate(bands, start=1):
                    words = [w for w in row.words if owner[id(w)] == c - 1]
                    cell_id = self.new_id("cell")
                    poly = [(left, top), (right, top), (right, bottom), (left, bottom)]
                    conf = min((w.confidence for w in words), default=row.confidence)
                    cell = {
                        "BlockType": "CELL",
                        "Confidence": round(conf, 4),
                        "RowIndex": r,
                        "ColumnIndex": c,
                        "RowSpan": 1,
                        "ColumnSpan": 1,
                        "Geometry": geometry([poly]),
                        "Id": cell_id,
                        "Page": self.page_number,
                    }
                    if words:
                        cell["Relationships"] = [{"Type": "CHILD", "Ids": self._ids(words)}]
                    if r == 1 and _is_header(row):
                        cell["EntityTypes"] = ["COLUMN_HEADER"]
                    cells.append(cell)
            left, right = bands[0][0], bands[-1][1]
            top, bottom = table_rows[0].top, table_rows[-1].bottom
            polys = [[(left, top), (right, top), (right, bottom), (left, bottom)]]
            table = {
                "BlockType": "TABLE",
                "Confidence": round(min(c["Confidence"] for c in cells), 4),
                "Geometry": geometry(polys),
                "Id": table_id,
                "Relationships": [{"Type": "CHILD", "Ids": [c["Id"] for c in cells]}],
                "EntityTypes": ["STRUCTURED_TABLE"],
                "Page": self.page_number,
            }
            self._add_to_page(table_id)
            out.append(table)
            out.extend(cells)
        self.blocks.extend(out)
        return out

    # ---- LAYOUT -------------------------------------------------------------------------------
    def layout(self) -> list[dict]:
        """LAYOUT_* blocks (see ``page_layout``): each lists its LINEs as CHILD (a LAYOUT_LIST its
        LAYOUT_TEXT items); the PAGE lists them all, in reading order."""
        out = []
        for el in page_layout.elements(self.page, find_tables, key_values):
            block = self._layout_block(el.kind, el.lines)
            out.append(block)
            self._add_to_page(block["Id"])
            if el.items:
                items = [self._layout_block(it.kind, it.lines) for it in el.items]
                block["Relationships"] = [{"Type": "CHILD", "Ids": [b["Id"] for b in items]}]
                for item in items:
                    out.append(item)
                    self._add_to_page(item["Id"])
        self.blocks.extend(out)
        return out

    def _layout_block(self, kind: str, lines: list) -> dict:
        return {
            "BlockType": kind,
            "Confidence": page_layout.confidence(lines),
            "Geometry": page_layout.box(lines),
            "Id": self.new_id(kind.lower()),
            "Relationships": [{"Type": "CHILD", "Ids": [self.line_ids[id(ln)] for ln in lines]}],
            "Page": self.page_number,
        }

    # ---- SIGNATURES ---------------------------------------------------------------------------
    def signatures(self, found: list) -> list[dict]:
        """SIGNATURE blocks (``signatures.detect``): Confidence, Geometry, Id, Page; no
        relationships of their own, listed by the PAGE as CHILD."""
        out = []
        for sig in found:
            left, top, right, bottom = sig.box
            poly = [(left, top), (right, top), (right, bottom), (left, bottom)]
            block = {
                "BlockType": "SIGNATURE",
                "Confidence": sig.confidence,
                "Geometry": geometry([poly]),
                "Id": self.new_id("signature"),
                "Page": self.page_number,
            }
            self._add_to_page(block["Id"])
            out.append(block)
        self.blocks.extend(out)
        return out

    # ---- QUERIES ------------------------------------------------------------------------------
    def queries(self, queries: list[dict], extra: dict[str, Span] | None = None) -> list[dict]:
        """Answer each query with the value of the best-matching key (or expense field)."""
        if not hasattr(self, "pairs"):
            self.forms_pairs_only()
        out = []
        for q in queries:
            pages = q.get("Pages")
            if pages and not _page_selected(pages, self.page_number):
                continue
            qid = self.new_id("query")
            block = {
                "BlockType": "QUERY",
                "Id": qid,
                "Query": {k: v for k, v in q.items() if k in ("Text", "Alias", "Pages")},
                "Page": self.page_number,
            }
            answer = self._answer(q, extra or {})
            out.append(block)
            self._add_to_page(qid)
            if answer is not None:
                span, conf = answer
                rid = self.new_id("query-result")
                block["Relationships"] = [{"Type": "ANSWER", "Ids": [rid]}]
                out.append(
                    {
                        "BlockType": "QUERY_RESULT",
                        "Confidence": round(conf, 4),
                        "Text": span.text,
                        "Geometry": span.geometry,
                        "Id": rid,
                        "Page": self.page_number,
                    }
                )
                self._add_to_page(rid)
        self.blocks.extend(out)
        return out

    def forms_pairs_only(self) -> None:
        self.pairs = []
        for row in rows(self.page):
            for key, value in key_values(row):
                conf = min(key.confidence, value.confidence) if value.words else key.confidence
                self.pairs.append((key, value, conf))

    def _answer(self, query: dict, extra: dict[str, Span]) -> tuple[Span, float] | None:
        wanted = _terms(query.get("Text", "")) | _terms(query.get("Alias", ""))
        if not wanted:
            return None
        best = None
        for key, value, conf in self.pairs:
            if not value.words:
                continue
            have = _terms(key.text)
            if not have:
                continue
            score = len(wanted & have) / len(have | wanted)
            if score > 0 and (best is None or score > best[0]):
                best = (score, value, conf)
        for name, span in extra.items():
            have = _terms(name.replace("_", " "))
            score = len(wanted & have) / len(have | wanted)
            if score > 0 and (best is None or score > best[0]):
                best = (score, span, span.confidence)
        if best is None or best[0] < 0.25:
            return None
        score, span, conf = best
        return span, conf * min(1.0, 0.5 + score)


LABEL = re.compile(r"(?<![\d:])([A-Za-z][A-Za-z .#/()&-]{0,30}?)\s?[:：]\s?(?=\S|$)")
STOPWORDS = {
    "what",
    "is",
    "the",
    "of",
    "on",
    "a",
    "an",
    "this",
    "document",
    "which",
    "who",
    "in",
    "for",
    "to",
}
SYNONYMS = {
    "no": "number",
    "num": "number",
    "#": "number",
    "amt": "amount",
    "inv": "invoice",
    "vendor": "name",
}


def _terms(text: str) -> set[str]:
    words = re.findall(r"[a-z#]+", (text or "").lower())
    return {SYNONYMS.get(w, w) for w in words if w not in STOPWORDS}


def _page_selected(pages: list[str], page_number: int) -> bool:
    for spec in pages:
        spec = spec.strip()
        if spec == "*":
            return True
        lo, _, hi = spec.partition("-")
        try:
            lo_n = int(lo)
            hi_n = lo_n if not hi else (10**9 if hi == "*" else int(hi))
        except ValueError:
            continue
        if lo_n <= page_number <= hi_n:
            return True
    return False


def key_values(row: Row) -> list[tuple[Span, Span]]:
    """The key/value pairs of a row: "Label: value" (also several on one row, the value maybe in
    the next segment to the right) or "Label   value"."""
    pairs = []
    segments = row.lines
    consumed: set[int] = set()
    for s_idx, line in enumerate(segments):
        if s_idx in consumed:
            continue
        seg = Row([line])
        text = seg.text
        marks = [m for m in LABEL.finditer(text) if sum(ch.isalpha() for ch in m.group(1)) >= 2]
        for k, m in enumerate(marks):
            end = marks[k + 1].start() if k + 1 < len(marks) else len(text)
            key = row_span(seg, m.start(1), m.end(1), m.group(1).strip())
            value_text = text[m.end() : end].strip()
            value = row_span(seg, m.end(), end, value_text) if value_text else Span("", [])
            key_ids = set(map(id, key.words))
            if value.words and set(map(id, value.words)) & key_ids:
                value = Span(value_text, [w for w in value.words if id(w) not in key_ids])
            nxt = s_idx + 1
            if not value.words and k == len(marks) - 1 and nxt < len(segments):
                if not LABEL.search(segments[nxt].text):
                    value = Span(segments[nxt].text, segments[nxt].words)
                    consumed.add(nxt)
            pairs.append((key, value))
    if pairs:
        return pairs
    # "Label      12.34": a text segment with a number / amount segment to its right
    if len(row.lines) >= 2:
        first, last = row.lines[0], row.lines[-1]
        if re.search(r"[A-Za-z]{2}", first.text) and (
            amounts(last.text) or re.fullmatch(r"[\d\-/.,: ]+", last.text)
        ):
            if sum(ch.isalpha() for ch in first.text) >= 3 and not amounts(first.text):
                key = Span(first.text, first.words)
                value = Span(last.text, last.words)
                pairs.append((key, value))
    return pairs


def find_tables(rws: list[Row]) -> list[list[Row]]:
    """Runs of consecutive rows with 2+ separate segments (at least one with 3+)."""
    tables, run = [], []
    for row in [*rws, None]:
        if row is not None and len(row.lines) >= 2:
            if run and row.top - run[-1].bottom > 3 * (run[-1].bottom - run[-1].top):
                _close(run, tables)
                run = []
            run.append(row)
            continue
        _close(run, tables)
        run = []
    return tables


def _close(run: list[Row], tables: list[list[Row]]) -> None:
    if len(run) >= 2 and max(len(r.lines) for r in run) >= 3:
        tables.append(list(run))


def column_bands(table_rows: list[Row]) -> list[tuple[float, float]]:
    """Column x-ranges: the segments' x-intervals, merged where they overlap."""
    widest = max(len(r.lines) for r in table_rows)
    # the rows with the most segments set the columns (labels of total rows may straddle them)
    defining = [r for r in table_rows if len(r.lines) == widest]
    intervals = sorted((ln.left, ln.right) for r in defining for ln in r.lines)
    bands: list[list[float]] = []
    for left, right in intervals:
        if bands and left <= bands[-1][1]:
            bands[-1][1] = max(bands[-1][1], right)
        else:
            bands.append([left, right])
    return [(a, b) for a, b in bands]


def _nearest_band(bands: list[tuple[float, float]], x: float) -> int:
    for k, (left, right) in enumerate(bands):
        if left <= x <= right:
            return k
    return min(range(len(bands)), key=lambda k: min(abs(x - bands[k][0]), abs(x - bands[k][1])))


def _cx(word: OcrWord) -> float:
    xs = [p[0] for p in word.polygon]
    return (min(xs) + max(xs)) / 2


def _is_header(row: Row) -> bool:
    return not amounts(row.text) and sum(ch.isalpha() for ch in row.text) >= 0.6 * len(
        row.text.replace(" ", "")
    )
