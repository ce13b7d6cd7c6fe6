"""The report's view of one run: ``run.json`` (:class:`RunInfo`, its actions) and :class:`RunData`.

The typed records of the data files live in the run-data schema, :mod:`jabberemu.rundata.records`,
and are re-exported here. Every record carries ``ts`` = Unix epoch seconds (float); the report puts
them on the *load clock* ``t = ts - run.started_ts``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from jabberemu.rundata.actions import ActionKind
from jabberemu.rundata.records import (
    ConnectedRecord,
    EndRecord,
    GeneratorSample,
    HaEventRecord,
    RequestRecord,
    RequestSummaryRecord,
    ServerEvent,
    ServerMetric,
    StateRecord,
    WaitRecord,
)

__all__ = [
    "CONNECTED_STATE",
    "Action",
    "ActionKind",
    "ConnectedRecord",
    "EndRecord",
    "GeneratorSample",
    "HaEventRecord",
    "PlannedAction",
    "RequestRecord",
    "RequestSummaryRecord",
    "RunData",
    "RunInfo",
    "ServerEvent",
    "ServerMetric",
    "StateRecord",
    "WaitRecord",
]

#: The client state in which a Jabber client has a working XMPP session.
CONNECTED_STATE = "XMPPCONNECTED"


def _check_ts(ts: float) -> None:
    if not math.isfinite(ts):
        raise ValueError(f"ts must be a finite epoch time, got {ts!r}")


@dataclass(frozen=True, kw_only=True, slots=True)
class Action:
    """One admin action of ``run.json`` ``actions``: ``{"ts", "action", "node"}``.

    ``error``: why the admin call failed (``"HTTP 400: unknown node"``, a connection error), None
    when it was accepted or only recorded.
    """

    ts: float
    name: str
    node: str | None
    kind: ActionKind
    error: str | None = None

    def __post_init__(self) -> None:
        _check_ts(self.ts)


@dataclass(frozen=True, kw_only=True, slots=True)
class PlannedAction:
    """One item of the drill as planned (``run.json`` ``planned_actions``): name, node, when."""

    name: str
    node: str | None
    at_s: float
    after_ready: bool = False
    kind: ActionKind = ActionKind.OTHER


@dataclass(frozen=True, kw_only=True, slots=True)
class RunInfo:
    """``run.json``.

    Fields beyond the contract that the report reads when present:
    ``ended_ts`` (epoch s, end of the load; else the last record's ts),
    ``max_login_wait_s`` (the bound on a wave's p99 CPA login wait; None: the verdict's default),
    ``planned_actions`` (the drill as planned, to tell actions not injected) and
    ``critical_service_delay_s`` (shown only). Everything else lands in ``extra``.
    """

    run_id: str
    started_ts: float
    clients: int | None
    lower_s: float | None
    upper_s: float | None
    server_login_rate: float | None
    recovery_margin_s: float
    actions: tuple[Action, ...]
    partial: bool
    ended_ts: float | None = None
    max_login_wait_s: float | None = None
    planned_actions: tuple[PlannedAction, ...] = ()
    extra: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_ts(self.started_ts)
        if self.lower_s is not None and self.upper_s is not None and self.upper_s < self.lower_s:
            raise ValueError(f"upper_s {self.upper_s} < lower_s {self.lower_s}")
        if self.server_login_rate is not None and self.server_login_rate <= 0:
            raise ValueError(f"server_login_rate must be > 0, got {self.server_login_rate}")
        if self.recovery_margin_s < 0:
            raise ValueError(f"recovery_margin_s must be >= 0, got {self.recovery_margin_s}")
        if self.max_login_wait_s is not None and not self.max_login_wait_s > 0:
            raise ValueError(f"max_login_wait_s must be > 0, got {self.max_login_wait_s}")


@dataclass(kw_only=True)
class RunData:
    """Everything loaded from one run directory, records sorted by ``ts``.

    ``warnings`` lists what the loader tolerated (truncated last line, missing optional file,
    unknown record type) in words fit for the report.
    """

    run_dir: Path
    info: RunInfo
    states: list[StateRecord] = field(default_factory=list)
    ha_events: list[HaEventRecord] = field(default_factory=list)
    waits: list[WaitRecord] = field(default_factory=list)
    requests: list[RequestRecord] = field(default_factory=list)
    request_summaries: list[RequestSummaryRecord] = field(default_factory=list)
    connected: list[ConnectedRecord] = field(default_factory=list)
    ends: list[EndRecord] = field(default_factory=list)
    server_events: list[ServerEvent] = field(default_factory=list)
    server_metrics: list[ServerMetric] = field(default_factory=list)
    generator: list[GeneratorSample] = field(default_factory=list)
    locust_stats: list[dict[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def actions(self) -> tuple[Action, ...]:
        """Admin actions: ``run.json`` ``actions``, or, when it lists none, the ``admin`` rows of
        ``server_events.jsonl`` (the mock records every admin API call)."""
        if self.info.actions:
            return self.info.actions
        return tuple(Action(ts=e.ts, name=e.action, node=e.node, kind=ActionKind.parse(e.action))
                     for e in self.server_events if e.kind == "admin" and e.action and e.action != "parameters")

    def t(self, ts: float) -> float:
        """Load-clock time (s since ``started_ts``) of an epoch ``ts``."""
        return ts - self.info.started_ts

    @property
    def last_ts(self) -> float:
        """End of the run: ``run.json`` ``ended_ts`` or the latest record's ts."""
        if self.info.ended_ts is not None:
            return self.info.ended_ts
        latest = self.info.started_ts
        for records in (self.states, self.ha_events, self.waits, self.requests, self.request_summaries,
                        self.connected, self.ends, self.server_events, self.generator):
            if records:
                latest = max(latest, records[-1].ts)
        return latest

    @property
    def clients(self) -> list[str]:
        """Every client id that appears in any client record, sorted."""
        seen: set[str] = set()
        for records in (self.states, self.ha_events, self.waits, self.requests, self.connected,
                        self.ends):
            seen.update(r.client for r in records)
        return sorted(seen)
