"""The OCR engine: RapidOCR (PP-OCRv4 detection + recognition, ONNX models shipped in the wheel).

The engine loads lazily, once per process, on the first page it reads (never at twin start-up),
and one page is read at a time per process (the models use every core already). Results carry
real geometry, normalised to 0..1 of the page, and confidences from the recogniser's scores:
a line's confidence is RapidOCR's line score, a word's the mean of its characters' scores.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger("aws_twin.textract")

_ENGINE = None
_LOAD_LOCK = threading.Lock()
_RUN_LOCK = threading.Lock()

Point = tuple[float, float]


@dataclass
class OcrWord:
    text: str
    confidence: float  # 0..100
    polygon: list[Point]  # 4 points, normalised, clockwise from top-left


@dataclass
class OcrLine:
    text: str
    confidence: float  # 0..100
    polygon: list[Point]
    words: list[OcrWord] = field(default_factory=list)

    @property
    def left(self) -> float:
        return min(p[0] for p in self.polygon)

    @property
    def right(self) -> float:
        return max(p[0] for p in self.polygon)

    @property
    def top(self) -> float:
        return min(p[1] for p in self.polygon)

    @property
    def bottom(self) -> float:
        return max(p[1] for p in self.polygon)

    @property
    def height(self) -> float:
        return self.bottom - self.top

    @property
    def cy(self) -> float:
        return (self.top + self.bottom) / 2


@dataclass
class OcrPage:
    width: int
    height: int
    lines: list[OcrLine]

    def to_dict(self) -> dict:
        return {
            "width": self.width,
            "height": self.height,
            "lines": [
                {
                    "text": ln.text,
                    "confidence": ln.confidence,
                    "polygon": ln.polygon,
                    "words": [[w.text, w.confidence, w.polygon] for w in ln.words],
                }
                for ln in self.lines
            ],
        }

    @classmethod
    def from_dict(cls, data: dict) -> OcrPage:
        lines = [
            OcrLine(
                text=ln["text"],
                confidence=ln["confidence"],
                polygon=[tuple(p) for p in ln["polygon"]],
                words=[OcrWord(w[0], w[1], [tuple(p) for p in w[2]]) for w in ln["words"]],
            )
            for ln in data["lines"]
        ]
        return cls(data["width"], data["height"], lines)


def engine():
    """The process's RapidOCR instance, created on first use (thread-safe)."""
    global _ENGINE
    if _ENGINE is None:
        with _LOAD_LOCK:
            if _ENGINE is None:
                from rapidocr_onnxruntime import RapidOCR

                log.info("loading the RapidOCR models")
                _ENGINE = RapidOCR()
    return _ENGINE


def read_page(image: np.ndarray) -> OcrPage:
    """OCR one RGB page (H, W, 3 uint8) into lines and words."""
    h, w = image.shape[:2]
    ocr = engine()
    # RapidOCR's loader treats arrays as BGR (OpenCV); hand it BGR
    bgr = np.ascontiguousarray(image[:, :, ::-1])
    with _RUN_LOCK:
        result, _ = ocr(bgr, return_word_box=True)
    return OcrPage(w, h, _lines(result or [], w, h))


def from_raw(result: list, w: int, h: int) -> OcrPage:
    """An OcrPage from RapidOCR's raw result (used by tools that cache raw results)."""
    return OcrPage(w, h, _lines(result or [], w, h))


def _norm(points, w: int, h: int) -> list[Point]:
    return [(min(1.0, max(0.0, float(x) / w)), min(1.0, max(0.0, float(y) / h))) for x, y in points]


