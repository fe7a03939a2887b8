"""A signature detector for AnalyzeDocument's ``SIGNATURES`` feature: handwritten ink, told from
printed text by the shape of its strokes (not by what the OCR reads: the recogniser reads a
legible signature as a line of text, with a high score, as Textract does too).

Method (``detect``), on the page image and the OCR lines of the page:

1. Ink: pixels darker than Otsu's threshold (at most 170 of 255). Rule lines (a horizontal run
   longer than 1/25 of the page, a vertical one also longer than 4 text heights, as pen strokes
   often run down that far) are taken out, so a signature written across its
   "sign here" line stays apart from the line, and the line itself is no candidate; a stroke the
   line cut is joined again across the line's band.
2. Candidate regions: each OCR line (the ink components it holds: each component goes to the
   smallest line holding at least half of it), and the clusters of ink components no OCR line
   holds (components closer than about one text height joined). "Text height" is the median
   height of the page's OCR lines.
3. A region is handwriting when its strokes are
   - long: at least ``MIN_JOINED`` of its ink lies in components ``JOIN_WIDTH`` text heights wide
     or tall (cursive joins letters into one stroke, and signatures are written large; a printed
     letter, touching pairs included, fits in a text height);
   - slanted and curved: at most ``MAX_AXIS`` of its strong edge pixels face within 12 degrees of
     the page axes (printed type is upright stems and flat bars; pen strokes turn through every
     direction), and
   - thin: ink covers at most ``MAX_DENSITY`` of its box (logos and barcodes are filled);
   and the region is ``MIN_HEIGHT`` to ``MAX_HEIGHT`` text heights tall, at least ``MIN_WIDTH``
   text heights wide (a name's length; a pen circle round a total or a tick is narrower) and
   wider than high (1.2 times); a "PAID" stamp over a receipt is taller than ``MAX_HEIGHT``.
4. Regions that overlap or lie within half a text height merge into one signature (a first and a
   last name written apart); the box is the merged ink's. Confidence is 50 to 99, growing with
   the smallest margin of the three stroke tests.

What it does not do: it does not read handwritten text differently from print (the LINE/WORD
blocks stay the OCR's), and very neat print-like handwriting, or an italic script typeface in
print, are judged by the same stroke tests. ``docs/textract-twin.md`` says how it was checked.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .ocr import OcrPage

#: the page's longest side the detector works at (larger pages are scaled down)
WORK_SIDE = 1600
MIN_JOINED = 0.45
JOIN_WIDTH = 1.5
MAX_AXIS = 0.35
MAX_DENSITY = 0.2
MIN_HEIGHT = 0.8
MAX_HEIGHT = 4.0
#: a vertical rule is a straight run at least this many text heights long (and 1/25 of the page;
#: a horizontal one 1/25 of the page: pen strokes are seldom long and flat, page edges often are)
RULE_TEXT_HEIGHTS = 4.0
MIN_WIDTH = 2.8


@dataclass
class Signature:
    box: tuple[float, float, float, float]  # left, top, right, bottom, normalised to the page
    confidence: float  # 0..100


@dataclass
class _Region:
    labels: set[int]
    x0: int
    y0: int
    x1: int
    y1: int
    score: float = 0.0


def _ink(gray: np.ndarray) -> np.ndarray:
    import cv2

    otsu, _ = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return (gray < min(float(otsu), 170.0)).astype(np.uint8)


def _without_rules(ink: np.ndarray, text_h: float) -> np.ndarray:
    """The ink less its rule lines; a stroke that crossed a rule is joined again across the gap
    (only inside the rule's band, so text lines above and below one stay apart)."""
    import cv2

    h, w = ink.shape
    long = max(25, int(RULE_TEXT_HEIGHTS * text_h))
    horizontal = cv2.morphologyEx(ink, cv2.MORPH_OPEN, np.ones((1, max(25, w // 25)), np.uint8))
    vertical = cv2.morphologyEx(ink, cv2.MORPH_OPEN, np.ones((max(long, h // 25), 1), np.uint8))
    h_band = cv2.dilate(horizontal, np.ones((3, 1), np.uint8))
    v_band = cv2.dilate(vertical, np.ones((1, 3), np.uint8))
    clean = ink & (1 - (h_band | v_band))
    bridged_v = cv2.morphologyEx(clean, cv2.MORPH_CLOSE, np.ones((15, 1), np.uint8)) & h_band
    bridged_h = cv2.morphologyEx(clean, cv2.MORPH_CLOSE, np.ones((1, 15), np.uint8)) & v_band
    return clean | bridged_v | bridged_h


def detect(image: np.ndarray, page: OcrPage) -> list[Signature]:
    """The signatures on one page (RGB uint8 image, its OCR lines)."""
    import cv2

    h0, w0 = image.shape[:2]
    scale = min(1.0, WORK_SIDE / max(h0, w0))
    gray = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    if scale < 1.0:
        gray = cv2.resize(gray, (round(w0 * scale), round(h0 * scale)), interpolation=cv2.INTER_AREA)
    h, w = gray.shape
    heights = [ln.height * h for ln in page.lines if ln.height > 0]
    text_h = float(np.median(heights)) if heights else 0.02 * h
    ink = _without_rules(_ink(gray), text_h)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    min_area = max(6, int(0.02 * text_h * text_h))
    keep = np.zeros(count, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_area

    # each component goes to the OCR line holding most of it (half of it at least; of lines that
    # hold it whole, the smallest: a label under a tall signature's line box is the label's)
    boxes = [
        (int(ln.left * w), int(ln.top * h), int(np.ceil(ln.right * w)), int(np.ceil(ln.bottom * h)))
        for ln in page.lines
    ]
    best = np.zeros(count, float)
    owner = np.full(count, -1)
    for n in sorted(range(len(boxes)), key=lambda n: -_area(boxes[n])):
        x0, y0, x1, y1 = boxes[n]
        inside = np.bincount(labels[y0:y1, x0:x1].ravel(), minlength=count) / np.maximum(1, stats[:, 4])
        better = (inside >= 0.5) & (inside >= best) & keep
        best[better], owner[better] = inside[better], n
    regions: list[_Region] = []
    for n in range(len(boxes)):
        held = {int(i) for i in np.nonzero(owner == n)[0]}
        if held:
            regions.append(_bounded(held, stats))
    owned = {int(i) for i in np.nonzero(owner >= 0)[0]}
    loose = np.isin(labels, [i for i in range(1, count) if keep[i] and i not in owned])
    if loose.any():
        k = max(3, int(round(text_h)))
        joined = cv2.dilate(loose.astype(np.uint8), np.ones((max(3, k // 2), k), np.uint8))
        n, groups = cv2.connectedComponents(joined, connectivity=8)
        for g in range(1, n):
            held = set(np.unique(labels[(groups == g) & loose]).tolist()) - {0}
            if held:
                regions.append(_bounded(held, stats))

    found = [r for r in regions if _judge(r, labels, stats, gray, text_h)]
    merged = _merge(found, text_h)
    out = []
    for r in merged:
        box = (r.x0 / w, r.y0 / h, r.x1 / w, r.y1 / h)
        out.append(Signature(tuple(round(min(1.0, max(0.0, v)), 6) for v in box), round(r.score, 4)))
    out.sort(key=lambda s: (s.box[1], s.box[0]))
    return out


def _area(box: tuple[int, int, int, int]) -> int:
    return max(1, (box[2] - box[0]) * (box[3] - box[1]))


def _bounded(held: set[int], stats: np.ndarray) -> _Region:
    idx = np.fromiter(held, int)
    x0 = int(stats[idx, 0].min())
    y0 = int(stats[idx, 1].min())
    x1 = int((stats[idx, 0] + stats[idx, 2]).max())
    y1 = int((stats[idx, 1] + stats[idx, 3]).max())
    return _Region(held, x0, y0, x1, y1)


def features(region: _Region, labels: np.ndarray, stats: np.ndarray, gray: np.ndarray, text_h: float) -> dict:
    """The stroke measures a region is judged by (see the module's docstring)."""
    import cv2

    idx = np.fromiter(region.labels, int)
    areas = stats[idx, cv2.CC_STAT_AREA].astype(float)
    extent = np.maximum(stats[idx, cv2.CC_STAT_WIDTH], stats[idx, cv2.CC_STAT_HEIGHT]).astype(float)
    joined = float(areas[extent >= JOIN_WIDTH * text_h].sum() / areas.sum())
    bw, bh = region.x1 - region.x0, region.y1 - region.y0
    density = float(areas.sum() / max(1, bw * bh))
    mask = np.isin(labels[region.y0 : region.y1, region.x0 : region.x1], idx)
    crop = gray[region.y0 : region.y1, region.x0 : region.x1].astype(np.float32)
    gx = cv2.Sobel(crop, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(crop, cv2.CV_32F, 0, 1, ksize=3)
    mag = np.hypot(gx, gy)
    near = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    strong = near & (mag > 0.3 * mag[near].max()) if near.any() and mag[near].max() > 0 else near
    angle = np.degrees(np.arctan2(gy[strong], gx[strong])) % 90.0
    axis = float(np.mean((angle < 12) | (angle > 78))) if angle.size else 1.0
    return {"joined": joined, "axis": axis, "density": density, "width": bw, "height": bh}


def _judge(region: _Region, labels, stats, gray, text_h: float) -> bool:
    f = features(region, labels, stats, gray, text_h)
    if not MIN_HEIGHT * text_h <= f["height"] <= MAX_HEIGHT * text_h:
        return False
    if f["width"] < MIN_WIDTH * text_h or f["width"] < 1.2 * f["height"]:
        return False
    if f["joined"] < MIN_JOINED or f["axis"] > MAX_AXIS or f["density"] > MAX_DENSITY:
        return False
    margins = (
        (f["joined"] - MIN_JOINED) / (1 - MIN_JOINED),
        (MAX_AXIS - f["axis"]) / MAX_AXIS,
        (MAX_DENSITY - f["density"]) / MAX_DENSITY,
    )
    region.score = 50.0 + 49.0 * min(1.0, min(margins) * 3)
    return True


def _merge(regions: list[_Region], text_h: float) -> list[_Region]:
    """Regions that overlap or lie within half a text height of each other become one."""
    gap = 0.5 * text_h
    out = [_Region(set(r.labels), r.x0, r.y0, r.x1, r.y1, r.score) for r in regions]
    changed = True
    while changed:
        changed = False
        for i in range(len(out)):
            for j in range(i + 1, len(out)):
                a, b = out[i], out[j]
                if a.x0 - gap <= b.x1 and b.x0 - gap <= a.x1 and a.y0 - gap <= b.y1 and b.y0 - gap <= a.y1:
                    a.labels |= b.labels
                    a.x0, a.y0 = min(a.x0, b.x0), min(a.y0, b.y0)
                    a.x1, a.y1 = max(a.x1, b.x1), max(a.y1, b.y1)
                    a.score = max(a.score, b.score)
                    del out[j]
                    changed = True
                    break
            if changed:
                break
    return out
