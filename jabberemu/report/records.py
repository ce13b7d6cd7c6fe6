"""Typed records of one run's raw data (the run-data formats of docs/ARCHITECTURE.md).

Every record carries ``ts`` = Unix epoch seconds (float); the report puts them on the *load
clock* ``t = ts - run.started_ts``. Client state names (``XMPPCONNECTED``, ``FAILOVER`` ...) are
the Jabber client states of the Cisco Planning Guide for Cisco Jabber 14.1, "Client Behavior
During a Failover", as written by ``jabberemu.core.states``; the report keeps them as the strings
found in the file so a newer client's extra states still load.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

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


class ActionKind(enum.Enum):
    """Admin action recorded in ``run.json`` ``actions[].action`` (mock admin API verbs).

    Unknown verbs load as ``OTHER`` (the raw verb stays in ``Action.name``).
    """

    FAILOVER = "failover"
    FALLBACK = "fallback"
    NODE_KILL = "node-kill"
    NODE_RESTART = "node-restart"
    SERVICE_DOWN = "service-down"
    SERVICE_UP = "service-up"
    PARTITION = "partition"
    HEAL = "heal"
    RECOVER = "recover"
    HA_ENABLE = "ha-enable"
    HA_DISABLE = "ha-disable"
    MARK = "mark"  # an operator's action on a real pair, recorded with --drill mark:TEXT@T
    OTHER = "other"

    @classmethod
    def parse(cls, verb: str) -> ActionKind:
        """Map a recorded verb (``failover``, ``node_kill``, ``kill``, ``service-stop`` ...) to a kind.

        Args:
            verb: the ``action`` string of a ``run.json`` action, any case, ``_`` or ``-``.
        Returns:
            The kind; ``OTHER`` when the verb is not known.
        """
        key = verb.strip().lower().replace("_", "-").replace(" ", "-").split(":", 1)[0]  # "service-stop:SERVICE"
        return _ACTION_ALIASES.get(key, cls.OTHER)

    @property
    def moves_sessions_away(self) -> bool:
        """True for actions that make a node drop its users (a failover-type HA event)."""
        return self in (ActionKind.FAILOVER, ActionKind.NODE_KILL, ActionKind.SERVICE_DOWN,
                        ActionKind.PARTITION)

    @property
    def starts_waves(self) -> bool:
        """True for actions that may start a re-login wave: those that move sessions away, the ones
        that bring them back (Fallback, Recover), enabling HA (with a critical service down it fails
        over at once) and an operator's mark on a real pair. Not a service restart, a node restart
        or a heal: they move nobody by themselves (docs/srm.md)."""
        return self.moves_sessions_away or self in (ActionKind.FALLBACK, ActionKind.RECOVER, ActionKind.HA_ENABLE,
                                                    ActionKind.MARK)


_ACTION_ALIASES: dict[str, ActionKind] = {k.value: k for k in ActionKind}
_ACTION_ALIASES.update({
    "kill": ActionKind.NODE_KILL, "node-kill": ActionKind.NODE_KILL,
    "restart": ActionKind.NODE_RESTART, "service-stop": ActionKind.SERVICE_DOWN,
    "stop-service": ActionKind.SERVICE_DOWN, "service-start": ActionKind.SERVICE_UP,
    "start-service": ActionKind.SERVICE_UP, "enable-ha": ActionKind.HA_ENABLE,
    "disable-ha": ActionKind.HA_DISABLE,
})


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


@dataclass(frozen=True, kw_only=True, slots=True)
class StateRecord:
    """``type: state`` — a client machine transition (``from`` -> ``to``) on ``node``.

    ``round``: the re-login round entered (0 initial login and connected, 1 session re-login,
    2 fresh sign-in after a failed round one); None in files that lack it.
    """

    ts: float
    client: str
    from_state: str
    to_state: str
    node: str | None
    reason: str | None
    round: int | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class HaEventRecord:
    """``type: ha_event`` — the client lost its session on ``node``; ``cls`` classifies how
    (``stream-error:system-shutdown``, ``connection-reset``, ``ping-timeout`` ...)."""

    ts: float
    client: str
    node: str | None
    cls: str


@dataclass(frozen=True, kw_only=True, slots=True)
class WaitRecord:
    """``type: wait`` — the re-login wait drawn after an HA event from the cached limits."""

    ts: float
    client: str
    wait_s: float
    lower_s: float
    upper_s: float

    def __post_init__(self) -> None:
        if self.wait_s < 0 or self.upper_s < self.lower_s:
            raise ValueError(f"bad wait {self.wait_s} in [{self.lower_s}, {self.upper_s}]")


@dataclass(frozen=True, kw_only=True, slots=True)
class RequestRecord:
    """``type: request`` — one measurement (Locust request_type / name, see ARCHITECTURE.md).

    ``response_time_ms`` is ``None`` when the sample has no response time (a request cut short);
    such samples never enter percentiles (locustio/locust#3472). ``ts`` is when the answer (or the
    failure) came, so the request started at ``ts - response_time_ms / 1000``. ``cause``: failure
    class of a failed request (``soap-fault:server-busy``, ``timeout:soap`` ...), None on success
    or when the writer did not know it.
    """

    ts: float
    client: str
    request_type: str
    name: str
    node: str | None
    response_time_ms: float | None
    ok: bool
    error: str | None
    cause: str | None = None

    @property
    def start_ts(self) -> float:
        """When the request was sent (``ts`` when the response time is unknown)."""
        return self.ts - (self.response_time_ms or 0.0) / 1000.0


@dataclass(frozen=True, kw_only=True, slots=True)
class ConnectedRecord:
    """``type: connected`` — the client reached XMPPCONNECTED on ``node``.

    ``relogin`` is True after an HA event; ``recovery_s`` is then HA event -> XMPPCONNECTED as
    measured by the client (``None``: the report uses ``ts`` minus the HA event's ``ts``).
    """

    ts: float
    client: str
    node: str | None
    relogin: bool
    recovery_s: float | None


@dataclass(frozen=True, kw_only=True, slots=True)
class EndRecord:
    """``type: end`` — the client's final state and its reason (``LOGGED_OUT``, ``GAVE_UP`` ...)."""

    ts: float
    client: str
    state: str
    reason: str | None


@dataclass(frozen=True, kw_only=True, slots=True)
class ServerEvent:
    """One row of the mock's ``/api/events``.

    ``kind`` as the mock writes it: ``transition`` (SRM ``from`` -> ``to`` with ``reason``),
    ``service`` (``service`` -> ``to`` running/stopped), ``admin`` (``action``: failover,
    fallback, kill, partition ...), ``process`` (``action`` started/exited), ``disconnect``.
    """

    ts: float
    node: str | None
    kind: str
    from_state: str | None
    to_state: str | None
    reason: str | None
    action: str | None = None
    service: str | None = None

    @property
    def label(self) -> str:
        """Short text for a timeline marker."""
        node = (self.node or "pair").split(".")[0]
        if self.kind == "service":
            return f"{node}: {self.service or 'service'} {self.to_state or ''}".strip()
        if self.action:
            return f"{node}: {self.kind} {self.action}"
        return f"{node}: {self.to_state}" + (f" ({self.reason})" if self.reason else "")


@dataclass(frozen=True, kw_only=True, slots=True)
class ServerMetric:
    """One node's row of the mock's ``/api/metrics``; ``values`` holds every numeric field."""

    ts: float
    node: str
    values: Mapping[str, float]


@dataclass(frozen=True, kw_only=True, slots=True)
class GeneratorSample:
    """``generator.jsonl`` — load-generator health of one worker over the second before ``ts``
    (``report.health`` says what each figure is; older files carry ``loop_lag_ms`` only)."""

    ts: float
    worker: str
    cpu_percent: float | None
    loop_lag_ms: float | None
    stalled_ms: float | None = None
    gc_ms: float | None = None
    gc_max_ms: float | None = None
    rss_bytes: float | None = None


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
        for records in (self.states, self.ha_events, self.waits, self.requests, self.connected,
                        self.ends, self.server_events, self.generator):
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
