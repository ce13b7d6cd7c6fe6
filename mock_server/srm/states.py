"""The states of one node's Server Recovery Manager (SRM) and the one transition table.

Node states and reasons are named as Cisco shows them ("Configuration and Administration of IM and
Presence Service" 12.5(1), chapter "Configure Redundancy and High Availability": the "Presence
Redundancy Group Node Status" table; TechNote 200958 for ``utils ha status``); DOMAIN.md summarises
both, and marks **our choice** where the guides are silent.

:data:`TABLE` maps ``(state, trigger)`` to a :class:`Rule`: the next state, where its reason comes
from, and the actions to run. A trigger is an event classified with the facts the machine keeps
(``srm.machine.SrmMachine._classify``); anything missing from the table raises there.
:func:`mermaid_diagram` draws the table for docs/srm.md. Pure: standard library only.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

__all__ = [
    "TABLE", "TKHASERVERSTATE", "Action", "NodeState", "PeerMessageKind", "Reason", "ReasonFrom", "Rule",
    "Trigger", "mermaid_diagram",
]


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


class PeerMessageKind(enum.Enum):
    """Frames of the peer protocol (the ``srm.machine`` docstring draws it)."""

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


class ReasonFrom(enum.Enum):
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
    reason: Reason | ReasonFrom
    actions: tuple[Action, ...] = ()


_S, _T, _A = NodeState, Trigger, Action
_KEEP, _MESSAGE, _FAILURE = ReasonFrom.KEEP, ReasonFrom.MESSAGE, ReasonFrom.FAILURE


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


_REASON_WORDS = {ReasonFrom.KEEP: "reason kept", ReasonFrom.MESSAGE: "reason from peer", ReasonFrom.FAILURE: "failure reason"}


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
