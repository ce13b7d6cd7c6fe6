"""From per-client outcomes to what the report and the verdict read (docs/login-model.md §3):
per-bin series and per-wave figures, each as a median with a 5-95 % band across replicas.

Series, on bins [i dt, (i+1) dt) from the HA event, per node: **demand** (login attempts arriving
at the node), **served** (logins whose service ended in the bin, answered or dropped because the
client had gone: the node's ``login_completed``), **queue depth** and **in service** (gauges at the
end of the bin, as a metrics row written then), and the fraction of clients **recovered** by the
end of the bin (a CDF on the grid; it stays below 1 when clients gave up). Gauges and the CDF count
the events strictly before the end of the bin.

Per wave, per replica then banded: queue wait (arrival to start, at the serving node, both
rounds) p50 / p99 / max; the slowest answered login (arrival to answer); refused busy and timed out
(events at the serving node); attempts at the other node; second rounds; GAVE_UP; clients at risk
(clients refused or timed out at least once at the serving node: in this spec every such client
goes on to a second round, so the two counts agree); recovery p50 / p99 / max over recovered
clients; queue peak. And the probability that no client is refused or times out (fraction of clean
replicas, with a Wilson 95 % interval).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
from numpy.typing import NDArray

from jabberemu.throttle.closed_form import (
    BinomialSeries,
    round1_demand,
    saturated_recovery_max_bounds_s,
    unlimited_is_exact,
)
from jabberemu.throttle.errors import ModelInputError
from jabberemu.throttle.model import (
    DEFAULT_REPLICAS,
    AttemptOutcome,
    ClientFate,
    ClientOutcomes,
    FloatArray,
    NodeAttempts,
    ServerModel,
    WaveSpec,
    draw_waits,
)
from jabberemu.throttle.wave import simulate_clients

__all__ = [
    "DEFAULT_BIN_S",
    "Band",
    "ClosedForm",
    "NodeSeries",
    "ReplicaStats",
    "SeriesBand",
    "WaveBands",
    "WaveResult",
    "simulate",
    "summarise",
    "wilson_interval",
]

#: Width of a series bin (s).
DEFAULT_BIN_S = 1.0
_Z95 = 1.959963984540054


@dataclass(frozen=True, kw_only=True, slots=True)
class Band:
    """Median and 5th / 95th percentiles across replicas (NaN where no replica has a value)."""

    median: float
    p5: float
    p95: float

    @classmethod
    def of(cls, values: NDArray[np.floating] | NDArray[np.integer]) -> Band:
        """Band of per-replica values, ignoring NaN.

        Args:
            values: one value per replica.

        Returns:
            The band.
        """
        v = np.asarray(values, dtype=np.float64)
        v = v[~np.isnan(v)]
        if v.size == 0:
            return cls(median=math.nan, p5=math.nan, p95=math.nan)
        p5, med, p95 = np.percentile(v, [5.0, 50.0, 95.0])
        return cls(median=float(med), p5=float(p5), p95=float(p95))


@dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class SeriesBand:
    """Per-bin median and 5th / 95th percentiles across replicas, and the mean (a count of a few per
    bin has a median that jumps between integers; its mean is the expected rate)."""

    median: FloatArray
    p5: FloatArray
    p95: FloatArray
    mean: FloatArray

    @classmethod
    def of(cls, per_replica: FloatArray) -> SeriesBand:
        """Band of a ``(replicas, bins)`` array."""
        values = np.asarray(per_replica, dtype=np.float64)
        p5, med, p95 = np.percentile(values, [5.0, 50.0, 95.0], axis=0)
        return cls(median=med, p5=p5, p95=p95, mean=values.mean(axis=0))


@dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class NodeSeries:
    """Series of one node (module docstring).

    Attributes:
        demand: attempts arriving per bin.
        served: logins whose service ended per bin.
        queue_depth: waiting at the end of each bin.
        in_service: in service at the end of each bin.
    """

    demand: SeriesBand
    served: SeriesBand
    queue_depth: SeriesBand
    in_service: SeriesBand


@dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class ReplicaStats:
    """Per-wave figures, one value per replica (``(R,)`` arrays; module docstring).

    Wait and recovery figures are NaN in a replica without any started login / recovered client.
    """

    wait_p50_s: FloatArray
    wait_p99_s: FloatArray
    wait_max_s: FloatArray
    login_latency_max_s: FloatArray
    refused_busy: FloatArray
    timed_out: FloatArray
    other_attempts: FloatArray
    second_rounds: FloatArray
    gave_up: FloatArray
    clients_at_risk: FloatArray
    recovery_p50_s: FloatArray
    recovery_p99_s: FloatArray
    recovery_max_s: FloatArray
    queue_peak: FloatArray
    demand_peak: FloatArray  # most logins arriving at the serving node in one bin (/bin)
    served_peak: FloatArray  # most logins served (service ended) there in one bin (/bin)


@dataclass(frozen=True, kw_only=True, slots=True)
class WaveBands:
    """:class:`ReplicaStats` as bands across replicas, field by field."""

    wait_p50_s: Band
    wait_p99_s: Band
    wait_max_s: Band
    login_latency_max_s: Band
    refused_busy: Band
    timed_out: Band
    other_attempts: Band
    second_rounds: Band
    gave_up: Band
    clients_at_risk: Band
    recovery_p50_s: Band
    recovery_p99_s: Band
    recovery_max_s: Band
    queue_peak: Band
    demand_peak: Band
    served_peak: Band


@dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class ClosedForm:
    """Closed forms on the result's grid (``closed_form.py``).

    Attributes:
        round1_demand: Binomial round-1 attempts per bin (always exact for round 1).
        unlimited_exact: True when demand, served and recovery equal the no-capacity closed form.
        saturated_recovery_max_s: bounds of the last recovery for a token bucket alone, or None.
    """

    round1_demand: BinomialSeries
    unlimited_exact: bool
    saturated_recovery_max_s: tuple[float, float] | None


@dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class WaveResult:
    """The predicted wave.

    Attributes:
        wave, serving_model, other_model: the inputs (other_model None in a failover wave).
        replicas: replicas simulated; seed: the seed when the waits were drawn here, else None.
        bin_s: bin width; time_s: bin starts (s from the HA event).
        serving, other: series per node (other None in a failover wave).
        recovered_fraction: fraction of clients back by the end of each bin.
        per_replica: per-wave figures per replica; bands: the same as bands.
        probability_clean: fraction of replicas where no client was refused or timed out.
        probability_clean_interval: its Wilson 95 % interval.
        closed_form: closed forms on the same grid.
    """

    wave: WaveSpec
    serving_model: ServerModel
    other_model: ServerModel | None
    replicas: int
    seed: int | None
    bin_s: float
    time_s: FloatArray
    serving: NodeSeries
    other: NodeSeries | None
    recovered_fraction: SeriesBand
    per_replica: ReplicaStats
    bands: WaveBands
    probability_clean: float
    probability_clean_interval: tuple[float, float]
    closed_form: ClosedForm


def wilson_interval(successes: int, trials: int, z: float = _Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion.

    Args:
        successes: successes, 0 <= successes <= trials.
        trials: trials, >= 1.
        z: normal quantile (default 95 % two-sided).

    Returns:
        ``(low, high)``.

    Raises:
        ModelInputError: bad counts.
    """
    if trials < 1 or not 0 <= successes <= trials:
        raise ModelInputError("successes/trials", (successes, trials), "need 0 <= successes <= trials, trials >= 1")
    p = successes / trials
    denom = 1.0 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return low, high


