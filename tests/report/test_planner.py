"""Planner: Cisco's rule upper = lower + users / rate, the expected wave and the current risk."""

from __future__ import annotations

from pathlib import Path

import pytest

from jabberemu.report.errors import PlannerError
from jabberemu.report.planner import PROFILES, Risk, main, plan


def test_cisco_default_example() -> None:
    """Cisco's defaults 120/537 s fit ~1,250 users at 3 users/s."""
    p = plan(1250, 3.0, lower=120)
    assert p.upper_exact_s == pytest.approx(120 + 1250 / 3)
    assert p.upper_s == 537.0
    assert p.expected_rate_per_s == pytest.approx(1250 / 417)
    assert p.all_back_s == 537.0
    assert p.current is None


def test_profiles_match_the_mock_names_and_rates() -> None:
    """Names and rates as mock_server/params.py LOGIN_PROFILES (kept in step by hand: no shared code)."""
    assert {n: pr.rate_per_s for n, pr in PROFILES.items()} == {
        "small": 3.0, "small-conservative": 1.5, "15k-active-standby": 6.0, "15k-active-active": 15.0, "25k": 8.5, "push": 4.0}
    p = plan(15000, profile="15k-active-standby")
    assert (p.lower_s, p.upper_s, p.rate_per_s) == (120.0, 2620.0, 6.0)


def test_default_lower_follows_a_longer_critical_service_delay() -> None:
    assert plan(100, 2.0, critical_service_delay_s=200).lower_s == 200.0
    assert plan(100, 2.0, lower=5, critical_service_delay_s=3).upper_s == 55.0


def test_current_limits_risk() -> None:
    p = plan(1250, 3.0, lower=120, current_lower=120, current_upper=300)
    assert p.current is not None
    assert p.current.rate_per_s == pytest.approx(1250 / 180)
    assert p.current.ratio == pytest.approx(1250 / 180 / 3)
    assert p.current.risk is Risk.OVERLOAD
    assert p.current.max_users == pytest.approx(540)
    assert p.current.extra_wait_s == pytest.approx(300 - 537)
    ok = plan(1000, 3.0, current_lower=120, current_upper=537)
    assert ok.current is not None and ok.current.risk is Risk.WITHIN_CAPACITY and ok.current.ratio < 1
    low = plan(1000, 3.0, current_lower=30, current_upper=537)
    assert low.current is not None and any("below the Critical Service Delay" in n for n in low.current.notes)


@pytest.mark.parametrize(("kwargs", "argument"), [
    (dict(users=0, rate=3.0), "users"),
    (dict(users=10), "rate"),
    (dict(users=10, rate=-1.0), "rate"),
    (dict(users=10, profile="huge"), "profile"),
    (dict(users=10, rate=3.0, lower=60), "lower"),
    (dict(users=10, rate=3.0, current_lower=120), "current_lower/current_upper"),
    (dict(users=10, rate=3.0, current_lower=120, current_upper=100), "current_upper"),
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
    assert "Client Re-Login Upper Limit                537 s" in out
    assert "OVERLOAD" in out and "2.31 x capacity" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["--users", "10", "--rate", "3", "--lower", "10"]) == 2
    assert "Critical Service Delay" in capsys.readouterr().err
