"""The Locust-side Prometheus exporter without Prometheus: tally, collector, the endpoint under gevent.

Runs in the gevent-patched pytest process (``pytest tests/loadgen -p no:asyncio -p no:aiohttp``);
the exposition is parsed with ``prometheus_client.parser``.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gevent
import pytest
from locust import User, task
from locust.env import Environment
from locust.exception import StopUser
from locust.rpc.protocol import Message
from prometheus_client.parser import text_string_to_metric_families

from jabberemu.config import NodeAddress, ServerPair
from jabberemu.errors import ConfigError
from jabberemu.loadgen.prometheus import (
    BUCKETS_S, FAILURE, HEALTH_STALE_S, REPORT_KEY, SUCCESS, JabberCollector, PrometheusExporter, RequestTally,
)

N1, N2 = "imp1.example.test", "imp2.example.test"


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``(sample name, sorted labels) -> value`` of a text exposition."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def _types(text: str) -> dict[str, str]:
    return {fam.name: fam.type for fam in text_string_to_metric_families(text)}


def _render(collector: JabberCollector) -> str:
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    registry.register(collector)
    return generate_latest(registry).decode()


class FakeSwarm:
    """What the collector reads of a :class:`~jabberemu.loadgen.swarm.Swarm`."""

    def __init__(self, totals: dict[str, Any], health: dict[str, dict[str, Any]] | None = None,
                 received: dict[str, float] | None = None) -> None:
        self._totals = totals
        self.target = SimpleNamespace(pair=ServerPair(nodes=(
            NodeAddress(name=N1, cpa_url=None, xmpp_host="127.0.0.1", xmpp_port=5222),
            NodeAddress(name=N2, cpa_url=None, xmpp_host="127.0.0.1", xmpp_port=5223)), domain="example.test"))
        self.collector = SimpleNamespace(health_by_worker=health or {}, health_received=received or {})

    def totals(self) -> dict[str, Any]:
        return self._totals


# -- the tally ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("response_time_ms", "le"), [
    (0.0, "0.001"), (1.0, "0.001"), (1.0001, "0.0025"), (250.0, "0.25"), (600_000.0, "600.0"),
    (600_001.0, "+Inf"),
])
def test_a_response_time_lands_in_the_first_bucket_whose_bound_holds_it(response_time_ms: float, le: str) -> None:
    tally = RequestTally()
    tally.observe("soap", "login", response_time_ms, False)
    (_key, row), = tally.items()
    buckets = dict(tally.cumulative_buckets(row))
    bounds = [*(repr(b) for b in BUCKETS_S), "+Inf"]
    first = bounds.index(le)
    assert [buckets[b] for b in bounds] == [0.0] * first + [1.0] * (len(bounds) - first)


def test_take_empties_a_worker_tally_and_merge_adds_it_up_through_locust_messages() -> None:
    worker = RequestTally()
    for ms in (3.0, 7.0, 40.0):
        worker.observe("soap", "login", ms, False)
    worker.observe("soap", "login", 12.0, True)
    worker.observe("ha", "relogin", None, False)  # counted, not observed
    rows = worker.take()
    assert worker.items() == [] and worker.take() == []
    wire = Message.unserialize(Message("stats", {REPORT_KEY: rows}, "w1").serialize()).data[REPORT_KEY]
    master = RequestTally()
    assert master.merge(wire) == 0
    assert master.merge(wire) == 0  # a second worker with the same figures
    assert master.count("soap", "login", SUCCESS) == 6 and master.count("soap", "login", FAILURE) == 2
    assert master.count("ha", "relogin") == 2
    by_key = dict(master.items())
    ok = by_key[("soap", "login", SUCCESS)]
    assert math.isclose(ok[2], 2 * (0.003 + 0.007 + 0.040))  # sum of seconds
    assert by_key[("ha", "relogin", SUCCESS)][1] == 0  # nothing observed in the histogram
    assert master.merge([["soap", "login", SUCCESS, 1, 1, 0.1, 1]]) == 1  # another bucket layout: skipped


def test_bad_buckets_are_refused() -> None:
    for bad in ((), (0.5, 0.1), (0.0, 1.0), (1.0, math.inf)):
        with pytest.raises(ConfigError):
            RequestTally(bad)


# -- the collector -------------------------------------------------------------------------------------


def test_collector_exports_requests_clients_nodes_and_fresh_generators() -> None:
    tally = RequestTally()
    for _ in range(4):
        tally.observe("soap", "login", 20.0, False)
    tally.observe("soap", "login", 30_000.0, True)
    for _ in range(3):
        tally.observe("ha", "relogin", 2500.0, False)
    tally.observe("ha", "relogin", 9000.0, True)
    totals = {"started": 50, "states": {"XMPPCONNECTED": 40, "FAILOVER": 7, "SOAPCONNECT_S": 3},
              "connected": {N2: 40}, "nodes": {N2: 43, "imp3.example.test": 1}}
    now = 1000.0
    health = {"w-fresh": {"cpu_percent": 42.0, "loop_lag_ms": 12.5, "rss_bytes": 123_456_789},
              "w-nolag": {"cpu_percent": 1.0, "loop_lag_ms": None, "rss_bytes": 1000},
              "w-gone": {"cpu_percent": 99.0, "loop_lag_ms": 1.0, "rss_bytes": 1}}
    received = {"w-fresh": now - 1.0, "w-nolag": now - HEALTH_STALE_S + 0.5, "w-gone": now - HEALTH_STALE_S - 0.1}
    text = _render(JabberCollector(FakeSwarm(totals, health, received), tally, clock=lambda: now))
    got = _samples(text)
    types = _types(text)
    assert types["jabberemu_requests"] == "counter" and types["jabberemu_relogins"] == "counter"
    assert types["jabberemu_request_duration_seconds"] == "histogram" and types["jabberemu_clients"] == "gauge"

    def one(metric: str, **labels: str) -> float:
        return got[(metric, tuple(sorted(labels.items())))]

    login = {"request_type": "soap", "name": "login"}
    assert one("jabberemu_requests_total", **login, outcome="success") == 4
    assert one("jabberemu_requests_total", **login, outcome="failure") == 1
    assert one("jabberemu_request_duration_seconds_bucket", **login, outcome="success", le="0.025") == 4
    assert one("jabberemu_request_duration_seconds_bucket", **login, outcome="failure", le="10.0") == 0
    assert one("jabberemu_request_duration_seconds_bucket", **login, outcome="failure", le="30.0") == 1
    assert one("jabberemu_request_duration_seconds_count", **login, outcome="success") == 4
    assert math.isclose(one("jabberemu_request_duration_seconds_sum", **login, outcome="success"), 0.08)
    assert one("jabberemu_relogins_total") == 3  # successes only

    states = {dict(k[1])["state"]: v for k, v in got.items() if k[0] == "jabberemu_clients"}
    assert states["XMPPCONNECTED"] == 40 and states["FAILOVER"] == 7 and states["SOAPCONNECT_S"] == 3
    assert states["NEW"] == 0 and states["GAVE_UP"] == 0 and sum(states.values()) == 50  # every state, zeros too
    assert one("jabberemu_clients_started") == 50 and one("jabberemu_clients_waiting_relogin") == 7
    assert one("jabberemu_node_clients_connected", node=N1) == 0  # a node of the topology without clients
    assert one("jabberemu_node_clients_connected", node=N2) == 40
    assert one("jabberemu_node_clients", node=N2) == 43 and one("jabberemu_node_clients", node="imp3.example.test") == 1

    assert one("jabberemu_generator_loop_lag_seconds", worker="w-fresh") == 0.0125
    assert one("jabberemu_generator_rss_bytes", worker="w-fresh") == 123_456_789
    assert one("jabberemu_generator_cpu_ratio", worker="w-fresh") == 0.42
    assert one("jabberemu_generator_rss_bytes", worker="w-nolag") == 1000
    assert not any(dict(k[1]).get("worker") == "w-gone" for k in got)  # silent too long: left out
    assert ("jabberemu_generator_loop_lag_seconds", (("worker", "w-nolag"),)) not in got


# -- the endpoint under gevent ----------------------------------------------------------------------------


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain")
        return resp.read().decode()


def test_a_local_runner_counts_what_locust_counts_and_serves_it_from_the_hub() -> None:
    users, calls = 10, 4

    class MeasuredUser(User):
        host = "127.0.0.1"
        wait_time = staticmethod(lambda: 0)  # type: ignore[assignment]

        @task
        def talk(self) -> None:
            fire = self.environment.events.request.fire
            for i in range(calls):
                fire(request_type="soap", name="login", response_time=5.0 + i, response_length=0, exception=None,
                     context={})
            fire(request_type="xmpp", name="auth", response_time=2.0, response_length=0,
                 exception=LookupError("not-authorized"), context={})
            raise StopUser()

    env = Environment(user_classes=[MeasuredUser])
    runner = env.create_local_runner()
    exporter = PrometheusExporter(FakeSwarm({"started": 0, "states": {}, "connected": {}}))
    exporter.install(env.events)
    exporter.configure(env, SimpleNamespace(prometheus_port=0, prometheus_host="127.0.0.1"))
    try:
        assert exporter.counting and exporter.port
        runner.start(users, spawn_rate=100)
        deadline = time.monotonic() + 10
        while exporter.tally.count("xmpp", "auth", FAILURE) < users:
            assert time.monotonic() < deadline, "the users did not finish"
            gevent.sleep(0.01)
        runner.stop()
        got = _samples(_scrape(exporter.port))
        login, auth = env.stats.entries[("login", "soap")], env.stats.entries[("auth", "xmpp")]
        key = "jabberemu_requests_total"
        assert got[(key, (("name", "login"), ("outcome", "success"), ("request_type", "soap")))] \
            == login.num_requests == users * calls
        assert got[(key, (("name", "auth"), ("outcome", "failure"), ("request_type", "xmpp")))] \
            == auth.num_failures == users
        assert got[(key, (("name", "auth"), ("outcome", "success"), ("request_type", "xmpp")))] == 0  # from 0
        assert got[(key, (("name", "relogin"), ("outcome", "failure"), ("request_type", "ha")))] == 0
    finally:
        runner.quit()
        env.events.quitting.fire(environment=env)  # the exporter's listener stops the server
    assert exporter._httpd is None
    with pytest.raises(OSError):
        _scrape(exporter.port)


def test_worker_ships_its_tally_in_the_report_and_the_master_adds_it_up() -> None:
    worker_env, master_env = Environment(user_classes=[]), Environment(user_classes=[])
    worker, master = PrometheusExporter(None), PrometheusExporter(None)
    worker.install(worker_env.events)
    master.install(master_env.events)
    worker_env.events.request.fire(request_type="soap", name="login", response_time=3.0, response_length=0,
                                   exception=None, context={})
    data: dict[str, Any] = {}
    worker_env.events.report_to_master.fire(client_id="w1", data=data)
    assert data == {}  # not counting: the master did not ask for Prometheus metrics
    worker.counting = True
    for _ in range(3):
        worker_env.events.request.fire(request_type="soap", name="login", response_time=3.0, response_length=0,
                                       exception=None, context={})
    worker_env.events.report_to_master.fire(client_id="w1", data=data)
    for _ in range(2):  # two reports of the same rows, as from two workers
        wire = Message.unserialize(Message("stats", data, "w1").serialize()).data
        master_env.events.worker_report.fire(client_id="w1", data=wire)
    assert master.tally.count("soap", "login") == 6
    again: dict[str, Any] = {}
    worker_env.events.report_to_master.fire(client_id="w1", data=again)
    assert REPORT_KEY not in again  # nothing new since the last report


def test_a_port_in_use_is_a_config_error_naming_it() -> None:
    first = PrometheusExporter(FakeSwarm({}))
    port = first.start("127.0.0.1", 0)
    try:
        with pytest.raises(ConfigError, match=f"127.0.0.1:{port}"):
            PrometheusExporter(FakeSwarm({})).start("127.0.0.1", port)
        with pytest.raises(ConfigError, match="0..65535"):
            PrometheusExporter(FakeSwarm({})).start("127.0.0.1", 70000)
    finally:
        first.stop()


_FROM_A_REAL_THREAD = r"""
import locust, subprocess, sys, time, urllib.request
from gevent import monkey
from prometheus_client import CollectorRegistry, start_http_server
result = {}
def serve():
    httpd, thread = start_http_server(0, "127.0.0.1", CollectorRegistry())
    result["port"], result["thread"] = httpd.server_port, type(thread).__module__
