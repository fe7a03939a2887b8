"""AWS-shaped errors raised by twin handlers."""

from __future__ import annotations

import re

#: ``<_io.BytesIO object at 0x7f...>`` and the like, as library messages carry them
_REPR = re.compile(r"<[^<>]{0,200}? at 0x[0-9a-fA-F]+>")


def clean_message(text: str) -> str:
    """A message without Python object reprs (they say nothing to a caller and leak addresses):
    ``cannot identify image file <_io.BytesIO object at 0x7f...>`` -> ``... image file the document``."""
    return _REPR.sub("the document", text)


class AwsError(Exception):
    """An error the twin answers in the wire format of the calling service.

    ``code`` must be an error the operation documents in botocore's model (the fidelity tests
    check this), except for the twin's own ``NotImplemented``.
    """

    def __init__(self, code: str, message: str, status: int = 400, sender_fault: bool = True):
        message = clean_message(str(message))
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.sender_fault = sender_fault


def not_found(code: str, what: str) -> AwsError:
    return AwsError(code, f"{what} does not exist.", 400)


def validation(message: str) -> AwsError:
    return AwsError("ValidationException", message, 400)


class NotImplementedByTwin(AwsError):
    def __init__(self, service: str, operation: str):
        super().__init__(
            "NotImplemented",
            f"{service}.{operation} is not implemented by aws_twin",
            501,
            sender_fault=False,
        )
