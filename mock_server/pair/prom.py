"""Prometheus metrics of the mock pair, for ``GET /metrics`` on the supervisor's admin app.

Each scrape first asks every running node for its status and for the metric rows it sampled since
the previous scrape (the ``status`` and ``metrics`` control operations behind ``/api/status`` and
``/api/metrics``), then renders one :class:`~prometheus_client.CollectorRegistry` per supervisor.

Series, each with a ``node`` label:

- ``mock_node_up``: 1 while the node process runs and answers, else 0.
- ``mock_node_srm_state{state=...}``: 1 for the node's SRM state, 0 for every other state (all 0
  while the node is down).
- ``mock_node_sessions``: XMPP sessions now (status ``active_users``);
  ``mock_node_assigned_users``: users homed on the node.
- ``mock_node_<key>`` for **every numeric key** of the node's metric rows, whatever the node calls
  them (keys change with the login model, docs/login-model.md §1): a key in :data:`COUNTER_KEYS`
  carries "counts since the previous row" and is exported as the counter ``mock_node_<key>_total``,
  the sum of the rows seen since this supervisor's first scrape (the rows the node keeps, its last 15
  minutes, at that moment included; a restarted node continues the sum, so no counter goes back); any other
  key is a gauge with the value of the latest row (dropped while the node is down).

The node's ``metrics`` operation answers only the rows newer than ``since`` (else every row it
keeps: 15 minutes, 900 rows; an hour's 3,600 rows cost the node ~28 ms of its loop to encode
~2.3 MB and the supervisor ~16 ms to decode, measured on the 2-core box); rows are filtered here by
time as well.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

from mock_server.pair.channel import ControlError, ControlOp
from mock_server.pair.supervisor import Supervisor
from mock_server.srm import NodeState

__all__ = ["COUNTER_KEYS", "STATUS_TIMEOUT_S", "NodeMetricsCollector", "PairMetrics", "PromExporter", "metric_name"]

logger = logging.getLogger(__name__)

COUNTER_KEYS: frozenset[str] = frozenset({
    # the login model (docs/login-model.md §1)
    "login_attempts", "login_started", "login_completed", "login_busy", "login_abandoned",
    "login_abandoned_in_service",
    # login admission (login.cost)
    "admission_attempts", "admission_started", "admission_queued", "admission_busy",
    # CPA endpoint
    "cpa_logins_ok", "cpa_logins_failed", "cpa_logins_busy", "cpa_requests", "cpa_faults",
    # XMPP listener
    "xmpp_connections_total", "xmpp_auths_ok", "xmpp_auths_failed", "xmpp_auths_busy", "xmpp_redirects",
    "xmpp_stream_errors_sent", "xmpp_pings_sent", "xmpp_pongs_received", "xmpp_ping_timeouts",
    "xmpp_stanzas_routed", "xmpp_stanzas_bounced", "xmpp_tls_upgrades", "xmpp_bytes_received",
})
"""Row keys that count events since the previous row; every other numeric key is a gauge."""

_NOT_METRICS = frozenset({"ts", "node"})
_EXPLICIT = frozenset({"mock_node_up", "mock_node_srm_state", "mock_node_sessions", "mock_node_assigned_users"})
_BAD_CHARS = re.compile(r"[^a-zA-Z0-9_]")
STATUS_TIMEOUT_S = 3.0
"""Seconds a node may take to answer one request of a scrape."""


def metric_name(key: str) -> str:
    """``mock_node_<key>`` with characters Prometheus does not allow replaced by ``_``."""
    return "mock_node_" + _BAD_CHARS.sub("_", key)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


@dataclass
class _Node:
    up: bool = False
    status: dict[str, Any] = field(default_factory=dict)
    last_ts: float = -math.inf
    counters: dict[str, float] = field(default_factory=dict)
    gauges: dict[str, float] = field(default_factory=dict)


class PairMetrics:
    """What the pair's nodes reported so far, per node; pure (the caller fetches).

    Args:
        node_names: the nodes, in topology order.
    """

    def __init__(self, node_names: Sequence[str]) -> None:
        self.nodes: dict[str, _Node] = {name: _Node() for name in node_names}
        self.lock = asyncio.Lock()
        """Held by :func:`refresh`: two scrapes at once must not add the same rows twice."""

    def set_status(self, node: str, status: Mapping[str, Any] | None) -> None:
        """The node's latest ``status`` answer, or None when it is down or did not answer."""
        entry = self.nodes.setdefault(node, _Node())
        entry.up = status is not None
        entry.status = dict(status or {})

    def add_rows(self, node: str, rows: Sequence[Mapping[str, Any]]) -> int:
        """Add the rows newer than the last one seen: counters summed, gauges from the newest.

        Returns:
            The number of rows added.
        """
        entry = self.nodes.setdefault(node, _Node())
        fresh = sorted((r for r in rows if (_number(r.get("ts")) or -math.inf) > entry.last_ts),
                       key=lambda r: float(r["ts"]))
        for row in fresh:
            for key, value in row.items():
                number = _number(value)
                if key in _NOT_METRICS or number is None:
                    continue
                if key in COUNTER_KEYS:
                    entry.counters[key] = entry.counters.get(key, 0.0) + number
                else:
                    entry.gauges[key] = number
            entry.last_ts = float(row["ts"])
        return len(fresh)

    def since(self, node: str) -> float | None:
        """Unix time of the newest row seen from ``node``, or None."""
        entry = self.nodes.get(node)
        return None if entry is None or entry.last_ts == -math.inf else entry.last_ts


