"""What goes into and comes out of one node's SRM machine: events (inputs) and commands (outputs),
the peer-link frame, the nouns they carry (monitored services, timers, served sets, user moves) and
the SRM errors.

Events and commands are frozen keyword-only dataclasses checked on construction; the machine
(``srm.machine``) turns each event into a list of commands and its caller carries them out. Pure:
standard library only.

Exception tree::

    SrmError
    +-- SrmTransitionError   the table has no transition for this event in this state
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from mock_server.srm.states import NodeState, PeerMessageKind, Reason, Trigger

__all__ = [
    "ALWAYS_CRITICAL", "AdminFailover", "AdminFallback", "AdminRecover", "BeginUserMove", "CancelTimer", "Command",
    "DisconnectUsers", "Event", "HaDisabled", "HaEnabled", "InitializationDone", "MonitoredService", "MoveKind",
    "NodeRebooting", "PeerMessage", "PeerMessageReceived", "RecordTransition", "SendToPeer", "ServeSet", "ServeUsers",
    "ServiceDown", "ServiceUp", "SrmError", "SrmTransitionError", "StartCriticalServices", "StartTimer",
    "StopCriticalServices", "Timer", "TimerFired", "UserGroup", "UsersMoved",
]


class MonitoredService(enum.Enum):
    """Services the SRM monitors (admin API slug as value; Cisco's name in ``display_name``)."""

    IDS_DATABASE = "ids-database"
    PRESENCE_ENGINE = "presence-engine"
    XCP_ROUTER = "xcp-router"
    TEXT_CONFERENCE_MANAGER = "text-conference-manager"
    MESSAGE_ARCHIVER = "message-archiver"
    SIP_FEDERATION_CM = "sip-federation-cm"
    XMPP_FEDERATION_CM = "xmpp-federation-cm"

    @property
    def display_name(self) -> str:
        """The service name as Cisco Unified Serviceability lists it."""
        return _DISPLAY[self]


_DISPLAY = {
    MonitoredService.IDS_DATABASE: "A Cisco DB", MonitoredService.PRESENCE_ENGINE: "Cisco Presence Engine",
    MonitoredService.XCP_ROUTER: "Cisco XCP Router",
    MonitoredService.TEXT_CONFERENCE_MANAGER: "Cisco XCP Text Conference Manager",
    MonitoredService.MESSAGE_ARCHIVER: "Cisco XCP Message Archiver",
    MonitoredService.SIP_FEDERATION_CM: "Cisco XCP SIP Federation Connection Manager",
    MonitoredService.XMPP_FEDERATION_CM: "Cisco XCP XMPP Federation Connection Manager",
}
#: Critical on every node; the others only when configured and activated (DOMAIN.md).
ALWAYS_CRITICAL = frozenset({MonitoredService.IDS_DATABASE, MonitoredService.PRESENCE_ENGINE,
                             MonitoredService.XCP_ROUTER})


class Timer(enum.Enum):
    """Timers the machine asks its caller to run."""

    HEARTBEAT_TIMEOUT = "heartbeat-timeout"
    CRITICAL_SERVICE_DELAY = "critical-service-delay"
    AUTO_FALLBACK = "auto-fallback"


class ServeSet(enum.Enum):
    """Which users this node accepts (CPA login, XMPP auth); others get ``see-other-host``."""

    NONE = "none"
    OWN = "own"
    OWN_AND_PEER = "own-and-peer"


class UserGroup(enum.Enum):
    """Users homed on this node, or the peer's users failed over to it."""

    OWN = "own"
    FAILED_OVER = "failed-over"


class MoveKind(enum.Enum):
    """The user move the caller performs after ``BeginUserMove``."""

    TAKE_OVER = "take-over"
    TAKE_BACK = "take-back"


_NEEDS_REASON = frozenset({PeerMessageKind.TAKE_OVER_REQUEST, PeerMessageKind.TAKE_BACK_REQUEST,
                           PeerMessageKind.RELEASED, PeerMessageKind.ENTER_FAILED_MODE})


class SrmError(Exception):
    """Root of the SRM errors (to hang under the mock_server package root once it exists)."""


class SrmTransitionError(SrmError):
    """The table has no transition for this event in this state (e.g. Fallback while Normal).

    Attributes: node, state, reason, event, trigger (the table key that was missing).
    """

    def __init__(self, *, node: str, state: NodeState, reason: Reason, event: Event, trigger: Trigger | None,
                 detail: str = "") -> None:
        what = trigger.name if trigger is not None else type(event).__name__
        super().__init__(f"{node}: no SRM transition for {what} in state {state.value!r} ({reason.value})"
                         + (f": {detail}" if detail else ""))
        self.node, self.state, self.reason, self.event, self.trigger = node, state, reason, event, trigger


@dataclass(frozen=True, kw_only=True)
class PeerMessage:
    """One peer-link frame: its kind, the sender's state and reason, and the reason it asks for."""

    kind: PeerMessageKind
    sender_state: NodeState
    sender_reason: Reason
    reason: Reason | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.kind, PeerMessageKind) or not isinstance(self.sender_state, NodeState) \
                or not isinstance(self.sender_reason, Reason):
            raise TypeError("PeerMessage needs PeerMessageKind, NodeState and Reason members")
        if self.kind in _NEEDS_REASON and not isinstance(self.reason, Reason):
            raise ValueError(f"peer message {self.kind.value} needs a reason")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the newline-delimited JSON peer link."""
        return {"kind": self.kind.value, "state": self.sender_state.value, "state_reason": self.sender_reason.value,
                "reason": self.reason.value if self.reason else None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PeerMessage:
        """Inverse of :meth:`to_dict`. Raises ValueError (or KeyError) on a malformed frame."""
        reason = data.get("reason")
        return cls(kind=PeerMessageKind(data["kind"]), sender_state=NodeState(data["state"]),
                   sender_reason=Reason(data["state_reason"]), reason=Reason(reason) if reason else None)


# ---- events (inputs) ---------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class HaEnabled:
    """The admin set *Enable High Availability* on the Presence Redundancy Group."""


@dataclass(frozen=True, kw_only=True)
class HaDisabled:
    """The admin cleared *Enable High Availability*: -> Unknown (High Availability Not Enabled)."""


@dataclass(frozen=True, kw_only=True)
class InitializationDone:
    """The node's own start-up finished; ``failed_services`` did not start (Start of Critical Services Failed)."""

    failed_services: frozenset[MonitoredService] = frozenset()

    def __post_init__(self) -> None:
        if not all(isinstance(s, MonitoredService) for s in self.failed_services):
            raise TypeError("failed_services must hold MonitoredService members")


