"""see-other-host (RFC 6120 §4.9.3.19): reading the text, judging the chain, and the machine following
it to a pair node or any host:port, bounded; whole state after every step."""

from __future__ import annotations

import pytest
from core_helpers import NODE_A, NODE_B, PAIR, login_ok, machine

from jabberemu.config import NodeAddress, SaslMechanism
from jabberemu.core import events as ev
from jabberemu.core import redirect as rd
from jabberemu.core.machine import ClientMachine
from jabberemu.core.redirect import HostPort, RedirectVerdict, address_key, judge_redirect, parse_host_port
from jabberemu.core.relogin import place_redirect
from jabberemu.core.states import TABLE, ClientState, EndReason, Mode, Outcome, Round, Transition

A, B = NODE_A.name, NODE_B.name
KA, KB = "127.0.0.1:5301", "127.0.0.1:5302"  # the pair's XMPP addresses (chain keys)
S = ClientState
SOH = ev.StreamCondition.SEE_OTHER_HOST


def _of(cmds: list[ev.Command], kind: type) -> list:
    return [c for c in cmds if isinstance(c, kind)]


def elsewhere(host: str, port: int = 5299) -> NodeAddress:
    """A node built on the fly for a host outside the pair."""
    name = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return NodeAddress(name=name, cpa_url=None, xmpp_host=host, xmpp_port=port)


X1, X2, X3, X4 = (elsewhere(f"imp{n}.other.test") for n in (3, 4, 5, 6))


def soh(node: str, text: str | None) -> ev.StreamError:
    return ev.StreamError(node=node, condition=SOH, text=text)


def view(m: ClientMachine) -> tuple[object, ...]:
    """The whole redirect-relevant state: state, round, node, preferred node, pending redirect
    target, chain, class of the last failure, end reason."""
    target = m.redirect_target.name if m.redirect_target is not None else None
    last = m.last_failure.cls if m.last_failure is not None else None
    return (m.state, m.round, m.node, m.preferred_node, target, m.redirect_chain, last, m.end_reason)


def to_xmpp_p(mode: Mode) -> ClientMachine:
    """A fresh machine in XMPPCONNECT_P on A (CPA mode: signed in on A, OTP ``otp-1``)."""
    m = machine(mode)
    m.handle(ev.Start())
    if mode is Mode.CPA:
        m.handle(login_ok(A))
        m.handle(ev.OtpOk(node=A, otp="otp-1"))
    assert (m.state, m.node) == (S.XMPPCONNECT_P, A)
    return m


def connect_cmd(mode: Mode, node: NodeAddress) -> ev.XmppConnect:
    if mode is Mode.CPA:
        return ev.XmppConnect(node=node, mechanism=SaslMechanism.CISCO_VTG_TOKEN, otp="otp-1")
    return ev.XmppConnect(node=node, mechanism=SaslMechanism.PLAIN)


# ------------------------------------------------------------------------------- reading ---
@pytest.mark.parametrize(("text", "expected"), [
    ("imp3.example.test", HostPort(host="imp3.example.test", port=5222, port_given=False)),
    ("imp3.example.test:5299", HostPort(host="imp3.example.test", port=5299, port_given=True)),
    ("  IMP3.Example.TEST.:5299\n", HostPort(host="imp3.example.test", port=5299, port_given=True)),
    ("x", HostPort(host="x", port=5222, port_given=False)),
    ("10.0.0.5", HostPort(host="10.0.0.5", port=5222, port_given=False)),
    ("10.0.0.5:1", HostPort(host="10.0.0.5", port=1, port_given=True)),
    ("[::1]", HostPort(host="::1", port=5222, port_given=False)),
    ("[::1]:65535", HostPort(host="::1", port=65535, port_given=True)),
    ("[2001:DB8:0:0::7]:5223", HostPort(host="2001:db8::7", port=5223, port_given=True)),
    ("bücher.example:5222", HostPort(host="xn--bcher-kva.example", port=5222, port_given=True)),
])
def test_parse_host_port(text: str, expected: HostPort) -> None:
    assert parse_host_port(text) == expected


