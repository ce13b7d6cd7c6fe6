"""``jabberemu report`` in bounded memory: the run data streamed, twice, instead of loaded.

**Pass 1** reads ``client_events.jsonl`` (every segment, in order) one record at a time, put back
in time order by a buffer of :data:`REORDER_S` seconds (workers' batches and per-second summaries
arrive a little late), and feeds: the per-second series (``series.SeriesBuilder``), the accounting
and readiness (``analysis.AccountBuilder``), and the waves (``wavestream.WaveStream``: each wave
measured, storms and prediction included, as soon as it is over). **Pass 2** reads the requests
again for the latency rows, whose phases need the waves' spans (``latency.LatencyAccumulator``,
exact up to ``EXACT_SAMPLES`` per row).

Memory: the per-client state (a few entries per client), the open waves' records (the largest wave,
or two when they overlap), the reorder buffer (:data:`REORDER_S` of records), and what grows with
the run's length but stays small: one integer per second per series, the nodes' kept metric keys
(``serverstore``: ~150 KiB per node-hour), the generator samples (~0.2 KiB per worker-second) and
the server events. BENCHMARKS.md states the measured figure.

Run data written before rotation, summaries or this reader existed read the same way; on the same
run directory the summary equals the in-memory path's (``analysis.analyze``; a test).
"""

from __future__ import annotations

import heapq
import logging
import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from jabberemu.report.analysis import AccountBuilder, Analysis
from jabberemu.report.data import (
    load_locust_stats,
    load_run_info,
    parse_record,
    read_jsonl,
)
from jabberemu.report.failures import FailureTable
from jabberemu.report.health import generator_health
from jabberemu.report.latency import LatencyAccumulator, spans_of
from jabberemu.report.records import (
    ConnectedRecord,
    EndRecord,
    GeneratorSample,
    HaEventRecord,
    RequestRecord,
    RequestSummaryRecord,
    RunData,
    ServerEvent,
    StateRecord,
    WaitRecord,
)
from jabberemu.report.limits import LimitsBuilder
from jabberemu.report.series import SeriesBuilder, markers_of
from jabberemu.report.soak import SoakBuilder
from jabberemu.report.serverstore import KEPT_KEYS, ServerMetricStore
from jabberemu.report.waves import DEFAULT_GAP_S, DEFAULT_SKEW_S
from jabberemu.report.wavestream import WaveCallback, WaveStream
from jabberemu.rundata.files import (
    CLIENT_EVENTS_FILE,
    GENERATOR_FILE,
    RUN_FILE,
    SERVER_EVENTS_FILE,
    SERVER_METRICS_FILE,
)
from jabberemu.rundata.records import ClientRecord, decode_client_record, metric_rows

__all__ = ["REORDER_S", "StreamStats", "analyze_run", "client_records"]

logger = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]

REORDER_S = 60.0
"""Records are put back in time order within this many seconds; a later one is used where it comes."""


@dataclass(kw_only=True)
class StreamStats:
    """What the streaming pass saw (for the data notes and the benchmark)."""

    records: int = 0
    late_records: int = 0
    unknown: dict[str, int] | None = None
    peak_buffered: int = 0
    peak_open_parts: int = 0
    forced_parts: int = 0
    waves: int = 0
    server_rows: int = 0


_RANK: dict[type[Any], int] = {ConnectedRecord: 0, HaEventRecord: 1}


