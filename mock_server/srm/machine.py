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

import logging
from dataclasses import dataclass, field

from mock_server.params import SrmParameters
from mock_server.srm.events import (
    ALWAYS_CRITICAL, AdminFailover, AdminFallback, AdminRecover, BeginUserMove, CancelTimer, Command,
    DisconnectUsers, Event, HaDisabled, HaEnabled, InitializationDone, MonitoredService, MoveKind, NodeRebooting,
    PeerMessage, PeerMessageReceived, RecordTransition, SendToPeer, ServeSet, ServeUsers, ServiceDown, ServiceUp,
    SrmTransitionError, StartCriticalServices, StartTimer, StopCriticalServices, Timer, TimerFired, UserGroup,
    UsersMoved,
)
from mock_server.srm.states import TABLE, Action, NodeState, PeerMessageKind, Reason, ReasonFrom, Rule, Trigger

__all__ = ["SrmMachine"]

logger = logging.getLogger(__name__)

_S, _T, _A = NodeState, Trigger, Action
_KEEP, _MESSAGE, _FAILURE = ReasonFrom.KEEP, ReasonFrom.MESSAGE, ReasonFrom.FAILURE
_DELAY_STATES = frozenset({_S.NORMAL, _S.BACKUP})  # where a critical service down starts the delay
_PEER_READY = frozenset({_S.INITIALIZING, _S.NORMAL})
_PEER_FAILED = frozenset({_S.IDLE, _S.FAILED_OVER, _S.FAILED_OVER_CRITICAL_DOWN})
_MESSAGE_TRIGGERS = {
    PeerMessageKind.TAKE_OVER_REQUEST: _T.TAKE_OVER_REQUEST, PeerMessageKind.TAKE_OVER_FAILED: _T.TAKE_OVER_FAILED,
    PeerMessageKind.TAKE_BACK_REQUEST: _T.TAKE_BACK_REQUEST, PeerMessageKind.RELEASED: _T.RELEASED,
    PeerMessageKind.TAKE_BACK_FAILED: _T.TAKE_BACK_FAILED, PeerMessageKind.ENTER_FAILED_MODE: _T.ENTER_FAILED_MODE,
    PeerMessageKind.RECOVER: _T.RECOVER,
}


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
