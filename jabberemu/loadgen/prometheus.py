"""Live metrics of a run for Prometheus: ``--prometheus-port PORT`` on the master (or a local runner).

Where each series comes from (all of it lives on the gevent side and is read there):

- **Requests** (``jabberemu_requests_total``, ``jabberemu_request_duration_seconds``,
  ``jabberemu_relogins_total``): a :class:`RequestTally` counts Locust's ``events.request`` per
  (request type, name, outcome), with a histogram of response times (:data:`BUCKETS_S`); the counters
  of the measurement vocabulary (:data:`jabberemu.core.metrics.VOCABULARY`) are exported from 0.
  ``events.request`` fires only in the process where the request happened, so on a distributed run
  (``--processes``, ``--master``/``--worker``) each worker ships what it counted since its previous
  report inside Locust's own worker report (``events.report_to_master``, every 3 s), and the master
  adds the reports up (``events.worker_report``); a local runner counts its own ``events.request``.
  The master's figures therefore trail the workers' by up to one report interval. Locust's
  aggregated statistics on the master (``runner.stats``) are *not* used: they keep one response-time
  table for successes and failures together, round the times, and are cleared when a new test starts
  in the web UI, while a Prometheus counter must never go back.
- **Clients** (``jabberemu_clients``, ``jabberemu_clients_started``,
  ``jabberemu_clients_waiting_relogin``, ``jabberemu_node_clients``,
  ``jabberemu_node_clients_connected``): the per-second progress every process sends
  (:meth:`jabberemu.loadgen.swarm.Swarm.totals`), the data of the "Jabber clients" tab.
- **Generators** (``jabberemu_generator_loop_lag_seconds``, ``jabberemu_generator_rss_bytes``,
  ``jabberemu_generator_cpu_ratio``, label ``worker``): the last health sample of each Locust process
  (:mod:`jabberemu.loadgen.collect`, one a second); a process silent for :data:`HEALTH_STALE_S` is
  left out, so a worker that quit does not linger as a frozen gauge.

Serving, under gevent. ``prometheus_client.start_http_server`` runs a ``socketserver``
``ThreadingMixIn`` server in a daemon ``threading.Thread``; after Locust's ``patch_all()`` that
thread is a ``gevent.threading.Thread`` (a greenlet) and each request is handled in another greenlet,
on gevent's sockets and selector, so the endpoint is served by the hub of the Locust process's main
OS thread, headless or not. That is what we want: collection then runs in the very thread that
owns Locust's statistics, the progress dicts and the health samples (none of them locked), with no
GIL traffic to the asyncio bridge thread. Measured traps (``tests/loadgen/test_prometheus_export.py``):
called from a real OS thread (the bridge's) the same function binds the port but never answers,
because its "thread" is a greenlet of a hub nobody runs in that thread; a real-thread server would
also need the original socket and selector (ENGINEERING.md, trap 2) and would read those dicts while
the gevent thread mutates them. A Flask route on Locust's web UI was not chosen because
``--headless`` has no web UI. Cost: a scrape is answered when the hub gets to it, so a saturated
gevent side delays scrapes (Prometheus' scrape timeout applies). Measured on the 2-core box: counting
costs ~0.9 us per request on the gevent side (Locust's own statistics ~10 us); a scrape of the
~470 samples of a run (12 request kinds, 8 workers) ~4.5 ms of the hub.

Counters live as long as the process: a new test in the web UI does not reset them.
"""

from __future__ import annotations

import bisect
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from jabberemu.core.metrics import VOCABULARY
from jabberemu.core.states import ClientState
from jabberemu.errors import ConfigError

__all__ = [
    "BUCKETS_S",
    "FAILURE",
    "HEALTH_STALE_S",
    "REPORT_KEY",
    "SUCCESS",
    "JabberCollector",
    "PrometheusExporter",
    "RequestTally",
]

logger = logging.getLogger(__name__)

BUCKETS_S: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                                30.0, 60.0, 120.0, 300.0, 600.0)
"""Upper bounds (s) of the response-time histogram: SOAP/XMPP round trips (ms) up to re-logins
(``ha/relogin`` spans the re-login wait, up to the Re-Login Upper Limit: minutes)."""

