"""The mock pair's events and metrics collected over a whole run: one poller for the drill and Locust.

The mock's admin API keeps every event (``GET /api/events?since=TS``) but only each node's last 15
minutes of per-second metric rows (``GET /api/metrics``). :class:`ServerPoller` asks both every
``interval_s`` and appends what is new to ``server_events.jsonl`` and ``server_metrics.jsonl``
(``rundata`` writers: rotated and, at the end, compressed), so a run of any length keeps all of it.
Memory is bounded: the poller remembers only the newest event time, each node's newest row time and
the node processes it samples. It also samples each mock node process (pids from the mock's
``process`` events) when the admin API is on this machine (a loopback URL): one row per node and
poll with ``rss_bytes`` and ``cpu_percent`` (share of one core since the previous poll), the mock's
RSS and CPU over the run (our choice: the mock's own rows carry neither).

A state file (``server_poll.json``: the newest times) lets a second poller (the drill, after its
swarm) resume without writing a row twice. Blocking I/O (``urllib``): the Locust master calls
:meth:`poll` from a greenlet (gevent-patched sockets), the drill from a thread. On a real pair (no
admin URL) nothing is polled.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import urllib.parse
from pathlib import Path
from typing import Any

import psutil

from jabberemu.mockpair import admin_request
from jabberemu.rundata.files import SERVER_EVENTS_FILE, SERVER_METRICS_FILE
from jabberemu.rundata.segments import ROTATE_BYTES, RotatingJsonlWriter

__all__ = ["POLL_INTERVAL_S", "STATE_FILE", "ServerPoller", "mock_parameters"]

logger = logging.getLogger(__name__)

POLL_INTERVAL_S = 30.0
"""Seconds between two polls (the mock keeps 15 minutes of metric rows; each poll reads the new ones)."""
STATE_FILE = "server_poll.json"


def _is_loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def mock_parameters(admin_url: str, *, timeout_s: float = 10.0) -> dict[str, dict[str, Any]] | None:
    """The mock's SRM parameters per node (``GET /api/parameters``), or None when they cannot be read."""
    if not admin_url:
        return None
    try:
        params = admin_request(admin_url, "GET", "/api/parameters", timeout_s=timeout_s)
    except (OSError, ValueError) as exc:
        logger.debug("parameters of the mock not read from %s: %s", admin_url, exc)
        return None
    return params if isinstance(params, dict) else None


