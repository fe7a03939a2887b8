"""Check a twin result against botocore's output shape: members, types, enums, required members."""

from __future__ import annotations

import datetime as dt
from typing import Any

from botocore.model import Shape


def validate(shape: Shape | None, value: Any, path: str = "$") -> list[str]:
    """Return the problems found (empty when the value fits the shape)."""
    if shape is None:
        return [] if not value else [f"{path}: operation has no output, got {type(value).__name__}"]
    problems: list[str] = []
    _check(shape, value, path, problems)
    return problems


def _check(shape: Shape, value: Any, path: str, problems: list[str]) -> None:
    t = shape.type_name
    if value is None:
        return
    if t == "structure":
        if not isinstance(value, dict):
            problems.append(f"{path}: expected structure {shape.name}, got {type(value).__name__}")
            return
        members = shape.members
        for key, item in value.items():
            if key not in members:
                problems.append(f"{path}.{key}: not a member of {shape.name}")
            else:
                _check(members[key], item, f"{path}.{key}", problems)
        for req in shape.required_members:
            if value.get(req) is None:
                problems.append(f"{path}.{req}: required member of {shape.name} missing")
    elif t == "list":
        if not isinstance(value, list | tuple):
            problems.append(f"{path}: expected list, got {type(value).__name__}")
            return
        for i, item in enumerate(value):
            _check(shape.member, item, f"{path}[{i}]", problems)
    elif t == "map":
        if not isinstance(value, dict):
            problems.append(f"{path}: expected map, got {type(value).__name__}")
            return
        for key, item in value.items():
            _check(shape.key, key, f"{path}<key>", problems)
            _check(shape.value, item, f"{path}[{key!r}]", problems)
    elif t == "string":
        if not isinstance(value, str):
            problems.append(f"{path}: expected string, got {type(value).__name__}")
        elif shape.enum and value not in shape.enum:
            problems.append(f"{path}: {value!r} not in enum {shape.name} {sorted(shape.enum)[:12]}")
    elif t in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            problems.append(f"{path}: expected {t}, got {type(value).__name__}")
    elif t in ("float", "double"):
        if not isinstance(value, int | float) or isinstance(value, bool):
            problems.append(f"{path}: expected {t}, got {type(value).__name__}")
    elif t == "boolean":
        if not isinstance(value, bool):
            problems.append(f"{path}: expected boolean, got {type(value).__name__}")
    elif t == "timestamp":
        if not isinstance(value, dt.datetime | int | float):
            problems.append(f"{path}: expected timestamp, got {type(value).__name__}")
    elif t == "blob":
        if not isinstance(value, bytes | bytearray):
            problems.append(f"{path}: expected blob (bytes), got {type(value).__name__}")
