"""Predicted vs measured, per wave: the one model (``jabberemu.throttle``) run on each wave's inputs.

Every run states what the model predicted for each of its waves and how the measurement compares,
so that neither the model nor the emulator goes unchecked. The model's inputs come from the run:

- the wave: its clients, its kind (failover or fallback), the limits its clients drew from, and when
  each client lost its session (a node drops a thousand streams over a fraction of a second: each
  modelled client's wait counts from one of the measured HA event times, shuffled per replica);
- the node's login model: ``run.json`` ``server_model`` (the mock's settings, written by the drill)
  or, lacking it, the declared ``server_login_rate`` alone (a plain rate; no capacity declared: an
  unlimited node);
- the clients' SOAP timeout: ``run.json`` ``soap_timeout_s`` (default 30 s).

Times are on the wave's clock: seconds since its first HA event (the model's t = 0), so recovery
here is "back this long after the wave began". Each figure is compared with the model's median and
its p5-p95 band over seeded replicas; it
*agrees* when it lies in the band or within :data:`AGREEMENT_REL` of the median (times: or within
:data:`AGREEMENT_ABS`). When a figure
disagrees, :func:`suspects` names which side most likely moved: the **generator** (re-login
attempts later than the drawn waits, or a saturated load generator), the **server** (it served
slower or faster than its declared rate), or the **inputs** (clients that drew from different
limits). Figures the run cannot measure (no server counters against a real pair) are left out.
"""

from __future__ import annotations

import dataclasses

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from jabberemu.report.records import RunData
from jabberemu.report.storm import WaveStorm
from jabberemu.report.waves import HaKind, Wave
from jabberemu.throttle import (
    DEFAULT_SOAP_TIMEOUT_S,
    Band,
    ServerModel,
    ThrottleError,
    WaveKind,
    WaveResult,
    WaveSpec,
    Waits,
    draw_waits,
    simulate_clients,
    summarise,
)

__all__ = [
    "AGREEMENT_REL",
    "CENSORED_FIGURES",
    "MAX_CLIENT_REPLICAS",
    "MIN_REPLICAS",
    "PREDICTION_REPLICAS",
    "Comparison",
    "Side",
    "WavePrediction",
    "predict",
    "server_model",
    "suspects",
    "without_censored",
]

#: A measured figure within this fraction of the model's median agrees even outside the band.
AGREEMENT_REL = 0.05
#: ... or within this much of it, by unit: a client's CPA round trips and XMPP sign-in, which the
#: model counts as zero (docs/login-model.md §2), take a few tens of milliseconds on a busy box.
AGREEMENT_ABS = {"s": 0.25}
#: Replicas per wave (enough for p5-p95 bands; a 1,000-client wave takes well under a second).
PREDICTION_REPLICAS = 200
#: Bound on replicas x clients of one wave's model run (our choice: ~190 bytes each at the peak, so
#: a 7,500-client soak wave takes ~80 MiB, not ~290): waves above 2,000 clients get fewer replicas
#: (at least :data:`MIN_REPLICAS`).
MAX_CLIENT_REPLICAS = 400_000
MIN_REPLICAS = 50
#: An attempt later than its drawn wait by more than this (s) is late (generator fidelity).
LATE_S = 0.05


class Side(enum.Enum):
    """Who most likely moved when measurement and model disagree."""

    GENERATOR = "generator"
    SERVER = "server"
    INPUTS = "inputs"


@dataclass(frozen=True, kw_only=True, slots=True)
class Comparison:
    """One figure: measured against the model's median and p5-p95 band."""

    name: str
    unit: str
    measured: float
    predicted: Band

    @property
    def agrees(self) -> bool:
        """Inside the band, or within :data:`AGREEMENT_REL` (or :data:`AGREEMENT_ABS`) of the median."""
        b = self.predicted
        if b.p5 - 1e-9 <= self.measured <= b.p95 + 1e-9:
            return True
        off = abs(self.measured - b.median)
        return off <= AGREEMENT_REL * max(abs(b.median), 1e-9) or off <= AGREEMENT_ABS.get(self.unit, 0.0)

    @property
    def off_by(self) -> float:
        """Measured minus median, relative to the median (0 for a zero median and measure)."""
        if self.predicted.median == 0:
            return 0.0 if self.measured == 0 else math.inf
        return (self.measured - self.predicted.median) / self.predicted.median

    def describe(self) -> str:
        b = self.predicted
        return (f"{self.name}: measured {self.measured:.3g} {self.unit}, model {b.median:.3g} "
                f"(p5-p95 {b.p5:.3g}-{b.p95:.3g})" + ("" if self.agrees else " DISAGREES"))