class ServerPoller:
    """Appends the mock's new events and metric rows to the run directory.

    Args:
        admin_url: the mock's admin API.
        run_dir: the run directory.
        rotate_bytes: rotate ``server_metrics.jsonl`` at this size (None: never).
        timeout_s: bound on each admin call.
    """

    def __init__(self, admin_url: str, run_dir: Path, *, rotate_bytes: int | None = ROTATE_BYTES,
                 timeout_s: float = 20.0) -> None:
        self.admin_url = admin_url.rstrip("/")
        self.run_dir = Path(run_dir)
        self.rotate_bytes = rotate_bytes
        self.timeout_s = timeout_s
        self.events_since: float | None = None
        self.metrics_since: dict[str, float] = {}
        self.events_written = 0
        self.rows_written = 0
        self.polls = 0
        self.failures = 0
        self.sample_processes = _is_loopback(self.admin_url)
        self._pids: dict[str, int] = {}
        self._procs: dict[int, psutil.Process] = {}
        self._events: RotatingJsonlWriter | None = None
        self._metrics: RotatingJsonlWriter | None = None

    # -- state --------------------------------------------------------------------------------

    def resume(self) -> ServerPoller:
        """Continue from the state file a previous poller of this run left (no row written twice)."""
        try:
            state = json.loads((self.run_dir / STATE_FILE).read_text(encoding="utf-8"))
            self.events_since = state.get("events_since")
            self.metrics_since = {str(k): float(v) for k, v in (state.get("metrics_since") or {}).items()}
            self._pids = {str(k): int(v) for k, v in (state.get("pids") or {}).items()}
        except (OSError, ValueError, TypeError, AttributeError):
            pass
        return self

    def _save_state(self) -> None:
        state = {"events_since": self.events_since, "metrics_since": self.metrics_since, "pids": self._pids}
        tmp = self.run_dir / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(state), encoding="utf-8")
        tmp.replace(self.run_dir / STATE_FILE)

    # -- polling ------------------------------------------------------------------------------

    def poll(self) -> int:
        """One poll: new events, new metric rows, one process sample per node.

        Returns:
            Lines written (0 when the mock did not answer: counted in :attr:`failures`, logged once).
        """
        self.run_dir.mkdir(parents=True, exist_ok=True)
        written = 0
        try:
            query = "" if self.events_since is None else "?since=" + repr(self.events_since)
            events = admin_request(self.admin_url, "GET", "/api/events" + query, timeout_s=self.timeout_s)
            written += self._write_events(events.get("events", []) if isinstance(events, dict) else [])
            query = "?since=" + repr(min(self.metrics_since.values())) if self.metrics_since else ""
            metrics = admin_request(self.admin_url, "GET", "/api/metrics" + query, timeout_s=self.timeout_s)
            written += self._write_metrics(metrics.get("metrics", []) if isinstance(metrics, dict) else [])
        except (OSError, ValueError) as exc:
            self.failures += 1
            log = logger.warning if self.failures == 1 else logger.debug
            log("mock admin API %s not read (%s); the report may miss server events and metrics", self.admin_url,
                exc)
        if self.sample_processes:
            written += self._sample_processes()
        for w in (self._events, self._metrics):
            if w is not None:
                w.flush()
        self._save_state()
        self.polls += 1
        return written

    def _write_events(self, events: list[Any]) -> int:
        n = 0
        for e in events:
            if not isinstance(e, dict) or not isinstance(e.get("ts"), (int, float)):
                continue
            if self.events_since is not None and e["ts"] <= self.events_since:
                continue
            if e.get("kind") == "process" and e.get("action") == "started" and isinstance(e.get("pid"), int):
                self._pids[str(e.get("node"))] = int(e["pid"])
            if self._events is None:
                self._events = RotatingJsonlWriter(self.run_dir, SERVER_EVENTS_FILE, rotate_bytes=self.rotate_bytes,
                                                   buffer_bytes=1 << 16)
            self._events.write(e)
            n += 1
        if n:
            self.events_since = max(float(e["ts"]) for e in events if isinstance(e, dict)
                                    and isinstance(e.get("ts"), (int, float)))
        self.events_written += n
        return n

    def _write_metrics(self, rows: list[Any]) -> int:
        n = 0
        newest = dict(self.metrics_since)
        for row in sorted((r for r in rows if isinstance(r, dict) and isinstance(r.get("ts"), (int, float))),
                          key=lambda r: r["ts"]):
            node = str(row.get("node"))
            if row["ts"] <= self.metrics_since.get(node, -math.inf):
                continue
            if self._metrics is None:
                self._metrics = RotatingJsonlWriter(self.run_dir, SERVER_METRICS_FILE,
                                                    rotate_bytes=self.rotate_bytes, buffer_bytes=1 << 20)
            self._metrics.write(row)
            newest[node] = max(newest.get(node, -math.inf), float(row["ts"]))
            n += 1
        self.metrics_since = newest
        self.rows_written += n
        return n

    def _sample_processes(self) -> int:
        import time

        n = 0
        for node, pid in sorted(self._pids.items()):
            proc = self._procs.get(pid)
            try:
                if proc is None:
                    proc = self._procs[pid] = psutil.Process(pid)
                    proc.cpu_percent(None)  # the first call only sets the mark
                    continue
                row = {"ts": round(time.time(), 3), "node": node, "rss_bytes": int(proc.memory_info().rss),
                       "cpu_percent": round(proc.cpu_percent(None), 1), "source": "process"}
            except psutil.Error:
                self._procs.pop(pid, None)
                continue
            if self._metrics is None:
                self._metrics = RotatingJsonlWriter(self.run_dir, SERVER_METRICS_FILE,
                                                    rotate_bytes=self.rotate_bytes, buffer_bytes=1 << 20)
            self._metrics.write(row)
            n += 1
        return n

    def close(self, *, compress: bool = True) -> None:
        """Close the files; ``compress``: the run is over, compress the live metrics segment."""
        if self._events is not None:
            self._events.close()
        if self._metrics is not None:
            self._metrics.close(compress=compress and self.rotate_bytes is not None)
        self._events = self._metrics = None
