"""Typed run-data records and their wire form (docs/ARCHITECTURE.md, "Run data").

Every record carries ``ts`` = Unix epoch seconds (float), so client workers and the mock merge on one
clock. Client records (``client_events.jsonl``) have a ``type`` (:class:`RecordType`); the wire field
of each attribute is its name except where a class's ``WIRE`` says otherwise (``StateRecord.from_state``
is ``"from"``). Client state names (``XMPPCONNECTED``, ``FAILOVER`` ...) are the Jabber client states
of the Planning Guide for Cisco Jabber 14.1, "Client Behavior During a Failover", kept as the strings
found in the file so that a newer client's extra states still load.

``to_wire`` gives the JSON object a writer puts on one line; ``from_wire`` reads one back and raises
:class:`~jabberemu.rundata.codec.SchemaError` (or ``ValueError``) naming the field when it is bad.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Union

from jabberemu.rundata.codec import (
    Obj,
    SchemaError,
    flag,
    opt_int,
    opt_num,
    opt_text,
    req_num,
    req_text,
)
from jabberemu.rundata.histogram import LatencyHistogram

__all__ = [
    "CLIENT_RECORD_CLASSES",
    "ClientRecord",
    "ConnectedRecord",
    "EndRecord",
    "GeneratorSample",
    "HaEventRecord",
    "RecordType",
    "RequestRecord",
    "RequestSummaryRecord",
    "ServerEvent",
    "ServerMetric",
    "StateRecord",
    "WaitRecord",
    "decode_client_record",
    "metric_rows",
]


class RecordType(enum.Enum):
    """``type`` of a ``client_events.jsonl`` record."""

    STATE = "state"
    HA_EVENT = "ha_event"
    WAIT = "wait"
    REQUEST = "request"
    REQUEST_SUMMARY = "request_summary"
    CONNECTED = "connected"
    END = "end"


@dataclass(frozen=True, kw_only=True, slots=True)
class StateRecord:
    """``type: state`` — a client machine transition (``from`` -> ``to``) on ``node``.

    ``round``: the re-login round entered (0 initial login and connected, 1 session re-login,
    2 fresh sign-in after a failed round one); None in files that lack it.
    """

    TYPE: ClassVar[RecordType] = RecordType.STATE
    ts: float
    client: str
    from_state: str
    to_state: str
    node: str | None
    reason: str | None
    round: int | None = None

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.TYPE.value, "ts": self.ts, "client": self.client, "from": self.from_state,
                "to": self.to_state, "node": self.node, "reason": self.reason, "round": self.round}

    @classmethod
    def from_wire(cls, o: Obj) -> StateRecord:
        return cls(ts=req_num(o, "ts"), client=req_text(o, "client"), from_state=opt_text(o, "from") or "",
                   to_state=req_text(o, "to"), node=opt_text(o, "node"), reason=opt_text(o, "reason"),
                   round=opt_int(o, "round"))


@dataclass(frozen=True, kw_only=True, slots=True)
class HaEventRecord:
    """``type: ha_event`` — the client lost its session on ``node``; ``cls`` classifies how
    (``stream-error:system-shutdown``, ``connection-reset``, ``ping-timeout`` ...)."""

    TYPE: ClassVar[RecordType] = RecordType.HA_EVENT
    ts: float
    client: str
    node: str | None
    cls: str

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.TYPE.value, "ts": self.ts, "client": self.client, "node": self.node, "cls": self.cls}

    @classmethod
    def from_wire(cls, o: Obj) -> HaEventRecord:
        return cls(ts=req_num(o, "ts"), client=req_text(o, "client"), node=opt_text(o, "node"),
                   cls=opt_text(o, "cls") or "unknown")


@dataclass(frozen=True, kw_only=True, slots=True)
class WaitRecord:
    """``type: wait`` — the re-login wait drawn after an HA event from the cached limits (the limits
    the client's node handed out at login: what the header reports); ``round`` 1 or 2."""

    TYPE: ClassVar[RecordType] = RecordType.WAIT
    ts: float
    client: str
    wait_s: float
    lower_s: float
    upper_s: float
    round: int | None = None

    def __post_init__(self) -> None:
        if self.wait_s < 0 or self.upper_s < self.lower_s:
            raise ValueError(f"bad wait {self.wait_s} in [{self.lower_s}, {self.upper_s}]")

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.TYPE.value, "ts": self.ts, "client": self.client, "wait_s": self.wait_s,
                "lower_s": self.lower_s, "upper_s": self.upper_s, "round": self.round}

    @classmethod
    def from_wire(cls, o: Obj) -> WaitRecord:
        return cls(ts=req_num(o, "ts"), client=req_text(o, "client"), wait_s=req_num(o, "wait_s"),
                   lower_s=req_num(o, "lower_s"), upper_s=req_num(o, "upper_s"), round=opt_int(o, "round"))


