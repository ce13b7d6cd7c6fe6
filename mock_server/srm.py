"""Server Recovery Manager (SRM) of one IM and Presence node: a pure, table-driven state machine.

Each node process runs one :class:`SrmMachine`. The two machines of a Presence Redundancy Group talk
only through :class:`PeerMessage` frames (heartbeats and the small take-over / take-back protocol
below) carried by the node's peer link, which must deliver frames in order (TCP). The machine owns no
clock and does no I/O: ``handle(event) -> list[Command]``; the caller runs timers, services, user
moves and the peer link, and feeds results back as events.

Sources (behaviour copied from the real system):
  * "Configuration and Administration of IM and Presence Service" 12.5(1), chapter "Configure
    Redundancy and High Availability": node states and reasons, the pair-state table ("Presence
    Redundancy Group Node Status"), manual failover / fallback / recovery, automatic fallback,
    SRM service parameters.
  * TechNote 200958 "IM and Presence Server High Availability": heartbeats, critical services,
    ``utils ha status``.
  * DOMAIN.md (project), which summarises both; choices marked **our choice** there are ours.

Peer protocol (every frame also counts as a heartbeat: it restarts the peer-silence timer and
updates the peer's last known state):
  * failover: failing node -> TAKE_OVER_REQUEST(reason); peer: Taking Over, serves both user sets,
    moves the users (``BeginUserMove``); on ``UsersMoved(ok)`` -> TAKE_OVER_DONE or TAKE_OVER_FAILED.
  * fallback: the Idle / Failed Over node (the one the admin presses Fallback on, as in CUCM's
    "Presence Redundancy Group Configuration" page and ``utils ha fallback <node>``) ->
    TAKE_BACK_REQUEST(reason); backup: Falling Back, disconnects the failed-over users, RELEASED;
    home: serves its users again, moves them, TAKE_BACK_DONE or TAKE_BACK_FAILED.
  * automatic recovery (critical service down on the backup while its peer is Failed Over, i.e.
    healthy): the backup sends RELEASED unasked, the peer takes its users back, and then the backup
    fails over its own users to the peer, so all users move (Cisco: "the backup activated node fails
    due to a critical service failure, and the peer node is in the Failed Over state and supports
    the automatic recovery fallback"). If the peer is not Failed Over: both Running in Failed Mode.
  * ENTER_FAILED_MODE(reason): the sender went Running in Failed Mode; the receiver follows.
  * RECOVER: admin Recover pressed on the peer (press it on either node; the other follows).
  * REBOOTING: sent by a node shutting down on purpose; the peer reports Peer Reboot instead of
    Peer Down when its heartbeat timeout then fires (our choice).

Split ownership (our choice, per DOMAIN.md): a node Running in Backup Mode that hears a peer which
is Normal or also in backup mode (a healed partition), or a Normal node hearing a peer in backup
mode, goes Running in Failed Mode (Peer Down) and tells the peer; both stay there serving what they
served until the admin presses Recover (both restart as Initializing).
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from mock_server.params import SrmParameters

__all__ = [
    "ALWAYS_CRITICAL", "Action", "TABLE", "TKHASERVERSTATE", "AdminFailover", "AdminFallback", "AdminRecover",
    "CancelTimer", "Command", "DisconnectUsers", "Event", "HaDisabled", "HaEnabled", "InitializationDone",
    "MonitoredService", "MoveKind", "NodeRebooting", "NodeState", "PeerMessage", "PeerMessageKind",
    "PeerMessageReceived", "Reason", "RecordTransition", "Rule", "SendToPeer", "ServeSet", "ServeUsers",
    "ServiceDown", "ServiceUp", "SrmError", "SrmMachine", "SrmTransitionError", "StartCriticalServices",
    "StartTimer", "BeginUserMove", "StopCriticalServices", "Timer", "TimerFired", "Trigger", "UserGroup",
    "UsersMoved", "mermaid_diagram",
]

logger = logging.getLogger(__name__)


class NodeState(enum.Enum):
    """SRM node states; ``.value`` is the text Cisco shows (CUCM page and ``utils ha status``)."""

    INITIALIZING = "Initializing"
    NORMAL = "Normal"
    IDLE = "Idle"
    BACKUP = "Running in Backup Mode"
    TAKING_OVER = "Taking Over"
    FAILING_OVER = "Failing Over"
    FAILED_OVER = "Failed Over"
    FAILED_OVER_CRITICAL_DOWN = "Failed Over with Critical Services not Running"
    FALLING_BACK = "Falling Back"
    TAKING_BACK = "Taking Back"
    FAILED_MODE = "Running in Failed Mode"
    UNKNOWN = "Unknown"


class Reason(enum.Enum):
    """Reasons shown beside the state; ``.value`` is Cisco's text."""

    NORMAL = "Normal"
    ON_ADMIN_REQUEST = "On Admin Request"
    AUTOMATIC_FALLBACK = "Automatic Fallback"
    INITIALIZATION = "Initialization"
    CRITICAL_SERVICE_DOWN = "Critical Service Down"
    DATABASE_FAILURE = "Database Failure"
    PEER_DOWN = "Peer Down"
    PEER_REBOOT = "Peer Reboot"
    PEER_DOWN_DURING_INITIALIZATION = "Peer Down During Initialization"
    START_OF_CRITICAL_SERVICES_FAILED = "Start of Critical Services Failed"
    TAKE_OVER_USERS_FAILED = "Take Over Users Failed"
    TAKE_BACK_USERS_FAILED = "Take Back Users Failed"
    UNKNOWN = "Unknown"
    HA_NOT_ENABLED = "High Availability Not Enabled"