REPORT_KEY = "jabberemu_requests"
"""Key of a worker's tally in Locust's worker report."""

HEALTH_STALE_S = 10.0
"""A process whose last health sample reached us longer ago than this is left out."""

SUCCESS = "success"
FAILURE = "failure"

_COUNT, _OBSERVED, _SUM_S, _FIRST_BUCKET = 0, 1, 2, 3  # layout of a tally row


class RequestTally:
    """Requests per (request type, name, outcome): count, response-time sum and histogram. Pure.

    Args:
        buckets_s: increasing, finite, positive bucket upper bounds in seconds (+Inf is implied).

    Raises:
        ConfigError: bad bucket bounds.
    """

    def __init__(self, buckets_s: tuple[float, ...] = BUCKETS_S) -> None:
        if not buckets_s or list(buckets_s) != sorted(set(buckets_s)) or not all(
                math.isfinite(b) and b > 0 for b in buckets_s):
            raise ConfigError(f"histogram buckets must increase and be finite and > 0: {buckets_s!r}",
                              field="buckets_s")
        self.buckets_s = buckets_s
        self._bounds_ms = [b * 1000.0 for b in buckets_s]
        self._width = _FIRST_BUCKET + len(buckets_s) + 1
        self._rows: dict[tuple[str, str, str], list[float]] = {}

    def observe(self, request_type: str, name: str, response_time_ms: float | None, failed: bool) -> None:
        """Count one request; a missing or non-finite response time is counted but not observed."""
        key = (request_type, name, FAILURE if failed else SUCCESS)
        row = self._rows.get(key)
        if row is None:
            row = self._rows[key] = [0.0] * self._width
        row[_COUNT] += 1
        if response_time_ms is not None and math.isfinite(response_time_ms):
            row[_OBSERVED] += 1
            row[_SUM_S] += response_time_ms / 1000.0
            row[_FIRST_BUCKET + bisect.bisect_left(self._bounds_ms, response_time_ms)] += 1

    def take(self) -> list[list[Any]]:
        """Everything counted since the previous call, as msgpack-able rows; the tally is emptied.

        Returns:
            ``[request_type, name, outcome, count, observed, sum_s, per-bucket counts ... +Inf]``.
        """
        rows = [[*key, *row] for key, row in self._rows.items()]
        self._rows.clear()
        return rows

    def merge(self, rows: Iterable[list[Any]]) -> int:
        """Add rows from :meth:`take` (a worker's report); rows of another bucket layout are skipped.

        Returns:
            The number of rows skipped.
        """
        skipped = 0
        for item in rows:
            if len(item) != 3 + self._width:
                skipped += 1
                continue
            key = (str(item[0]), str(item[1]), str(item[2]))
            row = self._rows.get(key)
            if row is None:
                row = self._rows[key] = [0.0] * self._width
            for i, value in enumerate(item[3:]):
                row[i] += float(value)
        return skipped

    def items(self) -> list[tuple[tuple[str, str, str], list[float]]]:
        """``((request_type, name, outcome), row)`` pairs, copies."""
        return [(key, list(row)) for key, row in self._rows.items()]

    def count(self, request_type: str, name: str, outcome: str = SUCCESS) -> int:
        """Requests counted for one (type, name, outcome)."""
        row = self._rows.get((request_type, name, outcome))
        return 0 if row is None else int(row[_COUNT])

    def cumulative_buckets(self, row: list[float]) -> list[tuple[str, float]]:
        """``(le, cumulative count)`` of a row, ending with ``+Inf`` (Prometheus histogram buckets)."""
        out, total = [], 0.0
        for bound, n in zip((*self.buckets_s, math.inf), row[_FIRST_BUCKET:], strict=True):
            total += n
            out.append(("+Inf" if bound == math.inf else repr(float(bound)), total))
        return out