@dataclass(frozen=True, kw_only=True)
class PeerMessageReceived:
    """A frame arrived from the peer (a heartbeat or a protocol message)."""

    message: PeerMessage

    def __post_init__(self) -> None:
        if not isinstance(self.message, PeerMessage):
            raise TypeError("message must be a PeerMessage")


@dataclass(frozen=True, kw_only=True)
class TimerFired:
    """A timer started by ``StartTimer`` expired (heartbeat timeout, critical service delay, auto fallback)."""

    timer: Timer

    def __post_init__(self) -> None:
        if not isinstance(self.timer, Timer):
            raise TypeError("timer must be a Timer")


@dataclass(frozen=True, kw_only=True)
class ServiceDown:
    """A monitored service stopped or failed. Not for stops the SRM itself commanded."""

    service: MonitoredService

    def __post_init__(self) -> None:
        if not isinstance(self.service, MonitoredService):
            raise TypeError("service must be a MonitoredService")


@dataclass(frozen=True, kw_only=True)
class ServiceUp:
    """A monitored service that was reported down runs again."""

    service: MonitoredService

    def __post_init__(self) -> None:
        if not isinstance(self.service, MonitoredService):
            raise TypeError("service must be a MonitoredService")


@dataclass(frozen=True, kw_only=True)
class AdminFailover:
    """Admin pressed Failover for this node (allowed when Normal and the peer is Normal)."""


@dataclass(frozen=True, kw_only=True)
class AdminFallback:
    """Admin pressed Fallback for this node: the Idle or Failed Over one, whose users come home."""


@dataclass(frozen=True, kw_only=True)
class AdminRecover:
    """Admin pressed Recover (allowed in Running in Failed Mode; the peer follows)."""


@dataclass(frozen=True, kw_only=True)
class UsersMoved:
    """The caller finished the user move asked for by ``BeginUserMove``; ``ok`` False = it failed."""

    move: MoveKind
    ok: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.move, MoveKind) or not isinstance(self.ok, bool):
            raise TypeError("UsersMoved needs a MoveKind and a bool")


@dataclass(frozen=True, kw_only=True)
class NodeRebooting:
    """This node is about to shut down on purpose (restart): tell the peer (Peer Reboot)."""


Event = (HaEnabled | HaDisabled | InitializationDone | PeerMessageReceived | TimerFired | ServiceDown | ServiceUp
         | AdminFailover | AdminFallback | AdminRecover | UsersMoved | NodeRebooting)


# ---- commands (outputs) ------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class SendToPeer:
    """Send this frame on the peer link (dropped silently when the link is down)."""

    message: PeerMessage


@dataclass(frozen=True, kw_only=True)
class StartTimer:
    """(Re)start a timer: one running timer per name; feed ``TimerFired(timer)`` after ``delay_s``."""

    timer: Timer
    delay_s: float

    def __post_init__(self) -> None:
        if not isinstance(self.timer, Timer) or not self.delay_s >= 0:
            raise ValueError(f"bad StartTimer({self.timer!r}, {self.delay_s!r})")


@dataclass(frozen=True, kw_only=True)
class CancelTimer:
    """Cancel the timer if it runs."""

    timer: Timer


@dataclass(frozen=True, kw_only=True)
class StopCriticalServices:
    """Stop this node's critical services (manual failover; Cisco keeps them stopped until fallback)."""


@dataclass(frozen=True, kw_only=True)
class StartCriticalServices:
    """Start the critical services the SRM stopped (fallback, recover, HA disabled)."""


@dataclass(frozen=True, kw_only=True)
class ServeUsers:
    """Accept exactly this set of users from now on (CPA and XMPP)."""

    users: ServeSet


@dataclass(frozen=True, kw_only=True)
class DisconnectUsers:
    """Close every XMPP stream of this group with this stream error (RFC 6120 4.9.3)."""

    group: UserGroup
    stream_error: str = "system-shutdown"


@dataclass(frozen=True, kw_only=True)
class BeginUserMove:
    """Take the users over (or back) now; answer with ``UsersMoved(move, ok)``."""

    move: MoveKind


@dataclass(frozen=True, kw_only=True)
class RecordTransition:
    """Record a state or reason change (``/api/events``)."""

    from_state: NodeState
    to_state: NodeState
    reason: Reason


Command = (SendToPeer | StartTimer | CancelTimer | StopCriticalServices | StartCriticalServices | ServeUsers
           | DisconnectUsers | BeginUserMove | RecordTransition)

