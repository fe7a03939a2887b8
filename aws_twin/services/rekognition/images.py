"""Input images for Rekognition: ``Image`` as ``Bytes`` or ``S3Object``, checked as Rekognition does.

Limits (Rekognition's documented ones): JPEG or PNG only; at most 5 MB as bytes, 15 MB from S3;
at least 80 pixels on the shorter side and at most 10,000 on either side (the twin answers
``InvalidParameterException`` below 80 px, as Rekognition's "image too small" does);
an empty or undecodable file answers ``InvalidImageFormatException``; a missing or unreadable
S3 object ``InvalidS3ObjectException``.
"""

from __future__ import annotations

import io

from ...core.errors import AwsError

MB = 1024 * 1024
BYTES_LIMIT = 5 * MB
S3_LIMIT = 15 * MB
MIN_SIDE = 80
MAX_SIDE = 10000


def invalid_parameter(message: str) -> AwsError:
    return AwsError("InvalidParameterException", message)


def read_s3(twin, s3obj: dict) -> tuple[bytes, str]:
    if not s3obj.get("Bucket") or not s3obj.get("Name"):
        raise invalid_parameter("Image.S3Object needs Bucket and Name.")
    bucket, key = s3obj["Bucket"], s3obj["Name"]
    kwargs = {"Bucket": bucket, "Key": key}
    if s3obj.get("Version"):
        kwargs["VersionId"] = s3obj["Version"]
    from botocore.exceptions import ClientError

    try:
        body = twin.client("s3").get_object(**kwargs)["Body"].read()
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        raise AwsError(
            "InvalidS3ObjectException",
            f"Unable to get object metadata from S3. Check object key, region and/or access permissions."
            f" (s3://{bucket}/{key}: {code or exc})",
        ) from exc
    return body, f"s3://{bucket}/{key}"


def sniff(data: bytes) -> str | None:
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    return None


def decode(data: bytes, source: str):
    """Bytes -> an RGB PIL image, or Rekognition's error for what it cannot read."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise AwsError("InvalidImageFormatException", f"Request has invalid image format ({source}: empty).")
    if sniff(data) is None:
        raise AwsError(
            "InvalidImageFormatException",
            f"Request has invalid image format ({source}: not a JPEG or PNG image).",
        )
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise AwsError(
            "InvalidImageFormatException", f"Request has invalid image format ({source}: {exc})."
        ) from exc
    w, h = img.size
    if min(w, h) < MIN_SIDE:
        raise invalid_parameter(
            f"The image {source} is {w}x{h} pixels; the shorter side must be >= {MIN_SIDE}."
        )
    if max(w, h) > MAX_SIDE:
        raise invalid_parameter(f"The image {source} is {w}x{h} pixels; at most {MAX_SIDE} on either side.")
    return img.convert("RGB")


def load(twin, image: dict | None):
    """The ``Image`` parameter -> (RGB PIL image, source for messages)."""
    if not image:
        raise invalid_parameter("Image is required.")
    if image.get("Bytes") is not None:
        if image.get("S3Object"):
            raise invalid_parameter("Image takes Bytes or S3Object, not both.")
        data = bytes(image["Bytes"])
        if len(data) > BYTES_LIMIT:
            raise AwsError(
                "ImageTooLargeException",
                f"Image size is too large: {len(data)} bytes; the limit for image bytes is {BYTES_LIMIT} (5 MB).",
            )
        source = "Image.Bytes"
    elif image.get("S3Object"):
        data, source = read_s3(twin, image["S3Object"])
        if len(data) > S3_LIMIT:
            raise AwsError(
                "ImageTooLargeException",
                f"Image size is too large: {source} is {len(data)} bytes; the limit from S3 is {S3_LIMIT} (15 MB).",
            )
    else:
        raise invalid_parameter("Image needs Bytes or S3Object.")
    return decode(data, source), source
