"""Acceptance: Locust's web UI in headless Chromium shows our "Jabber clients" tab, live.

The browser runs in a subprocess of its own (Playwright's sync API in this gevent-patched pytest
process is asking for trouble), through the shared ``tests/browser.py`` launcher.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.request
from typing import Any

import pytest
from browser import BROWSER_MARKS

pytestmark = BROWSER_MARKS

N = 40

_BROWSE = r"""
import json, sys, time
sys.path.insert(0, sys.argv[2])
from browser import sync_browser
url, want = sys.argv[1], json.loads(sys.argv[3])
with sync_browser() as browser:
    page = browser.new_page()
    page.goto(url + "/")
    page.get_by_role("tab", name="Jabber clients").click()
    page.wait_for_selector("table tbody tr", timeout=30000)
    deadline = time.monotonic() + 60
    while True:
        rows = [[c.strip() for c in r.split("\t")] for r in page.locator("table tbody tr").all_inner_texts()]
        if all(w in rows for w in want) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    print(json.dumps({"url": page.url, "tabs": page.get_by_role("tab").all_inner_texts(), "rows": rows}))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


@pytest.mark.timeout(240)
def test_jabber_clients_tab_shows_clients_per_node(mock_pair: Any, locust_run: Any, swarm_tools: Any) -> None:
    pair = mock_pair(N, "balanced")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    run = locust_run("--web-host", "127.0.0.1", "--web-port", str(port), "--autostart", "-u", str(N), "-r", str(N),
                     "--topology", str(pair.topology), "--default-lower", "1", "--default-upper", "3")

    def connected() -> dict[str, int]:
        try:
            rows = _get_json(url + "/jabberemu/clients")["rows"]
        except OSError:
            return {}
        return {r["name"]: r["value"] for r in rows if r["group"] == "connected per node"}

    half = {"imp1.example.test": N // 2, "imp2.example.test": N // 2}
    swarm_tools.wait_until(lambda: connected() == half or run.proc.poll() is not None, 120, "all clients connected")
    stats = _get_json(url + "/stats/requests")
    tab = [s for s in stats["extended_stats"] if s["key"] == "jabber-clients"]
    assert len(tab) == 1
    rows = {(r["group"], r["name"]): r["value"] for r in tab[0]["data"]}
    assert rows[("clients", "started")] == N
    assert rows[("per state", "XMPPCONNECTED")] == N
    assert rows[("connected per node", "imp1.example.test")] == N // 2

    want = [["connected per node", "imp1.example.test", str(N // 2)],
            ["connected per node", "imp2.example.test", str(N // 2)],
            ["per state", "XMPPCONNECTED", str(N)]]
    browse = subprocess.run([sys.executable, "-c", _BROWSE, url, str(swarm_tools.repo / "tests"), json.dumps(want)],
                            capture_output=True, timeout=150, env=swarm_tools.clean_env(), check=False)
    assert browse.returncode == 0, browse.stderr.decode(errors="replace")[-3000:]
    seen = json.loads(browse.stdout.decode().strip().splitlines()[-1])
    tabs = [t.lower() for t in seen["tabs"]]  # the UI upper-cases tab labels with CSS
    assert "jabber clients" in tabs and "statistics" in tabs
    assert "tab=jabber-clients" in seen["url"]
    for row in want:
        assert row in seen["rows"], seen["rows"]
    assert any(r[0] == "re-login" and r[1] == "ha/relogin per s (last 10 s)" for r in seen["rows"])
    assert any(r[0] == "generator" and r[2].startswith("CPU ") for r in seen["rows"])

    assert run.terminate(120) == 143  # SIGTERM interrupted the run: 128 + 15 (as test_swarm_errors)
    assert len(run.records("end")) == N
    swarm_tools.assert_clean_shutdown(run.err_text())