def _lines(result: list, w: int, h: int) -> list[OcrLine]:
    lines = []
    for item in result:
        box, text, score = item[0], str(item[1]), float(item[2])
        text = text.strip()
        if not text:
            continue
        char_boxes = item[3] if len(item) > 3 else None
        chars = item[4] if len(item) > 4 else None
        char_scores = item[5] if len(item) > 5 else None
        poly = _norm(box, w, h)
        words = _words(text, score, box, char_boxes, chars, char_scores, w, h)
        if not words:
            continue
        lines.append(
            OcrLine(
                text=" ".join(wd.text for wd in words),
                confidence=round(score * 100, 4),
                polygon=poly,
                words=words,
            )
        )
    lines.sort(key=lambda ln: (round(ln.top * 200), ln.left))
    return lines


def _words(text, score, box, char_boxes, chars, char_scores, w, h) -> list[OcrWord]:
    """Group the recogniser's characters into words (at spaces and at wide gaps)."""
    if not char_boxes or not chars or len(char_boxes) != len(chars) or len(chars) != len(char_scores or []):
        return _even_split(text, score, box, w, h)
    line_h = max(1.0, np.linalg.norm(np.subtract(box[3], box[0])))
    groups: list[list[int]] = []
    current: list[int] = []
    prev_right = None
    for i, ch in enumerate(chars):
        if ch.isspace():
            if current:
                groups.append(current)
            current, prev_right = [], None
            continue
        left = min(p[0] for p in char_boxes[i])
        right = max(p[0] for p in char_boxes[i])
        gap_split = prev_right is not None and left - prev_right > 0.55 * line_h
        colon_split = bool(current) and chars[current[-1]] == ":" and _label_before(chars, current)
        if current and (gap_split or colon_split):
            groups.append(current)
            current = []
        current.append(i)
        prev_right = right
    if current:
        groups.append(current)
    words = []
    for g in groups:
        wtext = "".join(chars[i] for i in g)
        xs = [p[0] for i in g for p in char_boxes[i]]
        # the characters' boxes are narrow columns: take the line box's height at those x
        top, bottom = _band(box, min(xs), max(xs))
        quad = [(min(xs), top[0]), (max(xs), top[1]), (max(xs), bottom[1]), (min(xs), bottom[0])]
        conf = float(np.mean([char_scores[i] for i in g])) * 100
        words.append(OcrWord(wtext, round(conf, 4), _norm(quad, w, h)))
    return words


def _label_before(chars, current) -> bool:
    """A 'Label:value' word: split after the colon when the label has two letters or more."""
    label = "".join(chars[i] for i in current[:-1])
    return sum(c.isalpha() for c in label) >= 2 and not any(c.isdigit() for c in label[-2:])


def _band(box, x0: float, x1: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """The y of the line box's top and bottom edges at x0 and x1 (the box may be skewed)."""
    (tlx, tly), (trx, try_), (brx, bry), (blx, bly) = box

    def at(xa, ya, xb, yb, x):
        if abs(xb - xa) < 1e-6:
            return ya
        t = min(1.0, max(0.0, (x - xa) / (xb - xa)))
        return ya + t * (yb - ya)

    return (at(tlx, tly, trx, try_, x0), at(tlx, tly, trx, try_, x1)), (
        at(blx, bly, brx, bry, x0),
        at(blx, bly, brx, bry, x1),
    )


def _even_split(text, score, box, w, h) -> list[OcrWord]:
    """Without character boxes: share the line box among the words by character count."""
    tokens = text.split()
    if not tokens:
        return []
    (tlx, tly), (trx, try_), (brx, bry), (blx, bly) = box
    total = len(text)
    words, pos = [], 0
    for tok in tokens:
        start = text.index(tok, pos)
        end = start + len(tok)
        pos = end
        a, b = start / total, end / total
        quad = [
            (tlx + a * (trx - tlx), tly + a * (try_ - tly)),
            (tlx + b * (trx - tlx), tly + b * (try_ - tly)),
            (blx + b * (brx - blx), bly + b * (bry - bly)),
            (blx + a * (brx - blx), bly + a * (bry - bly)),
        ]
        words.append(OcrWord(tok, round(score * 100, 4), _norm(quad, w, h)))
    return words
