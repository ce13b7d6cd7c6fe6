"""The planner: pathwise monotonicity under common random numbers, minimality, reproducibility,
agreement with the full model, and the what-if."""

from __future__ import annotations

import numpy as np
import pytest

from jabberemu.throttle import (
    InfeasiblePlan,
    ModelInputError,
    PlanCriteria,
    ServerModel,
    WaveKind,
    WaveSpec,
    plan_upper,
    simulate,
    what_if,
)

USERS, LOWER, TIMEOUT_S = 400, 30.0, 10.0
SERVER = ServerModel(rate_per_s=5.0, workers=3, service_s=0.4)  # capacity 5/s: Cisco's rule window 80 s
CRITERIA = PlanCriteria(probability=0.95, max_wait_p99_s=3.0)
REPLICAS = 100


def _wave(upper_s: float, kind: WaveKind = WaveKind.FAILOVER) -> WaveSpec:
    return WaveSpec(clients=USERS, kind=kind, lower_s=LOWER, upper_s=upper_s, soap_timeout_s=TIMEOUT_S)


def _passing(upper_s: float, kind: WaveKind = WaveKind.FAILOVER) -> tuple[np.ndarray, np.ndarray]:
    res = simulate(_wave(upper_s, kind), SERVER, replicas=REPLICAS, seed=6)
    clean = res.per_replica.clients_at_risk == 0
    return clean & (res.per_replica.wait_p99_s <= CRITERIA.max_wait_p99_s), np.where(clean, res.per_replica.wait_p99_s,
                                                                                    np.nan)


def test_clean_replicas_stay_clean_when_the_window_widens() -> None:
    """Same seed = same uniforms, arrivals stretched: per replica, passing at one upper limit
    implies passing at every larger one, and the p99 wait of a clean replica never grows."""
    uppers = [LOWER + w for w in (40, 60, 70, 80, 90, 100, 120, 160)]
    previous_pass, previous_wait = None, None
    fractions = []
    for upper in uppers:
        passing, wait = _passing(upper)
        fractions.append(passing.mean())
        if previous_pass is not None and previous_wait is not None:
            assert (passing | ~previous_pass).all()
            both = ~np.isnan(wait) & ~np.isnan(previous_wait)
            assert (wait[both] <= previous_wait[both] + 1e-9).all()
        previous_pass, previous_wait = passing, wait
    assert fractions[0] < 0.5 and fractions[-1] == 1.0  # the grid spans the interesting range


def test_plan_is_the_smallest_passing_upper_and_agrees_with_the_full_model() -> None:
    plan = plan_upper(USERS, LOWER, SERVER, soap_timeout_s=TIMEOUT_S, criteria=CRITERIA, replicas=REPLICAS, seed=6)
    assert plan.probability_pass >= 0.95
    assert plan.probability_pass_below is not None and plan.probability_pass_below < 0.95
    assert plan.upper_s == float(round(plan.upper_s)) and plan.upper_s > LOWER
    assert plan.cisco_rule_upper_s == pytest.approx(LOWER + USERS / 5.0)
    assert plan.wait_p99_s.p95 <= 3.0 or plan.probability_pass < 1.0
    # the full model (both rounds, summary) with the same seed gives the same pass / fail
    for kind in WaveKind:
        assert _passing(plan.upper_s, kind)[0].mean() >= 0.95
        assert _passing(plan.upper_s - 1.0, kind)[0].mean() < 0.95
    again = plan_upper(USERS, LOWER, SERVER, soap_timeout_s=TIMEOUT_S, criteria=CRITERIA, replicas=REPLICAS, seed=6)
    assert again == plan


def test_stricter_criteria_never_plan_a_smaller_upper() -> None:
    def upper(probability: float, wait_s: float) -> float:
        return plan_upper(USERS, LOWER, SERVER, soap_timeout_s=TIMEOUT_S, replicas=REPLICAS, seed=6,
                          criteria=PlanCriteria(probability=probability, max_wait_p99_s=wait_s)).upper_s

    assert upper(0.80, 3.0) <= upper(0.95, 3.0) <= upper(0.99, 3.0)
    assert upper(0.95, 8.0) <= upper(0.95, 3.0) <= upper(0.95, 1.0)
    assert upper(0.99, 1.0) > upper(0.80, 8.0)


def test_unlimited_server_needs_no_window() -> None:
    plan = plan_upper(USERS, LOWER, ServerModel(service_s=0.5), soap_timeout_s=TIMEOUT_S, replicas=20)
    assert plan.upper_s == LOWER + 1.0 and plan.cisco_rule_upper_s is None and plan.probability_pass == 1.0
    assert plan.probability_pass_below is None


def test_infeasible_plans_raise() -> None:
    with pytest.raises(InfeasiblePlan, match="exceeds the SOAP timeout"):
        plan_upper(50, LOWER, ServerModel(workers=1, service_s=20.0), soap_timeout_s=TIMEOUT_S, replicas=10)
    with pytest.raises(InfeasiblePlan) as info:
        plan_upper(USERS, LOWER, SERVER, soap_timeout_s=TIMEOUT_S, replicas=20, max_upper_s=LOWER + 30)
    assert info.value.max_upper_s == LOWER + 30 and info.value.probability_clean < 0.99


def test_planner_input_checks() -> None:
    with pytest.raises(ModelInputError):
        PlanCriteria(probability=0.0)
    with pytest.raises(ModelInputError):
        PlanCriteria(max_wait_p99_s=-1.0)
    with pytest.raises(ModelInputError):
        plan_upper(0, LOWER, SERVER)
    with pytest.raises(ModelInputError):
        plan_upper(USERS, LOWER, SERVER, resolution_s=0.0)


def test_what_if_reports_the_storm_and_the_calm() -> None:
    storm = what_if(_wave(LOWER + 20, WaveKind.FALLBACK), SERVER, replicas=20, seed=1)
    assert storm.clients_at_risk.p5 > 0 and storm.probability_clean == 0.0
    assert storm.queue_peak.median > 10 and storm.slowest_login_s.median > 5.0
    assert storm.queue_peak == storm.result.bands.queue_peak
    assert storm.probability_clean_interval[1] < 0.2
    calm = what_if(_wave(LOWER + 400), SERVER, replicas=20, seed=1)
    assert calm.clients_at_risk.p95 == 0 and calm.gave_up.p95 == 0 and calm.probability_clean == 1.0
    assert calm.recovery_max_s.median <= LOWER + 400 + TIMEOUT_S
    assert calm.slowest_login_s.median < storm.slowest_login_s.median