MALFORMED = ["", "   ", "host:", "host:0", "host:65536", "host:123456", "host:+5", "host:-1", "host:port",
             "host:٥٢٢٢", "ho st", "host: 5222", "::1", "::1:5222", "2001:db8::7", "[::1", "[::1]5222", "[::1]:",
             "[not-v6]:5222", "[10.0.0.1]:5222", "[fe80::1%eth0]:5222", "-bad.example", "bad-.example", "a..b",
             ".", "999.1.1.1", "1.2.3", "a_b.example", "<garbage/>", "http://imp3.example.test/", "a" * 64 + ".test",
             "user@imp3.example.test"]


@pytest.mark.parametrize("text", MALFORMED)
def test_malformed_texts(text: str) -> None:
    assert parse_host_port(text) is None
    r = judge_redirect(text, source=NODE_A, chain=(), known=PAIR.nodes)
    assert (r.verdict, r.target, r.chain, r.hop) == (RedirectVerdict.MALFORMED, None, (), 0)


def test_address_key() -> None:
    assert address_key(NODE_A) == KA
    assert address_key(NodeAddress(name="v6", cpa_url=None, xmpp_host="0:0::1", xmpp_port=5223)) == "[::1]:5223"
    assert address_key(NodeAddress(name="n", cpa_url=None, xmpp_host="IMP.Test", xmpp_port=5222)) == "imp.test:5222"


# ------------------------------------------------------------------------------- judging ---
@pytest.mark.parametrize("text", [B, f"127.0.0.1:{NODE_B.xmpp_port}", NODE_B.xmpp_address, f"{B.upper()}:5302",
                                  f" {B} "])
def test_a_pair_node_by_name_or_address(text: str) -> None:
    r = judge_redirect(text, source=NODE_A, chain=(), known=PAIR.nodes)
    assert (r.verdict, r.target, r.known, r.chain, r.hop) == (RedirectVerdict.FOLLOW, NODE_B, True, (KA, KB), 1)


@pytest.mark.parametrize(("text", "target"), [
    ("imp3.other.test:5299", X1),
    (f"{B}:5222", elsewhere(B, 5222)),  # the node's name on another port: that host:port (RFC)
    ("127.0.0.1:5303", elsewhere("127.0.0.1", 5303)),  # the pair's host on another port (RFC)
    ("[2001:db8::7]", elsewhere("2001:db8::7", 5222)),
])
def test_an_unknown_host_is_a_node_built_on_the_fly(text: str, target: NodeAddress) -> None:
    r = judge_redirect(text, source=NODE_A, chain=(), known=PAIR.nodes)
    assert (r.verdict, r.target, r.known, r.chain) == (RedirectVerdict.FOLLOW, target, False, (KA, address_key(target)))


def test_loops_and_chains() -> None:
    def judge(text: str, source: NodeAddress, chain: tuple[str, ...]) -> tuple[RedirectVerdict, tuple[str, ...]]:
        r = judge_redirect(text, source=source, chain=chain, known=PAIR.nodes)
        return r.verdict, r.chain

    follow, loop, too_many = RedirectVerdict.FOLLOW, RedirectVerdict.LOOP, RedirectVerdict.TOO_MANY
    k1, k2, k3, k4 = (address_key(x) for x in (X1, X2, X3, X4))
    assert judge(A, NODE_A, ()) == (loop, (KA, KA))  # a host redirecting to itself
    assert judge(X1.name, X1, (KA, k1)) == (loop, (KA, k1, k1))
    assert judge(KA, X1, (KA, k1)) == (loop, (KA, k1, KA))  # A -> X1 -> A
    assert judge(X2.name, X1, (KA, k1)) == (follow, (KA, k1, k2))
    assert judge(X3.name, X2, (KA, k1, k2)) == (follow, (KA, k1, k2, k3))  # hop 3 = MAX_REDIRECTS
    assert judge(X4.name, X3, (KA, k1, k2, k3)) == (too_many, (KA, k1, k2, k3, k4))
    assert judge(X1.name, X3, (KA, k1, k2, k3)) == (loop, (KA, k1, k2, k3, k1))  # a loop is named first
    assert rd.MAX_REDIRECTS == 3


