"""The admin page in headless Chromium: both nodes Normal, press Failover for node 1, see the states
change on the page (from the page's own refresh), press Fallback, Normal again; a screenshot."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from browser import BROWSER_MARKS, async_browser
from pair_support import N1, N2, fast_config, started_pair

from mock_server.pair.runner import MockPair

pytestmark = [*BROWSER_MARKS, pytest.mark.asyncio(loop_scope="module")]

STATE = "tr[data-node='{}'] td.server-state"
REASON = "tr[data-node='{}'] td.reason"


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def pair() -> AsyncIterator[MockPair]:
    async with started_pair(fast_config(users=10)) as p:
        yield p


async def test_admin_page_failover_and_fallback(pair: MockPair, tmp_path: Path) -> None:
    errors: list[str] = []
    async with async_browser() as browser:
        page = await browser.new_page(viewport={"width": 1200, "height": 800})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        await page.goto(pair.admin_url + "/")
        for node in (N1, N2):
            await page.wait_for_function(
                "([sel, want]) => document.querySelector(sel)?.textContent === want",
                arg=[STATE.format(node), "Normal"], timeout=10_000)
        assert await page.title() == "Presence Redundancy Group Configuration (mock)"
        assert await page.inner_text("#subcluster") == "DefaultCUPSubCluster"
        assert await page.is_checked("#ha")
        rows = await page.eval_on_selector_all(
            "#servers tbody tr", "rows => rows.map(r => [...r.cells].slice(0, 5).map(c => c.textContent))")
        assert rows == [[N1, "5", "0", "Normal", "Normal"], [N2, "5", "0", "Normal", "Normal"]]
        assert await page.locator("#recover").is_hidden()
        await page.screenshot(path=str(tmp_path / "admin-normal.png"), full_page=True)

        await page.click(f"tr[data-node='{N1}'] button.action-failover")
        await page.wait_for_function(
            "([a, b]) => document.querySelector(a)?.textContent === 'Idle'"
            " && document.querySelector(b)?.textContent === 'Running in Backup Mode'",
            arg=[STATE.format(N1), STATE.format(N2)], timeout=10_000)
        assert await page.inner_text(REASON.format(N1)) == "On Admin Request"
        assert await page.inner_text(REASON.format(N2)) == "On Admin Request"
        assert await page.locator(f"tr[data-node='{N1}'] button.action-fallback").count() == 1
        assert await page.locator(f"tr[data-node='{N2}'] button").count() == 0
        await page.screenshot(path=str(tmp_path / "admin-failed-over.png"), full_page=True)
        status = await pair.admin("GET", "/api/status")
        assert [n["state"] for n in status["nodes"]] == ["Idle", "Running in Backup Mode"]

        await page.click(f"tr[data-node='{N1}'] button.action-fallback")
        for node in (N1, N2):
            await page.wait_for_function(
                "([sel, want]) => document.querySelector(sel)?.textContent === want",
                arg=[STATE.format(node), "Normal"], timeout=10_000)
        assert await page.inner_text("#msg") == ""
    assert errors == []
    events = (await pair.admin("GET", "/api/events"))["events"]
    assert [(e["action"], e["node"]) for e in events if e["kind"] == "admin"] == [("failover", N1), ("fallback", N1)]
    for name in ("admin-normal.png", "admin-failed-over.png"):
        assert (tmp_path / name).stat().st_size > 10_000