@dataclass(frozen=True, kw_only=True, slots=True)
class RequestRecord:
    """``type: request`` — one measurement (Locust request_type / name, see ARCHITECTURE.md).

    ``response_time_ms`` is ``None`` when the sample has no response time (a request cut short);
    such samples never enter percentiles (locustio/locust#3472). ``ts`` is when the answer (or the
    failure) came, so the request started at ``ts - response_time_ms / 1000``. ``cause``: failure
    class of a failed request (``soap-fault:server-busy``, ``timeout:soap`` ...), None on success
    or when the writer did not know it.
    """

    TYPE: ClassVar[RecordType] = RecordType.REQUEST
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

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.TYPE.value, "ts": self.ts, "client": self.client, "request_type": self.request_type,
                "name": self.name, "node": self.node, "response_time_ms": self.response_time_ms, "ok": self.ok,
                "error": self.error, "cause": self.cause}

    @classmethod
    def from_wire(cls, o: Obj) -> RequestRecord:
        rt = opt_num(o, "response_time_ms")
        return cls(ts=req_num(o, "ts"), client=req_text(o, "client"), request_type=req_text(o, "request_type"),
                   name=req_text(o, "name"), node=opt_text(o, "node"),
                   response_time_ms=rt if rt is None or rt >= 0 else None, ok=flag(o, "ok", True),
                   error=opt_text(o, "error"), cause=opt_text(o, "cause"))


@dataclass(frozen=True, kw_only=True, slots=True)
class RequestSummaryRecord:
    """``type: request_summary`` — the steady-state requests of one type / name / node over one
    second (``--record-detail summary``; ``rundata.aggregate``), written instead of their
    ``request`` records.

    ``ts`` is the second's start (whole epoch seconds: the requests' own ``ts`` in ``[ts, ts + 1)``);
    ``count`` every request, ``without_response_time`` those without one (never in ``hist``);
    ``failures`` cause -> failed requests (``unknown`` when the writer knew none); ``hist`` the
    response times (``rundata.histogram``: exact count, sum, min and max, percentiles within 1 %).
    """

    TYPE: ClassVar[RecordType] = RecordType.REQUEST_SUMMARY
    ts: float
    request_type: str
    name: str
    node: str | None
    count: int
    failures: Mapping[str, int]
    hist: LatencyHistogram
    without_response_time: int = 0

    @property
    def failed(self) -> int:
        """Failed requests of the second."""
        return sum(self.failures.values())

    def to_wire(self) -> dict[str, Any]:
        h = self.hist
        return {"type": self.TYPE.value, "ts": self.ts, "request_type": self.request_type, "name": self.name,
                "node": self.node, "count": self.count, "failures": dict(self.failures),
                "no_rt": self.without_response_time, "sum_ms": round(h.sum_ms, 3), "min_ms": h.min_ms,
                "max_ms": h.max_ms, "hist": h.to_wire()}

    @classmethod
    def from_wire(cls, o: Obj) -> RequestSummaryRecord:
        failures = o.get("failures") or {}
        hist = o.get("hist") or {}
        if not isinstance(failures, dict) or not all(isinstance(v, int) and not isinstance(v, bool)
                                                     for v in failures.values()):
            raise SchemaError(f"field 'failures' must map causes to counts, got {failures!r}")
        if not isinstance(hist, dict):
            raise SchemaError(f"field 'hist' must be an object, got {hist!r}")
        count = opt_int(o, "count")
        if count is None:
            raise SchemaError("missing field 'count'")
        return cls(ts=req_num(o, "ts"), request_type=req_text(o, "request_type"), name=req_text(o, "name"),
                   node=opt_text(o, "node"), count=count, failures={str(k): int(v) for k, v in failures.items()},
                   without_response_time=opt_int(o, "no_rt") or 0,
                   hist=LatencyHistogram.from_wire(hist, sum_ms=opt_num(o, "sum_ms") or 0.0,
                                                   min_ms=opt_num(o, "min_ms"), max_ms=opt_num(o, "max_ms")))


@dataclass(frozen=True, kw_only=True, slots=True)
class ConnectedRecord:
    """``type: connected`` — the client reached XMPPCONNECTED on ``node``.

    ``relogin`` is True after an HA event; ``recovery_s`` is then HA event -> XMPPCONNECTED as
    measured by the client (``None``: the report uses ``ts`` minus the HA event's ``ts``).
    """

    TYPE: ClassVar[RecordType] = RecordType.CONNECTED
    ts: float
    client: str
    node: str | None
    relogin: bool
    recovery_s: float | None

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.TYPE.value, "ts": self.ts, "client": self.client, "node": self.node,
                "relogin": self.relogin, "recovery_s": self.recovery_s}

    @classmethod
    def from_wire(cls, o: Obj) -> ConnectedRecord:
        return cls(ts=req_num(o, "ts"), client=req_text(o, "client"), node=opt_text(o, "node"),
                   relogin=flag(o, "relogin", False), recovery_s=opt_num(o, "recovery_s"))


