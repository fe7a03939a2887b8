"""The image_annotation DAG end to end on the twin: real DetectLabels (Rekognition twin) on the
shipped sample photos, real A2I loops answered through the twin's review API while the run waits
deferred, label folders, Ground Truth manifest, per-image JSON and a summary whose counts
reconcile, all checked object by object against what the twin's DetectLabels answers.

The target labels and thresholds are chosen from the twin's own answers (:func:`plan_targets`) so
that the run has images on every side: labelled, in the review band, rejected.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PHOTOS = ROOT / "include" / "data" / "photos"
DAG_ID = "image_annotation"
NONE_OF_THESE = "None of these"


def photo_files() -> list[Path]:
    """What ``stage_samples`` uploads (the photos and the corrupt file)."""
    return sorted(p for p in PHOTOS.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


def service_confidences(twin, bucket: str, prefix: str, names: list[str], min_confidence: float = 0) -> dict:
    """``{name: {label or alias, as Rekognition spells it: confidence}}`` as the twin's DetectLabels
    answers."""
    from botocore.exceptions import ClientError

    client = twin.client("rekognition")
    out: dict[str, dict[str, float]] = {}
    for name in names:
        try:
            labels = client.detect_labels(
                Image={"S3Object": {"Bucket": bucket, "Name": prefix + name}}, MinConfidence=min_confidence
            )["Labels"]
        except ClientError:
            continue  # refused: quarantined by the DAG
        found: dict[str, float] = {}
        for label in labels:
            for n in [label["Name"]] + [a["Name"] for a in label.get("Aliases") or []]:
                found[n] = max(found.get(n, 0.0), round(label["Confidence"], 3))
        out[name] = found
    return out


def expected_decisions(confs: dict, targets: dict, band: float) -> dict[str, tuple[str, list[str]]]:
    """The spec, written out: labelled when a target is at or above its threshold; review when one
    is within ``band`` below; rejected otherwise. ``{name: (decision, labels or candidates)}``."""
    out = {}
    for name, found in confs.items():
        lower = {label.lower(): c for label, c in found.items()}
        score = {t: lower.get(t.lower(), 0.0) for t in targets}
        hits = [t for t in targets if score[t] > 0 and score[t] >= targets[t]]
        near = [t for t in targets if score[t] > 0 and targets[t] - band <= score[t] < targets[t]]
        if hits:
            out[name] = ("labelled", sorted(hits, key=lambda t: (-score[t], t)))
        elif near:
            out[name] = ("review", sorted(near, key=lambda t: (-score[t], t)))
        else:
            out[name] = ("rejected", [])
    return out


def plan_targets(confs: dict, band: float = 10.0) -> dict[str, float]:
    """Two target labels, from the data: the most confident label of the photos, its threshold
    just under it (that photo is labelled); and a label of another photo with its threshold
    just above that photo's confidence (that photo is in the review band)."""
    best = max(((c, name, label) for name, found in confs.items() for label, c in found.items()))
    conf_a, photo_a, label_a = best
    targets = {label_a: round(conf_a - 1, 2)}
    for conf_b, photo_b, label_b in sorted(
        ((c, n, lbl) for n, found in confs.items() for lbl, c in found.items()), reverse=True
    ):
        if photo_b == photo_a or label_b == label_a or conf_b < band:
            continue
        if confs[photo_b].get(label_a, 0) >= targets[label_a] - band:  # (same spelling: one model)
            continue  # would be labelled or reviewed for the first label
        targets[label_b] = round(min(conf_b + band / 2, 100), 2)
        break
    assert len(targets) == 2, f"no second label to review in {confs}"
    return targets


