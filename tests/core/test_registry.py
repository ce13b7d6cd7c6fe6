"""ClientRegistry: every started client is in exactly one state, under any event sequence."""

from __future__ import annotations

import random

import pytest
from core_helpers import NODE_A, NODE_B, event_for, key_of, machine
from hypothesis import given, settings
from hypothesis import strategies as st

from jabberemu.core import events as ev
from jabberemu.core.registry import ClientRegistry
from jabberemu.core.states import END_STATES, ClientState, EndReason, Mode, Outcome, lookup
from jabberemu.errors import LocalProtocolError

S = ClientState


def _assert_mirrors(reg: ClientRegistry, machines: list) -> None:  # type: ignore[type-arg]
    reg.check()
    snap = reg.snapshot()
    assert snap.started == len(machines) == sum(snap.by_state.values())
    for m in machines:
        assert reg.state_of(m.user_id) == (m.state, m.node)
    ended = [m for m in machines if m.state in END_STATES]
    assert sum(snap.end_reasons.values()) == len(ended)
    for m in ended:
        assert snap.end_reasons[(m.state, m.end_reason)] >= 1
    connected = [m.node for m in machines if m.state is S.XMPPCONNECTED]
    assert sum(snap.connected_by_node.values()) == len(connected)


steps = st.lists(
    st.tuples(st.integers(0, 2), st.sampled_from(list(Outcome)),
              st.sampled_from([None, NODE_A.name, NODE_B.name]), st.one_of(st.none(), st.integers(0, 7))),
    min_size=30, max_size=90,
)


def _legal(m, pick: int) -> Outcome | None:  # type: ignore[no-untyped-def]
    """The pick-th outcome the table accepts for ``m`` now (to drive clients deep into the table)."""
    if m.state in END_STATES:
        return None
    if pick == 7:
        return Outcome.STOP
    ok = []
    for outcome in Outcome:
        if outcome is Outcome.STOP:
            continue
        try:
            lookup(*key_of(m)[:3], outcome, key_of(m)[3])
        except LocalProtocolError:
            continue
        ok.append(outcome)
    return ok[pick % len(ok)]


@settings(max_examples=60, deadline=None)
@given(mode=st.sampled_from(list(Mode)), steps=steps)
def test_invariant_under_random_events(mode: Mode, steps: list) -> None:  # type: ignore[type-arg]
    reg = ClientRegistry()
    machines = [machine(mode, seed=i, user=f"user{i:05d}", registry=reg) for i in range(3)]
    _assert_mirrors(reg, machines)
    for index, outcome, node, pick in steps:
        m = machines[index]
        if pick is not None:
            outcome, node = _legal(m, pick) or outcome, None
        try:
            m.handle(event_for(m, outcome, node))
        except LocalProtocolError:
            pass  # an illegal event leaves the machine (and the registry) as they were
        _assert_mirrors(reg, machines)


def test_seeded_walk_reaches_every_state_and_keeps_the_invariant() -> None:
    """A deterministic companion to the property test: long walks that reach every state."""
    rng = random.Random(0)
    seen: set[ClientState] = set()
    for mode in Mode:
        reg = ClientRegistry()
        machines = [machine(mode, seed=i, user=f"user{i:05d}", registry=reg) for i in range(20)]
        ended: list = []  # type: ignore[type-arg]
        for step in range(3000):
            index = rng.randrange(len(machines))
            m = machines[index]
            seen.add(m.state)
            if m.state in END_STATES:  # a new client takes the slot; the ended one stays counted
                ended.append(m)
                machines[index] = m = machine(mode, seed=step, user=f"late{step:05d}", registry=reg)
            outcome = _legal(m, rng.randrange(8)) or rng.choice(list(Outcome))
            try:
                m.handle(event_for(m, outcome, rng.choice([None, NODE_A.name, NODE_B.name])))
            except LocalProtocolError:
                pass
            seen.add(m.state)
        _assert_mirrors(reg, machines + ended)
        assert reg.snapshot().started > 20
    assert seen == set(ClientState)


def test_counts_by_state_node_and_reason() -> None:
    reg = ClientRegistry()
    ms = [machine(user=f"u{i}", registry=reg) for i in range(4)]
    assert reg.snapshot().by_state[S.NEW] == 4
    for m in ms:
        m.handle(ev.Start())
    ms[0].handle(event_for(ms[0], Outcome.SOAP_OK))
    ms[0].handle(event_for(ms[0], Outcome.OTP_OK))
    ms[0].handle(event_for(ms[0], Outcome.XMPP_UP))
    ms[1].handle(ev.SoapFailed(node=NODE_A.name, code="bad-credentials", sender_fault=True))
    ms[2].handle(ev.StopRequested())
    snap = reg.snapshot()
    assert snap.by_state[S.XMPPCONNECTED] == 1 and snap.by_state[S.SOAPCONNECT_P] == 1
    assert snap.by_state[S.GAVE_UP] == 1 and snap.by_state[S.LOGGED_OUT] == 1
    assert snap.connected_by_node == {NODE_A.name: 1}
    assert snap.by_node == {NODE_A.name: 2}
    assert reg.end_reasons() == {(S.GAVE_UP, EndReason.BAD_CREDENTIALS): 1,
                                 (S.LOGGED_OUT, EndReason.STOP_REQUESTED): 1}


def test_misuse_raises() -> None:
    reg = ClientRegistry()
    reg.add("u1")
    with pytest.raises(LocalProtocolError):
        reg.add("u1")
    with pytest.raises(LocalProtocolError):
        reg.move("nobody", S.FAILOVER)
    with pytest.raises(LocalProtocolError):
        reg.move("u1", S.GAVE_UP)  # an end state needs a reason
    reg.move("u1", S.GAVE_UP, reason=EndReason.RELOGIN_FAILED)
    with pytest.raises(LocalProtocolError):
        reg.move("u1", S.NEW)
    assert len(reg) == 1
