"""Rekognition on the twin: DetectLabels throughput, and Custom Labels training time and F1 for both
model kinds at the issue's sizes, on real images (tests/rekognition_data.py says which).

    .venv/bin/python bench/rekognition_bench.py [--classify-train 200] [--detect-train 150] [--calls 40]

Starts a twin (AWS_TWIN_REKOGNITION_THREADS=2, the training worker and DetectLabels on 2 threads), then:
1. DetectLabels: ``--calls`` sequential calls on the sample photos (scikit-learn's two, matplotlib's
   Grace Hopper) as bytes; images per second, and the first call apart (it builds the network).
2. classification: Fashion-MNIST, 4 classes (t-shirt, trouser, sneaker, bag), ``--classify-train``
   training images and 80 other test images; CreateProjectVersion -> TRAINING_COMPLETED seconds, the
   worker's own seconds, F1.
3. detection: scenes of bag / trouser / sneaker items on photo backgrounds, ``--detect-train``
   training scenes and 40 test scenes; the same figures.
Needs Debian's dataset-fashion-mnist (scripts/install_system_deps.sh).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aws_twin.testing import start_twin  # noqa: E402
from tests import rekognition_data as data  # noqa: E402


def train(twin, rek, s3, bucket: str, name: str, train_key: str, test_key: str) -> dict:
    project = rek.create_project(ProjectName=name)["ProjectArn"]
    asset = lambda key: {"Assets": [{"GroundTruthManifest": {"S3Object": {"Bucket": bucket, "Name": key}}}]}  # noqa: E731
    started = time.monotonic()
    rek.create_project_version(ProjectArn=project, VersionName="v1", OutputConfig={"S3Bucket": bucket},
                               TrainingData=asset(train_key), TestingData=asset(test_key))  # fmt: skip
    rek.get_waiter("project_version_training_completed").wait(
        ProjectArn=project, VersionNames=["v1"], WaiterConfig={"Delay": 1, "MaxAttempts": 1800}
    )
    wall = time.monotonic() - started
    (v,) = rek.describe_project_versions(ProjectArn=project)["ProjectVersionDescriptions"]
    obj = v["EvaluationResult"]["Summary"]["S3Object"]
    summary = json.loads(s3.get_object(Bucket=obj["Bucket"], Key=obj["Name"])["Body"].read())
    figures = twin.control("state")["services"]["RekognitionService"]["versions"][v["ProjectVersionArn"]]
    return {"wall_s": round(wall, 1), "worker_cpu_s": figures["worker_cpu_seconds"],
            "worker_train_s": figures["train_seconds"], "f1": round(v["EvaluationResult"]["F1Score"], 3),
            "per_label_f1": {r["Label"]: round(r["Metrics"]["F1Score"], 3) for r in summary["LabelResults"]},
            "train_images": summary["EvaluationDetails"]["NumberOfTrainingImages"],
            "test_images": summary["EvaluationDetails"]["NumberOfTestingImages"]}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--classify-train", type=int, default=200)
    ap.add_argument("--detect-train", type=int, default=150)
    ap.add_argument("--calls", type=int, default=40)
    ap.add_argument("--labels-only", action="store_true", help="time DetectLabels only, skip training")
    args = ap.parse_args()
    if not data.fashion_available():
        print("Fashion-MNIST missing: apt-get install dataset-fashion-mnist", file=sys.stderr)
        return 2
    os.environ.setdefault("AWS_TWIN_REKOGNITION_THREADS", "2")
    twin = start_twin(0)
    try:
        rek, s3 = twin.client("rekognition"), twin.client("s3")
        bucket = f"bench-{uuid.uuid4().hex[:6]}"
        s3.create_bucket(Bucket=bucket)
        import matplotlib
        import sklearn

        photos = [Path(sklearn.__file__).parent / "datasets/images" / n for n in ("china.jpg", "flower.jpg")]
        photos.append(Path(matplotlib.get_data_path()) / "sample_data/grace_hopper.jpg")
        blobs = [p.read_bytes() for p in photos]
        t = time.monotonic()
        rek.detect_labels(Image={"Bytes": blobs[0]})
        first = time.monotonic() - t
        t = time.monotonic()
        for i in range(args.calls):
            rek.detect_labels(Image={"Bytes": blobs[i % len(blobs)]})
        per_s = args.calls / (time.monotonic() - t)
        print(
            f"DetectLabels: {per_s:.1f} images/s ({1000 / per_s:.0f} ms an image), first call {first:.1f} s"
        )

        if args.labels_only:
            return 0
        classes = ["t-shirt", "trouser", "sneaker", "bag"]
        per = args.classify_train // len(classes)
        tr, _ = data.stage_classification(s3, bucket, "cls/train", classes, per, seed=1)
        te, _ = data.stage_classification(s3, bucket, "cls/test", classes, 20, seed=2, skip=per)
        cls = train(twin, rek, s3, bucket, "bench-classify", tr, te)
        print(f"classification: {cls['train_images']} train / {cls['test_images']} test images, "
              f"trained in {cls['wall_s']} s (worker CPU {cls['worker_cpu_s']} s), F1 {cls['f1']} {cls['per_label_f1']}")  # fmt: skip

        names = ["bag", "trouser", "sneaker"]
        tr, _ = data.stage_detection(s3, bucket, "det/train", names, args.detect_train, seed=3)
        te, _ = data.stage_detection(s3, bucket, "det/test", names, 40, seed=4)
        det = train(twin, rek, s3, bucket, "bench-detect", tr, te)
        print(f"detection: {det['train_images']} train / {det['test_images']} test scenes, "
              f"trained in {det['wall_s']} s (worker CPU {det['worker_cpu_s']} s), F1 {det['f1']} {det['per_label_f1']}")  # fmt: skip
        print(json.dumps({"detect_labels_per_s": round(per_s, 2), "classification": cls, "detection": det}))
    finally:
        twin.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
