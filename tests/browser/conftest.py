"""Playwright with the system's Chromium (/usr/bin/chromium); without it the browser tests skip on a
developer machine and fail under CI (the ``need`` fixture of tests/conftest.py)."""

from __future__ import annotations

import os

import pytest

from tests.deployment import deployment, pg_database  # noqa: F401  (fixtures: tests/deployment.py)

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def chromium(need):
    """A headless Chromium browser for one test module.

    Not session-scoped: Playwright's sync API keeps an event loop running in the main thread while
    it is open, and later tests that call ``asyncio.run`` (``dag.test()`` runs triggers that way)
    would fail with "cannot be called from a running event loop".
    """
    need(os.path.exists(CHROMIUM), f"Chromium at {CHROMIUM}")
    from playwright.sync_api import sync_playwright  # a requirement (requirements/dev.in)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(chromium):
    """A fresh browser context (no cookies) and page."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        yield page
    finally:
        context.close()