#: ``enterprisenode.tkhaserverstate``: 2 idle, 3 normal, 4 backup are Cisco's; the rest are our choice.
TKHASERVERSTATE: dict[NodeState, int] = {
    NodeState.UNKNOWN: 0, NodeState.INITIALIZING: 1, NodeState.IDLE: 2, NodeState.NORMAL: 3,
    NodeState.BACKUP: 4, NodeState.TAKING_OVER: 5, NodeState.FAILING_OVER: 6, NodeState.FAILED_OVER: 7,
    NodeState.FAILED_OVER_CRITICAL_DOWN: 8, NodeState.FALLING_BACK: 9, NodeState.TAKING_BACK: 10,
    NodeState.FAILED_MODE: 11,
}


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


class PeerMessageKind(enum.Enum):
    """Frames of the peer protocol (module docstring)."""

    HEARTBEAT = "heartbeat"
    TAKE_OVER_REQUEST = "take-over-request"
    TAKE_OVER_DONE = "take-over-done"
    TAKE_OVER_FAILED = "take-over-failed"
    TAKE_BACK_REQUEST = "take-back-request"
    RELEASED = "released"
    TAKE_BACK_DONE = "take-back-done"
    TAKE_BACK_FAILED = "take-back-failed"
    ENTER_FAILED_MODE = "enter-failed-mode"
    RECOVER = "recover"
    REBOOTING = "rebooting"


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


# ---- the table -----------------------------------------------------------------------------------
class Trigger(enum.Enum):
    """Table keys: an event, classified with the facts the machine keeps (services, peer state)."""

    HA_ENABLED = "HA enabled"
    HA_DISABLED = "HA disabled"
    HEARTBEAT = "heartbeat"
    SERVICE_CHANGE = "service change"
    CRITICAL_DOWN = "critical service down"
    CRITICAL_ALL_UP = "critical services up"
    PEER_READY = "peer ready"
    PEER_READY_SERVICES_DOWN = "peer ready, critical service down"
    PEER_BACKUP_ADMIN = "peer in backup mode (admin)"
    PEER_BACKUP = "peer in backup mode"
    PEER_BACKUP_SERVICES_DOWN = "peer in backup mode, critical service down"
    PEER_FAILED_OVER = "peer failed over"
    PEER_TIMEOUT = "heartbeat timeout"
    PEER_TIMEOUT_REBOOT = "heartbeat timeout after reboot notice"
    PEER_TIMEOUT_SERVICES_DOWN = "heartbeat timeout, critical service down"
    SPLIT_OWNERSHIP = "split ownership"
    DELAY_EXPIRED = "critical service delay"
    DELAY_EXPIRED_PEER_FAILED_OVER = "critical service delay, peer failed over"
    AUTO_FALLBACK_EXPIRED = "auto fallback timer"
    ADMIN_FAILOVER = "admin Failover"
    ADMIN_FALLBACK = "admin Fallback"
    ADMIN_RECOVER = "admin Recover"
    TAKE_OVER_REQUEST = "take-over request"
    TAKE_OVER_DONE_ADMIN = "take-over done (admin)"
    TAKE_OVER_DONE = "take-over done"
    TAKE_OVER_DONE_SERVICES_DOWN = "take-over done, critical service down"
    TAKE_OVER_FAILED = "take-over failed"
    TAKE_BACK_REQUEST = "take-back request"
    RELEASED = "released"
    TAKE_BACK_DONE = "take-back done"
    TAKE_BACK_DONE_SERVICES_DOWN = "take-back done, critical service down"
    TAKE_BACK_FAILED = "take-back failed"
    ENTER_FAILED_MODE = "peer in failed mode"
    RECOVER = "peer recovers"
    MOVE_OK = "users moved"
    MOVE_FAILED = "user move failed"


