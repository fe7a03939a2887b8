"""Makes the signature test documents of tests/twin/test_textract_signatures.py (run by hand; the
PNGs and truth.json are committed, so the tests need no font).

Printed text: Liberation Sans (fonts-liberation). Signatures: names written in two handwriting
fonts of Debian packages, both under the SIL Open Font License 1.1 (shipping rendered images is
allowed): Dancing Script (fonts-dancingscript) and Kristi (fonts-kristi), slightly rotated, in
blue-black ink; and one scrawl no typeface writes: pen strokes drawn as smooth random curves
(Catmull-Rom splines through random points, seeded) of varying width, which the OCR does not read
as text. ``truth.json`` holds, per document, the box of each signature's ink (taken from the
rendered signature layer itself, normalised to the page) and the printed lines.

    apt-get install fonts-liberation fonts-dancingscript fonts-kristi
    .venv/bin/python tests/twin/data/signatures/make_documents.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

HERE = Path(__file__).resolve().parent
SANS = "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf"
SANS_BOLD = "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf"
DANCING = "/usr/share/fonts/opentype/dancingscript/DancingScript-Regular.otf"
KRISTI = "/usr/share/fonts/truetype/kristi/Kristi.ttf"
W, H = 1000, 760
INK = (22, 30, 90)


def _form(title: str, rows: list[str]) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    page = Image.new("RGB", (W, H), "white")
    draw = ImageDraw.Draw(page)
    draw.text((60, 40), title, font=ImageFont.truetype(SANS_BOLD, 34), fill="black")
    body = ImageFont.truetype(SANS, 22)
    y = 120
    for row in rows:
        draw.text((60, y), row, font=body, fill="black")
        y += 40
    return page, draw


def _rule(draw, x0: int, x1: int, y: int, label: str) -> None:
    draw.line([(x0, y), (x1, y)], fill="black", width=2)
    draw.text((x0, y + 8), label, font=ImageFont.truetype(SANS, 18), fill="black")


def _sign(page: Image.Image, name: str, font: str, size: int, x: int, y: int, angle: float) -> list[float]:
    """Writes ``name`` at (x, y) (its ink's bottom-left near there); returns the ink's box."""
    f = ImageFont.truetype(font, size)
    left, top, right, bottom = f.getbbox(name)
    layer = Image.new("L", (right + 40, bottom + 40), 0)
    ImageDraw.Draw(layer).text((20, 20), name, font=f, fill=255)
    layer = layer.rotate(angle, resample=Image.BICUBIC, expand=True)
    ys, xs = np.nonzero(np.asarray(layer) > 60)
    layer = layer.crop((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
    top_left = (x, y - layer.height)
    page.paste(Image.new("RGB", layer.size, INK), top_left, layer)
    return [
        top_left[0] / W,
        top_left[1] / H,
        (top_left[0] + layer.width) / W,
        (top_left[1] + layer.height) / H,
    ]


def _scrawl(page: Image.Image, x: int, y: int, width: int, height: int, seed: int) -> list[float]:
    """Pen strokes as smooth random curves (not a person's handwriting: drawn here). Control
    points go up and down while moving right, stepping back now and then (loops), joined by
    Catmull-Rom splines drawn as short segments whose width varies along the stroke."""
    rng = np.random.default_rng(seed)
    layer = Image.new("L", page.size, 0)
    draw = ImageDraw.Draw(layer)
    n = 14
    steps = rng.uniform(-0.4, 1.6, n)
    xs = np.cumsum(steps) / np.cumsum(steps)[-1] * width
    ys = np.where(np.arange(n) % 2 == 0, rng.uniform(0.0, 0.4, n), rng.uniform(0.6, 1.0, n)) * height
    pts = np.stack([xs + x, ys + y - height], axis=1)
    pts = np.vstack([pts[:1], pts, pts[-1:]])
    prev = None
    for i in range(1, len(pts) - 2):
        p0, p1, p2, p3 = pts[i - 1], pts[i], pts[i + 1], pts[i + 2]
        for t in np.linspace(0, 1, 60):
            q = 0.5 * (
                2 * p1
                + (-p0 + p2) * t
                + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
                + (-p0 + 3 * p1 - 3 * p2 + p3) * t**3
            )
            if prev is not None:
                pen = int(round(2 + 2 * abs(np.sin(2 * t + i))))
                draw.line([tuple(prev), tuple(q)], fill=255, width=pen)
            prev = q
    page.paste(Image.new("RGB", page.size, INK), (0, 0), layer)
    ys, xs = np.nonzero(np.asarray(layer) > 60)
    return [xs.min() / W, ys.min() / H, (xs.max() + 1) / W, (ys.max() + 1) / H]


def main() -> None:
    truth = {}
    rows = [
        "Customer: Harbour Lane Books Ltd",
        "Address: 14 Quay Street, Bristol BS1 4DJ",
        "Order number: PO-20931    Date: 12/03/2024",
        "Goods received in good condition and in full.",
    ]
    # 1. signed above the rule, clear of it (Dancing Script)
    page, draw = _form("DELIVERY RECEIPT", rows)
    _rule(draw, 60, 460, 560, "Signature of recipient")
    box = _sign(page, "Margaret Ellison", DANCING, 54, 80, 550, 4)
    _rule(draw, 560, 900, 560, "Date")
    draw.text((580, 520), "12/03/2024", font=ImageFont.truetype(SANS, 22), fill="black")
    page.save(HERE / "signed_above_line.png", optimize=True)
    truth["signed_above_line.png"] = {"signatures": [box]}

    # 2. two signatures, the first written across its rule line (Kristi), the second above
    page, draw = _form("SERVICE AGREEMENT", [*rows[:3], "Both parties agree to the terms overleaf."])
    _rule(draw, 60, 440, 560, "Customer signature")
    box1 = _sign(page, "Tom Hadley", KRISTI, 92, 90, 604, -3)
    _rule(draw, 540, 930, 560, "Witness signature")
    box2 = _sign(page, "R. Okonjo", DANCING, 50, 570, 552, 2)
    page.save(HERE / "signed_across_line.png", optimize=True)
    truth["signed_across_line.png"] = {"signatures": [box1, box2]}

    # 3. the same form, not signed: printed text and empty rules only
    page, draw = _form("DELIVERY RECEIPT", rows)
    _rule(draw, 60, 460, 560, "Signature of recipient")
    _rule(draw, 560, 900, 560, "Date")
    draw.text((580, 520), "12/03/2024", font=ImageFont.truetype(SANS, 22), fill="black")
    page.save(HERE / "unsigned.png", optimize=True)
    truth["unsigned.png"] = {"signatures": []}

    # 4. a scrawl (random pen curves) across the rule of an otherwise printed form
    page, draw = _form("CONSENT FORM", [*rows[:2], "I consent to the processing described above."])
    _rule(draw, 60, 460, 560, "Signature")
    box = _scrawl(page, 90, 585, 300, 70, seed=7)
    page.save(HERE / "signed_scrawl.png", optimize=True)
    truth["signed_scrawl.png"] = {"signatures": [box]}

    (HERE / "truth.json").write_text(json.dumps(truth, indent=1) + "\n")


if __name__ == "__main__":
    main()
