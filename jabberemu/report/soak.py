"""A soak at a glance: per-minute series over the whole run (pure, numpy).

Fed one record at a time (the streaming report's pass 2, or the loaded run), bounded by the run's
minutes, not its records:

- the latency percentiles (p50, p95, p99) per minute of the steady-state requests
  (``xmpp/message-latency`` and ``xmpp/ping``: ``request`` and ``request_summary`` records alike,
  through the log-spaced histogram of ``rundata.histogram``, within 1 %);
- the failed requests per minute, by failure class (``cause``; ``unknown`` when none was recorded);
- each generator's RSS (median of the minute, MiB) and CPU (mean, % of one core) per minute, from
  ``generator.jsonl``;
- each mock node process's RSS and CPU as sampled by the admin API poller (``serverpoll``), from
  ``server_metrics.jsonl`` rows carrying ``rss_bytes``.

Sessions per node and logins / re-logins per minute come from the per-second series
(``series.Series``), summed or sampled per minute by the figure.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from jabberemu.report.records import GeneratorSample, RequestRecord, RequestSummaryRecord
from jabberemu.rundata.aggregate import STEADY_REQUESTS
from jabberemu.rundata.histogram import LatencyHistogram

__all__ = ["MINUTE_S", "SoakBuilder", "SoakSeries"]

FloatArray = NDArray[np.float64]

MINUTE_S = 60.0
"""Width of a soak bin (s)."""


@dataclass(frozen=True, kw_only=True)
class SoakSeries:
    """Per-minute series (index ``i`` covers load-clock ``[60 i, 60 (i + 1))``; NaN: no sample).

    Attributes:
        minutes_s: bin starts (s on the load clock).
        latency: ``type/name`` -> {``p50``, ``p95``, ``p99``} arrays (ms).
        samples: ``type/name`` -> requests per minute.
        failures: failure class -> failed requests per minute (every request type).
        generator_rss_mib, generator_cpu: worker -> per-minute median RSS (MiB) / mean CPU (%).
        mock_rss_mib, mock_cpu: node -> (sample times s, RSS MiB / CPU %) of its process.
    """

    minutes_s: FloatArray
    latency: dict[str, dict[str, FloatArray]] = field(default_factory=dict)
    samples: dict[str, FloatArray] = field(default_factory=dict)
    failures: dict[str, FloatArray] = field(default_factory=dict)
    generator_rss_mib: dict[str, FloatArray] = field(default_factory=dict)
    generator_cpu: dict[str, FloatArray] = field(default_factory=dict)
    mock_rss_mib: dict[str, tuple[FloatArray, FloatArray]] = field(default_factory=dict)
    mock_cpu: dict[str, tuple[FloatArray, FloatArray]] = field(default_factory=dict)


class SoakBuilder:
    """Accumulates the per-minute series (records in any order).

    Args:
        started_ts: the run's start (epoch s).
    """

    def __init__(self, started_ts: float) -> None:
        self.t0 = started_ts
        self._hist: dict[str, dict[int, LatencyHistogram]] = defaultdict(dict)
        self._failures: dict[str, Counter[int]] = defaultdict(Counter)

    def _minute(self, ts: float) -> int | None:
        t = ts - self.t0
        return None if t < 0 else int(t // MINUTE_S)

    def add(self, r: RequestRecord) -> None:
        """One ``request`` record."""
        m = self._minute(r.ts)
        if m is None:
            return
        if not r.ok:
            self._failures[r.cause or "unknown"][m] += 1
        if (r.request_type, r.name) in STEADY_REQUESTS and r.response_time_ms is not None:
            h = self._hist[f"{r.request_type}/{r.name}"].get(m)
            if h is None:
                h = self._hist[f"{r.request_type}/{r.name}"][m] = LatencyHistogram()
            h.add(r.response_time_ms)

    def add_summary(self, s: RequestSummaryRecord) -> None:
        """One ``request_summary`` record (its second's middle decides the minute)."""
        m = self._minute(s.ts + 0.5)
        if m is None:
            return
        for cause, n in s.failures.items():
            self._failures[cause][m] += n
        key = f"{s.request_type}/{s.name}"
        h = self._hist[key].get(m)
        if h is None:
            h = self._hist[key][m] = LatencyHistogram()
        h.merge(s.hist)

    def build(self, duration_s: float, generator: Sequence[GeneratorSample],
              mock: Mapping[str, tuple[FloatArray, FloatArray, FloatArray | None]]) -> SoakSeries:
        """The series over ``duration_s`` seconds.

        Args:
            duration_s: the run's length (s).
            generator: ``generator.jsonl`` samples.
            mock: node -> (sample epoch times, RSS bytes, CPU % or None) of its process.
        """
        n = max(1, math.ceil(duration_s / MINUTE_S))
        minutes = np.arange(n, dtype=float) * MINUTE_S
        latency: dict[str, dict[str, FloatArray]] = {}
        samples: dict[str, FloatArray] = {}
        for key, per_minute in sorted(self._hist.items()):
            p = {q: np.full(n, np.nan) for q in ("p50", "p95", "p99")}
            counts = np.zeros(n)
            for m, h in per_minute.items():
                if m < n and h.count:
                    counts[m] = h.count
                    for q, v in (("p50", 50.0), ("p95", 95.0), ("p99", 99.0)):
                        p[q][m] = h.percentile(v) or np.nan
            latency[key], samples[key] = p, counts
        failures = {}
        for cause, per in sorted(self._failures.items()):
            arr = np.zeros(n)
            for m, c in per.items():
                if m < n:
                    arr[m] = c
            failures[cause] = arr
        rss: dict[str, FloatArray] = {}
        cpu: dict[str, FloatArray] = {}
        by_worker: dict[str, list[GeneratorSample]] = defaultdict(list)
        for g in generator:
            by_worker[g.worker].append(g)
        for worker, mine in sorted(by_worker.items()):
            rss[worker] = _per_minute([(g.ts - self.t0, g.rss_bytes / 2**20) for g in mine if g.rss_bytes is not None],
                                      n, np.median)
            cpu[worker] = _per_minute([(g.ts - self.t0, g.cpu_percent) for g in mine if g.cpu_percent is not None],
                                      n, np.mean)
        mock_rss = {node: (ts - self.t0, values / 2**20) for node, (ts, values, _) in mock.items() if ts.size}
        mock_cpu = {node: (ts - self.t0, c) for node, (ts, _, c) in mock.items() if c is not None and ts.size}
        return SoakSeries(minutes_s=minutes, latency=latency, samples=samples, failures=failures,
                          generator_rss_mib=rss, generator_cpu=cpu, mock_rss_mib=mock_rss, mock_cpu=mock_cpu)


def _per_minute(points: Iterable[tuple[float, float]], n: int, how: object) -> FloatArray:
    bins: dict[int, list[float]] = defaultdict(list)
    for t, v in points:
        if t >= 0:
            bins[int(t // MINUTE_S)].append(v)
    out = np.full(n, np.nan)
    for m, values in bins.items():
        if m < n:
            out[m] = float(how(values))  # type: ignore[operator]
    return out
