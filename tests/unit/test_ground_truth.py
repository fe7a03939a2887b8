"""The Ground Truth manifest writer and reader (aws_ml_provider.utils.ground_truth) and the label
decisions of the Rekognition workflow (aws_ml_provider.utils.rekognition): what is written reads
back the same, a bad line is reported by number with the reason and never hides the others, and
images fall on the right side of each target's own threshold and review band."""

from __future__ import annotations

import json

import pytest
from aws_ml_provider.utils import ground_truth as gt
from aws_ml_provider.utils.rekognition import (
    LABELLED,
    NONE_OF_THESE,
    REJECTED,
    REVIEW,
    decide,
    is_hit,
    label_records,
    review_answer,
    validate_targets,
)

LABELS = [
    {
        "Name": "Cat",
        "Confidence": 97.2,
        "Parents": [{"Name": "Pet"}, {"Name": "Animal"}],
        "Aliases": [{"Name": "Kitten"}],
        "Instances": [{"BoundingBox": {}, "Confidence": 95}],
    },
    {"Name": "Dog", "Confidence": 61.0, "Parents": [], "Aliases": [], "Instances": []},
    {"Name": "Cup", "Confidence": 12.5},
]


def test_classification_manifest_round_trips():
    ids = gt.class_ids(["Dog", "Cat", "Dog"])
    assert ids == {"Cat": 0, "Dog": 1}
    lines = [
        gt.classification_line("s3://b/Cat/1.jpg", "Cat", class_id=ids["Cat"], human_annotated=True),
        gt.classification_line("s3://b/Dog/2.jpg", "Dog", class_id=ids["Dog"], confidence=0.91),
    ]
    text = gt.dumps(lines)
    assert text.count("\n") == 2 and all(json.loads(row) for row in text.splitlines())
    first = json.loads(text.splitlines()[0])
    assert first["class"] == 0 and first["class-metadata"]["type"] == "groundtruth/image-classification"
    manifest = gt.read_manifest(text)
    assert manifest.errors == []
    assert [(e.source_ref, e.labels, e.human_annotated) for e in manifest.entries] == [
        ("s3://b/Cat/1.jpg", ["Cat"], True),
        ("s3://b/Dog/2.jpg", ["Dog"], False),
    ]
    assert manifest.labels == ["Cat", "Dog"]


def test_detection_manifest_round_trips():
    class_map = gt.class_ids(["Cup", "Cat"])
    line = gt.detection_line(
        "s3://b/scene.jpg",
        [
            {"label": "Cat", "left": 10.4, "top": 20, "width": 100, "height": 80},
            {"label": "Cup", "left": 200, "top": 30, "width": 40, "height": 50, "confidence": 0.5},
        ],
        image_size=(640, 480, 3),
        class_map=class_map,
    )
    assert line["bounding-box"]["annotations"][0] == {
        "class_id": class_map["Cat"],
        "left": 10,
        "top": 20,
        "width": 100,
        "height": 80,
    }
    (entry,) = gt.read_manifest(gt.dumps([line])).entries
    assert entry.kind == gt.DETECTION and entry.image_size == {"width": 640, "height": 480, "depth": 3}
    assert [b["label"] for b in entry.boxes] == ["Cat", "Cup"]
    with pytest.raises(ValueError, match="not in the class map"):
        gt.detection_line(
            "s3://b/x.jpg",
            [{"label": "Dog", "left": 0, "top": 0, "width": 1, "height": 1}],
            image_size=(1, 1, 3),
            class_map=class_map,
        )


def test_bad_lines_are_reported_by_number_and_the_good_ones_kept():
    good = gt.dumps([gt.classification_line("s3://b/a.jpg", "Cat", class_id=0)]).strip()
    text = "\n".join(
        [
            good,
            "{not json",
            json.dumps({"source-ref": "http://x/a.jpg"}),
            json.dumps({"source-ref": "s3://b/c.jpg"}),
            json.dumps({"source-ref": "s3://b/d.jpg", "x": 0, "x-metadata": {"type": "groundtruth/other"}}),
            "",
            good.replace("a.jpg", "e.jpg"),
        ]
    )
    manifest = gt.read_manifest(text)
    assert [e.line for e in manifest.entries] == [1, 7]
    reasons = {e["line"]: e["reason"] for e in manifest.errors}
    assert set(reasons) == {2, 3, 4, 5}
    assert "not JSON" in reasons[2] and "source-ref" in reasons[3]
    assert "no label attribute" in reasons[4] and "groundtruth/other" in reasons[5]


def test_writer_refuses_what_custom_labels_would_refuse():
    with pytest.raises(ValueError, match="s3://"):
        gt.classification_line("/local/a.jpg", "Cat", class_id=0)
    with pytest.raises(ValueError, match="empty class name"):
        gt.classification_line("s3://b/a.jpg", "", class_id=0)


def test_label_records_and_hits():
    records = label_records(LABELS)
    assert [r["name"] for r in records] == ["Cat", "Dog", "Cup"]
    assert records[0]["parents"] == ["Pet", "Animal"] and records[0]["instances"] == 1
    assert is_hit(records, {"kitten": 90})  # an alias, any case
    assert not is_hit(records, {"Dog": 70, "Horse": 10})
    custom = label_records(
        [
            {"Name": "scratch", "Confidence": 80, "Geometry": {}},
            {"Name": "scratch", "Confidence": 90, "Geometry": {}},
        ]
    )
    assert custom == [{"name": "scratch", "confidence": 90.0, "parents": [], "aliases": [], "instances": 2}]


@pytest.mark.parametrize(
    ("targets", "band", "decision", "labels", "candidates"),
    [
        ({"Cat": 90, "Dog": 90}, 30, LABELLED, ["Cat"], []),
        ({"Cat": 98, "Dog": 90}, 30, REVIEW, [], ["Cat", "Dog"]),  # 97.2 < 98, 61 >= 60
        ({"Cat": 98, "Dog": 90}, 1, REVIEW, [], ["Cat"]),  # Dog is 29 points below
        ({"Dog": 95}, 30, REJECTED, [], []),  # 61 < 65
        ({"Horse": 50}, 50, REJECTED, [], []),  # absent: never a candidate
        ({"Cat": 90, "Cup": 10}, 0, LABELLED, ["Cat", "Cup"], []),
    ],
)
def test_decide_against_each_targets_own_threshold(targets, band, decision, labels, candidates):
    out = decide(label_records(LABELS), validate_targets(targets), band)
    assert out["decision"] == decision
    assert out["labels"] == labels
    assert [c["label"] for c in out["candidates"]] == candidates
    assert set(out["scores"]) == set(targets)


def test_targets_and_answers_are_validated():
    with pytest.raises(ValueError, match="Cat"):
        validate_targets({"Cat": 120})
    with pytest.raises(ValueError, match="not a number"):
        validate_targets({"Cat": "high"})
    with pytest.raises(ValueError):
        validate_targets({})
    assert review_answer({"label": {"label": "Cat"}}) == "Cat"
    assert review_answer({"label": {"label": NONE_OF_THESE}}) is None
    assert review_answer({}) is None
