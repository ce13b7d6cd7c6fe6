"""The drift verdict of a soak: do latency and memory stay flat after warm-up? (pure, numpy)

A soak passes only if nothing creeps: a leak that adds 1 % of the process per hour fills a box in
days, and a latency that grows hour by hour is a queue that never drains. For each series below, a
robust line through its points after warm-up and before the run's end (the sign-out is no steady
state) gives a slope per hour, which the check compares with its limit and reports with its numbers.
The line is Theil-Sen's (``scipy.stats.theilslopes``: the median of the pairwise slopes), **our
choice** over least squares: one minute with a full GC pass or a wave's burst cannot decide a verdict
(a 60-minute soak's p99 fit over 11 minutes read +2,206 ms/h from one such minute), while a real creep
moves every pair and so the median (up to 29 % of the points may be outliers):

- **generator RSS**, per Locust process (``generator.jsonl`` ``rss_bytes``, median of each minute):
  slope <= :data:`RSS_LIMIT_PCT_PER_H` % of the fitted RSS at the end of warm-up, per hour (issue 19);
- **mock RSS**, per node process (sampled by ``serverpoll``; a real pair has none): the same limit;
- for both RSS checks, **memory at like load** (our choice, made on 2026-12-07 after the third
  60-minute soak of BENCHMARKS.md section 6 and before the fourth, which was judged with it): points
  inside a re-login wave are left out. A wave's clients are between
  sessions: the generator's RSS falls ~3 MiB when a drill action ends 1,000 sessions and climbs back as
  they re-log in, and a line through that sawtooth reads its phase, not a trend (a 60-minute soak read
  +2.35 %/h from a series whose level at the end of each wave's regrowth stayed within 0.6 MiB). A
  per-minute point is steady when at least half of its minute lies outside every wave, a sample when
  it lies outside every wave. With fewer than 10 steady points, or steady points spanning less than
  half of :data:`MIN_SPAN_S`, every point is used and the check says so;
- **latency**: the per-minute p99 of ``xmpp/message-latency`` (``xmpp/ping`` when no message was
  measured), minutes inside a re-login wave left out (a wave is judged on its own): slope <=
  ``max(LATENCY_LIMIT_SHARE x median p99, LATENCY_LIMIT_FLOOR_MS)`` per hour. When the waves cover so
  much of the run that fewer than 10 minutes are left between them, or they span less than half of
  :data:`MIN_SPAN_S` (a drill every 10 minutes with a 537 s window leaves one steady minute in ten),
  every complete minute after warm-up is used instead, and the check says so. The assumption then
  (ours): every wave of a periodic drill moves latency alike, so the waves add the same offset all
  along and do not tilt the line; the robust line cannot be relied on to ignore them here, since they
  are most of the points. **Our choice**:
  10 % of the steady p99 per hour, since a flat loopback p99 of 1-3 ms moves by tenths of a ms
  between minutes; the floor of 1 ms/h keeps sub-millisecond noise from failing a run.

**Warm-up** (our choice): until :data:`WARMUP_S` after every client first signed in, and, in a run
with re-login waves, until the first fallback wave has ended (the second wave; the first when there
is one) for the memory checks. Memory grows once to the high-water mark of the first failover cycle:
the backup node then holds both nodes' sessions for the first time, and the generator and each node's
allocator keep that memory for the next cycle (measured: a mock node grew 67 -> 88 MiB in its first
failover wave of a 60-minute soak and stayed there through the second). A leak keeps growing in the
cycles after. Latency has no such high-water mark: its check starts at :data:`WARMUP_S` after every
client signed in, waves or not, and so fits more minutes (44 instead of 30 in a 60-minute soak with a
drill every 10 minutes, where the per-minute p99 moves by +-0.5 ms from wave to wave).

A run is judged when at least :data:`MIN_SPAN_S` of data follow the warm-up; a shorter run started
as a soak (``run.json`` ``soak``) is INCONCLUSIVE ("too short to tell"); a shorter run that is no
soak gets no drift check at all (a 2-minute drill is not a soak: :func:`applies`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.stats import theilslopes

from jabberemu.report.checks import Check, CheckName, CheckStatus
from jabberemu.report.soak import MINUTE_S, SoakSeries

__all__ = ["LATENCY_LIMIT_FLOOR_MS", "LATENCY_LIMIT_SHARE", "MIN_SPAN_S", "RSS_LIMIT_PCT_PER_H", "WARMUP_S",
           "Trend", "applies", "drift_checks", "latency_points", "rss_points", "trend", "warmup_end_s"]

FloatArray = NDArray[np.float64]

RSS_LIMIT_PCT_PER_H = 1.0
"""Largest RSS growth per hour after warm-up (% of the RSS at the end of warm-up)."""
LATENCY_LIMIT_SHARE = 0.10
"""Largest p99 latency growth per hour, as a share of the median per-minute p99."""
LATENCY_LIMIT_FLOOR_MS = 1.0
"""The latency limit is never below this (ms per hour)."""
WARMUP_S = 900.0
"""Warm-up: this long after every client first signed in."""
MIN_SPAN_S = 1800.0
"""Data needed after warm-up to judge a drift."""
_MIN_STEADY_POINTS = 10
_MAX_FIT_POINTS = 1000
"""Theil-Sen builds an n x n matrix of pairwise slopes: more points than this are first reduced to the
medians of as many equal time bins (a 72-hour soak's 8,640 mock samples would need ~1.5 GB)."""
_LATENCY_KEYS = ("xmpp/message-latency", "xmpp/ping")


@dataclass(frozen=True, kw_only=True, slots=True)
class Trend:
    """A Theil-Sen line through (t, y): slope per hour, the fitted value at the first point."""

    slope_per_h: float
    start_value: float
    points: int
    span_s: float


def trend(t_s: FloatArray, y: FloatArray) -> Trend | None:
    """The line through the finite points, or None with fewer than 3 of them (``points``: how many
    went in, before any binning)."""
    keep = np.isfinite(t_s) & np.isfinite(y)
    t, v = t_s[keep], y[keep]
    if t.size < 3 or float(t.max() - t.min()) <= 0:
        return None
    ft, fv = _binned(t, v) if t.size > _MAX_FIT_POINTS else (t, v)
    slope, intercept, _low, _high = theilslopes(fv, ft / 3600.0)
    start = float(t.min())
    return Trend(slope_per_h=float(slope), start_value=float(slope * start / 3600.0 + intercept), points=int(t.size),
                 span_s=float(t.max() - t.min()))


def _binned(t: FloatArray, v: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Median time and value of each of :data:`_MAX_FIT_POINTS` equal time bins (empty bins dropped)."""
    edges = np.linspace(float(t.min()), float(t.max()), _MAX_FIT_POINTS + 1)
    idx = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, _MAX_FIT_POINTS - 1)
    order = np.argsort(idx, kind="stable")
    _bins, starts = np.unique(idx[order], return_index=True)
    ts = np.array([np.median(part) for part in np.split(t[order], starts[1:])])
    vs = np.array([np.median(part) for part in np.split(v[order], starts[1:])])
    return ts, vs


def rss_points(t_s: FloatArray, mib: FloatArray, *, warm_s: float, end_s: float, per_minute: bool,
               waves: list[tuple[float, float]] | tuple[()] = ()) -> tuple[FloatArray, FloatArray, str]:
    """The RSS points a drift check fits and what they are (module docstring).

    Args:
        t_s, mib: the series (load clock, MiB): per-minute medians centred on their minute, or samples.
        warm_s, end_s: points before warm-up's end or after the run's end are left out (per-minute
            points: only whole minutes inside that span).
        per_minute: which of the two the series is.
        waves: each wave's (start, end) on the load clock: points inside them are left out when enough
            steady ones remain.

    Returns:
        The points' times and values, and what they are (for the check's message).
    """
    half = MINUTE_S / 2 if per_minute else 0.0
    unit = "points" if per_minute else "samples"
    keep = (t_s - half >= warm_s) & (t_s + half <= end_s) & np.isfinite(mib)
    if not waves:
        return t_s[keep], mib[keep], unit
    if per_minute:
        steady = keep & (_seconds_in_waves(t_s - half, t_s + half, waves) <= half)
    else:
        steady = keep & ~_inside(t_s, waves)
    if bool(np.array_equal(steady, keep)):
        return t_s[keep], mib[keep], unit
    steady_t = t_s[steady]
    if steady_t.size < _MIN_STEADY_POINTS or float(steady_t.max() - steady_t.min()) < MIN_SPAN_S / 2:
        return t_s[keep], mib[keep], f"{unit}, waves included: too few steady ones"
    return steady_t, mib[steady], f"steady {unit}: waves left out"


def _seconds_in_waves(lo: FloatArray, hi: FloatArray, waves: list[tuple[float, float]] | tuple[()]) -> FloatArray:
    """Seconds of each span [lo, hi) that lie inside a wave (waves do not overlap)."""
    out = np.zeros(lo.size)
    for a, b in waves:
        out += np.clip(np.minimum(hi, b) - np.maximum(lo, a), 0.0, None)
    return out


def _inside(t_s: FloatArray, waves: list[tuple[float, float]] | tuple[()]) -> NDArray[np.bool_]:
    out = np.zeros(t_s.size, dtype=bool)
    for a, b in waves:
        out |= (t_s >= a) & (t_s <= b)
    return out


def latency_points(soak: SoakSeries, key: str, *, warm_s: float, end_s: float,
                   waves: list[tuple[float, float]]) -> tuple[FloatArray, FloatArray, str]:
    """The per-minute p99 points the latency check fits (module docstring) and what they are."""
    t = soak.minutes_s + MINUTE_S / 2
    p99 = soak.latency[key]["p99"]
    complete = (soak.minutes_s >= warm_s) & (soak.minutes_s + MINUTE_S <= end_s) & np.isfinite(p99)
    use = complete & (_seconds_in_waves(soak.minutes_s, soak.minutes_s + MINUTE_S, waves) == 0)
    if not waves or bool(np.array_equal(use, complete)):
        return t[use], p99[use], "complete minutes"
    steady_t = t[use]
    if steady_t.size < _MIN_STEADY_POINTS or float(steady_t.max() - steady_t.min()) < MIN_SPAN_S / 2:
        return t[complete], p99[complete], "minutes, waves included: they cover most of the run"
    return t[use], p99[use], "steady minutes"


def warmup_end_s(ready_s: float | None, waves: list[tuple[float, float]] | tuple[()] = ()) -> float:
    """End of warm-up on the load clock (module docstring): ``waves`` are the run's (start, end), in order
    (memory's warm-up); without them, latency's."""
    first_cycle_end = waves[min(1, len(waves) - 1)][1] if waves else 0.0
    return max((ready_s or 0.0) + WARMUP_S, first_cycle_end)


def _status_for_span(span_s: float, soak: bool) -> CheckStatus | None:
    if span_s >= MIN_SPAN_S:
        return None
    return CheckStatus.INCONCLUSIVE if soak else CheckStatus.NOT_APPLICABLE


def _short(name: CheckName, what: str, status: CheckStatus, span_s: float) -> Check:
    why = (f"{what}: {span_s / 60:.0f} min of data after warm-up, {MIN_SPAN_S / 60:.0f} needed: too short to tell"
           if status is CheckStatus.INCONCLUSIVE else
           f"{what}: not a soak ({span_s / 60:.0f} min after warm-up; drift is judged from {MIN_SPAN_S / 60:.0f})")
    return Check(name=name, status=status, wave=None, measured=None, limit=None, excess=None, message=why)


def _rss_check(name: CheckName, who: str, t_s: FloatArray, mib: FloatArray, warm: float, end_s: float,
               soak: bool, *, per_minute: bool, waves: list[tuple[float, float]]) -> Check:
    span = max(0.0, end_s - warm)
    status = _status_for_span(span, soak)
    if status is not None:
        return _short(name, f"{who} RSS", status, span)
    t_fit, mib_fit, which = rss_points(t_s, mib, warm_s=warm, end_s=end_s, per_minute=per_minute, waves=waves)
    fit = trend(t_fit, mib_fit)
    if fit is None or fit.start_value <= 0:
        return Check(name=name, status=CheckStatus.NOT_APPLICABLE, wave=None, measured=None, limit=None, excess=None,
                     message=f"{who} RSS: fewer than 3 samples after warm-up")
    pct = 100.0 * fit.slope_per_h / fit.start_value
    ok = pct <= RSS_LIMIT_PCT_PER_H
    head = (f"{who} RSS {fit.start_value:.1f} MiB after warm-up, slope {fit.slope_per_h:+.2f} MiB/h = {pct:+.2f} %/h "
            f"over {fit.span_s / 3600:.2f} h ({fit.points} {which})")
    return Check(name=name, status=CheckStatus.PASS if ok else CheckStatus.FAIL, wave=None, measured=pct,
                 limit=RSS_LIMIT_PCT_PER_H, excess=None if ok else pct - RSS_LIMIT_PCT_PER_H,
                 message=head + (f" <= {RSS_LIMIT_PCT_PER_H:g} %/h" if ok else
                                 f" exceeds {RSS_LIMIT_PCT_PER_H:g} %/h: memory grows (a leak?)"))


def _latency_check(soak: SoakSeries, waves: list[tuple[float, float]], warm: float, end_s: float,
                   declared: bool) -> Check:
    name = CheckName.DRIFT_LATENCY
    key = next((k for k in _LATENCY_KEYS if k in soak.latency and np.isfinite(soak.latency[k]["p99"]).any()), None)
    if key is None:
        return Check(name=name, status=CheckStatus.NOT_APPLICABLE, wave=None, measured=None, limit=None, excess=None,
                     message="latency drift: no message latency or ping measured")
    span = max(0.0, end_s - warm)
    status = _status_for_span(span, declared)
    if status is not None:
        return _short(name, f"{key} p99", status, span)
    t, p99, which = latency_points(soak, key, warm_s=warm, end_s=end_s, waves=waves)
    fit = trend(t, p99)
    if fit is None:
        return Check(name=name, status=CheckStatus.NOT_APPLICABLE, wave=None, measured=None, limit=None, excess=None,
                     message=f"{key} p99: fewer than 3 complete minutes after warm-up")
    median = float(np.nanmedian(p99))
    limit = max(LATENCY_LIMIT_SHARE * median, LATENCY_LIMIT_FLOOR_MS)
    ok = fit.slope_per_h <= limit
    head = (f"{key} p99 per minute (median {median:.2f} ms) slope {fit.slope_per_h:+.3f} ms/h over "
            f"{fit.span_s / 3600:.2f} h ({fit.points} {which})")
    return Check(name=name, status=CheckStatus.PASS if ok else CheckStatus.FAIL, wave=None,
                 measured=fit.slope_per_h, limit=limit, excess=None if ok else fit.slope_per_h - limit,
                 message=head + (f" <= {limit:.2f} ms/h" if ok else f" exceeds {limit:.2f} ms/h: latency creeps up"))


def applies(*, ready_s: float | None, duration_s: float, declared_soak: bool,
            waves: list[tuple[float, float]] | tuple[()] = ()) -> bool:
    """True for a soak: started as one, or long enough to judge after warm-up."""
    return declared_soak or duration_s - warmup_end_s(ready_s, waves) >= MIN_SPAN_S


def drift_checks(soak: SoakSeries, *, ready_s: float | None, duration_s: float, waves: list[tuple[float, float]],
                 declared_soak: bool) -> list[Check]:
    """The drift checks of a run (module docstring).

    Args:
        soak: the per-minute series.
        ready_s: when every client first signed in (load clock), None if never.
        duration_s: the run's length (s).
        waves: each wave's (start, end) on the load clock (left out of the fits, module docstring).
        declared_soak: the run was started as a soak (``run.json`` ``soak``).
    """
    warm = warmup_end_s(ready_s, waves)
    t = soak.minutes_s + MINUTE_S / 2
    checks = [_latency_check(soak, waves, warmup_end_s(ready_s), duration_s, declared_soak)]
    if soak.generator_rss_mib:
        for worker, mib in soak.generator_rss_mib.items():
            checks.append(_rss_check(CheckName.DRIFT_GENERATOR_RSS, f"generator {worker}", t, mib, warm, duration_s,
                                     declared_soak, per_minute=True, waves=waves))
    else:
        checks.append(Check(name=CheckName.DRIFT_GENERATOR_RSS, status=CheckStatus.NOT_APPLICABLE, wave=None,
                            measured=None, limit=None, excess=None, message="generator RSS: no sample recorded"))
    for node, (ts, mib) in soak.mock_rss_mib.items():
        checks.append(_rss_check(CheckName.DRIFT_MOCK_RSS, f"mock node {node.split('.')[0]}", ts, mib, warm,
                                 duration_s, declared_soak, per_minute=False, waves=waves))
    return checks

