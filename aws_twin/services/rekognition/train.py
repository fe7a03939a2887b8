"""Custom Labels training and inference: real learning on the customer's images, on 2 cores.

Both model kinds use the frozen EfficientNet-Lite0 backbone (:mod:`.backbone`) and learn a linear
model on its features (standardised):

- **classification**: the whole image at 224 x 224 -> the pooled 1280-d embedding -> one-vs-rest
  logistic regression per label (an image may carry several labels, as in Custom Labels).
- **object detection**: the image at 448 x 448 -> the 14 x 14 feature map (one cell = 32 px),
  projected on its first 96 principal components (fitted on the training images' cells). Each cell,
  described by its own features and the mean of its 3 x 3 neighbourhood, is labelled with the
  smallest box that holds its centre (background otherwise); a ridge regression of the one-hot labels
  (:class:`CellClassifier`) learns the cells. At inference each label's probability map is upsampled
  (bilinear, 8x) and cut at 0.4; every connected region is one detection: its extent is the box
  (corrected by an affine map learnt on the training images' own detections), its peak probability
  the confidence (semantic segmentation turned into boxes).

The assumed threshold of each label is the score that maximises its F1 on a validation split of the
training images (20 %, when there are at least 10; else 50); the model is then refitted on all the
training images. The evaluation (precision, recall, F1 per label at its threshold; detections match a
box at IoU >= 0.5) is on the TEST images, which training never sees.

Run as a worker process: ``python -m aws_twin.services.rekognition.train SPEC.json`` reads the
images named in the spec, writes ``model.pkl`` and ``result.json`` beside it.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import time

import numpy as np

from . import backbone

CLASSIFY_SIZE = backbone.SIZE  # 224
DETECT_SIZE = 448  # -> a 14 x 14 feature map
GRID = DETECT_SIZE // 32
MATCH_IOU = 0.5
UPSAMPLE = 8
#: a label's probability map is cut here into regions (each a detection, its peak the confidence)
REGION_CUT = 0.4
#: the feature map's 1280 channels are projected on their first principal components (fitted on the
#: training images' cells): a smaller linear model, fitted in seconds
COMPONENTS = 96
#: cells sampled to fit that projection, and the ridge penalty of the cell classifier
PCA_CELLS, RIDGE_ALPHA = 2000, 10.0
BACKGROUND = "__background__"
BATCH = 8


# ---- features ------------------------------------------------------------------------------
def cell_features(fmap: np.ndarray, projection) -> np.ndarray:
    """(C, G, G) feature map -> (G*G, 2k): each cell's projected features and its 3 x 3 neighbourhood's
    mean (edges padded by repetition), row by row."""
    mean, components = projection
    f = ((fmap.reshape(fmap.shape[0], -1).T - mean) @ components.T).reshape(GRID, GRID, -1)
    padded = np.pad(f, ((1, 1), (1, 1), (0, 0)), mode="edge")
    around = sum(padded[dy : dy + GRID, dx : dx + GRID] for dy in range(3) for dx in range(3)) / 9.0
    return np.concatenate([f, around], axis=2).reshape(GRID * GRID, -1)


def _clip_box(box: np.ndarray) -> np.ndarray:
    left, top = float(np.clip(box[0], 0, 0.99)), float(np.clip(box[1], 0, 0.99))
    width, height = float(np.clip(box[2], 0.01, 1 - left)), float(np.clip(box[3], 0.01, 1 - top))
    return np.array([left, top, width, height], dtype=np.float32)


def cell_targets(gt: list) -> list[str]:
    """The label of each cell: the smallest box that holds the cell's centre, else background."""
    centres = (np.arange(GRID) + 0.5) / GRID
    out = []
    for cy in centres:
        for cx in centres:
            hits = [(b[3] * b[4], b[0]) for b in gt
                    if b[1] <= cx <= b[1] + b[3] and b[2] <= cy <= b[2] + b[4]]  # fmt: skip
            out.append(min(hits)[1] if hits else BACKGROUND)
    return out


def load_image(path_or_img):
    from PIL import Image

    if isinstance(path_or_img, str):
        with Image.open(path_or_img) as img:
            return img.convert("RGB")
    return path_or_img.convert("RGB")


def embed(images: list) -> np.ndarray:
    net = backbone.Backbone.get()
    out = []
    for i in range(0, len(images), BATCH):
        batch = np.stack([backbone.to_input(load_image(x), CLASSIFY_SIZE) for x in images[i : i + BATCH]])
        out.append(net.run(batch, outputs=("embedding",))[0])
    return np.concatenate(out) if out else np.zeros((0, 1280), np.float32)


