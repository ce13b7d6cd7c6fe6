"""Re-login limit planner: Cisco's rule ``upper = lower + users / rate``.

Source: Cisco "Configuration and Administration of IM and Presence Service" 12.5(1), chapter
"High Availability Login Profiles": each server size sustains a fixed re-login rate; the Client
Re-Login Upper Limit must leave room for all users at that rate above the Lower Limit, and the
Lower Limit must be at least the Critical Service Delay (default 90 s) so clients do not return
before the failover has finished. Cisco's defaults 120/537 s fit ~1,250 users at 3 users/s.

The expected wave assumes waits uniform on [lower, upper] (DOMAIN.md, "What a Jabber client
does"): a flat rate ``users / (upper - lower)`` between ``lower`` and ``upper`` after the HA event;
the last client is back at ``upper`` plus one login time. Random bunching makes the busiest single
second exceed that mean; ``busiest_second_estimate`` gives the Poisson estimate of it.
"""

from __future__ import annotations

import argparse
import enum
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from scipy import stats

from jabberemu.report.errors import PlannerError, ReportError

__all__ = [
    "DEFAULT_CRITICAL_SERVICE_DELAY_S",
    "DEFAULT_LOWER_S",
    "PROFILES",
    "CurrentRisk",
    "LoginProfile",
    "Plan",
    "Risk",
    "build_parser",
    "main",
    "plan",
    "plot_plan",
    "run",
]

#: Cisco default Critical Service Delay (s).
DEFAULT_CRITICAL_SERVICE_DELAY_S = 90.0
#: Cisco default Client Re-Login Lower Limit (s).
DEFAULT_LOWER_S = 120.0


@dataclass(frozen=True, kw_only=True, slots=True)
class LoginProfile:
    """A Cisco HA login profile: sustainable re-login rate of one server size."""

    name: str
    rate_per_s: float
    description: str

    def __post_init__(self) -> None:
        if self.rate_per_s <= 0:
            raise ValueError(f"rate_per_s must be > 0, got {self.rate_per_s}")


#: Cisco "High Availability Login Profiles" (IM&P 12.5(1)); names as mock_server/params.py.
PROFILES: dict[str, LoginProfile] = {p.name: p for p in (
    LoginProfile(name="small", rate_per_s=3.0, description="small OVAs, upper end of Cisco's 1.5-3 users/s"),
    LoginProfile(name="small-conservative", rate_per_s=1.5, description="small OVAs, lower end of 1.5-3 users/s"),
    LoginProfile(name="15k-active-standby", rate_per_s=6.0, description="15k-user OVA, active/standby"),
    LoginProfile(name="15k-active-active", rate_per_s=15.0, description="15k-user OVA, active/active"),
    LoginProfile(name="25k", rate_per_s=8.5, description="25k-user OVA (Cisco: ~8-9 users/s)"),
    LoginProfile(name="push", rate_per_s=4.0, description="push-notification guidance cap"),
)}


class Risk(enum.Enum):
    """Outcome of keeping the current limits."""

    WITHIN_CAPACITY = "within capacity"
    OVERLOAD = "overload: login storm expected"


