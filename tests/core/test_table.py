"""The transition table, row by row, against the real machine; illegal transitions; the diagram."""

from __future__ import annotations

from pathlib import Path

import pytest
from core_helpers import SESSION_STATES, XMPP_STATES, event_for, explore, key_of, replay

from jabberemu.core.states import (
    END_STATES,
    TABLE,
    ClientState,
    EndReason,
    Mode,
    Outcome,
    STATE_SENDS,
    Round,
    TransitionKey,
    Via,
    lookup,
    render_markdown,
)
from jabberemu.errors import LocalProtocolError

PATHS = explore()
ROWS = list(TABLE.items())


def _path_to(key: TransitionKey) -> tuple[Outcome, ...]:
    for (mode, rnd, state, via), path in PATHS.items():
        if (mode, rnd, state) == (key.mode, key.round, key.state) and key.via in (Via.ANY, via):
            return path
    raise AssertionError(f"no path reaches {key}")


def _id(item: tuple[TransitionKey, object]) -> str:
    k = item[0]
    return f"{k.mode.value}-r{int(k.round)}-{k.state.value}-{k.outcome.value}-{k.via.value}"


def test_table_size_and_every_row_reachable() -> None:
    assert len(TABLE) == 109
    for key in TABLE:
        _path_to(key)  # raises when a row cannot be reached from NEW


@pytest.mark.parametrize("row", ROWS, ids=[_id(r) for r in ROWS])
def test_every_row(row: tuple[TransitionKey, object]) -> None:
    key, tr = row
    m = replay(key.mode, _path_to(key))
    assert key_of(m)[:3] == (key.mode, key.round, key.state)
    cmds = m.handle(event_for(m, key.outcome))
    assert m.state is tr.state  # type: ignore[attr-defined]
    assert m.round == int(tr.round)  # type: ignore[attr-defined]
    assert m.end_reason is tr.reason  # type: ignore[attr-defined]
    changed = [c for c in cmds if type(c).__name__ == "StateChanged"]
    assert len(changed) == 1 and changed[0].to_state is tr.state  # type: ignore[attr-defined]


def _illegal_cases() -> list[tuple[tuple[Mode, Round, ClientState, Via], Outcome]]:
    cases = []
    for key in PATHS:
        mode, rnd, state, via = key
        if state in END_STATES:
            continue
        for outcome in Outcome:
            try:
                lookup(mode, rnd, state, outcome, via)
            except LocalProtocolError:
                cases.append((key, outcome))
    return cases


ILLEGAL = _illegal_cases()


@pytest.mark.parametrize(
    "case", ILLEGAL, ids=[f"{k[0].value}-r{int(k[1])}-{k[2].value}-{o.value}" for k, o in ILLEGAL]
)
def test_missing_rows_raise_or_drop_stale(case: tuple[tuple[Mode, Round, ClientState, Via], Outcome]) -> None:
    key, outcome = case
    m = replay(key[0], PATHS[key])
    event = event_for(m, outcome)
    stale = (
        (outcome is Outcome.TIMER and m.pending_timer is None)
        or (m.node is None and outcome not in (Outcome.START, Outcome.STOP, Outcome.TIMER))
    )
    if stale:
        assert m.handle(event) == []
        assert key_of(m) == key
        assert m.stale_events == 1
    elif key[2] in SESSION_STATES and outcome is Outcome.REJECTED:
        # a bad-credentials fault on the session login (OTP) is a failure, never the end: the
        # password was not tried (core/states.py)
        failed = replay(key[0], PATHS[key])
        failed.handle(event_for(failed, Outcome.FAILURE))
        m.handle(event)
        assert (m.state, m.round, m.end_reason) == (failed.state, failed.round, None)
    elif outcome is Outcome.REDIRECT and key[2] not in XMPP_STATES:
        # only an XMPP stream carries see-other-host: anywhere else it is a plain failure
        failed = replay(key[0], PATHS[key])
        failed.handle(event_for(failed, Outcome.FAILURE))
        m.handle(event)
        assert (m.state, m.round, m.end_reason) == (failed.state, failed.round, failed.end_reason)
    else:
        with pytest.raises(LocalProtocolError):
            m.handle(event)
        assert key_of(m) == key


def test_some_illegal_transitions_really_raise() -> None:
    m = replay(Mode.CPA, (Outcome.START,))
    with pytest.raises(LocalProtocolError, match="xmpp-up in SOAPCONNECT_P"):
        m.handle(event_for(m, Outcome.XMPP_UP))
    m = replay(Mode.CPA, (Outcome.START, Outcome.SOAP_OK, Outcome.OTP_OK, Outcome.XMPP_UP))
    assert m.state is ClientState.XMPPCONNECTED
    with pytest.raises(LocalProtocolError):
        m.handle(event_for(m, Outcome.START))
    with pytest.raises(LocalProtocolError):
        m.handle(event_for(m, Outcome.SOAP_OK))


def test_end_states_drop_everything_but_start() -> None:
    m = replay(Mode.CPA, (Outcome.START, Outcome.STOP))
    assert m.state is ClientState.LOGGED_OUT and m.end_reason is EndReason.STOP_REQUESTED
    assert m.handle(event_for(m, Outcome.STOP)) == []
    assert m.handle(event_for(m, Outcome.FAILURE, node="imp1.example.test")) == []
    with pytest.raises(LocalProtocolError):
        m.handle(event_for(m, Outcome.START))


def test_stop_reaches_logged_out_from_every_live_key() -> None:
    live = {(k.mode, k.round, k.state) for k in TABLE}
    stops = {(k.mode, k.round, k.state) for k in TABLE if k.outcome is Outcome.STOP}
    assert live == stops
    assert all(TABLE[k].state is ClientState.LOGGED_OUT for k in TABLE if k.outcome is Outcome.STOP)


def test_xmpp_only_table_never_touches_soap_states() -> None:
    soapish = {ClientState.SOAPCONNECT_P, ClientState.SOAPCONNECT_S, ClientState.SOAPCONNECTED,
               ClientState.SOAPCONNECT_SESSION_P, ClientState.SOAPCONNECT_SESSION_S}
    for key, tr in TABLE.items():
        if key.mode is Mode.XMPP_ONLY:
            assert key.state not in soapish and tr.state not in soapish


def test_docs_diagram_is_generated_from_the_table() -> None:
    doc = Path(__file__).resolve().parents[2] / "docs" / "client-states.md"
    assert doc.read_text(encoding="utf-8") == render_markdown()
    assert "SOAPCONNECT_SESSION_S --> FAILOVER: failure [r1] / r2" in render_markdown()


def test_every_state_says_what_it_sends() -> None:
    assert set(STATE_SENDS) == set(ClientState)
    sends = render_markdown().split("## What each state sends", 1)[1]
    assert "| SOAPCONNECT_SESSION_P | CPA SOAP `login` with the one-time password cached at the last sign-in" in sends
