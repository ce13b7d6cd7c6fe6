"""The mock pair's Prometheus exposition: the pure collector (table-driven), then ``GET /metrics`` on a
real pair checked against the nodes' own ``/api/status`` and ``/api/metrics``, through a node kill and
restart. The exposition is parsed with ``prometheus_client.parser``."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest
from pair_support import N1, N2, cpa_url, fast_config, home_users, soap, started_pair, xmpp_port
from raw_xmpp import RawXmppClient
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from mock_server.pair.prom import COUNTER_KEYS, NodeMetricsCollector, PairMetrics, metric_name
from mock_server.srm import NodeState

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> tuple[Samples, dict[str, str]]:
    """``(sample name, sorted labels) -> value`` and ``family name -> type``."""
    families = list(text_string_to_metric_families(text))
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}
    return samples, {f.name: f.type for f in families}


def render(metrics: PairMetrics) -> tuple[Samples, dict[str, str]]:
    registry = CollectorRegistry()
    registry.register(NodeMetricsCollector(metrics))
    return parse(generate_latest(registry).decode())


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


# -- pure ------------------------------------------------------------------------------------------------

ROWS = [
    {"ts": 100.0, "node": N1, "login_attempts": 5, "login_queue_depth": 3, "cpa_logins_ok": 2,
     "brand_new_gauge": 7, "state": "Normal", "flag": True},
    {"ts": 101.0, "node": N1, "login_attempts": 4, "login_queue_depth": 1, "cpa_logins_ok": 0,
     "brand_new_gauge": 8, "weird-key.x": 2.5, "state": "Normal"},
]


@pytest.mark.parametrize(("key", "kind", "want"), [
    ("login_attempts", "counter", 9.0),        # a key of the login model: summed over the rows
    ("cpa_logins_ok", "counter", 2.0),
    ("login_queue_depth", "gauge", 1.0),       # not a counter key: the newest row's value
    ("brand_new_gauge", "gauge", 8.0),         # unknown keys flow through as gauges
    ("weird-key.x", "gauge", 2.5),             # sanitised name
])
def test_every_numeric_row_key_is_exported(key: str, kind: str, want: float) -> None:
    metrics = PairMetrics([N1, N2])
    metrics.set_status(N1, {"state": "Normal", "active_users": 4, "assigned_users": 5})
    assert metrics.add_rows(N1, ROWS) == 2
    samples, types = render(metrics)
    family = metric_name(key).removesuffix("_total")
    assert types[family] == kind
    sample = family + "_total" if kind == "counter" else family
    assert value(samples, sample, node=N1) == want
    assert (key in COUNTER_KEYS) == (kind == "counter")


def test_rows_already_seen_are_not_added_twice_and_strings_and_bools_are_skipped() -> None:
    metrics = PairMetrics([N1, N2])
    metrics.set_status(N1, {"state": "Normal"})
    metrics.add_rows(N1, ROWS[:1])
    assert metrics.add_rows(N1, ROWS) == 1  # the node sent its whole history again: only ts 101 is new
    assert metrics.add_rows(N1, ROWS) == 0
    assert metrics.since(N1) == 101.0 and metrics.since(N2) is None
    samples, types = render(metrics)
    assert value(samples, "mock_node_login_attempts_total", node=N1) == 9
    assert not any(n.startswith(("mock_node_state", "mock_node_flag", "mock_node_ts", "mock_node_node"))
                   for n in types)


def test_status_series_and_a_node_that_is_down() -> None:
    metrics = PairMetrics([N1, N2])
    metrics.set_status(N1, {"state": "Running in Backup Mode", "active_users": 12, "assigned_users": 5})
    metrics.add_rows(N1, ROWS)
    metrics.add_rows(N2, [{"ts": 100.5, "node": N2, "login_attempts": 6, "login_queue_depth": 2}])
    metrics.set_status(N2, None)  # killed
    samples, types = render(metrics)
    assert types["mock_node_srm_state"] == "gauge" and types["mock_node_up"] == "gauge"
    assert value(samples, "mock_node_up", node=N1) == 1 and value(samples, "mock_node_up", node=N2) == 0
    states = {s.value for s in NodeState}
    for node, current in ((N1, "Running in Backup Mode"), (N2, None)):
        got = {dict(k[1])["state"]: v for k, v in samples.items()
               if k[0] == "mock_node_srm_state" and dict(k[1])["node"] == node}
        assert set(got) == states  # every state, 0 or 1: a Grafana state timeline needs no gaps
        assert got == {s: 1.0 if s == current else 0.0 for s in states}
    assert value(samples, "mock_node_sessions", node=N1) == 12 and value(samples, "mock_node_sessions", node=N2) == 0
    assert value(samples, "mock_node_assigned_users", node=N1) == 5
    assert value(samples, "mock_node_login_attempts_total", node=N2) == 6  # counters stay while it is down
    assert value(samples, "mock_node_login_queue_depth", node=N2) is None  # stale gauges do not
    assert value(samples, "mock_node_login_queue_depth", node=N1) == 1


# -- on a real pair --------------------------------------------------------------------------------------


async def scrape(session: aiohttp.ClientSession, admin_url: str) -> tuple[Samples, dict[str, str]]:
    async with session.get(admin_url + "/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return parse(await resp.text())


async def node_rows(session: aiohttp.ClientSession, admin_url: str) -> dict[str, list[dict[str, Any]]]:
    async with session.get(admin_url + "/api/metrics") as resp:
        rows = (await resp.json())["metrics"]
    return {n: [r for r in rows if r["node"] == n] for n in (N1, N2)}


def check_against_rows(samples: Samples, types: dict[str, str], before: dict[str, list[dict[str, Any]]],
                       after: dict[str, list[dict[str, Any]]]) -> None:
    """Every numeric key of the nodes' rows is exported; each counter lies between the sums of the
    rows read just before and just after the scrape."""
    for node in (N1, N2):
        keys = {k for r in after[node] for k, v in r.items()
                if k not in ("ts", "node") and isinstance(v, (int, float)) and not isinstance(v, bool)}
        assert keys, after[node]
        for key in keys:
            family = metric_name(key).removesuffix("_total") if key in COUNTER_KEYS else metric_name(key)
            assert types.get(family) == ("counter" if key in COUNTER_KEYS else "gauge"), key
            if key in COUNTER_KEYS:
                got = value(samples, family + "_total", node=node)
                low, high = (sum(r.get(key, 0) for r in rows[node]) for rows in (before, after))
                assert got is not None and low <= got <= high, (key, node, low, got, high)


async def test_metrics_route_on_a_real_pair_through_logins_a_kill_and_a_restart() -> None:
    config = fast_config(users=10)
    homes = home_users(config)
    async with started_pair(config) as pair, aiohttp.ClientSession() as session:
        samples, types = await scrape(session, pair.admin_url)
        assert value(samples, "mock_node_up", node=N1) == value(samples, "mock_node_up", node=N2) == 1
        for node in (N1, N2):
            assert value(samples, "mock_node_srm_state", node=node, state="Normal") == 1
            assert value(samples, "mock_node_assigned_users", node=node) == len(homes[node])

        users = homes[N1][:3]
        for user in users:
            assert (await soap(session, cpa_url(pair, N1), "login", user=user)).status == 200
        probes = [await RawXmppClient.open(xmpp_port(pair, N1)) for _ in users]
        try:
            for probe, user in zip(probes, users, strict=True):
                await probe.login(user, resource="probe", presence=True)
            logged_in = time.time()
            deadline = time.monotonic() + 10
            while not all(any(r["ts"] > logged_in for r in rows)
                          for rows in (await node_rows(session, pair.admin_url)).values()):
                assert time.monotonic() < deadline, "no metric row sampled after the logins"
                await asyncio.sleep(0.1)
            before = await node_rows(session, pair.admin_url)
            samples, types = await scrape(session, pair.admin_url)
            after = await node_rows(session, pair.admin_url)
            assert value(samples, "mock_node_sessions", node=N1) == 3
            assert value(samples, "mock_node_sessions", node=N2) == 0
            check_against_rows(samples, types, before, after)

            counters = {k: v for k, v in samples.items() if k[0].endswith("_total") and dict(k[1])["node"] == N2}
            await pair.admin("POST", f"/api/nodes/{N2}/kill")
            samples, _ = await scrape(session, pair.admin_url)
            assert value(samples, "mock_node_up", node=N2) == 0 and value(samples, "mock_node_sessions", node=N2) == 0
            assert not any(v for k, v in samples.items() if k[0] == "mock_node_srm_state" and dict(k[1])["node"] == N2)
            assert all(samples[k] >= v for k, v in counters.items())  # counters survive the kill
            current = {dict(k[1])["state"] for k, v in samples.items()
                       if k[0] == "mock_node_srm_state" and dict(k[1])["node"] == N1 and v == 1}
            assert len(current) == 1

            await pair.admin("POST", f"/api/nodes/{N2}/restart")
            samples, _ = await scrape(session, pair.admin_url)
            assert value(samples, "mock_node_up", node=N2) == 1
            assert all(samples[k] >= v for k, v in counters.items())  # and the restart: no counter goes back
        finally:
            for probe in probes:
                probe.close()