class _R(enum.Enum):
    """Where the new reason comes from when it is not a fixed Reason."""

    KEEP = "keep"
    MESSAGE = "message"
    FAILURE = "failure"


class Action(enum.Enum):
    """Actions a rule runs (turned into commands by the machine)."""

    STOP_SERVICES = "stop services"
    START_SERVICES = "start services"
    SERVE_NONE = "serve none"
    SERVE_OWN = "serve own"
    SERVE_ALL = "serve own and peer's"
    BEGIN_TAKE_OVER = "begin take-over"
    BEGIN_TAKE_BACK = "begin take-back"
    SEND_TAKE_OVER_REQUEST = PeerMessageKind.TAKE_OVER_REQUEST
    SEND_TAKE_OVER_DONE = PeerMessageKind.TAKE_OVER_DONE
    SEND_TAKE_OVER_FAILED = PeerMessageKind.TAKE_OVER_FAILED
    SEND_TAKE_BACK_REQUEST = PeerMessageKind.TAKE_BACK_REQUEST
    SEND_RELEASED = PeerMessageKind.RELEASED
    SEND_TAKE_BACK_DONE = PeerMessageKind.TAKE_BACK_DONE
    SEND_TAKE_BACK_FAILED = PeerMessageKind.TAKE_BACK_FAILED
    SEND_ENTER_FAILED_MODE = PeerMessageKind.ENTER_FAILED_MODE
    SEND_RECOVER = PeerMessageKind.RECOVER


class Rule(NamedTuple):
    """One table entry: the next state, where its reason comes from, the actions to run."""

    to: NodeState
    reason: Reason | _R
    actions: tuple[Action, ...] = ()


_S, _T, _A = NodeState, Trigger, Action
_KEEP, _MESSAGE, _FAILURE = _R.KEEP, _R.MESSAGE, _R.FAILURE