monkey.get_original("_thread", "start_new_thread")(serve, ())
while not result:
    time.sleep(0.01)
probe = subprocess.run([sys.executable, "-c", "import sys, urllib.request; urllib.request.urlopen("
                        f"'http://127.0.0.1:{result['port']}/metrics', timeout=1.5)"], capture_output=True)
print(result["thread"], "timed out" if b"timed out" in probe.stderr else probe.returncode)
"""


def test_the_trap_start_http_server_from_a_real_thread_binds_but_never_answers() -> None:
    """Why the exporter starts its server from the gevent side (see the module docstring)."""
    proc = subprocess.run([sys.executable, "-c", _FROM_A_REAL_THREAD], capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["gevent.threading", "timed", "out"]


# -- the Grafana dashboard ---------------------------------------------------------------------------------

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "jabberemu.json"
LOGIN_MODEL_ROW = {"ts": 1.0, "node": N1, "login_attempts": 1, "login_started": 1, "login_completed": 1,
                   "login_busy": 0, "login_abandoned": 0, "login_abandoned_in_service": 0, "login_queue_depth": 0,
                   "login_queue_max": 0, "login_in_service": 0, "login_oldest_wait_ms": 0.0, "cpa_logins_ok": 1,
                   "cpa_logins_busy": 0, "active_sessions": 1}
"""A node metric row with the keys of docs/login-model.md §1 and the CPA counters."""


def test_the_dashboard_reads_only_series_the_exporters_write() -> None:
    from mock_server.pair.prom import NodeMetricsCollector, PairMetrics

    tally = RequestTally()
    tally.observe("soap", "login", 5.0, False)
    health = {"w": {"cpu_percent": 1.0, "loop_lag_ms": 1.0, "rss_bytes": 1}}
    ours = _types(_render(JabberCollector(FakeSwarm({"states": {}}, health, {"w": 0.0}), tally, clock=lambda: 1.0)))
    metrics = PairMetrics([N1])
    metrics.set_status(N1, {"state": "Normal"})
    metrics.add_rows(N1, [LOGIN_MODEL_ROW])
    mock = _types(_render(NodeMetricsCollector(metrics)))
    written = set()
    for name, kind in {**ours, **mock}.items():
        written |= {name + "_total"} if kind == "counter" else {name}
        if kind == "histogram":
            written |= {name + "_bucket", name + "_sum", name + "_count"}

    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert {v["name"] for v in dashboard["templating"]["list"]} == {"datasource"}
    read = set()
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}" and panel["targets"], panel["title"]
        for target in panel["targets"]:
            read |= set(re.findall(r"\b(?:jabberemu|mock_node)_[a-z0-9_]+", target["expr"]))
    assert read and read <= written, sorted(read - written)
    for must in ("jabberemu_clients", "jabberemu_relogins_total", "jabberemu_request_duration_seconds_bucket",
                 "jabberemu_generator_loop_lag_seconds", "jabberemu_generator_rss_bytes", "mock_node_sessions",
                 "mock_node_login_queue_depth", "mock_node_srm_state"):
        assert must in read, must
