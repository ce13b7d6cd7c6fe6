"""Inputs to and commands from the client machine: frozen keyword-only dataclasses, checked.

Inputs (:class:`Event`) are what the driver observed; commands (:class:`Command`) are what the
machine wants done; :class:`Record` commands only feed the run log and measurements. Secrets
(session key, one-time password) are excluded from ``repr`` so a logged event never shows them.

A bad field raises :class:`jabberemu.errors.LocalProtocolError` (the caller built a wrong event).

Failure classes (the ``cls`` recorded with an HA event, ARCHITECTURE.md ``ha_event``):
``stream-error:<condition>`` (RFC 6120 §4.9.3), ``connection-reset``, ``connection-closed``,
``connection-refused``, ``dns-failure`` (the node's host name does not resolve), ``ping-timeout``
(XEP-0199), ``soap-fault:<code>``, ``http-error:<status>:<content type>`` (an HTTP error answer
that is no SOAP, e.g. ``http-error:500:text/html``), ``auth-failure:<condition>`` (RFC 6120 §6.5),
``timeout:<stage>``; see :func:`classify`. Two classes are the machine's own verdict on a
``see-other-host`` (RFC 6120 §4.9.3.19, ``core/redirect.py``): ``redirect-loop`` (it names a host
already in the chain of successive redirects) and ``too-many-redirects`` (the chain would pass
``MAX_REDIRECTS``). This is the one vocabulary of failure classes: HA events, state reasons, end
details and the report's error table all use it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from jabberemu.config import NodeAddress, ReloginLimits, SaslMechanism
from jabberemu.core.conditions import (
    Cause,
    CauseKind,
    LossKind,
    SaslCondition,
    Stage,
    StreamCondition,
    TimerPurpose,
)
from jabberemu.core.redirect import RedirectVerdict
from jabberemu.core.states import ClientState, EndReason
from jabberemu.errors import LocalProtocolError

__all__ = [
    "AttemptFailed", "Cause", "CauseKind", "CancelTimer", "Command", "Connected",
    "ConnectionLost", "EnterEndState", "Event", "FetchOtp", "HaEventSeen", "HttpFailed", "LimitsProblems",
    "LossKind", "OperationTimeout", "OtpOk", "PingTimeout", "Record", "RedirectSeen", "SaslCondition",
    "SoapFailed", "SoapLogin", "SoapLoginOk", "SoapLogout", "Stage", "Start", "StartTimer",
    "StateChanged", "StopRequested", "StreamCondition", "StreamError", "TimerFired",
    "TimerPurpose", "WaitDrawn", "XmppAuthFailed", "XmppConnect", "XmppDisconnect", "XmppUp",
    "classify",
]



def _text(name: str, value: Any, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or not value:
        raise LocalProtocolError(f"{name} must be a non-empty string, not {value!r}")


def _kind(name: str, value: Any, cls: type) -> None:
    if not isinstance(value, cls):
        raise LocalProtocolError(f"{name} must be a {cls.__name__}, not {value!r}")


# ----------------------------------------------------------------------------------- inputs ---


class Event:
    """Base of every input to :class:`~jabberemu.core.machine.ClientMachine`."""

    __slots__ = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class Start(Event):
    """The user signs in (Locust ``on_start``)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class StopRequested(Event):
    """The user signs out (Locust ``on_stop``); allowed in every state, idempotent at the end."""


