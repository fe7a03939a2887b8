"""Rebuild include/data/textiles/ (the defect_inspection DAG's sample) from the PyPI package
``conformal-clip-data`` 0.1.4 (MIT, simulated textile images of Megahed et al. 2025: nominal,
local defect, global defect; 2,000 JPEGs, a 42 MB wheel, so it is not a dependency: the sample is
shipped instead).

    pip download conformal-clip-data==0.1.4 --no-deps -d /tmp/ccd
    python scripts/make_textile_sample.py /tmp/ccd/conformal_clip_data-0.1.4-py3-none-any.whl

Takes the first images of each class in name order, reduces them to 128 x 128 grey JPEG, and
splits them into ``train`` (the initial training set), ``test`` (the fixed test set every model
version is evaluated on) and ``incoming`` (new images for the inspection; their true class in
``incoming/labels.csv``, neutral file names). ``normal`` = nominal, ``anomaly`` = local or global.
"""

from __future__ import annotations

import csv
import io
import sys
import zipfile
from pathlib import Path

from PIL import Image

OUT = Path(__file__).resolve().parents[1] / "include" / "data" / "textiles"
ROOT = "conformal_clip_data/data/textile_images/simulated/"
#: (class, package folder, train, test, incoming)
PLAN = [("normal", "nominal", 6, 8, 10), ("anomaly", "local", 3, 4, 5), ("anomaly", "global", 3, 4, 5)]
SIZE = 128


def main(wheel: str) -> None:
    z = zipfile.ZipFile(wheel)
    (OUT / "incoming").mkdir(parents=True, exist_ok=True)
    rows = []
    counter = 0
    for label, folder, n_train, n_test, n_in in PLAN:
        names = sorted(n for n in z.namelist() if n.startswith(ROOT + folder + "/") and n.endswith(".jpg"))
        chosen = names[: n_train + n_test + n_in]
        for i, name in enumerate(chosen):
            img = Image.open(io.BytesIO(z.read(name))).convert("L").resize((SIZE, SIZE), Image.LANCZOS)
            if i < n_train:
                dest = OUT / "train" / label / f"{folder}_{Path(name).stem}.jpg"
            elif i < n_train + n_test:
                dest = OUT / "test" / label / f"{folder}_{Path(name).stem}.jpg"
            else:
                counter += 1
                dest = OUT / "incoming" / f"img_{(counter * 37) % 101:03d}.jpg"  # neutral, shuffled names
                rows.append((dest.name, label, f"{folder}/{Path(name).name}"))
            dest.parent.mkdir(parents=True, exist_ok=True)
            img.save(dest, format="JPEG", quality=85)
    with open(OUT / "incoming" / "labels.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "label", "source"])
        writer.writerows(sorted(rows))
    (OUT / "incoming" / "img_corrupt.jpg").write_bytes(b"not a JPEG: the inspection quarantines it\n")
    licence = z.read("conformal_clip_data-0.1.4.dist-info/licenses/LICENSE").decode()
    (OUT / "LICENSE").write_text(
        "Simulated textile images from the PyPI package conformal-clip-data 0.1.4 (data of Megahed et al.,\n"
        "2025, arXiv:2501.12596), reduced to 128 x 128 grey JPEG by scripts/make_textile_sample.py.\n"
        "img_corrupt.jpg is not an image (written by that script). The package's licence:\n\n" + licence
    )


if __name__ == "__main__":
    main(sys.argv[1])
