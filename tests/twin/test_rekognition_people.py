"""Rekognition DetectLabels' "Person" on the twin (boto3 over HTTP, --strict): people found by OpenCV's
HOG people detector and frontal-face cascade, one instance per person, boxed where the person is, merged
with the ImageNet labels under the request's MinConfidence, MaxLabels and filters.

The photos are the project's own (include/data/photos/, sources and licences in its LICENSE file) and
matplotlib's portrait of Grace Hopper."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import pytest
from PIL import Image

from aws_twin.services.rekognition import people

PHOTOS = Path(__file__).resolve().parents[2] / "include" / "data" / "photos"
HOPPER = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
#: where the person is, checked by hand on the 480-px photos (left, top, right, bottom as ratios):
#: darknet's data/person.jpg, the man in the blue jacket from his hat (y 73 of 318) to his boots
#: (y 282), x 143 to 207 of 480
MAN = (143 / 480, 73 / 318, 207 / 480, 282 / 318)
#: skimage's astronaut (Eileen Collins), from her hair (y 15) to the bottom edge, from her left
#: shoulder (x 20) to her right arm (x 340) of 480; the helmet she holds is not part of the box
ASTRONAUT = (20 / 480, 15 / 480, 340 / 480, 1.0)
NO_PEOPLE = ["chelsea_cat.jpg", "coffee_cup.jpg", "eagle.jpg", "giraffe.jpg", "horses.jpg", "dog_bicycle.jpg"]


@pytest.fixture(scope="module")
def rek(twin):
    return twin.client("rekognition")


def _labels(rek, photo: Path, **kw) -> dict[str, dict]:
    return {x["Name"]: x for x in rek.detect_labels(Image={"Bytes": photo.read_bytes()}, **kw)["Labels"]}


def _iou(box: dict, ref: tuple[float, float, float, float]) -> float:
    lft, t, r, b = box["Left"], box["Top"], box["Left"] + box["Width"], box["Top"] + box["Height"]
    iw = max(0.0, min(r, ref[2]) - max(lft, ref[0]))
    ih = max(0.0, min(b, ref[3]) - max(t, ref[1]))
    inter = iw * ih
    return inter / ((r - lft) * (b - t) + (ref[2] - ref[0]) * (ref[3] - ref[1]) - inter)


def _inside(x: float, y: float, box: tuple[float, float, float, float]) -> bool:
    return box[0] <= x <= box[2] and box[1] <= y <= box[3]


@pytest.mark.parametrize(("photo", "where"), [("person_dog_horse.jpg", MAN), ("astronaut.jpg", ASTRONAUT)])
def test_person_found_and_boxed_where_the_person_is(rek, photo, where):
    labels = _labels(rek, PHOTOS / photo)
    person = labels["Person"]
    assert person["Categories"] == [{"Name": "Person Description"}]
    assert len(person["Instances"]) == 1, person["Instances"]
    inst = person["Instances"][0]
    box = inst["BoundingBox"]
    assert _iou(box, where) >= 0.4, (box, where)
    centre = (box["Left"] + box["Width"] / 2, box["Top"] + box["Height"] / 2)
    assert _inside(*centre, where), (box, where)  # the box is centred on the person
    assert _inside((where[0] + where[2]) / 2, (where[1] + where[3]) / 2, (
        box["Left"], box["Top"], box["Left"] + box["Width"], box["Top"] + box["Height"]))  # fmt: skip
    assert 55 <= inst["Confidence"] <= person["Confidence"] <= 100
    # the ImageNet labels are still there beside it, person or not
    assert len(_labels(rek, PHOTOS / photo, MinConfidence=5)) > 1


def test_portrait_is_a_person(rek):
    person = _labels(rek, HOPPER)["Person"]
    assert len(person["Instances"]) == 1
    box = person["Instances"][0]["BoundingBox"]
    # Grace Hopper's face is in the upper middle of the photo; the person's box holds it
    assert box["Left"] <= 0.5 <= box["Left"] + box["Width"] and box["Top"] <= 0.3


@pytest.mark.parametrize("photo", NO_PEOPLE)
def test_no_person_where_there_is_none(rek, photo):
    labels = _labels(rek, PHOTOS / photo, MinConfidence=30)
    assert "Person" not in labels, labels.get("Person")
    assert people.detect(Image.open(PHOTOS / photo).convert("RGB")) == []


def test_person_obeys_min_confidence_max_labels_and_filters(rek):
    photo = PHOTOS / "person_dog_horse.jpg"
    person = _labels(rek, photo)["Person"]
    sure = person["Confidence"]
    assert "Person" not in _labels(rek, photo, MinConfidence=min(100.0, sure + 0.5))
    # the surest label is the person (98 against the ImageNet labels of this photo)
    top = rek.detect_labels(Image={"Bytes": photo.read_bytes()}, MaxLabels=1)["Labels"]
    assert [x["Name"] for x in top] == ["Person"] and top[0]["Instances"]
    only = _labels(rek, photo, Settings={"GeneralLabels": {"LabelInclusionFilters": ["Person"]}})
    assert list(only) == ["Person"] and only["Person"]["Instances"] == person["Instances"]
    assert "Person" not in _labels(
        rek, photo, Settings={"GeneralLabels": {"LabelExclusionFilters": ["Person"]}}
    )
    no_people = {"GeneralLabels": {"LabelCategoryExclusionFilters": ["Person Description"]}}
    assert "Person" not in _labels(rek, photo, Settings=no_people)
    by_category = {"GeneralLabels": {"LabelCategoryInclusionFilters": ["Person Description"]}}
    assert "Person" in _labels(rek, photo, Settings=by_category)


def test_nms_keeps_one_box_per_person():
    a = (10.0, 10.0, 50.0, 100.0, 90.0)
    b = (14.0, 12.0, 50.0, 100.0, 70.0)  # the same person, a little shifted: IoU about 0.8
    inner = (20.0, 30.0, 30.0, 60.0, 95.0)  # a box inside a: the same person
    other = (200.0, 10.0, 50.0, 100.0, 60.0)
    assert people.nms([a, b, other]) == [a, other]
    assert people.nms([a, inner]) == [inner]
    assert people.hog_confidence(0.0) == 50.0 and people.hog_confidence(2.0) > people.hog_confidence(1.0) > 85