def test_max_redirects_is_read_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rd, "MAX_REDIRECTS", 1)
    assert judge_redirect(X2.name, source=X1, chain=(KA, address_key(X1)), known=()).verdict \
        is RedirectVerdict.TOO_MANY


@pytest.mark.parametrize(("series", "target", "first", "expected"), [
    ((NODE_A, NODE_B), X1, True, (X1, NODE_B)),  # replaces the first choice, the second stays
    ((NODE_A, NODE_B), NODE_B, True, (NODE_B, NODE_A)),  # the second choice named: they swap
    ((NODE_A, NODE_B), X1, False, (NODE_A, X1)),  # replaces the second choice
    ((NODE_A, NODE_A), X1, True, (X1, NODE_A)),  # a one-node pair
])
def test_place_redirect(series: tuple[NodeAddress, NodeAddress], target: NodeAddress, first: bool,
                        expected: tuple[NodeAddress, NodeAddress]) -> None:
    assert place_redirect(series, target, first=first) == expected


# ----------------------------------------------------------------------------- the table ---
def test_redirect_rows() -> None:
    rows = {(k.mode, k.round, k.state): v for k, v in TABLE.items() if k.outcome is Outcome.REDIRECT}
    expected: dict[tuple[Mode, Round, ClientState], Transition] = {}
    for mode in Mode:
        for rnd in Round:
            expected[(mode, rnd, S.XMPPCONNECT_P)] = Transition(S.XMPPCONNECT_P, rnd)
            expected[(mode, rnd, S.XMPPCONNECT_S)] = Transition(S.XMPPCONNECT_S, rnd)
        expected[(mode, Round.NONE, S.XMPPCONNECTED)] = Transition(S.FAILOVER, Round.FIRST)
    assert rows == expected


# --------------------------------------------------------------------------- the machine ---
def test_redirect_to_a_pair_node_during_xmpp_connect() -> None:
    m = to_xmpp_p(Mode.CPA)
    assert view(m) == (S.XMPPCONNECT_P, 0, A, A, None, (), None, None)
    cmds = m.handle(soh(A, NODE_B.xmpp_address))
    assert cmds == [
        ev.AttemptFailed(node=A, state=S.XMPPCONNECT_P, cls="stream-error:see-other-host"),
        ev.RedirectSeen(node=A, text=NODE_B.xmpp_address, verdict=RedirectVerdict.FOLLOW, target=B, hop=1),
        ev.XmppDisconnect(node=A),
        ev.StateChanged(from_state=S.XMPPCONNECT_P, to_state=S.XMPPCONNECT_P, node=B, round=0,
                        reason="stream-error:see-other-host"),
        connect_cmd(Mode.CPA, NODE_B),  # at once, with the same OTP
    ]
    assert view(m) == (S.XMPPCONNECT_P, 0, B, B, None, (KA, KB), "stream-error:see-other-host", None)
    m.handle(ev.ConnectionLost(node=B, cls=ev.LossKind.CONNECTION_REFUSED))  # moves on to the other node
    assert view(m) == (S.XMPPCONNECT_S, 0, A, B, None, (), "connection-refused", None)
    m.handle(ev.XmppUp(node=A))
    assert view(m) == (S.XMPPCONNECTED, 0, A, None, None, (), "connection-refused", None)


@pytest.mark.parametrize("mode", list(Mode), ids=lambda m: m.value)
def test_redirect_to_an_unknown_host_port_is_the_next_attempt(mode: Mode) -> None:
    m = to_xmpp_p(mode)
    pref = A if mode is Mode.CPA else None  # CPA: the node whose CPA signed the client in
    cmds = m.handle(soh(A, "imp3.other.test:5299"))
    assert _of(cmds, ev.RedirectSeen) == [ev.RedirectSeen(node=A, text="imp3.other.test:5299",
                                                           verdict=RedirectVerdict.FOLLOW, target=X1.name, hop=1)]
    assert cmds[-1] == connect_cmd(mode, X1)
    assert view(m) == (S.XMPPCONNECT_P, 0, X1.name, pref, None, (KA, X1.name), "stream-error:see-other-host", None)
    cmds = m.handle(ev.XmppUp(node=X1.name))
    assert cmds[-1] == ev.Connected(node=X1.name, relogin=False, ha_cls=None)
    assert view(m) == (S.XMPPCONNECTED, 0, X1.name, None, None, (), "stream-error:see-other-host", None)
    cmds = m.handle(ev.StopRequested())
    assert ev.XmppDisconnect(node=X1.name) in cmds
    # the node built on the fly has no CPA: sign out where the client signed in
    assert _of(cmds, ev.SoapLogout) == ([ev.SoapLogout(node=NODE_A, session_key="session-key-1")]
                                        if mode is Mode.CPA else [])
    assert (m.state, m.end_reason) == (S.LOGGED_OUT, EndReason.STOP_REQUESTED)


