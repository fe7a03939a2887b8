"""tiling.py: tile grid, clipping, negatives, mapping back, NMS, matching and scores; expected values
worked out from the geometry in each test."""

from __future__ import annotations

import pytest
from aws_ml_provider.utils import tiling


def test_grid_without_overlap_splits_evenly():
    tiles = tiling.tile_grid(300, 200, 3, 2, 0.0)
    assert [(t["left"], t["top"], t["width"], t["height"]) for t in tiles] == [
        (0, 0, 100, 100), (100, 0, 100, 100), (200, 0, 100, 100),
        (0, 100, 100, 100), (100, 100, 100, 100), (200, 100, 100, 100),
    ]  # fmt: skip
    assert [(t["row"], t["col"]) for t in tiles] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]


def test_grid_with_overlap_shares_the_fraction_and_covers_the_page():
    # 2 tiles over 1000 px sharing 25 %: t = 1000 / (2 - 0.25) = 571.43, step = 428.57
    tiles = tiling.tile_grid(1000, 1000, 2, 1, 0.25)
    assert [(t["left"], t["width"]) for t in tiles] == [(0, 571), (429, 571)]
    shared = tiles[0]["left"] + tiles[0]["width"] - tiles[1]["left"]
    assert shared == 142  # ~ 0.25 * 571
    assert tiles[-1]["left"] + tiles[-1]["width"] == 1000


@pytest.mark.parametrize("bad", [(0, 1, 0.1), (1, 1, 1.0), (2, 2, -0.1)])
def test_grid_rejects_bad_settings(bad):
    with pytest.raises(ValueError):
        tiling.tile_grid(100, 100, *bad)


def test_boxes_clipped_and_kept_by_visible_fraction():
    tile = {"left": 100, "top": 0, "width": 100, "height": 100}
    inside = {"label": "a", "left": 120, "top": 10, "width": 20, "height": 20}
    # 10 x 20 box with 6 px on the tile: 60 % visible
    straddle = {"label": "b", "left": 96, "top": 50, "width": 10, "height": 20}
    # 10 x 10 box with 3 px on the tile: 30 % visible
    mostly_out = {"label": "c", "left": 197, "top": 50, "width": 10, "height": 10}
    outside = {"label": "d", "left": 0, "top": 0, "width": 10, "height": 10}
    kept = tiling.boxes_on_tile([inside, straddle, mostly_out, outside], tile, 0.5)
    assert kept == [
        {"label": "a", "left": 20, "top": 10, "width": 20, "height": 20},
        {"label": "b", "left": 0, "top": 50, "width": 6, "height": 20},
    ]
    assert [b["label"] for b in tiling.boxes_on_tile([inside, straddle, mostly_out], tile, 0.25)] == [
        "a",
        "b",
        "c",
    ]
    assert [b["label"] for b in tiling.boxes_on_tile([inside, straddle], tile, 1.0)] == ["a"]


def test_negatives_limited_by_ratio_and_deterministic():
    negatives = [f"p_r{i}c0.png" for i in range(10)]
    kept = tiling.keep_negatives(negatives, positives=4, ratio=0.5)
    assert len(kept) == 2 and set(kept) <= set(negatives)
    assert kept == tiling.keep_negatives(list(reversed(negatives)), 4, 0.5)
    assert tiling.keep_negatives(negatives, 4, 0) == []
    assert len(tiling.keep_negatives(negatives, 4, 10)) == 10  # no more than there are


def test_tile_detection_maps_back_to_page_pixels():
    tile = {"left": 429, "top": 200, "width": 571, "height": 400}
    box = tiling.tile_to_page({"Left": 0.5, "Top": 0.25, "Width": 0.1, "Height": 0.05}, tile)
    assert box == pytest.approx({"left": 429 + 285.5, "top": 200 + 100, "width": 57.1, "height": 20})


def test_iou_of_shifted_squares():
    a = {"left": 0, "top": 0, "width": 10, "height": 10}
    b = {"left": 5, "top": 0, "width": 10, "height": 10}
    assert tiling.iou(a, b) == pytest.approx(50 / 150)
    assert tiling.iou(a, {"left": 10, "top": 0, "width": 5, "height": 5}) == 0.0


def test_nms_merges_duplicates_of_one_label_only():
    dets = [
        {"label": "x", "left": 0, "top": 0, "width": 10, "height": 10, "confidence": 0.6},
        {"label": "x", "left": 1, "top": 0, "width": 10, "height": 10, "confidence": 0.9},  # IoU 90/110
        {"label": "y", "left": 0, "top": 0, "width": 10, "height": 10, "confidence": 0.5},
        {
            "label": "x",
            "left": 5,
            "top": 0,
            "width": 10,
            "height": 10,
            "confidence": 0.4,
        },  # IoU 60/140 with #2
    ]
    kept = tiling.nms(dets, 0.5)
    assert [(d["label"], d["confidence"]) for d in kept] == [("x", 0.9), ("y", 0.5), ("x", 0.4)]
    assert [(d["label"], d["confidence"]) for d in tiling.nms(dets, 0.4)] == [("x", 0.9), ("y", 0.5)]


def test_match_is_greedy_by_confidence_one_truth_each():
    truths = [
        {"label": "x", "left": 0, "top": 0, "width": 10, "height": 10},
        {"label": "x", "left": 100, "top": 0, "width": 10, "height": 10},
        {"label": "y", "left": 50, "top": 50, "width": 10, "height": 10},
    ]
    dets = [
        {"label": "x", "left": 1, "top": 0, "width": 10, "height": 10, "confidence": 0.7},  # IoU 0.818
        {"label": "x", "left": 0, "top": 0, "width": 10, "height": 10, "confidence": 0.9},  # IoU 1
        {"label": "x", "left": 50, "top": 50, "width": 10, "height": 10, "confidence": 0.8},  # wrong label
        {"label": "y", "left": 54, "top": 50, "width": 10, "height": 10, "confidence": 0.8},  # IoU 60/140
    ]
    result = tiling.match(dets, truths, 0.5)
    assert result["pairs"] == [(1, 0, 1.0)]
    assert result["false_positives"] == [0, 2, 3]
    assert result["missed"] == [1, 2]
    counts = tiling.count([(dets, truths)], 0.5)
    assert counts == {
        "x": {"true_positives": 1, "false_positives": 3 - 1, "missed": 1, "boxes": 2},
        "y": {"true_positives": 0, "false_positives": 1, "missed": 1, "boxes": 1},
    }
    table = {row["label"]: row for row in tiling.label_table(counts)}
    # x: P 1/3, R 1/2, F1 2*(1/6)/(5/6) = 0.4
    assert (table["x"]["precision"], table["x"]["recall"], table["x"]["f1"]) == (0.3333, 0.5, 0.4)
    assert table["y"]["f1"] == 0.0
    # ALL: tp 1, fp 3, fn 2 -> P 0.25, R 1/3, F1 2/7
    assert table["ALL"]["f1"] == round(2 / 7, 4) and table["ALL"]["boxes"] == 3


def test_scores_undefined_are_zero():
    assert tiling.scores(0, 0, 0) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
