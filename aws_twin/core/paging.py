"""MaxResults / NextToken pagination of the twin's List* / Get* operations.

The token is opaque to clients (base64 of the offset of the next item), so boto3's paginators and
hand-written ``NextToken`` loops work against every service the same way.
"""

from __future__ import annotations

import base64

from .errors import AwsError


def _encode(offset: int) -> str:
    return base64.urlsafe_b64encode(f"twin:{offset}".encode()).decode()


def _decode(token: str, error_code: str) -> int:
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
        if text.startswith("twin:"):
            offset = int(text[len("twin:") :])
            if offset >= 0:
                return offset
    except (ValueError, UnicodeDecodeError):
        pass
    raise AwsError(error_code, f"NextToken {token[:40]!r} is not a valid pagination token.")


def page(
    items: list, params: dict, *, default: int, maximum: int, error_code: str = "ValidationException"
) -> tuple[list, dict]:
    """One page of ``items`` for the request's MaxResults and NextToken.

    Returns ``(chunk, more)``: ``more`` is ``{"NextToken": ...}`` when items remain, else ``{}``
    (spread it into the response). A MaxResults outside ``1..maximum`` or a token this twin did not
    hand out is answered with ``error_code`` (the service's validation error).
    """
    size = params.get("MaxResults", default)
    if not isinstance(size, int) or not 1 <= size <= maximum:
        raise AwsError(error_code, f"MaxResults must be between 1 and {maximum}, got {size!r}.")
    token = params.get("NextToken")
    start = _decode(token, error_code) if token else 0
    end = start + size
    return items[start:end], ({"NextToken": _encode(end)} if end < len(items) else {})
