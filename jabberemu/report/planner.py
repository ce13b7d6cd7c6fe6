"""``jabberemu plan``: the Client Re-Login Upper Limit a node's login capacity needs, from the model.

The one model of a re-login wave (``jabberemu.throttle``; docs/login-model.md) recommends the
smallest upper limit for a given lower limit such that, with probability >= ``probability`` (99 %),
no client is refused or times out and the wave's p99 login wait stays within ``max_wait_s``: the
same criterion the verdict judges a run by, so that a drill with the planned window can PASS and a
narrower one that makes clients time out FAILs. Cisco's rule ``upper = lower + users / rate`` (IM&P
12.5(1), "High Availability Login Profiles") is shown beside it: it spreads the users at exactly
the capacity, which a node with a queue absorbs only partly (a 1 s window of a uniform wave holds
~1.4x the mean).

The server: a Cisco HA login profile (a sustainable rate per server size) or explicit numbers (rate,
burst, logins in service at once, service time, queue limit: the mock's login model), and the
clients' SOAP timeout. The Lower Limit must be at least the Critical Service Delay (Cisco), so that
clients do not come back before the failover has finished.

For the limits in force now (``--current-lower/--current-upper``) it shows what the model predicts:
the queue peak, the slowest login, clients at risk (refused or timed out), GAVE_UP, each with its
p5-p95 band, and the probability of a clean wave. ``--plot`` draws the predicted wave(s).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jabberemu.report.errors import PlannerError, ReportError
from jabberemu.throttle import (
    DEFAULT_MAX_WAIT_P99_S,
    DEFAULT_PROBABILITY,
    DEFAULT_SOAP_TIMEOUT_S,
    Band,
    InfeasiblePlan,
    PlanCriteria,
    ServerModel,
    ThrottleError,
    UpperPlan,
    WaveKind,
    WaveSpec,
    WhatIf,
    plan_upper,
    what_if,
)

__all__ = [
    "DEFAULT_CRITICAL_SERVICE_DELAY_S",
    "DEFAULT_LOWER_S",
    "PROFILES",
    "CurrentLimits",
    "LoginProfile",
    "Plan",
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


@dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class CurrentLimits:
    """What the limits in force now would do, as the model predicts it.

    Attributes:
        lower_s, upper_s: the current limits (s).
        prediction: queue peak, slowest login, clients at risk, GAVE_UP (bands), P(clean wave).
        safe: the criterion holds (P(clean and p99 wait <= bound) >= probability).
        probability_ok: that probability (the fraction of the model's replicas that pass).
        notes: further warnings (lower below the Critical Service Delay ...).
    """

    lower_s: float
    upper_s: float
    prediction: WhatIf
    safe: bool
    probability_ok: float
    notes: tuple[str, ...]


@dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class Plan:
    """The recommended limits and what they, and the current ones, would do.

    Attributes:
        users, server, profile, critical_service_delay_s, soap_timeout_s, max_wait_s, probability:
            the inputs.
        lower_s, upper_s: the recommended limits (s).
        cisco_upper_s: Cisco's rule ``lower + users / rate`` rounded up (None: unlimited capacity).
        upper: the model's search result (probability at the plan and one step below, wait band).
        at_plan: what the model predicts at the recommended limits.
        current: the same for the limits in force now, or None.
    """

    users: int
    server: ServerModel
    profile: str | None
    critical_service_delay_s: float
    soap_timeout_s: float
    max_wait_s: float
    probability: float
    lower_s: float
    upper_s: float
    cisco_upper_s: float | None
    upper: UpperPlan
    at_plan: WhatIf
    current: CurrentLimits | None


def _passes(result: WhatIf, max_wait_s: float, service_s: float) -> float:
    """Fraction of the model's replicas with no client refused or timed out and p99 wait <= bound."""
    stats = result.result.per_replica
    ok = (stats.clients_at_risk == 0) & ~(stats.wait_p99_s + service_s > max_wait_s)
    return float(ok.mean())


def plan(users: int, rate: float | None = None, profile: str | None = None, *, lower: float | None = None,
         critical_service_delay_s: float = DEFAULT_CRITICAL_SERVICE_DELAY_S,
         current_lower: float | None = None, current_upper: float | None = None,
         burst: int = 1, workers: int | None = None, service_ms: float = 0.0, queue: int | None = None,
         soap_timeout_s: float = DEFAULT_SOAP_TIMEOUT_S, max_wait_s: float = DEFAULT_MAX_WAIT_P99_S,
         probability: float = DEFAULT_PROBABILITY, replicas: int = 200, seed: int = 0) -> Plan:
    """Plan the re-login limits for ``users`` clients of one node.

    Args:
        users: users that re-login in one HA event (those of the failed node), > 0.
        rate: sustainable login rate of the node (logins/s); or give ``profile``.
        profile: a name of :data:`PROFILES` (used when ``rate`` is None).
        lower: Client Re-Login Lower Limit (s); default max(120, Critical Service Delay).
        critical_service_delay_s: the Critical Service Delay (s); ``lower`` must be >= it.
        current_lower, current_upper: limits in force now (s), both or neither.
        burst, workers, service_ms, queue: the rest of the node's login model (docs/login-model.md).
        soap_timeout_s: the clients' SOAP timeout (s).
        max_wait_s: bound on the wave's p99 login wait (s), the verdict's.
        probability: how often a wave must be clean.
        replicas, seed: the model's replicas and seed (the same inputs give the same plan).

    Returns:
        The plan.

    Raises:
        PlannerError: users <= 0, no or bad rate, unknown profile, lower below the Critical Service
            Delay, only one current limit, current upper < lower, a server model the model refuses,
            or no upper limit meets the criterion (e.g. the SOAP timeout shorter than the service).
    """
    if users <= 0:
        raise PlannerError("users", users, "must be > 0")
    if rate is None:
        if profile is None:
            raise PlannerError("rate", rate, "give a rate (logins/s) or a login profile")
        if profile not in PROFILES:
            raise PlannerError("profile", profile, f"unknown; known: {', '.join(PROFILES)}")
        rate = PROFILES[profile].rate_per_s
    if not rate > 0 or not math.isfinite(rate):
        raise PlannerError("rate", rate, "must be a finite rate > 0 logins/s")
    if critical_service_delay_s < 0:
        raise PlannerError("critical_service_delay_s", critical_service_delay_s, "must be >= 0")
    if lower is None:
        lower = max(DEFAULT_LOWER_S, critical_service_delay_s)
    if lower < critical_service_delay_s:
        raise PlannerError("lower", lower, f"below the Critical Service Delay {critical_service_delay_s:g} s "
                           "(Cisco: lower limit >= Critical Service Delay)")
    if (current_lower is None) != (current_upper is None):
        raise PlannerError("current_lower/current_upper", (current_lower, current_upper), "give both or neither")
    if current_lower is not None and current_upper is not None and current_upper < current_lower:
        raise PlannerError("current_upper", current_upper, f"must be >= current lower {current_lower:g}")
    try:
        server = ServerModel(rate_per_s=rate, burst=burst, workers=workers, service_s=service_ms / 1000.0,
                             queue_limit=queue)
        criteria = PlanCriteria(probability=probability, max_wait_p99_s=max(0.0, max_wait_s - server.service_s))
        upper = plan_upper(users, lower, server, soap_timeout_s=soap_timeout_s, criteria=criteria,
                           replicas=replicas, seed=seed)
        at_plan = what_if(WaveSpec(clients=users, kind=WaveKind.FAILOVER, lower_s=lower, upper_s=upper.upper_s,
                                   soap_timeout_s=soap_timeout_s), server, replicas=replicas, seed=seed)
        current = None
        if current_lower is not None and current_upper is not None:
            current = _current(users, server, current_lower, current_upper, soap_timeout_s, max_wait_s, probability,
                               critical_service_delay_s, upper.upper_s, replicas, seed)
    except InfeasiblePlan as exc:
        raise PlannerError("server", rate, str(exc)) from exc
    except ThrottleError as exc:
        raise PlannerError(getattr(exc, "argument", "server"), getattr(exc, "value", None), str(exc)) from exc
    cisco = upper.cisco_rule_upper_s
    return Plan(users=users, server=server, profile=profile, critical_service_delay_s=critical_service_delay_s,
                soap_timeout_s=soap_timeout_s, max_wait_s=max_wait_s, probability=probability, lower_s=lower,
                upper_s=upper.upper_s, cisco_upper_s=float(math.ceil(cisco - 1e-9)) if cisco is not None else None,
                upper=upper, at_plan=at_plan, current=current)


def _current(users: int, server: ServerModel, lower: float, upper: float, timeout_s: float, max_wait_s: float,
             probability: float, csd_s: float, planned_upper: float, replicas: int, seed: int) -> CurrentLimits:
    prediction = what_if(WaveSpec(clients=users, kind=WaveKind.FAILOVER, lower_s=lower, upper_s=upper,
                                  soap_timeout_s=timeout_s), server, replicas=replicas, seed=seed)
    ok = _passes(prediction, max_wait_s, server.service_s)
    notes = []
    if lower < csd_s:
        notes.append(f"current lower {lower:g} s is below the Critical Service Delay {csd_s:g} s: clients may "
                     "return before the failover completes")
    if ok < probability:
        notes.append(f"raise the upper limit to at least {planned_upper:g} s")
    elif upper > planned_upper:
        notes.append(f"clients wait up to {upper - planned_upper:g} s longer than the server needs")
    return CurrentLimits(lower_s=lower, upper_s=upper, prediction=prediction, safe=ok >= probability,
                         probability_ok=ok, notes=tuple(notes))


def _band(b: Band, fmt: str = "{:.0f}", unit: str = "") -> str:
    if math.isnan(b.median):
        return "-"
    return f"{fmt.format(b.median)}{unit} (p5-p95 {fmt.format(b.p5)}-{fmt.format(b.p95)}{unit})"


def _server_text(p: Plan) -> str:
    s = p.server
    parts = [f"{s.rate_per_s:g} logins/s" + (f" (profile {p.profile})" if p.profile else "")]
    if s.burst != 1:
        parts.append(f"burst {s.burst}")
    if s.workers is not None:
        parts.append(f"{s.workers} in service at once")
    if s.service_s:
        parts.append(f"{s.service_s * 1000:g} ms each")
    parts.append(f"queue {s.queue_limit}" if s.queue_limit is not None else "unbounded queue")
    return ", ".join(parts)


def _prediction_rows(label: str, w: WhatIf) -> list[tuple[str, str]]:
    return [
        (f"{label}: queue peak", _band(w.queue_peak, unit=" logins")),
        (f"{label}: slowest login", _band(w.slowest_login_s, "{:.1f}", " s")),
        (f"{label}: last client back after", _band(w.recovery_max_s, "{:.0f}", " s")),
        (f"{label}: clients at risk (refused or timed out)", _band(w.clients_at_risk)),
        (f"{label}: clients that give up", _band(w.gave_up)),
    ]


def _table(p: Plan) -> list[str]:
    rows = [
        ("users per node (re-login in one HA event)", f"{p.users}"),
        ("server login model", _server_text(p)),
        ("clients' SOAP timeout", f"{p.soap_timeout_s:g} s"),
        ("Critical Service Delay", f"{p.critical_service_delay_s:g} s"),
        ("criterion", f"P(no client refused or timed out, p99 login wait <= {p.max_wait_s:g} s) >= "
                      f"{p.probability:.0%}"),
        ("Client Re-Login Lower Limit", f"{p.lower_s:g} s"),
        ("Client Re-Login Upper Limit", f"{p.upper_s:g} s  (model; P = {p.upper.probability_pass:.1%}"
                                        + (f", {p.upper.probability_pass_below:.1%} one second below"
                                           if p.upper.probability_pass_below is not None else "") + ")"),
        ("Cisco's rule lower + users/rate", f"{p.cisco_upper_s:g} s" if p.cisco_upper_s is not None else "-"),
        ("expected mean re-login rate", f"{p.users / (p.upper_s - p.lower_s):.2f} logins/s"),
        *_prediction_rows("planned", p.at_plan),
    ]
    if p.current is not None:
        c = p.current
        rows += [
            ("current limits", f"{c.lower_s:g} / {c.upper_s:g} s"),
            ("current limits: verdict", ("SAFE" if c.safe else "AT RISK")
             + f" (P = {c.probability_ok:.1%} against {p.probability:.0%})"),
            *_prediction_rows("current", c.prediction),
        ]
        rows += [("note", n) for n in c.notes]
    width = max(len(k) for k, _ in rows)
    return [f"{k.ljust(width)}  {v}" for k, v in rows]


def plot_plan(p: Plan, path: Path) -> None:
    """Draw the predicted wave at the planned (and the current) limits: demand, served and the queue
    with their p5-p95 bands, against the capacity, and the clients back over time.

    Args:
        p: the plan.
        path: output file (PNG).
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 6.5))
    ax, axq = fig.subplots(2, 1, sharex=True)
    for label, w, colour in (("planned", p.at_plan, "#2a9d8f"),
                             *((("current", p.current.prediction, "#e76f51"),) if p.current else ())):
        r = w.result
        t = r.time_s + r.bin_s / 2
        k = max(1, int(round((r.wave.upper_s - r.wave.lower_s) / 60.0)))  # a long wave: k-second averages
        avg = f"{k} s average, " if k > 1 else ""
        demand = r.closed_form.round1_demand  # exact: Binomial(N, p) per bin (round one)
        ax.fill_between(t, _smooth(demand.p5, k), _smooth(demand.p95, k), color=colour, alpha=0.18)
        ax.plot(t, _smooth(demand.mean, k), color=colour, linewidth=1.2, linestyle="--",
                label=f"{label} {r.wave.lower_s:g}/{r.wave.upper_s:g} s: demand ({avg}mean, p5-p95)")
        ax.plot(t, _smooth(r.serving.served.mean, k), color=colour, linewidth=2.2,
                label=f"{label}: served ({avg}mean)")
        axq.fill_between(t, r.serving.queue_depth.p5, r.serving.queue_depth.p95, color=colour, alpha=0.18)
        axq.plot(t, r.serving.queue_depth.median, color=colour, linewidth=2, label=f"{label}: logins waiting")
    if p.server.rate_per_s is not None:
        ax.axhline(p.server.rate_per_s, color="#d62828", linewidth=1.5, linestyle="-.",
                   label=f"capacity {p.server.rate_per_s:g} logins/s" + (f" ({p.profile})" if p.profile else ""))
    ax.axvline(p.critical_service_delay_s, color="#555555", linestyle=":",
               label=f"Critical Service Delay {p.critical_service_delay_s:g} s")
    ax.set_ylabel("logins per second")
    ax.set_title(f"Predicted re-login wave for {p.users} users (model, {p.at_plan.result.replicas} replicas)")
    axq.set_ylabel("logins waiting")
    axq.set_xlabel("time since the HA event (s)")
    for a in (ax, axq):
        a.set_ylim(bottom=0)
        a.grid(True, alpha=0.3)
        a.legend(loc="upper right", fontsize=8)
    fig.savefig(path, format="png", dpi=100, bbox_inches="tight")


def _smooth(values: Any, k: int) -> Any:
    """A centred moving average over ``k`` bins (the values themselves when k = 1)."""
    if k <= 1:
        return values
    import numpy as np

    return np.convolve(values, np.ones(k) / k, mode="same")


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """Add the ``plan`` arguments to ``parser`` (or a new one) for the console script."""
    p = parser or argparse.ArgumentParser(prog="jabberemu plan", description="Plan Cisco IM&P re-login limits.")
    p.add_argument("--users", type=int, required=True, help="users per node that re-login in one HA event")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--rate", type=float, help="the node's sustainable login rate, logins/s")
    g.add_argument("--login-profile", choices=sorted(PROFILES), help="Cisco HA login profile")
    p.add_argument("--lower", type=float, default=None, help="lower limit in s (default max(120, CSD))")
    p.add_argument("--critical-service-delay", type=float, default=DEFAULT_CRITICAL_SERVICE_DELAY_S,
                   metavar="S", help="Critical Service Delay in s (default 90)")
    p.add_argument("--current-lower", type=float, default=None, metavar="S", help="lower limit in force now (s)")
    p.add_argument("--current-upper", type=float, default=None, metavar="S", help="upper limit in force now (s)")
    m = p.add_argument_group("the node's login model (docs/login-model.md) and the clients")
    m.add_argument("--burst", type=int, default=1, help="logins that may start back to back (default 1)")
    m.add_argument("--workers", type=int, default=None, help="logins in service at once (default: unlimited)")
    m.add_argument("--service-ms", type=float, default=0.0, help="milliseconds one login takes (default 0)")
    m.add_argument("--queue", type=int, default=None, help="logins that may wait (default: unbounded)")
    m.add_argument("--soap-timeout", type=float, default=DEFAULT_SOAP_TIMEOUT_S,
                   help="the clients' SOAP timeout in s (default %(default)s)")
    c = p.add_argument_group("criterion")
    c.add_argument("--max-wait", type=float, default=DEFAULT_MAX_WAIT_P99_S,
                   help="bound on the wave's p99 login wait in s (default %(default)s, the verdict's)")
    c.add_argument("--probability", type=float, default=DEFAULT_PROBABILITY,
                   help="how often a wave must be clean (default %(default)s)")
    p.add_argument("--plot", type=Path, default=None, metavar="FILE", help="draw the predicted wave to a PNG")
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
                      current_lower=args.current_lower, current_upper=args.current_upper, burst=args.burst,
                      workers=args.workers, service_ms=args.service_ms, queue=args.queue,
                      soap_timeout_s=args.soap_timeout, max_wait_s=args.max_wait, probability=args.probability)
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
