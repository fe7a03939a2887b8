"""People for DetectLabels' "Person" label: ImageNet has no person class, so the twin finds people with
OpenCV 4's built-in detectors (no download; both ship inside the ``opencv-python`` wheel):

- **HOG + linear SVM** (Dalal and Triggs 2005, ``cv2.HOGDescriptor_getDefaultPeopleDetector()``): a
  64x128 window slid over an image pyramid; it finds standing people seen whole.
- **Haar cascade of frontal faces** (Viola and Jones 2001, ``haarcascade_frontalface_default.xml``):
  finds a person shown from the waist or chest up (a portrait), which the HOG window misses. The
  person's box is estimated from the face by body proportions (see ``_body_from_face``).

Both run on the image resized to ``WORKING_SIDE`` pixels on its longer side. Overlapping boxes are
merged by greedy non-maximum suppression, the surer box kept.

Confidence (0-100, monotone in the detector's own evidence; not calibrated on labelled people, since
no such data ships with the project):

- HOG: the SVM's decision value ``s`` (its signed distance past the hyperplane) as
  ``100 / (1 + exp(-2 s))``: 50 on the SVM's own boundary (``s = 0``, where it starts to say "person"),
  88 at ``s = 1``, 98 at ``s = 2``.
- face: the cascade's vote count ``n`` (raw detections merged into the face) as
  ``100 * (1 - 0.5 ** (n / 10))``: every 10 votes halve the doubt; a face needs ``MIN_FACE_VOTES`` votes.
"""

from __future__ import annotations

import functools
import math
import os

import numpy as np

WORKING_SIDE = 400
#: HOG: the SVM's decision value a window needs (0 = the SVM's own boundary)
HOG_THRESHOLD = 0.0
#: faces: the votes (overlapping raw detections) a face needs; real faces in the test photos get
#: 36-44 at this resolution, textures mistaken for faces 4-9
MIN_FACE_VOTES = 20
#: non-maximum suppression: two boxes are one person when their IoU reaches this, or when this share
#: of the smaller box lies inside the larger
NMS_IOU = 0.4
NMS_CONTAINED = 0.8


@functools.cache
def _detectors():
    import cv2

    # as many threads as the network gets (backbone.py), not one per core of the machine
    cv2.setNumThreads(int(os.environ.get("AWS_TWIN_REKOGNITION_THREADS", "2")))
    hog = cv2.HOGDescriptor()
    hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
    face = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    if face.empty():
        raise RuntimeError("OpenCV's frontal face cascade did not load (opencv-python>=4.5,<5 is needed)")
    return hog, face


def hog_confidence(score: float) -> float:
    return 100.0 / (1.0 + math.exp(-2.0 * score))


def face_confidence(votes: int) -> float:
    return 100.0 * (1.0 - 0.5 ** (votes / 10.0))


def _body_from_face(x: float, y: float, w: float, h: float, width: int, height: int):
    """A person's box from a frontal face box (pixels): shoulders are about three face widths across,
    an adult is about 7.5 heads tall; the box starts a third of a face above the face box (the hair)
    and is clipped to the image (a portrait's body runs off its bottom edge)."""
    cx = x + w / 2
    left, right = max(0.0, cx - 1.5 * w), min(float(width), cx + 1.5 * w)
    top, bottom = max(0.0, y - h / 3), min(float(height), y + 7.5 * h)
    return left, top, right - left, bottom - top


def _overlap(a, b) -> tuple[float, float]:
    """IoU of two (left, top, width, height) boxes, and the share of the smaller inside the other."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    area_a, area_b = a[2] * a[3], b[2] * b[3]
    union = area_a + area_b - inter
    return (inter / union if union > 0 else 0.0), (inter / min(area_a, area_b) if inter > 0 else 0.0)


def nms(
    boxes: list[tuple[float, float, float, float, float]],
) -> list[tuple[float, float, float, float, float]]:
    """Greedy non-maximum suppression of (left, top, width, height, confidence) boxes, surest first."""
    kept: list[tuple[float, float, float, float, float]] = []
    for box in sorted(boxes, key=lambda b: -b[4]):
        if all(
            iou < NMS_IOU and contained < NMS_CONTAINED for iou, contained in (_overlap(box, k) for k in kept)
        ):
            kept.append(box)
    return kept


def detect(img) -> list[tuple[float, float, float, float, float]]:
    """The people in an RGB PIL image: (left, top, width, height) as ratios of the image, confidence."""
    import cv2
    from PIL import Image

    hog, face = _detectors()
    width, height = img.size
    scale = WORKING_SIDE / max(width, height)
    w, h = max(1, round(width * scale)), max(1, round(height * scale))
    bgr = np.ascontiguousarray(np.asarray(img.resize((w, h), Image.BILINEAR))[:, :, ::-1])
    boxes = []
    rects, scores = hog.detectMultiScale(
        bgr, hitThreshold=HOG_THRESHOLD, winStride=(8, 8), padding=(8, 8), scale=1.05
    )
    for (x, y, bw, bh), s in zip(rects, np.ravel(scores), strict=True):
        boxes.append((float(x), float(y), float(bw), float(bh), hog_confidence(float(s))))
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    faces, votes = face.detectMultiScale2(gray, scaleFactor=1.1, minNeighbors=3, minSize=(20, 20))
    for (x, y, fw, fh), n in zip(faces, np.ravel(votes), strict=True):
        if n >= MIN_FACE_VOTES:
            boxes.append((*_body_from_face(x, y, fw, fh, w, h), face_confidence(int(n))))
    out = []
    for x, y, bw, bh, conf in nms(boxes):
        left, top = max(0.0, x) / w, max(0.0, y) / h
        right, bottom = min(float(w), x + bw) / w, min(float(h), y + bh) / h
        out.append((float(left), float(top), float(right - left), float(bottom - top), float(conf)))
    return out
