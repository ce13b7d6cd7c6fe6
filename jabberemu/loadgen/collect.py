"""Run data across Locust processes: client records, generator health, ``run.json``.

Each process's clients write their records (``runtime.RunDataSink`` API) into a :class:`QueueSink`
from the asyncio loop thread; one greenlet pumps the queue every ``PUMP_INTERVAL_S``: a local
runner writes ``client_events.jsonl`` itself, a worker sends batches to the master with Locust's
custom messages (``jabberemu_records``), and the master writes them, so the master's run directory
is whole even across machines. Generator health (CPU %, event-loop lateness and stalls, garbage
collection, RSS: ``report.health``) travels the same way
(``jabberemu_health``), once per second per process; the master (or local runner) checks each
sample with :class:`HealthWatch` and warns, at most once every ``WARN_EVERY_S`` per worker, when a
generator is so busy that the latencies it measures are no longer trustworthy. Locust itself only
warns once, at 90 % CPU of the gevent side; the event-loop lag is the better signal here because the
clients' timestamps are taken inside the asyncio loop (ENGINEERING.md).
"""

from __future__ import annotations

import collections
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import gevent
import psutil

from jabberemu.errors import ConfigError
from jabberemu.report.health import SATURATED_SHARE, stall_share
from jabberemu.report.records import GeneratorSample
from jabberemu.runtime import RecordType, RunDataSink, encode_record

__all__ = ["QueueSink", "RunCollector", "HealthWatch", "PUMP_INTERVAL_S", "RECORDS_MSG", "HEALTH_MSG",
           "WARN_EVERY_S"]

logger = logging.getLogger(__name__)

PUMP_INTERVAL_S = 0.5
RECORDS_MSG = "jabberemu_records"
HEALTH_MSG = "jabberemu_health"
CLIENT_EVENTS_FILE = "client_events.jsonl"
GENERATOR_FILE = "generator.jsonl"
RUN_FILE = "run.json"
WARN_EVERY_S = 10.0
"""At most one saturation warning per worker in this many seconds."""
LIVE_WINDOW_S = 10.0
"""Seconds of samples the live warning judges."""


class HealthWatch:
    """Judges generator health samples as the report does (``report.health``), over the last
    ``window_s`` seconds of each worker, and says so while the run lasts; pure (the caller passes
    the time).

    A worker is saturated when its loop was stalled (probes later than ``--loop-lag-warn-ms``) for
    at least ``report.health.SATURATED_SHARE`` of its last ``window_s`` seconds, or its CPU exceeds
    ``--cpu-warn``. The report's verdict on the whole run uses the same stall share.

    Args:
        cpu_warn: CPU percent of one core above which a generator is saturated (``--cpu-warn``).
        loop_lag_warn_ms: a probe later than this counts as a stall in the live window (ms).
        every_s: at most one warning per worker in this many seconds.
        window_s: the live window (s).

    Raises:
        ConfigError: a threshold is negative or not finite.
    """

    def __init__(self, *, cpu_warn: float, loop_lag_warn_ms: float, every_s: float = WARN_EVERY_S,
                 window_s: float = LIVE_WINDOW_S) -> None:
        for name, value in (("cpu_warn", cpu_warn), ("loop_lag_warn_ms", loop_lag_warn_ms), ("every_s", every_s)):
            if not value >= 0 or value == float("inf"):
                raise ConfigError(f"--{name.replace('_', '-')} must be finite and >= 0, not {value!r}", field=name)
        self.cpu_warn = cpu_warn
        self.loop_lag_warn_ms = loop_lag_warn_ms
        self.every_s = every_s
        self.warnings = 0
        self.saturated_samples = 0
        self._last_warned: dict[str, float] = {}
        self._recent: dict[str, collections.deque[GeneratorSample]] = {}
        self._window = max(1, int(window_s))

    def check(self, sample: dict[str, Any], now_s: float) -> str | None:
        """Return the warning text for ``sample`` if one is due now, else None.

        Args:
            sample: ``{"worker", "cpu_percent", "loop_lag_ms", "stalled_ms", ...}`` as sent by a worker.
            now_s: the current time in seconds (any monotonic clock).
        """
        worker = str(sample.get("worker"))
        lag = sample.get("loop_lag_ms")
        stalled = sample.get("stalled_ms")
        if stalled is None and lag is not None:
            stalled = float(lag) if float(lag) > self.loop_lag_warn_ms else 0.0
        recent = self._recent.setdefault(worker, collections.deque(maxlen=self._window))
        recent.append(GeneratorSample(ts=float(sample.get("ts") or 0.0), worker=worker,
                                      cpu_percent=sample.get("cpu_percent"), loop_lag_ms=lag, stalled_ms=stalled))
        cpu = float(sample.get("cpu_percent") or 0.0)
        share = stall_share(list(recent)) or 0.0
        why = []
        if cpu > self.cpu_warn:
            why.append(f"CPU {cpu:.0f}% > {self.cpu_warn:g}%")
        if share >= SATURATED_SHARE:
            worst = max((s.loop_lag_ms or 0.0) for s in recent)
            why.append(f"its event loop stalled {100 * share:.0f}% of the last {len(recent)} s (worst {worst:.0f} ms)")
        if not why:
            return None
        self.saturated_samples += 1
        last = self._last_warned.get(worker)
        if last is not None and now_s - last < self.every_s:
            return None
        self._last_warned[worker] = now_s
        self.warnings += 1
        return (f"load generator {worker} is saturated now ({', '.join(why)}): latencies it measures are not "
                "trustworthy meanwhile; add workers (--processes) or lower the load; the report judges the whole run")


