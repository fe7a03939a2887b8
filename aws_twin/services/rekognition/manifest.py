"""SageMaker Ground Truth manifests, as Rekognition Custom Labels reads them: one JSON object a line,
``source-ref`` (the image's S3 URI) and one or more label attributes, each with its ``-metadata``:

- image classification: ``"<attr>": 0`` (the class id) and ``"<attr>-metadata": {"class-name": "cat",
  "type": "groundtruth/image-classification", ...}``
- object detection: ``"<attr>": {"image_size": [{"width", "height", "depth"}], "annotations":
  [{"class_id", "left", "top", "width", "height"}]}`` (pixels) and ``"<attr>-metadata": {"class-map":
  {"0": "cat"}, "type": "groundtruth/object-detection", ...}``

:func:`parse_line` turns a line into an :class:`Entry` or raises :class:`ManifestError` naming the reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

CLASSIFICATION = "groundtruth/image-classification"
DETECTION = "groundtruth/object-detection"


class ManifestError(ValueError):
    pass


@dataclass
class Entry:
    line: str  # the JSON line as given (ListDatasetEntries answers it)
    source_ref: str
    labels: set[str] = field(default_factory=set)  # image-level labels (classification)
    #: (label, left, top, width, height) as ratios of the image (detection)
    boxes: list[tuple[str, float, float, float, float]] = field(default_factory=list)
    kinds: set[str] = field(default_factory=set)

    @property
    def all_labels(self) -> set[str]:
        return self.labels | {b[0] for b in self.boxes}

    @property
    def labeled(self) -> bool:
        return bool(self.kinds)


def parse_line(line: str) -> Entry:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"not JSON ({exc.msg} at column {exc.colno})") from exc
    if not isinstance(obj, dict):
        raise ManifestError("not a JSON object")
    ref = obj.get("source-ref")
    if not isinstance(ref, str) or not ref.startswith("s3://") or "/" not in ref[5:]:
        raise ManifestError("no source-ref of the form s3://bucket/key")
    entry = Entry(line=line.strip(), source_ref=ref)
    for key, meta in obj.items():
        if not key.endswith("-metadata"):
            continue
        attr = key[: -len("-metadata")]
        if not isinstance(meta, dict) or attr not in obj:
            raise ManifestError(f"{key} has no label attribute {attr!r} beside it")
        kind = meta.get("type")
        value = obj[attr]
        if kind == CLASSIFICATION:
            name = meta.get("class-name")
            if not isinstance(name, str) or not name:
                raise ManifestError(f"{key} has no class-name")
            entry.labels.add(name)
        elif kind == DETECTION:
            class_map = meta.get("class-map") or {}
            try:
                size = value["image_size"][0]
                width, height = float(size["width"]), float(size["height"])
                annotations = value["annotations"]
            except (KeyError, IndexError, TypeError, ValueError) as exc:
                raise ManifestError(f"{attr} needs image_size [{{width, height}}] and annotations") from exc
            if width <= 0 or height <= 0:
                raise ManifestError(f"{attr} has an image_size of {width}x{height}")
            for i, a in enumerate(annotations):
                try:
                    name = class_map[str(a["class_id"])]
                    left, top = float(a["left"]) / width, float(a["top"]) / height
                    w, h = float(a["width"]) / width, float(a["height"]) / height
                except (KeyError, TypeError, ValueError) as exc:
                    raise ManifestError(f"{attr} annotation {i} has no class in class-map or no box") from exc
                if w <= 0 or h <= 0 or left < -0.01 or top < -0.01 or left + w > 1.01 or top + h > 1.01:
                    raise ManifestError(f"{attr} annotation {i} ({name}) lies outside the image")
                entry.boxes.append((name, max(left, 0.0), max(top, 0.0), min(w, 1 - left), min(h, 1 - top)))
        else:
            raise ManifestError(f"{key} has type {kind!r}, not {CLASSIFICATION} or {DETECTION}")
        entry.kinds.add(kind)
    return entry


def parse(text: str) -> list[Entry]:
    """All entries of a manifest, or raise ManifestError naming the first bad line (1-based)."""
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entries.append(parse_line(line))
        except ManifestError as exc:
            raise ManifestError(f"line {number}: {exc}") from exc
    return entries
