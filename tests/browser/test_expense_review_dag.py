"""A reviewer in a real browser finishes a waiting expense_documents run: the DAG runs (dag.test,
deferred on the human loop) while headless Chromium opens the twin's review page, corrects the
faint TOTAL of the receipt and submits; the run then completes with the corrected value in its
run CSV."""

from __future__ import annotations

import csv
import io
import json
import os
import uuid
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import airflow_db, airflow_twin, dag_runner  # noqa: F401  (fixtures)

from .conftest import CHROMIUM
from .reviewer import BrowserReviewer, run_with_reviewer, twin_review_env

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "include" / "data" / "receipts"
RECEIPT = "receipt_faint_total.jpg"


class TotalReviewer(BrowserReviewer):
    """Waits for the receipt's task, corrects TOTAL, submits."""

    def __init__(self, twin, flow_definition_name: str, bucket: str, total: str, shots: Path):
        super().__init__(twin, flow_definition_name, bucket, shots)  # the presigned URL names the bucket
        self.total = total
        self.seen_value: str | None = None

    def review(self, page):
        page.wait_for_function("document.getElementById('document-image').complete")
        assert page.locator("#document-image").evaluate("img => img.naturalWidth") > 0
        total = page.get_by_label("TOTAL", exact=True)
        self.seen_value = total.input_value()
        total.fill(self.total)
        self.submit(page, "expense_review.png")


def test_reviewer_corrects_the_total_in_chromium_and_the_run_finishes(
    dag_runner,  # noqa: F811
    airflow_twin,  # noqa: F811
    tmp_path,
    need,
    monkeypatch,
):
    need(os.path.exists(CHROMIUM), f"Chromium at {CHROMIUM}")
    twin = airflow_twin
    token = twin_review_env(twin, monkeypatch)
    truth = json.loads((SAMPLES / "ground_truth.json").read_text())[RECEIPT]["documents"][0]
    s3 = twin.client("s3")
    bucket = f"expense-browser-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key=f"inbox/{RECEIPT}", Body=(SAMPLES / RECEIPT).read_bytes())
    conf = {
        "input_prefix": f"s3://{bucket}/inbox/",
        "output_prefix": f"s3://{bucket}/output/",
        "quarantine_prefix": f"s3://{bucket}/quarantine/",
        "state_prefix": f"s3://{bucket}/state/",
        "stage_samples": False,
        "flow_definition_name": f"expense-review-{bucket[-8:]}",
    }
    reviewer = TotalReviewer(twin, conf["flow_definition_name"], bucket, truth["total"], tmp_path)
    result = run_with_reviewer(reviewer, dag_runner, "expense_documents", conf)
    assert result.state == "success", result.task_states
    assert result.task_states["wait_for_review"] == "success"
    assert reviewer.seen_value is not None  # the task showed the machine's TOTAL
    summary = result.xcom("finalize")
    assert summary["reviewed"] == 1 and summary["received"] == 1
    body = s3.get_object(Bucket=bucket, Key=summary["outputs"]["documents.csv"].split("/", 3)[3])[
        "Body"
    ].read()
    (row,) = list(csv.DictReader(io.StringIO(body.decode())))
    assert row["TOTAL"] == truth["total"]
    assert row["reviewed"] == "true"
    assert ("TOTAL" in row["human_changed"].split(";")) == (reviewer.seen_value != truth["total"])
    assert row["review_loop"] == reviewer.loop

    # the wait_for_review task's "A2I Review Page" extra link (what the Airflow UI shows, stored by
    # the task runner as XCom _link_<class>) opens the loop's page on the twin in a fresh browser
    link = result.xcom("wait_for_review", "_link_A2IReviewPageLink")
    assert link == f"{twin.url}/review/{reviewer.loop}?token={token}"
    page = requests.get(link, timeout=30)
    assert page.status_code == 200 and reviewer.loop in page.text and "Completed" in page.text
