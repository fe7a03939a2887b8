"""The code and message of an AWS error, read one way everywhere in the provider.

botocore's ``ClientError`` (and aiobotocore's) carries the parsed answer in ``response``; these read
it without importing botocore, so that modules a DAG imports at parse time stay light."""

from __future__ import annotations


def _error(exc: BaseException) -> dict:
    response = getattr(exc, "response", None)
    error = response.get("Error") if isinstance(response, dict) else None
    return error if isinstance(error, dict) else {}


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore ``ClientError`` (``"ResourceNotFoundException"``, ``"404"``
    for a HEAD request); None for any other exception or an answer without one."""
    return _error(exc).get("Code") or None


def error_message(exc: BaseException) -> str:
    """The AWS error message of a botocore ``ClientError``; "" for anything else."""
    return _error(exc).get("Message") or ""