class _Reorder:
    """Release items in (ts, rank, seq) order once the newest ts seen is ``window_s`` past them.

    ``rank`` orders records of one instant as the in-memory path reads them: a ``connected``
    before an ``ha_event`` (a session up at that instant counts before the event), the
    ``ha_event`` before the rest (its wait and states at that instant belong to its wave)."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._fifo: deque[tuple[float, int, int, Any]] = deque()  # arrived in order
        self._heap: list[tuple[float, int, int, Any]] = []  # arrived out of order
        self._newest = -math.inf
        self.released_ts = -math.inf
        self.late = 0
        self.peak = 0

    def push(self, ts: float, rank: int, seq: int, item: Any) -> Iterator[Any]:
        if ts < self.released_ts:  # later than the window: used where it comes
            self.late += 1
            yield item
            return
        entry = (ts, rank, seq, item)
        if not self._fifo or (ts, rank, seq) >= self._fifo[-1][:3]:
            self._fifo.append(entry)
        else:
            heapq.heappush(self._heap, entry)
        self._newest = max(self._newest, ts)
        size = len(self._fifo) + len(self._heap)
        if size > self.peak:
            self.peak = size
        yield from self._release(self._newest - self.window_s)

    def _release(self, before: float) -> Iterator[Any]:
        fifo, heap = self._fifo, self._heap
        while True:
            if fifo and (not heap or fifo[0][:3] <= heap[0][:3]):
                if fifo[0][0] >= before:
                    return
                ts, _, _, item = fifo.popleft()
            elif heap:
                if heap[0][0] >= before:
                    return
                ts, _, _, item = heapq.heappop(heap)
            else:
                return
            self.released_ts = ts
            yield item

    def drain(self) -> Iterator[Any]:
        yield from self._release(math.inf)


def client_records(run_dir: Path, warnings: list[str], stats: StreamStats, *,
                   prefilter: bytes | None = None, window_s: float = REORDER_S) -> Iterator[ClientRecord]:
    """Every typed record of ``client_events.jsonl``, in time order within ``window_s``.

    Args:
        run_dir: the run directory.
        warnings: what was tolerated is appended here.
        stats: counts records, late ones and unknown types.
        prefilter: skip lines without this text before parsing them (e.g. ``b"request"``).
        window_s: the reorder window (s).
    """
    reorder = _Reorder(window_s)
    unknown: dict[str, int] = {}
    text = prefilter.decode() if prefilter is not None else None
    for seq, (path, line, obj) in enumerate(read_jsonl(run_dir, CLIENT_EVENTS_FILE, warnings,
                                                       prefilter=text)):
        rec = parse_record(path, line, decode_client_record, obj)
        if rec is None:
            kind = str(obj.get("type"))
            unknown[kind] = unknown.get(kind, 0) + 1
            continue
        stats.records += 1
        yield from reorder.push(rec.ts, _RANK.get(type(rec), 2), seq, rec)
    yield from reorder.drain()
    stats.late_records += reorder.late
    stats.peak_buffered = max(stats.peak_buffered, reorder.peak)
    if prefilter is None:
        stats.unknown = unknown
        for kind, count in sorted(unknown.items()):
            warnings.append(f"{CLIENT_EVENTS_FILE}: {count} records of unknown type {kind!r} ignored")


def _mock_processes(store: ServerMetricStore) -> dict[str, tuple[FloatArray, FloatArray, FloatArray | None]]:
    out: dict[str, tuple[FloatArray, FloatArray, FloatArray | None]] = {}
    for node in store.nodes:
        rss = store.series(node, "rss_bytes")
        if rss is None:
            continue
        cpu = store.series(node, "cpu_percent")
        out[node] = (rss[0], rss[1], cpu[1] if cpu is not None and cpu[1].size == rss[1].size else None)
    return out


def analyze_run(run_dir: Path | str, *, gap_s: float = DEFAULT_GAP_S, recovery_margin_s: float | None = None,
                on_wave: WaveCallback | None = None) -> tuple[RunData, Analysis, StreamStats]:
    """Analyse a run directory in bounded memory (module docstring).

    Args:
        run_dir: ``reports/<run-id>/``.
        gap_s: HA events further apart than this start a new wave.
        recovery_margin_s: override of ``run.json`` ``recovery_margin_s``.
        on_wave: called with each wave's full measurement (per-wave figures) before its arrays go.
    Returns:
        ``(data, analysis, stats)``: ``data`` holds ``run.json``, the server events, the generator
        samples, Locust's statistics and the warnings, without client records.
    Raises:
        RunDataError: ``run.json`` missing or bad, or a bad record (file and line named).
    """
    run_dir = Path(run_dir)
    info = load_run_info(run_dir / RUN_FILE)
    data = RunData(run_dir=run_dir, info=info)
    stats = StreamStats()
    for path, line, obj in read_jsonl(run_dir, SERVER_EVENTS_FILE, data.warnings):
        data.server_events.append(parse_record(path, line, ServerEvent.from_wire, obj))
    store = ServerMetricStore()
    for path, line, obj in read_jsonl(run_dir, SERVER_METRICS_FILE, data.warnings):
        for row in parse_record(path, line, metric_rows, obj):
            store.add(row)
    store.finish()
    stats.server_rows = store.rows_added
    for path, line, obj in read_jsonl(run_dir, GENERATOR_FILE, data.warnings):
        data.generator.append(parse_record(path, line, GeneratorSample.from_wire, obj))
    load_locust_stats(run_dir, data)
    data.server_events.sort(key=lambda r: r.ts)
    data.generator.sort(key=lambda r: r.ts)
    t0 = info.started_ts
    margin = info.recovery_margin_s if recovery_margin_s is None else recovery_margin_s
    actions = data.actions
    first = next((a for a in actions if a.kind.moves_sessions_away), None)

    # pass 1: series, accounting, waves
    account = AccountBuilder(info.clients, first, t0)
    series = SeriesBuilder(t0)
    waves = WaveStream(info, actions, gap_s=gap_s, skew_s=DEFAULT_SKEW_S, margin_s=margin, server=store,
                       on_wave=on_wave, run_dir=run_dir)
    limits = LimitsBuilder()
    first_logins: list[float] = []
    gave_up: set[str] = set()
    latest = t0
    for rec in client_records(run_dir, data.warnings, stats):
        latest = max(latest, rec.ts)
        account.add(rec)
        if isinstance(rec, StateRecord):
            series.add_state(rec)
        elif isinstance(rec, ConnectedRecord):
            series.add_connected(rec)
            if not rec.relogin:
                first_logins.append(rec.ts)
        elif isinstance(rec, EndRecord) and rec.state == "GAVE_UP":
            gave_up.add(rec.client)
        elif isinstance(rec, WaitRecord):
            limits.add(rec)
        waves.add(rec)
    for records in (data.server_events, data.generator):
        if records:
            latest = max(latest, records[-1].ts)
    last_ts = info.ended_ts if info.ended_ts is not None else latest
    measured = waves.finish(run_end=last_ts, gave_up=gave_up)
    stats.peak_open_parts, stats.forced_parts, stats.waves = waves.peak_open_parts, waves.forced, len(measured)
    wave_list = [m.wave for m in measured]

    # pass 2: latency per phase
    spans = spans_of(wave_list, first_logins, t0)
    latency = LatencyAccumulator(spans, t0)
    soak = SoakBuilder(t0)
    failures = FailureTable(t0)
    for rec in client_records(run_dir, [], StreamStats(), prefilter=b"request"):
        if isinstance(rec, RequestRecord):
            latency.add(rec)
            soak.add(rec)
            failures.add(rec)
        elif isinstance(rec, RequestSummaryRecord):
            latency.add_summary(rec)
            soak.add_summary(rec)
            failures.add_summary(rec)

    if info.partial:
        data.warnings.insert(0, "partial run: the run was stopped before its end; numbers cover what was recorded")
    if stats.late_records:
        data.warnings.append(f"{CLIENT_EVENTS_FILE}: {stats.late_records} records came more than {REORDER_S:g} s "
                             "out of time order; they were counted where they came")
    if stats.forced_parts:
        data.warnings.append(f"{stats.forced_parts} clients were still in a wave more than an hour after its "
                             "window: counted as not recovered")
    ready_s = account.ready_s()
    health = generator_health(data.generator, started_ts=t0, waves=[(w.at_s, w.end_s) for w in wave_list],
                              ready_s=ready_s, end_s=last_ts - t0)
    server = {}
    for node in store.nodes:
        for key in sorted(store.keys(node) & KEPT_KEYS):
            got = store.series(node, key)
            if got is not None:
                server[(node, key)] = (got[0] - t0, got[1])
    analysis = Analysis(
        series=series.build(last_ts, markers_of(actions, data.server_events, t0), server),
        waves=wave_list, storms=[m.storm for m in measured], predictions=[m.prediction for m in measured],
        spans=spans, latency=latency.rows(), accounting=account.accounting(), generator=health,
        duration_s=max(0.0, last_ts - t0), readiness=account.readiness(), failures=failures.rows(),
        limits=limits.result(info),
        soak=soak.build(max(0.0, last_ts - t0), data.generator, _mock_processes(store)), ready_s=ready_s,
    )
    logger.debug("streamed %s: %d records, %d late, peak buffer %d, peak open wave parts %d", run_dir,
                 stats.records, stats.late_records, stats.peak_buffered, stats.peak_open_parts)
    return data, analysis, stats
