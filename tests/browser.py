"""Headless Chromium for the browser tests (admin page, report, Locust web UI).

Debian's ``chromium`` driven by Playwright from PyPI, never a browser Playwright downloads
(``playwright install`` fails here; ENGINEERING.md, "Browser tests"). Import from a test module
(``tests/`` is on ``sys.path`` via the rootdir conftest)::

    from browser import BROWSER_MARKS, async_browser

    pytestmark = BROWSER_MARKS

    async def test_page() -> None:
        async with async_browser() as browser:
            page = await browser.new_page()

``sync_browser()`` is the same for tests without an event loop.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

__all__ = ["CHROMIUM", "FLAGS", "BROWSER_MARKS", "chromium_missing", "async_browser", "sync_browser"]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
"""Debian's Chromium binary."""

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
"""Flags for running as root in a container without network (ENGINEERING.md). Playwright gives each
launch a fresh temporary profile (its own ``--user-data-dir``)."""


def chromium_missing() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if not Path(CHROMIUM).exists():
        return f"needs Debian chromium at {CHROMIUM} (apt-get install chromium)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "needs Playwright from PyPI (pip install playwright; never 'playwright install')"
    return None


BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.skipif(chromium_missing() is not None, reason=chromium_missing() or ""),
]
"""``pytestmark`` for a browser test module: the marker plus a skip with the reason."""


@contextlib.asynccontextmanager
async def async_browser(**launch: Any) -> AsyncIterator[Any]:
    """A headless Debian Chromium (Playwright async API), closed on exit.

    Args:
        launch: more ``chromium.launch`` keyword arguments.
    """
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True, **launch)
        try:
            yield browser
        finally:
            await browser.close()


@contextlib.contextmanager
def sync_browser(**launch: Any) -> Iterator[Any]:
    """Like :func:`async_browser`, with Playwright's sync API (no event loop in the thread)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True, **launch)
        try:
            yield browser
        finally:
            browser.close()