@dataclass(frozen=True, kw_only=True, slots=True)
class SoapLoginOk(Event):
    """CPA ``login`` and ``get-all-config`` both succeeded on ``node``.

    Args:
        node: node name the sign-in went to.
        session_key: CPA session key (never in ``repr``).
        limits: re-login limits from the system config (``ReloginLimits.from_server``).
        primary: the user's primary node as the config names it (XMPP address, CPA URL).
        secondary: its backup, or None.
        problems: what ``ReloginLimits.from_server`` reported (missing or absurd limits).
    """

    node: str
    session_key: str = field(repr=False)
    limits: ReloginLimits
    primary: NodeAddress
    secondary: NodeAddress | None = None
    problems: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _text("node", self.node)
        _text("session_key", self.session_key)
        _kind("limits", self.limits, ReloginLimits)
        _kind("primary", self.primary, NodeAddress)
        if self.secondary is not None:
            _kind("secondary", self.secondary, NodeAddress)
        if not isinstance(self.problems, tuple) or not all(isinstance(p, str) for p in self.problems):
            raise LocalProtocolError("problems must be a tuple of str")


@dataclass(frozen=True, kw_only=True, slots=True)
class SoapFailed(Event):
    """A CPA call failed with a SOAP fault (``errors.SoapFault`` translated by the driver).

    A malformed answer is reported with code ``malformed-response``; ``bad-credentials`` on a
    password login means retrying cannot help; ``bad-onetime-password`` (the session login's OTP was
    refused) only means this node does not know the OTP.
    """

    node: str
    code: str
    reason: str = ""
    sender_fault: bool = False

    def __post_init__(self) -> None:
        _text("node", self.node)
        _text("code", self.code)
        _kind("reason", self.reason, str)
        _kind("sender_fault", self.sender_fault, bool)


@dataclass(frozen=True, kw_only=True, slots=True)
class HttpFailed(Event):
    """A CPA call got an HTTP error status with a body that is no SOAP (``errors.HttpStatusError``)."""

    node: str
    status: int
    content_type: str = ""

    def __post_init__(self) -> None:
        _text("node", self.node)
        if isinstance(self.status, bool) or not isinstance(self.status, int):
            raise LocalProtocolError(f"status must be an int, not {self.status!r}")
        _kind("content_type", self.content_type, str)


@dataclass(frozen=True, kw_only=True, slots=True)
class OtpOk(Event):
    """``get-onetime-password`` answered on ``node``; ``otp`` is never in ``repr``."""

    node: str
    otp: str = field(repr=False)

    def __post_init__(self) -> None:
        _text("node", self.node)
        _text("otp", self.otp)


@dataclass(frozen=True, kw_only=True, slots=True)
class XmppUp(Event):
    """The XMPP session on ``node`` is up: authenticated, bound, session established."""

    node: str

    def __post_init__(self) -> None:
        _text("node", self.node)


@dataclass(frozen=True, kw_only=True, slots=True)
class XmppAuthFailed(Event):
    """SASL ``<failure/>`` from ``node`` (RFC 6120 §6.5)."""

    node: str
    condition: SaslCondition
    text: str | None = None

    def __post_init__(self) -> None:
        _text("node", self.node)
        _kind("condition", self.condition, SaslCondition)


@dataclass(frozen=True, kw_only=True, slots=True)
class StreamError(Event):
    """``node`` closed the stream with a stream error (RFC 6120 §4.9).

    ``text`` of ``see-other-host`` names where to go: the XML character data of the
    ``<see-other-host/>`` element (``host``, ``host:port``, ``[v6]:port``, or a node name), as read,
    not checked (``core/redirect.py`` judges it).
    """

    node: str
    condition: StreamCondition
    text: str | None = None

    def __post_init__(self) -> None:
        _text("node", self.node)
        _kind("condition", self.condition, StreamCondition)
        if self.text is not None:
            _kind("text", self.text, str)


@dataclass(frozen=True, kw_only=True, slots=True)
class ConnectionLost(Event):
    """The TCP connection to ``node`` failed or ended without a stream error."""

    node: str
    cls: LossKind

    def __post_init__(self) -> None:
        _text("node", self.node)
        _kind("cls", self.cls, LossKind)


@dataclass(frozen=True, kw_only=True, slots=True)
class PingTimeout(Event):
    """A XEP-0199 ping to ``node`` got no answer within ``Timeouts.ping_timeout_s``."""

    node: str

    def __post_init__(self) -> None:
        _text("node", self.node)


