"""Analysis of one run: series, waves, latency, accounting, generator health (pure).

``analyze(data)`` is the one entry point; the parts live in ``series``, ``waves`` and
``latency``. Accounting: every client that appears in the client records was *started* and is
counted once, in the state of its ``end`` record, or, lacking one (a partial run), in its last
state with the reason ``no end record``; so clients started = sum of clients by end state.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field


from jabberemu.report.failures import FailureRow, failure_table
from jabberemu.report.health import GeneratorHealth, generator_health
from jabberemu.report.latency import LatencyRow, PhaseSpan, latency_table, phase_spans
from jabberemu.report.prediction import WavePrediction, predict
from jabberemu.report.records import RunData
from jabberemu.report.series import Series, build_series
from jabberemu.report.storm import WaveStorm, storms
from jabberemu.report.waves import DEFAULT_GAP_S, Wave, find_waves

__all__ = [
    "NO_END_RECORD",
    "Accounting",
    "Analysis",
    "GeneratorHealth",
    "Readiness",
    "account",
    "analyze",
    "readiness",
]

#: Reason given to a client that has no ``end`` record.
NO_END_RECORD = "no end record"


@dataclass(frozen=True, kw_only=True)
class Accounting:
    """Where every started client ended.

    Attributes:
        clients_planned: ``run.json`` ``clients`` (None if not declared).
        clients_started: distinct clients seen in the client records.
        end_states: final state -> clients.
        end_reasons: final state -> reason -> clients.
        without_end_record: clients counted from their last state (partial run).
    """

    clients_planned: int | None
    clients_started: int
    end_states: dict[str, int]
    end_reasons: dict[str, dict[str, int]]
    without_end_record: int

    def __post_init__(self) -> None:
        if sum(self.end_states.values()) != self.clients_started:
            raise ValueError("accounting does not add up")


@dataclass(frozen=True, kw_only=True)
class Readiness:
    """How many clients were signed in when the first action that moves sessions came.

    Attributes:
        first_action: label of that action (``failover``, ``kill`` ...), None when the run has none.
        first_action_s: its time on the load clock, None without one.
        signed_in: clients that had reached XMPPCONNECTED at least once by then (all, without one).
        ended_before: clients that had already ended (GAVE_UP at the initial login ...) by then.
        end_reasons: reason (with its detail) -> clients among ``ended_before``.
    """

    first_action: str | None
    first_action_s: float | None
    signed_in: int
    ended_before: int
    end_reasons: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Analysis:
    """Everything the verdict, summary and HTML report need."""

    series: Series
    waves: list[Wave]
    storms: list[WaveStorm]
    predictions: list[WavePrediction | None]
    spans: list[PhaseSpan]
    latency: list[LatencyRow]
    accounting: Accounting
    generator: GeneratorHealth
    duration_s: float
    readiness: Readiness
    failures: list[FailureRow] = field(default_factory=list)


def account(data: RunData) -> Accounting:
    """Count every started client once, by end state and reason.

    Args:
        data: the loaded run.
    Returns:
        The accounting; ``clients_started == sum(end_states.values())`` always holds.
    """
    final: dict[str, tuple[str, str]] = {}
    for e in data.ends:
        final[e.client] = (e.state, e.reason or "unspecified")
    missing = 0
    last_state: dict[str, str] = {}
    for s in data.states:
        last_state[s.client] = s.to_state
    for client in data.clients:
        if client not in final:
            missing += 1
            final[client] = (last_state.get(client, "UNKNOWN"), NO_END_RECORD)
    states: Counter[str] = Counter(state for state, _ in final.values())
    reasons: dict[str, Counter[str]] = defaultdict(Counter)
    for state, reason in final.values():
        reasons[state][reason] += 1
    return Accounting(
        clients_planned=data.info.clients, clients_started=len(final),
        end_states=dict(sorted(states.items())),
        end_reasons={k: dict(v.most_common()) for k, v in sorted(reasons.items())},
        without_end_record=missing,
    )


def readiness(data: RunData) -> Readiness:
    """Clients signed in (and already ended) when the first session-moving admin action came.

    Args:
        data: the loaded run.
    Returns:
        The readiness; without such an action every client counts up to the end of the run.
    """
    first = next((a for a in data.actions if a.kind.moves_sessions_away), None)
    limit = first.ts if first is not None else float("inf")
    signed = {c.client for c in data.connected if c.ts <= limit}
    details = {}
    for s in data.states:  # the failure class behind each early GAVE_UP
        if s.ts <= limit and s.to_state == "GAVE_UP" and s.client not in signed:
            details[s.client] = s.reason
    reasons: Counter[str] = Counter()
    for e in data.ends:
        if e.ts <= limit and e.client not in signed:
            d = details.get(e.client)
            reason = e.reason or "unspecified"
            reasons[f"{reason} ({d})" if d and d != reason else reason] += 1
    return Readiness(first_action=first.name if first is not None else None,
                     first_action_s=data.t(first.ts) if first is not None else None,
                     signed_in=len(signed), ended_before=sum(reasons.values()), end_reasons=dict(reasons.most_common()))


def _ready_s(data: RunData) -> float | None:
    """When the last client first reached XMPPCONNECTED (load clock), None without any."""
    first: dict[str, float] = {}
    for c in data.connected:
        first.setdefault(c.client, c.ts)
    return data.t(max(first.values())) if first else None


def analyze(data: RunData, *, gap_s: float = DEFAULT_GAP_S, recovery_margin_s: float | None = None) -> Analysis:
    """Analyse a loaded run.

    Args:
        data: the loaded run.
        gap_s: HA events further apart than this start a new wave (``waves.find_waves``).
        recovery_margin_s: override of ``run.json`` ``recovery_margin_s``.
    Returns:
        The analysis.
    """
    waves = find_waves(data, gap_s=gap_s, recovery_margin_s=recovery_margin_s)
    spans = phase_spans(data, waves)
    wave_storms = storms(data, waves)
    ready = readiness(data)
    health = generator_health(
        data.generator, started_ts=data.info.started_ts, waves=[(w.at_s, w.end_s) for w in waves],
        ready_s=_ready_s(data), end_s=data.t(data.last_ts))
    return Analysis(
        series=build_series(data), waves=waves, storms=wave_storms, spans=spans,
        predictions=[predict(data, w, s) for w, s in zip(waves, wave_storms)],
        latency=latency_table(data, spans),
        accounting=account(data), generator=health,
        duration_s=max(0.0, data.t(data.last_ts)), readiness=ready,
        failures=failure_table(data.requests, started_ts=data.info.started_ts),
    )
