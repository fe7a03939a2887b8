"""S3 URIs and small JSON/text objects, for the provider's hooks and the DAGs.

Every function takes the S3 client it works with (a boto3 client, e.g. ``S3Hook(...).get_conn()``
or a hook's ``s3_client``; :func:`read_bytes` also takes an ``S3Hook``), so the caller decides the
connection. Imports nothing heavy at module level: botocore and the Amazon provider load inside the
functions that need them.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .errors import error_code

_S3_URI = re.compile(r"s3://([^/]+)/?(.*)")
#: error codes S3 answers for a missing object (GetObject: NoSuchKey; HeadObject: 404)
NOT_FOUND_CODES = ("NoSuchKey", "404", "NotFound")


def split_uri(uri: str, *, what: str = "S3 URI") -> tuple[str, str]:
    """``s3://bucket/some/key`` -> ``("bucket", "some/key")``; the key may be empty
    (``s3://bucket/`` is a prefix) and may hold any character (``#``, ``?``: no URL parsing).
    A ``ValueError`` naming ``what`` and the value otherwise."""
    match = _S3_URI.fullmatch(uri.strip()) if isinstance(uri, str) else None
    if not match:
        raise ValueError(f"{what} {uri!r} is not of the form s3://bucket/key")
    return match.group(1), match.group(2)


def split_object_uri(uri: str, *, what: str = "S3 URI") -> tuple[str, str]:
    """:func:`split_uri` for an object: the key must not be empty."""
    bucket, key = split_uri(uri, what=what)
    if not key:
        raise ValueError(f"{what} {uri!r} is not of the form s3://bucket/key")
    return bucket, key


def split_prefix(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> (``bucket``, ``some/prefix/``); the key part may be empty."""
    bucket, prefix = split_uri(uri)
    return bucket, prefix.rstrip("/") + "/" if prefix else ""


def client(aws_conn_id: str = "aws_default"):
    """A boto3 S3 client with the Airflow connection ``aws_conn_id`` (the Amazon provider's S3Hook)."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return S3Hook(aws_conn_id=aws_conn_id).get_conn()


def is_not_found(err: Any) -> bool:
    """Whether a botocore ``ClientError`` says the object (or bucket) does not exist."""
    return error_code(err) in NOT_FOUND_CODES


def put_bytes(s3: Any, uri: str, body: bytes, content_type: str, *, what: str = "S3 URI") -> str:
    """Write ``body`` to ``uri`` with ``content_type``; return the URI."""
    bucket, key = split_object_uri(uri, what=what)
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)
    return uri


def put_text(s3: Any, uri: str, text: str, content_type: str) -> str:
    """Write ``text`` (UTF-8) to ``uri`` with ``content_type``; return the URI."""
    return put_bytes(s3, uri, text.encode(), content_type)


def write_json(s3: Any, uri: str, data: Any, *, compact: bool = False, what: str = "S3 URI") -> str:
    """Write ``data`` as JSON (``default=str``; ``compact``: no spaces) to ``uri``; return the URI."""
    separators = (",", ":") if compact else None
    body = json.dumps(data, default=str, separators=separators).encode()
    return put_bytes(s3, uri, body, "application/json", what=what)


def read_bytes(s3: Any, uri: str, *, what: str = "S3 URI") -> bytes:
    """The bytes at ``uri``, read with a boto3 S3 client (``get_object``) or an ``S3Hook``
    (``get_key``)."""
    bucket, key = split_object_uri(uri, what=what)
    if hasattr(s3, "get_key"):
        return s3.get_key(key, bucket).get()["Body"].read()
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def read_json(s3: Any, uri: str, default: Any = None) -> Any:
    """The JSON object at ``uri``; ``default`` when it does not exist (raises if no default)."""
    from botocore.exceptions import ClientError

    try:
        return json.loads(read_bytes(s3, uri))
    except ClientError as err:
        if default is not None and is_not_found(err):
            return default
        raise


def exists(s3: Any, uri: str) -> bool:
    """Whether the object at ``uri`` exists (HeadObject)."""
    from botocore.exceptions import ClientError

    bucket, key = split_object_uri(uri)
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as err:
        if is_not_found(err):
            return False
        raise


def ensure_buckets(s3: Any, uris: Any) -> list[str]:
    """Create the buckets of ``uris`` (S3 URIs or prefixes) that HeadBucket does not find; return
    their names, sorted."""
    from botocore.exceptions import ClientError

    names = sorted({split_prefix(uri)[0] for uri in uris})
    for name in names:
        try:
            s3.head_bucket(Bucket=name)
        except ClientError as error:
            if not is_not_found(error):
                raise
            s3.create_bucket(Bucket=name)
    return names


def stage_files(s3: Any, files: Any) -> dict[str, int]:
    """Upload each ``(path, uri)`` of ``files`` (with the content type its extension names) unless
    the object there already has the same bytes (its ETag is their MD5); return
    ``{"uploaded": n, "already_there": n}``."""
    import hashlib
    import mimetypes

    from botocore.exceptions import ClientError

    staged = {"uploaded": 0, "already_there": 0}
    for path, uri in files:
        bucket, key = split_object_uri(uri)
        body = path.read_bytes()
        etag = hashlib.md5(body, usedforsecurity=False).hexdigest()
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        try:
            same = s3.head_object(Bucket=bucket, Key=key)["ETag"].strip('"') == etag
        except ClientError as error:
            if not is_not_found(error):
                raise
            same = False
        if same:
            staged["already_there"] += 1
            continue
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)
        staged["uploaded"] += 1
    return staged
