"""Real images for the Custom Labels tests and bench, and their Ground Truth manifests.

- Classification: Fashion-MNIST (Zalando's product photos, 28 x 28 grey, MIT), from Debian's
  ``dataset-fashion-mnist`` (/usr/share/datasets/fashion-mnist, installed by
  scripts/install_system_deps.sh), upscaled to 112 x 112 RGB PNGs (Rekognition takes >= 80 px).
- Object detection: scenes of 320 x 320 whose backgrounds are crops of scikit-learn's two sample
  photos (``china.jpg``, ``flower.jpg``, shipped in its wheel, BSD-3) with Fashion-MNIST items pasted
  on them (their grey level as the alpha), 1 to 3 items a scene, 64 to 128 px, boxes recorded in
  pixels as Ground Truth does.
"""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import numpy as np

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
CLASSES = [
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle-boot",
]
SCENE = 320


def fashion_available() -> bool:
    return (FASHION_DIR / "train-images-idx3-ubyte.gz").exists()


def fashion_mnist(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    prefix = "train" if split == "train" else "t10k"
    with gzip.open(FASHION_DIR / f"{prefix}-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(FASHION_DIR / f"{prefix}-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    return images, labels


def pick(labels: np.ndarray, names: list[str], per_class: int, rng, skip: int = 0) -> list[tuple[str, int]]:
    """(class name, index) of ``per_class`` images of each named class, in a random order."""
    out = []
    for name in names:
        idx = np.where(labels == CLASSES.index(name))[0][skip : skip + per_class]
        out += [(name, int(i)) for i in idx]
    rng.shuffle(out)
    return out


def png(arr: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def item_image(gray28: np.ndarray, size: int = 112) -> bytes:
    from PIL import Image

    img = Image.fromarray(gray28).resize((size, size), Image.BILINEAR).convert("RGB")
    return png(np.asarray(img))


def backgrounds() -> list[np.ndarray]:
    import sklearn
    from PIL import Image

    folder = Path(sklearn.__file__).parent / "datasets" / "images"
    return [np.asarray(Image.open(folder / name).convert("RGB")) for name in ("china.jpg", "flower.jpg")]


def scene(rng, items: list[tuple[str, np.ndarray]], bgs: list[np.ndarray]) -> tuple[bytes, list[tuple]]:
    """A scene with ``items`` ((name, 28x28 grey)) pasted at random, non-overlapping places:
    (PNG bytes, [(name, left, top, width, height) in pixels])."""
    from PIL import Image

    bg = bgs[int(rng.integers(len(bgs)))]
    y = int(rng.integers(0, bg.shape[0] - SCENE))
    x = int(rng.integers(0, bg.shape[1] - SCENE))
    canvas = bg[y : y + SCENE, x : x + SCENE].astype(np.float32) * 0.6
    boxes: list[tuple] = []
    for name, gray in items:
        for _ in range(50):
            size = int(rng.integers(64, 129))
            left, top = int(rng.integers(0, SCENE - size)), int(rng.integers(0, SCENE - size))
            if all(left + size <= b[1] or b[1] + b[3] <= left or top + size <= b[2] or b[2] + b[4] <= top
                   for b in boxes):  # fmt: skip
                break
        else:
            continue
        patch = np.asarray(Image.fromarray(gray).resize((size, size), Image.BILINEAR), np.float32)
        alpha = (patch / 255.0)[..., None]
        region = canvas[top : top + size, left : left + size]
        canvas[top : top + size, left : left + size] = region * (1 - alpha) + patch[..., None] * alpha
        # the box Ground Truth would draw: the item's visible extent
        ys, xs = np.where(patch > 20)
        boxes.append((name, left + int(xs.min()), top + int(ys.min()),
                       int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)))  # fmt: skip
    return png(canvas.clip(0, 255).astype(np.uint8)), boxes


def classification_line(ref: str, label: str, class_id: int, attr: str = "fashion") -> str:
    return json.dumps({
        "source-ref": ref,
        attr: class_id,
        f"{attr}-metadata": {"class-name": label, "confidence": 1.0, "type": "groundtruth/image-classification",
                             "job-name": "labeling-job/fashion", "human-annotated": "yes",
                             "creation-date": "2026-11-30T00:00:00"},
    })  # fmt: skip


def detection_line(ref: str, boxes: list[tuple], class_ids: dict[str, int], attr: str = "items") -> str:
    return json.dumps({
        "source-ref": ref,
        attr: {"image_size": [{"width": SCENE, "height": SCENE, "depth": 3}],
               "annotations": [{"class_id": class_ids[b[0]], "left": b[1], "top": b[2], "width": b[3],
                                "height": b[4]} for b in boxes]},
        f"{attr}-metadata": {"class-map": {str(v): k for k, v in class_ids.items()},
                             "type": "groundtruth/object-detection", "human-annotated": "yes",
                             "objects": [{"confidence": 1.0} for _ in boxes],
                             "job-name": "labeling-job/items", "creation-date": "2026-11-30T00:00:00"},
    })  # fmt: skip


def stage_classification(
    s3, bucket: str, prefix: str, names: list[str], per_class: int, seed: int = 0, skip: int = 0
) -> tuple[str, list[tuple[str, str]]]:
    """Upload ``per_class`` Fashion-MNIST images of each class and their manifest:
    (manifest key, [(s3 uri, label)])."""
    rng = np.random.default_rng(seed)
    images, labels = fashion_mnist("train")
    lines, truth = [], []
    for n, (name, i) in enumerate(pick(labels, names, per_class, rng, skip)):
        key = f"{prefix}/images/{name}-{skip + n:04d}.png"
        s3.put_object(Bucket=bucket, Key=key, Body=item_image(images[i]))
        ref = f"s3://{bucket}/{key}"
        lines.append(classification_line(ref, name, names.index(name)))
        truth.append((ref, name))
    s3.put_object(Bucket=bucket, Key=f"{prefix}/manifest.jsonl", Body="\n".join(lines).encode())
    return f"{prefix}/manifest.jsonl", truth


def stage_detection(s3, bucket: str, prefix: str, names: list[str], scenes: int, seed: int = 0):
    """Upload ``scenes`` scenes and their manifest: (manifest key, [(s3 uri, boxes)])."""
    rng = np.random.default_rng(seed)
    images, labels = fashion_mnist("train")
    pools = {name: list(np.where(labels == CLASSES.index(name))[0]) for name in names}
    bgs = backgrounds()
    lines, truth = [], []
    for n in range(scenes):
        count = int(rng.integers(1, 4))
        chosen = [names[int(rng.integers(len(names)))] for _ in range(count)]
        items = [(name, images[pools[name][int(rng.integers(len(pools[name])))]]) for name in chosen]
        data, boxes = scene(rng, items, bgs)
        key = f"{prefix}/scenes/{n:04d}.png"
        s3.put_object(Bucket=bucket, Key=key, Body=data)
        ref = f"s3://{bucket}/{key}"
        lines.append(detection_line(ref, boxes, {name: i for i, name in enumerate(names)}))
        truth.append((ref, boxes))
    s3.put_object(Bucket=bucket, Key=f"{prefix}/manifest.jsonl", Body="\n".join(lines).encode())
    return f"{prefix}/manifest.jsonl", truth