def test_redirect_while_connected_waits_then_goes_there_after_the_cpa_sign_in() -> None:
    m = to_xmpp_p(Mode.CPA)
    m.handle(ev.XmppUp(node=A))
    cmds = m.handle(soh(A, "imp3.other.test:5299"))
    assert cmds[0] == ev.HaEventSeen(node=A, cls="stream-error:see-other-host")
    assert _of(cmds, ev.RedirectSeen)[0].verdict is RedirectVerdict.FOLLOW
    assert view(m) == (S.FAILOVER, 1, None, None, X1.name, (KA, X1.name), "stream-error:see-other-host", None)
    cmds = m.handle(ev.TimerFired(timer_id=m.pending_timer))  # the CPA stays with the pair's nodes
    assert cmds[-1] == ev.SoapLogin(node=NODE_A, otp="otp-1")
    assert view(m) == (S.SOAPCONNECT_SESSION_P, 1, A, None, X1.name, (KA, X1.name), "stream-error:see-other-host",
                       None)
    m.handle(login_ok(A, key="session-key-2"))
    cmds = m.handle(ev.OtpOk(node=A, otp="otp-2"))
    assert cmds[-1] == ev.XmppConnect(node=X1, mechanism=SaslMechanism.CISCO_VTG_TOKEN, otp="otp-2")
    assert view(m) == (S.XMPPCONNECT_P, 1, X1.name, A, None, (KA, X1.name), "stream-error:see-other-host", None)
    m.handle(ev.ConnectionLost(node=X1.name, cls=ev.LossKind.CONNECTION_REFUSED))  # the other choice stays
    assert view(m) == (S.XMPPCONNECT_S, 1, B, A, None, (), "connection-refused", None)
    cmds = m.handle(ev.XmppUp(node=B))
    assert cmds[-1] == ev.Connected(node=B, relogin=True, ha_cls="stream-error:see-other-host")


def test_redirect_while_connected_xmpp_only() -> None:
    m = to_xmpp_p(Mode.XMPP_ONLY)
    m.handle(ev.XmppUp(node=A))
    m.handle(soh(A, "imp3.other.test:5299"))
    assert view(m) == (S.FAILOVER, 1, None, None, X1.name, (KA, X1.name), "stream-error:see-other-host", None)
    assert m.handle(ev.TimerFired(timer_id=m.pending_timer))[-1] == connect_cmd(Mode.XMPP_ONLY, X1)
    assert view(m) == (S.XMPPCONNECT_P, 1, X1.name, None, None, (KA, X1.name), "stream-error:see-other-host", None)


def test_redirect_during_xmpp_connect_s_stays_in_s() -> None:
    m = to_xmpp_p(Mode.XMPP_ONLY)
    m.handle(ev.ConnectionLost(node=A, cls=ev.LossKind.CONNECTION_REFUSED))
    assert view(m) == (S.XMPPCONNECT_S, 0, B, None, None, (), "connection-refused", None)
    cmds = m.handle(soh(B, "imp3.other.test:5299"))
    assert cmds[-1] == connect_cmd(Mode.XMPP_ONLY, X1)
    assert view(m) == (S.XMPPCONNECT_S, 0, X1.name, None, None, (KB, X1.name), "stream-error:see-other-host", None)
    m.handle(ev.OperationTimeout(node=X1.name, stage=ev.Stage.CONNECT))  # the named host fails: the round ends
    assert view(m) == (S.GAVE_UP, 0, None, None, None, (), "timeout:connect", EndReason.INITIAL_LOGIN_FAILED)
    assert m.end_detail == "timeout:connect"


