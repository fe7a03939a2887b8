"""Input documents: fetch (bytes or S3), sniff the format, check Textract's limits, render pages.

Limits, as Textract documents them (and the choice the twin makes where the docs are loose):

- ``Document.Bytes`` (synchronous calls): at most 5 MB (the API reference of ``Document.Bytes``).
- ``Document.S3Object`` (synchronous calls): at most 10 MB.
- Synchronous calls take JPEG, PNG and single-page PDF/TIFF; a PDF or TIFF of more than one page
  answers ``UnsupportedDocumentException`` (use the asynchronous ``Start*`` operations).
- Asynchronous calls: PDF/TIFF up to 500 MB and 3,000 pages; JPEG/PNG up to 10 MB.
- Images at most 10,000 pixels on either side; an image whose header claims more pixels than
  Pillow's decompression-bomb limit (a 30000x30000 PNG of 1 MB) is refused from its header, before
  it is decoded: ``DocumentTooLargeException``.
- An empty, truncated or undecodable file answers ``BadDocumentException``; bytes in no format
  Textract reads answer ``UnsupportedDocumentException``; a missing S3 object answers
  ``InvalidS3ObjectException``.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ...core.errors import AwsError

MB = 1024 * 1024
SYNC_BYTES_LIMIT = 5 * MB
SYNC_S3_LIMIT = 10 * MB
ASYNC_IMAGE_LIMIT = 10 * MB
ASYNC_PDF_LIMIT = 500 * MB
ASYNC_MAX_PAGES = 3000
MAX_IMAGE_SIDE = 10000
#: PDF pages are rendered at this resolution for OCR
PDF_DPI = 150
#: longest side a page is given to the OCR at most (larger pages are scaled down)
OCR_MAX_SIDE = 2000

FORMATS = ("JPEG", "PNG", "TIFF", "PDF")
#: the leading bytes of the image formats Textract reads (its "Input documents" page: JPEG, PNG,
#: TIFF, PDF); TIFF in either byte order. The twin holds its own table: it shares no code with the
#: provider it is the test bed of.
IMAGE_MAGIC = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)
#: a PDF's header may follow some junk: readers look for it in the first 1,024 bytes
PDF_HEADER, PDF_HEADER_WINDOW = b"%PDF-", 1024


def detect_format(data: bytes) -> str | None:
    """The format of document bytes by their magic number: JPEG, PNG, TIFF or PDF; None for
    anything else (GIF, BMP, WebP, HEIC, DOCX, text...), which Textract does not read."""
    for magic, fmt in IMAGE_MAGIC:
        if data.startswith(magic):
            return fmt
    if data.find(PDF_HEADER, 0, PDF_HEADER_WINDOW) >= 0:
        return "PDF"
    return None


def bad_document(message: str) -> AwsError:
    return AwsError("BadDocumentException", message)


def unsupported(message: str) -> AwsError:
    return AwsError("UnsupportedDocumentException", message)


def too_large(message: str) -> AwsError:
    return AwsError("DocumentTooLargeException", message)


def invalid_parameter(message: str) -> AwsError:
    return AwsError("InvalidParameterException", message)


@dataclass
class Document:
    data: bytes
    format: str
    source: str  # "bytes" or "s3://bucket/key", for messages
    pages: int

    def render(self) -> Iterator[np.ndarray]:
        """Each page as an RGB ``uint8`` array (H, W, 3), scaled for the OCR."""
        if self.format == "PDF":
            yield from _render_pdf(self.data)
        else:
            yield from _render_image(self.data)


def read_s3(twin, s3obj: dict | None) -> tuple[bytes, str]:
    """The bytes of ``{"Bucket", "Name", "Version"}`` from the twin's S3."""
    if not s3obj or not s3obj.get("Bucket") or not s3obj.get("Name"):
        raise invalid_parameter("S3Object needs Bucket and Name.")
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


def load(twin, document: dict | None, *, asynchronous: bool = False) -> Document:
    """Fetch and check a ``Document`` (sync) or ``DocumentLocation`` (async) parameter."""
    if not document:
        raise invalid_parameter("Document is required.")
    if document.get("Bytes") is not None:
        if asynchronous:
            raise invalid_parameter("DocumentLocation takes an S3Object.")
        data = bytes(document["Bytes"])
        source = "bytes"
        if len(data) > SYNC_BYTES_LIMIT:
            raise too_large(f"Document bytes are {len(data)} bytes; the limit is {SYNC_BYTES_LIMIT} (5 MB).")
    elif document.get("S3Object") is not None:
        data, source = read_s3(twin, document["S3Object"])
    else:
        raise invalid_parameter("Document needs Bytes or S3Object.")
    return inspect(data, source, asynchronous=asynchronous)


