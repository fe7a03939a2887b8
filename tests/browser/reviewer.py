"""A reviewer in headless Chromium, in a thread beside a ``dag.test()`` run that waits on a human loop.

:class:`BrowserReviewer` opens the twin's review list, waits until a task whose page contains
``needle`` (e.g. the bucket the document's presigned URL names) is listed, opens it and calls
:meth:`BrowserReviewer.review` (the subclass answers the task). When anything fails it records the
error and keeps stopping the flow's human loops that are in progress, so the waiting run ends at once
and the test reports the reviewer's error instead of hanging until its timeout.
"""

from __future__ import annotations

import threading
from pathlib import Path

from .conftest import CHROMIUM, CHROMIUM_ARGS

#: the review page's required name field (recorded as the loop's worker)
WORKER_FIELD = "Your name (recorded as the worker)"


class BrowserReviewer(threading.Thread):
    def __init__(self, twin, flow_definition_name: str, needle: str, shots: Path):
        super().__init__(daemon=True)
        self.twin = twin
        self.flow_definition_name = flow_definition_name
        self.needle = needle
        self.shots = shots
        self.loop: str | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        self.cancel = threading.Event()

    def review(self, page) -> None:
        """Answer the open task (the subclass)."""
        raise NotImplementedError

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
                    if self._open_task(page):
                        self.review(page)
                finally:
                    browser.close()
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            self.done.set()
        # after an error, keep stopping the flow's loops (the run may start one only now) until the
        # test is done with the run
        while self.error is not None and not self.cancel.is_set():
            self._stop_loops()
            self.cancel.wait(1.0)

    def _open_task(self, page) -> bool:
        """Poll the review list until a task whose page contains ``needle`` is there; open it."""
        assert page.goto(self.twin.review_url).status == 200
        while not self.cancel.is_set():
            links = page.locator("#pending tr a")
            hrefs = [links.nth(i).get_attribute("href") for i in range(links.count())]
            for href in hrefs:
                page.goto(page.url.split("/review/")[0] + "/review/" + href.rsplit("/review/", 1)[-1])
                if self.needle in page.content():
                    self.loop = page.url.split("?", 1)[0].rsplit("/", 1)[-1]
                    return True
            self.cancel.wait(1.0)
            page.goto(self.twin.review_url)
        return False

    def _stop_loops(self) -> None:
        try:
            flow = self.twin.client("sagemaker").describe_flow_definition(
                FlowDefinitionName=self.flow_definition_name
            )["FlowDefinitionArn"]
            runtime = self.twin.client("sagemaker-a2i-runtime")
            for loop in runtime.list_human_loops(FlowDefinitionArn=flow)["HumanLoopSummaries"]:
                if loop["HumanLoopStatus"] == "InProgress":
                    runtime.stop_human_loop(HumanLoopName=loop["HumanLoopName"])
        except Exception:  # the flow may not exist yet; the reviewer's own error is what counts
            pass
