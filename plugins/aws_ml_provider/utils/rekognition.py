"""Reading Rekognition's label answers and sorting images by target labels (pure Python).

- :func:`label_records`: DetectLabels ``Labels`` / DetectCustomLabels ``CustomLabels`` -> small
  JSON records ``{"name", "confidence", "parents", "aliases", "instances"}`` (one per name);
- :func:`is_hit`: whether any of ``{label: minimum confidence}`` is found;
- :func:`decide`: an image's fate against target labels, each with its own confidence threshold,
  and a review band below the thresholds: ``labelled`` (a target at or above its threshold),
  ``review`` (no target there, but one within the band below: a person decides), ``rejected``.

Label names compare case-insensitively, and a target matches a label's aliases too ("Kitten" ->
a label "Cat" with alias "Kitten" matches a target "Kitten").
"""

from __future__ import annotations

from typing import Any

LABELLED = "labelled"
REVIEW = "review"
REJECTED = "rejected"
#: what a reviewer picks when none of the candidate labels fits
NONE_OF_THESE = "None of these"


def label_records(labels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per label name, highest confidence first (custom labels: one per name, with
    the number of instances found)."""
    by_name: dict[str, dict[str, Any]] = {}
    for label in labels or []:
        name = label.get("Name")
        if not name:
            continue
        confidence = round(float(label.get("Confidence") or 0.0), 3)
        instances = len(label.get("Instances") or []) or (1 if "Geometry" in label else 0)
        record = by_name.get(name)
        if record is None:
            by_name[name] = {
                "name": name,
                "confidence": confidence,
                "parents": [p.get("Name") for p in label.get("Parents") or [] if p.get("Name")],
                "aliases": [a.get("Name") for a in label.get("Aliases") or [] if a.get("Name")],
                "instances": instances,
            }
        else:
            record["confidence"] = max(record["confidence"], confidence)
            record["instances"] += instances
    return sorted(by_name.values(), key=lambda r: (-r["confidence"], r["name"]))


def confidences(records: list[dict[str, Any]]) -> dict[str, float]:
    """``{lower-case name or alias: confidence}`` of :func:`label_records` output."""
    out: dict[str, float] = {}
    for record in records or []:
        for name in [record["name"], *record.get("aliases", [])]:
            key = name.lower()
            out[key] = max(out.get(key, 0.0), float(record["confidence"]))
    return out


def is_hit(records: list[dict[str, Any]], hit_labels: dict[str, float] | None) -> bool:
    """Whether any label of ``hit_labels`` is found at or above its minimum confidence."""
    if not hit_labels:
        return bool(records)
    found = confidences(records)
    return any(found.get(name.lower(), -1.0) >= float(minimum) for name, minimum in hit_labels.items())


def validate_targets(targets: dict[str, Any]) -> dict[str, float]:
    """``{label: threshold}`` with thresholds as floats in [0, 100]; ``ValueError`` naming a bad one."""
    if not isinstance(targets, dict) or not targets:
        raise ValueError(f"target labels must be a non-empty {{label: threshold}} object, got {targets!r}")
    out: dict[str, float] = {}
    for name, threshold in targets.items():
        try:
            value = float(threshold)
        except (TypeError, ValueError):
            raise ValueError(f"target label {name!r}: threshold {threshold!r} is not a number") from None
        if not str(name).strip() or not 0 <= value <= 100:
            raise ValueError(f"target label {name!r}: threshold {threshold!r} must be within 0-100")
        out[str(name).strip()] = value
    return out


def decide(records: list[dict[str, Any]], targets: dict[str, float], review_band: float) -> dict[str, Any]:
    """An image's fate: ``{"decision", "labels", "candidates", "scores"}``.

    ``labels``: the targets at or above their threshold (best first) when ``labelled``;
    ``candidates``: the targets within ``review_band`` below their threshold (best first), what a
    reviewer chooses from, when ``review``; ``scores``: every target's confidence (0 if absent).
    """
    found = confidences(records)
    scores = {name: found.get(name.lower(), 0.0) for name in targets}
    hits = sorted(
        (n for n in targets if scores[n] >= targets[n] and scores[n] > 0),
        key=lambda n: (-scores[n], n),
    )
    if hits:
        return {"decision": LABELLED, "labels": hits, "candidates": [], "scores": scores}
    near = sorted(
        (n for n in targets if scores[n] > 0 and scores[n] >= targets[n] - float(review_band)),
        key=lambda n: (-scores[n], n),
    )
    if near:
        candidates = [{"label": n, "confidence": scores[n], "threshold": targets[n]} for n in near]
        return {"decision": REVIEW, "labels": [], "candidates": candidates, "scores": scores}
    return {"decision": REJECTED, "labels": [], "candidates": [], "scores": scores}


def review_answer(answer: dict[str, Any], field: str = "label") -> str | None:
    """The label a reviewer chose (crowd-image-classifier answer ``{field: {"label": name}}``);
    None for "None of these" or no answer."""
    value = answer.get(field)
    if isinstance(value, dict):
        value = value.get("label")
    if not isinstance(value, str) or not value.strip() or value == NONE_OF_THESE:
        return None
    return value.strip()
