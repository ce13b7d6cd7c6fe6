"""Two SRM machines wired together; walks DOMAIN.md's pair-state table row by row.

Source of the rows: "Configuration and Administration of IM and Presence Service" 12.5(1),
"Presence Redundancy Group Node Status" (summarised in DOMAIN.md). Node 1 is the failing node.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import pytest

from mock_server.params import SrmParameters
from mock_server.srm import (
    AdminFailover, AdminFallback, AdminRecover, BeginUserMove, CancelTimer, Command, DisconnectUsers, Event,
    HaDisabled, HaEnabled, InitializationDone, MonitoredService, MoveKind, NodeRebooting, NodeState,
    PeerMessage, PeerMessageKind, PeerMessageReceived, Reason, RecordTransition, SendToPeer, ServeSet, ServeUsers, ServiceDown,
    ServiceUp, SrmMachine, SrmTransitionError, StartCriticalServices, StartTimer, StopCriticalServices, Timer,
    TimerFired, UserGroup, UsersMoved,
)

S, R = NodeState, Reason
PE = MonitoredService.PRESENCE_ENGINE


@dataclass
class Pair:
    """Machines 1 and 2; frames sent by one are delivered (in order) as events to the other."""

    params: SrmParameters = field(default_factory=SrmParameters)
    ha: bool = True
    machines: dict[int, SrmMachine | None] = field(default_factory=dict)
    inbox: dict[int, deque[PeerMessage]] = field(default_factory=lambda: {1: deque(), 2: deque()})
    log: dict[int, list[Command]] = field(default_factory=lambda: {1: [], 2: []})
    timers: dict[int, dict[Timer, float]] = field(default_factory=lambda: {1: {}, 2: {}})
    serving: dict[int, ServeSet] = field(default_factory=lambda: {1: ServeSet.NONE, 2: ServeSet.NONE})
    moves: dict[int, MoveKind | None] = field(default_factory=lambda: {1: None, 2: None})
    partitioned: bool = False

    def __post_init__(self) -> None:
        for i in (1, 2):
            self.boot(i, initialize=False)

    def m(self, i: int) -> SrmMachine:
        machine = self.machines[i]
        assert machine is not None, f"node {i} is down"
        return machine

    def boot(self, i: int, *, initialize: bool = True) -> None:
        self.machines[i] = SrmMachine(node=f"imp{i}.example.test", params=self.params, ha_enabled=self.ha)
        self.timers[i], self.serving[i] = {}, ServeSet.NONE
        self._run(i, self.m(i).start())
        if initialize:
            self.send(i, InitializationDone())

    def kill(self, i: int) -> None:
        self.machines[i] = None
        self.inbox[i].clear()
        self.timers[i].clear()

    def _run(self, i: int, commands: list[Command]) -> None:
        for c in commands:
            self.log[i].append(c)
            if isinstance(c, SendToPeer):
                if not self.partitioned and self.machines[3 - i] is not None:
                    self.inbox[3 - i].append(c.message)
            elif isinstance(c, StartTimer):
                self.timers[i][c.timer] = c.delay_s
            elif isinstance(c, CancelTimer):
                self.timers[i].pop(c.timer, None)
            elif isinstance(c, ServeUsers):
                self.serving[i] = c.users
            elif isinstance(c, BeginUserMove):
                self.moves[i] = c.move
        assert set(self.timers[i]) == self.m(i).active_timers

    def send(self, i: int, event: Event, *, deliver: bool = True) -> list[Command]:
        start = len(self.log[i])
        if isinstance(event, UsersMoved):
            assert self.moves[i] is event.move, f"node {i} was not asked to move users"
            self.moves[i] = None
        self._run(i, self.m(i).handle(event))
        if deliver:
            self.deliver()
        return self.log[i][start:]

    def deliver(self) -> None:
        for _ in range(100):
            busy = [i for i in (1, 2) if self.inbox[i]]
            if not busy:
                return
            for i in busy:
                msg = self.inbox[i].popleft()
                if self.machines[i] is not None:
                    self._run(i, self.m(i).handle(PeerMessageReceived(message=msg)))
        raise AssertionError("peer messages ping-pong forever")

    def heartbeats(self) -> None:
        """Both nodes send a heartbeat at the same moment; then deliver everything."""
        if not self.partitioned:
            for i in (1, 2):
                if self.machines[i] is not None and self.machines[3 - i] is not None:
                    self.inbox[3 - i].append(self.m(i).heartbeat())
        self.deliver()

    def fire(self, i: int, timer: Timer) -> float:
        delay = self.timers[i].pop(timer)
        self.send(i, TimerFired(timer=timer))
        return delay

    def state(self, i: int) -> tuple[NodeState, Reason]:
        return self.m(i).state, self.m(i).reason

    def states(self) -> tuple[tuple[NodeState, Reason], tuple[NodeState, Reason]]:
        return self.state(1), self.state(2)


def normal_pair(params: SrmParameters | None = None) -> Pair:
    pair = Pair(params=params or SrmParameters())
    assert pair.states() == ((S.INITIALIZING, R.INITIALIZATION),) * 2
    for i in (1, 2):
        pair.send(i, InitializationDone())
    assert pair.states() == ((S.INITIALIZING, R.INITIALIZATION),) * 2  # nothing heard from the peer yet
    pair.heartbeats()
    assert pair.states() == ((S.NORMAL, R.NORMAL),) * 2
    assert pair.serving == {1: ServeSet.OWN, 2: ServeSet.OWN}
    return pair


def fallback(pair: Pair, reason: Reason = R.ON_ADMIN_REQUEST) -> None:
    """Fallback pressed on node 1 (the Idle / Failed Over node), to Normal | Normal."""
    if reason is R.ON_ADMIN_REQUEST:
        pair.send(1, AdminFallback())
    else:
        pair.fire(1, Timer.AUTO_FALLBACK)
    assert pair.states() == ((S.TAKING_BACK, reason), (S.FALLING_BACK, reason))
    assert pair.serving == {1: ServeSet.OWN, 2: ServeSet.OWN}
    assert DisconnectUsers(group=UserGroup.FAILED_OVER) in pair.log[2]
    assert pair.moves[1] is MoveKind.TAKE_BACK
    pair.send(1, UsersMoved(move=MoveKind.TAKE_BACK))
    assert pair.states() == ((S.NORMAL, R.NORMAL),) * 2


def test_walk_every_row_of_the_pair_table_in_order() -> None:
    pair = normal_pair()
    # Row 1: Normal | Normal (steady)
    assert pair.states() == ((S.NORMAL, R.NORMAL), (S.NORMAL, R.NORMAL))

    # Row 2: admin pressed Failover on node 1
    out = pair.send(1, AdminFailover())
    assert pair.states() == ((S.FAILING_OVER, R.ON_ADMIN_REQUEST), (S.TAKING_OVER, R.ON_ADMIN_REQUEST))
    assert StopCriticalServices() in out and DisconnectUsers(group=UserGroup.OWN) in out
    assert pair.serving == {1: ServeSet.NONE, 2: ServeSet.OWN_AND_PEER}
    assert pair.moves[2] is MoveKind.TAKE_OVER

    # Row 3: manual failover done
    pair.send(2, UsersMoved(move=MoveKind.TAKE_OVER))
    assert pair.states() == ((S.IDLE, R.ON_ADMIN_REQUEST), (S.BACKUP, R.ON_ADMIN_REQUEST))
    assert Timer.AUTO_FALLBACK not in pair.timers[1]  # no automatic fallback after a manual failover

    # Row 4: fallback in progress (admin), then done
    assert StartCriticalServices() in pair.send(1, AdminFallback())
    assert pair.states() == ((S.TAKING_BACK, R.ON_ADMIN_REQUEST), (S.FALLING_BACK, R.ON_ADMIN_REQUEST))
    pair.send(1, UsersMoved(move=MoveKind.TAKE_BACK))
    assert pair.states() == ((S.NORMAL, R.NORMAL), (S.NORMAL, R.NORMAL))

    # Row 5: a critical service down past Critical Service Delay
    pair.send(1, ServiceDown(service=PE))
    assert pair.states() == ((S.NORMAL, R.NORMAL),) * 2
    n = len(pair.log[1])
    assert pair.fire(1, Timer.CRITICAL_SERVICE_DELAY) == 90.0
    assert pair.states() == ((S.FAILING_OVER, R.CRITICAL_SERVICE_DOWN), (S.TAKING_OVER, R.CRITICAL_SERVICE_DOWN))
    assert StopCriticalServices() not in pair.log[1][n:]  # automatic: services are not stopped on purpose
    assert DisconnectUsers(group=UserGroup.OWN) in pair.log[1][n:]
    pair.send(2, UsersMoved(move=MoveKind.TAKE_OVER))
    assert pair.states() == ((S.FAILED_OVER_CRITICAL_DOWN, R.CRITICAL_SERVICE_DOWN),
                             (S.BACKUP, R.CRITICAL_SERVICE_DOWN))

    # Row 6: services back; waiting for manual Fallback (automatic fallback is off by default)
    pair.send(1, ServiceUp(service=PE))
    assert pair.states() == ((S.FAILED_OVER, R.CRITICAL_SERVICE_DOWN), (S.BACKUP, R.CRITICAL_SERVICE_DOWN))
    assert Timer.AUTO_FALLBACK not in pair.timers[1]
    fallback(pair)

    # Row 7: node 1 dies; node 2 runs in backup mode after the heartbeat timeout
    pair.kill(1)
    assert pair.fire(2, Timer.HEARTBEAT_TIMEOUT) == 60.0
    assert pair.state(2) == (S.BACKUP, R.PEER_DOWN)
    assert pair.serving[2] is ServeSet.OWN_AND_PEER
    pair.boot(1)
    pair.heartbeats()
    assert pair.states() == ((S.FAILED_OVER, R.INITIALIZATION), (S.BACKUP, R.PEER_DOWN))
    assert pair.serving[1] is ServeSet.NONE
    fallback(pair)

    # Row 8: both Running in Failed Mode (split ownership after a partition) until Recover
    pair.partitioned = True
    pair.fire(1, Timer.HEARTBEAT_TIMEOUT)
    pair.fire(2, Timer.HEARTBEAT_TIMEOUT)
    assert pair.states() == ((S.BACKUP, R.PEER_DOWN),) * 2
    assert pair.serving == {1: ServeSet.OWN_AND_PEER, 2: ServeSet.OWN_AND_PEER}
    pair.partitioned = False
    pair.heartbeats()
    assert pair.states() == ((S.FAILED_MODE, R.PEER_DOWN),) * 2
    pair.heartbeats()
    assert pair.states() == ((S.FAILED_MODE, R.PEER_DOWN),) * 2  # stays failed until Recover
    n = {i: len(pair.log[i]) for i in (1, 2)}
    pair.send(1, AdminRecover(), deliver=False)
    assert pair.state(1) == (S.INITIALIZING, R.INITIALIZATION)
    pair.deliver()
    assert pair.states() == ((S.NORMAL, R.NORMAL),) * 2  # the peer follows, and heartbeats settle it
    assert pair.serving == {1: ServeSet.OWN, 2: ServeSet.OWN}
    assert all(DisconnectUsers(group=UserGroup.FAILED_OVER) in pair.log[i][n[i]:] for i in (1, 2))


def test_database_failure_reason() -> None:
    pair = normal_pair()
    pair.send(1, ServiceDown(service=MonitoredService.IDS_DATABASE))
    pair.fire(1, Timer.CRITICAL_SERVICE_DELAY)
    pair.send(2, UsersMoved(move=MoveKind.TAKE_OVER))
    assert pair.states() == ((S.FAILED_OVER_CRITICAL_DOWN, R.DATABASE_FAILURE), (S.BACKUP, R.DATABASE_FAILURE))


def test_automatic_fallback_only_when_enabled() -> None:
    pair = normal_pair(SrmParameters(auto_fallback=True, auto_fallback_delay_s=1800))
    pair.send(1, ServiceDown(service=PE))
    pair.fire(1, Timer.CRITICAL_SERVICE_DELAY)
    pair.send(2, UsersMoved(move=MoveKind.TAKE_OVER))
    assert Timer.AUTO_FALLBACK not in pair.timers[1]  # services still down: not healthy yet
    pair.send(1, ServiceUp(service=PE))
    assert pair.timers[1][Timer.AUTO_FALLBACK] == 1800
    pair.send(1, ServiceDown(service=PE))  # down again: the timer stops
    assert pair.state(1) == (S.FAILED_OVER_CRITICAL_DOWN, R.CRITICAL_SERVICE_DOWN)
    assert Timer.AUTO_FALLBACK not in pair.timers[1]
    pair.send(1, ServiceUp(service=PE))
    fallback(pair, R.AUTOMATIC_FALLBACK)


def test_peer_reboot_reason_when_the_peer_announced_its_restart() -> None:
    pair = normal_pair()
    pair.send(1, NodeRebooting())
    pair.kill(1)
    pair.fire(2, Timer.HEARTBEAT_TIMEOUT)
    assert pair.state(2) == (S.BACKUP, R.PEER_REBOOT)


def test_init_timeout_uses_the_init_timeout_and_peer_down_during_initialization() -> None:
    pair = Pair()
    pair.kill(2)
    pair.send(1, InitializationDone())
    assert pair.fire(1, Timer.HEARTBEAT_TIMEOUT) == 120.0
    assert pair.state(1) == (S.BACKUP, R.PEER_DOWN_DURING_INITIALIZATION)
    assert pair.serving[1] is ServeSet.OWN_AND_PEER


def test_heartbeats_restart_the_timeout_with_the_normal_value_after_init() -> None:
    pair = normal_pair()
    pair.heartbeats()
    assert pair.timers == {1: {Timer.HEARTBEAT_TIMEOUT: 60.0}, 2: {Timer.HEARTBEAT_TIMEOUT: 60.0}}


def test_service_back_before_the_delay_means_no_failover() -> None:
    pair = normal_pair()
    pair.send(1, ServiceDown(service=PE))
    assert pair.timers[1][Timer.CRITICAL_SERVICE_DELAY] == 90.0
    out = pair.send(1, ServiceUp(service=PE))
    assert CancelTimer(timer=Timer.CRITICAL_SERVICE_DELAY) in out
    assert pair.m(1).handle(TimerFired(timer=Timer.CRITICAL_SERVICE_DELAY)) == []  # a late firing is stale
    assert pair.states() == ((S.NORMAL, R.NORMAL),) * 2


def test_non_critical_service_down_does_not_fail_over() -> None:
    pair = normal_pair()
    pair.send(1, ServiceDown(service=MonitoredService.MESSAGE_ARCHIVER))  # not configured here
    assert Timer.CRITICAL_SERVICE_DELAY not in pair.timers[1]


def test_configured_optional_service_is_critical() -> None:
    m = SrmMachine(node="n", configured_services=frozenset({MonitoredService.MESSAGE_ARCHIVER}))
    assert MonitoredService.MESSAGE_ARCHIVER in m.critical_services
    m.handle(InitializationDone())
    m.handle(PeerMessageReceived(message=PeerMessage(kind=PeerMessageKind.HEARTBEAT,
                                                     sender_state=S.NORMAL, sender_reason=R.NORMAL)))
    out = m.handle(ServiceDown(service=MonitoredService.MESSAGE_ARCHIVER))
    assert StartTimer(timer=Timer.CRITICAL_SERVICE_DELAY, delay_s=90.0) in out


def test_enabling_ha_while_a_critical_service_is_down_fails_over_at_once() -> None:
    pair = Pair(ha=False)
    assert pair.states() == ((S.UNKNOWN, R.HA_NOT_ENABLED),) * 2
    assert pair.serving == {1: ServeSet.OWN, 2: ServeSet.OWN}
    for i in (1, 2):
        pair.send(i, InitializationDone())
    pair.send(1, ServiceDown(service=PE))
    assert pair.timers[1] == {}  # HA off: no failover timer
    for i in (1, 2):
        pair.send(i, HaEnabled(), deliver=False)
    assert pair.states() == ((S.INITIALIZING, R.INITIALIZATION),) * 2
    assert pair.timers[1] == {Timer.HEARTBEAT_TIMEOUT: 120.0}
    pair.deliver()  # each announced Initializing to the other
    assert pair.states() == ((S.FAILING_OVER, R.CRITICAL_SERVICE_DOWN), (S.TAKING_OVER, R.CRITICAL_SERVICE_DOWN))
    pair.send(2, UsersMoved(move=MoveKind.TAKE_OVER))
    assert pair.states() == ((S.FAILED_OVER_CRITICAL_DOWN, R.CRITICAL_SERVICE_DOWN),
                             (S.BACKUP, R.CRITICAL_SERVICE_DOWN))


def test_start_of_critical_services_failed() -> None:
    pair = Pair()
    pair.send(1, InitializationDone(failed_services=frozenset({MonitoredService.XCP_ROUTER})))
    pair.send(2, InitializationDone())
    pair.heartbeats()
    assert pair.states() == ((S.FAILING_OVER, R.START_OF_CRITICAL_SERVICES_FAILED),
                             (S.TAKING_OVER, R.START_OF_CRITICAL_SERVICES_FAILED))


def test_critical_service_down_on_the_backup_with_peer_failed_over_moves_all_users() -> None:
    pair = normal_pair()
    pair.send(1, ServiceDown(service=PE))
    pair.fire(1, Timer.CRITICAL_SERVICE_DELAY)
    pair.send(2, UsersMoved(move=MoveKind.TAKE_OVER))
    pair.send(1, ServiceUp(service=PE))
    pair.heartbeats()
    assert pair.states() == ((S.FAILED_OVER, R.CRITICAL_SERVICE_DOWN), (S.BACKUP, R.CRITICAL_SERVICE_DOWN))
    pair.send(2, ServiceDown(service=MonitoredService.XCP_ROUTER))
    pair.fire(2, Timer.CRITICAL_SERVICE_DELAY)
    # automatic recovery: the backup releases node 1's users, node 1 takes them back
    assert pair.states() == ((S.TAKING_BACK, R.CRITICAL_SERVICE_DOWN), (S.FALLING_BACK, R.CRITICAL_SERVICE_DOWN))
    pair.send(1, UsersMoved(move=MoveKind.TAKE_BACK))
    # ... then the backup fails its own users over to node 1
    assert pair.states() == ((S.TAKING_OVER, R.CRITICAL_SERVICE_DOWN), (S.FAILING_OVER, R.CRITICAL_SERVICE_DOWN))
    pair.send(1, UsersMoved(move=MoveKind.TAKE_OVER))
    assert pair.states() == ((S.BACKUP, R.CRITICAL_SERVICE_DOWN),
                             (S.FAILED_OVER_CRITICAL_DOWN, R.CRITICAL_SERVICE_DOWN))
    assert pair.serving == {1: ServeSet.OWN_AND_PEER, 2: ServeSet.NONE}


def test_critical_service_down_on_the_backup_after_manual_failover_fails_both() -> None:
    pair = normal_pair()
    pair.send(1, AdminFailover())
    pair.send(2, UsersMoved(move=MoveKind.TAKE_OVER))
    pair.send(2, ServiceDown(service=PE))
    pair.fire(2, Timer.CRITICAL_SERVICE_DELAY)
    assert pair.states() == ((S.FAILED_MODE, R.CRITICAL_SERVICE_DOWN), (S.FAILED_MODE, R.CRITICAL_SERVICE_DOWN))
    n = len(pair.log[1])
    pair.send(2, AdminRecover(), deliver=False)  # Recover may be pressed on either node
    pair.deliver()
    assert StartCriticalServices() in pair.log[1][n:]  # stopped by the manual failover
    # node 2's service is still down: once both restarted, it fails over at once to node 1
    assert pair.states() == ((S.TAKING_OVER, R.CRITICAL_SERVICE_DOWN), (S.FAILING_OVER, R.CRITICAL_SERVICE_DOWN))


@pytest.mark.parametrize("move", [MoveKind.TAKE_OVER, MoveKind.TAKE_BACK])
def test_failed_user_move_puts_both_in_failed_mode(move: MoveKind) -> None:
    pair = normal_pair()
    pair.send(1, AdminFailover())
    if move is MoveKind.TAKE_OVER:
        pair.send(2, UsersMoved(move=move, ok=False))
        expected = R.TAKE_OVER_USERS_FAILED
    else:
        pair.send(2, UsersMoved(move=MoveKind.TAKE_OVER))
        pair.send(1, AdminFallback())
        pair.send(1, UsersMoved(move=move, ok=False))
        expected = R.TAKE_BACK_USERS_FAILED
    assert pair.states() == ((S.FAILED_MODE, expected),) * 2


def test_ha_disabled_goes_unknown_and_serves_own_users() -> None:
    pair = normal_pair()
    pair.send(1, AdminFailover())
    pair.send(2, UsersMoved(move=MoveKind.TAKE_OVER))
    out = {i: pair.send(i, HaDisabled()) for i in (1, 2)}
    assert pair.states() == ((S.UNKNOWN, R.HA_NOT_ENABLED),) * 2
    assert pair.serving == {1: ServeSet.OWN, 2: ServeSet.OWN}
    assert StartCriticalServices() in out[1]
    assert DisconnectUsers(group=UserGroup.FAILED_OVER) in out[2]
    assert pair.timers == {1: {}, 2: {}}
    with pytest.raises(SrmTransitionError):
        pair.send(1, AdminFailover())


def test_transitions_are_recorded() -> None:
    pair = normal_pair()
    pair.send(1, AdminFailover())
    records = [c for c in pair.log[1] if isinstance(c, RecordTransition)]
    assert [(r.from_state, r.to_state, r.reason) for r in records] == [
        (S.INITIALIZING, S.NORMAL, R.NORMAL), (S.NORMAL, S.FAILING_OVER, R.ON_ADMIN_REQUEST)]


@pytest.mark.parametrize("event", [AdminFallback(), AdminRecover()])
def test_admin_actions_not_allowed_when_normal(event: Event) -> None:
    pair = normal_pair()
    with pytest.raises(SrmTransitionError) as info:
        pair.send(1, event)
    assert info.value.state is S.NORMAL and info.value.node == "imp1.example.test"
    assert pair.states() == ((S.NORMAL, R.NORMAL),) * 2


def test_failover_refused_when_the_peer_is_not_normal() -> None:
    pair = normal_pair()
    pair.kill(2)
    pair.fire(1, Timer.HEARTBEAT_TIMEOUT)
    with pytest.raises(SrmTransitionError, match="Running in Backup Mode"):
        pair.send(1, AdminFailover())
    m = SrmMachine(node="imp1.example.test")
    m.start()
    m.handle(InitializationDone())
    m.handle(PeerMessageReceived(message=PeerMessage(kind=PeerMessageKind.HEARTBEAT, sender_state=S.INITIALIZING,
                                                     sender_reason=R.INITIALIZATION)))
    assert m.state is S.NORMAL  # but the peer has not said it is Normal yet
    with pytest.raises(SrmTransitionError, match=r"peer is not Normal \(last heard: Initializing\)"):
        m.handle(AdminFailover())


def test_fallback_on_the_backup_node_is_refused() -> None:
    pair = normal_pair()
    pair.send(1, AdminFailover())
    pair.send(2, UsersMoved(move=MoveKind.TAKE_OVER))
    with pytest.raises(SrmTransitionError):
        pair.send(2, AdminFallback())


def test_unexpected_users_moved_raises() -> None:
    pair = normal_pair()
    with pytest.raises(SrmTransitionError):
        pair.m(1).handle(UsersMoved(move=MoveKind.TAKE_OVER))
