"""Steady-state requests aggregated per second in the process that measures them (our choice).

``--record-detail summary`` (the default on the Locust path) keeps the run data of a soak bounded: a
2,000-client soak with one message and one presence change per client per 45 s and a ping every
60 s measures ~77 requests/s, ~30 KiB per client-hour as ``request`` records (issue 19). The
steady-state requests (:data:`STEADY_REQUESTS`: ``xmpp/ping`` and ``xmpp/message-latency``) are
therefore counted per second, request type, name and node into one ``request_summary`` record
(count, failures by cause, a latency histogram: ``rundata.histogram``, percentiles within 1 %),
whatever the number of clients. Every other record stays whole at any detail level: logins, session
logins (re-logins), their SOAP and XMPP steps, HA waits and re-logins, and every ``state``, ``wait``,
``ha_event``, ``connected`` and ``end`` record, since the verdict needs each wait and re-login.

Aggregating where the clients run means a Locust worker sends its master one record per key and
second instead of one per request. The aggregator is thread-safe: the clients add from the asyncio
loop thread, the run-data pump takes closed seconds from the gevent side (a real lock, held for
microseconds; the caller passes one that gevent did not patch).
"""

from __future__ import annotations

import enum
import math
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from jabberemu.core.metrics import XMPP_MESSAGE_LATENCY, XMPP_PING
from jabberemu.rundata.histogram import LatencyHistogram
from jabberemu.rundata.records import RequestSummaryRecord

__all__ = ["STEADY_REQUESTS", "DetailLevel", "RequestAggregator"]

STEADY_REQUESTS: frozenset[tuple[str, str]] = frozenset(
    (m.request_type.value, m.name) for m in (XMPP_PING, XMPP_MESSAGE_LATENCY))
"""(request_type, name) of the requests aggregated at ``summary`` detail (``core.metrics``)."""


class DetailLevel(enum.Enum):
    """How much of each request the run data keeps (``--record-detail``)."""

    FULL = "full"  # every request record
    SUMMARY = "summary"  # steady-state requests per second (STEADY_REQUESTS); everything else whole


@dataclass
class _Acc:
    count: int = 0
    no_rt: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    hist: LatencyHistogram = field(default_factory=LatencyHistogram)


class RequestAggregator:
    """Per-second accumulators of steady-state requests.

    Args:
        lock: the lock guarding the accumulators (default a ``threading.Lock``; pass an unpatched
            one in a gevent-patched process).
    """

    def __init__(self, *, lock: Any = None) -> None:
        self._lock = lock if lock is not None else threading.Lock()
        self._open: dict[int, dict[tuple[str, str, str | None], _Acc]] = {}
        self.added = 0
        self.summaries = 0

    def add(self, ts: float, request_type: str, name: str, node: str | None, response_time_ms: float | None,
            ok: bool, cause: str | None) -> None:
        """Count one request whose answer (or failure) came at ``ts`` (epoch s)."""
        second = math.floor(ts)
        key = (request_type, name, node)
        with self._lock:
            per_key = self._open.get(second)
            if per_key is None:
                per_key = self._open[second] = {}
            acc = per_key.get(key)
            if acc is None:
                acc = per_key[key] = _Acc()
            acc.count += 1
            if response_time_ms is None:
                acc.no_rt += 1
            else:
                acc.hist.add(response_time_ms)
            if not ok:
                acc.failures[cause or "unknown"] += 1
            self.added += 1

    def take(self, before_ts: float | None = None) -> list[RequestSummaryRecord]:
        """Close and return the seconds that ended at or before ``before_ts`` (every open second when
        None), in time order. A request that arrives later for a closed second opens it again: its
        second then has two summaries, which readers add up."""
        with self._lock:
            if before_ts is None:
                seconds = sorted(self._open)
            else:
                limit = math.floor(before_ts)
                seconds = sorted(s for s in self._open if s + 1 <= limit)
            closed = [(s, self._open.pop(s)) for s in seconds]
        out = []
        for second, per_key in closed:
            for (rtype, name, node), acc in sorted(per_key.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or "")):
                out.append(RequestSummaryRecord(ts=float(second), request_type=rtype, name=name, node=node,
                                                count=acc.count, failures=dict(sorted(acc.failures.items())),
                                                hist=acc.hist, without_response_time=acc.no_rt))
        self.summaries += len(out)
        return out

    @property
    def open_seconds(self) -> int:
        """Seconds still accumulating."""
        return len(self._open)
