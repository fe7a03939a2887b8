"""Tiling for small-object detection, and page-level evaluation of detections (pure Python).

After the AWS blog "Detect small shapes and objects within your images using Amazon Rekognition
Custom Labels": a page is cut into ``tiles_x`` x ``tiles_y`` overlapping tiles; a model trained on
the tiles sees small symbols larger than a model that sees the whole page at its input size.

Boxes are ``{"label", "left", "top", "width", "height"}`` in pixels (``confidence`` on detections).

- :func:`tile_grid`: the tiles of a page (pixel rectangles covering it, ``overlap`` shared);
- :func:`boxes_on_tile`: a page's boxes clipped to a tile, in tile coordinates, each kept only when
  at least ``min_visible`` of its area is on the tile;
- :func:`keep_negatives`: which tiles without objects are kept (at most ``ratio`` x the tiles with
  objects, a deterministic choice);
- :func:`tile_to_page`: a detection on a tile (Rekognition's ratio box) -> page pixels;
- :func:`nms`: non-maximum suppression per label (overlapping tiles find a symbol twice);
- :func:`match` / :func:`label_table`: detections matched to the true boxes (IoU >= 0.5, best
  confidence first, one true box per detection) -> per-label precision, recall, F1.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from typing import Any

Box = dict[str, Any]


def tile_grid(width: int, height: int, tiles_x: int, tiles_y: int, overlap: float) -> list[dict[str, int]]:
    """``tiles_x`` x ``tiles_y`` tiles covering a ``width`` x ``height`` page, row by row.

    Along an axis of length L cut in n tiles sharing ``overlap`` (a fraction of the tile) with
    their neighbour, a tile is ``t = L / (n - (n - 1) * overlap)`` long and the tiles start every
    ``t * (1 - overlap)``; the last one ends at L. Pixel edges are rounded.
    Returns ``[{"index", "row", "col", "left", "top", "width", "height"}]``.
    """
    if tiles_x < 1 or tiles_y < 1:
        raise ValueError(f"tile counts must be >= 1, got {tiles_x} x {tiles_y}")
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")

    def spans(length: int, n: int) -> list[tuple[int, int]]:
        size = length / (n - (n - 1) * overlap)
        step = size * (1 - overlap)
        out = []
        for i in range(n):
            start = round(i * step)
            end = length if i == n - 1 else round(i * step + size)
            out.append((start, end - start))
        return out

    tiles = []
    for row, (top, h) in enumerate(spans(height, tiles_y)):
        for col, (left, w) in enumerate(spans(width, tiles_x)):
            tiles.append(
                {
                    "index": len(tiles),
                    "row": row,
                    "col": col,
                    "left": left,
                    "top": top,
                    "width": w,
                    "height": h,
                }
            )
    return tiles


def area(box: Box) -> float:
    return max(0.0, float(box["width"])) * max(0.0, float(box["height"]))


def intersection(a: Box, b: Box) -> Box | None:
    """The overlap of two rectangles (a's other keys kept), None when they do not overlap."""
    left = max(a["left"], b["left"])
    top = max(a["top"], b["top"])
    right = min(a["left"] + a["width"], b["left"] + b["width"])
    bottom = min(a["top"] + a["height"], b["top"] + b["height"])
    if right <= left or bottom <= top:
        return None
    return {**a, "left": left, "top": top, "width": right - left, "height": bottom - top}


def iou(a: Box, b: Box) -> float:
    inter = intersection(a, b)
    if inter is None:
        return 0.0
    common = area(inter)
    return common / (area(a) + area(b) - common)


def boxes_on_tile(boxes: Iterable[Box], tile: dict, min_visible: float) -> list[Box]:
    """The boxes clipped to ``tile``, in the tile's coordinates, keeping a box only when at least
    ``min_visible`` (0-1) of its area lies on the tile."""
    out = []
    for box in boxes:
        inter = intersection(box, tile)
        if inter is None or area(box) <= 0 or area(inter) / area(box) < min_visible:
            continue
        out.append({**inter, "left": inter["left"] - tile["left"], "top": inter["top"] - tile["top"]})
    return out


def _rank(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def keep_negatives(negatives: list[str], positives: int, ratio: float) -> list[str]:
    """At most ``floor(ratio * positives)`` of the ``negatives`` (tile names), chosen by a hash of
    the name: the same tiles on every run and retry, spread over the pages."""
    limit = math.floor(max(0.0, ratio) * positives + 1e-9)
    return sorted(sorted(negatives, key=_rank)[:limit])


def tile_name(page_key: str, tile: dict) -> str:
    """``<page without extension>_r<row>c<col>.png``."""
    stem = page_key.rsplit(".", 1)[0]
    return f"{stem}_r{tile['row']}c{tile['col']}.png"


def ratio_to_pixels(bbox: dict, width: int, height: int) -> dict[str, float]:
    """Rekognition's BoundingBox (ratios of the image) -> pixels of a ``width`` x ``height`` image."""
    return {
        "left": float(bbox["Left"]) * width,
        "top": float(bbox["Top"]) * height,
        "width": float(bbox["Width"]) * width,
        "height": float(bbox["Height"]) * height,
    }


def tile_to_page(bbox: dict, tile: dict) -> dict[str, float]:
    """A detection's BoundingBox on a tile (ratios of the tile) -> page pixels."""
    px = ratio_to_pixels(bbox, tile["width"], tile["height"])
    return {**px, "left": px["left"] + tile["left"], "top": px["top"] + tile["top"]}


def nms(detections: list[Box], iou_threshold: float) -> list[Box]:
    """Per label, best confidence first: a detection is dropped when it overlaps a kept one of the
    same label with IoU above ``iou_threshold``. Ties keep the earlier detection."""
    order = sorted(range(len(detections)), key=lambda i: (-float(detections[i]["confidence"]), i))
    kept: list[Box] = []
    for i in order:
        det = detections[i]
        if all(k["label"] != det["label"] or iou(k, det) <= iou_threshold for k in kept):
            kept.append(det)
    return kept


def match(detections: list[Box], truths: list[Box], iou_threshold: float = 0.5) -> dict[str, Any]:
    """Greedy matching on one page, per label: detections best confidence first, each to the
    unmatched true box of its label with the highest IoU, when that IoU is >= ``iou_threshold``.

    Returns ``{"pairs": [(detection index, truth index, iou)], "false_positives": [detection
    indexes], "missed": [truth indexes]}``.
    """
    order = sorted(range(len(detections)), key=lambda i: (-float(detections[i]["confidence"]), i))
    used: set[int] = set()
    pairs, false_positives = [], []
    for i in order:
        det = detections[i]
        best, best_iou = None, iou_threshold
        for j, truth in enumerate(truths):
            if j in used or truth["label"] != det["label"]:
                continue
            value = iou(det, truth)
            if value >= best_iou:
                best, best_iou = j, value
        if best is None:
            false_positives.append(i)
        else:
            used.add(best)
            pairs.append((i, best, round(best_iou, 6)))
    missed = [j for j in range(len(truths)) if j not in used]
    return {"pairs": pairs, "false_positives": sorted(false_positives), "missed": missed}


def count(pages: Iterable[tuple[list[Box], list[Box]]], iou_threshold: float = 0.5) -> dict[str, dict]:
    """``{label: {"true_positives", "false_positives", "missed", "boxes"}}`` over pages of
    (detections, truths)."""
    out: dict[str, dict[str, int]] = {}

    def row(label: str) -> dict[str, int]:
        return out.setdefault(label, {"true_positives": 0, "false_positives": 0, "missed": 0, "boxes": 0})

    for detections, truths in pages:
        result = match(detections, truths, iou_threshold)
        for i, _, _ in result["pairs"]:
            row(detections[i]["label"])["true_positives"] += 1
        for i in result["false_positives"]:
            row(detections[i]["label"])["false_positives"] += 1
        for j in result["missed"]:
            row(truths[j]["label"])["missed"] += 1
        for truth in truths:
            row(truth["label"])["boxes"] += 1
    return dict(sorted(out.items()))


def scores(tp: int, fp: int, fn: int) -> dict[str, float]:
    """precision tp/(tp+fp), recall tp/(tp+fn), F1 their harmonic mean; 0 where undefined."""
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)}


def label_table(counts: dict[str, dict]) -> list[dict[str, Any]]:
    """One row per label (precision, recall, F1, boxes found / missed, false detections) and an
    ``ALL`` row (micro average: the counts summed)."""
    rows = []
    totals = {"true_positives": 0, "false_positives": 0, "missed": 0, "boxes": 0}
    for label, c in sorted(counts.items()):
        for k in totals:
            totals[k] += c[k]
        rows.append(
            {
                "label": label,
                **scores(c["true_positives"], c["false_positives"], c["missed"]),
                "boxes": c["boxes"],
                "found": c["true_positives"],
                "missed": c["missed"],
                "false_detections": c["false_positives"],
            }
        )
    rows.append(
        {
            "label": "ALL",
            **scores(totals["true_positives"], totals["false_positives"], totals["missed"]),
            "boxes": totals["boxes"],
            "found": totals["true_positives"],
            "missed": totals["missed"],
            "false_detections": totals["false_positives"],
        }
    )
    return rows
