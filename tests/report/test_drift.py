"""The drift verdict on synthetic series: flat PASSes, 3 %/h RSS FAILs, too short is INCONCLUSIVE,
latency creeping up FAILs; every check carries its numbers."""

from __future__ import annotations

import numpy as np
import pytest

from jabberemu.report.checks import CheckName, CheckStatus
from jabberemu.report.drift import (
    LATENCY_LIMIT_FLOOR_MS,
    MIN_SPAN_S,
    RSS_LIMIT_PCT_PER_H,
    WARMUP_S,
    applies,
    rss_points,
    warmup_end_s,
    drift_checks,
    trend,
)
from jabberemu.report.soak import MINUTE_S, SoakSeries

READY_S = 300.0


def _soak(hours: float, *, rss_pct_per_h: float = 0.0, p99_ms_per_h: float = 0.0, seed: int = 0,
          mock_pct_per_h: float | None = None) -> SoakSeries:
    rng = np.random.default_rng(seed)
    n = int(hours * 60)
    minutes = np.arange(n) * MINUTE_S
    t_h = (minutes + MINUTE_S / 2) / 3600
    rss = 200.0 * (1 + rss_pct_per_h / 100 * t_h) + rng.normal(0, 0.3, n)
    p99 = 2.0 + p99_ms_per_h * t_h + rng.normal(0, 0.1, n)
    lat = {"xmpp/message-latency": {"p50": p99 / 2, "p95": p99 * 0.9, "p99": p99}}
    mock = {}
    if mock_pct_per_h is not None:
        ts = np.arange(0, hours * 3600, 30.0)
        mock["imp1.example.test"] = (ts, 80.0 * (1 + mock_pct_per_h / 100 * ts / 3600) + rng.normal(0, 0.1, ts.size))
    return SoakSeries(minutes_s=minutes, latency=lat, samples={"xmpp/message-latency": np.full(n, 40.0)},
                      generator_rss_mib={"w1": rss}, generator_cpu={"w1": np.full(n, 30.0)}, mock_rss_mib=mock)


def _checks(soak: SoakSeries, hours: float, declared: bool = True) -> dict[CheckName, list]:
    out: dict[CheckName, list] = {}
    for c in drift_checks(soak, ready_s=READY_S, duration_s=hours * 3600, waves=[], declared_soak=declared):
        out.setdefault(c.name, []).append(c)
    return out


def test_theil_sen_slope_per_hour_ignores_an_outlier() -> None:
    t = np.arange(0, 7200, 60.0)
    fit = trend(t, 100 + 3.0 * t / 3600)
    assert fit is not None and fit.slope_per_h == pytest.approx(3.0) and fit.start_value == pytest.approx(100.0)
    assert fit.points == t.size and trend(t[:2], t[:2]) is None
    y = 100 + 3.0 * t / 3600
    y[-1] += 400.0  # one stalled minute at the end: least squares would read +25 /h
    spiked = trend(t, y)
    assert spiked is not None and spiked.slope_per_h == pytest.approx(3.0, abs=0.1)


def test_a_flat_soak_passes_with_its_numbers() -> None:
    checks = _checks(_soak(2.0, mock_pct_per_h=0.0), 2.0)
    assert {n: [c.status for c in cs] for n, cs in checks.items()} == {
        CheckName.DRIFT_LATENCY: [CheckStatus.PASS], CheckName.DRIFT_GENERATOR_RSS: [CheckStatus.PASS],
        CheckName.DRIFT_MOCK_RSS: [CheckStatus.PASS]}
    (rss,) = checks[CheckName.DRIFT_GENERATOR_RSS]
    assert abs(rss.measured) < 0.3 and rss.limit == RSS_LIMIT_PCT_PER_H
    assert "generator w1 RSS 20" in rss.message and "%/h" in rss.message
    (lat,) = checks[CheckName.DRIFT_LATENCY]
    assert lat.limit == LATENCY_LIMIT_FLOOR_MS and abs(lat.measured) < 0.2


def test_rss_growing_3_percent_an_hour_fails() -> None:
    checks = _checks(_soak(3.0, rss_pct_per_h=3.0, mock_pct_per_h=3.0), 3.0)
    for name in (CheckName.DRIFT_GENERATOR_RSS, CheckName.DRIFT_MOCK_RSS):
        (c,) = checks[name]
        assert c.status is CheckStatus.FAIL
        # 3 %/h of the RSS at the start; relative to the RSS at the end of warm-up a little less
        assert c.measured == pytest.approx(3.0 / (1 + 0.03 * (READY_S + WARMUP_S) / 3600), abs=0.1)
        assert c.excess == pytest.approx(c.measured - RSS_LIMIT_PCT_PER_H)
        assert "exceeds 1 %/h" in c.message
    assert checks[CheckName.DRIFT_LATENCY][0].status is CheckStatus.PASS


def test_latency_creeping_up_fails() -> None:
    (c,) = _checks(_soak(2.0, p99_ms_per_h=2.5), 2.0)[CheckName.DRIFT_LATENCY]
    assert c.status is CheckStatus.FAIL and c.measured == pytest.approx(2.5, abs=0.2) and "creeps up" in c.message