class QueueSink(RunDataSink):
    """A sink that only queues records (``deque.append`` is safe from the loop thread)."""

    def __init__(self) -> None:
        super().__init__(None)
        self.queue: collections.deque[dict[str, Any]] = collections.deque()

    def emit(self, kind: RecordType, ts: float, **fields: Any) -> None:
        self.written += 1
        self.queue.append({"type": kind.value, "ts": ts, **fields})

    def drain(self, limit: int = 20_000) -> list[dict[str, Any]]:
        """Take up to ``limit`` queued records."""
        out: list[dict[str, Any]] = []
        q = self.queue
        while q and len(out) < limit:
            out.append(q.popleft())
        return out


class RunCollector:
    """Moves records and health samples to the run directory of the master (or local) process.

    Args:
        environment: the Locust environment.
        sink: this process's queue sink.
        run_dir: the run directory (used on the master or a local runner).
        health: callable returning this process's health over the last second: ``cpu_percent``,
            ``loop_lag_ms``, ``stalled_ms``, ``gc_ms``, ``gc_max_ms`` (``report.health``).
        cpu_warn, loop_lag_warn_ms: thresholds of :class:`HealthWatch` (checked where samples land).
    """

    def __init__(self, environment: Any, sink: QueueSink, run_dir: Path, health: Any, *,
                 cpu_warn: float = 85.0, loop_lag_warn_ms: float = 50.0) -> None:
        self.environment = environment
        self.sink = sink
        self.run_dir = run_dir
        self.health = health
        self.records_written = 0
        self.health_by_worker: dict[str, dict[str, Any]] = {}
        self.health_received: dict[str, float] = {}
        """Worker -> ``time.monotonic()`` when its last health sample arrived here."""
        self.watch = HealthWatch(cpu_warn=cpu_warn, loop_lag_warn_ms=loop_lag_warn_ms)
        self._events_file: Any = None
        self._gen_file: Any = None
        self._greenlet: gevent.Greenlet | None = None
        self._last_health = 0.0
        self.worker_id = f"{os.uname().nodename}-{os.getpid()}"
        self._process = psutil.Process()  # built in events.init: after a --processes fork, this pid

    # -- roles ---------------------------------------------------------------------------------

    @property
    def _is_worker(self) -> bool:
        from locust.runners import WorkerRunner

        return isinstance(self.environment.runner, WorkerRunner)

    @property
    def _is_master(self) -> bool:
        from locust.runners import MasterRunner

        return isinstance(self.environment.runner, MasterRunner)

    def start(self) -> None:
        """Register message handlers and start the pump greenlet (call from ``events.init``)."""
        runner = self.environment.runner
        if self._is_master:
            runner.register_message(RECORDS_MSG, self._on_records)
            runner.register_message(HEALTH_MSG, self._on_health)
        if not self._is_worker:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._pump_forever)

    def stop(self) -> None:
        """Pump what is left and close the files."""
        if self._greenlet is not None:
            self._greenlet.kill(block=True)
            self._greenlet = None
        self.pump()
        for f in (self._events_file, self._gen_file):
            if f is not None:
                f.close()
        self._events_file = self._gen_file = None

    # -- pumping -------------------------------------------------------------------------------

    def _pump_forever(self) -> None:
        while True:
            gevent.sleep(PUMP_INTERVAL_S)
            try:
                self.pump()
            except Exception:  # the pump must keep going
                logger.exception("run data pump failed")

    def pump(self) -> None:
        """Move queued records (and, once a second, a health sample) to where they belong."""
        while True:
            batch = self.sink.drain()
            if not batch:
                break
            if self._is_worker:
                self.environment.runner.send_message(RECORDS_MSG, batch)
            else:
                self._write_records(batch)
        now = time.time()
        if now - self._last_health >= 1.0 and not self._is_master:  # the master generates no load
            self._last_health = now
            sample = {"ts": now, "worker": self.worker_id, **self.health(), "rss_bytes": self._rss_bytes()}
            if self._is_worker:
                self.environment.runner.send_message(HEALTH_MSG, sample)
            else:
                self._write_health(sample)

    def _rss_bytes(self) -> int | None:
        try:
            return int(self._process.memory_info().rss)
        except psutil.Error:
            return None

    def _on_records(self, msg: Any, **_kw: Any) -> None:
        self._write_records(msg.data)

    def _on_health(self, msg: Any, **_kw: Any) -> None:
        self._write_health(msg.data)

    def _write_records(self, batch: list[dict[str, Any]]) -> None:
        if self._events_file is None:
            self._events_file = open(self.run_dir / CLIENT_EVENTS_FILE, "a", encoding="utf-8", buffering=1 << 20)  # noqa: SIM115
        f = self._events_file
        for rec in batch:
            f.write(encode_record(rec) + "\n")
        f.flush()
        self.records_written += len(batch)

    def _write_health(self, sample: dict[str, Any]) -> None:
        self.health_by_worker[str(sample.get("worker"))] = sample
        self.health_received[str(sample.get("worker"))] = time.monotonic()
        warning = self.watch.check(sample, time.monotonic())
        if warning is not None:
            logger.warning("%s", warning)
        if self._gen_file is None:
            self._gen_file = open(self.run_dir / GENERATOR_FILE, "a", encoding="utf-8")  # noqa: SIM115
        self._gen_file.write(json.dumps(sample) + "\n")
        self._gen_file.flush()

    # -- run.json ------------------------------------------------------------------------------

    def write_run_info(self, info: dict[str, Any]) -> None:
        """Write ``run.json`` (master or local runner only)."""
        if self._is_worker:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.run_dir / (RUN_FILE + ".tmp")
        tmp.write_text(json.dumps(info, indent=2, default=str), encoding="utf-8")
        tmp.replace(self.run_dir / RUN_FILE)