def feature_maps(images: list) -> np.ndarray:
    net = backbone.Backbone.get()
    out = []
    for i in range(0, len(images), BATCH):
        batch = np.stack([backbone.to_input(load_image(x), DETECT_SIZE) for x in images[i : i + BATCH]])
        out.append(net.run(batch, outputs=("features",))[0])
    return np.concatenate(out)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes (left, top, width, height): a (n, 4) x b (m, 4) -> (n, m)."""
    ax1, ay1 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx1, by1 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax1[:, None], bx1[None]) - np.maximum(a[:, 0][:, None], b[:, 0][None]), 0, None)
    ih = np.clip(np.minimum(ay1[:, None], by1[None]) - np.maximum(a[:, 1][:, None], b[:, 1][None]), 0, None)
    inter = iw * ih
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    return inter / np.maximum(union, 1e-9)


# ---- the models ------------------------------------------------------------------------------
class Model:
    """A trained Custom Labels model: ``kind`` "classification" or "detection"."""

    def __init__(self, kind: str, labels: list[str], scaler, classifier, thresholds: dict[str, float],
                 projection=None):  # fmt: skip
        self.kind, self.labels, self.scaler, self.classifier = kind, labels, scaler, classifier
        self.thresholds = thresholds
        self.projection = projection
        self.box_map: np.ndarray | None = None

    # scores in [0, 1]
    def classify(self, emb: np.ndarray) -> np.ndarray:
        """(n, 1280) -> (n, labels) probabilities (one-vs-rest)."""
        x = self.scaler.transform(emb)
        return np.stack([c.predict_proba(x)[:, 1] if c is not None else np.zeros(len(x))
                         for c in self.classifier], axis=1)  # fmt: skip

    def detect(self, fmap: np.ndarray, max_per_label: int = 50) -> list[tuple[str, float, np.ndarray]]:
        """One (C, G, G) feature map -> [(label, score, box)], best first."""
        from PIL import Image
        from scipy import ndimage

        proba = self.classifier.predict_proba(self.scaler.transform(cell_features(fmap, self.projection)))
        classes = list(self.classifier.classes_)
        side = GRID * UPSAMPLE
        out = []
        for label in self.labels:
            if label not in classes:
                continue
            grid = proba[:, classes.index(label)].reshape(GRID, GRID).astype(np.float32)
            up = np.asarray(Image.fromarray(grid, mode="F").resize((side, side), Image.BILINEAR))
            regions, _count = ndimage.label(up >= REGION_CUT)
            found = []
            for i, sl in enumerate(ndimage.find_objects(regions), start=1):
                if sl is None:
                    continue
                ys, xs = sl
                if (ys.stop - ys.start) * (xs.stop - xs.start) < UPSAMPLE * UPSAMPLE:  # under one cell
                    continue
                score = float(up[sl][regions[sl] == i].max())
                box = np.array([xs.start / side, ys.start / side, (xs.stop - xs.start) / side,
                                (ys.stop - ys.start) / side], dtype=np.float32)  # fmt: skip
                if self.box_map is not None:
                    box = _clip_box(np.append(box, 1.0) @ self.box_map)
                found.append((label, min(score, 1.0), box))
            out += sorted(found, key=lambda d: -d[1])[:max_per_label]
        return sorted(out, key=lambda d: -d[1])

    def predict_image(self, img) -> list[tuple[str, float, np.ndarray | None]]:
        if self.kind == "classification":
            probs = self.classify(embed([img]))[0]
            return sorted(((label, float(p), None) for label, p in zip(self.labels, probs, strict=True)),
                          key=lambda d: -d[1])  # fmt: skip
        return self.detect(feature_maps([img])[0])


def _fit_classification(emb: np.ndarray, targets: list[set[str]], labels: list[str]):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(emb)
    x = scaler.transform(emb)
    classifiers = []
    for label in labels:
        y = np.array([label in t for t in targets])
        if y.all() or not y.any():
            classifiers.append(None)
            continue
        classifiers.append(LogisticRegression(C=0.1, max_iter=300, class_weight="balanced").fit(x, y))
    return scaler, classifiers


def _projection(fmaps: np.ndarray, rng):
    """The principal components of the training cells' features (at most PCA_CELLS of them, via the
    eigenvectors of their covariance)."""
    cells = fmaps.transpose(0, 2, 3, 1).reshape(-1, fmaps.shape[1])
    if len(cells) > PCA_CELLS:
        cells = cells[rng.choice(len(cells), PCA_CELLS, replace=False)]
    mean = cells.mean(0)
    centred = cells - mean
    _, vectors = np.linalg.eigh(centred.T @ centred)
    return mean.astype(np.float32), vectors[:, ::-1][:, :COMPONENTS].T.astype(np.float32).copy()


class CellClassifier:
    """Ridge regression of one-hot cell labels (background first): a linear model fitted in closed
    form; its outputs, clipped to [0, 1], are the cells' label probabilities (a linear probability
    model). Closed form keeps detection training within seconds on 2 cores."""

    def __init__(self, x: np.ndarray, y: list[str], alpha: float = RIDGE_ALPHA):
        self.classes_ = np.array(sorted(set(y)))
        targets = (np.array(y)[:, None] == self.classes_[None]).astype(np.float64)
        xb = np.hstack([x, np.ones((len(x), 1))]).astype(np.float64)
        reg = alpha * np.eye(xb.shape[1])
        reg[-1, -1] = 0.0  # the intercept is not shrunk
        self.weights = np.linalg.solve(xb.T @ xb + reg, xb.T @ targets).astype(np.float32)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.clip(x @ self.weights[:-1] + self.weights[-1], 0.0, 1.0)


def _fit_box_map(model, fmaps: np.ndarray, boxes: list[list]) -> np.ndarray | None:
    """An affine map from a region's box to the labelled box it finds (least squares over the training
    images' detections that overlap a box of their label at IoU >= 0.3): the 0.5 cut of an upsampled
    map frames objects systematically too tight or too loose, and this learns by how much."""
    src, dst = [], []
    for fmap, gt in zip(fmaps, boxes, strict=True):
        for label, _score, box in model.detect(fmap):
            real = np.array([b[1:] for b in gt if b[0] == label], dtype=np.float32)
            if not len(real):
                continue
            overlaps = iou(box[None], real)[0]
            if overlaps.max() >= 0.3:
                src.append([*box, 1.0])
                dst.append(real[int(overlaps.argmax())])
    if len(src) < 10:
        return None
    solution, *_ = np.linalg.lstsq(np.array(src), np.array(dst), rcond=None)
    return solution.astype(np.float32)


def _fit_detection(fmaps: np.ndarray, boxes: list[list], rng):
    from sklearn.preprocessing import StandardScaler

    projection = _projection(fmaps, rng)
    x = np.concatenate([cell_features(f, projection) for f in fmaps])
    y = [t for gt in boxes for t in cell_targets(gt)]
    if len(set(y)) < 2:
        raise ValueError("The training images have no labeled boxes large enough to learn from.")
    scaler = StandardScaler().fit(x)
    clf = CellClassifier(scaler.transform(x), y)
    return scaler, clf, projection


# ---- evaluation ------------------------------------------------------------------------------
def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def _counts_classification(
    scores: np.ndarray, targets: list[set[str]], label_index: int, label: str, t: float
):
    pred = scores[:, label_index] >= t
    truth = np.array([label in x for x in targets])
    return int((pred & truth).sum()), int((pred & ~truth).sum()), int((~pred & truth).sum())


def _counts_detection(dets: list[list], gts: list[list], label: str, t: float):
    tp = fp = fn = 0
    for found, gt in zip(dets, gts, strict=True):
        pred = [d for d in found if d[0] == label and d[1] >= t]
        truth = [np.array(b[1:], np.float32) for b in gt if b[0] == label]
        used = set()
        for _, _, box in pred:  # best first
            best, j = 0.0, -1
            for k, tb in enumerate(truth):
                if k in used:
                    continue
                o = float(iou(box[None], tb[None])[0, 0])
                if o > best:
                    best, j = o, k
            if best >= MATCH_IOU:
                tp += 1
                used.add(j)
            else:
                fp += 1
        fn += len(truth) - len(used)
    return tp, fp, fn


CANDIDATE_THRESHOLDS = np.round(np.arange(0.05, 0.96, 0.01), 2)


def _best_threshold(count) -> float:
    best_t, best_f = 0.5, -1.0
    for t in CANDIDATE_THRESHOLDS:
        f = _prf(*count(float(t)))[2]
        if f > best_f:
            best_t, best_f = float(t), f
    return best_t


def train(kind: str, train_items: list[dict], test_items: list[dict], seed: int = 0) -> tuple[Model, dict]:
    """``items``: {"path", "labels": [...], "boxes": [[label, l, t, w, h], ...]}. -> (model, result)."""
    rng = np.random.default_rng(seed)
    labels = sorted(
        {x for it in train_items for x in it["labels"]} | {b[0] for it in train_items for b in it["boxes"]}
    )
    if not labels:
        raise ValueError("The training dataset has no labeled images.")
    if kind == "classification" and len(labels) < 2:
        raise ValueError(f"The training dataset has only one label ({labels[0]!r}); a classification "
                         "model needs at least two labels.")  # fmt: skip
    if not test_items:
        raise ValueError("The testing dataset has no images.")
    order = rng.permutation(len(train_items))
    n_val = len(train_items) // 5 if len(train_items) >= 10 else 0
    val_idx, fit_idx = order[:n_val], order[n_val:]
    t0 = time.monotonic()
    if kind == "classification":
        train_x = embed([it["path"] for it in train_items])
        test_x = embed([it["path"] for it in test_items])
        train_t = [set(it["labels"]) for it in train_items]
        test_t = [set(it["labels"]) for it in test_items]
        thresholds = {}
        if n_val:
            scaler, clfs = _fit_classification(train_x[fit_idx], [train_t[i] for i in fit_idx], labels)
            val_scores = Model(kind, labels, scaler, clfs, {}).classify(train_x[val_idx])
            val_t = [train_t[i] for i in val_idx]
            for j, label in enumerate(labels):
                thresholds[label] = _best_threshold(
                    lambda t, j=j, label=label: _counts_classification(val_scores, val_t, j, label, t)
                )
        scaler, clfs = _fit_classification(train_x, train_t, labels)
        model = Model(kind, labels, scaler, clfs, {label: thresholds.get(label, 0.5) for label in labels})
        test_scores = model.classify(test_x)
        counts = {label: _counts_classification(test_scores, test_t, j, label, model.thresholds[label])
                  for j, label in enumerate(labels)}  # fmt: skip
    else:
        train_f = feature_maps([it["path"] for it in train_items])
        test_f = feature_maps([it["path"] for it in test_items])
        train_b = [it["boxes"] for it in train_items]
        test_b = [it["boxes"] for it in test_items]
        thresholds = {}
        if n_val:
            scaler, clf, proj = _fit_detection(train_f[fit_idx], [train_b[i] for i in fit_idx], rng)
            probe = Model(kind, labels, scaler, clf, {}, proj)
            probe.box_map = _fit_box_map(probe, train_f[fit_idx], [train_b[i] for i in fit_idx])
            val_d = [probe.detect(train_f[i]) for i in val_idx]
            val_b = [train_b[i] for i in val_idx]
            for label in labels:
                thresholds[label] = _best_threshold(
                    lambda t, label=label: _counts_detection(val_d, val_b, label, t)
                )
        scaler, clf, proj = _fit_detection(train_f, train_b, rng)
        model = Model(
            kind, labels, scaler, clf, {label: thresholds.get(label, 0.5) for label in labels}, proj
        )
        test_d = [model.detect(f) for f in test_f]
        counts = {
            label: _counts_detection(test_d, test_b, label, model.thresholds[label]) for label in labels
        }
    per_label = {}
    for label in labels:
        p, r, f = _prf(*counts[label])
        n_test = sum(
            1 for it in test_items if label in it["labels"] or any(b[0] == label for b in it["boxes"])
        )
        per_label[label] = {"Precision": p, "Recall": r, "F1Score": f, "Threshold": model.thresholds[label],
                            "NumberOfTestingImages": n_test}  # fmt: skip
    tp, fp, fn = (sum(c[i] for c in counts.values()) for i in range(3))
    agg_p, agg_r, _ = _prf(tp, fp, fn)
    result = {
        "kind": kind,
        "labels": labels,
        "per_label": per_label,
        "f1": float(np.mean([v["F1Score"] for v in per_label.values()])),
        "precision": agg_p,
        "recall": agg_r,
        "train_images": len(train_items),
        "test_images": len(test_items),
        "seconds": time.monotonic() - t0,
    }
    return model, result


def main(argv: list[str]) -> int:
    spec_path = argv[0]
    with open(spec_path) as f:
        spec = json.load(f)
    out_dir = os.path.dirname(spec_path)
    # the package's module, not __main__, so that the pickled Model loads in the twin
    from aws_twin.services.rekognition import train as package_module

    try:
        model, result = package_module.train(spec["kind"], spec["train"], spec["test"], spec.get("seed", 0))
    except ValueError as exc:
        with open(os.path.join(out_dir, "result.json"), "w") as f:
            json.dump({"error": str(exc)}, f)
        return 2
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["cpu_seconds"] = usage.ru_utime + usage.ru_stime  # the whole worker, imports included
    with open(os.path.join(out_dir, "model.pkl"), "wb") as f:
        pickle.dump(model, f)
    with open(os.path.join(out_dir, "result.json"), "w") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("AWS_TWIN_REKOGNITION_THREADS", "2")
    sys.exit(main(sys.argv[1:]))