def _row_quantiles(values: FloatArray, qs: tuple[float, ...]) -> list[FloatArray]:
    """Per-row quantiles (numpy's default linear interpolation) ignoring NaN; NaN for empty rows."""
    out = [np.full(values.shape[0], np.nan) for _ in qs]
    for r in range(values.shape[0]):
        row = values[r]
        row = row[~np.isnan(row)]
        if row.size:
            for i, v in enumerate(np.quantile(row, qs).tolist()):
                out[i][r] = v
    return out


def _rounds(values: FloatArray) -> FloatArray:
    """``(2, R, N)`` -> ``(R, N)`` (round 1) when round 2 is all NaN, else ``(R, 2N)``."""
    if np.isnan(values[1]).all():
        return np.asarray(values[0])
    return np.concatenate((values[0], values[1]), axis=1)


def _binned(times: FloatArray, bins: int, bin_s: float) -> FloatArray:
    """Per replica, how many of ``times`` (``(R, M)``, NaN = none, all in [0, bins * bin_s)) fall in
    each bin: ``(R, bins)``."""
    q = times / bin_s  # the horizon was cut with the same division, so q < bins
    q[np.isnan(q)] = bins  # the overflow bin
    idx = q.astype(np.int32)  # truncation = floor for q >= 0
    counts = np.empty((times.shape[0], bins))
    for r in range(times.shape[0]):
        counts[r] = np.bincount(idx[r], minlength=bins + 1)[:bins]
    return counts


