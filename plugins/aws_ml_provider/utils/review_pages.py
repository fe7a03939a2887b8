"""Page images for human review: browsers (and A2I's worker UI) show JPEG and PNG, not PDF or
TIFF, so before a human loop is started for a PDF or TIFF document its pages are rendered to PNG
and written to S3; the loop input then carries their S3 URIs (the task template shows them through
``grant_read_access``, as it shows a JPEG).

- :func:`render_pages` - the first ``max_pages`` pages of a PDF (pypdfium2, at ``dpi``) or TIFF
  (Pillow, each frame, its longer side at most ``max_side`` pixels) as PNG bytes, and the page count.
- :func:`ensure_page_images` - renders a document's pages to ``<prefix>/page-0001.png`` ... with a
  ``pages.json`` manifest written last: a retry finds the manifest and renders nothing again.

Imports nothing heavy at module level (pypdfium2 and Pillow load inside the functions).
"""

from __future__ import annotations

import io
import posixpath
from dataclasses import dataclass
from typing import Any

from . import s3 as s3_utils
from .expense import SUPPORTED_EXTENSIONS, sniff_format

#: at most this many pages of a document are rendered for the reviewer (the rest: the template says so)
MAX_REVIEW_PAGES = 10
#: PDF pages are rendered at this resolution (a US Letter page: 1100 x 1425 pixels)
REVIEW_DPI = 130
#: a TIFF frame larger than this (pixels, longer side) is scaled down
MAX_REVIEW_SIDE = 2000
#: formats a browser cannot show, rendered to PNG page images
PAGED_FORMATS = ("PDF", "TIFF")
MANIFEST = "pages.json"


@dataclass
class RenderedPages:
    pngs: list[bytes]
    page_count: int  # pages in the document (>= len(pngs))


def render_pages(
    data: bytes,
    fmt: str,
    *,
    max_pages: int = MAX_REVIEW_PAGES,
    dpi: int = REVIEW_DPI,
    max_side: int = MAX_REVIEW_SIDE,
) -> RenderedPages:
    """The first ``max_pages`` pages of a PDF or TIFF document as PNG bytes, and its page count."""
    if fmt == "PDF":
        return _render_pdf(data, max_pages, dpi)
    if fmt == "TIFF":
        return _render_tiff(data, max_pages, max_side)
    raise ValueError(f"page images are made for {' and '.join(PAGED_FORMATS)}, not {fmt}")


def _png(image: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _render_pdf(data: bytes, max_pages: int, dpi: int) -> RenderedPages:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(data)
    try:
        count = len(pdf)
        pngs = []
        for index in range(min(count, max_pages)):
            page = pdf[index]
            try:
                bitmap = page.render(scale=dpi / 72)
                pngs.append(_png(bitmap.to_pil().convert("RGB")))
            finally:
                page.close()
    finally:
        pdf.close()
    return RenderedPages(pngs, count)


def _render_tiff(data: bytes, max_pages: int, max_side: int) -> RenderedPages:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        count = getattr(img, "n_frames", 1)
        pngs = []
        for index in range(min(count, max_pages)):
            img.seek(index)
            frame = img.convert("RGB") if img.mode not in ("RGB", "L") else img.copy()
            if max(frame.size) > max_side:
                frame.thumbnail((max_side, max_side))
            pngs.append(_png(frame))
    return RenderedPages(pngs, count)


def is_paged(key_or_uri: str) -> bool:
    """Whether a document's name says PDF or TIFF (whose pages are rendered for the reviewer), by
    the extension table the document checks use."""
    return SUPPORTED_EXTENSIONS.get(posixpath.splitext(key_or_uri.lower())[1]) in PAGED_FORMATS


def page_key(prefix: str, number: int) -> str:
    """``<prefix>/page-0001.png``: the image of page ``number`` (1-based)."""
    return f"{prefix.rstrip('/')}/page-{number:04d}.png"


def ensure_page_images(
    s3: Any,
    document_uri: str,
    prefix: str,
    *,
    data: bytes | None = None,
    max_pages: int | None = None,
    dpi: int | None = None,
) -> dict:
    """Render the pages of the PDF/TIFF at ``document_uri`` to PNGs under ``prefix`` (S3 URI) once
    (at most ``max_pages``, default :data:`MAX_REVIEW_PAGES`; PDF at ``dpi``, default :data:`REVIEW_DPI`).

    Returns the manifest ``{"document_uri", "format", "page_count", "page_images": [s3 URI, ...],
    "max_pages", "dpi"}``; ``page_images`` holds the first ``min(page_count, max_pages)`` pages.
    The manifest is written after the images, so a retry that finds it renders nothing again (and a
    retry after a partial write renders the same keys again).
    """
    max_pages = MAX_REVIEW_PAGES if max_pages is None else max_pages
    dpi = REVIEW_DPI if dpi is None else dpi
    manifest_uri = f"{prefix.rstrip('/')}/{MANIFEST}"
    known = s3_utils.read_json(s3, manifest_uri, default={})
    if known and known.get("document_uri") == document_uri and known.get("max_pages") == max_pages:
        return known
    if data is None:
        data = s3_utils.read_bytes(s3, document_uri)
    fmt = sniff_format(data[:1024])
    if fmt not in PAGED_FORMATS:
        raise ValueError(f"{document_uri} is {fmt or 'no known format'}, not PDF or TIFF")
    rendered = render_pages(data, fmt, max_pages=max_pages, dpi=dpi)
    uris = [
        s3_utils.put_bytes(s3, page_key(prefix, number), png, "image/png")
        for number, png in enumerate(rendered.pngs, start=1)
    ]
    manifest = {
        "document_uri": document_uri,
        "format": fmt,
        "page_count": rendered.page_count,
        "page_images": uris,
        "max_pages": max_pages,
        "dpi": dpi,
    }
    s3_utils.write_json(s3, manifest_uri, manifest)
    return manifest
