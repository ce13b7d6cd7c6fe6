"""Exact closed forms of a re-login wave where they exist (used by the results and the tests).

* **Round-1 demand** (always): each of N clients arrives once in round 1, at a wait uniform in
  [lower, upper], independently; the count arriving in a bin [t, t + dt) is Binomial(N, p) with
  p = |[t, t + dt) ∩ [lower, upper]| / (upper - lower): mean N dt / (upper - lower) for a bin
  inside the window.
* **No capacity limit** (no rate, no worker limit) and service time S <= SOAP timeout T: nobody
  waits, nobody fails, so the demand *is* the round-1 demand, every login is served S after it
  arrives, and the fraction of clients back by t is the uniform CDF at t - S.
* **Token bucket only** (rate R, burst B, no worker limit, no queue limit), with N arrivals in
  [a_min, upper] processed FIFO: the k-th start (k = 0...) obeys
  ``a_min + (k - B + 1)+ / R <= s_k <= max_i a_i + (k - B + 1)+ / R`` (the bucket holds B at
  a_min and refills at R; the max-plus recurrence of ``admission.py`` unrolled), and every wait is
  at most (N - B)+ / R. So when (N - B)+ / R + S < T nobody times out, and the last client is back
  at a time in ``[lower + (N - B)+/R + S, upper + (N - B)+/R + S]``: for a storm (N / R much longer
  than the window) that is "recovery ≈ lower + N / R", within the window's width.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from jabberemu.throttle.errors import ModelInputError
from jabberemu.throttle.model import FloatArray, ServerModel, WaveSpec

__all__ = [
    "BinomialSeries",
    "cisco_rule_upper_s",
    "round1_arrival_probabilities",
    "round1_demand",
    "saturated_recovery_max_bounds_s",
    "unlimited_is_exact",
]


@dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class BinomialSeries:
    """Per-bin Binomial(N, p_i) counts.

    Attributes:
        probability: p_i of each bin.
        mean: N p_i.
        p5, p95: 5th and 95th percentiles of Binomial(N, p_i).
    """

    probability: FloatArray
    mean: FloatArray
    p5: FloatArray
    p95: FloatArray


def round1_arrival_probabilities(wave: WaveSpec, edges_s: FloatArray) -> FloatArray:
    """Probability that one client's round-1 arrival falls in each bin [edges[i], edges[i+1]).

    Args:
        wave: the limits.
        edges_s: increasing bin edges (s), at least two.

    Returns:
        One probability per bin. When upper == lower the whole mass is in the bin holding lower.

    Raises:
        ModelInputError: fewer than two edges or edges not increasing.
    """
    edges = np.asarray(edges_s, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 2 or (np.diff(edges) <= 0).any():
        raise ModelInputError("edges_s", edges.shape, "need >= 2 increasing edges")
    lo, hi = float(wave.lower_s), float(wave.upper_s)
    if hi == lo:
        return ((edges[:-1] <= lo) & (lo < edges[1:])).astype(np.float64)
    overlap: FloatArray = np.maximum(np.minimum(edges[1:], hi) - np.maximum(edges[:-1], lo), 0.0)
    return overlap / (hi - lo)


def round1_demand(wave: WaveSpec, edges_s: FloatArray) -> BinomialSeries:
    """Round-1 login attempts per bin: Binomial(clients, p_i) (see the module docstring).

    Args:
        wave: clients and limits.
        edges_s: increasing bin edges (s).

    Returns:
        Probability, mean and 5th/95th percentiles per bin.

    Raises:
        ModelInputError: bad edges.
    """
    p = np.clip(round1_arrival_probabilities(wave, edges_s), 0.0, 1.0)
    n = wave.clients
    return BinomialSeries(probability=p, mean=n * p, p5=stats.binom.ppf(0.05, n, p).astype(np.float64),
                          p95=stats.binom.ppf(0.95, n, p).astype(np.float64))


def unlimited_is_exact(wave: WaveSpec, server: ServerModel) -> bool:
    """True when the no-capacity-limit closed form is exact: no rate, no worker limit, S <= T.

    Args:
        wave: gives the SOAP timeout.
        server: the serving node.

    Returns:
        Whether demand = round-1 demand, served = demand shifted by S, no failure.
    """
    return server.unlimited and server.service_s <= wave.soap_timeout_s


def saturated_recovery_max_bounds_s(wave: WaveSpec, server: ServerModel) -> tuple[float, float] | None:
    """Bounds of the last client's recovery time for a token bucket alone (module docstring).

    Args:
        wave: clients, limits, SOAP timeout.
        server: the serving node.

    Returns:
        ``(low, high)`` in seconds from the HA event, or None when the closed form does not apply
        (no rate, a worker or queue limit that could bind, or (N - B)+/R + S >= T).
    """
    rate = server.rate_per_s
    if rate is None or server.workers is not None:
        return None
    if server.queue_limit is not None and server.queue_limit < wave.clients:
        return None
    drain_s = max(wave.clients - server.burst, 0) / rate
    if not drain_s + server.service_s < wave.soap_timeout_s:
        return None
    return (wave.lower_s + drain_s + server.service_s, wave.upper_s + drain_s + server.service_s)


def cisco_rule_upper_s(users: int, lower_s: float, capacity_per_s: float | None) -> float | None:
    """Cisco's rule ``upper = lower + users / rate`` (DOMAIN.md, "Sizing and throttle rules").

    Args:
        users: users of the node.
        lower_s: the lower limit (s).
        capacity_per_s: sustained logins/s; None = unbounded.

    Returns:
        The upper limit (s), or None when the capacity is unbounded.
    """
    if capacity_per_s is None or not math.isfinite(capacity_per_s):
        return None
    return float(lower_s) + users / capacity_per_s