@dataclass(frozen=True, kw_only=True)
class WavePrediction:
    """The model's prediction of one wave and the comparison with what was measured.

    Attributes:
        wave: ``Wave.index``.
        model: the serving node's login model the prediction assumed.
        soap_timeout_s: the clients' SOAP timeout it assumed.
        result: the model's whole result (series and bands).
        comparisons: each measured figure against its band.
        suspects: when some figure disagrees, the sides that likely moved, with their evidence.
    """

    wave: int
    model: ServerModel
    soap_timeout_s: float
    result: WaveResult
    comparisons: tuple[Comparison, ...]
    suspects: tuple[tuple[Side, str], ...]

    @property
    def agrees(self) -> bool:
        return all(c.agrees for c in self.comparisons)

    @property
    def probability_clean(self) -> float:
        """The model's probability that no client is refused or times out."""
        return self.result.probability_clean


def server_model(extra: Mapping[str, object], declared_rate: float | None) -> ServerModel:
    """The serving node's login model for the prediction (see the module docstring).

    Args:
        extra: ``run.json`` fields beyond the contract (``RunInfo.extra``).
        declared_rate: ``server_login_rate`` (logins/s) or None.
    """
    raw = extra.get("server_model")
    if isinstance(raw, dict):
        try:
            return ServerModel(
                rate_per_s=_opt_float(raw.get("rate_per_s")), burst=int(raw.get("burst") or 1),
                workers=None if raw.get("workers") is None else int(raw["workers"]),
                service_s=float(raw.get("service_s") or 0.0),
                queue_limit=None if raw.get("queue_limit") is None else int(raw["queue_limit"]))
        except (TypeError, ValueError, ThrottleError):
            pass
    return ServerModel(rate_per_s=declared_rate)


def _opt_float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


def _measured(w: Wave, s: WaveStorm) -> list[tuple[str, str, float | None, str]]:
    """(name, unit, measured value, model band field) of each figure this run measured.

    A wave the end of the run cut (``pending`` clients still inside their window) has no recovery
    percentiles to compare: only its early recoveries were seen, a censored sample the model's whole
    distribution would always call too fast; they are left out (None: not measured)."""
    busiest = s.nodes[0] if s.nodes else None
    served_peak = float(busiest.served.max()) if busiest is not None and busiest.served.size else None
    cut = w.pending > 0
    back = w.relogin_t - float(w.ha_t.min()) if w.ha_t.size and w.relogin_t.size and not cut else np.empty(0)
    return [
        ("peak served (1 s bins)", "logins/s", served_peak, "served_peak"),
        ("queue peak", "logins", float(s.queue_peak) if s.queue_peak is not None else None, "queue_peak"),
        ("login wait p99", "s", s.login_wait_p99_s, "wait_p99_s"),
        ("recovery p50 (from the wave's start)", "s", float(np.percentile(back, 50)) if back.size else None,
         "recovery_p50_s"),
        ("recovery p99 (from the wave's start)", "s", float(np.percentile(back, 99)) if back.size else None,
         "recovery_p99_s"),
        ("refused busy", "logins", float(s.busy), "refused_busy"),
        ("timed out", "logins", float(s.timeouts), "timed_out"),
        ("GAVE_UP", "clients", float(sum(s.gave_up.values())), "gave_up"),
    ]