@dataclass(frozen=True, kw_only=True, slots=True)
class OperationTimeout(Event):
    """An operation on ``node`` passed its deadline (``config.Timeouts``)."""

    node: str
    stage: Stage

    def __post_init__(self) -> None:
        _text("node", self.node)
        _kind("stage", self.stage, Stage)


@dataclass(frozen=True, kw_only=True, slots=True)
class TimerFired(Event):
    """A timer the machine started with :class:`StartTimer` fired."""

    timer_id: int

    def __post_init__(self) -> None:
        if isinstance(self.timer_id, bool) or not isinstance(self.timer_id, int):
            raise LocalProtocolError(f"timer_id must be an int, not {self.timer_id!r}")


def classify(event: Event) -> Cause:
    """The failure class of a failure event.

    Raises:
        LocalProtocolError: ``event`` is not a failure event.
    """
    if isinstance(event, StreamError):
        return Cause(kind=CauseKind.STREAM_ERROR, node=event.node, detail=event.condition.value)
    if isinstance(event, ConnectionLost):
        return Cause(kind=CauseKind(event.cls.value), node=event.node)
    if isinstance(event, PingTimeout):
        return Cause(kind=CauseKind.PING_TIMEOUT, node=event.node)
    if isinstance(event, SoapFailed):
        return Cause(kind=CauseKind.SOAP_FAULT, node=event.node, detail=event.code)
    if isinstance(event, HttpFailed):
        return Cause(kind=CauseKind.HTTP_ERROR, node=event.node,
                     detail=f"{event.status}:{event.content_type or 'no-content-type'}")
    if isinstance(event, XmppAuthFailed):
        return Cause(kind=CauseKind.AUTH_FAILURE, node=event.node, detail=event.condition.value)
    if isinstance(event, OperationTimeout):
        return Cause(kind=CauseKind.TIMEOUT, node=event.node, detail=event.stage.value)
    raise LocalProtocolError(f"{type(event).__name__} is not a failure event")


# --------------------------------------------------------------------------------- commands ---


class Command:
    """Base of everything :meth:`ClientMachine.handle` returns."""

    __slots__ = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class StartTimer(Command):
    """Feed :class:`TimerFired` with this id after ``delay_s`` seconds."""

    timer_id: int
    delay_s: float
    purpose: TimerPurpose

    def __post_init__(self) -> None:
        if not math.isfinite(self.delay_s) or self.delay_s < 0:
            raise LocalProtocolError(f"delay_s must be finite and >= 0, not {self.delay_s!r}")
        _kind("purpose", self.purpose, TimerPurpose)


@dataclass(frozen=True, kw_only=True, slots=True)
class CancelTimer(Command):
    timer_id: int


@dataclass(frozen=True, kw_only=True, slots=True)
class SoapLogin(Command):
    """CPA sign-in on ``node``: SOAP ``login`` then ``get-all-config``.

    With ``otp`` None the login carries the user's password (SOAPCONNECT_P/_S); with an ``otp`` it
    is the *session login* of SOAPCONNECT_SESSION_P/_S, authenticated with the one-time password
    cached at the last sign-in (never in ``repr``). Both pass the node's login admission.

    Answer with :class:`SoapLoginOk`, or :class:`SoapFailed` / :class:`ConnectionLost` /
    :class:`OperationTimeout` (stage SOAP).
    """

    node: NodeAddress
    otp: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        _kind("node", self.node, NodeAddress)
        if self.node.cpa_url is None:
            raise LocalProtocolError(f"node {self.node.name} has no CPA URL")
        _text("otp", self.otp, optional=True)

    @property
    def session(self) -> bool:
        """True for the session login (one-time password), False for the password login."""
        return self.otp is not None


