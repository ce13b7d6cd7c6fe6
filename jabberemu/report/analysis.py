"""Analysis of one run: series, waves, latency, accounting, generator health (pure).

``analyze(data)`` is the one entry point; the parts live in ``series``, ``waves`` and
``latency``. Accounting: every client that appears in the client records was *started* and is
counted once, in the state of its ``end`` record, or, lacking one (a partial run), in its last
state with the reason ``no end record``; so clients started = sum of clients by end state.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray


from jabberemu.report.failures import FailureRow, failure_table
from jabberemu.report.health import GeneratorHealth, generator_health
from jabberemu.report.limits import LimitsSeen, limits_of
from jabberemu.report.latency import LatencyRow, PhaseSpan, latency_table, phase_spans
from jabberemu.report.prediction import WavePrediction, predict
from jabberemu.report.records import (
    Action,
    ConnectedRecord,
    EndRecord,
    RequestSummaryRecord,
    RunData,
    ServerMetric,
    StateRecord,
)
from jabberemu.report.soak import SoakBuilder, SoakSeries
from jabberemu.rundata.records import ClientRecord
from jabberemu.report.series import Series, build_series
from jabberemu.report.storm import WaveStorm, storms
from jabberemu.report.waves import DEFAULT_GAP_S, Wave, find_waves

FloatArray = NDArray[np.float64]

__all__ = [
    "NO_END_RECORD",
    "AccountBuilder",
    "Accounting",
    "Analysis",
    "GeneratorHealth",
    "Readiness",
    "account",
    "analyze",
    "mock_processes",
    "soak_of",
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
    limits: LimitsSeen | None = None
    soak: SoakSeries | None = None
    ready_s: float | None = None


class AccountBuilder:
    """Accounting and readiness fed one client record at a time (memory: a few entries per client).

    Args:
        clients_planned: ``run.json`` ``clients``.
        first_action: the first admin action that moves sessions (readiness counts up to it), or None.
        started_ts: the run's start (epoch s).
    """

    def __init__(self, clients_planned: int | None, first_action: Action | None, started_ts: float) -> None:
        self.clients_planned = clients_planned
        self.first_action = first_action
        self.t0 = started_ts
        self.limit = first_action.ts if first_action is not None else float("inf")
        self.clients: set[str] = set()
        self._final: dict[str, tuple[str, str]] = {}
        self._last_state: dict[str, str] = {}
        self._signed: set[str] = set()
        self._gave_up_detail: dict[str, str | None] = {}
        self._early_ends: list[EndRecord] = []
        self._first_connected: dict[str, float] = {}

    def add(self, rec: ClientRecord) -> None:
        """One client record (``request_summary`` records carry no client and are skipped)."""
        if isinstance(rec, RequestSummaryRecord):
            return
        self.clients.add(rec.client)
        if isinstance(rec, EndRecord):
            self._final[rec.client] = (rec.state, rec.reason or "unspecified")
            if rec.ts <= self.limit:
                self._early_ends.append(rec)
        elif isinstance(rec, StateRecord):
            self._last_state[rec.client] = rec.to_state
            if rec.ts <= self.limit and rec.to_state == "GAVE_UP":
                self._gave_up_detail[rec.client] = rec.reason
        elif isinstance(rec, ConnectedRecord):
            self._first_connected.setdefault(rec.client, rec.ts)
            if rec.ts <= self.limit:
                self._signed.add(rec.client)

    def accounting(self) -> Accounting:
        """Clients started = the sum of clients by end state (module docstring)."""
        final = dict(self._final)
        missing = 0
        for client in self.clients:
            if client not in final:
                missing += 1
                final[client] = (self._last_state.get(client, "UNKNOWN"), NO_END_RECORD)
        states: Counter[str] = Counter(state for state, _ in final.values())
        reasons: dict[str, Counter[str]] = defaultdict(Counter)
        for state, reason in final.values():
            reasons[state][reason] += 1
        return Accounting(
            clients_planned=self.clients_planned, clients_started=len(final),
            end_states=dict(sorted(states.items())),
            end_reasons={k: dict(v.most_common()) for k, v in sorted(reasons.items())},
            without_end_record=missing,
        )

    def readiness(self) -> Readiness:
        """Clients signed in (and already ended) when the first session-moving action came."""
        signed = self._signed
        reasons: Counter[str] = Counter()
        for e in self._early_ends:
            if e.client not in signed:
                d = self._gave_up_detail.get(e.client)
                reason = e.reason or "unspecified"
                reasons[f"{reason} ({d})" if d and d != reason else reason] += 1
        first = self.first_action
        return Readiness(first_action=first.name if first is not None else None,
                         first_action_s=first.ts - self.t0 if first is not None else None,
                         signed_in=len(signed), ended_before=sum(reasons.values()),
                         end_reasons=dict(reasons.most_common()))

    def ready_s(self) -> float | None:
        """When the last client first reached XMPPCONNECTED (load clock), None without any."""
        return max(self._first_connected.values()) - self.t0 if self._first_connected else None


def _builder(data: RunData) -> AccountBuilder:
    first = next((a for a in data.actions if a.kind.moves_sessions_away), None)
    builder = AccountBuilder(data.info.clients, first, data.info.started_ts)
    for records in (data.states, data.ha_events, data.waits, data.requests, data.connected, data.ends):
        for rec in records:
            builder.add(rec)
    return builder


def account(data: RunData) -> Accounting:
    """Count every started client once, by end state and reason.

    Args:
        data: the loaded run.
    Returns:
        The accounting; ``clients_started == sum(end_states.values())`` always holds.
    """
    return _builder(data).accounting()


def readiness(data: RunData) -> Readiness:
    """Clients signed in (and already ended) when the first session-moving admin action came.

    Args:
        data: the loaded run.
    Returns:
        The readiness; without such an action every client counts up to the end of the run.
    """
    return _builder(data).readiness()


def _ready_s(data: RunData) -> float | None:
    """When the last client first reached XMPPCONNECTED (load clock), None without any."""
    return _builder(data).ready_s()


def mock_processes(rows: Iterable[ServerMetric]) -> dict[str, tuple[FloatArray, FloatArray, FloatArray | None]]:
    """node -> (epoch times, RSS bytes, CPU %) of the mock's process rows (``serverpoll``)."""
    out: dict[str, tuple[list[float], list[float], list[float]]] = defaultdict(lambda: ([], [], []))
    for r in rows:
        if "rss_bytes" in r.values:
            ts, rss, cpu = out[r.node]
            ts.append(r.ts)
            rss.append(r.values["rss_bytes"])
            cpu.append(r.values.get("cpu_percent", float("nan")))
    return {n: (np.asarray(t), np.asarray(r), np.asarray(c)) for n, (t, r, c) in sorted(out.items())}


def soak_of(data: RunData) -> SoakSeries:
    """The per-minute soak series of a loaded run."""
    builder = SoakBuilder(data.info.started_ts)
    for r in data.requests:
        builder.add(r)
    for s in data.request_summaries:
        builder.add_summary(s)
    return builder.build(max(0.0, data.t(data.last_ts)), data.generator, mock_processes(data.server_metrics))


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
    builder = _builder(data)
    health = generator_health(
        data.generator, started_ts=data.info.started_ts, waves=[(w.at_s, w.end_s) for w in waves],
        ready_s=builder.ready_s(), end_s=data.t(data.last_ts))
    return Analysis(
        series=build_series(data), waves=waves, storms=wave_storms, spans=spans,
        predictions=[predict(data, w, s) for w, s in zip(waves, wave_storms)],
        latency=latency_table(data, spans),
        accounting=builder.accounting(), generator=health,
        duration_s=max(0.0, data.t(data.last_ts)), readiness=builder.readiness(),
        failures=failure_table(data.requests, started_ts=data.info.started_ts,
                               summaries=data.request_summaries),
        limits=limits_of(data.waits, data.info), soak=soak_of(data), ready_s=builder.ready_s(),
    )
