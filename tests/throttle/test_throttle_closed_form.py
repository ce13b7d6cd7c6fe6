"""The model against its closed forms, with statistical bounds derived in each test.

Unlimited node: nobody waits, so served = demand per replica and per bin, and the count of round-1
arrivals in a 1 s bin inside the window is Binomial(N, p = 1 / (upper - lower)). Saturated token
bucket: the last login starts at ``a_min + (N - B) / R`` exactly once the queue never runs dry.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from jabberemu.throttle import (
    AttemptOutcome,
    ServerModel,
    WaveKind,
    WaveSpec,
    draw_waits,
    round1_arrival_probabilities,
    round1_demand,
    saturated_recovery_max_bounds_s,
    simulate,
    simulate_clients,
)
from jabberemu.throttle.summary import _binned

N, LOWER, UPPER, REPLICAS = 2000, 10.0, 60.0, 400


def _unlimited_counts(service_s: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    wave = WaveSpec(clients=N, kind=WaveKind.FAILOVER, lower_s=LOWER, upper_s=UPPER)
    out = simulate_clients(wave, ServerModel(service_s=service_s), draw_waits(wave, replicas=REPLICAS, seed=5))
    assert (out.serving.outcome[0] == AttemptOutcome.ANSWERED).all()
    assert np.isnan(out.serving.arrival_s[1]).all()  # nobody needs a second round
    bins = 80
    demand = _binned(out.serving.arrival_s[0], bins, 1.0)
    served = _binned(out.serving.start_s[0] + service_s, bins, 1.0)
    return demand, served


def test_unlimited_served_equals_demand() -> None:
    demand, served = _unlimited_counts()
    np.testing.assert_array_equal(served, demand)  # every replica, every bin
    assert (demand.sum(axis=1) == N).all()
    delayed_demand, delayed_served = _unlimited_counts(service_s=2.0)
    np.testing.assert_array_equal(delayed_served[:, 2:], delayed_demand[:, :-2])  # shifted by S = 2 bins


def test_unlimited_per_second_counts_are_binomial() -> None:
    demand, _ = _unlimited_counts()
    inside = demand[:, int(LOWER):int(UPPER)]  # the K = 50 full bins of the window
    k = inside.shape[1]
    p = 1.0 / (UPPER - LOWER)
    mean, var = N * p, N * p * (1 - p)
    # grand mean of R*K counts: variance <= var / (R K) (bins of a replica are negatively correlated)
    assert abs(inside.mean() - mean) <= 5 * math.sqrt(var / (REPLICAS * k))
    # per bin, the sample variance over R independent replicas estimates var with standard error
    # ~ var sqrt(2 / (R - 1)) (normal approximation, excess kurtosis 1/var negligible); averaged
    # over K nearly independent bins
    per_bin = inside.var(axis=0, ddof=1)
    assert abs(per_bin.mean() - var) <= 6 * var * math.sqrt(2 / (REPLICAS - 1)) / math.sqrt(k)
    # the tails: the fraction of counts at or below the binomial 5 % and 95 % quantiles is the
    # binomial CDF there, within 5 standard errors of a proportion of R K draws
    for q in (0.05, 0.95):
        cut = stats.binom.ppf(q, N, p)
        cdf = stats.binom.cdf(cut, N, p)
        assert abs((inside <= cut).mean() - cdf) <= 5 * math.sqrt(cdf * (1 - cdf) / (REPLICAS * k))


def test_closed_form_in_the_result_matches_the_simulation() -> None:
    wave = WaveSpec(clients=N, kind=WaveKind.FALLBACK, lower_s=LOWER, upper_s=UPPER)
    res = simulate(wave, ServerModel(), replicas=REPLICAS, seed=8)
    cf = res.closed_form
    assert cf.unlimited_exact and cf.saturated_recovery_max_s is None
    assert res.probability_clean == 1.0 and res.bands.gave_up.p95 == 0.0
    inside = slice(int(LOWER), int(UPPER))
    np.testing.assert_allclose(cf.round1_demand.mean[inside], N / (UPPER - LOWER))
    assert cf.round1_demand.mean.sum() == N
    # median and band of the simulated per-bin demand against the binomial quantiles (+-2 counts:
    # sample quantiles of 400 draws of a distribution with sd ~6.3)
    np.testing.assert_allclose(res.serving.demand.median[inside], cf.round1_demand.mean[inside], atol=2.0)
    np.testing.assert_allclose(res.serving.demand.p5[inside], cf.round1_demand.p5[inside], atol=2.0)
    np.testing.assert_allclose(res.serving.demand.p95[inside], cf.round1_demand.p95[inside], atol=2.0)
    np.testing.assert_array_equal(res.serving.served.median, res.serving.demand.median)
    assert (res.serving.queue_depth.p95 == 0).all() and res.bands.wait_max_s.p95 == 0.0
    # recovered fraction: the uniform CDF at the end of each bin, within 3 % (sd of a fraction of
    # N = 2000 is <= 1.2 %)
    uniform = np.clip((res.time_s + res.bin_s - LOWER) / (UPPER - LOWER), 0, 1)
    np.testing.assert_allclose(res.recovered_fraction.median, uniform, atol=0.03)


def test_round1_probabilities() -> None:
    wave = WaveSpec(clients=10, kind=WaveKind.FAILOVER, lower_s=1.5, upper_s=3.5)
    p = round1_arrival_probabilities(wave, np.arange(6.0))
    np.testing.assert_allclose(p, [0, 0.25, 0.5, 0.25, 0, ][:5])
    point = WaveSpec(clients=10, kind=WaveKind.FAILOVER, lower_s=2.0, upper_s=2.0)
    np.testing.assert_array_equal(round1_arrival_probabilities(point, np.arange(5.0)), [0, 0, 1, 0])
    d = round1_demand(wave, np.arange(6.0))
    np.testing.assert_allclose(d.mean, 10 * p)
    assert (d.p5 <= d.mean).all() and (d.mean <= d.p95).all()


def test_saturated_recovery_is_n_over_r() -> None:
    """A storm: 600 clients in a 2 s window, 10 logins/s (60 s of work), T long enough for all."""
    n, rate, lower, upper = 600, 10.0, 5.0, 7.0
    wave = WaveSpec(clients=n, kind=WaveKind.FAILOVER, lower_s=lower, upper_s=upper, soap_timeout_s=200.0)
    server = ServerModel(rate_per_s=rate, service_s=0.5)
    waits = draw_waits(wave, replicas=50, seed=2)
    out = simulate_clients(wave, server, waits)
    bounds = saturated_recovery_max_bounds_s(wave, server)
    assert bounds is not None
    low, high = bounds
    assert (low, high) == (lower + (n - 1) / rate + 0.5, upper + (n - 1) / rate + 0.5)
    last = np.nanmax(out.recovery_s, axis=1)
    assert ((low <= last) & (last <= high)).all()  # deterministic bounds, every replica
    # exactly a_min + (N - 1) / R + S when the queue never runs dry: a_(j) <= a_(0) + j / R for all j
    a = np.sort(waits.round1_s, axis=1)
    dry_never = (a - a[:, :1] <= np.arange(n) / rate + 1e-12).all(axis=1)
    assert dry_never.all()
    np.testing.assert_allclose(last, a[:, 0] + (n - 1) / rate + 0.5, rtol=0, atol=1e-9)
    res = simulate(wave, server, replicas=50, seed=2)
    assert res.closed_form.saturated_recovery_max_s == bounds
    assert abs(res.bands.recovery_max_s.median - (lower + n / rate)) <= upper - lower


def test_saturated_bounds_only_where_they_hold() -> None:
    wave = WaveSpec(clients=600, kind=WaveKind.FAILOVER, lower_s=5.0, upper_s=7.0, soap_timeout_s=30.0)
    assert saturated_recovery_max_bounds_s(wave, ServerModel(rate_per_s=10.0)) is None  # 59.9 s > T
    assert saturated_recovery_max_bounds_s(wave, ServerModel()) is None
    assert saturated_recovery_max_bounds_s(wave, ServerModel(rate_per_s=100.0, workers=2)) is None
    assert saturated_recovery_max_bounds_s(wave, ServerModel(rate_per_s=100.0, queue_limit=10)) is None
    assert saturated_recovery_max_bounds_s(wave, ServerModel(rate_per_s=100.0, burst=100)) == (10.0, 12.0)