@dataclass(frozen=True, kw_only=True, slots=True)
class FetchOtp(Command):
    """SOAP ``get-onetime-password`` on ``node`` with ``session_key``; answer :class:`OtpOk`."""

    node: NodeAddress
    session_key: str = field(repr=False)


@dataclass(frozen=True, kw_only=True, slots=True)
class SoapLogout(Command):
    """SOAP ``logout`` on ``node`` (best effort; no answer expected)."""

    node: NodeAddress
    session_key: str = field(repr=False)


@dataclass(frozen=True, kw_only=True, slots=True)
class XmppConnect(Command):
    """Open an XMPP session on ``node``: connect, (TLS), SASL, bind, session; answer :class:`XmppUp`.

    ``CISCO-VTG-TOKEN`` carries ``otp``; PLAIN/SCRAM use the user's password (``otp`` None).
    """

    node: NodeAddress
    mechanism: SaslMechanism
    otp: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        _kind("node", self.node, NodeAddress)
        _kind("mechanism", self.mechanism, SaslMechanism)
        if (self.mechanism is SaslMechanism.CISCO_VTG_TOKEN) != (self.otp is not None):
            raise LocalProtocolError("an OTP goes with CISCO-VTG-TOKEN and only with it")


@dataclass(frozen=True, kw_only=True, slots=True)
class XmppDisconnect(Command):
    """Close the XMPP connection to ``node`` if one is open (idempotent)."""

    node: str


@dataclass(frozen=True, kw_only=True, slots=True)
class EnterEndState(Command):
    """The client is finished: cancel whatever is in flight and stop."""

    state: ClientState
    reason: EndReason
    detail: str | None = None


class Record(Command):
    """Base of commands that only feed the run log and measurements (no I/O asked)."""

    __slots__ = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class StateChanged(Record):
    """Run-log ``state`` record. ``node``: the node the new state works with, if any."""

    from_state: ClientState
    to_state: ClientState
    node: str | None
    round: int
    reason: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class HaEventSeen(Record):
    """Run-log ``ha_event``: the connected client lost its session; start the ``ha/relogin`` clock."""

    node: str
    cls: str


@dataclass(frozen=True, kw_only=True, slots=True)
class WaitDrawn(Record):
    """Run-log ``wait`` and measurement ``ha/wait`` (``wait_s * 1000`` ms)."""

    wait_s: float
    lower_s: float
    upper_s: float
    round: int
    limits_node: str | None


@dataclass(frozen=True, kw_only=True, slots=True)
class Connected(Record):
    """Run-log ``connected``; with ``relogin`` True, stop the ``ha/relogin`` clock."""

    node: str
    relogin: bool
    ha_cls: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class AttemptFailed(Record):
    """An attempt in ``state`` on ``node`` failed with class ``cls`` (for logs and reports)."""

    node: str
    state: ClientState
    cls: str


@dataclass(frozen=True, kw_only=True, slots=True)
class LimitsProblems(Record):
    """The limits ``node`` sent were missing or absurd; ``problems`` says how."""

    node: str
    problems: tuple[str, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class RedirectSeen(Record):
    """A ``see-other-host`` from ``node`` and what the machine made of it (``core/redirect.py``).

    Attributes:
        node: the node whose stream carried it.
        text: its ``<see-other-host/>`` text as received (None when empty).
        verdict: FOLLOW (the next XMPP attempt goes to ``target``), MALFORMED (a plain stream
            error), LOOP / TOO_MANY (the attempt failed with that class).
        target: name of the node it points to (None when malformed).
        hop: its place in the chain of successive redirects (1 = the first; 0 when malformed).
    """

    node: str
    text: str | None
    verdict: RedirectVerdict
    target: str | None = None
    hop: int = 0

    def __post_init__(self) -> None:
        _text("node", self.node)
        _kind("verdict", self.verdict, RedirectVerdict)
        _text("target", self.target, optional=True)
