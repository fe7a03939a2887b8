"""DetectLabels for real: EfficientNet-Lite0's ImageNet-1k probabilities rolled up a WordNet label
tree (``taxonomy.json``, written by ``scripts/rekognition_taxonomy.py``).

A label's confidence is the probability mass of the ImageNet classes under it (a "Cat" is as sure as
the tabby, tiger, Persian, Siamese and Egyptian cat classes together), so parents are at least as sure
as their children, as in Rekognition's answers. Boxes (``Instances``) come from class activation
maps (Zhou et al. 2016): the label's classifier weights applied to the network's last 7x7 feature
map, upsampled, thresholded at half its peak; each connected region is one instance.

ImageNet has no person class, so "Person" also comes from OpenCV's people detectors (``people.py``):
its confidence is the larger of its ImageNet mass and the surest detected person, and its instances
are the detected people.
"""

from __future__ import annotations

import functools
import json
import os

import numpy as np

from ...core.errors import AwsError
from . import backbone, people

MODEL_VERSION = "3.0"
DEFAULT_MIN_CONFIDENCE = 55.0
#: categories whose labels name things one can box
BOXABLE = {"Animals and Pets", "Vehicles and Automotive", "Person Description", "Everyday Objects",
           "Home and Indoors", "Technology and Computing", "Tools and Machinery", "Hobbies and Interests",
           "Sports", "Weapons and Military", "Apparel and Accessories"}  # fmt: skip
#: a CAM region is an instance when it holds this share of the map's peak and this much of the image
CAM_THRESHOLD = 0.5
MIN_BOX_AREA = 0.01
#: the label the people detectors feed (a WordNet label of taxonomy.json, category "Person Description")
PERSON = "Person"


@functools.cache
def taxonomy() -> dict:
    with open(os.path.join(os.path.dirname(__file__), "taxonomy.json")) as f:
        doc = json.load(f)
    names = sorted(doc["labels"])
    index = {n: i for i, n in enumerate(names)}
    member = np.zeros((len(names), 1000), dtype=np.float32)  # label x class: class is under label
    near = np.zeros(len(names), dtype=np.float32)  # classes the label is the leaf or its first parent of
    for c, cls in enumerate(doc["classes"]):
        seq = [cls["label"], *cls["ancestors"]]
        for depth, n in enumerate(seq):
            member[index[n], c] = 1.0
            if depth <= 1 and cls["category"] in BOXABLE:
                near[index[n]] += 1
    # a label names a thing one can box when, for most of its classes, it is the class itself or its
    # nearest named kind ("Tabby Cat", "Cat"); a label further up ("Animal", "Mammal") is not boxed
    boxable = near >= 0.5 * member.sum(axis=1)
    return {"names": names, "index": index, "member": member, "boxable": boxable, "labels": doc["labels"]}


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _filters(settings: dict | None) -> dict:
    general = (settings or {}).get("GeneralLabels") or {}
    return {k: set(general.get(k) or []) for k in (
        "LabelInclusionFilters", "LabelExclusionFilters",
        "LabelCategoryInclusionFilters", "LabelCategoryExclusionFilters")}  # fmt: skip


def _wanted(name: str, category: str, f: dict) -> bool:
    if f["LabelInclusionFilters"] and name not in f["LabelInclusionFilters"]:
        return False
    if name in f["LabelExclusionFilters"]:
        return False
    if f["LabelCategoryInclusionFilters"] and category not in f["LabelCategoryInclusionFilters"]:
        return False
    return category not in f["LabelCategoryExclusionFilters"]


def _boxes(cam: np.ndarray) -> list[tuple[float, float, float, float, float]]:
    """(left, top, width, height, peak share) of each region of a 7x7 activation map, as ratios."""
    from PIL import Image
    from scipy import ndimage

    side = 112
    up = np.asarray(Image.fromarray(cam.astype(np.float32), mode="F").resize((side, side), Image.BILINEAR))
    peak = float(up.max())
    if peak <= 0:
        return []
    regions, count = ndimage.label(up >= CAM_THRESHOLD * peak)
    out = []
    for i, sl in enumerate(ndimage.find_objects(regions), start=1):
        if sl is None:
            continue
        ys, xs = sl
        w, h = (xs.stop - xs.start) / side, (ys.stop - ys.start) / side
        if w * h < MIN_BOX_AREA:
            continue
        share = float(up[regions == i].max()) / peak
        out.append((xs.start / side, ys.start / side, w, h, share))
    return sorted(out, key=lambda b: -b[4])