class Reviewer(threading.Thread):
    """Answers every pending loop of a bucket's images through the twin's review API: the first
    loop it sees with the first candidate, the next one with "None of these", and so on."""

    def __init__(self, twin, bucket: str):
        super().__init__(daemon=True)
        self.base = twin.url
        self.token = urllib.parse.parse_qs(urllib.parse.urlparse(twin.review_url).query)["token"][0]
        self.bucket = bucket
        self.answered: dict[str, dict] = {}  # image name -> {"loop", "label", "input"}
        self.errors: list[str] = []
        self.stop = threading.Event()

    def _call(self, path: str, body: dict | None = None):
        req = urllib.request.Request(
            self.base + path,
            data=json.dumps(body).encode() if body is not None else None,
            method="POST" if body is not None else "GET",
            headers={"X-Review-Token": self.token, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def run(self):
        while not self.stop.is_set():
            try:
                for loop in self._call("/review/api/loops?status=InProgress"):
                    task = loop["inputContent"]
                    if not isinstance(task, dict) or not str(task.get("image_s3_uri", "")).startswith(
                        f"s3://{self.bucket}/"
                    ):
                        continue
                    pick = task["categories"][0] if len(self.answered) % 2 == 0 else NONE_OF_THESE
                    self._call(
                        f"/review/api/loops/{loop['name']}/answer",
                        {"answers": {"label": {"label": pick}}, "workerId": "e2e-reviewer"},
                    )
                    name = task["image_s3_uri"].rsplit("/", 1)[1]
                    self.answered[name] = {"loop": loop["name"], "label": pick, "input": task}
            except Exception as exc:  # keep polling; the test reports what went wrong
                self.errors.append(repr(exc))
            self.stop.wait(0.5)


def _read(s3, bucket: str, key: str) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def _keys(s3, bucket: str, prefix: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def _summary(s3, bucket: str) -> dict:
    (key,) = [k for k in _keys(s3, bucket, "labeled/_runs/") if k.endswith("/summary.json")]
    return json.loads(_read(s3, bucket, key))


@pytest.fixture(scope="module")
def planned(airflow_twin):
    """The photos in a scratch bucket, the twin's answers for them, and targets planned from them."""
    twin = airflow_twin
    s3 = twin.client("s3")
    scratch = f"reko-plan-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=scratch)
    names = [p.name for p in photo_files()]
    for path in photo_files():
        s3.put_object(Bucket=scratch, Key=f"p/{path.name}", Body=path.read_bytes())
    confs = service_confidences(twin, scratch, "p/", names)
    targets = plan_targets(confs)
    return {"confs": confs, "targets": targets, "band": 10.0, "names": names}


@pytest.fixture(scope="module")
def sample_run(dag_runner, airflow_twin, planned):
    twin = airflow_twin
    bucket = f"image-e2e-{uuid.uuid4().hex[:8]}"
    conf = {
        "input_prefix": f"s3://{bucket}/unlabeled/",
        "output_prefix": f"s3://{bucket}/labeled/",
        "quarantine_prefix": f"s3://{bucket}/quarantine/",
        "stage_samples": True,
        "target_labels": planned["targets"],
        "review_band": planned["band"],
        "batch_size": 4,
        "rekognition_tps": 40,
        "a2i_tps": 20,
        "flow_definition_name": f"image-review-{bucket[-8:]}",
    }
    reviewer = Reviewer(twin, bucket)
    reviewer.start()
    try:
        result = dag_runner(DAG_ID, conf)
    finally:
        reviewer.stop.set()
        reviewer.join(10)
    assert result.state == "success", f"{DAG_ID} run {result.state}: {result.task_states}"
    s3 = twin.client("s3")
    return {
        "result": result,
        "bucket": bucket,
        "s3": s3,
        "reviewer": reviewer,
        "summary": _summary(s3, bucket),
    }


def test_counts_reconcile_with_what_the_run_left_in_s3_and_a2i(sample_run, planned, airflow_twin):
    summary, s3, bucket = sample_run["summary"], sample_run["s3"], sample_run["bucket"]
    expected = expected_decisions(planned["confs"], planned["targets"], planned["band"])
    decisions = Counter(d for d, _ in expected.values())
    assert decisions["labelled"] and decisions["review"] and decisions["rejected"], expected
    files = photo_files()
    quarantined = len(files) - len(planned["confs"])  # what DetectLabels refused
    assert quarantined >= 1  # corrupt.jpg
    assert summary["found"] == summary["listed"] == summary["scanned"] == len(files)
    assert summary["skipped_by_cap"] == summary["skipped_early_stop"] == 0
    assert summary["scanned"] == (
        summary["labelled"] + summary["reviewed"] + summary["rejected"] + summary["quarantined"]
    )
    assert summary["labelled"] == decisions["labelled"]
    assert summary["reviewed"] == decisions["review"] == len(sample_run["reviewer"].answered)
    assert summary["rejected"] == decisions["rejected"]
    assert summary["quarantined"] == quarantined
    assert summary["quarantine_reasons"] == {"InvalidImageFormatException": quarantined}
    # one per-image JSON per scanned image, one human loop per reviewed one
    annotations = _keys(s3, bucket, "labeled/_annotations/")
    assert len(annotations) == summary["scanned"]
    loops = airflow_twin.client("sagemaker-a2i-runtime").list_human_loops(
        FlowDefinitionArn=sample_run["result"].xcom("flow_definition"), MaxResults=100
    )["HumanLoopSummaries"]
    assert len(loops) == summary["reviewed"]
    assert all(loop["HumanLoopStatus"] == "Completed" for loop in loops)
    assert not sample_run["reviewer"].errors


def test_label_folders_and_manifest_hold_the_machines_and_the_reviewers_labels(sample_run, planned):
    s3, bucket, summary = sample_run["s3"], sample_run["bucket"], sample_run["summary"]
    expected = expected_decisions(planned["confs"], planned["targets"], planned["band"])
    answered = sample_run["reviewer"].answered
    want: dict[str, set[str]] = {label: set() for label in planned["targets"]}
    human = {}
    for name, (decision, labels) in expected.items():
        if decision == "labelled":
            for label in labels:
                want[label].add(name)
            human[name] = False
        elif decision == "review":
            # the task page offered exactly the candidates, then "None of these"
            assert answered[name]["input"]["categories"] == [*labels, NONE_OF_THESE]
            if answered[name]["label"] != NONE_OF_THESE:
                want[answered[name]["label"]].add(name)
                human[name] = True
    for label, names in want.items():
        assert {k.rsplit("/", 1)[1] for k in _keys(s3, bucket, f"labeled/{label}/")} == names, label
    from aws_ml_provider.utils.ground_truth import read_manifest

    manifest = read_manifest(_read(s3, bucket, summary["manifest_uri"].split("/", 3)[3]).decode())
    assert manifest.errors == []
    got = {e.source_ref.rsplit("/", 1)[1]: (e.labels[0], e.human_annotated) for e in manifest.entries}
    assert {n: h for n, (_, h) in got.items()} == human
    for name, (label, _) in got.items():
        assert name in want[label]
    assert summary["manifest_lines"] == len(got)
    assert summary["review_outcomes"]["labelled"] == sum(human.values())
    assert summary["review_outcomes"]["rejected"] == sum(
        1 for a in answered.values() if a["label"] == NONE_OF_THESE
    )


def test_per_image_json_and_quarantine_records(sample_run, planned):
    s3, bucket = sample_run["s3"], sample_run["bucket"]
    expected = expected_decisions(planned["confs"], planned["targets"], planned["band"])
    statuses = {"labelled": "labelled", "review": "reviewed", "rejected": "rejected"}
    for name, (decision, _) in expected.items():
        record = json.loads(_read(s3, bucket, f"labeled/_annotations/{name}.json"))
        assert record["image"] == f"s3://{bucket}/unlabeled/{name}"
        assert record["status"] == statuses[decision]
        if decision == "review":
            assert record["loop"] == sample_run["reviewer"].answered[name]["loop"]
    refused = [p.name for p in photo_files() if p.name not in planned["confs"]]
    for name in refused:
        record = json.loads(_read(s3, bucket, f"labeled/_annotations/{name}.json"))
        assert record["status"] == "quarantined" and name in record["reason"]
        reason_keys = [k for k in _keys(s3, bucket, "quarantine/") if k.endswith(f"{name}.reason.json")]
        assert len(reason_keys) == 1
        reason = json.loads(_read(s3, bucket, reason_keys[0]))
        assert reason["code"] == "InvalidImageFormatException" and reason["image"].endswith(name)


def test_custom_labels_step_is_off_by_default(sample_run):
    states = sample_run["result"].task_states
    assert states["custom_labels.want_training"] == "success"
    assert all(
        states[t] == "skipped"
        for t in ("custom_labels.create_project", "custom_labels.train_model", "custom_labels.stop_model")
    )


def test_scan_cap_and_early_stop_are_counted(dag_runner, airflow_twin):
    """Six of the ten photos under the cap; a target no photo has and an early stop after two
    misses: two scanned, four skipped by the early stop, four by the cap."""
    bucket = f"image-cap-{uuid.uuid4().hex[:8]}"
    result = dag_runner(
        DAG_ID,
        {
            "input_prefix": f"s3://{bucket}/unlabeled/",
            "output_prefix": f"s3://{bucket}/labeled/",
            "quarantine_prefix": f"s3://{bucket}/quarantine/",
            "stage_samples": True,
            "target_labels": {"Label no photo has": 50},
            "scan_cap": 6,
            "stop_after_misses": 2,
            "flow_definition_name": f"image-review-{bucket[-8:]}",
        },
    )
    assert result.state == "success", result.task_states
    summary = _summary(airflow_twin.client("s3"), bucket)
    total = len(photo_files())
    assert summary["found"] == total and summary["skipped_by_cap"] == total - 6
    assert summary["listed"] == 6
    assert summary["scanned"] == 2 and summary["rejected"] == 2
    assert summary["skipped_early_stop"] == 4
    assert result.task_states["wait_for_review"] == "skipped"


def test_an_empty_prefix_runs_with_the_defaults_and_says_so(dag_runner, airflow_twin):
    """The trigger form's defaults (nothing staged): nothing to scan, no review, a zero summary."""
    bucket = f"image-empty-{uuid.uuid4().hex[:8]}"
    result = dag_runner(
        DAG_ID,
        {
            "input_prefix": f"s3://{bucket}/unlabeled/",
            "output_prefix": f"s3://{bucket}/labeled/",
            "quarantine_prefix": f"s3://{bucket}/quarantine/",
        },
    )
    assert result.state == "success", result.task_states
    summary = _summary(airflow_twin.client("s3"), bucket)
    assert summary["found"] == summary["scanned"] == summary["manifest_lines"] == 0
    assert result.task_states["wait_for_review"] == "skipped"


def test_the_model_is_stopped_by_a_teardown_of_its_start():
    """A started model is billed by the hour: ``stop_model`` is the teardown of ``start_model``
    (it runs when anything between them fails) and nothing else may skip it."""
    from tests.e2e.conftest import load_dag

    dag = load_dag(DAG_ID)
    stop = dag.get_task("custom_labels.stop_model")
    start = dag.get_task("custom_labels.start_model")
    assert stop.is_teardown and start.is_setup
    assert str(stop.trigger_rule) in ("all_done_setup_success", "TriggerRule.ALL_DONE_SETUP_SUCCESS")
    assert "custom_labels.start_model" in stop.upstream_task_ids
    assert "custom_labels.label_with_model" in stop.upstream_task_ids


def _crops(path: Path, count: int) -> list[bytes]:
    """``count`` different crops / mirror images of a photo."""
    import io

    from PIL import Image, ImageOps

    image = Image.open(path).convert("RGB")
    w, h = image.size
    out = []
    for i in range(count):
        f = 0.65 + 0.05 * (i % 6)
        left, top = int(w * (1 - f) * (i % 3) / 2), int(h * (1 - f) * (i % 2))
        crop = image.crop((left, top, left + int(w * f), top + int(h * f)))
        if i % 2:
            crop = ImageOps.mirror(crop)
        buf = io.BytesIO()
        crop.save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out


@pytest.mark.timeout(1200)
def test_custom_labels_model_is_trained_started_used_and_stopped(dag_runner, airflow_twin):
    """Crops of the cat and the dog photos, labelled by DetectLabels, become a manifest; the run
    creates the Custom Labels dataset from it, trains a model, starts it, labels the images with
    it, and its teardown stops it."""
    twin = airflow_twin
    s3 = twin.client("s3")
    bucket = f"image-train-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    names = []
    for photo in ("chelsea_cat.jpg", "dog_bicycle.jpg"):
        for i, body in enumerate(_crops(PHOTOS / photo, 8)):
            name = f"{photo[:-4]}-{i}.jpg"
            s3.put_object(Bucket=bucket, Key=f"unlabeled/{name}", Body=body)
            names.append(name)
    targets = {"Cat": 50.0, "Dog": 50.0}
    expected = expected_decisions(service_confidences(twin, bucket, "unlabeled/", names), targets, 0)
    labelled = Counter(labels[0] for decision, labels in expected.values() if decision == "labelled")
    assert set(labelled) == {"Cat", "Dog"}, expected
    project = f"image-annotation-{bucket[-8:]}"
    result = dag_runner(
        DAG_ID,
        {
            "input_prefix": f"s3://{bucket}/unlabeled/",
            "output_prefix": f"s3://{bucket}/labeled/",
            "quarantine_prefix": f"s3://{bucket}/quarantine/",
            "target_labels": targets,
            "review_band": 0,
            "train_custom_labels": True,
            "start_model": True,
            "project_name": project,
            "flow_definition_name": f"image-review-{bucket[-8:]}",
        },
    )
    assert result.state == "success", result.task_states
    states = result.task_states
    for task in (
        "create_project",
        "create_dataset",
        "train_model",
        "start_model",
        "label_with_model",
        "stop_model",
    ):
        assert states[f"custom_labels.{task}"] == "success", states
    trained = result.xcom("custom_labels.train_model")
    assert trained["status"] == "TRAINING_COMPLETED" and 0 <= trained["f1_score"] <= 1
    print(f"image_annotation's Custom Labels model: F1 {trained['f1_score']:.3f}")
    rekognition = twin.client("rekognition")
    (version,) = rekognition.describe_project_versions(
        ProjectArn=trained["project_arn"], VersionNames=[trained["version_name"]]
    )["ProjectVersionDescriptions"]
    assert version["Status"] == "STOPPED"  # the teardown stopped it
    dataset = rekognition.describe_dataset(DatasetArn=result.xcom("custom_labels.create_dataset"))
    assert dataset["DatasetDescription"]["DatasetStats"]["TotalEntries"] == sum(labelled.values())
    labelled_by_model = result.xcom("custom_labels.label_with_model")
    assert labelled_by_model["scanned"] == sum(labelled.values()) and labelled_by_model["quarantined"] == 0
