"""Whole waves: accounting, reproducibility, input checks, and the summary's figures."""

from __future__ import annotations

import math

import numpy as np
import pytest
from throttle_helpers import reference_of, shuffled_waits

from jabberemu.throttle import (
    AttemptOutcome,
    ClientFate,
    ModelInputError,
    ServerModel,
    Waits,
    WaveKind,
    WaveSpec,
    draw_uniforms,
    draw_waits,
    simulate,
    simulate_clients,
    summarise,
    wilson_interval,
)

A, F = AttemptOutcome, ClientFate
STORM = ServerModel(rate_per_s=20.0, workers=4, service_s=0.15, queue_limit=40)


def _storm(kind: WaveKind, clients: int = 1500) -> WaveSpec:
    return WaveSpec(clients=clients, kind=kind, lower_s=5.0, upper_s=40.0, soap_timeout_s=3.0)


@pytest.mark.parametrize("kind", list(WaveKind))
def test_accounting(kind: WaveKind) -> None:
    wave = _storm(kind)
    out = simulate_clients(wave, STORM, draw_waits(wave, replicas=30, seed=1))
    fate = out.fate
    recovered = (fate == F.RECOVERED_ROUND_1) | (fate == F.RECOVERED_ROUND_2)
    np.testing.assert_array_equal(recovered.sum(axis=1) + (fate == F.GAVE_UP).sum(axis=1), wave.clients)
    assert (recovered == ~np.isnan(out.recovery_s)).all()
    assert (fate == F.GAVE_UP).any() and (fate == F.RECOVERED_ROUND_2).any()  # a real storm
    srv = out.serving
    # round 1: everyone arrives at the serving node at the drawn wait
    np.testing.assert_array_equal(srv.arrival_s[0], out.waits.round1_s)
    # fate <-> attempts at the serving node
    np.testing.assert_array_equal(fate == F.RECOVERED_ROUND_1, srv.outcome[0] == A.ANSWERED)
    np.testing.assert_array_equal(fate == F.RECOVERED_ROUND_2, srv.outcome[1] == A.ANSWERED)
    np.testing.assert_array_equal(~np.isnan(srv.arrival_s[1]), srv.outcome[0] >= A.REFUSED_BUSY)
    ok1 = fate == F.RECOVERED_ROUND_1
    np.testing.assert_allclose(out.recovery_s[ok1], srv.start_s[0][ok1] + STORM.service_s)
    if kind is WaveKind.FAILOVER:
        assert out.other is None
        failed_at = np.where(srv.outcome[0] == A.REFUSED_BUSY, srv.arrival_s[0], srv.arrival_s[0] + wave.soap_timeout_s)
    else:
        assert out.other is not None
        np.testing.assert_array_equal(~np.isnan(out.other.arrival_s), srv.outcome >= A.REFUSED_BUSY)
        assert not (out.other.outcome[0] == A.NONE)[srv.outcome[0] >= A.REFUSED_BUSY].any()
        o = out.other
        failed_at = np.where(o.outcome[0] == A.REFUSED_BUSY, o.arrival_s[0],
                             np.where(o.outcome[0] == A.ANSWERED, o.start_s[0] + STORM.service_s,
                                      o.arrival_s[0] + wave.soap_timeout_s))
    again = ~np.isnan(srv.arrival_s[1])
    np.testing.assert_allclose(srv.arrival_s[1][again], failed_at[again] + out.waits.round2_s[again])


def test_same_seed_same_wave_other_seed_other_wave() -> None:
    wave = _storm(WaveKind.FALLBACK, 400)
    a = simulate(wave, STORM, replicas=8, seed=3)
    b = simulate(wave, STORM, replicas=8, seed=3)
    c = simulate(wave, STORM, replicas=8, seed=4)
    for name in ("gave_up", "recovery_max_s", "queue_peak", "wait_p99_s"):
        np.testing.assert_array_equal(getattr(a.per_replica, name), getattr(b.per_replica, name))
    np.testing.assert_array_equal(a.serving.demand.median, b.serving.demand.median)
    assert not np.array_equal(a.per_replica.recovery_max_s, c.per_replica.recovery_max_s)
    u1, u2 = draw_uniforms(5, 100, 9)
    v1, v2 = draw_uniforms(5, 100, 9)
    np.testing.assert_array_equal(u1, v1)
    np.testing.assert_array_equal(u2, v2)
    assert (np.diff(u1, axis=1) >= 0).all() and (0 <= u1).all() and (u1 <= 1).all()


