"""Planner: the model's smallest safe upper limit, Cisco's rule beside it, and the current limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from jabberemu.report.errors import PlannerError
from jabberemu.report.planner import PROFILES, main, plan


def test_the_model_plans_beyond_ciscos_rule_at_exactly_the_capacity() -> None:
    """Cisco's 120/537 s spread 1,250 users at exactly 3/s: the queue grows; the model asks for more."""
    p = plan(1250, 3.0, lower=120, replicas=100)
    assert p.cisco_upper_s == 537.0
    assert p.upper_s > 537.0
    assert p.upper.probability_pass >= 0.99
    assert p.upper.probability_pass_below is not None and p.upper.probability_pass_below < 0.99
    assert p.at_plan.clients_at_risk.p95 == 0 and p.at_plan.result.bands.wait_p99_s.median <= 2.0
    assert p.current is None


def test_profiles_match_the_mock_names_and_rates() -> None:
    """Names and rates as mock_server/params.py LOGIN_PROFILES (kept in step by hand: no shared code)."""
    assert {n: pr.rate_per_s for n, pr in PROFILES.items()} == {
        "small": 3.0, "small-conservative": 1.5, "15k-active-standby": 6.0, "15k-active-active": 15.0, "25k": 8.5, "push": 4.0}
    p = plan(1500, profile="15k-active-standby", replicas=50)
    assert (p.lower_s, p.cisco_upper_s, p.server.rate_per_s) == (120.0, 370.0, 6.0)


def test_default_lower_follows_a_longer_critical_service_delay() -> None:
    assert plan(100, 2.0, critical_service_delay_s=200, replicas=50).lower_s == 200.0
    assert plan(100, 2.0, lower=5, critical_service_delay_s=3, replicas=50).cisco_upper_s == 55.0


def test_current_limits_at_risk_and_safe() -> None:
    p = plan(1250, 3.0, lower=120, current_lower=120, current_upper=300, replicas=100)
    assert p.current is not None and not p.current.safe and p.current.probability_ok < 0.99
    assert p.current.prediction.queue_peak.median > 100  # 1,250 logins in 180 s at 3/s: ~700 s of work
    assert p.current.prediction.slowest_login_s.median > 30 * 0.9 or p.current.prediction.clients_at_risk.median > 0
    assert any(f"at least {p.upper_s:g} s" in n for n in p.current.notes)
    ok = plan(1000, 3.0, current_lower=120, current_upper=2000, replicas=100)
    assert ok.current is not None and ok.current.safe and ok.current.prediction.clients_at_risk.p95 == 0
    low = plan(1000, 3.0, current_lower=30, current_upper=2000, replicas=50)
    assert low.current is not None and any("below the Critical Service Delay" in n for n in low.current.notes)


def test_a_short_soap_timeout_and_a_bounded_queue_put_clients_at_risk() -> None:
    p = plan(600, 20.0, lower=1, current_lower=1, current_upper=6, queue=20, soap_timeout_s=3.0, replicas=100,
             critical_service_delay_s=0.0)
    assert p.current is not None and not p.current.safe
    assert p.current.prediction.clients_at_risk.median > 100 and p.current.prediction.gave_up.median > 0
    assert p.upper_s >= 1 + 600 / 20  # never faster than the capacity


@pytest.mark.parametrize(("kwargs", "argument"), [
    (dict(users=0, rate=3.0), "users"),
    (dict(users=10), "rate"),
    (dict(users=10, rate=-1.0), "rate"),
    (dict(users=10, profile="huge"), "profile"),
    (dict(users=10, rate=3.0, lower=60), "lower"),
    (dict(users=10, rate=3.0, current_lower=120), "current_lower/current_upper"),
    (dict(users=10, rate=3.0, current_lower=120, current_upper=100), "current_upper"),
    (dict(users=10, rate=3.0, lower=120, service_ms=5000.0, soap_timeout_s=3.0), "server"),
])
def test_impossible_input(kwargs: dict, argument: str) -> None:
    with pytest.raises(PlannerError) as info:
        plan(**kwargs)
    assert info.value.argument == argument


def test_main_prints_the_table_and_draws(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    png = tmp_path / "wave.png"
    assert main(["--users", "1250", "--rate", "3", "--lower", "120", "--current-lower", "120",
                 "--current-upper", "300", "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "Cisco's rule lower + users/rate                  537 s" in out
    assert "current limits: verdict" in out and "AT RISK" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["--users", "10", "--rate", "3", "--lower", "10"]) == 2
    assert "Critical Service Delay" in capsys.readouterr().err
