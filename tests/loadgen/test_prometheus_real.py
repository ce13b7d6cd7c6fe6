"""Acceptance with a real Prometheus (Debian ``prometheus``): it scrapes, every second, a short real run
(the mock pair's ``/metrics`` and a headless Locust run's ``--prometheus-port``) and its query API
answers with the run's real figures.

The run: 50 clients on a balanced pair, node 1 failed over 4 s after every client signed in, so its 25
clients wait 1-3 s and re-log in on node 2. Parametrised as a local runner and as a master with two
workers (``--processes 2``: the master serves the sum of the workers' reports). Prometheus runs from a
temporary directory (its own config and data) on a free loopback port.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jabberemu.loadgen.prometheus import BUCKETS_S

PROMETHEUS = shutil.which("prometheus")
DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "jabberemu.json"
MAY_BE_EMPTY = {"Failures per second"}
"""Dashboard panels that may show nothing for this run (every request may succeed)."""
N = 50
NODE1, NODE2 = "imp1.example.test", "imp2.example.test"

pytestmark = [
    pytest.mark.thirdparty,
    pytest.mark.skipif(PROMETHEUS is None, reason="needs Debian prometheus (apt-get install prometheus)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, timeout_s: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout_s) as resp:
        return json.loads(resp.read())


class Prometheus:
    """A ``prometheus`` process scraping ``targets`` (job name -> host:port) every second."""

    def __init__(self, workdir: Path, targets: dict[str, str]) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = workdir / "prometheus.yml"
        jobs = "".join(f"  - job_name: {job}\n    static_configs:\n      - targets: ['{target}']\n"
                       for job, target in targets.items())
        config.write_text("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
                          f"scrape_configs:\n{jobs}", encoding="utf-8")
        self.log = workdir / "prometheus.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [str(PROMETHEUS), f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
                stdout=out, stderr=subprocess.STDOUT, cwd=workdir, start_new_session=True)

    def ready(self) -> bool:
        assert self.proc.poll() is None, self.log.read_text(errors="replace")[-3000:]
        try:
            with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    def query_range(self, promql: str, start: float, end: float) -> list[dict[str, Any]]:
        """``/api/v1/query_range`` with a 1 s step: the result matrix."""
        args = urllib.parse.urlencode({"query": promql, "start": start, "end": end, "step": 1})
        data = _get(f"{self.url}/api/v1/query_range?{args}")
        assert data["status"] == "success", (promql, data)
        return list(data["data"]["result"])

    def query(self, promql: str) -> list[dict[str, Any]]:
        """``/api/v1/query`` now: the result vector."""
        data = _get(f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}")
        assert data["status"] == "success", data
        return list(data["data"]["result"])

    def scalar(self, promql: str) -> float | None:
        """The value of a query answering one series, or None when it answers none."""
        result = self.query(promql)
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None

    def by_label(self, promql: str, label: str) -> dict[str, float]:
        return {r["metric"][label]: float(r["value"][1]) for r in self.query(promql)}

    def targets_up(self) -> dict[str, str]:
        return {t["labels"]["job"]: t["health"] for t in _get(self.url + "/api/v1/targets")["data"]["activeTargets"]}

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Any]:
    started: list[Prometheus] = []

    def start(targets: dict[str, str]) -> Prometheus:
        prom = Prometheus(tmp_path, targets)
        started.append(prom)
        return prom

    yield start
    for prom in started:
        prom.stop()


WHOLE_RUN = "[5m:1s]"


@pytest.mark.timeout(240)
@pytest.mark.parametrize("processes", [0, 2], ids=["local", "processes-2"])
def test_prometheus_scrapes_a_real_run_and_answers_its_figures(processes: int, mock_pair: Any, locust_run: Any,
                                                                prometheus: Any, swarm_tools: Any) -> None:
    t0, started = time.monotonic(), time.time()
    pair = mock_pair(N, "balanced", lower_s=1, upper_s=3, extra=("--param", "heartbeat_interval_s=0.5"))
    port = _free_port()
    admin = urllib.parse.urlsplit(pair.admin_url).netloc
    prom = prometheus({"jabberemu": f"127.0.0.1:{port}", "mock": admin})
    swarm_tools.wait_until(prom.ready, 60, "prometheus ready")
    swarm_tools.wait_until(lambda: prom.targets_up().get("mock") == "up", 30, "prometheus scraping the mock")
    workers = ("--processes", str(processes)) if processes else ()
    run = locust_run("--headless", *workers, "-u", str(N), "-r", str(N), "-t", "15s", "--topology", str(pair.topology),
                     "--prometheus-port", str(port), "--drill", f"failover:{NODE1}@ready+4",
                     "--default-lower", "1", "--default-upper", "3")
    swarm_tools.wait_until(lambda: prom.targets_up().get("jabberemu") == "up" or run.proc.poll() is not None, 60,
                           "prometheus scraping the Locust endpoint")
    # while the run lasts: every client signed in, as Prometheus saw it
    connected = f'max_over_time(sum(jabberemu_clients{{state="XMPPCONNECTED"}}){WHOLE_RUN})'
    swarm_tools.wait_until(lambda: prom.scalar(connected) == N or run.proc.poll() is not None, 60,
                           f"{N} clients connected, in Prometheus")
    code = run.wait(120)
    stats = run.stats()
    failed = {k for k, v in stats.items() if int(v["Failure Count"])}
    # a logout may reach the failed-over node; the failed node refuses each mover's session login first
    assert failed <= {("soap", "logout"), ("soap", "session-login"), ("", "Aggregated")}, failed
    assert code == (1 if failed else 0), run.err_text()[-3000:]
    assert f"Prometheus metrics on http://127.0.0.1:{port}/metrics" in run.err_text()

    # the whole run, queried after it ended (the last scrapes are in Prometheus' head block)
    def whole(promql: str) -> float | None:
        return prom.scalar(f"max_over_time(({promql}){WHOLE_RUN})")

    assert whole('sum(jabberemu_clients{state="XMPPCONNECTED"})') == N
    assert whole("jabberemu_clients_started") == N
    login = 'jabberemu_requests_total{request_type="soap",name="login",outcome="success"}'
    assert whole(login) == N == int(stats[("soap", "login")]["Request Count"])
    assert whole('jabberemu_requests_total{request_type="soap",name="login",outcome="failure"}') == 0
    assert whole('jabberemu_requests_total{request_type="client",name="login",outcome="success"}') == N
    assert whole("jabberemu_relogins_total") == N // 2 == int(stats[("ha", "relogin")]["Request Count"])
    assert (whole("jabberemu_clients_waiting_relogin") or 0) > 0
    assert whole(f'jabberemu_node_clients_connected{{node="{NODE2}"}}') == N  # everybody on node 2 at the end
    # latency quantiles from the histogram: the whole run's soap/login median, bounded by Locust's max
    buckets = 'jabberemu_request_duration_seconds_bucket{request_type="soap",name="login",outcome="success"}'
    median_s = prom.scalar(f"histogram_quantile(0.5, sum by (le) (max_over_time({buckets}{WHOLE_RUN})))")
    # histogram_quantile interpolates inside a bucket: bounded by the upper edge of the bucket that holds
    # Locust's max (a median of 0.074 s read from the 0.05-0.1 s bucket when the max was 0.062 s)
    max_s = float(stats[("soap", "login")]["Max Response Time"]) / 1000
    edge = min(b for b in BUCKETS_S if b >= max_s)
    assert median_s is not None and 0 < median_s <= edge
    # generator health per Locust process that generated load
    rss = prom.by_label(f"max_over_time(jabberemu_generator_rss_bytes{WHOLE_RUN})", "worker")
    lag = prom.by_label(f"max_over_time(jabberemu_generator_loop_lag_seconds{WHOLE_RUN})", "worker")
    assert len(rss) == max(processes, 1) and all(v > 20e6 for v in rss.values()), rss
    assert set(lag) == set(rss) and all(0 <= v < 5 for v in lag.values()), lag

    # the mock: 25 sessions on each node at some point, node 1 Failed Over afterwards, logins counted
    for node in (NODE1, NODE2):
        seen = prom.scalar(f'count_over_time((mock_node_sessions{{node="{node}"}} == {N // 2}){WHOLE_RUN})')
        assert seen and seen >= 1, node
    assert prom.scalar(f'max_over_time(mock_node_sessions{{node="{NODE2}"}}{WHOLE_RUN})') == N
    after = pair.states()[0]
    assert after != "Normal"
    states = prom.by_label(f'max_over_time(mock_node_srm_state{{node="{NODE1}"}}{WHOLE_RUN})', "state")
    assert states["Normal"] == 1 and states[after] == 1 and states["Running in Failed Mode"] == 0
    swarm_tools.wait_until(lambda: prom.by_label(f'mock_node_srm_state{{node="{NODE1}"}} == 1', "state")
                           == {pair.states()[0]: 1}, 10, "node 1's SRM state now, in Prometheus")
    assert prom.scalar("sum(mock_node_up)") == 2
    assert prom.scalar("max(mock_node_login_queue_depth)") == 0

    # every query of the Grafana dashboard is valid PromQL, and each panel shows data of this run
    empty = []
    for panel in json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"]:
        results = [prom.query_range(t["expr"].replace("$__rate_interval", "15s"), started, time.time())
                   for t in panel.get("targets", [])]
        if panel["type"] != "row" and not any(results):
            empty.append(panel["title"])
    assert set(empty) <= MAY_BE_EMPTY, empty

    print(f"\nprometheus test ({'local' if not processes else f'{processes} workers'}): "
          f"{time.monotonic() - t0:.1f} s, soap/login median {median_s * 1000:.1f} ms, RSS "
          + ", ".join(f"{v / 2**20:.0f} MiB" for v in rss.values()))