class JabberCollector:
    """A ``prometheus_client`` custom collector over one process's swarm and request tally.

    Args:
        swarm: the process's :class:`~jabberemu.loadgen.swarm.Swarm` (``totals()``, ``target``,
            ``collector``).
        tally: the requests counted (local runner) or summed from the workers' reports (master).
        clock: monotonic seconds (tests may pass their own).
    """

    def __init__(self, swarm: Any, tally: RequestTally, clock: Callable[[], float] = time.monotonic) -> None:
        self.swarm = swarm
        self.tally = tally
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        yield from self._requests()
        yield from self._clients()
        yield from self._generators()

    def _requests(self) -> Iterator[Metric]:
        labels = ["request_type", "name", "outcome"]
        requests = CounterMetricFamily("jabberemu_requests", "Locust requests by request type, name and outcome "
                                       "(on a distributed run: the sum of the workers' reports)", labels=labels)
        duration = HistogramMetricFamily("jabberemu_request_duration_seconds",
                                         "Response time of Locust requests, measured in the asyncio loop",
                                         labels=labels)
        relogins = CounterMetricFamily("jabberemu_relogins", "Re-logins completed (ha/relogin successes); "
                                       "rate() gives re-logins per second")
        relogins.add_metric([], float(self.tally.count("ha", "relogin", SUCCESS)))
        rows = dict(self.tally.items())
        for m in VOCABULARY:  # from 0, so that rate() sees the first requests of each (Prometheus practice)
            for outcome in (SUCCESS, FAILURE):
                if (m.request_type.value, m.name, outcome) not in rows:
                    requests.add_metric([m.request_type.value, m.name, outcome], 0.0)
        for key, row in sorted(rows.items()):
            requests.add_metric(list(key), row[_COUNT])
            if row[_OBSERVED]:
                duration.add_metric(list(key), self.tally.cumulative_buckets(row), sum_value=row[_SUM_S])
        yield from (requests, duration, relogins)

    def _clients(self) -> Iterator[Metric]:
        totals = self.swarm.totals()
        states: dict[str, int] = {s.value: 0 for s in ClientState}
        states.update({str(k): int(v) for k, v in totals.get("states", {}).items()})
        clients = GaugeMetricFamily("jabberemu_clients", "Emulated clients per client state, over all workers",
                                    labels=["state"])
        for state, n in states.items():
            clients.add_metric([state], n)
        started = GaugeMetricFamily("jabberemu_clients_started", "Emulated clients started so far, over all workers",
                                    value=int(totals.get("started", 0)))
        waiting = GaugeMetricFamily("jabberemu_clients_waiting_relogin",
                                    "Clients waiting for their re-login timer (FAILOVER state)",
                                    value=states.get(ClientState.FAILOVER.value, 0))
        target = self.swarm.target
        nodes = [n.name for n in target.pair.nodes] if target is not None else []
        on_node, connected_on = totals.get("nodes", {}), totals.get("connected", {})
        nodes += sorted(n for n in {*on_node, *connected_on} if n not in nodes)
        per_node = GaugeMetricFamily("jabberemu_node_clients", "Clients working with each node (any live state)",
                                     labels=["node"])
        connected = GaugeMetricFamily("jabberemu_node_clients_connected", "Clients in XMPPCONNECTED on each node",
                                      labels=["node"])
        for node in nodes:
            per_node.add_metric([node], int(on_node.get(node, 0)))
            connected.add_metric([node], int(connected_on.get(node, 0)))
        yield from (clients, started, waiting, per_node, connected)

    def _generators(self) -> Iterator[Metric]:
        lag = GaugeMetricFamily("jabberemu_generator_loop_lag_seconds", "Lateness p99 of the asyncio loop's probe "
                                "timer over the last 10 s, per Locust process", labels=["worker"])
        rss = GaugeMetricFamily("jabberemu_generator_rss_bytes", "Resident set size per Locust process",
                                labels=["worker"])
        cpu = GaugeMetricFamily("jabberemu_generator_cpu_ratio", "CPU per Locust process (all threads), in cores, "
                                "over the last second", labels=["worker"])
        collector = self.swarm.collector
        if collector is not None:
            horizon = self.clock() - HEALTH_STALE_S
            for worker, sample in sorted(collector.health_by_worker.items()):
                if collector.health_received.get(worker, -math.inf) < horizon:
                    continue
                if sample.get("loop_lag_ms") is not None:
                    lag.add_metric([worker], float(sample["loop_lag_ms"]) / 1000.0)
                if sample.get("rss_bytes") is not None:
                    rss.add_metric([worker], float(sample["rss_bytes"]))
                cpu.add_metric([worker], float(sample.get("cpu_percent") or 0.0) / 100.0)
        yield from (lag, rss, cpu)


