"""The OCR engine: RapidOCR (PP-OCRv4 detection + recognition, ONNX models shipped in the wheel).

Engines load lazily (never at twin start-up) and are reused: a small pool per process, one
engine per page being read at once (``AWS_TWIN_OCR_ENGINES``, default: one per core, at most 4),
each with its own ONNX Runtime sessions. How a page is read, for speed on few cores:

- detection works on a page larger than ``DET_MAX_SIDE`` pixels scaled so its longest side is
  ``DET_MAX_SIDE`` (RapidOCR's default keeps up to 2,000); a smaller page keeps RapidOCR's own
  sizing, which scales small pages up (without it, words of small rendered PDF pages ran together:
  "MAPLEBOOKS"); the boxes it finds are mapped back, so recognition reads the crops from the full
  page;
- recognition reads ``REC_BATCH`` crops per call, by default one: measured on 2 CPU cores,
  batches of 2, 4 and 6 crops of similar width cost 5 %, 18 % and 35 % more, the padding to the
  widest crop of a batch outweighing the calls saved (``bench/expense_bench.py``);
- a crop goes to the recogniser at its own width (at least ``REC_MIN_WIDTH``, 96 px at the model's
  48 px height) instead of padded to RapidOCR's 320 px: receipts are mostly short crops ("SR",
  "0.00"), and the padding was a fifth of the CPU time. On the 40 SROIE receipts the twin spends
  1.67 instead of 2.05 CPU s a page with the same TOTAL, date, vendor and address scores; about
  one line in eight reads differently, some better ("GRAND TOTAL:" instead of "GRANDTOTAL:"), some
  worse ("22,00" for "22.00"). ``AWS_TWIN_OCR_REC_MIN_WIDTH=320`` restores RapidOCR's padding;
- each session runs on ``AWS_TWIN_OCR_THREADS`` threads (default: the cores shared out among the
  engines) that sleep instead of spinning while they wait (ONNX Runtime spins by default, which
  on a busy machine burns half the CPU for nothing).

``bench/expense_bench.py`` prints the pages per second and the accuracy this gives. Results carry
real geometry, normalised to 0..1 of the page, and confidences from the recogniser's scores: a
line's confidence is RapidOCR's line score, a word's the mean of its characters' scores.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger("aws_twin.textract")


def _env_int(name: str, default: int, low: int = 1) -> int:
    try:
        return max(low, int(os.environ.get(name, default)))
    except ValueError:
        return default


#: longest side of the image the text detector sees
DET_MAX_SIDE = _env_int("AWS_TWIN_OCR_DET_MAX_SIDE", 1280, 320)
#: crops per recognition batch
REC_BATCH = _env_int("AWS_TWIN_OCR_REC_BATCH", 1)
#: the narrowest input of the recognition model, in pixels (RapidOCR pads every crop to 320; 0 keeps that)
REC_MIN_WIDTH = _env_int("AWS_TWIN_OCR_REC_MIN_WIDTH", 96, 0)
#: engines per process (pages read at once)
ENGINES = _env_int("AWS_TWIN_OCR_ENGINES", min(4, os.cpu_count() or 1))
#: ONNX Runtime threads per session
THREADS = _env_int("AWS_TWIN_OCR_THREADS", max(1, (os.cpu_count() or 1) // ENGINES))

_POOL: queue.LifoQueue | None = None
_MADE = 0
_LOCK = threading.Lock()

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


def _session_options():
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 4
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = THREADS
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return opts


def _new_engine():
    """A RapidOCR with this module's session options and bounded detection size."""
    from rapidocr_onnxruntime import RapidOCR
    from rapidocr_onnxruntime.ch_ppocr_det.utils import DetPreProcess
    from rapidocr_onnxruntime.utils import infer_engine

    cls = infer_engine.OrtInferSession
    original = cls.__dict__["_init_sess_opts"]
    cls._init_sess_opts = staticmethod(lambda config: _session_options())
    try:
        ocr = RapidOCR(rec_batch_num=REC_BATCH)
    finally:
        cls._init_sess_opts = original
    if REC_MIN_WIDTH:
        ocr.text_rec.rec_image_shape = [*ocr.text_rec.rec_image_shape[:2], REC_MIN_WIDTH]
    det = ocr.text_det
    preprocess = DetPreProcess(DET_MAX_SIDE, "max", det.mean, det.std)
    default = det.get_preprocess  # RapidOCR's own: scales small pages up (min side 736)
    det.get_preprocess = lambda max_wh: preprocess if max_wh > DET_MAX_SIDE else default(max_wh)
    return ocr


def _checkout():
    """An idle engine of the pool, made on demand up to ENGINES; waits when all are busy."""
    global _POOL, _MADE
    with _LOCK:
        if _POOL is None:
            _POOL = queue.LifoQueue()
        try:
            return _POOL.get_nowait()
        except queue.Empty:
            if _MADE < ENGINES:
                _MADE += 1
                log.info("loading RapidOCR engine %d of %d (%d thread(s) each)", _MADE, ENGINES, THREADS)
                make = True
            else:
                make = False
    if make:
        try:
            return _new_engine()
        except BaseException:
            with _LOCK:
                _MADE -= 1
            raise
    return _POOL.get()


def read_page(image: np.ndarray) -> OcrPage:
    """OCR one RGB page (H, W, 3 uint8) into lines and words."""
    h, w = image.shape[:2]
    # RapidOCR's loader treats arrays as BGR (OpenCV); hand it BGR
    bgr = np.ascontiguousarray(image[:, :, ::-1])
    ocr = _checkout()
    try:
        result, _ = ocr(bgr, return_word_box=True)
    finally:
        _POOL.put(ocr)
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
