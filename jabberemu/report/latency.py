"""Latency percentiles per request type / name per phase of the run (pure, numpy).

Only samples that *have* a response time enter a percentile: a ``request`` record whose
``response_time_ms`` is null is counted in ``without_response_time`` and nothing else (Locust
mixes such samples in and skews its percentiles: locustio/locust#3472). Failed requests that do
have a response time (a fault after 40 ms, a timeout after 30 s) are included and counted in
``failures``. Percentiles use numpy's default linear interpolation on the exact samples while a
row holds at most :data:`EXACT_SAMPLES` of them and no ``request_summary``; beyond that (our choice:
memory bounded for any run length) or with summaries (``--record-detail summary``) they come from
the log-spaced histogram of ``rundata.histogram``, within 1 % of the exact value; ``max_ms`` stays
exact. A summary counts in the phase of the middle of its second.

Phases on the load clock, by the ``ts`` of the request record:

- ``failover`` / ``fallback``: from a wave's ``at_s`` to its last re-login (``end_s``);
- ``initial login``: from 0 to the last first-login completion before the first wave;
- ``steady``: everything else.
"""

from __future__ import annotations

import enum
from array import array
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from jabberemu.report.records import RequestRecord, RequestSummaryRecord, RunData
from jabberemu.report.waves import HaKind, Wave
from jabberemu.rundata.histogram import LatencyHistogram

__all__ = ["EXACT_SAMPLES", "PERCENTILES", "LatencyAccumulator", "LatencyRow", "Phase", "PhaseSpan",
           "latency_table", "phase_of", "phase_spans", "spans_of"]

#: A latency row keeps its exact samples (8 bytes each) up to this many; then only its histogram.
EXACT_SAMPLES = 250_000

#: Percentiles reported (%).
PERCENTILES: tuple[float, ...] = (50.0, 95.0, 99.0, 99.9)


class Phase(enum.Enum):
    """Part of a run a request belongs to."""

    INITIAL_LOGIN = "initial login"
    FAILOVER = "failover"
    FALLBACK = "fallback"
    STEADY = "steady"


@dataclass(frozen=True, kw_only=True, slots=True)
class PhaseSpan:
    """[start_s, end_s] on the load clock belonging to ``phase``."""

    phase: Phase
    start_s: float
    end_s: float

    def __post_init__(self) -> None:
        if self.end_s < self.start_s:
            raise ValueError(f"span ends before it starts: {self.start_s} > {self.end_s}")


@dataclass(frozen=True, kw_only=True, slots=True)
class LatencyRow:
    """Percentiles of one request type / name in one phase (ms; ``None`` when no sample)."""

    request_type: str
    name: str
    phase: Phase
    samples: int
    without_response_time: int
    failures: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    p999_ms: float | None
    max_ms: float | None


def phase_spans(data: RunData, waves: Sequence[Wave]) -> list[PhaseSpan]:
    """Spans of the non-steady phases (waves first, then the initial login).

    Args:
        data: the loaded run.
        waves: the run's waves (``find_waves``).
    Returns:
        Spans; a time in none of them is ``steady``; where spans overlap, the first listed wins.
    """
    return spans_of(waves, [c.ts for c in data.connected if not c.relogin], data.info.started_ts)


def spans_of(waves: Sequence[Wave], first_logins_ts: Sequence[float], started_ts: float) -> list[PhaseSpan]:
    """:func:`phase_spans` from the waves and the times (epoch s) of the first logins completed."""
    spans = [PhaseSpan(phase=Phase.FALLBACK if w.kind is HaKind.FALLBACK else Phase.FAILOVER,
                       start_s=w.at_s, end_s=max(w.at_s, w.end_s)) for w in waves]
    first_wave_ts = started_ts + waves[0].at_s if waves else float("inf")
    initial = [ts for ts in first_logins_ts if ts < first_wave_ts]
    if initial:
        spans.append(PhaseSpan(phase=Phase.INITIAL_LOGIN, start_s=0.0, end_s=max(0.0, max(initial) - started_ts)))
    return spans


