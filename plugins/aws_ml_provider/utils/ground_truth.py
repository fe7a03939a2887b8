"""SageMaker Ground Truth manifests (JSON Lines), as Amazon Rekognition Custom Labels imports them:
a writer and a reader shared by the Rekognition operators and the DAGs. Pure Python.

Image classification (one line per image)::

    {"source-ref": "s3://bucket/cats/1.jpg",
     "cat-dog": 0,
     "cat-dog-metadata": {"class-name": "Cat", "confidence": 1.0, "type": "groundtruth/image-classification",
                          "job-name": "labeling-job/cat-dog", "human-annotated": "yes",
                          "creation-date": "2026-01-01T00:00:00.000000"}}

Object detection (one line per image, any number of boxes, pixel coordinates)::

    {"source-ref": "s3://bucket/scene.jpg",
     "bbox": {"image_size": [{"width": 640, "height": 480, "depth": 3}],
              "annotations": [{"class_id": 0, "left": 10, "top": 20, "width": 100, "height": 80}]},
     "bbox-metadata": {"objects": [{"confidence": 1.0}], "class-map": {"0": "Cat"},
                       "type": "groundtruth/object-detection", "human-annotated": "yes",
                       "creation-date": "...", "job-name": "labeling-job/bbox"}}

:func:`read_manifest` returns every entry it understood and, for every line it did not, an error
naming the line number and the reason: a bad line never hides the others.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

CLASSIFICATION = "groundtruth/image-classification"
DETECTION = "groundtruth/object-detection"
#: the label attribute Rekognition Custom Labels' console uses for a classification dataset
DEFAULT_ATTRIBUTE = "class"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def class_ids(labels: Iterable[str]) -> dict[str, int]:
    """A stable class id per label: the labels sorted, numbered from 0."""
    return {name: i for i, name in enumerate(sorted(set(labels)))}


def classification_line(
    source_ref: str,
    class_name: str,
    *,
    class_id: int,
    attribute: str = DEFAULT_ATTRIBUTE,
    human_annotated: bool = False,
    confidence: float = 1.0,
    creation_date: str | None = None,
    job_name: str | None = None,
) -> dict[str, Any]:
    """One image-classification line (a dict; :func:`dumps` makes the JSON Lines text)."""
    if not str(source_ref).startswith("s3://"):
        raise ValueError(f"source-ref {source_ref!r} is not an s3:// URI")
    if not class_name:
        raise ValueError(f"{source_ref}: empty class name")
    return {
        "source-ref": source_ref,
        attribute: int(class_id),
        f"{attribute}-metadata": {
            "class-name": class_name,
            "confidence": round(float(confidence), 4),
            "type": CLASSIFICATION,
            "job-name": job_name or f"labeling-job/{attribute}",
            "human-annotated": "yes" if human_annotated else "no",
            "creation-date": creation_date or _now(),
        },
    }


def detection_line(
    source_ref: str,
    boxes: list[dict[str, Any]],
    *,
    image_size: tuple[int, int, int],
    class_map: dict[str, int],
    attribute: str = "bounding-box",
    human_annotated: bool = False,
    creation_date: str | None = None,
    job_name: str | None = None,
) -> dict[str, Any]:
    """One object-detection line. ``boxes``: ``{"label", "left", "top", "width", "height"}`` in
    pixels (``confidence`` optional); ``image_size``: (width, height, depth); ``class_map``: label
    -> class id (:func:`class_ids`)."""
    if not str(source_ref).startswith("s3://"):
        raise ValueError(f"source-ref {source_ref!r} is not an s3:// URI")
    width, height, depth = (int(v) for v in image_size)
    annotations, objects = [], []
    for box in boxes:
        if box["label"] not in class_map:
            raise ValueError(f"{source_ref}: label {box['label']!r} is not in the class map")
        annotations.append(
            {
                "class_id": class_map[box["label"]],
                **{k: int(round(float(box[k]))) for k in ("left", "top", "width", "height")},
            }
        )
        objects.append({"confidence": round(float(box.get("confidence", 1.0)), 4)})
    return {
        "source-ref": source_ref,
        attribute: {
            "image_size": [{"width": width, "height": height, "depth": depth}],
            "annotations": annotations,
        },
        f"{attribute}-metadata": {
            "objects": objects,
            "class-map": {str(i): name for name, i in class_map.items()},
            "type": DETECTION,
            "human-annotated": "yes" if human_annotated else "no",
            "creation-date": creation_date or _now(),
            "job-name": job_name or f"labeling-job/{attribute}",
        },
    }


def dumps(lines: Iterable[dict[str, Any]]) -> str:
    """JSON Lines text (one compact JSON object per line, a newline after each)."""
    return "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines)


@dataclass
class ManifestEntry:
    """One image of a manifest: its labels (classification) or boxes (detection)."""

    line: int
    source_ref: str
    kind: str  # CLASSIFICATION | DETECTION
    attribute: str
    labels: list[str] = field(default_factory=list)
    boxes: list[dict[str, Any]] = field(default_factory=list)
    human_annotated: bool = False
    image_size: dict[str, int] | None = None


@dataclass
class Manifest:
    entries: list[ManifestEntry]
    errors: list[dict[str, Any]]  # {"line": n, "reason": "..."}

    @property
    def labels(self) -> list[str]:
        names = {n for e in self.entries for n in e.labels} | {
            b["label"] for e in self.entries for b in e.boxes
        }
        return sorted(names)


def _label_attributes(obj: dict[str, Any]) -> list[str]:
    return [k[: -len("-metadata")] for k in obj if k.endswith("-metadata") and k[: -len("-metadata")] in obj]


def parse_line(number: int, text: str) -> ManifestEntry:
    """One manifest line; ``ValueError`` saying what is wrong with it otherwise."""
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not JSON ({exc})") from exc
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    source = obj.get("source-ref")
    if not isinstance(source, str) or not source.startswith("s3://"):
        raise ValueError(f"no s3:// source-ref (got {source!r})")
    attributes = _label_attributes(obj)
    if not attributes:
        raise ValueError(f"{source}: no label attribute with its -metadata")
    labels: list[str] = []
    boxes: list[dict[str, Any]] = []
    kind = None
    human = False
    size = None
    for attribute in attributes:
        meta = obj[f"{attribute}-metadata"]
        if not isinstance(meta, dict):
            raise ValueError(f"{source}: {attribute}-metadata is not an object")
        kind_here = meta.get("type")
        human = human or meta.get("human-annotated") == "yes"
        if kind_here == CLASSIFICATION:
            name = meta.get("class-name")
            if not isinstance(name, str) or not name:
                raise ValueError(f"{source}: {attribute}-metadata has no class-name")
            labels.append(name)
        elif kind_here == DETECTION:
            value = obj[attribute]
            class_map = meta.get("class-map") or {}
            try:
                size = value["image_size"][0]
                for ann in value["annotations"]:
                    name = class_map[str(ann["class_id"])]
                    boxes.append({"label": name, **{k: ann[k] for k in ("left", "top", "width", "height")}})
            except (KeyError, IndexError, TypeError) as exc:
                raise ValueError(f"{source}: bad object-detection annotation ({exc!r})") from exc
        else:
            raise ValueError(f"{source}: {attribute}-metadata has type {kind_here!r}")
        kind = kind or kind_here
    return ManifestEntry(number, source, kind or CLASSIFICATION, attributes[0], labels, boxes, human, size)


def read_manifest(text: str) -> Manifest:
    """Every entry of a manifest's JSON Lines text and an error for each line that is not one."""
    entries, errors = [], []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            entries.append(parse_line(number, raw))
        except ValueError as exc:
            errors.append({"line": number, "reason": str(exc)})
    return Manifest(entries, errors)