def _node_series(node: NodeAttempts, server: ServerModel, timeout_s: float, bins: int,
                 bin_s: float) -> tuple[NodeSeries, FloatArray, FloatArray]:
    """The node's series bands, and its per-replica (arrived, ended) counts per bin."""
    arrival = _rounds(node.arrival_s)
    start = node.start_s[0] if arrival.shape[1] == node.arrival_s.shape[2] else _rounds(node.start_s)
    outcome = node.outcome[0] if arrival.shape[1] == node.arrival_s.shape[2] else np.concatenate(node.outcome, axis=1)
    arrived = _binned(arrival, bins, bin_s)
    started = _binned(start, bins, bin_s)
    ended = _binned(start + float(server.service_s), bins, bin_s) if server.service_s else started
    # never started: refused at arrival (never queued) or gave up waiting at arrival + T
    unstarted = _binned(np.where(outcome == AttemptOutcome.REFUSED_BUSY, arrival,
                                 np.where(outcome == AttemptOutcome.TIMED_OUT_WAITING, arrival + timeout_s, np.nan)),
                        bins, bin_s)
    return NodeSeries(
        demand=SeriesBand.of(arrived),
        served=SeriesBand.of(ended),
        queue_depth=SeriesBand.of(np.cumsum(arrived - unstarted - started, axis=1)),
        in_service=SeriesBand.of(np.cumsum(started - ended, axis=1)),
    ), arrived, ended


def _replica_stats(out: ClientOutcomes, arrived: FloatArray, ended: FloatArray) -> ReplicaStats:
    srv = out.serving
    service = float(out.serving_model.service_s)
    waits = _rounds(srv.start_s - srv.arrival_s)
    w50, w99 = _row_quantiles(waits, (0.5, 0.99))
    answered = srv.outcome == AttemptOutcome.ANSWERED
    latency = np.where(answered, srv.start_s + service - srv.arrival_s, np.nan)
    rec50, rec99 = _row_quantiles(np.asarray(out.recovery_s), (0.5, 0.99))
    failed = srv.outcome >= AttemptOutcome.REFUSED_BUSY  # refused or timed out (either way)
    timed_out = srv.outcome >= AttemptOutcome.TIMED_OUT_WAITING
    r = out.replicas
    other = out.other

    def total(x: NDArray[np.bool_] | np.bool_, axes: tuple[int, ...]) -> FloatArray:
        summed: FloatArray = np.sum(x, axis=axes, dtype=np.float64)
        return summed

    def nanmax(x: FloatArray, axes: tuple[int, ...]) -> FloatArray:
        top: FloatArray = np.fmax.reduce(x, axis=axes)  # NaN only where all are NaN
        return top

    return ReplicaStats(
        wait_p50_s=w50, wait_p99_s=w99, wait_max_s=nanmax(waits, (1,)),
        login_latency_max_s=nanmax(latency, (0, 2)),
        refused_busy=total(srv.outcome == AttemptOutcome.REFUSED_BUSY, (0, 2)),
        timed_out=total(timed_out, (0, 2)),
        other_attempts=total(~np.isnan(other.arrival_s), (0, 2)) if other is not None else np.zeros(r),
        second_rounds=total(~np.isnan(srv.arrival_s[1]), (1,)),
        gave_up=total(out.fate == ClientFate.GAVE_UP, (1,)),
        clients_at_risk=total(failed.any(axis=0), (1,)),
        recovery_p50_s=rec50, recovery_p99_s=rec99, recovery_max_s=nanmax(np.asarray(out.recovery_s), (1,)),
        queue_peak=srv.queue_peak.astype(np.float64),
        demand_peak=arrived.max(axis=1), served_peak=ended.max(axis=1),
    )