def predict(data: RunData, w: Wave, s: WaveStorm, *, replicas: int = PREDICTION_REPLICAS,
            seed: int = 0) -> WavePrediction | None:
    """Run the model on one wave and compare.

    Args:
        data: the loaded run.
        w: the wave.
        s: its server-side measurements.
        replicas: replicas of the model (fewer for a wave over ``MAX_CLIENT_REPLICAS / replicas``
            clients, at least ``MIN_REPLICAS``).
        seed: the model's seed (the same run gives the same prediction).

    Returns:
        The prediction, or None when the wave cannot be modelled (no limits known, a zero lower
        limit the one-pass model refuses, a wave without CPA logins).
    """
    if w.lower_s is None or w.upper_s is None or not s.nodes or not any(n.demand_total for n in s.nodes):
        return None
    replicas = max(min(replicas, MIN_REPLICAS), min(replicas, MAX_CLIENT_REPLICAS // max(1, w.clients)))
    model = server_model(data.info.extra, data.info.server_login_rate)
    timeout = data.info.extra.get("soap_timeout_s")
    soap_timeout_s = float(timeout) if isinstance(timeout, (int, float)) and timeout > 0 else DEFAULT_SOAP_TIMEOUT_S
    try:
        spec = WaveSpec(clients=w.clients, kind=WaveKind.FALLBACK if w.kind is HaKind.FALLBACK else WaveKind.FAILOVER,
                        lower_s=w.lower_s, upper_s=w.upper_s, soap_timeout_s=soap_timeout_s)
        drawn = draw_waits(spec, replicas=replicas, seed=seed)
        offsets = np.sort(w.ha_t) - float(w.ha_t.min())  # when each client lost its session
        shuffled = np.random.default_rng(seed).permuted(np.tile(offsets, (replicas, 1)), axis=1)
        waits = Waits(round1_s=drawn.round1_s + shuffled, round2_s=drawn.round2_s)
        result = summarise(simulate_clients(spec, model, waits), seed=seed)
    except ThrottleError:
        return None
    bands = result.bands
    comparisons = tuple(
        Comparison(name=name, unit=unit, measured=value,
                   predicted=_shifted(getattr(bands, field), model.service_s if field == "wait_p99_s" else 0.0))
        for name, unit, value, field in _measured(w, s)
        if value is not None and not math.isnan(value) and not math.isnan(getattr(bands, field).median))
    comp = WavePrediction(wave=w.index, model=model, soap_timeout_s=soap_timeout_s, result=result,
                          comparisons=comparisons, suspects=())
    if comp.agrees:
        return comp
    return WavePrediction(wave=w.index, model=model, soap_timeout_s=soap_timeout_s, result=result,
                          comparisons=comparisons, suspects=tuple(suspects(data, w, s, model)))


CENSORED_FIGURES = ("recovery p50 (from the wave's start)", "recovery p99 (from the wave's start)")
"""Figures a wave cut by the end of the run cannot compare (see :func:`_measured`)."""


def without_censored(p: WavePrediction) -> WavePrediction:
    """``p`` without the recovery figures of a wave the end of the run cut (the streaming report learns
    that a wave was cut only at the end, after its prediction)."""
    kept = tuple(c for c in p.comparisons if c.name not in CENSORED_FIGURES)
    if len(kept) == len(p.comparisons):
        return p
    agrees = all(c.agrees for c in kept)
    return dataclasses.replace(p, comparisons=kept, suspects=() if agrees else p.suspects)


def _shifted(b: Band, by: float) -> Band:
    """The model's queue wait + the service time: the client measures the round trip."""
    return b if not by else Band(median=b.median + by, p5=b.p5 + by, p95=b.p95 + by)


def suspects(data: RunData, w: Wave, s: WaveStorm, model: ServerModel) -> list[tuple[Side, str]]:
    """Which side most likely moved, with its evidence (empty when nothing points anywhere)."""
    out: list[tuple[Side, str]] = []
    late = _late_attempts(data, w)
    if late is not None and late[0] > 0:
        out.append((Side.GENERATOR, f"{late[0]} of {late[1]} first re-login attempts came more than "
                                    f"{LATE_S * 1000:.0f} ms after their drawn wait (worst {late[2]:.2f} s late)"))
    rate = model.rate_per_s
    busiest = s.nodes[0] if s.nodes else None
    if rate is not None and busiest is not None and busiest.queue_depth is not None:
        backlog = np.flatnonzero(np.nan_to_num(busiest.queue_depth) > 0)
        inside = backlog[1:-1]  # whole seconds with a queue: the node serves at its rate
        if inside.size >= 3:
            served = float(np.mean(busiest.served[inside]))
            if abs(served - rate) > AGREEMENT_REL * rate + 1.0:
                out.append((Side.SERVER, f"while logins queued, {busiest.node} served {served:.1f}/s on average, "
                                         f"not its declared {rate:g}/s"))
    if w.limits_mixed:
        out.append((Side.INPUTS, "the wave's clients drew from different re-login limits (nodes configured apart?)"))
    return out


def _late_attempts(data: RunData, w: Wave) -> tuple[int, int, float] | None:
    """(late, attempts, worst lateness s) of the wave's first attempts after their drawn wait."""
    t0 = data.info.started_ts
    members = set(w.members)
    waits: dict[str, tuple[float, float]] = {}
    for r in data.waits:
        if r.client in members and r.client not in waits and r.ts >= t0 + w.at_s - 2.0:
            waits[r.client] = (r.ts, r.wait_s)
    starts: dict[str, float] = {}
    for st in data.states:
        if st.client in waits and st.client not in starts and st.from_state == "FAILOVER" \
                and st.ts >= waits[st.client][0]:
            starts[st.client] = st.ts
    lateness = [starts[c] - (waits[c][0] + waits[c][1]) for c in starts]
    if not lateness:
        return None
    return sum(1 for d in lateness if d > LATE_S), len(lateness), max(lateness)