class PrometheusExporter:
    """The Prometheus side of one Locust process: counts requests, serves the endpoint.

    Roles: a worker counts and ships its tally in each worker report (only when the master was
    started with ``--prometheus-port``: its options reach the worker with the spawn message, before
    ``test_start``); the master sums the reports and serves; a local runner counts and serves.

    Args:
        swarm: the process's swarm.
    """

    def __init__(self, swarm: Any) -> None:
        self.swarm = swarm
        self.tally = RequestTally()
        self.counting = False
        self.registry: CollectorRegistry | None = None
        self.port: int | None = None
        self._httpd: Any = None

    # -- Locust events -------------------------------------------------------------------------

    def install(self, events: Any) -> None:
        """Add the listeners (call once, from :func:`jabberemu.loadgen.swarm.install`, after the swarm's
        ``quitting`` listener: the endpoint stops last, so a scrape during the drain sees final figures)."""
        events.request.add_listener(self.on_request)
        events.report_to_master.add_listener(self.on_report_to_master)
        events.worker_report.add_listener(self.on_worker_report)
        events.test_start.add_listener(self.on_test_start)
        events.quitting.add_listener(lambda **_kw: self.stop())

    def on_request(self, request_type: str, name: str, response_time: float | None,
                   exception: BaseException | None = None, **_kw: Any) -> None:
        if self.counting:
            self.tally.observe(request_type, name, response_time, exception is not None)

    def on_report_to_master(self, client_id: str, data: dict[str, Any], **_kw: Any) -> None:
        if self.counting:
            rows = self.tally.take()
            if rows:
                data[REPORT_KEY] = rows

    def on_worker_report(self, client_id: str, data: dict[str, Any], **_kw: Any) -> None:
        rows = data.get(REPORT_KEY)
        if rows and self.tally.merge(rows):
            logger.warning("worker %s reported requests with another histogram layout; skipped", client_id)

    def on_test_start(self, environment: Any, **_kw: Any) -> None:
        if _is_worker(environment):
            self.counting = _port_of(environment.parsed_options) is not None

    def configure(self, environment: Any, opts: Any) -> None:
        """From ``events.init``: start serving on the master or a local runner when asked to.

        Raises:
            ConfigError: a port out of range or one that cannot be bound (the message names it).
        """
        port = _port_of(opts)
        if _is_worker(environment):
            self.counting = port is not None
            return
        if port is None:
            return
        from locust.runners import MasterRunner

        self.counting = not isinstance(environment.runner, MasterRunner)
        self.start(str(opts.prometheus_host), port)

    # -- serving ---------------------------------------------------------------------------------

    def start(self, host: str, port: int) -> int:
        """Serve the metrics on ``host:port`` (0 = a free port) from the calling thread's gevent hub.

        Returns:
            The bound port.

        Raises:
            ConfigError: ``port`` out of range, or binding failed.
        """
        if not 0 <= port <= 65535:
            raise ConfigError(f"--prometheus-port must be 0..65535, not {port}", field="prometheus_port")
        registry = CollectorRegistry()
        registry.register(JabberCollector(self.swarm, self.tally))
        try:
            self._httpd, _thread = start_http_server(port, host, registry)
        except OSError as exc:
            raise ConfigError(f"--prometheus-host/--prometheus-port {host}:{port}: {exc.strerror or exc}",
                              field="prometheus_port") from exc
        self.registry = registry
        self.port = int(self._httpd.server_port)
        shown = f"[{host}]" if ":" in host else host
        logger.info("Prometheus metrics on http://%s:%d/metrics", shown, self.port)
        return self.port

    def stop(self) -> None:
        """Stop serving (blocks the calling greenlet up to the server's 0.5 s poll interval)."""
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()


def _port_of(opts: Any) -> int | None:
    port = getattr(opts, "prometheus_port", None) if opts is not None else None
    return None if port is None else int(port)


def _is_worker(environment: Any) -> bool:
    from locust.runners import WorkerRunner

    return isinstance(getattr(environment, "runner", None), WorkerRunner)
