"""The drill's plan (pure): which steps a ``--fault`` scenario takes and when, how long each phase is
given to settle (from the login model), and the checks of the drill's numbers before anything starts.

``jabberemu.drill`` runs the plan; the steps are ``--drill`` items of the one action vocabulary
(``jabberemu.rundata.actions``). Imports: the standard library and the
throttle model (``jabberemu.throttle``) only.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

__all__ = ["CRITICAL_SERVICE", "DEMO_LOGIN_RATE", "FAULTS", "MIN_SETTLE_S", "RESTART_SLACK_S", "WAVE_GAP_S",
           "DrillPlan", "Fault", "plan_drill", "predicted_last_recovery_s", "settle_time", "validate"]


class Fault(enum.Enum):
    """What the drill does to node 1 (docs/srm.md for the SRM's answer to each)."""

    FAILOVER = "failover"  # admin Failover, later Fallback
    SERVICE_DOWN = "service-down"  # critical service stopped past the Critical Service Delay, restarted, Fallback
    NODE_KILL = "node-kill"  # SIGKILL; peer takes over on heartbeat timeout; restart -> Failed Over; Fallback
    PARTITION = "partition"  # heartbeats cut both ways: split ownership; heal -> Failed Mode; Recover


FAULTS = tuple(f.value for f in Fault)
"""Fault names for ``--fault``."""

CRITICAL_SERVICE = "presence-engine"

DEMO_LOGIN_RATE = 100.0
"""The demo's login capacity per node (logins/s): enforced by the mock and declared to the verdict, so
the demo's PASS is earned against a throttled server (2,000 clients, limits 5/25 s: a wave of 1,000
re-logins at 50/s on average, ~70/s in its busiest second)."""

WAVE_GAP_S = 5.0
"""The report's wave gap (``jabberemu.report.waves.DEFAULT_GAP_S``; a test keeps them equal): HA
events further apart start a new wave, so two phases of the drill must be further apart than this,
plus the second or so a node takes to drop its sessions."""

MIN_SETTLE_S = WAVE_GAP_S + 2.0
"""Shortest settle window, so that the failover and the fallback waves are reported apart."""

RESTART_SLACK_S = 5.0
"""Seconds between a node restart and the Fallback: the process start and the Initializing ->
Failed Over step (docs/srm.md, Initialization: hearing its peer in backup mode)."""


@dataclass(frozen=True, kw_only=True)
class DrillPlan:
    """When each phase happens, in seconds after every client is signed in (``ready``).

    Attributes:
        actions: ``ACTION@ready+T`` items for the locustfile's ``--drill`` option, the last one ``stop``.
        fault_at_s: when the fault is injected (after ready).
        settle_s: the window each wave gets (:func:`settle_time`).
        end_s: the end of the last settle window (after ready): the ``stop`` action.
        run_time_s: Locust ``-t``, a bound in case the clients never all sign in: three times the
            ramp, plus 30 s, plus ``end_s``.
        predicted_last_s: the model's last recovery of a wave after its HA event (p95 across
            replicas), None when not predicted.
    """

    actions: tuple[str, ...]
    fault_at_s: float
    settle_s: float
    end_s: float
    run_time_s: float
    predicted_last_s: float | None = None

    def __post_init__(self) -> None:
        if not self.actions or not self.fault_at_s < self.end_s < self.run_time_s or self.settle_s <= 0:
            raise ValueError(f"inconsistent drill plan {self!r}")


def plan_drill(
    *,
    clients: int,
    ramp: float,
    lower_s: float,
    upper_s: float,
    fault: Fault,
    node: str,
    hold_s: float,
    margin_s: float,
    critical_service_delay_s: float,
    heartbeat_timeout_s: float,
    init_heartbeat_timeout_s: float = 3.0,
    predicted_last_s: float | None = None,
) -> DrillPlan:
    """Lay the drill's phases on the load clock (pure).

    The fault comes ``hold_s`` after every client is signed in (``ready``: on a busy machine the ramp
    takes longer than ``clients / ramp``, and a fault during the ramp tests something else); every phase that makes clients re-login
    gets ``settle_s`` before the next one. The last action brings the pair back to Normal | Normal:
    Fallback after a failover (pressed on the failed node, docs/srm.md), after the critical service is
    back (Failed Over with Critical Services not Running -> Failed Over), after the killed node came
    back (a restarted node hearing its peer in backup mode comes up Failed Over); Recover after a healed
    partition (split ownership leaves both in Running in Failed Mode until Recover).

    Args:
        clients: emulated clients; ramp: logins/s while spawning; hold_s: steady state before the fault.
        lower_s, upper_s: the re-login limits the pair hands out.
        fault: what happens to ``node`` (node 1).
        margin_s: extra seconds after ``upper`` for a wave to settle.
        critical_service_delay_s, heartbeat_timeout_s, init_heartbeat_timeout_s: the pair's SRM timers.
        predicted_last_s: when the model expects the last client of a wave back after its HA event
            (:func:`predicted_last_recovery_s`); a wave gets at least that plus ``margin_s``.

    Returns:
        The plan.

    Raises:
        ValueError: numbers out of range (message names the option).
    """
    problems = validate(clients=clients, ramp=ramp, lower_s=lower_s, upper_s=upper_s, hold_s=hold_s, margin_s=margin_s)
    if problems:
        raise ValueError(problems[0])
    settle = settle_time(upper_s=upper_s, margin_s=margin_s, predicted_last_s=predicted_last_s)
    t = hold_s
    acts: list[str] = []
    if fault is Fault.FAILOVER:
        acts += [f"failover:{node}@{t:.1f}", f"fallback:{node}@{t + settle:.1f}"]
        end = t + 2 * settle
    elif fault is Fault.SERVICE_DOWN:
        t_over = t + critical_service_delay_s  # automatic failover when the delay expires
        acts += [
            f"service-stop:{node}:{CRITICAL_SERVICE}@{t:.1f}",
            f"service-start:{node}:{CRITICAL_SERVICE}@{t_over + 1.0:.1f}",
            f"fallback:{node}@{t_over + settle:.1f}",
        ]
        end = t_over + 2 * settle
    elif fault is Fault.NODE_KILL:
        t_back = t + heartbeat_timeout_s + settle  # the peer takes over on its heartbeat timeout
        t_fallback = t_back + max(RESTART_SLACK_S, init_heartbeat_timeout_s + 2.0)
        acts += [f"kill:{node}@{t:.1f}", f"restart:{node}@{t_back:.1f}", f"fallback:{node}@{t_fallback:.1f}"]
        end = t_fallback + settle
    else:  # partition: both nodes take over (split ownership, nobody's session drops), heal, Recover
        t_heal = t + heartbeat_timeout_s + 3.0
        acts += [f"partition@{t:.1f}", f"heal@{t_heal:.1f}", f"recover@{t_heal + 2.0:.1f}"]
        end = t_heal + 2.0 + settle
    acts = [item.replace("@", "@ready+") for item in acts]
    end = round(end + 1.0, 1)
    acts.append(f"stop@ready+{end:.1f}")
    bound = 3.0 * clients / ramp + 30.0 + end
    return DrillPlan(actions=tuple(acts), fault_at_s=round(t, 1), settle_s=settle, end_s=end,
                     run_time_s=float(math.ceil(bound)), predicted_last_s=predicted_last_s)


def settle_time(*, upper_s: float, margin_s: float, predicted_last_s: float | None = None) -> float:
    """Seconds a wave gets before the drill's next phase (our choice).

    ``upper + margin`` when the node keeps up; when the login model predicts a queue that keeps
    clients waiting past ``upper`` (a storm), the model's last recovery plus ``margin``, so the next
    phase (the fallback) does not cut a wave still draining and the report judges whole waves.
    Never less than ``MIN_SETTLE_S``, so the report tells the waves apart.
    """
    last = predicted_last_s if predicted_last_s is not None and math.isfinite(predicted_last_s) else 0.0
    return round(max(upper_s + margin_s, last + margin_s, MIN_SETTLE_S), 1)


def predicted_last_recovery_s(*, clients: int, lower_s: float, upper_s: float, soap_timeout_s: float,
                              rate_per_s: float | None, burst: int = 1, workers: int | None = None,
                              service_ms: float = 0.0, queue: int | None = None,
                              active_standby: bool = False) -> float | None:
    """When the one login model (``jabberemu.throttle``) expects the last client of a wave back after
    its HA event: the p95 across replicas of the wave's last recovery, for the movers (half the clients
    of a Balanced pair, all of them when ``active_standby``) on a node with this login model; None when
    there is nothing to predict.
    """
    from jabberemu.throttle import ModelInputError, ServerModel, WaveKind, WaveSpec, simulate

    movers = clients if active_standby else clients // 2
    if movers < 1 or rate_per_s is None and workers is None:
        return None
    try:
        wave = WaveSpec(clients=movers, kind=WaveKind.FAILOVER, lower_s=max(lower_s, 1e-3),
                        upper_s=max(upper_s, lower_s, 1e-3), soap_timeout_s=soap_timeout_s)
        server = ServerModel(rate_per_s=rate_per_s or None, burst=burst, workers=workers,
                             service_s=service_ms / 1000.0, queue_limit=queue)
        last = simulate(wave, server, replicas=20, seed=0).bands.recovery_max_s.p95
    except ModelInputError:
        return None
    return float(last) if math.isfinite(last) else None


def validate(*, clients: int, ramp: float, lower_s: float, upper_s: float, hold_s: float = 0.0,
             margin_s: float = 0.0, processes: int = 1, login_rate: float | None = None,
             timers: dict[str, float] | None = None) -> list[str]:
    """Check the drill's numbers; returns one message per problem, naming the option (empty: fine)."""
    problems = []
    if clients < 1:
        problems.append(f"--clients must be at least 1, not {clients}")
    if not ramp > 0:
        problems.append(f"--ramp must be > 0 logins/s, not {ramp:g}")
    if lower_s < 0:
        problems.append(f"--lower must be >= 0 s, not {lower_s:g}")
    if upper_s < lower_s:
        problems.append(f"--upper ({upper_s:g} s) must be >= --lower ({lower_s:g} s)")
    if hold_s < 0:
        problems.append(f"--hold must be >= 0 s, not {hold_s:g}")
    if margin_s < 0:
        problems.append(f"--margin must be >= 0 s, not {margin_s:g}")
    if processes < 1:
        problems.append(f"--processes must be at least 1, not {processes}")
    if login_rate is not None and login_rate < 0:
        problems.append(f"--login-rate must be >= 0 logins/s (0 = unlimited), not {login_rate:g}")
    for name, value in (timers or {}).items():
        if not value > 0:
            problems.append(f"--{name} must be > 0 s, not {value:g}")
    return problems
