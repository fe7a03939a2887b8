"""Generate the small-symbols sample data set: document pages with small symbols and a Ground Truth
object-detection manifest for each split, as the AWS blog "Detect small shapes and objects within
your images using Amazon Rekognition Custom Labels" made its own.

Each page is a white letter-size page (850 x 1100 px, about 100 dpi) of paragraphs set in DejaVu
Sans / Serif (Debian ``fonts-dejavu-core``, installed by scripts/install_system_deps.sh) with a few
symbols put in the text's gaps: the glyphs WHITE UP-POINTING TRIANGLE (empty triangle), BLACK
UP-POINTING TRIANGLE (solid triangle), UPWARDS ARROW and DOWNWARDS ARROW of DejaVu Sans, 20-40 px font size (``--sizes``),
2-7 per page, never overlapping. The boxes are the glyphs' inked pixels.

    python scripts/small_symbols.py OUT_DIR [--train 16] [--test 6] [--seed 7] \
        [--source-prefix s3://aws-ml-provider-demo/small-objects/pages/] [--sizes 20 40]

writes ``OUT_DIR/{train,test}/page-NNN.png`` and ``OUT_DIR/{train,test}.manifest`` (the source-refs
under ``--source-prefix``; the DAG's stage step rewrites them to where it uploads the pages).
The sample shipped in include/data/small_symbols/ is this script's output with the defaults.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
TEXT_FONTS = ("DejaVuSans.ttf", "DejaVuSerif.ttf", "DejaVuSansCondensed.ttf")
SYMBOL_FONT = "DejaVuSans.ttf"
#: label -> glyph
SYMBOLS = {
    "empty_triangle": "\u25b3",
    "solid_triangle": "\u25b2",
    "up_arrow": "\u2191",
    "down_arrow": "\u2193",
}
PAGE = (850, 1100)
MARGIN = 60
DEFAULT_PREFIX = "s3://aws-ml-provider-demo/small-objects/pages/"
WORDS = (
    "the order shipment invoice total amount section item quantity reference supplier warranty "
    "inspection status approved pending valve pressure flow rate sensor panel drawing revision "
    "sheet note see detail above below level increase decrease tolerance limit check record "
    "maintenance schedule operator signature date page summary result value unit line"
).split()


def _font(name: str, size: int):
    from PIL import ImageFont

    path = FONT_DIR / name
    if not path.exists():
        raise SystemExit(
            f"{path} not found: install Debian's fonts-dejavu-core (scripts/install_system_deps.sh)"
        )
    return ImageFont.truetype(str(path), size)


def _glyph(label: str, size: int):
    """The symbol's glyph cropped to its inked pixels (a grayscale image, black on white)."""
    from PIL import Image, ImageDraw, ImageOps

    font = _font(SYMBOL_FONT, size)
    canvas = Image.new("L", (size * 2, size * 2), 255)
    ImageDraw.Draw(canvas).text((size // 2, size // 4), SYMBOLS[label], font=font, fill=0)
    ink = ImageOps.invert(canvas).getbbox()
    return canvas.crop(ink)


def make_page(rng: random.Random, sizes: tuple[int, int] = (20, 40)):
    """(grayscale page image, [boxes])."""
    from PIL import Image, ImageDraw

    page = Image.new("L", PAGE, 255)
    draw = ImageDraw.Draw(page)
    y = MARGIN
    # paragraphs of text with gaps (line ends, blank lines) where symbols can go
    while y < PAGE[1] - MARGIN - 20:
        size = rng.choice((11, 12, 13, 14))
        font = _font(rng.choice(TEXT_FONTS), size)
        for _ in range(rng.randint(2, 6)):
            if y >= PAGE[1] - MARGIN - 20:
                break
            width = rng.randint(PAGE[0] // 3, PAGE[0] - 2 * MARGIN)
            words, line = [], ""
            while True:
                candidate = (line + " " + rng.choice(WORDS)).strip()
                if draw.textlength(candidate, font=font) > width:
                    break
                line = candidate
            words.append(line)
            draw.text((MARGIN, y), line, font=font, fill=rng.randint(0, 60))
            y += int(size * 1.6)
        y += rng.randint(10, 45)
    boxes = []
    taken: list[tuple[int, int, int, int]] = []
    for _ in range(rng.randint(2, 7)):
        label = rng.choice(sorted(SYMBOLS))
        glyph = _glyph(label, rng.randint(*sizes))
        w, h = glyph.size
        for _attempt in range(50):
            left = rng.randint(MARGIN // 2, PAGE[0] - MARGIN // 2 - w)
            top = rng.randint(MARGIN // 2, PAGE[1] - MARGIN // 2 - h)
            rect = (left - 4, top - 4, left + w + 4, top + h + 4)
            if all(rect[2] <= t[0] or t[2] <= rect[0] or rect[3] <= t[1] or t[3] <= rect[1] for t in taken):
                break
        else:
            continue
        taken.append(rect)
        draw.rectangle(rect, fill=255)  # a gap in the text around the symbol
        page.paste(glyph, (left, top))
        boxes.append({"label": label, "left": left, "top": top, "width": w, "height": h})
    return page, boxes


def manifest_line(source_ref: str, boxes: list[dict], class_map: dict[str, int]) -> dict:
    return {
        "source-ref": source_ref,
        "bounding-box": {
            "image_size": [{"width": PAGE[0], "height": PAGE[1], "depth": 1}],
            "annotations": [
                {"class_id": class_map[b["label"]], **{k: b[k] for k in ("left", "top", "width", "height")}}
                for b in boxes
            ],
        },
        "bounding-box-metadata": {
            "objects": [{"confidence": 1.0} for _ in boxes],
            "class-map": {str(i): name for name, i in class_map.items()},
            "type": "groundtruth/object-detection",
            "human-annotated": "yes",
            "creation-date": "2026-01-01T00:00:00.000000",
            "job-name": "labeling-job/small-symbols",
        },
    }


def generate(
    out: Path,
    train: int = 16,
    test: int = 6,
    seed: int = 7,
    source_prefix: str = DEFAULT_PREFIX,
    sizes: tuple[int, int] = (20, 40),
) -> dict:
    """Write the pages and manifests; return ``{split: number of boxes per label}``."""
    rng = random.Random(seed)
    class_map = {name: i for i, name in enumerate(sorted(SYMBOLS))}
    prefix = source_prefix.rstrip("/") + "/"
    summary: dict[str, dict[str, int]] = {}
    for split, n in (("train", train), ("test", test)):
        (out / split).mkdir(parents=True, exist_ok=True)
        lines, counts = [], {name: 0 for name in sorted(SYMBOLS)}
        for i in range(n):
            page, boxes = make_page(rng, sizes)
            name = f"{split}/page-{i:03d}.png"
            page.save(out / name, optimize=True)
            lines.append(manifest_line(prefix + name, boxes, class_map))
            for b in boxes:
                counts[b["label"]] += 1
        (out / f"{split}.manifest").write_text("".join(json.dumps(line) + "\n" for line in lines))
        summary[split] = counts
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--train", type=int, default=16)
    parser.add_argument("--test", type=int, default=6)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--source-prefix", default=DEFAULT_PREFIX)
    parser.add_argument("--sizes", type=int, nargs=2, default=(20, 40), help="glyph font sizes, px (min max)")
    args = parser.parse_args(argv)
    print(
        json.dumps(
            generate(args.out, args.train, args.test, args.seed, args.source_prefix, tuple(args.sizes))
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