@dataclass(frozen=True, kw_only=True, slots=True)
class EndRecord:
    """``type: end`` — the client's final state and its reason (``LOGGED_OUT``, ``GAVE_UP`` ...);
    ``detail`` the machine's words on it, ``error`` the exception of a client that never started."""

    TYPE: ClassVar[RecordType] = RecordType.END
    ts: float
    client: str
    state: str
    reason: str | None
    detail: str | None = None
    error: str | None = None

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.TYPE.value, "ts": self.ts, "client": self.client, "state": self.state,
                "reason": self.reason, "detail": self.detail, "error": self.error}

    @classmethod
    def from_wire(cls, o: Obj) -> EndRecord:
        return cls(ts=req_num(o, "ts"), client=req_text(o, "client"), state=req_text(o, "state"),
                   reason=opt_text(o, "reason"), detail=opt_text(o, "detail"), error=opt_text(o, "error"))


ClientRecord = Union[StateRecord, HaEventRecord, WaitRecord, RequestRecord, RequestSummaryRecord, ConnectedRecord,
                     EndRecord]

CLIENT_RECORD_CLASSES: dict[RecordType, type[Any]] = {
    c.TYPE: c for c in (StateRecord, HaEventRecord, WaitRecord, RequestRecord, RequestSummaryRecord,
                        ConnectedRecord, EndRecord)
}
_DECODERS: dict[str, Callable[[Obj], Any]] = {t.value: c.from_wire for t, c in CLIENT_RECORD_CLASSES.items()}


def decode_client_record(o: Obj) -> ClientRecord | None:
    """Read one ``client_events.jsonl`` object.

    Returns:
        The typed record; None when its ``type`` is unknown (a newer writer: the caller counts it).
    Raises:
        SchemaError, ValueError: ``type`` missing or not a string, a field missing or of the wrong type.
    """
    kind = o.get("type")
    if not isinstance(kind, str):
        raise SchemaError(f"missing or bad field 'type': {kind!r}")
    decoder = _DECODERS.get(kind)
    return None if decoder is None else decoder(o)


@dataclass(frozen=True, kw_only=True, slots=True)
class ServerEvent:
    """One row of the mock's ``/api/events`` (``server_events.jsonl``).

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

    def to_wire(self) -> dict[str, Any]:
        return {"ts": self.ts, "node": self.node, "kind": self.kind, "from": self.from_state, "to": self.to_state,
                "reason": self.reason, "action": self.action, "service": self.service}

    @classmethod
    def from_wire(cls, o: Obj) -> ServerEvent:
        return cls(ts=req_num(o, "ts"), node=opt_text(o, "node"), kind=opt_text(o, "kind") or "transition",
                   from_state=opt_text(o, "from"), to_state=opt_text(o, "to"), reason=opt_text(o, "reason"),
                   action=opt_text(o, "action"), service=opt_text(o, "service"))


@dataclass(frozen=True, kw_only=True, slots=True)
class ServerMetric:
    """One node's row of the mock's ``/api/metrics``; ``values`` holds every numeric field."""

    ts: float
    node: str
    values: Mapping[str, float]

    def to_wire(self) -> dict[str, Any]:
        return {"ts": self.ts, "node": self.node, **self.values}


def metric_rows(o: Obj) -> list[ServerMetric]:
    """Read one ``server_metrics.jsonl`` line: ``{"ts", "node", <numbers>}`` or ``{"ts", "nodes":
    {name: {<numbers>}} | [{"node"...}]}`` (non-numeric fields such as ``state`` are left out)."""
    ts = req_num(o, "ts")
    nodes = o.get("nodes")
    if nodes is None:
        items = [(req_text(o, "node"), o)]
    elif isinstance(nodes, dict):
        items = [(str(k), v) for k, v in nodes.items()]
    elif isinstance(nodes, list):
        items = [(req_text(v, "node") if isinstance(v, dict) else "?", v) for v in nodes]
    else:
        raise SchemaError(f"field 'nodes' must be an object or a list, got {nodes!r}")
    rows = []
    for name, values in items:
        if not isinstance(values, dict):
            raise SchemaError(f"metrics of node {name!r} must be an object")
        numbers = {k: float(v) for k, v in values.items()
                   if k not in ("ts", "node") and isinstance(v, (int, float)) and not isinstance(v, bool)}
        rows.append(ServerMetric(ts=ts, node=name, values=numbers))
    return rows


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

    def to_wire(self) -> dict[str, Any]:
        return {"ts": self.ts, "worker": self.worker, "cpu_percent": self.cpu_percent,
                "loop_lag_ms": self.loop_lag_ms, "stalled_ms": self.stalled_ms, "gc_ms": self.gc_ms,
                "gc_max_ms": self.gc_max_ms, "rss_bytes": self.rss_bytes}

    @classmethod
    def from_wire(cls, o: Obj) -> GeneratorSample:
        return cls(ts=req_num(o, "ts"), worker=opt_text(o, "worker") or "local",
                   cpu_percent=opt_num(o, "cpu_percent"), loop_lag_ms=opt_num(o, "loop_lag_ms"),
                   stalled_ms=opt_num(o, "stalled_ms"), gc_ms=opt_num(o, "gc_ms"),
                   gc_max_ms=opt_num(o, "gc_max_ms"), rss_bytes=opt_num(o, "rss_bytes"))