def inspect(data: bytes, source: str = "bytes", *, asynchronous: bool = False) -> Document:
    """Check format, size and page count of document bytes (no OCR yet)."""
    if not data:
        raise bad_document(f"The document {source} is empty.")
    fmt = detect_format(data)
    if fmt is None:
        raise unsupported(f"Request has unsupported document format ({source}: not JPEG, PNG, TIFF or PDF).")
    if asynchronous:
        limit = ASYNC_PDF_LIMIT if fmt in ("PDF", "TIFF") else ASYNC_IMAGE_LIMIT
    else:
        limit = SYNC_BYTES_LIMIT if source == "bytes" else SYNC_S3_LIMIT
    if len(data) > limit:
        raise too_large(f"The document {source} is {len(data)} bytes; the limit for {fmt} here is {limit}.")
    pages = _count_pages(data, fmt, source)
    if pages < 1:
        raise bad_document(f"The document {source} has no pages.")
    if asynchronous and pages > ASYNC_MAX_PAGES:
        raise too_large(f"The document {source} has {pages} pages; the limit is {ASYNC_MAX_PAGES}.")
    if not asynchronous and pages > 1:
        raise unsupported(
            f"Request has unsupported document format: {source} has {pages} pages; synchronous"
            " operations take single-page documents (use the asynchronous Start* operations)."
        )
    return Document(data=data, format=fmt, source=source, pages=pages)


def _count_pages(data: bytes, fmt: str, source: str) -> int:
    if fmt == "PDF":
        import pypdfium2 as pdfium

        try:
            pdf = pdfium.PdfDocument(data)
        except Exception as exc:  # PdfiumError: corrupt, truncated, encrypted
            raise bad_document(f"Unable to read the PDF {source}: {exc}") from exc
        try:
            return len(pdf)
        finally:
            pdf.close()
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            # Image.open reads the header only; Pillow refuses beyond 2x MAX_IMAGE_PIXELS itself
            w, h = img.size
            if max(w, h) > MAX_IMAGE_SIDE:
                raise unsupported(
                    f"The image {source} is {w}x{h} pixels; the limit is {MAX_IMAGE_SIDE} a side."
                )
            frames = getattr(img, "n_frames", 1) if fmt == "TIFF" else 1
            img.load()  # a truncated file fails here, not at OCR time
            return frames
    except AwsError:
        raise
    except Image.DecompressionBombError as exc:
        raise too_large(f"The image {source} has too many pixels to process: {exc}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise bad_document(f"Unable to decode the {fmt} image {source}: {exc}") from exc


def _fit(img) -> np.ndarray:
    from PIL import Image

    img = img.convert("RGB")
    w, h = img.size
    scale = OCR_MAX_SIDE / max(w, h)
    if scale < 1:
        img = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.LANCZOS)
    return np.asarray(img)


def _render_image(data: bytes) -> Iterator[np.ndarray]:
    from PIL import Image, ImageSequence

    try:
        with Image.open(io.BytesIO(data)) as img:
            for frame in ImageSequence.Iterator(img):
                yield _fit(frame)
    except (OSError, SyntaxError, ValueError) as exc:
        raise bad_document(f"Unable to decode the image: {exc}") from exc


def _render_pdf(data: bytes) -> Iterator[np.ndarray]:
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(data)
    except Exception as exc:
        raise bad_document(f"Unable to read the PDF: {exc}") from exc
    try:
        for index in range(len(pdf)):
            page = pdf[index]
            try:
                w, h = page.get_size()
                scale = min(PDF_DPI / 72.0, OCR_MAX_SIDE / max(w, h, 1))
                bitmap = page.render(scale=scale)
                yield _fit(bitmap.to_pil())
            except Exception as exc:
                raise bad_document(f"Unable to render page {index + 1} of the PDF: {exc}") from exc
            finally:
                page.close()
    finally:
        pdf.close()