def detect(img, params: dict) -> list[dict]:
    """The ``Labels`` of DetectLabels for an RGB PIL image and the request's parameters."""
    tax = taxonomy()
    net = backbone.Backbone.get()
    logits, features = net.run(backbone.to_input(img)[None], outputs=("logits", "features"))
    probs = softmax(logits[0])
    conf = np.clip(tax["member"] @ probs * 100.0, 0.0, 100.0)
    min_conf = params.get("MinConfidence")
    min_conf = DEFAULT_MIN_CONFIDENCE if min_conf is None else float(min_conf)
    max_labels = params.get("MaxLabels")
    f = _filters(params.get("Settings"))
    persons = []
    p = tax["index"][PERSON]
    if _wanted(PERSON, tax["labels"][PERSON].get("category", "Everyday Objects"), f):
        persons = people.detect(img)
        if persons:
            conf[p] = max(float(conf[p]), max(b[4] for b in persons))
    out = []
    for i in np.argsort(-conf):
        c = float(conf[i])
        if c < min_conf:
            break
        name = tax["names"][i]
        info = tax["labels"][name]
        category = info.get("category", "Everyday Objects")
        if not _wanted(name, category, f):
            continue
        instances = []
        if i == p:
            for left, top, width, height, pc in (b for b in persons if b[4] >= min_conf):
                instances.append({
                    "BoundingBox": {"Width": width, "Height": height, "Left": left, "Top": top},
                    "Confidence": pc,
                })  # fmt: skip
        elif tax["boxable"][i]:
            weights = tax["member"][i] * probs
            w = weights @ net.fc_w / max(float(weights.sum()), 1e-9)  # the label's 1280-d classifier
            cam = np.maximum(np.tensordot(w, features[0], axes=(0, 0)), 0)
            for left, top, width, height, share in _boxes(cam):
                instances.append({
                    "BoundingBox": {"Width": width, "Height": height, "Left": left, "Top": top},
                    "Confidence": c * share,
                })  # fmt: skip
        out.append({
            "Name": name,
            "Confidence": c,
            "Instances": instances,
            "Parents": [{"Name": p} for p in info.get("parents", [])],
            "Aliases": [{"Name": a} for a in info.get("aliases", [])],
            "Categories": [{"Name": category}],
        })  # fmt: skip
        if max_labels is not None and len(out) >= int(max_labels):
            break
    return out


def image_properties(img) -> dict:
    """``ImageProperties``: quality (brightness, sharpness, contrast on 0-100) and dominant colours."""
    rgb = np.asarray(img.resize((128, 128)), dtype=np.float32)
    gray = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    lap = gray[1:-1, 1:-1] * 4 - gray[:-2, 1:-1] - gray[2:, 1:-1] - gray[1:-1, :-2] - gray[1:-1, 2:]
    quality = {
        "Brightness": float(gray.mean() / 255 * 100),
        "Sharpness": float(min(100.0, lap.var() ** 0.5 / 50 * 100)),
        "Contrast": float(min(100.0, gray.std() / 128 * 100)),
    }
    pixels = rgb.reshape(-1, 3)
    centres = pixels[np.linspace(0, len(pixels) - 1, 5).astype(int)].copy()
    for _ in range(8):  # k-means, k = 5
        nearest = ((pixels[:, None, :] - centres[None]) ** 2).sum(-1).argmin(1)
        for k in range(len(centres)):
            if (nearest == k).any():
                centres[k] = pixels[nearest == k].mean(0)
    share = np.bincount(nearest, minlength=len(centres)) / len(pixels)
    colours = []
    for k in np.argsort(-share):
        if share[k] <= 0:
            continue
        r, g, b = (int(round(v)) for v in centres[k])
        css, simple = _colour_names((r, g, b))
        colours.append({"Red": r, "Green": g, "Blue": b, "HexCode": f"#{r:02x}{g:02x}{b:02x}",
                        "CSSColor": css, "SimplifiedColor": simple,
                        "PixelPercent": float(share[k] * 100)})  # fmt: skip
    return {"Quality": quality, "DominantColors": colours}


@functools.cache
def _css_table():
    from matplotlib import colors

    names = sorted(colors.CSS4_COLORS)
    rgb = np.array(
        [[int(colors.CSS4_COLORS[n][i : i + 2], 16) for i in (1, 3, 5)] for n in names], np.float32
    )
    return names, rgb


SIMPLE = {"black": (0, 0, 0), "white": (255, 255, 255), "gray": (128, 128, 128), "red": (220, 30, 30),
          "green": (40, 160, 60), "blue": (40, 80, 220), "yellow": (240, 220, 40),
          "orange": (250, 150, 30), "purple": (130, 50, 160), "pink": (240, 150, 190),
          "brown": (130, 80, 40)}  # fmt: skip


def _colour_names(rgb: tuple[int, int, int]) -> tuple[str, str]:
    names, table = _css_table()
    v = np.array(rgb, np.float32)
    css = names[int(((table - v) ** 2).sum(1).argmin())]
    simple = min(SIMPLE, key=lambda n: sum((a - b) ** 2 for a, b in zip(SIMPLE[n], rgb, strict=True)))
    return css, simple


def check_features(features) -> list[str]:
    features = list(features or ["GENERAL_LABELS"])
    for f in features:
        if f not in ("GENERAL_LABELS", "IMAGE_PROPERTIES"):
            raise AwsError("InvalidParameterException", f"Features has an unknown value {f!r}.")
    return features