@pytest.mark.parametrize(("text", "target"), [
    ("[2001:db8::7]:5223", elsewhere("2001:db8::7", 5223)),
    ("[::1]", elsewhere("::1", 5222)),
    ("[2001:DB8:0:0:0:0:0:7]:5223", elsewhere("2001:db8::7", 5223)),
])
def test_redirect_to_an_ipv6_literal(text: str, target: NodeAddress) -> None:
    m = to_xmpp_p(Mode.XMPP_ONLY)
    cmds = m.handle(soh(A, text))
    assert cmds[-1] == connect_cmd(Mode.XMPP_ONLY, target)
    assert view(m) == (S.XMPPCONNECT_P, 0, target.name, None, None, (KA, target.name), "stream-error:see-other-host",
                       None)
    m.handle(ev.XmppUp(node=target.name))
    assert (m.state, m.node) == (S.XMPPCONNECTED, target.name)


@pytest.mark.parametrize("text", [None, "", "garbage <here>", "imp3.other.test:70000", "imp3.other.test:0", "::1"])
def test_malformed_see_other_host_is_a_plain_stream_error(text: str | None) -> None:
    m = to_xmpp_p(Mode.CPA)
    cmds = m.handle(soh(A, text))
    assert _of(cmds, ev.AttemptFailed) == [ev.AttemptFailed(node=A, state=S.XMPPCONNECT_P,
                                                            cls="stream-error:see-other-host")]
    assert _of(cmds, ev.RedirectSeen) == [ev.RedirectSeen(node=A, text=text, verdict=RedirectVerdict.MALFORMED)]
    assert cmds[-1] == connect_cmd(Mode.CPA, NODE_B)  # the next choice, as for any failure
    assert view(m) == (S.XMPPCONNECT_S, 0, B, A, None, (), "stream-error:see-other-host", None)
    # while connected: an HA event like any other, no redirect target
    m.handle(ev.XmppUp(node=B))
    cmds = m.handle(soh(B, text))
    assert cmds[0] == ev.HaEventSeen(node=B, cls="stream-error:see-other-host")
    assert view(m) == (S.FAILOVER, 1, None, None, None, (), "stream-error:see-other-host", None)


def test_a_redirect_loop_ends_the_attempt_as_redirect_loop() -> None:
    m = to_xmpp_p(Mode.XMPP_ONLY)
    m.handle(soh(A, X1.name))
    assert view(m) == (S.XMPPCONNECT_P, 0, X1.name, None, None, (KA, X1.name), "stream-error:see-other-host", None)
    cmds = m.handle(soh(X1.name, A))  # A -> X1 -> A
    assert cmds[:3] == [
        ev.AttemptFailed(node=X1.name, state=S.XMPPCONNECT_P, cls="redirect-loop"),
        ev.RedirectSeen(node=X1.name, text=A, verdict=RedirectVerdict.LOOP, target=A, hop=2),
        ev.XmppDisconnect(node=X1.name),
    ]
    assert cmds[-1] == connect_cmd(Mode.XMPP_ONLY, NODE_B)  # moves on to the second choice
    assert view(m) == (S.XMPPCONNECT_S, 0, B, None, None, (), "redirect-loop", None)
    m.handle(soh(B, X2.name))  # a new chain: B -> X2 -> X2 (itself)
    assert view(m) == (S.XMPPCONNECT_S, 0, X2.name, None, None, (KB, X2.name), "stream-error:see-other-host", None)
    cmds = m.handle(soh(X2.name, X2.name))
    assert view(m) == (S.GAVE_UP, 0, None, None, None, (), "redirect-loop", EndReason.INITIAL_LOGIN_FAILED)
    assert cmds[-1] == ev.EnterEndState(state=S.GAVE_UP, reason=EndReason.INITIAL_LOGIN_FAILED, detail="redirect-loop")