def summarise(outcomes: ClientOutcomes, *, bin_s: float = DEFAULT_BIN_S, seed: int | None = None) -> WaveResult:
    """Series, per-wave figures and bands of simulated per-client outcomes.

    Args:
        outcomes: from :func:`~jabberemu.throttle.wave.simulate_clients` (or the reference).
        bin_s: series bin width (s), > 0.
        seed: recorded in the result (the seed the waits were drawn with, if known).

    Returns:
        The wave result.

    Raises:
        ModelInputError: bin_s <= 0.
    """
    if not (math.isfinite(bin_s) and bin_s > 0):
        raise ModelInputError("bin_s", bin_s, "must be finite and > 0 s")
    wave = outcomes.wave
    timeout_s = float(wave.soap_timeout_s)
    nodes = [(outcomes.serving, outcomes.serving_model)]
    if outcomes.other is not None and outcomes.other_model is not None:
        nodes.append((outcomes.other, outcomes.other_model))
    horizon = 0.0
    for node, model in nodes:
        for values in (node.arrival_s + timeout_s, node.start_s + float(model.service_s)):
            top = float(np.fmax.reduce(values, axis=None))
            horizon = top if top > horizon else horizon  # NaN (no event at all) leaves it
    bins = int(math.floor(horizon / bin_s)) + 1
    time_s = np.arange(bins, dtype=np.float64) * float(bin_s)
    binned = [_node_series(n, m, timeout_s, bins, bin_s) for n, m in nodes]
    series = [s for s, _, _ in binned]
    back = np.cumsum(_binned(np.asarray(outcomes.recovery_s), bins, bin_s), axis=1)
    stats = _replica_stats(outcomes, binned[0][1], binned[0][2])
    bands = WaveBands(**{f.name: Band.of(getattr(stats, f.name)) for f in fields(ReplicaStats)})
    clean = int((stats.clients_at_risk == 0).sum())
    edges = np.append(time_s, bins * bin_s)
    return WaveResult(
        wave=wave, serving_model=outcomes.serving_model, other_model=outcomes.other_model,
        replicas=outcomes.replicas, seed=seed, bin_s=float(bin_s), time_s=time_s, serving=series[0],
        other=series[1] if len(series) > 1 else None,
        recovered_fraction=SeriesBand.of(back / wave.clients), per_replica=stats, bands=bands,
        probability_clean=clean / outcomes.replicas,
        probability_clean_interval=wilson_interval(clean, outcomes.replicas),
        closed_form=ClosedForm(round1_demand=round1_demand(wave, edges),
                               unlimited_exact=unlimited_is_exact(wave, outcomes.serving_model),
                               saturated_recovery_max_s=saturated_recovery_max_bounds_s(wave, outcomes.serving_model)),
    )


def simulate(wave: WaveSpec, serving: ServerModel, *, other: ServerModel | None = None,
             replicas: int = DEFAULT_REPLICAS, seed: int = 0, bin_s: float = DEFAULT_BIN_S) -> WaveResult:
    """Predict a re-login wave: draw the waits, simulate every client, summarise.

    Args:
        wave: clients, kind, limits, SOAP timeout.
        serving: admission of the serving node (the backup in a failover, home in a fallback).
        other: admission of the other node in a fallback wave (default: as ``serving``).
        replicas: independent waves, >= 1.
        seed: random seed; the same inputs and seed give the same result.
        bin_s: series bin width (s).

    Returns:
        The wave result.

    Raises:
        ModelInputError: bad inputs.
    """
    waits = draw_waits(wave, replicas=replicas, seed=seed)
    return summarise(simulate_clients(wave, serving, waits, other=other), bin_s=bin_s, seed=seed)
