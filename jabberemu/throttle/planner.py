"""Plan the Client Re-Login Upper Limit from the model, and ask "what if" of given limits.

**Criterion.** A replica (one simulated wave) *passes* when no client is refused or times out at
the serving node and its p99 queue wait is at most ``max_wait_p99_s``. The plan is the smallest
upper limit (on a grid of ``resolution_s`` above the lower limit) at which at least
``probability`` of the replicas pass.

**Only round 1 matters, on the serving node.** A replica that passes has no failure, hence no
second round and (fallback) no attempt at the other node; so whether a replica passes is decided by
the serving node's admission of the N round-1 arrivals alone, one :class:`NodeQueue` pass.

**Monotone, so bisection is exact.** The waits are common random numbers: one set of sorted
uniforms u per replica, arrivals ``lower + u (upper - lower)``. Raising the upper limit stretches
every gap between arrivals and keeps their order. On a replica without failures the start times are
a max-plus expression ``s_k = max_j (a_j + c_jk)`` with constants c (token bucket, workers), so
every wait ``s_k - a_k = max_j (a_j - a_k + c_jk)`` can only shrink (a_j - a_k <= 0 shrinks), the
number waiting at any arrival can only shrink, and a replica that passes at one upper limit passes
at every larger one. The fraction of passing replicas is therefore non-decreasing in the upper
limit for the fixed draws, and bisection over the grid finds the smallest passing upper exactly,
with the same answer every time for the same seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from jabberemu.throttle.admission import NodeQueue
from jabberemu.throttle.closed_form import cisco_rule_upper_s
from jabberemu.throttle.errors import InfeasiblePlan, ModelInputError
from jabberemu.throttle.model import (
    DEFAULT_REPLICAS,
    DEFAULT_SOAP_TIMEOUT_S,
    AttemptOutcome,
    FloatArray,
    ServerModel,
    WaveKind,
    WaveSpec,
    draw_uniforms,
)
from jabberemu.throttle.summary import DEFAULT_BIN_S, Band, WaveResult, simulate, wilson_interval

__all__ = [
    "DEFAULT_MAX_WAIT_P99_S",
    "DEFAULT_PROBABILITY",
    "PlanCriteria",
    "UpperPlan",
    "WhatIf",
    "plan_upper",
    "what_if",
]

#: Default bound of a wave's p99 login wait (s), the planner's and the verdict's (our choice: Cisco
#: publishes none; a sign-in that waits longer than a couple of seconds in the node's queue is a node
#: that the wave saturated, and a queue that long on a real node means a CPU spike).
DEFAULT_MAX_WAIT_P99_S = 2.0
#: Default probability that a wave is clean.
DEFAULT_PROBABILITY = 0.99
#: The search gives up beyond this many times Cisco's rule window (or this many seconds when the
#: capacity is unbounded).
_MAX_WINDOW_FACTOR = 64.0


@dataclass(frozen=True, kw_only=True, slots=True)
class PlanCriteria:
    """What a planned upper limit must achieve.

    Args:
        probability: fraction of replicas that must pass, in (0, 1].
        max_wait_p99_s: bound of a replica's p99 queue wait (s), >= 0.

    Raises:
        ModelInputError: a value out of range.
    """

    probability: float = DEFAULT_PROBABILITY
    max_wait_p99_s: float = DEFAULT_MAX_WAIT_P99_S

    def __post_init__(self) -> None:
        if not 0 < self.probability <= 1:
            raise ModelInputError("probability", self.probability, "must be in (0, 1]")
        if not (math.isfinite(self.max_wait_p99_s) and self.max_wait_p99_s >= 0):
            raise ModelInputError("max_wait_p99_s", self.max_wait_p99_s, "must be finite and >= 0 s")


@dataclass(frozen=True, kw_only=True, slots=True)
class UpperPlan:
    """The smallest upper limit that meets the criteria.

    Attributes:
        users, lower_s, server, soap_timeout_s, criteria, replicas, seed, resolution_s: the inputs.
        upper_s: the planned upper limit (s).
        probability_pass: fraction of replicas passing at ``upper_s``.
        probability_pass_interval: its Wilson 95 % interval.
        probability_pass_below: fraction passing one step lower, below ``criteria.probability``
            (an upper bound of it when that evaluation stopped early; None when ``upper_s`` is the
            first grid point).
        wait_p99_s: the replicas' p99 queue wait at ``upper_s``, as a band.
        cisco_rule_upper_s: ``lower + users / capacity`` for comparison (None: unbounded capacity).
        evaluations: model passes the search took.
    """

    users: int
    lower_s: float
    server: ServerModel
    soap_timeout_s: float
    criteria: PlanCriteria
    replicas: int
    seed: int
    resolution_s: float
    upper_s: float
    probability_pass: float
    probability_pass_interval: tuple[float, float]
    probability_pass_below: float | None
    wait_p99_s: Band
    cisco_rule_upper_s: float | None
    evaluations: int


@dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class WhatIf:
    """What given limits would do (bands across replicas).

    Attributes:
        queue_peak: most logins waiting at once at the serving node.
        slowest_login_s: the slowest answered login (arrival to answer).
        recovery_max_s: when the last client is back (recovered clients).
        clients_at_risk: clients refused or timed out at least once.
        gave_up: clients that gave up.
        probability_clean, probability_clean_interval: no client refused or timed out.
        result: the whole model result.
    """

    queue_peak: Band
    slowest_login_s: Band
    recovery_max_s: Band
    clients_at_risk: Band
    gave_up: Band
    probability_clean: float
    probability_clean_interval: tuple[float, float]
    result: WaveResult


class _Round1:
    """Pass / fail of every replica at a given upper limit, on fixed sorted uniforms."""

    #: Arrivals per admission call: after each, stop early once too many replicas are unclean (the
    #: fraction reported is then an upper bound of the true one, still below the probability).
    _CHUNK = 2048

    def __init__(self, users: int, lower_s: float, server: ServerModel, timeout_s: float, criteria: PlanCriteria,
                 replicas: int, seed: int) -> None:
        u1, _ = draw_uniforms(replicas, users, seed)
        self.u = np.ascontiguousarray(u1.T)  # (users, replicas), each column sorted
        self.lower_s, self.server, self.timeout_s, self.criteria = lower_s, server, timeout_s, criteria
        self.replicas = replicas
        self.cache: dict[int, tuple[float, FloatArray]] = {}

    def evaluate(self, step: int, resolution_s: float) -> tuple[float, FloatArray]:
        """(fraction passing, p99 wait per replica) at upper = lower + step * resolution."""
        if step not in self.cache:
            arrivals = self.lower_s + self.u * (step * resolution_s)
            queue = NodeQueue(self.server, replicas=self.replicas, soap_timeout_s=self.timeout_s)
            allowed = self.replicas - math.ceil(self.criteria.probability * self.replicas - 1e-9)
            clean = np.ones(self.replicas, dtype=np.bool_)
            waits = np.empty_like(arrivals)
            n = arrivals.shape[0]
            for lo in range(0, n, self._CHUNK):  # the queue keeps its state from chunk to chunk
                part = arrivals[lo:lo + self._CHUNK]
                adm = queue.admit(part)
                clean &= (adm.outcome == AttemptOutcome.ANSWERED).all(axis=0)
                if (~clean).sum() > allowed:  # already too many unclean replicas: fails
                    self.cache[step] = (float(clean.mean()), np.full(self.replicas, np.nan))
                    return self.cache[step]
                waits[lo:lo + self._CHUNK] = np.where(np.isnan(adm.start_s), 0.0, adm.start_s - part)
            p99 = np.quantile(waits, 0.99, axis=0)
            passing = clean & (p99 <= self.criteria.max_wait_p99_s)
            self.cache[step] = (float(passing.mean()), np.where(clean, p99, np.nan))
        return self.cache[step]


def plan_upper(users: int, lower_s: float, server: ServerModel, *,
               soap_timeout_s: float = DEFAULT_SOAP_TIMEOUT_S, criteria: PlanCriteria | None = None,
               replicas: int = DEFAULT_REPLICAS, seed: int = 0, resolution_s: float = 1.0,
               max_upper_s: float | None = None) -> UpperPlan:
    """The smallest upper limit such that, with probability >= ``criteria.probability``, no client
    is refused or times out and the p99 queue wait stays within ``criteria.max_wait_p99_s``.

    Args:
        users: clients that re-login in one wave, >= 1.
        lower_s: Client Re-Login Lower Limit (s), > 0.
        server: admission of the serving node.
        soap_timeout_s: the clients' SOAP timeout (s).
        criteria: probability and wait bound (defaults: 0.99, 10 s).
        replicas: replicas per evaluation (the probability's resolution is 1 / replicas).
        seed: seed of the common random numbers; the same inputs and seed give the same plan.
        resolution_s: grid step of the upper limit above the lower limit (s), > 0.
        max_upper_s: give up beyond this (default: lower + 64 x Cisco's rule window, or + 64 x
            users s when the capacity is unbounded).

    Returns:
        The plan.

    Raises:
        ModelInputError: bad inputs.
        InfeasiblePlan: nothing up to ``max_upper_s`` meets the criteria (e.g. the SOAP timeout is
            shorter than the service time, or the queue limit is 0 with a rate below the need).
    """
    crit = criteria or PlanCriteria()
    WaveSpec(clients=users, kind=WaveKind.FAILOVER, lower_s=lower_s, upper_s=lower_s,
             soap_timeout_s=soap_timeout_s)  # validates users, lower_s and the timeout
    if not (math.isfinite(resolution_s) and resolution_s > 0):
        raise ModelInputError("resolution_s", resolution_s, "must be finite and > 0 s")
    if replicas < 1:
        raise ModelInputError("replicas", replicas, "must be >= 1")
    capacity = server.capacity_per_s
    rule = cisco_rule_upper_s(users, lower_s, capacity)
    rule_window = (rule - lower_s) if rule is not None else float(users)
    cap_s = max_upper_s if max_upper_s is not None else lower_s + _MAX_WINDOW_FACTOR * max(rule_window, resolution_s)
    max_step = max(1, math.floor((cap_s - lower_s) / resolution_s + 1e-9))
    evalr = _Round1(users, lower_s, server, soap_timeout_s, crit, replicas, seed)

    def ok(step: int) -> bool:
        return evalr.evaluate(step, resolution_s)[0] >= crit.probability - 1e-12

    hi = min(max(1, math.ceil(rule_window / resolution_s)), max_step) if capacity is not None else 1
    lo = 0  # step 0 (window zero) is never proposed; "fails" by convention
    while not ok(hi):
        if hi >= max_step:
            raise InfeasiblePlan(max_upper_s=lower_s + hi * resolution_s,
                                 probability_clean=evalr.evaluate(hi, resolution_s)[0],
                                 detail=_why(server, soap_timeout_s))
        lo, hi = hi, min(2 * hi, max_step)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    frac, p99 = evalr.evaluate(hi, resolution_s)
    passing = round(frac * replicas)
    below = evalr.evaluate(hi - 1, resolution_s)[0] if hi > 1 else None
    return UpperPlan(users=users, lower_s=float(lower_s), server=server, soap_timeout_s=float(soap_timeout_s),
                     criteria=crit, replicas=replicas, seed=seed, resolution_s=float(resolution_s),
                     upper_s=float(lower_s + hi * resolution_s), probability_pass=frac,
                     probability_pass_interval=wilson_interval(passing, replicas), probability_pass_below=below,
                     wait_p99_s=Band.of(p99), cisco_rule_upper_s=rule, evaluations=len(evalr.cache))


def _why(server: ServerModel, timeout_s: float) -> str:
    if server.service_s > timeout_s:
        return f"service time {server.service_s:g} s exceeds the SOAP timeout {timeout_s:g} s: every login times out"
    return "the wave is still not clean often enough at the largest upper limit tried"


def what_if(wave: WaveSpec, server: ServerModel, *, other: ServerModel | None = None,
            replicas: int = DEFAULT_REPLICAS, seed: int = 0, bin_s: float = DEFAULT_BIN_S) -> WhatIf:
    """What the given limits would do: queue peak, slowest login, clients at risk, with bands.

    Args:
        wave: clients, kind, the limits in question, SOAP timeout.
        server: admission of the serving node.
        other: admission of the other node (fallback; default as ``server``).
        replicas: independent waves.
        seed: random seed.
        bin_s: series bin width of the attached result (s).

    Returns:
        The what-if figures and the full result.

    Raises:
        ModelInputError: bad inputs.
    """
    result = simulate(wave, server, other=other, replicas=replicas, seed=seed, bin_s=bin_s)
    b = result.bands
    return WhatIf(queue_peak=b.queue_peak, slowest_login_s=b.login_latency_max_s, recovery_max_s=b.recovery_max_s,
                  clients_at_risk=b.clients_at_risk, gave_up=b.gave_up, probability_clean=result.probability_clean,
                  probability_clean_interval=result.probability_clean_interval, result=result)
