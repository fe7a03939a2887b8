"""Request body limits: the most the twin reads of a request, per service, before it buffers it.

The limits are AWS's documented maxima where AWS documents one (botocore's models carry most of
them as a member's ``max``), with room for the wire encoding around the value:

=========================  =====================================  ====================================
service                    limit of the request body              answer beyond it
=========================  =====================================  ====================================
textract                   ``Document.Bytes`` 10 MiB (ImageBlob    ``DocumentTooLargeException`` (400)
                           ``max``), base64 in JSON: 13.4 MiB
                           + 1 MiB for the other members
sagemaker-runtime          ``InvokeEndpoint`` Body 6 MiB           ``ValidationError`` (400)
sagemaker-a2i-runtime      ``InputContent`` 3 MiB (x2 for JSON     ``ValidationException`` (400)
                           escaping)
s3                         5 GiB (a single PUT)                    ``EntityTooLarge`` (400)
any other API              10 MiB (no figure documented; far       ``RequestEntityTooLarge`` (413)
                           above what a control-plane call sends)
the review pages           1 MiB (a task form)                     413
``/_twin/*`` control       64 KiB                                  413
=========================  =====================================  ====================================

A request whose ``Content-Length`` is over the limit is answered before its body is read; a body
without one (chunked) is read through werkzeug's limited stream, which stops at the limit.
"""

from __future__ import annotations

from werkzeug.wrappers import Request

from .errors import AwsError

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

TEXTRACT_DOCUMENT = 10 * MIB
LIMITS = {
    "textract": 4 * -(-TEXTRACT_DOCUMENT // 3) + MIB,
    "sagemaker-runtime": 6 * MIB,
    "sagemaker-a2i-runtime": 2 * 3 * MIB + 64 * KIB,
    "s3": 5 * GIB,
}
DEFAULT = 10 * MIB
WEB = 1 * MIB


def body_limit(service: str | None, request: Request) -> int:
    """The most bytes the twin reads of this request's body (``service`` None: a review page)."""
    if service is None:
        return WEB
    return LIMITS.get(service, DEFAULT)


def too_large_error(service: str, limit: int) -> AwsError:
    """The error the service answers for a body over its limit."""
    if service == "textract":
        return AwsError(
            "DocumentTooLargeException",
            f"The request is over {limit} bytes; a synchronous document is at most "
            f"{TEXTRACT_DOCUMENT // MIB} MB.",
        )
    if service == "sagemaker-runtime":
        return AwsError("ValidationError", f"Request payload is over the limit of {limit} bytes (6 MB).")
    if service == "sagemaker-a2i-runtime":
        return AwsError("ValidationException", f"The request is over {limit} bytes (InputContent: 3 MB).")
    if service == "s3":
        return AwsError("EntityTooLarge", "Your proposed upload exceeds the maximum allowed size")
    return AwsError("RequestEntityTooLarge", f"The request body is over {limit} bytes.", 413)
