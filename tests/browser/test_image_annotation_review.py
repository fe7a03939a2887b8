"""A reviewer in a real browser finishes a waiting image_annotation run: the DAG runs (dag.test,
deferred on the human loop) while headless Chromium opens the twin's review page, sees the photo
and the candidate label, picks it, names itself and submits; the run then completes with the
person's label: the photo in the label's folder, a human-annotated manifest line, the per-image
JSON. The reviewer's deadline (tests/browser/reviewer.py) ends the run if it still waits."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest

from tests.e2e.conftest import airflow_db, airflow_twin, dag_runner  # noqa: F401  (fixtures)
from tests.e2e.test_image_annotation import NONE_OF_THESE, service_confidences

from .conftest import CHROMIUM
from .reviewer import BrowserReviewer, run_with_reviewer, twin_review_env

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
PHOTO = ROOT / "include" / "data" / "photos" / "chelsea_cat.jpg"
#: the outer guard: the run (one photo) takes well under a minute on the twin
DEADLINE_S = 240


class LabelReviewer(BrowserReviewer):
    """Waits for the photo's task, checks the photo is shown, picks ``label``, submits."""

    def __init__(self, twin, flow_definition_name: str, bucket: str, label: str, shots: Path):
        # the photo's presigned URL names the bucket
        super().__init__(twin, flow_definition_name, bucket, shots, deadline_s=DEADLINE_S)
        self.label = label
        self.offered: list[str] = []

    def review(self, page):
        page.wait_for_function("document.querySelector('img.crowd-classifier-image').complete")
        image = page.locator("img.crowd-classifier-image")
        assert image.evaluate("img => img.naturalWidth") > 0  # the photo itself is shown
        options = page.locator(".crowd-classifier-options input[type=radio]")
        self.offered = [options.nth(i).get_attribute("value") for i in range(options.count())]
        assert page.locator("#candidates").get_by_text(self.label).count() >= 1  # with its confidence
        page.get_by_label(self.label, exact=True).check()
        self.submit(page, "image_label_review.png")


def test_reviewer_picks_the_label_in_chromium_and_the_run_finishes_with_it(
    dag_runner,  # noqa: F811
    airflow_twin,  # noqa: F811
    tmp_path,
    need,
    monkeypatch,
):
    need(os.path.exists(CHROMIUM), f"Chromium at {CHROMIUM}")
    twin = airflow_twin
    twin_review_env(twin, monkeypatch)
    s3 = twin.client("s3")
    bucket = f"image-browser-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key=f"unlabeled/{PHOTO.name}", Body=PHOTO.read_bytes())
    # the twin sees the cat; a threshold just above its confidence puts the photo in the review band
    confs = service_confidences(twin, bucket, "unlabeled/", [PHOTO.name])[PHOTO.name]
    label = "Cat"
    assert label in confs, confs
    conf = {
        "input_prefix": f"s3://{bucket}/unlabeled/",
        "output_prefix": f"s3://{bucket}/labeled/",
        "quarantine_prefix": f"s3://{bucket}/quarantine/",
        "target_labels": {label: min(100, round(confs[label] + 5, 2))},
        "review_band": 10,
        "flow_definition_name": f"image-review-{bucket[-8:]}",
    }
    reviewer = LabelReviewer(twin, conf["flow_definition_name"], bucket, label, tmp_path)
    result = run_with_reviewer(reviewer, dag_runner, "image_annotation", conf)
    assert result.state == "success", result.task_states
    assert result.task_states["wait_for_review"] == "success"
    assert reviewer.offered == [label, NONE_OF_THESE]
    summary = result.xcom("merge")
    assert summary["reviewed"] == 1 and summary["scanned"] == 1
    assert summary["review_outcomes"] == {"labelled": 1, "rejected": 0, "not_completed": 0}
    assert summary["images_per_label"] == {label: 1}
    # the person's label: the folder, the manifest line (human-annotated) and the per-image JSON
    s3.head_object(Bucket=bucket, Key=f"labeled/{label}/{PHOTO.name}")
    manifest = s3.get_object(Bucket=bucket, Key=summary["manifest_uri"].split("/", 3)[3])["Body"].read()
    (line,) = [json.loads(row) for row in manifest.decode().splitlines()]
    assert line["source-ref"] == f"s3://{bucket}/labeled/{label}/{PHOTO.name}"
    assert line["class-metadata"]["class-name"] == label
    assert line["class-metadata"]["human-annotated"] == "yes"
    record = json.loads(
        s3.get_object(Bucket=bucket, Key=f"labeled/_annotations/{PHOTO.name}.json")["Body"].read()
    )
    assert record["review"] == "labelled" and record["labels"] == [label]
    assert record["loop"] == reviewer.loop
