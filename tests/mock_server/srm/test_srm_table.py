"""Every entry of the SRM table exercised on its own; missing entries raise; the diagram is in step."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import mock_server.srm as srm
from mock_server.params import SrmParameters
from mock_server.srm import (
    TABLE, TKHASERVERSTATE, AdminFailover, AdminFallback, AdminRecover, Event, HaDisabled, HaEnabled,
    InitializationDone, MonitoredService, MoveKind, NodeState, PeerMessage, PeerMessageKind, PeerMessageReceived,
    Reason, SendToPeer, ServiceDown, ServiceUp, SrmMachine, SrmTransitionError, Timer, TimerFired, Trigger,
    UsersMoved, mermaid_diagram,
)

S, R, T, K = NodeState, Reason, Trigger, PeerMessageKind
PE = MonitoredService.PRESENCE_ENGINE


def msg(kind: PeerMessageKind, state: NodeState = S.NORMAL, state_reason: Reason = R.NORMAL,
        reason: Reason | None = R.ON_ADMIN_REQUEST) -> PeerMessageReceived:
    return PeerMessageReceived(message=PeerMessage(kind=kind, sender_state=state, sender_reason=state_reason,
                                                   reason=reason))


def _down(m: SrmMachine) -> None:
    m.services_down.add(PE)


def _timer(timer: Timer) -> Callable[[SrmMachine], Event]:
    def make(m: SrmMachine) -> Event:
        m.active_timers.add(timer)
        return TimerFired(timer=timer)
    return make


def _services_down_then(make: Callable[[SrmMachine], Event]) -> Callable[[SrmMachine], Event]:
    def wrapped(m: SrmMachine) -> Event:
        _down(m)
        return make(m)
    return wrapped


def _peer(state: NodeState, then: Callable[[SrmMachine], Event]) -> Callable[[SrmMachine], Event]:
    def wrapped(m: SrmMachine) -> Event:
        m.peer_state, m.peer_reason = state, R.CRITICAL_SERVICE_DOWN
        return then(m)
    return wrapped


def _reason(reason: Reason, then: Callable[[SrmMachine], Event]) -> Callable[[SrmMachine], Event]:
    def wrapped(m: SrmMachine) -> Event:
        m.reason = reason
        return then(m)
    return wrapped


def _move(kind: MoveKind, ok: bool) -> Callable[[SrmMachine], Event]:
    def make(m: SrmMachine) -> Event:
        m._pending_move = kind
        return UsersMoved(move=kind, ok=ok)
    return make


def _reboot_then_timeout(m: SrmMachine) -> Event:
    m.handle(msg(K.REBOOTING, reason=None))
    return _timer(Timer.HEARTBEAT_TIMEOUT)(m)


def _all_up(m: SrmMachine) -> Event:
    _down(m)
    return ServiceUp(service=PE)


def _heartbeat_from(state: NodeState, reason: Reason = R.PEER_DOWN) -> Callable[[SrmMachine], Event]:
    return lambda m: msg(K.HEARTBEAT, state, reason, None)


#: How to produce each trigger from a machine already put in the rule's source state.
RECIPES: dict[Trigger, Callable[[SrmMachine], Event]] = {
    T.HA_ENABLED: lambda m: HaEnabled(),
    T.HA_DISABLED: lambda m: HaDisabled(),
    T.HEARTBEAT: _heartbeat_from(S.FAILED_MODE),
    T.SERVICE_CHANGE: lambda m: ServiceDown(service=MonitoredService.MESSAGE_ARCHIVER),
    T.CRITICAL_DOWN: lambda m: ServiceDown(service=PE),
    T.CRITICAL_ALL_UP: _all_up,
    T.PEER_READY: _heartbeat_from(S.NORMAL, R.NORMAL),
    T.PEER_READY_SERVICES_DOWN: _services_down_then(_heartbeat_from(S.NORMAL, R.NORMAL)),
    T.PEER_BACKUP_ADMIN: _heartbeat_from(S.BACKUP, R.ON_ADMIN_REQUEST),
    T.PEER_BACKUP: _heartbeat_from(S.BACKUP, R.PEER_DOWN),
    T.PEER_BACKUP_SERVICES_DOWN: _services_down_then(_heartbeat_from(S.BACKUP, R.PEER_DOWN)),
    T.PEER_FAILED_OVER: _heartbeat_from(S.IDLE, R.ON_ADMIN_REQUEST),
    T.PEER_TIMEOUT: _timer(Timer.HEARTBEAT_TIMEOUT),
    T.PEER_TIMEOUT_REBOOT: _reboot_then_timeout,
    T.PEER_TIMEOUT_SERVICES_DOWN: _services_down_then(_timer(Timer.HEARTBEAT_TIMEOUT)),
    T.SPLIT_OWNERSHIP: lambda m: msg(K.HEARTBEAT, S.BACKUP if m.state is S.NORMAL else S.NORMAL, R.PEER_DOWN, None),
    T.DELAY_EXPIRED: _services_down_then(_timer(Timer.CRITICAL_SERVICE_DELAY)),
    T.DELAY_EXPIRED_PEER_FAILED_OVER:
        _services_down_then(_peer(S.FAILED_OVER, _timer(Timer.CRITICAL_SERVICE_DELAY))),
    T.AUTO_FALLBACK_EXPIRED: _timer(Timer.AUTO_FALLBACK),
    T.ADMIN_FAILOVER: _peer(S.NORMAL, lambda m: AdminFailover()),
    T.ADMIN_FALLBACK: lambda m: AdminFallback(),
    T.ADMIN_RECOVER: lambda m: AdminRecover(),
    T.TAKE_OVER_REQUEST: lambda m: msg(K.TAKE_OVER_REQUEST, S.FAILING_OVER, R.ON_ADMIN_REQUEST),
    T.TAKE_OVER_DONE_ADMIN: _reason(R.ON_ADMIN_REQUEST, lambda m: msg(K.TAKE_OVER_DONE, S.BACKUP)),
    T.TAKE_OVER_DONE: _reason(R.CRITICAL_SERVICE_DOWN, lambda m: msg(K.TAKE_OVER_DONE, S.BACKUP)),
    T.TAKE_OVER_DONE_SERVICES_DOWN:
        _services_down_then(_reason(R.CRITICAL_SERVICE_DOWN, lambda m: msg(K.TAKE_OVER_DONE, S.BACKUP))),
    T.TAKE_OVER_FAILED: lambda m: msg(K.TAKE_OVER_FAILED, S.FAILED_MODE),
    T.TAKE_BACK_REQUEST: lambda m: msg(K.TAKE_BACK_REQUEST, S.TAKING_BACK, R.AUTOMATIC_FALLBACK,
                                       R.AUTOMATIC_FALLBACK),
    T.RELEASED: lambda m: msg(K.RELEASED, S.FALLING_BACK, R.CRITICAL_SERVICE_DOWN, R.CRITICAL_SERVICE_DOWN),
    T.TAKE_BACK_DONE: lambda m: msg(K.TAKE_BACK_DONE),
    T.TAKE_BACK_DONE_SERVICES_DOWN: _services_down_then(lambda m: msg(K.TAKE_BACK_DONE)),
    T.TAKE_BACK_FAILED: lambda m: msg(K.TAKE_BACK_FAILED, S.FAILED_MODE),
    T.ENTER_FAILED_MODE: lambda m: msg(K.ENTER_FAILED_MODE, S.FAILED_MODE, R.PEER_DOWN, R.PEER_DOWN),
    T.RECOVER: lambda m: msg(K.RECOVER, S.INITIALIZING, R.INITIALIZATION, None),
    T.MOVE_OK: lambda m: _move(MoveKind.TAKE_OVER if m.state is S.TAKING_OVER else MoveKind.TAKE_BACK, True)(m),
    T.MOVE_FAILED: lambda m: _move(MoveKind.TAKE_OVER if m.state is S.TAKING_OVER else MoveKind.TAKE_BACK, False)(m),
}


def machine_in(state: NodeState, reason: Reason = R.UNKNOWN) -> SrmMachine:
    m = SrmMachine(node="imp1.example.test", params=SrmParameters(auto_fallback=True),
                   ha_enabled=state is not S.UNKNOWN)
    m.start()
    m.initialized = True
    m.state, m.reason = state, reason
    return m


def test_every_trigger_has_a_recipe() -> None:
    assert set(RECIPES) == set(Trigger)


@pytest.mark.parametrize(("key", "rule"), list(TABLE.items()), ids=[f"{s.name}-{t.name}" for s, t in TABLE])
def test_table_entry(key: tuple[NodeState, Trigger], rule: srm.Rule) -> None:
    state, trigger = key
    m = machine_in(state)
    event = RECIPES[trigger](m)
    before_reason = m.reason
    out = m.handle(event)
    assert m.state is rule.to
    if isinstance(rule.reason, Reason):
        expected = rule.reason
    elif rule.reason.value == "keep":
        expected = before_reason
    elif rule.reason.value == "message":
        assert isinstance(event, PeerMessageReceived)
        expected = event.message.reason
    else:
        expected = R.CRITICAL_SERVICE_DOWN
    assert m.reason is expected
    sent = {c.message.kind for c in out if isinstance(c, SendToPeer)}
    for action in rule.actions:
        if isinstance(action.value, PeerMessageKind):
            assert action.value in sent


ILLEGAL = [T.ADMIN_FAILOVER, T.ADMIN_FALLBACK, T.ADMIN_RECOVER, T.TAKE_OVER_REQUEST, T.TAKE_OVER_FAILED,
           T.TAKE_BACK_REQUEST, T.RELEASED, T.TAKE_BACK_DONE, T.TAKE_BACK_FAILED, T.ENTER_FAILED_MODE, T.RECOVER]


@pytest.mark.parametrize(("state", "trigger"),
                         [(s, t) for s in NodeState for t in ILLEGAL if (s, t) not in TABLE],
                         ids=lambda v: v.name)
def test_missing_entries_raise(state: NodeState, trigger: Trigger) -> None:
    m = machine_in(state, R.NORMAL)
    with pytest.raises(SrmTransitionError) as info:
        m.handle(RECIPES[trigger](m))
    assert (info.value.state, info.value.trigger) == (state, trigger)
    assert m.state is state


def test_admin_actions_allowed_exactly_where_domain_says() -> None:
    allowed = {t: {s for (s, trig) in TABLE if trig is t} for t in (T.ADMIN_FAILOVER, T.ADMIN_FALLBACK,
                                                                     T.ADMIN_RECOVER)}
    assert allowed == {T.ADMIN_FAILOVER: {S.NORMAL}, T.ADMIN_FALLBACK: {S.IDLE, S.FAILED_OVER},
                       T.ADMIN_RECOVER: {S.FAILED_MODE}}


def test_every_state_and_reason_is_reachable_from_the_table() -> None:
    targets = {rule.to for rule in TABLE.values()}
    assert targets == set(NodeState)
    reasons = {rule.reason for rule in TABLE.values() if isinstance(rule.reason, Reason)}
    failure_reasons = {R.CRITICAL_SERVICE_DOWN, R.DATABASE_FAILURE, R.START_OF_CRITICAL_SERVICES_FAILED}
    assert reasons | failure_reasons == set(Reason) - {R.UNKNOWN}


def test_cisco_texts_and_tkhaserverstate_codes() -> None:
    assert S.FAILED_OVER_CRITICAL_DOWN.value == "Failed Over with Critical Services not Running"
    assert S.BACKUP.value == "Running in Backup Mode" and S.FAILED_MODE.value == "Running in Failed Mode"
    assert R.HA_NOT_ENABLED.value == "High Availability Not Enabled"
    assert (TKHASERVERSTATE[S.IDLE], TKHASERVERSTATE[S.NORMAL], TKHASERVERSTATE[S.BACKUP]) == (2, 3, 4)
    assert sorted(TKHASERVERSTATE.values()) == list(range(len(NodeState)))


def test_peer_message_round_trip_and_checks() -> None:
    m = PeerMessage(kind=K.TAKE_OVER_REQUEST, sender_state=S.FAILING_OVER, sender_reason=R.ON_ADMIN_REQUEST,
                    reason=R.ON_ADMIN_REQUEST)
    assert m.to_dict() == {"kind": "take-over-request", "state": "Failing Over", "state_reason": "On Admin Request",
                           "reason": "On Admin Request"}
    assert PeerMessage.from_dict(m.to_dict()) == m
    with pytest.raises(ValueError):
        PeerMessage(kind=K.TAKE_OVER_REQUEST, sender_state=S.NORMAL, sender_reason=R.NORMAL)
    with pytest.raises(ValueError):
        PeerMessage.from_dict({"kind": "nope", "state": "Normal", "state_reason": "Normal"})


def test_events_check_their_fields() -> None:
    with pytest.raises(TypeError):
        ServiceDown(service="presence-engine")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        InitializationDone(failed_services=frozenset({"x"}))  # type: ignore[arg-type]


def test_docs_diagram_is_generated_from_the_table() -> None:
    text = mermaid_diagram()
    assert text.count(" --> ") == 2 + sum(1 for (s, t), r in TABLE.items() if r.to is not s and t is not T.HA_DISABLED)
    doc = Path(__file__).resolve().parents[3] / "docs" / "srm.md"
    assert text in doc.read_text(encoding="utf-8"), "docs/srm.md is stale: paste mermaid_diagram() into its mermaid block"