def test_summary_of_reference_equals_summary_of_fast_model() -> None:
    """The series and figures only depend on the per-client outcomes, so they agree too."""
    wave = WaveSpec(clients=120, kind=WaveKind.FALLBACK, lower_s=1.0, upper_s=6.0, soap_timeout_s=1.5)
    server = ServerModel(rate_per_s=15.0, workers=2, service_s=0.2, queue_limit=6)
    waits = shuffled_waits(wave, replicas=1, seed=12)
    fast = summarise(simulate_clients(wave, server, waits), bin_s=0.5)
    ref = summarise(reference_of(wave, server, waits, 0), bin_s=0.5)
    assert fast.time_s.shape == ref.time_s.shape
    for node in ("serving", "other"):
        for series in ("demand", "served", "queue_depth", "in_service"):
            np.testing.assert_array_equal(getattr(getattr(fast, node), series).median,
                                          getattr(getattr(ref, node), series).median, err_msg=f"{node} {series}")
    for name in ("refused_busy", "timed_out", "second_rounds", "gave_up", "clients_at_risk", "queue_peak",
                 "other_attempts"):
        assert getattr(fast.per_replica, name)[0] == getattr(ref.per_replica, name)[0], name
    np.testing.assert_allclose(fast.per_replica.recovery_p99_s, ref.per_replica.recovery_p99_s, atol=1e-9)


def test_summary_figures_by_hand() -> None:
    """Six clients, hand-computed: 1 logins/s, queue of 2, T = 2.5 s, all at t = 1."""
    wave = WaveSpec(clients=6, kind=WaveKind.FAILOVER, lower_s=1.0, upper_s=1.0, soap_timeout_s=2.5)
    waits = Waits(round1_s=np.ones((1, 6)), round2_s=np.full((1, 6), 10.0))
    res = summarise(simulate_clients(wave, ServerModel(rate_per_s=1.0, queue_limit=2), waits))
    # round 1 at t=1: c0 starts at 1, c1 at 2, c2 at 3, c3..c5 refused (2 waiting)
    # round 2 for c3..c5 at 11: c3 at 11, c4 at 12, c5 at 13 (deadline 13.5)
    p = res.per_replica
    assert (p.refused_busy[0], p.timed_out[0], p.second_rounds[0], p.gave_up[0]) == (3, 0, 3, 0)
    assert p.clients_at_risk[0] == 3 and p.queue_peak[0] == 2
    assert p.recovery_max_s[0] == 13.0 and p.wait_max_s[0] == 2.0 and p.login_latency_max_s[0] == 2.0
    np.testing.assert_allclose([p.wait_p50_s[0], p.recovery_p50_s[0]], [1.0, 7.0])
    assert res.probability_clean == 0.0
    assert res.serving.demand.median[:14].tolist() == [0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0]
    assert res.serving.served.median[:14].tolist() == [0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1]
    # waiting just before the end of each bin: [1,2): c1, c2; [2,3): c2; then none
    assert res.serving.queue_depth.median[:5].tolist() == [0, 2, 1, 0, 0]
    assert res.recovered_fraction.median[13] == 1.0 and res.recovered_fraction.median[3] == 0.5


def test_wilson_interval() -> None:
    low, high = wilson_interval(198, 200)
    assert low < 0.99 < high < 1.0
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    with pytest.raises(ModelInputError):
        wilson_interval(3, 2)


@pytest.mark.parametrize("kwargs", [dict(rate_per_s=0.0), dict(rate_per_s=math.inf), dict(burst=0),
                                    dict(burst=True), dict(workers=0), dict(service_s=-1.0),
                                    dict(queue_limit=-1), dict(queue_limit=1.5)])
def test_server_model_checks(kwargs: dict[str, object]) -> None:
    with pytest.raises(ModelInputError):
        ServerModel(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("kwargs", [dict(clients=0), dict(lower_s=0.0), dict(upper_s=1.0), dict(soap_timeout_s=0.0),
                                    dict(kind="failover")])
def test_wave_spec_checks(kwargs: dict[str, object]) -> None:
    base: dict[str, object] = dict(clients=10, kind=WaveKind.FAILOVER, lower_s=2.0, upper_s=5.0)
    with pytest.raises(ModelInputError):
        WaveSpec(**{**base, **kwargs})  # type: ignore[arg-type]


def test_waits_checks() -> None:
    wave = WaveSpec(clients=3, kind=WaveKind.FAILOVER, lower_s=2.0, upper_s=5.0)
    with pytest.raises(ModelInputError):
        Waits(round1_s=np.ones((2, 3)), round2_s=np.ones((2, 4)))
    with pytest.raises(ModelInputError):
        Waits(round1_s=np.ones(3), round2_s=np.ones(3))
    with pytest.raises(ModelInputError):
        Waits(round1_s=-np.ones((1, 3)), round2_s=np.ones((1, 3)))
    with pytest.raises(ModelInputError):  # round 2 must wait at least the lower limit
        simulate_clients(wave, ServerModel(), Waits(round1_s=np.full((1, 3), 2.0), round2_s=np.ones((1, 3))))
    with pytest.raises(ModelInputError):
        simulate_clients(wave, ServerModel(), draw_waits(WaveSpec(clients=4, kind=WaveKind.FAILOVER, lower_s=2.0,
                                                                  upper_s=5.0), replicas=1))
    waits = draw_waits(wave, replicas=2)
    assert not waits.round1_s.flags.writeable
