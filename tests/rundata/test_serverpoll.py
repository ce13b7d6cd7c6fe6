"""The mock's events and metrics polled over a run: only what is new is written, a second poller
resumes without writing a row twice, node processes are sampled on loopback, a dead API is survived."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from jabberemu.rundata import SERVER_EVENTS_FILE, SERVER_METRICS_FILE, JsonlReader, segment_paths
from jabberemu.serverpoll import ServerPoller, mock_parameters


class FakeAdmin:
    """``/api/events[?since]``, ``/api/metrics`` (every row: no ``since``, as the mock today),
    ``/api/parameters`` on a loopback port."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.metrics: list[dict[str, Any]] = []
        self.requests: list[str] = []
        admin = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                url = urlsplit(self.path)
                admin.requests.append(self.path)
                since = float(parse_qs(url.query).get("since", ["-inf"])[0])
                body: Any
                if url.path == "/api/events":
                    body = {"events": [e for e in admin.events if e["ts"] > since]}
                elif url.path == "/api/metrics":
                    body = {"metrics": list(admin.metrics)}
                elif url.path == "/api/parameters":
                    body = {"imp1": {"relogin_lower_s": 2.0, "relogin_upper_s": 8.0}}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def rows(self, first: int, last: int) -> None:
        for s in range(first, last):
            for node in ("imp1", "imp2"):
                self.metrics.append({"ts": 1000.0 + s, "node": node, "active_sessions": s, "login_busy": 0})
        self.metrics = self.metrics[-40:]  # the mock keeps a window of rows

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def admin() -> Iterator[FakeAdmin]:
    a = FakeAdmin()
    yield a
    a.close()


def _read(run_dir: Path, name: str) -> list[dict[str, Any]]:
    return [o for _p, _l, o in JsonlReader(run_dir, name, [])]


def test_only_new_rows_are_written_and_a_second_poller_resumes(admin: FakeAdmin, tmp_path: Path) -> None:
    admin.events += [{"ts": 1000.5, "node": "imp1", "kind": "process", "action": "started", "pid": os.getpid()},
                     {"ts": 1001.0, "node": "imp1", "kind": "transition", "from": "Normal", "to": "Failing Over"}]
    admin.rows(0, 10)
    poller = ServerPoller(admin.url, tmp_path)
    assert poller.poll() == 2 + 20
    admin.rows(10, 15)  # five more seconds
    admin.events.append({"ts": 1012.0, "node": "imp1", "kind": "admin", "action": "fallback"})
    assert poller.poll() >= 1 + 10  # + one sample of this (loopback) process
    assert "/api/events?since=1001.0" in admin.requests
    poller.close(compress=True)
    assert all(p.name.endswith(".gz") for p in segment_paths(tmp_path, SERVER_METRICS_FILE))

    second = ServerPoller(admin.url, tmp_path).resume()  # the drill, after its swarm
    admin.rows(15, 18)
    second.poll()
    second.close(compress=True)
    rows = _read(tmp_path, SERVER_METRICS_FILE)
    counters = [r for r in rows if "active_sessions" in r]
    assert sorted((r["node"], r["ts"]) for r in counters) == sorted(
        (n, 1000.0 + s) for s in range(18) for n in ("imp1", "imp2"))  # each row once, in any segment
    processes = [r for r in rows if "rss_bytes" in r]
    assert processes and all(r["node"] == "imp1" and r["rss_bytes"] > 2**20 for r in processes)
    assert [e["ts"] for e in _read(tmp_path, SERVER_EVENTS_FILE)] == [1000.5, 1001.0, 1012.0]
    assert mock_parameters(admin.url) == {"imp1": {"relogin_lower_s": 2.0, "relogin_upper_s": 8.0}}


def test_a_dead_admin_api_is_counted_not_fatal(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    dead = FakeAdmin()
    url = dead.url
    dead.close()
    poller = ServerPoller(url, tmp_path, timeout_s=2)
    assert poller.poll() == 0 and poller.poll() == 0
    assert poller.failures == 2 and poller.polls == 2
    assert sum("not read" in r.message for r in caplog.records) == 1  # warned once
    assert mock_parameters(url) is None and mock_parameters("") is None
