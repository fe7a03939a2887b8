"""A reviewer in a real browser finishes a waiting expense_documents run: the DAG runs (dag.test,
deferred on the human loop) while headless Chromium opens the twin's review page, corrects the
faint TOTAL of the receipt and submits; the run then completes with the corrected value in its
run CSV."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import threading
import uuid
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import airflow_db, airflow_twin, dag_runner  # noqa: F401  (fixtures)

from .conftest import CHROMIUM, CHROMIUM_ARGS

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "include" / "data" / "receipts"
RECEIPT = "receipt_faint_total.jpg"


class BrowserReviewer(threading.Thread):
    """Chromium (Playwright's sync API, all in this thread): open the review list, wait for the
    receipt's task, correct TOTAL, submit."""

    def __init__(self, review_url: str, document_uri: str, total: str, shots: Path):
        super().__init__(daemon=True)
        self.review_url = review_url
        self.document_uri = document_uri
        self.total = total
        self.shots = shots
        self.seen_value: str | None = None
        self.loop: str | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        self.cancel = threading.Event()

    def run(self):
        from playwright.sync_api import sync_playwright

        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
                )
                try:
                    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
                    page.set_default_timeout(20_000)
                    self._review(page)
                finally:
                    browser.close()
        except BaseException as exc:  # reported by the test
            self.error = exc
            self.on_error()
        finally:
            self.done.set()

    def on_error(self):
        """Set by the test: ends the waiting run at once (else it waits for a review that never comes)."""

    def _review(self, page):
        bucket = self.document_uri[len("s3://") :].split("/", 1)[0]
        assert page.goto(self.review_url).status == 200
        # wait until the DAG has started the loop and the list shows our receipt's task
        while not self.cancel.is_set():
            links = page.locator("#pending tr a")
            hrefs = [links.nth(i).get_attribute("href") for i in range(links.count())]
            for href in hrefs:
                page.goto(page.url.split("/review/")[0] + "/review/" + href.rsplit("/review/", 1)[-1])
                if bucket in page.content():  # the image's presigned URL names the bucket
                    break
            else:
                self.cancel.wait(1.0)
                page.goto(self.review_url)
                continue
            break
        if self.cancel.is_set():
            return
        self.loop = page.url.split("?", 1)[0].rsplit("/", 1)[-1]
        page.wait_for_function("document.getElementById('document-image').complete")
        assert page.locator("#document-image").evaluate("img => img.naturalWidth") > 0
        total = page.get_by_label("TOTAL", exact=True)
        self.seen_value = total.input_value()
        total.fill(self.total)
        page.get_by_label("Your name (recorded as the worker)").fill("Browser Reviewer")
        page.screenshot(path=str(self.shots / "expense_review.png"), full_page=True)
        page.get_by_role("button", name="Submit").click()
        page.wait_for_url(re.compile(r"/review/\?done="))


def test_reviewer_corrects_the_total_in_chromium_and_the_run_finishes(
    dag_runner,  # noqa: F811
    airflow_twin,  # noqa: F811
    tmp_path,
    need,
    monkeypatch,
):
    need(os.path.exists(CHROMIUM), f"Chromium at {CHROMIUM}")
    twin = airflow_twin
    token = twin.review_url.split("token=", 1)[1]
    monkeypatch.setenv("AWS_TWIN_REVIEW_TOKEN", token)  # as make up gives it to Airflow
    monkeypatch.delenv("AWS_TWIN_PUBLIC_URL", raising=False)
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
    reviewer = BrowserReviewer(twin.review_url, f"s3://{bucket}/inbox/{RECEIPT}", truth["total"], tmp_path)
    a2i_runtime = twin.client("sagemaker-a2i-runtime")

    def stop_the_loops():
        """The reviewer failed: stop the run's human loops so the DAG's wait ends and the test
        reports the reviewer's error instead of hanging until its timeout."""
        flow = twin.client("sagemaker").describe_flow_definition(
            FlowDefinitionName=conf["flow_definition_name"]
        )["FlowDefinitionArn"]
        for loop in a2i_runtime.list_human_loops(FlowDefinitionArn=flow)["HumanLoopSummaries"]:
            if loop["HumanLoopStatus"] == "InProgress":
                a2i_runtime.stop_human_loop(HumanLoopName=loop["HumanLoopName"])

    reviewer.on_error = stop_the_loops
    reviewer.start()
    try:
        result = dag_runner("expense_documents", conf)
    finally:
        reviewer.cancel.set()
        reviewer.done.wait(60)
    assert reviewer.error is None, repr(reviewer.error)
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