def _table() -> dict[tuple[NodeState, Trigger], Rule]:
    t: dict[tuple[NodeState, Trigger], Rule] = {}
    for s in NodeState:  # facts that never change the state by themselves
        for trig in (_T.HEARTBEAT, _T.SERVICE_CHANGE, _T.CRITICAL_DOWN, _T.CRITICAL_ALL_UP):
            t[s, trig] = Rule(s, _KEEP)
        t[s, _T.HA_DISABLED] = Rule(_S.UNKNOWN, Reason.HA_NOT_ENABLED, (_A.START_SERVICES, _A.SERVE_OWN))
        t[s, _T.HA_ENABLED] = Rule(s, _KEEP)
    to_failed = Rule(_S.FAILED_MODE, _MESSAGE)
    for s in (_S.NORMAL, _S.TAKING_OVER, _S.FAILING_OVER, _S.BACKUP, _S.IDLE, _S.FAILED_OVER,
              _S.FAILED_OVER_CRITICAL_DOWN, _S.TAKING_BACK, _S.FALLING_BACK, _S.FAILED_MODE):
        t[s, _T.ENTER_FAILED_MODE] = to_failed if s is not _S.FAILED_MODE else Rule(s, _KEEP)
    for s in (_S.FAILING_OVER, _S.IDLE, _S.FAILED_OVER, _S.FAILED_OVER_CRITICAL_DOWN, _S.TAKING_BACK):
        t[s, _T.PEER_TIMEOUT] = Rule(_S.FAILED_MODE, Reason.PEER_DOWN)
    take_over = Rule(_S.TAKING_OVER, _MESSAGE, (_A.SERVE_ALL, _A.BEGIN_TAKE_OVER))
    fail_over = (_A.SERVE_NONE, _A.SEND_TAKE_OVER_REQUEST)
    t.update({
        (_S.UNKNOWN, _T.HA_ENABLED): Rule(_S.INITIALIZING, Reason.INITIALIZATION),
        (_S.INITIALIZING, _T.PEER_READY): Rule(_S.NORMAL, Reason.NORMAL, (_A.SERVE_OWN,)),
        (_S.INITIALIZING, _T.PEER_READY_SERVICES_DOWN): Rule(_S.FAILING_OVER, _FAILURE, fail_over),
        (_S.INITIALIZING, _T.PEER_BACKUP_ADMIN): Rule(_S.IDLE, Reason.INITIALIZATION, (_A.STOP_SERVICES, _A.SERVE_NONE)),
        (_S.INITIALIZING, _T.PEER_BACKUP): Rule(_S.FAILED_OVER, Reason.INITIALIZATION, (_A.SERVE_NONE,)),
        (_S.INITIALIZING, _T.PEER_BACKUP_SERVICES_DOWN):
            Rule(_S.FAILED_OVER_CRITICAL_DOWN, Reason.INITIALIZATION, (_A.SERVE_NONE,)),
        (_S.INITIALIZING, _T.PEER_FAILED_OVER): Rule(_S.BACKUP, Reason.INITIALIZATION, (_A.SERVE_ALL,)),
        (_S.INITIALIZING, _T.PEER_TIMEOUT): Rule(_S.BACKUP, Reason.PEER_DOWN_DURING_INITIALIZATION, (_A.SERVE_ALL,)),
        (_S.INITIALIZING, _T.PEER_TIMEOUT_SERVICES_DOWN): Rule(_S.FAILED_MODE, _FAILURE),
        (_S.INITIALIZING, _T.TAKE_OVER_REQUEST): take_over,
        (_S.INITIALIZING, _T.RECOVER): Rule(_S.INITIALIZING, _KEEP),
        (_S.NORMAL, _T.ADMIN_FAILOVER): Rule(_S.FAILING_OVER, Reason.ON_ADMIN_REQUEST, (_A.STOP_SERVICES, *fail_over)),
        (_S.NORMAL, _T.DELAY_EXPIRED): Rule(_S.FAILING_OVER, _FAILURE, fail_over),
        (_S.NORMAL, _T.TAKE_OVER_REQUEST): take_over,
        (_S.NORMAL, _T.PEER_TIMEOUT): Rule(_S.BACKUP, Reason.PEER_DOWN, (_A.SERVE_ALL,)),
        (_S.NORMAL, _T.PEER_TIMEOUT_REBOOT): Rule(_S.BACKUP, Reason.PEER_REBOOT, (_A.SERVE_ALL,)),
        (_S.NORMAL, _T.SPLIT_OWNERSHIP): Rule(_S.FAILED_MODE, Reason.PEER_DOWN, (_A.SEND_ENTER_FAILED_MODE,)),
        (_S.TAKING_OVER, _T.MOVE_OK): Rule(_S.BACKUP, _KEEP, (_A.SEND_TAKE_OVER_DONE,)),
        (_S.TAKING_OVER, _T.MOVE_FAILED): Rule(_S.FAILED_MODE, Reason.TAKE_OVER_USERS_FAILED, (_A.SEND_TAKE_OVER_FAILED,)),
        (_S.TAKING_OVER, _T.PEER_TIMEOUT): Rule(_S.TAKING_OVER, Reason.PEER_DOWN),
        (_S.FAILING_OVER, _T.TAKE_OVER_DONE_ADMIN): Rule(_S.IDLE, _KEEP),
        (_S.FAILING_OVER, _T.TAKE_OVER_DONE): Rule(_S.FAILED_OVER, _KEEP),
        (_S.FAILING_OVER, _T.TAKE_OVER_DONE_SERVICES_DOWN): Rule(_S.FAILED_OVER_CRITICAL_DOWN, _KEEP),
        (_S.FAILING_OVER, _T.TAKE_OVER_FAILED): Rule(_S.FAILED_MODE, Reason.TAKE_OVER_USERS_FAILED),
        # both nodes failing over at once (critical services down on both): nobody can back up
        (_S.FAILING_OVER, _T.TAKE_OVER_REQUEST): Rule(_S.FAILED_MODE, _KEEP, (_A.SEND_ENTER_FAILED_MODE,)),
        (_S.BACKUP, _T.TAKE_BACK_REQUEST): Rule(_S.FALLING_BACK, _MESSAGE, (_A.SERVE_OWN, _A.SEND_RELEASED)),
        (_S.BACKUP, _T.DELAY_EXPIRED): Rule(_S.FAILED_MODE, _FAILURE, (_A.SEND_ENTER_FAILED_MODE,)),
        (_S.BACKUP, _T.DELAY_EXPIRED_PEER_FAILED_OVER): Rule(_S.FALLING_BACK, _FAILURE, (_A.SERVE_OWN, _A.SEND_RELEASED)),
        (_S.BACKUP, _T.SPLIT_OWNERSHIP): Rule(_S.FAILED_MODE, Reason.PEER_DOWN, (_A.SEND_ENTER_FAILED_MODE,)),
        (_S.BACKUP, _T.PEER_TIMEOUT): Rule(_S.BACKUP, _KEEP),
        (_S.IDLE, _T.ADMIN_FALLBACK):
            Rule(_S.TAKING_BACK, Reason.ON_ADMIN_REQUEST, (_A.START_SERVICES, _A.SEND_TAKE_BACK_REQUEST)),
        (_S.FAILED_OVER, _T.ADMIN_FALLBACK): Rule(_S.TAKING_BACK, Reason.ON_ADMIN_REQUEST, (_A.SEND_TAKE_BACK_REQUEST,)),
        (_S.FAILED_OVER, _T.AUTO_FALLBACK_EXPIRED):
            Rule(_S.TAKING_BACK, Reason.AUTOMATIC_FALLBACK, (_A.SEND_TAKE_BACK_REQUEST,)),
        (_S.FAILED_OVER, _T.RELEASED): Rule(_S.TAKING_BACK, _MESSAGE, (_A.SERVE_OWN, _A.BEGIN_TAKE_BACK)),
        (_S.FAILED_OVER, _T.CRITICAL_DOWN): Rule(_S.FAILED_OVER_CRITICAL_DOWN, _KEEP),
        (_S.FAILED_OVER_CRITICAL_DOWN, _T.CRITICAL_ALL_UP): Rule(_S.FAILED_OVER, _KEEP),
        (_S.TAKING_BACK, _T.RELEASED): Rule(_S.TAKING_BACK, _KEEP, (_A.SERVE_OWN, _A.BEGIN_TAKE_BACK)),
        (_S.TAKING_BACK, _T.MOVE_OK): Rule(_S.NORMAL, Reason.NORMAL, (_A.SEND_TAKE_BACK_DONE,)),
        (_S.TAKING_BACK, _T.MOVE_FAILED): Rule(_S.FAILED_MODE, Reason.TAKE_BACK_USERS_FAILED, (_A.SEND_TAKE_BACK_FAILED,)),
        (_S.FALLING_BACK, _T.TAKE_BACK_DONE): Rule(_S.NORMAL, Reason.NORMAL),
        (_S.FALLING_BACK, _T.TAKE_BACK_DONE_SERVICES_DOWN): Rule(_S.FAILING_OVER, _FAILURE, fail_over),
        (_S.FALLING_BACK, _T.TAKE_BACK_FAILED): Rule(_S.FAILED_MODE, Reason.TAKE_BACK_USERS_FAILED),
        (_S.FALLING_BACK, _T.PEER_TIMEOUT): Rule(_S.BACKUP, Reason.PEER_DOWN, (_A.SERVE_ALL,)),
        (_S.FAILED_MODE, _T.ADMIN_RECOVER):
            Rule(_S.INITIALIZING, Reason.INITIALIZATION, (_A.START_SERVICES, _A.SEND_RECOVER)),
        (_S.FAILED_MODE, _T.RECOVER): Rule(_S.INITIALIZING, Reason.INITIALIZATION, (_A.START_SERVICES,)),
        (_S.FAILED_MODE, _T.PEER_TIMEOUT): Rule(_S.FAILED_MODE, _KEEP),
    })
    return t