def test_a_connected_node_redirecting_to_itself_is_a_loop() -> None:
    m = to_xmpp_p(Mode.CPA)
    m.handle(ev.XmppUp(node=A))
    cmds = m.handle(soh(A, NODE_A.xmpp_address))
    assert cmds[0] == ev.HaEventSeen(node=A, cls="redirect-loop")
    assert view(m) == (S.FAILOVER, 1, None, None, None, (), "redirect-loop", None)


def test_a_chain_longer_than_max_redirects_ends_the_attempt() -> None:
    m = to_xmpp_p(Mode.XMPP_ONLY)
    m.handle(ev.ConnectionLost(node=A, cls=ev.LossKind.CONNECTION_RESET))
    chain: tuple[str, ...] = (KB,)
    for hop, (src, dst) in enumerate([(NODE_B, X1), (X1, X2), (X2, X3)], start=1):
        cmds = m.handle(soh(src.name, dst.name))
        chain += (dst.name,)
        assert _of(cmds, ev.RedirectSeen)[0].hop == hop
        assert view(m) == (S.XMPPCONNECT_S, 0, dst.name, None, None, chain, "stream-error:see-other-host", None)
    cmds = m.handle(soh(X3.name, X4.name))  # a fourth successive redirect
    assert _of(cmds, ev.RedirectSeen) == [ev.RedirectSeen(node=X3.name, text=X4.name, verdict=RedirectVerdict.TOO_MANY,
                                                          target=X4.name, hop=4)]
    assert view(m) == (S.GAVE_UP, 0, None, None, None, (), "too-many-redirects", EndReason.INITIAL_LOGIN_FAILED)
    assert m.end_detail == "too-many-redirects"


def test_too_many_redirects_in_xmpp_connect_p_moves_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rd, "MAX_REDIRECTS", 1)
    m = to_xmpp_p(Mode.CPA)
    m.handle(soh(A, X1.name))
    cmds = m.handle(soh(X1.name, X2.name))
    assert _of(cmds, ev.AttemptFailed) == [ev.AttemptFailed(node=X1.name, state=S.XMPPCONNECT_P,
                                                            cls="too-many-redirects")]
    assert view(m) == (S.XMPPCONNECT_S, 0, B, A, None, (), "too-many-redirects", None)


def test_see_other_host_outside_an_xmpp_state_is_a_plain_failure() -> None:
    m = machine()
    m.handle(ev.Start())
    cmds = m.handle(soh(A, "imp3.other.test:5299"))  # cannot happen on the wire; judged as a failure
    assert _of(cmds, ev.RedirectSeen) == []
    assert view(m) == (S.SOAPCONNECT_S, 0, B, None, None, (), "stream-error:see-other-host", None)


def test_a_pair_node_named_while_connected_comes_first_and_the_cpa_still_decides() -> None:
    m = to_xmpp_p(Mode.CPA)
    m.handle(ev.XmppUp(node=A))
    m.handle(soh(A, B))
    assert view(m) == (S.FAILOVER, 1, None, B, None, (KA, KB), "stream-error:see-other-host", None)
    assert m.handle(ev.TimerFired(timer_id=m.pending_timer))[-1] == ev.SoapLogin(node=NODE_B, otp="otp-1")
    m.handle(ev.SoapFailed(node=B, code="not-served-here"))  # the world changed during the wait
    m.handle(login_ok(A, key="session-key-2"))
    assert view(m) == (S.SOAPCONNECTED, 1, A, A, None, (KA, KB), "soap-fault:not-served-here", None)
    cmds = m.handle(ev.OtpOk(node=A, otp="otp-2"))  # XMPP on the node whose CPA signed the client in
    assert cmds[-1] == ev.XmppConnect(node=NODE_A, mechanism=SaslMechanism.CISCO_VTG_TOKEN, otp="otp-2")
    cmds = m.handle(soh(A, B))  # not the host the last redirect named: a new chain, no loop
    assert _of(cmds, ev.RedirectSeen)[0].verdict is RedirectVerdict.FOLLOW
    assert view(m) == (S.XMPPCONNECT_P, 1, B, B, None, (KA, KB), "stream-error:see-other-host", None)
