"""Page images of PDF and TIFF documents for the A2I reviewer (aws_ml_provider.utils.review_pages),
written to the twin's S3 with real boto3: one PNG per page up to the limit, the right pixel size,
deterministic keys and no second rendering on a retry."""

from __future__ import annotations

import io

import pytest
from aws_ml_provider.utils import review_pages as rp
from PIL import Image, ImageDraw


def _pdf(sizes: list[tuple[int, int]]) -> bytes:
    """A PDF whose pages have these sizes in points (Pillow at 72 dpi: one pixel, one point)."""
    pages = []
    for number, size in enumerate(sizes, start=1):
        page = Image.new("RGB", size, "white")
        ImageDraw.Draw(page).text((20, 20), f"page {number}", fill="black")
        pages.append(page)
    buf = io.BytesIO()
    pages[0].save(buf, format="PDF", save_all=True, append_images=pages[1:], resolution=72.0)
    return buf.getvalue()


def _tiff(sizes: list[tuple[int, int]]) -> bytes:
    frames = [Image.new("L", size, 255) for size in sizes]
    buf = io.BytesIO()
    frames[0].save(buf, format="TIFF", save_all=True, append_images=frames[1:])
    return buf.getvalue()


def _png_size(s3, uri: str) -> tuple[int, int]:
    bucket, key = uri[len("s3://") :].split("/", 1)
    obj = s3.get_object(Bucket=bucket, Key=key)
    assert obj["ContentType"] == "image/png"
    with Image.open(io.BytesIO(obj["Body"].read())) as img:
        assert img.format == "PNG"
        return img.size


def test_pdf_pages_are_rendered_up_to_the_limit_once(s3, bucket):
    import pypdfium2 as pdfium

    sizes = [(300, 400), (500, 250), (300, 400)]  # page 2 is landscape
    data = _pdf(sizes)
    pdf = pdfium.PdfDocument(data)
    points = [pdf[i].get_size() for i in range(len(pdf))]
    pdf.close()
    s3.put_object(Bucket=bucket, Key="in/scan.pdf", Body=data)
    prefix = f"s3://{bucket}/runs/r1/review_pages/doc1"

    manifest = rp.ensure_page_images(s3, f"s3://{bucket}/in/scan.pdf", prefix, max_pages=2, dpi=144)
    assert manifest["page_count"] == len(points) == 3 and manifest["format"] == "PDF"
    assert manifest["page_images"] == [f"{prefix}/page-0001.png", f"{prefix}/page-0002.png"]
    for uri, (width, height) in zip(manifest["page_images"], points, strict=False):
        got = _png_size(s3, uri)
        assert abs(got[0] - width * 144 / 72) <= 1 and abs(got[1] - height * 144 / 72) <= 1, (uri, got)
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="runs/r1/review_pages/doc1/")["Contents"]
    assert sorted(o["Key"].rsplit("/", 1)[1] for o in listed) == [
        "page-0001.png",
        "page-0002.png",
        "pages.json",
    ]

    # a retry finds the manifest: nothing is rendered or written again
    s3.delete_object(Bucket=bucket, Key="runs/r1/review_pages/doc1/page-0002.png")
    assert rp.ensure_page_images(s3, f"s3://{bucket}/in/scan.pdf", prefix, max_pages=2, dpi=144) == manifest
    assert len(s3.list_objects_v2(Bucket=bucket, Prefix="runs/r1/review_pages/doc1/")["Contents"]) == 2

    # under the limit: every page
    whole = rp.ensure_page_images(s3, f"s3://{bucket}/in/scan.pdf", f"s3://{bucket}/whole", data=data)
    assert len(whole["page_images"]) == whole["page_count"] == 3


def test_tiff_frames_become_pages_and_big_frames_are_scaled(s3, bucket):
    sizes = [(320, 200), (2400, 1200), (100, 100)]
    s3.put_object(Bucket=bucket, Key="in/fax.tif", Body=_tiff(sizes))
    manifest = rp.ensure_page_images(s3, f"s3://{bucket}/in/fax.tif", f"s3://{bucket}/pages/fax")
    assert manifest["format"] == "TIFF" and manifest["page_count"] == len(sizes)
    got = [_png_size(s3, uri) for uri in manifest["page_images"]]
    assert got[0] == sizes[0] and got[2] == sizes[2]
    assert max(got[1]) == rp.MAX_REVIEW_SIDE and got[1][0] / got[1][1] == pytest.approx(2.0, rel=0.01)


def test_only_pdf_and_tiff_get_page_images(s3, bucket):
    assert rp.is_paged("s3://b/x/scan.PDF") and rp.is_paged("fax.tiff") and not rp.is_paged("r.jpg")
    buf = io.BytesIO()
    Image.new("RGB", (10, 10)).save(buf, format="PNG")
    s3.put_object(Bucket=bucket, Key="in/r.png", Body=buf.getvalue())
    with pytest.raises(ValueError, match="not PDF or TIFF"):
        rp.ensure_page_images(s3, f"s3://{bucket}/in/r.png", f"s3://{bucket}/pages/r")
