"""Latency percentiles per request type / name per phase of the run (pure, numpy).

Only samples that *have* a response time enter a percentile: a ``request`` record whose
``response_time_ms`` is null is counted in ``without_response_time`` and nothing else (Locust
mixes such samples in and skews its percentiles: locustio/locust#3472). Failed requests that do
have a response time (a fault after 40 ms, a timeout after 30 s) are included and counted in
``failures``. Percentiles use numpy's default linear interpolation.

Phases on the load clock, by the ``ts`` of the request record:

- ``failover`` / ``fallback``: from a wave's ``at_s`` to its last re-login (``end_s``);
- ``initial login``: from 0 to the last first-login completion before the first wave;
- ``steady``: everything else.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from jabberemu.report.records import RunData
from jabberemu.report.waves import HaKind, Wave

__all__ = ["PERCENTILES", "LatencyRow", "Phase", "PhaseSpan", "latency_table", "phase_spans"]

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
    spans = [PhaseSpan(phase=Phase.FALLBACK if w.kind is HaKind.FALLBACK else Phase.FAILOVER,
                       start_s=w.at_s, end_s=max(w.at_s, w.end_s)) for w in waves]
    first_wave_ts = data.info.started_ts + waves[0].at_s if waves else float("inf")
    initial = [c.ts for c in data.connected if not c.relogin and c.ts < first_wave_ts]
    if initial:
        spans.append(PhaseSpan(phase=Phase.INITIAL_LOGIN, start_s=0.0, end_s=max(0.0, data.t(max(initial)))))
    return spans


def _phase_of(t: np.ndarray, spans: Sequence[PhaseSpan]) -> np.ndarray:
    out = np.full(t.shape, Phase.STEADY.value, dtype=object)
    assigned = np.zeros(t.shape, dtype=bool)
    for span in spans:
        hit = (~assigned) & (t >= span.start_s) & (t <= span.end_s)
        out[hit] = span.phase.value
        assigned |= hit
    return out


def latency_table(data: RunData, spans: Sequence[PhaseSpan]) -> list[LatencyRow]:
    """Percentile rows per (request_type, name, phase), sorted by type, name, phase order.

    Args:
        data: the loaded run.
        spans: ``phase_spans(data, waves)``.
    Returns:
        One row per combination that has at least one record.
    """
    if not data.requests:
        return []
    t = np.asarray([r.ts for r in data.requests], dtype=float) - data.info.started_ts
    phases = _phase_of(t, spans)
    groups: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for i, r in enumerate(data.requests):
        groups[(r.request_type, r.name, phases[i])].append(i)
    order = {p.value: k for k, p in enumerate(Phase)}
    rows = []
    for (rtype, name, phase), idx in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], order[kv[0][2]])):
        recs = [data.requests[i] for i in idx]
        known = np.asarray([r.response_time_ms for r in recs if r.response_time_ms is not None], dtype=float)
        pct = [float(np.percentile(known, q)) if known.size else None for q in PERCENTILES]
        rows.append(LatencyRow(
            request_type=rtype, name=name, phase=Phase(phase), samples=int(known.size),
            without_response_time=len(recs) - int(known.size),
            failures=sum(1 for r in recs if not r.ok),
            p50_ms=pct[0], p95_ms=pct[1], p99_ms=pct[2], p999_ms=pct[3],
            max_ms=float(known.max()) if known.size else None,
        ))
    return rows