@dataclass(frozen=True, kw_only=True, slots=True)
class CurrentRisk:
    """What the current limits would do.

    Attributes:
        lower_s, upper_s: the current limits (s).
        rate_per_s: expected re-login rate users / (upper - lower).
        ratio: rate_per_s / capacity (> 1 = storm).
        risk: the outcome.
        max_users: users the current window holds at the capacity.
        extra_wait_s: current upper minus the planned upper (> 0: clients wait longer than needed).
        notes: further warnings (lower below the Critical Service Delay ...).
    """

    lower_s: float
    upper_s: float
    rate_per_s: float
    ratio: float
    risk: Risk
    max_users: float
    extra_wait_s: float
    notes: tuple[str, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class Plan:
    """Limits Cisco's rule gives, the expected wave and the risk of the current limits.

    ``upper_s`` is ``upper_exact_s`` rounded up to whole seconds (the admin page takes integers).
    """

    users: int
    rate_per_s: float
    profile: str | None
    critical_service_delay_s: float
    lower_s: float
    upper_exact_s: float
    upper_s: float
    expected_rate_per_s: float
    busiest_second_estimate: int
    all_back_s: float
    current: CurrentRisk | None


def _busiest_second(rate: float, window_s: float) -> int:
    """Poisson estimate of the busiest 1 s among ``window_s`` seconds at mean ``rate``."""
    seconds = max(1.0, window_s)
    return int(stats.poisson.ppf(1.0 - 1.0 / (2.0 * seconds), rate))


def plan(users: int, rate: float | None = None, profile: str | None = None, *, lower: float | None = None,
         critical_service_delay_s: float = DEFAULT_CRITICAL_SERVICE_DELAY_S,
         current_lower: float | None = None, current_upper: float | None = None) -> Plan:
    """Plan re-login limits for ``users`` clients of one node.

    Args:
        users: users that re-login in one HA event (those of the failed node), > 0.
        rate: sustainable re-login rate (users/s); or give ``profile``.
        profile: a name of ``PROFILES`` (used when ``rate`` is None).
        lower: Client Re-Login Lower Limit (s); default max(120, Critical Service Delay).
        critical_service_delay_s: the Critical Service Delay (s); ``lower`` must be >= it.
        current_lower, current_upper: limits in force now (s), both or neither.
    Returns:
        The plan.
    Raises:
        PlannerError: users <= 0, no or bad rate, unknown profile, lower below the Critical
            Service Delay, only one current limit, current upper <= lower.
    """
    if users <= 0:
        raise PlannerError("users", users, "must be > 0")
    if rate is None:
        if profile is None:
            raise PlannerError("rate", rate, "give a rate (users/s) or a login profile")
        if profile not in PROFILES:
            raise PlannerError("profile", profile, f"unknown; known: {', '.join(PROFILES)}")
        rate = PROFILES[profile].rate_per_s
    if not rate > 0 or not math.isfinite(rate):
        raise PlannerError("rate", rate, "must be a finite rate > 0 users/s")
    if critical_service_delay_s < 0:
        raise PlannerError("critical_service_delay_s", critical_service_delay_s, "must be >= 0")
    if lower is None:
        lower = max(DEFAULT_LOWER_S, critical_service_delay_s)
    if lower < critical_service_delay_s:
        raise PlannerError("lower", lower, f"below the Critical Service Delay {critical_service_delay_s:g} s "
                           "(Cisco: lower limit >= Critical Service Delay)")
    upper_exact = lower + users / rate
    upper = float(math.ceil(upper_exact - 1e-9))
    expected = users / (upper - lower)
    current = None
    if (current_lower is None) != (current_upper is None):
        raise PlannerError("current_lower/current_upper", (current_lower, current_upper), "give both or neither")
    if current_lower is not None and current_upper is not None:
        if current_upper <= current_lower:
            raise PlannerError("current_upper", current_upper, f"must be > current lower {current_lower:g}")
        cur_rate = users / (current_upper - current_lower)
        notes = []
        if current_lower < critical_service_delay_s:
            notes.append(f"current lower {current_lower:g} s is below the Critical Service Delay "
                         f"{critical_service_delay_s:g} s: clients may return before the failover completes")
        ratio = cur_rate / rate
        if ratio > 1:
            notes.append(f"raise the upper limit to at least {upper:g} s (or lower the users per node "
                         f"to {rate * (current_upper - current_lower):.0f})")
        current = CurrentRisk(
            lower_s=current_lower, upper_s=current_upper, rate_per_s=cur_rate, ratio=ratio,
            risk=Risk.OVERLOAD if ratio > 1 else Risk.WITHIN_CAPACITY,
            max_users=rate * (current_upper - current_lower), extra_wait_s=current_upper - upper,
            notes=tuple(notes))
    return Plan(users=users, rate_per_s=rate, profile=profile, critical_service_delay_s=critical_service_delay_s,
                lower_s=lower, upper_exact_s=upper_exact, upper_s=upper, expected_rate_per_s=expected,
                busiest_second_estimate=_busiest_second(expected, upper - lower), all_back_s=upper,
                current=current)


def plot_plan(p: Plan, path: Path) -> None:
    """Draw the expected wave (planned and current limits) against the capacity into a PNG.

    Args:
        p: the plan.
        path: output file (PNG).
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.5))
    ax = fig.subplots()
    horizon = max(p.upper_s, p.current.upper_s if p.current else 0.0) * 1.1
    ax.plot([0, p.lower_s, p.lower_s, p.upper_s, p.upper_s, horizon],
            [0, 0, p.expected_rate_per_s, p.expected_rate_per_s, 0, 0], color="#2a9d8f", linewidth=3.2, zorder=3,
            label=f"planned {p.lower_s:g}/{p.upper_s:g} s: {p.expected_rate_per_s:.2f} re-logins/s")
    if p.current is not None:
        c = p.current
        ax.plot([0, c.lower_s, c.lower_s, c.upper_s, c.upper_s, horizon], [0, 0, c.rate_per_s, c.rate_per_s, 0, 0],
                color="#e76f51", linewidth=2.2, linestyle="--", zorder=4,
                label=f"current {c.lower_s:g}/{c.upper_s:g} s: {c.rate_per_s:.2f} re-logins/s ({c.risk.value})")
    ax.axhline(p.rate_per_s, color="#d62828", linewidth=1.5, linestyle="-.", zorder=5,
               label=f"server capacity {p.rate_per_s:g} users/s" + (f" (profile {p.profile})" if p.profile else ""))
    ax.axvline(p.critical_service_delay_s, color="#555555", linestyle=":",
               label=f"Critical Service Delay {p.critical_service_delay_s:g} s")
    top = max(p.rate_per_s, p.expected_rate_per_s, p.current.rate_per_s if p.current else 0.0)
    ax.set_ylim(0, top * 1.3)
    ax.set_xlim(0, horizon)
    back = ax.twinx()
    back.plot([0, p.lower_s, p.upper_s, horizon], [0, 0, 100, 100], color="#2a9d8f", linewidth=1, linestyle=":",
              label="planned: clients back (%)")
    if p.current is not None:
        back.plot([0, p.current.lower_s, p.current.upper_s, horizon], [0, 0, 100, 100], color="#e76f51",
                  linewidth=1, linestyle=":", label="current: clients back (%)")
    back.set_ylim(0, 130)
    back.set_ylabel("clients back (% of users, dotted)")
    back.legend(loc="upper left", fontsize=8)
    ax.set_xlabel("time since the HA event (s)")
    ax.set_ylabel("expected re-logins per second")
    ax.set_title(f"Expected re-login wave for {p.users} users (waits uniform in [lower, upper])")
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(True, alpha=0.3)
    fig.savefig(path, format="png", dpi=100, bbox_inches="tight")


def _table(p: Plan) -> list[str]:
    src = f"profile {p.profile}" if p.profile else "given"
    rows = [
        ("users per node (re-login in one HA event)", f"{p.users}"),
        ("server re-login capacity", f"{p.rate_per_s:g} users/s ({src})"),
        ("Critical Service Delay", f"{p.critical_service_delay_s:g} s"),
        ("Client Re-Login Lower Limit", f"{p.lower_s:g} s"),
        ("Client Re-Login Upper Limit", f"{p.upper_s:g} s  (lower + users/rate = {p.upper_exact_s:.1f} s)"),
        ("expected re-login rate", f"{p.expected_rate_per_s:.2f} users/s, from {p.lower_s:g} s to {p.upper_s:g} s"),
        ("busiest second (Poisson estimate)", f"~{p.busiest_second_estimate} logins"),
        ("all clients back after", f"~{p.all_back_s:g} s (+ one login time)"),
    ]
    if p.current is not None:
        c = p.current
        rows += [
            ("current limits", f"{c.lower_s:g} / {c.upper_s:g} s"),
            ("current re-login rate", f"{c.rate_per_s:.2f} users/s = {c.ratio:.2f} x capacity"),
            ("risk with current limits", c.risk.value.upper()),
            ("users the current window holds", f"{c.max_users:.0f} at {p.rate_per_s:g} users/s"),
            ("current upper vs planned", f"{c.extra_wait_s:+.0f} s"),
        ]
        rows += [("note", n) for n in c.notes]
    width = max(len(k) for k, _ in rows)
    return [f"{k.ljust(width)}  {v}" for k, v in rows]


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """Add the ``plan`` arguments to ``parser`` (or a new one) for the console script."""
    p = parser or argparse.ArgumentParser(prog="jabberemu plan", description="Plan Cisco IM&P re-login limits.")
    p.add_argument("--users", type=int, required=True, help="users per node that re-login in one HA event")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--rate", type=float, help="server re-login capacity, users/s")
    g.add_argument("--login-profile", choices=sorted(PROFILES), help="Cisco HA login profile")
    p.add_argument("--lower", type=float, default=None, help="lower limit in s (default max(120, CSD))")
    p.add_argument("--critical-service-delay", type=float, default=DEFAULT_CRITICAL_SERVICE_DELAY_S,
                   metavar="S", help="Critical Service Delay in s (default 90)")
    p.add_argument("--current-lower", type=float, default=None, metavar="S", help="lower limit in force now (s)")
    p.add_argument("--current-upper", type=float, default=None, metavar="S", help="upper limit in force now (s)")
    p.add_argument("--plot", type=Path, default=None, metavar="FILE", help="draw the expected wave to a PNG")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry: ``jabberemu plan --users N (--rate R | --login-profile NAME) ...``.

    Returns:
        0, or 2 on impossible input.
    """
    return run(build_parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Run ``jabberemu plan`` from arguments parsed by :func:`build_parser` (for a CLI subcommand).

    Returns:
        The exit code, as :func:`main`.
    """
    try:
        result = plan(args.users, args.rate, args.login_profile, lower=args.lower,
                      critical_service_delay_s=args.critical_service_delay,
                      current_lower=args.current_lower, current_upper=args.current_upper)
    except ReportError as exc:
        print(f"jabberemu plan: {exc}", file=sys.stderr)
        return 2
    print("\n".join(_table(result)))
    if args.plot is not None:
        plot_plan(result, args.plot)
        print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
