"""Rekognition DetectLabels on the twin (boto3 over HTTP, --strict): EfficientNet-Lite0's ImageNet
answers rolled up WordNet's hypernyms, boxes from activation maps, the request's filters, image
properties measured on the pixels, and Rekognition's errors for bad input."""

from __future__ import annotations

import io
import json
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import sklearn
from botocore.exceptions import ClientError
from PIL import Image

FLOWER = Path(sklearn.__file__).parent / "datasets" / "images" / "flower.jpg"
HOPPER = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
TAXONOMY = json.loads(
    (Path(__file__).resolve().parents[2] / "aws_twin/services/rekognition/taxonomy.json").read_text()
)


@pytest.fixture(scope="module")
def rek(twin):
    return twin.client("rekognition")


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def test_labels_are_wordnet_names_with_parents_no_less_sure(rek):
    labels = rek.detect_labels(Image={"Bytes": FLOWER.read_bytes()}, MinConfidence=1)["Labels"]
    by_name = {label["Name"]: label for label in labels}
    assert labels and labels == sorted(labels, key=lambda x: -x["Confidence"])
    # sklearn's photo of a bee on a daisy: the daisy, a flower, a plant (WordNet's hypernyms)
    assert "Daisy" in by_name and [p["Name"] for p in by_name["Daisy"]["Parents"]] == ["Flower", "Plant"]
    assert by_name["Daisy"]["Categories"] == [{"Name": "Plants and Flowers"}]
    for label in labels:
        expected = TAXONOMY["labels"][label["Name"]]
        assert [p["Name"] for p in label["Parents"]] == expected["parents"]
        for parent in label["Parents"]:  # a parent holds all its children's mass
            if parent["Name"] in by_name:
                assert by_name[parent["Name"]]["Confidence"] >= label["Confidence"] - 1e-3
    # the plant's confidence is the mass of every plant class, so at least the daisy's
    assert by_name["Plant"]["Confidence"] >= by_name["Daisy"]["Confidence"]


def test_boxes_for_objects_not_for_abstract_parents(rek):
    out = rek.detect_labels(Image={"Bytes": HOPPER.read_bytes()}, MinConfidence=20)
    boxed = [label for label in out["Labels"] if label["Instances"]]
    assert boxed, [label["Name"] for label in out["Labels"]]
    for label in boxed:
        for inst in label["Instances"]:
            box = inst["BoundingBox"]
            assert 0 <= box["Left"] < 1 and 0 <= box["Top"] < 1
            assert 0 < box["Width"] <= 1 - box["Left"] + 1e-6 and 0 < box["Height"] <= 1 - box["Top"] + 1e-6
            assert inst["Confidence"] <= label["Confidence"] + 1e-6
    for label in out["Labels"]:
        if label["Name"] in ("Clothing", "Animal", "Vehicle"):
            assert label["Instances"] == []


def test_min_confidence_max_labels_and_filters(rek, s3):
    s3.create_bucket(Bucket="rek-labels")
    s3.put_object(Bucket="rek-labels", Key="flower.jpg", Body=FLOWER.read_bytes())
    image = {"S3Object": {"Bucket": "rek-labels", "Name": "flower.jpg"}}
    everything = rek.detect_labels(Image=image, MinConfidence=0.5)["Labels"]
    default = rek.detect_labels(Image=image)["Labels"]  # MinConfidence defaults to 55
    assert [x["Name"] for x in default] == [x["Name"] for x in everything if x["Confidence"] >= 55]
    assert len(rek.detect_labels(Image=image, MinConfidence=0.5, MaxLabels=3)["Labels"]) == 3
    names = [x["Name"] for x in everything]
    keep = names[1:3]
    only = rek.detect_labels(
        Image=image, MinConfidence=0.5, Settings={"GeneralLabels": {"LabelInclusionFilters": keep}}
    )["Labels"]
    assert sorted(x["Name"] for x in only) == sorted(keep)
    without = rek.detect_labels(
        Image=image,
        MinConfidence=0.5,
        Settings={"GeneralLabels": {"LabelCategoryExclusionFilters": ["Plants and Flowers"]}},
    )["Labels"]
    assert without and all(x["Categories"][0]["Name"] != "Plants and Flowers" for x in without)
    assert len(without) == len([x for x in everything if x["Categories"][0]["Name"] != "Plants and Flowers"])


def test_image_properties_measured_on_the_pixels(rek):
    arr = np.zeros((120, 200, 3), dtype=np.uint8)
    arr[:, :150] = (200, 30, 30)  # three quarters red
    arr[:, 150:] = (250, 250, 250)
    out = rek.detect_labels(Image={"Bytes": _png(arr)}, Features=["IMAGE_PROPERTIES"])
    assert out["Labels"] == []
    props = out["ImageProperties"]
    gray = arr.astype(float) @ [0.299, 0.587, 0.114]
    assert props["Quality"]["Brightness"] == pytest.approx(gray.mean() / 255 * 100, abs=2)
    colours = props["DominantColors"]
    assert colours[0]["SimplifiedColor"] == "red" and colours[0]["PixelPercent"] == pytest.approx(75, abs=3)
    assert sum(c["PixelPercent"] for c in colours) == pytest.approx(100, abs=0.5)


@pytest.mark.parametrize(
    "image, code",
    [
        ({"Bytes": b"not an image at all"}, "InvalidImageFormatException"),
        ({"Bytes": b"\xff\xd8\xff" + b"\0" * 100}, "InvalidImageFormatException"),
        ({"Bytes": b"\xff\xd8\xff" + b"\0" * (5 * 1024 * 1024 + 1)}, "ImageTooLargeException"),
        ({"S3Object": {"Bucket": "rek-labels-missing", "Name": "x.jpg"}}, "InvalidS3ObjectException"),
        ({"Bytes": _png(np.zeros((40, 40, 3), np.uint8))}, "InvalidParameterException"),
    ],
)
def test_bad_input_answers_rekognition_errors(rek, image, code):
    with pytest.raises(ClientError) as err:
        rek.detect_labels(Image=image)
    assert err.value.response["Error"]["Code"] == code
    assert err.value.response["Error"]["Message"]


def test_unknown_feature_is_invalid_parameter(rek):
    with pytest.raises(ClientError) as err:
        rek.detect_labels(Image={"Bytes": FLOWER.read_bytes()}, Features=["FACES"])
    assert err.value.response["Error"]["Code"] == "InvalidParameterException"
    assert "FACES" in err.value.response["Error"]["Message"]
