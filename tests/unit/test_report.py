"""The evaluation report's ROC plot: a real plot (the curve and the chance line drawn in their
colours, the curve where the points put it), drawn without pyplot in a fresh interpreter."""

from __future__ import annotations

import io
import subprocess
import sys

from aws_ml_provider.ml import report
from PIL import Image

CURVE = (0xD9, 0x48, 0x0F)
CHANCE = (0x86, 0x8E, 0x96)


def _near(pixel, colour, tolerance=40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel[:3], colour, strict=True))


def _pixels(png: bytes, colour) -> list[tuple[int, int]]:
    image = Image.open(io.BytesIO(png)).convert("RGB")
    width, height = image.size
    data = image.load()
    return [(x, y) for y in range(height) for x in range(width) if _near(data[x, y], colour)]


def test_roc_png_draws_the_curve_and_the_chance_line():
    png = report.roc_png([0.0, 0.0, 1.0], [0.0, 1.0, 1.0], 1.0)  # a perfect classifier
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and 350 <= image.width <= 600 and 350 <= image.height <= 600
    curve, chance = _pixels(png, CURVE), _pixels(png, CHANCE)
    assert len(curve) > 300 and len(chance) > 100
    # the perfect curve runs up the left edge, then along the top: its pixels hug the plot's left
    # and top sides, while the diagonal fills the middle
    xs = sorted(x for x, _ in curve)
    ys = sorted(y for _, y in curve)
    left_column = sum(1 for x in xs if x - xs[0] <= 3)
    top_row = sum(1 for y in ys if y - ys[0] <= 3)
    assert left_column > 100 and top_row > 100


def test_roc_png_imports_no_pyplot():
    code = (
        "import sys\n"
        "from aws_ml_provider.ml import report\n"
        "png = report.roc_png([0.0, 0.3, 1.0], [0.0, 0.8, 1.0], 0.75)\n"
        "assert png.startswith(b'\\x89PNG')\n"
        "print(sorted(m for m in sys.modules if m.startswith('matplotlib.pyplot')))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"
