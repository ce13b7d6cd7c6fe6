"""Load-generator health: was the generator ever the bottleneck it measures? (pure)

Each Locust process samples its asyncio loop once a second (``loadgen/collect.py``,
``generator.jsonl``): ``loop_lag_ms`` the worst lateness of the loop's 100 ms probe timer in that
second, ``stalled_ms`` the total lateness of the probes later than the stall threshold
(:data:`STALL_MS`, 50 ms: a re-login timer may be at most that late), ``gc_ms`` / ``gc_max_ms`` the
time the garbage collector held the process, ``cpu_percent`` and ``rss_bytes``.

One computation serves the live warning (:func:`stall_share` over the last seconds), the report,
``summary.json`` and the drill's last line (:func:`generator_health` over the run): the generator is
**saturated** when its loop was stalled for at least :data:`SATURATED_SHARE` of the time, over the
whole run or over any re-login wave (where lateness distorts the wave). A single stall, however long,
is not saturation: each of the worst stalls is listed with its likely cause (a full garbage
collection, the burst of HA events of a wave, the initial sign-in, the sign-out at the end, or the
load), instead of a p99 that repeats one stall in many samples.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

from jabberemu.report.records import GeneratorSample

__all__ = [
    "HA_BURST_S",
    "SATURATED_SHARE",
    "STALL_MS",
    "GeneratorHealth",
    "Stall",
    "StallCause",
    "generator_health",
    "stall_share",
]

#: A probe of the loop later than this (ms) is a stall (a due re-login timer may be 50 ms late).
STALL_MS = 50.0
#: Saturated when stalled at least this share of the time (run, wave or the live window).
SATURATED_SHARE = 0.05
#: Seconds after a wave's action during which a stall is blamed on the wave's burst of HA events.
HA_BURST_S = 5.0
#: The worst stalls listed.
WORST = 5


class StallCause(enum.Enum):
    """What most likely held the loop."""

    GC = "garbage collection"
    HA_BURST = "HA burst"
    SIGN_IN = "initial sign-in"
    SHUTDOWN = "sign-out at the end"
    LOAD = "load"


@dataclass(frozen=True, kw_only=True, slots=True)
class Stall:
    """One second with a stall: load-clock time, worker, the worst lateness, its likely cause."""

    t_s: float
    worker: str
    lag_ms: float
    cause: StallCause
    gc_ms: float | None = None


@dataclass(frozen=True, kw_only=True)
class GeneratorHealth:
    """Load-generator health over the run (None where ``generator.jsonl`` had no value).

    Attributes:
        stall_share: the largest share of time a worker's loop was stalled over the run (0-1).
        wave_stall_share: the largest share over any wave window (0-1), None without waves.
        stalled_s: seconds stalled, summed over workers.
        worst: the worst stalls, each with its cause.
        saturated: stall share >= :data:`SATURATED_SHARE` over the run or over any wave.
        cpu_max, loop_lag_max_ms, gc_max_ms, rss_max_bytes: the largest samples.
        per_worker: worker -> {stall_share, cpu_max, loop_lag_max_ms, rss_max_bytes}.
    """

    stall_share: float | None
    wave_stall_share: float | None
    stalled_s: float
    worst: tuple[Stall, ...]
    saturated: bool
    cpu_max: float | None
    loop_lag_max_ms: float | None
    gc_max_ms: float | None
    rss_max_bytes: float | None
    workers: int
    samples: int
    per_worker: dict[str, dict[str, float | None]] = field(default_factory=dict)

    def describe(self) -> str:
        """One line: healthy or saturated, the share stalled and the worst stall with its cause."""
        if self.samples == 0 or self.stall_share is None:
            return "no generator health samples: cannot tell whether latencies are trustworthy"
        state = "saturated: latencies not trustworthy" if self.saturated else "healthy"
        text = f"load generator {state} (stalled {100 * self.stall_share:.1f}% of the run"
        if self.wave_stall_share is not None:
            text += f", {100 * self.wave_stall_share:.1f}% of the worst wave"
        if self.worst:
            w = self.worst[0]
            text += f"; worst stall {w.lag_ms:.0f} ms at {w.t_s:.0f} s: {w.cause.value}"
        return text + f"; threshold {100 * SATURATED_SHARE:g}%)"


def stall_share(samples: Sequence[GeneratorSample]) -> float | None:
    """Share of the time the samples cover (one second each) that the loop was stalled (0-1).

    Falls back to the worst lateness when a sample has no ``stalled_ms`` (older run data).
    """
    if not samples:
        return None
    stalled = 0.0
    for s in samples:
        if s.stalled_ms is not None:
            stalled += s.stalled_ms
        elif s.loop_lag_ms is not None and s.loop_lag_ms > STALL_MS:
            stalled += s.loop_lag_ms
    return min(1.0, stalled / (1000.0 * len(samples)))


def _cause(s: GeneratorSample, t_s: float, wave_starts: Sequence[float], ready_s: float | None,
           end_s: float) -> StallCause:
    lag = s.loop_lag_ms or 0.0
    if s.gc_max_ms is not None and s.gc_max_ms >= 0.5 * lag:
        return StallCause.GC
    if any(0.0 <= t_s - w <= HA_BURST_S for w in wave_starts):
        return StallCause.HA_BURST
    if ready_s is not None and t_s <= ready_s:
        return StallCause.SIGN_IN
    if t_s >= end_s - 3.0:
        return StallCause.SHUTDOWN
    return StallCause.LOAD


def _max(values: list[float]) -> float | None:
    return max(values) if values else None


def generator_health(samples: Sequence[GeneratorSample], *, started_ts: float,
                     waves: Sequence[tuple[float, float]] = (), ready_s: float | None = None,
                     end_s: float | None = None) -> GeneratorHealth:
    """Judge the generator over a run.

    Args:
        samples: ``generator.jsonl`` (every worker).
        started_ts: the run's start (epoch s): times are on the load clock.
        waves: each wave's (start, end) on the load clock.
        ready_s: when every client was first signed in (load clock), None if unknown.
        end_s: the end of the run (load clock); default the last sample.

    Returns:
        The health.
    """
    by_worker: dict[str, list[GeneratorSample]] = {}
    for s in samples:
        by_worker.setdefault(s.worker, []).append(s)
    last = end_s if end_s is not None else max((s.ts - started_ts for s in samples), default=0.0)
    wave_starts = [a for a, _ in waves]
    per_worker: dict[str, dict[str, float | None]] = {}
    shares: list[float] = []
    wave_shares: list[float] = []
    stalls: list[Stall] = []
    stalled_s = 0.0
    for worker, mine in sorted(by_worker.items()):
        share = stall_share(mine)
        if share is not None:
            shares.append(share)
            stalled_s += share * len(mine)
        for a, b in waves:
            inside = [s for s in mine if a <= s.ts - started_ts <= b + 1.0]
            w_share = stall_share(inside)
            if w_share is not None:
                wave_shares.append(w_share)
        for s in mine:
            if s.loop_lag_ms is not None and s.loop_lag_ms > STALL_MS:
                t = s.ts - started_ts
                stalls.append(Stall(t_s=t, worker=worker, lag_ms=s.loop_lag_ms, gc_ms=s.gc_max_ms,
                                    cause=_cause(s, t, wave_starts, ready_s, last)))
        per_worker[worker] = {
            "stall_share": share,
            "cpu_max": _max([s.cpu_percent for s in mine if s.cpu_percent is not None]),
            "loop_lag_max_ms": _max([s.loop_lag_ms for s in mine if s.loop_lag_ms is not None]),
            "rss_max_bytes": _max([s.rss_bytes for s in mine if s.rss_bytes is not None]),
        }
    share_max = max(shares) if shares else None
    wave_max = max(wave_shares) if wave_shares else None
    saturated = any(x >= SATURATED_SHARE for x in (share_max, wave_max) if x is not None)
    worst = tuple(sorted(stalls, key=lambda st: -st.lag_ms)[:WORST])
    return GeneratorHealth(
        stall_share=share_max, wave_stall_share=wave_max, stalled_s=stalled_s, worst=worst, saturated=saturated,
        cpu_max=_max([s.cpu_percent for s in samples if s.cpu_percent is not None]),
        loop_lag_max_ms=_max([s.loop_lag_ms for s in samples if s.loop_lag_ms is not None]),
        gc_max_ms=_max([s.gc_max_ms for s in samples if s.gc_max_ms is not None]),
        rss_max_bytes=_max([s.rss_bytes for s in samples if s.rss_bytes is not None]),
        workers=len(by_worker), samples=len(samples), per_worker=per_worker)