def test_too_short_a_soak_is_inconclusive_and_a_short_drill_has_no_drift_check() -> None:
    hours = (READY_S + WARMUP_S + MIN_SPAN_S - 600) / 3600
    checks = _checks(_soak(hours, rss_pct_per_h=5.0), hours)
    assert all(c.status is CheckStatus.INCONCLUSIVE for cs in checks.values() for c in cs)
    assert "too short to tell" in checks[CheckName.DRIFT_GENERATOR_RSS][0].message
    assert not applies(ready_s=READY_S, duration_s=hours * 3600, declared_soak=False)
    assert applies(ready_s=READY_S, duration_s=hours * 3600, declared_soak=True)
    assert applies(ready_s=READY_S, duration_s=READY_S + WARMUP_S + MIN_SPAN_S, declared_soak=False)


def test_wave_minutes_are_left_out_of_the_latency_fit() -> None:
    soak = _soak(2.0)
    p99 = soak.latency["xmpp/message-latency"]["p99"]
    waves = []
    for k, start in enumerate(range(1500, 7000, 1200)):  # growing spikes inside the waves only, 3/4 of the time
        p99[start // 60:(start + 900) // 60] += 20.0 * (k + 1)
        waves.append((float(start), float(start + 900)))
    with_waves = {c.name: c for c in drift_checks(soak, ready_s=READY_S, duration_s=7200, waves=waves,
                                                  declared_soak=True)}
    assert with_waves[CheckName.DRIFT_LATENCY].status is CheckStatus.PASS
    without = {c.name: c for c in drift_checks(soak, ready_s=READY_S, duration_s=7200, waves=[], declared_soak=True)}
    assert without[CheckName.DRIFT_LATENCY].status is CheckStatus.FAIL


def test_waves_covering_most_of_the_run_are_kept_in_the_fit_and_the_sign_out_minute_is_not() -> None:
    """The acceptance soak: 60 minutes, a drill every 10 minutes with a 537 s window, so one steady
    minute in ten. The fit then uses every complete minute after warm-up; the minute past the run's end
    (sign-out, a 400 ms stall) stays out."""
    soak = _soak(1.0 + 1 / 60)
    soak.latency["xmpp/message-latency"]["p99"][-1] = 400.0
    waves = [(float(a), float(a + 537)) for a in range(640, 3600, 600)]
    (c,) = [c for c in drift_checks(soak, ready_s=READY_S, duration_s=3600, waves=waves, declared_soak=True)
            if c.name is CheckName.DRIFT_LATENCY]
    assert warmup_end_s(READY_S, waves) == 1240 + 537  # memory's: the end of the first fallback wave
    warm = warmup_end_s(READY_S)  # latency's: 15 minutes after the sign-in, waves or not
    assert warm == READY_S + WARMUP_S == 1200
    first, last = int(-(-warm // 60)), 59  # whole minutes from 20 (1,200 s) to 59
    assert c.status is CheckStatus.PASS and abs(c.measured) < 0.5
    assert f"({last - first + 1} minutes, waves included: they cover most of the run)" in c.message
    soak.latency["xmpp/message-latency"]["p99"][-1] = 2.0
    soak.latency["xmpp/message-latency"]["p99"][(first + last) // 2:] += 3.0  # a step up halfway
    (c,) = [c for c in drift_checks(soak, ready_s=READY_S, duration_s=3600, waves=waves, declared_soak=True)
            if c.name is CheckName.DRIFT_LATENCY]
    assert c.status is CheckStatus.FAIL and "creeps up" in c.message


def test_a_72_hour_series_is_binned_before_theil_sen() -> None:
    """8,640 mock samples (30 s for 72 h): the fit sees at most 1,000 bin medians, still the right slope."""
    rng = np.random.default_rng(3)
    t = np.arange(0, 72 * 3600, 30.0)
    fit = trend(t, 80.0 + 0.5 * t / 3600 + rng.normal(0, 0.2, t.size))
    assert fit is not None and fit.points == t.size == 8640
    assert fit.slope_per_h == pytest.approx(0.5, abs=0.01) and fit.start_value == pytest.approx(80.0, abs=0.1)


def test_the_latency_check_says_which_minutes_it_fitted() -> None:
    soak = _soak(2.0)
    (plain,) = [c for c in drift_checks(soak, ready_s=READY_S, duration_s=7200, waves=[], declared_soak=True)
                if c.name is CheckName.DRIFT_LATENCY]
    assert f"({int((7200 - READY_S - WARMUP_S) // 60)} complete minutes)" in plain.message
    waves = [(1300.0, 1400.0), (2000.0, 2100.0), (5000.0, 5300.0)]  # memory's warm-up ends with the second
    (between,) = [c for c in drift_checks(soak, ready_s=READY_S, duration_s=7200, waves=waves,
                                          declared_soak=True) if c.name is CheckName.DRIFT_LATENCY]
    # latency's warm-up ends at 1,200 s: whole minutes 20 to 119, 100, of which those touching a wave
    # are left out: 21-23 (1,300-1,400 s), 33-34 (2,000-2,100 s), 83-88 (5,000-5,300 s)
    assert "(89 steady minutes)" in between.message


def test_warm_up_lasts_until_the_first_fallback_wave_has_ended() -> None:
    """Memory grows once to the first failover cycle's high-water mark (the backup holding both nodes'
    sessions): the drift is judged after it."""
    assert warmup_end_s(READY_S) == READY_S + WARMUP_S
    assert warmup_end_s(READY_S, [(300.0, 700.0)]) == READY_S + WARMUP_S  # one early wave: the time rule
    assert warmup_end_s(READY_S, [(640.0, 1178.0)]) == 1200.0
    assert warmup_end_s(READY_S, [(640.0, 1178.0), (1241.0, 1778.0), (1841.0, 2378.0)]) == 1778.0
    rising = _soak(1.0 + 1 / 60, mock_pct_per_h=0.0)
    ts, mib = rising.mock_rss_mib["imp1.example.test"]
    mib[(ts > 960) & (ts < 1320)] += np.linspace(0, 20, int(((ts > 960) & (ts < 1320)).sum()))  # the first wave
    mib[ts >= 1320] += 20.0  # ... and its high-water mark kept
    waves = [(float(a), float(a + 537)) for a in range(640, 3600, 600)]
    (mock,) = [c for c in drift_checks(rising, ready_s=READY_S, duration_s=3600, waves=waves, declared_soak=True)
               if c.name is CheckName.DRIFT_MOCK_RSS]
    assert mock.status is CheckStatus.PASS and abs(mock.measured) < 0.5


def _sawtooth(leak_pct_per_h: float) -> tuple[SoakSeries, list[tuple[float, float]]]:
    """The third 60-minute soak's generator: an action every 600 s ends 1,000 of 2,000 sessions (RSS
    down 3 MiB) and they re-log in over the next 500 s (back up); steady levels rise by the leak."""
    soak = _soak(1.0)
    waves = [(float(a), float(a + 500)) for a in range(640, 3000, 600)]  # no action after 2,440 s
    t = soak.minutes_s + MINUTE_S / 2
    rss = 250.0 * (1 + leak_pct_per_h / 100 * t / 3600)
    for a, b in waves:
        inside = (t >= a) & (t < b)
        rss[inside] -= 3.0 * (1 - (t[inside] - a) / (b - a))
    soak.generator_rss_mib["w1"] = rss
    return soak, waves


def test_rss_is_judged_at_like_load_outside_the_waves() -> None:
    """A line through every minute of the sawtooth reads its phase (the judged span starts on the
    last steady minutes before a drop and ends on the last wave's plateau); the steady minutes do not."""
    soak, waves = _sawtooth(0.0)
    warm = warmup_end_s(READY_S, waves)
    t = soak.minutes_s + MINUTE_S / 2
    mib = soak.generator_rss_mib["w1"]
    every, _e, _w = rss_points(t, mib, warm_s=warm, end_s=3600, per_minute=True)
    assert trend(every, mib[np.isin(t, every)]).slope_per_h > 2.5  # type: ignore[union-attr]  # > 1 %/h: a false FAIL
    steady_t, steady_mib, which = rss_points(t, mib, warm_s=warm, end_s=3600, per_minute=True, waves=waves)
    # minutes 29-30 (1,740-1,860 s: the second counts, 20 s of it in a wave), 39-40, and 49-59
    assert steady_t.tolist() == [1770.0, 1830.0, 2370.0, 2430.0] + [2970.0 + 60 * k for k in range(11)]
    assert which == "steady points: waves left out" and set(steady_mib.tolist()) == {250.0}
    (flat,) = [c for c in drift_checks(soak, ready_s=READY_S, duration_s=3600, waves=waves, declared_soak=True)
               if c.name is CheckName.DRIFT_GENERATOR_RSS]
    assert flat.status is CheckStatus.PASS and flat.measured == pytest.approx(0.0, abs=0.01)
    assert "(15 steady points: waves left out)" in flat.message
    leaking, waves = _sawtooth(3.0)
    (leak,) = [c for c in drift_checks(leaking, ready_s=READY_S, duration_s=3600, waves=waves, declared_soak=True)
               if c.name is CheckName.DRIFT_GENERATOR_RSS]
    assert leak.status is CheckStatus.FAIL and leak.measured == pytest.approx(3.0, abs=0.1)


def test_too_few_steady_rss_points_keep_every_point_and_say_so() -> None:
    soak = _soak(1.2, mock_pct_per_h=0.0)
    waves = [(float(a), float(a + 590)) for a in range(640, 4320, 600)]  # 10 s between waves
    checks = drift_checks(soak, ready_s=READY_S, duration_s=4320, waves=waves, declared_soak=True)
    (gen,) = [c for c in checks if c.name is CheckName.DRIFT_GENERATOR_RSS]
    assert "(41 points, waves included: too few steady ones)" in gen.message and gen.status is CheckStatus.PASS
    (mock,) = [c for c in checks if c.name is CheckName.DRIFT_MOCK_RSS]
    assert "samples, waves included: too few steady ones)" in mock.message