def phase_of(t_s: float, spans: Sequence[PhaseSpan]) -> Phase:
    """The phase of load-clock time ``t_s``: the first span holding it, else steady."""
    for span in spans:
        if span.start_s <= t_s <= span.end_s:
            return span.phase
    return Phase.STEADY


class _Row:
    __slots__ = ("exact", "hist", "no_rt", "failures", "summarised")

    def __init__(self) -> None:
        self.exact: array[float] | None = array("d")
        self.hist = LatencyHistogram()
        self.no_rt = 0
        self.failures = 0
        self.summarised = False


class LatencyAccumulator:
    """Latency rows per (request type, name, phase), fed one record at a time (bounded memory).

    Args:
        spans: the run's phase spans (:func:`phase_spans`).
        started_ts: the run's start (epoch s).
        exact_samples: exact samples kept per row before it relies on its histogram alone.
    """

    def __init__(self, spans: Sequence[PhaseSpan], started_ts: float, *, exact_samples: int = EXACT_SAMPLES) -> None:
        self.spans = list(spans)
        self.t0 = started_ts
        self.exact_samples = exact_samples
        self._rows: dict[tuple[str, str, Phase], _Row] = {}

    def _row(self, rtype: str, name: str, t_s: float) -> _Row:
        key = (rtype, name, phase_of(t_s, self.spans))
        row = self._rows.get(key)
        if row is None:
            row = self._rows[key] = _Row()
        return row

    def add(self, r: RequestRecord) -> None:
        """Count one ``request`` record."""
        row = self._row(r.request_type, r.name, r.ts - self.t0)
        if not r.ok:
            row.failures += 1
        if r.response_time_ms is None:
            row.no_rt += 1
            return
        row.hist.add(r.response_time_ms)
        if row.exact is not None:
            row.exact.append(r.response_time_ms)
            if len(row.exact) > self.exact_samples:
                row.exact = None

    def add_summary(self, s: RequestSummaryRecord) -> None:
        """Count one ``request_summary`` record (its second's middle decides the phase)."""
        row = self._row(s.request_type, s.name, s.ts + 0.5 - self.t0)
        row.summarised = True
        row.failures += s.failed
        row.no_rt += s.without_response_time
        row.hist.merge(s.hist)

    def rows(self) -> list[LatencyRow]:
        """One row per combination seen, sorted by type, name, phase order."""
        order = {p: k for k, p in enumerate(Phase)}
        out = []
        for (rtype, name, phase), row in sorted(self._rows.items(), key=lambda kv: (kv[0][0], kv[0][1],
                                                                                    order[kv[0][2]])):
            n = row.hist.count
            if row.exact is not None and not row.summarised:
                known = np.frombuffer(row.exact, dtype=float) if len(row.exact) else np.empty(0)
                pct = [float(np.percentile(known, q)) if known.size else None for q in PERCENTILES]
            else:
                pct = [row.hist.percentile(q) for q in PERCENTILES]
            out.append(LatencyRow(
                request_type=rtype, name=name, phase=phase, samples=n, without_response_time=row.no_rt,
                failures=row.failures, p50_ms=pct[0], p95_ms=pct[1], p99_ms=pct[2], p999_ms=pct[3],
                max_ms=row.hist.max_ms if n else None,
            ))
        return out


def latency_table(data: RunData, spans: Sequence[PhaseSpan]) -> list[LatencyRow]:
    """Percentile rows per (request_type, name, phase), sorted by type, name, phase order.

    Args:
        data: the loaded run.
        spans: ``phase_spans(data, waves)``.
    Returns:
        One row per combination that has at least one record.
    """
    acc = LatencyAccumulator(spans, data.info.started_ts)
    for r in data.requests:
        acc.add(r)
    for s in data.request_summaries:
        acc.add_summary(s)
    return acc.rows()
