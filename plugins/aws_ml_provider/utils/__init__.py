"""Small helpers shared by the provider's modules (pure Python, no heavy imports)."""

from __future__ import annotations

import hashlib
import re


def parse_s3_uri(uri: str, *, what: str = "S3 URI") -> tuple[str, str]:
    """``s3://bucket/key`` -> ``(bucket, key)``; a clear ``ValueError`` naming the value otherwise."""
    if not isinstance(uri, str):
        raise ValueError(f"{what} must be a string like s3://bucket/key, got {type(uri).__name__}: {uri!r}")
    # not urlparse: an S3 key may hold any character, "#" and "?" included (urlparse cut
    # "s3://b/receipt #2.jpg" at the "#", as a URL fragment)
    match = re.fullmatch(r"s3://([^/]+)/+(.+)", uri, flags=re.DOTALL)
    if not match:
        raise ValueError(f"{what} {uri!r} is not of the form s3://bucket/key")
    return match.group(1), match.group(2)


def stable_hash(*parts: object, length: int = 64) -> str:
    """Hex SHA-256 of the parts (joined with ``|``), truncated: the same parts give the same text."""
    text = "|".join("" if p is None else str(p) for p in parts)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


_NOT_NAME = re.compile(r"[^a-z0-9]+")


def slug(text: str, max_len: int) -> str:
    """Lower-case ``[a-z0-9-]`` text, no leading/trailing/doubled hyphen, at most ``max_len`` chars."""
    out = _NOT_NAME.sub("-", str(text).lower()).strip("-")[:max_len].strip("-")
    return out


def versioned_name(name: str, digest: str, max_len: int = 63) -> str:
    """``name`` with a content-hash suffix, within SageMaker's 63-char ``[a-z0-9-]`` name limit."""
    suffix = digest[:8]
    return f"{slug(name, max_len - len(suffix) - 1)}-{suffix}"
