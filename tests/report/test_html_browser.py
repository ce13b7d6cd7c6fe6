"""report.html renders in headless Chromium (Debian's), offline, with its plots and verdict."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from synthetic_run import SimConfig, simulate

from jabberemu.report.build import build_report

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90),
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian chromium")]


def test_report_renders_in_chromium(tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    run = simulate(tmp_path / "run-ui", SimConfig(clients=400, ramp_per_s=200, lower_s=4, upper_s=14,
                                                  fallback_at_s=30, server_login_rate=30.0)).run_dir
    summary = build_report(run)
    errors: list[str] = []
    requests: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto((run / "report.html").as_uri())
            page.wait_for_load_state("load")
            widths = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.naturalWidth)")
            banner = page.inner_text(".banner h1")
            page.screenshot(path=str(run / "report.png"), full_page=True)
        finally:
            browser.close()
    assert errors == []
    assert all(u.startswith(("file:", "data:")) for u in requests), requests
    # every figure the page holds decoded: timeline, states, waves, one storm and one waits figure per
    # wave, generator health (two waves here)
    assert len(widths) == (run / "report.html").read_text(encoding="utf-8").count("<img ") == 9
    assert min(widths) > 500
    assert banner == summary.verdict.value
    assert (run / "report.png").stat().st_size > 50_000