class NodeMetricsCollector:
    """A ``prometheus_client`` custom collector over a :class:`PairMetrics`."""

    def __init__(self, metrics: PairMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("mock_node_up", "1 while the node process runs and answers", labels=["node"])
        state = GaugeMetricFamily("mock_node_srm_state", "SRM state of the node: 1 for the current state",
                                  labels=["node", "state"])
        sessions = GaugeMetricFamily("mock_node_sessions", "XMPP sessions on the node", labels=["node"])
        assigned = GaugeMetricFamily("mock_node_assigned_users", "Users homed on the node", labels=["node"])
        counters: dict[str, CounterMetricFamily] = {}
        gauges: dict[str, GaugeMetricFamily] = {}
        for node, entry in self.metrics.nodes.items():
            up.add_metric([node], 1.0 if entry.up else 0.0)
            current = entry.status.get("state") if entry.up else None
            for s in NodeState:
                state.add_metric([node, s.value], 1.0 if s.value == current else 0.0)
            sessions.add_metric([node], _number(entry.status.get("active_users")) or 0.0)
            assigned.add_metric([node], _number(entry.status.get("assigned_users")) or 0.0)
            for key, value in entry.counters.items():
                name = metric_name(key).removesuffix("_total")
                if name not in counters:
                    counters[name] = CounterMetricFamily(name, f"node metric row key {key!r}, summed over rows",
                                                         labels=["node"])
                counters[name].add_metric([node], value)
            if not entry.up:
                continue
            for key, value in entry.gauges.items():
                name = metric_name(key)
                if name in _EXPLICIT or name in counters or name.removesuffix("_total") in counters:
                    continue
                if name not in gauges:
                    gauges[name] = GaugeMetricFamily(name, f"node metric row key {key!r}, latest row",
                                                     labels=["node"])
                gauges[name].add_metric([node], value)
        yield from (up, state, sessions, assigned)
        yield from (counters[n] for n in sorted(counters))
        yield from (gauges[n] for n in sorted(gauges) if n not in counters and n.removesuffix("_total") not in counters)


class PromExporter:
    """One supervisor's registry and the state behind it.

    Args:
        node_names: the pair's nodes.
    """

    def __init__(self, node_names: Sequence[str]) -> None:
        self.metrics = PairMetrics(node_names)
        self.registry = CollectorRegistry()
        self.registry.register(NodeMetricsCollector(self.metrics))

    async def refresh(self, sup: Supervisor) -> None:
        """Fetch every running node's status and new metric rows (each node at most
        ``STATUS_TIMEOUT_S``); a node that does not answer counts as down for this scrape."""
        async with self.metrics.lock:
            await asyncio.gather(*(self._refresh_node(sup, name) for name in self.metrics.nodes))

    async def _refresh_node(self, sup: Supervisor, name: str) -> None:
        if not sup.node(name).alive:
            self.metrics.set_status(name, None)
            return
        try:
            status = await sup.request(name, ControlOp.STATUS, timeout_s=STATUS_TIMEOUT_S)
            rows = await sup.request(name, ControlOp.METRICS, timeout_s=STATUS_TIMEOUT_S,
                                     since=self.metrics.since(name))
        except (ControlError, asyncio.TimeoutError, ConnectionError) as exc:
            logger.debug("metrics of %s not read: %s", name, exc)
            self.metrics.set_status(name, None)
            return
        self.metrics.set_status(name, status if isinstance(status, dict) else {})
        self.metrics.add_rows(name, [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else [])

    def render(self, accept: str | None) -> tuple[bytes, str]:
        """The exposition in the format ``accept`` asks for (text 0.0.4 or OpenMetrics).

        Returns:
            ``(body, content type)``.
        """
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type