#: The whole transition table: ``(state, trigger) -> Rule``. Anything missing raises.
TABLE: dict[tuple[NodeState, Trigger], Rule] = _table()

_DELAY_STATES = frozenset({_S.NORMAL, _S.BACKUP})  # where a critical service down starts the delay
_PEER_READY = frozenset({_S.INITIALIZING, _S.NORMAL})
_PEER_FAILED = frozenset({_S.IDLE, _S.FAILED_OVER, _S.FAILED_OVER_CRITICAL_DOWN})
_MESSAGE_TRIGGERS = {
    PeerMessageKind.TAKE_OVER_REQUEST: _T.TAKE_OVER_REQUEST, PeerMessageKind.TAKE_OVER_FAILED: _T.TAKE_OVER_FAILED,
    PeerMessageKind.TAKE_BACK_REQUEST: _T.TAKE_BACK_REQUEST, PeerMessageKind.RELEASED: _T.RELEASED,
    PeerMessageKind.TAKE_BACK_FAILED: _T.TAKE_BACK_FAILED, PeerMessageKind.ENTER_FAILED_MODE: _T.ENTER_FAILED_MODE,
    PeerMessageKind.RECOVER: _T.RECOVER,
}


# ---- the machine ---------------------------------------------------------------------------------
@dataclass
class SrmMachine:
    """The SRM of one node: ``handle(event) -> list[Command]``, one table lookup per event.

    Args:
        node: this node's name (for errors and logs).
        params: SRM parameters (cluster-wide values plus this node's own).
        ha_enabled: start Initializing (True) or Unknown / High Availability Not Enabled (False).
        configured_services: optional services configured and activated here (critical once configured).

    Call :meth:`start` once for the initial commands. Heartbeats are the caller's: every
    ``params.heartbeat_interval_s`` send :meth:`heartbeat` to the peer.
    """

    node: str
    params: SrmParameters = field(default_factory=SrmParameters)
    ha_enabled: bool = True
    configured_services: frozenset[MonitoredService] = frozenset()
    state: NodeState = field(init=False)
    reason: Reason = field(init=False)
    serving: ServeSet = field(init=False, default=ServeSet.NONE)
    services_down: set[MonitoredService] = field(init=False, default_factory=set)
    active_timers: set[Timer] = field(init=False, default_factory=set)
    peer_state: NodeState | None = field(init=False, default=None)
    peer_reason: Reason | None = field(init=False, default=None)
    initialized: bool = field(init=False, default=False)
    _services_stopped: bool = field(init=False, default=False)
    _start_failed: bool = field(init=False, default=False)
    _peer_rebooting: bool = field(init=False, default=False)
    _pending_move: MoveKind | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.state = _S.INITIALIZING if self.ha_enabled else _S.UNKNOWN
        self.reason = Reason.INITIALIZATION if self.ha_enabled else Reason.HA_NOT_ENABLED

    @property
    def critical_services(self) -> frozenset[MonitoredService]:
        """The services whose failure makes this node fail over."""
        return ALWAYS_CRITICAL | self.configured_services

    @property
    def critical_down(self) -> frozenset[MonitoredService]:
        """Critical services now reported down."""
        return frozenset(self.services_down & self.critical_services)

    def start(self) -> list[Command]:
        """Initial commands: serve own users when HA is off, else wait for the peer (init timeout)."""
        if self.state is _S.UNKNOWN:
            return self._serve(ServeSet.OWN)
        return [self._start_timer(Timer.HEARTBEAT_TIMEOUT)]

    def heartbeat(self) -> PeerMessage:
        """The heartbeat frame to send to the peer now."""
        return PeerMessage(kind=PeerMessageKind.HEARTBEAT, sender_state=self.state, sender_reason=self.reason)

    def handle(self, event: Event) -> list[Command]:
        """Apply one event.

        Returns:
            Commands for the caller to carry out, in order.

        Raises:
            SrmTransitionError: the table has no entry for this event in the current state
                (e.g. ``AdminFallback`` while Normal, ``AdminFailover`` while the peer is not Normal,
                ``UsersMoved`` with no move asked for).
        """
        if isinstance(event, TimerFired):
            if event.timer not in self.active_timers:
                logger.debug("%s: stale timer %s ignored", self.node, event.timer.value)
                return []
            self.active_timers.discard(event.timer)
        if isinstance(event, NodeRebooting):
            return [SendToPeer(message=PeerMessage(kind=PeerMessageKind.REBOOTING, sender_state=self.state,
                                                   sender_reason=self.reason))]
        if isinstance(event, UsersMoved):
            if event.move is not self._pending_move:
                raise SrmTransitionError(node=self.node, state=self.state, reason=self.reason, event=event,
                                         trigger=None, detail=f"no {event.move.value} move was asked for")
            self._pending_move = None
            if self.state not in (_S.TAKING_OVER, _S.TAKING_BACK):
                logger.info("%s: %s finished after leaving the move state; ignored", self.node, event.move.value)
                return []
        trigger = self._classify(event)
        rule = TABLE.get((self.state, trigger)) if trigger is not None else None
        if rule is None:
            detail = ""
            if isinstance(event, AdminFailover) and self.state is _S.NORMAL:
                detail = f"the peer is not Normal (last heard: {self.peer_state.value if self.peer_state else 'nothing'})"
            raise SrmTransitionError(node=self.node, state=self.state, reason=self.reason, event=event,
                                     trigger=trigger, detail=detail)
        return self._apply(rule, event)

    # -- classification: the event plus the facts -> a table key ------------------------------------
    def _classify(self, event: Event) -> Trigger | None:
        if isinstance(event, HaEnabled):
            return _T.HA_ENABLED
        if isinstance(event, HaDisabled):
            return _T.HA_DISABLED
        if isinstance(event, InitializationDone):
            self.initialized = True
            if event.failed_services & self.critical_services:
                self._start_failed = True
            self.services_down |= event.failed_services
            return self._init_decision() or _T.HEARTBEAT
        if isinstance(event, (ServiceDown, ServiceUp)):
            was_down = bool(self.critical_down)
            (self.services_down.add if isinstance(event, ServiceDown) else self.services_down.discard)(event.service)
            if not self.critical_down:
                self._start_failed = False
            if not was_down and self.critical_down:
                return _T.CRITICAL_DOWN
            return _T.CRITICAL_ALL_UP if was_down and not self.critical_down else _T.SERVICE_CHANGE
        if isinstance(event, PeerMessageReceived):
            return self._classify_message(event.message)
        if isinstance(event, TimerFired):
            return self._classify_timer(event.timer)
        if isinstance(event, AdminFailover):
            return _T.ADMIN_FAILOVER if self.peer_state is _S.NORMAL else None
        if isinstance(event, AdminFallback):
            return _T.ADMIN_FALLBACK
        if isinstance(event, AdminRecover):
            return _T.ADMIN_RECOVER
        if isinstance(event, UsersMoved):
            return _T.MOVE_OK if event.ok else _T.MOVE_FAILED
        raise TypeError(f"not an SRM event: {event!r}")

    def _init_decision(self) -> Trigger | None:
        """Initializing, started and the peer heard: which way to leave Initializing (None = wait)."""
        if self.state is not _S.INITIALIZING or not self.initialized or self.peer_state is None:
            return None
        down = bool(self.critical_down)
        if self.peer_state in _PEER_READY:
            return _T.PEER_READY_SERVICES_DOWN if down else _T.PEER_READY
        if self.peer_state is _S.BACKUP:
            if self.peer_reason is Reason.ON_ADMIN_REQUEST:
                return _T.PEER_BACKUP_ADMIN
            return _T.PEER_BACKUP_SERVICES_DOWN if down else _T.PEER_BACKUP
        if self.peer_state in _PEER_FAILED:
            return _T.PEER_FAILED_OVER
        return None

    def _classify_message(self, msg: PeerMessage) -> Trigger:
        self.peer_state, self.peer_reason = msg.sender_state, msg.sender_reason
        kind = msg.kind
        if kind is PeerMessageKind.REBOOTING:
            self._peer_rebooting = True
            return _T.HEARTBEAT
        self._peer_rebooting = False
        if kind is PeerMessageKind.TAKE_OVER_DONE:
            if self.reason is Reason.ON_ADMIN_REQUEST:
                return _T.TAKE_OVER_DONE_ADMIN
            return _T.TAKE_OVER_DONE_SERVICES_DOWN if self.critical_down else _T.TAKE_OVER_DONE
        if kind is PeerMessageKind.TAKE_BACK_DONE:
            return _T.TAKE_BACK_DONE_SERVICES_DOWN if self.critical_down else _T.TAKE_BACK_DONE
        if kind is not PeerMessageKind.HEARTBEAT:
            return _MESSAGE_TRIGGERS[kind]
        peer = msg.sender_state
        if (self.state is _S.NORMAL and peer is _S.BACKUP) or (self.state is _S.BACKUP and peer in (_S.NORMAL, _S.BACKUP)):
            return _T.SPLIT_OWNERSHIP
        return self._init_decision() or _T.HEARTBEAT

    def _classify_timer(self, timer: Timer) -> Trigger:
        if timer is Timer.HEARTBEAT_TIMEOUT:
            rebooting, self._peer_rebooting = self._peer_rebooting, False
            self.peer_state = self.peer_reason = None
            if self.state is _S.INITIALIZING and self.critical_down:
                return _T.PEER_TIMEOUT_SERVICES_DOWN
            return _T.PEER_TIMEOUT_REBOOT if rebooting and self.state is _S.NORMAL else _T.PEER_TIMEOUT
        if timer is Timer.CRITICAL_SERVICE_DELAY:
            return _T.DELAY_EXPIRED_PEER_FAILED_OVER if self.peer_state is _S.FAILED_OVER else _T.DELAY_EXPIRED
        return _T.AUTO_FALLBACK_EXPIRED

    # -- applying a rule ------------------------------------------------------------------------------
    def _failure_reason(self) -> Reason:
        if MonitoredService.IDS_DATABASE in self.critical_down:
            return Reason.DATABASE_FAILURE
        return Reason.START_OF_CRITICAL_SERVICES_FAILED if self._start_failed else Reason.CRITICAL_SERVICE_DOWN

    def _apply(self, rule: Rule, event: Event) -> list[Command]:
        old_state, old_reason = self.state, self.reason
        if rule.reason is _KEEP:
            new_reason = self.reason
        elif rule.reason is _MESSAGE:
            assert isinstance(event, PeerMessageReceived) and event.message.reason is not None
            new_reason = event.message.reason
        elif rule.reason is _FAILURE:
            new_reason = self._failure_reason()
        else:
            assert isinstance(rule.reason, Reason)
            new_reason = rule.reason
        self.state, self.reason = rule.to, new_reason
        out: list[Command] = []
        if (old_state, old_reason) != (self.state, self.reason):
            logger.info("%s: SRM %s (%s) -> %s (%s)", self.node, old_state.value, old_reason.value,
                        self.state.value, self.reason.value)
            out.append(RecordTransition(from_state=old_state, to_state=self.state, reason=self.reason))
        for action in rule.actions:
            out.extend(self._run(action))
        if (old_state, old_reason) != (self.state, self.reason) and self.state is not _S.UNKNOWN \
                and not any(isinstance(c, SendToPeer) for c in out):
            out.append(SendToPeer(message=self.heartbeat()))  # tell the peer at once, not at the next beat
        out.extend(self._reconcile_timers(old_state, event))
        return out

    def _run(self, action: Action) -> list[Command]:
        if isinstance(action.value, PeerMessageKind):
            return [SendToPeer(message=PeerMessage(kind=action.value, sender_state=self.state,
                                                   sender_reason=self.reason, reason=self.reason))]
        if action is _A.STOP_SERVICES:
            if self._services_stopped:
                return []
            self._services_stopped = True
            return [StopCriticalServices()]
        if action is _A.START_SERVICES:
            if not self._services_stopped:
                return []
            self._services_stopped = False
            return [StartCriticalServices()]
        if action in (_A.BEGIN_TAKE_OVER, _A.BEGIN_TAKE_BACK):
            self._pending_move = MoveKind.TAKE_OVER if action is _A.BEGIN_TAKE_OVER else MoveKind.TAKE_BACK
            return [BeginUserMove(move=self._pending_move)]
        target = {_A.SERVE_NONE: ServeSet.NONE, _A.SERVE_OWN: ServeSet.OWN, _A.SERVE_ALL: ServeSet.OWN_AND_PEER}[action]
        return self._serve(target)

    def _serve(self, target: ServeSet) -> list[Command]:
        """Change the served set; users of groups no longer served are disconnected (system-shutdown)."""
        if target is self.serving:
            return []
        groups = {ServeSet.NONE: set(), ServeSet.OWN: {UserGroup.OWN},
                  ServeSet.OWN_AND_PEER: {UserGroup.OWN, UserGroup.FAILED_OVER}}
        dropped = groups[self.serving] - groups[target]
        self.serving = target
        out: list[Command] = [DisconnectUsers(group=g) for g in (UserGroup.OWN, UserGroup.FAILED_OVER) if g in dropped]
        out.append(ServeUsers(users=target))
        return out

    def _start_timer(self, timer: Timer) -> StartTimer:
        p = self.params
        delay = {Timer.CRITICAL_SERVICE_DELAY: p.critical_service_delay_s, Timer.AUTO_FALLBACK: p.auto_fallback_delay_s,
                 Timer.HEARTBEAT_TIMEOUT: p.init_heartbeat_timeout_s if self.state is _S.INITIALIZING
                 else p.heartbeat_timeout_s}[timer]
        self.active_timers.add(timer)
        return StartTimer(timer=timer, delay_s=delay)

    def _reconcile_timers(self, old_state: NodeState, event: Event) -> list[Command]:
        """Timers follow from the state and facts (entry/exit actions kept out of the table)."""
        out: list[Command] = []
        if self.state is _S.UNKNOWN:
            self._pending_move = None
            self.peer_state = self.peer_reason = None
            out = [CancelTimer(timer=tm) for tm in Timer if tm in self.active_timers]
            self.active_timers.clear()
            return out
        if self.state is _S.FAILED_MODE:
            self._pending_move = None
        heard = isinstance(event, PeerMessageReceived)
        if heard or (self.state is _S.INITIALIZING and old_state is not _S.INITIALIZING):
            out.append(self._start_timer(Timer.HEARTBEAT_TIMEOUT))
        wanted = {Timer.CRITICAL_SERVICE_DELAY: self.state in _DELAY_STATES and bool(self.critical_down),
                  Timer.AUTO_FALLBACK: self.state is _S.FAILED_OVER and self.params.auto_fallback}
        for timer, want in wanted.items():
            if want and timer not in self.active_timers:
                out.append(self._start_timer(timer))
            elif not want and timer in self.active_timers:
                self.active_timers.discard(timer)
                out.append(CancelTimer(timer=timer))
        return out


_REASON_WORDS = {_R.KEEP: "reason kept", _R.MESSAGE: "reason from peer", _R.FAILURE: "failure reason"}


def mermaid_diagram() -> str:
    """A Mermaid ``stateDiagram-v2`` of :data:`TABLE` (state changes only; HA disabled edges folded)."""
    lines = ["stateDiagram-v2", "    direction LR"]
    for s in NodeState:
        lines.append(f'    state "{s.value}" as {s.name}')
    lines.append("    [*] --> INITIALIZING : HA enabled")
    lines.append("    [*] --> UNKNOWN : HA not enabled")
    for (src, trig), rule in TABLE.items():
        if rule.to is src or trig is _T.HA_DISABLED:
            continue
        reason = rule.reason.value if isinstance(rule.reason, Reason) else _REASON_WORDS[rule.reason]
        lines.append(f"    {src.name} --> {rule.to.name} : {trig.value} / {reason}")
    lines.append("    note right of UNKNOWN : every state goes here on HA disabled")
    return "\n".join(lines) + "\n"
