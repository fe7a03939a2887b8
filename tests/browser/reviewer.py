"""A reviewer in headless Chromium, in a thread beside a ``dag.test()`` run that waits on a human loop.

:class:`BrowserReviewer` opens the twin's review list, waits until a task whose page contains
``needle`` (e.g. the bucket the document's presigned URL names) is listed, opens it and calls
:meth:`BrowserReviewer.review` (the subclass answers the task). When anything fails it records the
error and keeps stopping the flow's human loops that are in progress, so the waiting run ends at once
and the test reports the reviewer's error instead of hanging until its timeout.

``deadline_s`` is the outer guard (in-process triggers ignore pytest-timeout): once it has passed
since the reviewer started, the reviewer records a :class:`ReviewDeadline` as its error (unless it
has one already) and stops the flow's loops too, even when the browser answered without an error:
a run that keeps waiting on a loop after that is ended, and the test says so. Should the run
still wait ``ABANDON_AFTER_S`` later (stopping its loops did not end it, or it waits on something
else), the reviewer raises :class:`RunAbandoned` in the thread that created it (the test's, inside
``dag.test()``'s in-process trigger loop): the test fails instead of hanging the suite.
"""

from __future__ import annotations

import ctypes
import threading
import time
from pathlib import Path

from .conftest import CHROMIUM, CHROMIUM_ARGS

#: the review page's required name field (recorded as the loop's worker)
WORKER_FIELD = "Your name (recorded as the worker)"
#: after the deadline, how long stopping the loops may take to end the run before it is abandoned
ABANDON_AFTER_S = 60.0


class ReviewDeadline(TimeoutError):
    """The reviewer's deadline passed while the run still waited (the reviewer stopped the loops)."""


class RunAbandoned(BaseException):
    """Raised in the test's thread when stopping the loops did not end the run (a BaseException,
    so that no ``except Exception`` on the way out of ``dag.test()`` swallows it)."""


class BrowserReviewer(threading.Thread):
    def __init__(self, twin, flow_definition_name: str, needle: str, shots: Path, deadline_s: float = 600.0):
        super().__init__(daemon=True)
        self.deadline_s = deadline_s
        self.deadline = time.monotonic() + deadline_s
        self.owner = threading.get_ident()  # the test's thread, which runs the DAG
        self.stop_error: BaseException | None = None
        self.abandoned = False
        self.twin = twin
        self.flow_definition_name = flow_definition_name
        self.needle = needle
        self.shots = shots
        self.loop: str | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        self.cancel = threading.Event()

    def review(self, page) -> None:
        """Answer the open task (the subclass), then :meth:`submit`."""
        raise NotImplementedError

    def submit(self, page, screenshot: str, worker: str = "Browser Reviewer") -> None:
        """Fill the required worker name, keep a screenshot of the answered task, submit, and wait
        for the review list's "done" page."""
        import re

        page.get_by_label(WORKER_FIELD).fill(worker)
        page.screenshot(path=str(self.shots / screenshot), full_page=True)
        page.get_by_role("button", name="Submit").click()
        page.wait_for_url(re.compile(r"/review/\?done="))

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
        # after an error or past the deadline, keep stopping the flow's loops (the run may start one
        # only now) until the test is done with the run
        while not self.cancel.is_set():
            if self.error is None and time.monotonic() >= self.deadline:
                self.error = ReviewDeadline(
                    f"the run still waited {self.deadline_s:.0f} s after the reviewer started "
                    f"(loop {self.loop or '(none opened)'}); the reviewer stopped the flow's loops"
                )
            if self.error is not None:
                self._stop_loops()
            if not self.abandoned and time.monotonic() >= self.deadline + ABANDON_AFTER_S:
                self._abandon_run()
            self.cancel.wait(1.0)

    def _abandon_run(self) -> None:
        """Raise :class:`RunAbandoned` in the test's thread (checked between bytecodes; the
        in-process trigger loop wakes at least every poll interval)."""
        self.abandoned = True
        self.error = RunAbandoned(
            f"{self.error!r}; the run still waited {ABANDON_AFTER_S:.0f} s after that, so the reviewer "
            f"abandoned it (last error stopping the loops: {self.stop_error!r})"
        )
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self.owner), ctypes.py_object(RunAbandoned))

    def _open_task(self, page) -> bool:
        """Poll the review list until a task whose page contains ``needle`` is there; open it."""
        assert page.goto(self.twin.review_url).status == 200
        while not self.cancel.is_set():
            if time.monotonic() >= self.deadline:
                raise ReviewDeadline(f"no task with {self.needle!r} listed within {self.deadline_s:.0f} s")
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
        except Exception as exc:  # the flow may not exist yet; the reviewer's own error is what counts
            self.stop_error = exc


def twin_review_env(twin, monkeypatch) -> str:
    """Put the review token in the environment as ``make up`` gives it to Airflow (the loops' review
    links carry it), with the twin's own URL in those links; return the token."""
    token = twin.review_url.split("token=", 1)[1]
    monkeypatch.setenv("AWS_TWIN_REVIEW_TOKEN", token)
    monkeypatch.delenv("AWS_TWIN_PUBLIC_URL", raising=False)
    return token


def run_with_reviewer(reviewer: BrowserReviewer, dag_runner, dag_id: str, conf: dict):
    """Run ``dag_id`` with ``dag.test()`` while ``reviewer`` answers its loop in Chromium; fail the
    test with the reviewer's error when it had one (or when its last-resort guard ended the run)."""
    import pytest

    reviewer.start()
    try:
        result = dag_runner(dag_id, conf)
    except RunAbandoned:  # the reviewer's last-resort guard: the run did not end
        pytest.fail(repr(reviewer.error))
    finally:
        reviewer.cancel.set()
        reviewer.done.wait(60)
    assert reviewer.error is None, repr(reviewer.error)
    return result
