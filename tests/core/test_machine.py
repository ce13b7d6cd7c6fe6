"""ClientMachine scenarios: whole state and commands after every step."""

from __future__ import annotations

import random

import pytest
from core_helpers import LOGIN_LIMITS, NODE_A, NODE_B, PAIR, login_ok, machine, settings

from jabberemu.config import ClientSettings, NodeAddress, ReloginLimits, SaslMechanism
from jabberemu.core import events as ev
from jabberemu.core.machine import ClientMachine
from jabberemu.core.registry import ClientRegistry
from jabberemu.core.states import ClientState, EndReason, Mode
from jabberemu.errors import ConfigError, LocalProtocolError

A, B = NODE_A.name, NODE_B.name
S = ClientState


def _of(cmds: list[ev.Command], kind: type) -> list:
    return [c for c in cmds if isinstance(c, kind)]


def _connect(m: ClientMachine, node: str = A, limits: ReloginLimits = LOGIN_LIMITS) -> None:
    m.handle(ev.Start())
    m.handle(login_ok(node, limits))
    m.handle(ev.OtpOk(node=node, otp="otp-1"))
    m.handle(ev.XmppUp(node=m.node))
    assert m.state is S.XMPPCONNECTED


def test_initial_login_commands_and_state() -> None:
    m = machine()
    cmds = m.handle(ev.Start())
    assert (m.state, m.round, m.node) == (S.SOAPCONNECT_P, 0, A)
    assert cmds[-1] == ev.SoapLogin(node=NODE_A)
    cmds = m.handle(login_ok(A, problems=("lower limit missing; using 120 s",)))
    assert (m.state, m.node, m.limits, m.limits_node) == (S.SOAPCONNECTED, A, LOGIN_LIMITS, A)
    assert _of(cmds, ev.LimitsProblems) == [ev.LimitsProblems(node=A, problems=("lower limit missing; using 120 s",))]
    assert cmds[-1] == ev.FetchOtp(node=NODE_A, session_key="session-key-1")
    cmds = m.handle(ev.OtpOk(node=A, otp="otp-1"))
    assert (m.state, m.node) == (S.XMPPCONNECT_P, A)
    assert cmds[-1] == ev.XmppConnect(node=NODE_A, mechanism=SaslMechanism.CISCO_VTG_TOKEN, otp="otp-1")
    cmds = m.handle(ev.XmppUp(node=A))
    assert (m.state, m.round, m.node, m.ha_cause) == (S.XMPPCONNECTED, 0, A, None)
    assert cmds[-1] == ev.Connected(node=A, relogin=False, ha_cls=None)


def test_home_node_is_the_first_choice() -> None:
    m = machine(home=B)
    assert m.handle(ev.Start())[-1] == ev.SoapLogin(node=NODE_B)
    assert m.handle(ev.SoapFailed(node=B, code="not-served-here"))[-1] == ev.SoapLogin(node=NODE_A)
    assert m.state is S.SOAPCONNECT_S


def test_failover_then_session_relogin_on_the_backup() -> None:
    m = machine()
    _connect(m)
    cmds = m.handle(ev.StreamError(node=A, condition=ev.StreamCondition.SYSTEM_SHUTDOWN))
    assert (m.state, m.round, m.node) == (S.FAILOVER, 1, None)
    assert cmds[0] == ev.HaEventSeen(node=A, cls="stream-error:system-shutdown")
    assert ev.XmppDisconnect(node=A) in cmds
    (wait,) = _of(cmds, ev.WaitDrawn)
    (timer,) = _of(cmds, ev.StartTimer)
    assert 5.0 <= wait.wait_s <= 25.0 and timer.delay_s == wait.wait_s
    assert (wait.lower_s, wait.upper_s, wait.limits_node, wait.round) == (5.0, 25.0, A, 1)
    cmds = m.handle(ev.TimerFired(timer_id=timer.timer_id))
    assert (m.state, m.round, m.node) == (S.SOAPCONNECT_SESSION_P, 1, A)
    assert cmds[-1] == ev.SoapLogin(node=NODE_A, otp="otp-1")  # the CPA session login, cached OTP
    assert cmds[-1].session
    cmds = m.handle(ev.SoapFailed(node=A, code="services-stopped", reason="down"))
    assert (m.state, m.round, m.node) == (S.SOAPCONNECT_SESSION_S, 1, B)
    assert _of(cmds, ev.AttemptFailed) == [ev.AttemptFailed(node=A, state=S.SOAPCONNECT_SESSION_P,
                                                            cls="soap-fault:services-stopped")]
    assert cmds[-1] == ev.SoapLogin(node=NODE_B, otp="otp-1")
    cmds = m.handle(login_ok(B, key="session-key-2"))
    assert (m.state, m.round, m.node) == (S.SOAPCONNECTED, 1, B)
    assert cmds[-1] == ev.FetchOtp(node=NODE_B, session_key="session-key-2")
    cmds = m.handle(ev.OtpOk(node=B, otp="otp-2"))
    # XMPP first on the node whose CPA signed the client in, with the fresh OTP
    assert (m.state, m.round, m.node) == (S.XMPPCONNECT_P, 1, B)
    assert cmds[-1] == ev.XmppConnect(node=NODE_B, mechanism=SaslMechanism.CISCO_VTG_TOKEN, otp="otp-2")
    cmds = m.handle(ev.XmppUp(node=B))
    assert (m.state, m.round, m.node, m.ha_cause) == (S.XMPPCONNECTED, 0, B, None)
    assert cmds[-1] == ev.Connected(node=B, relogin=True, ha_cls="stream-error:system-shutdown")


def test_refused_otp_moves_on_then_round_two_with_the_password() -> None:
    """Login Datastore replication cut: the backup refuses the OTP; the password login of round two
    signs the client in there."""
    m = machine()
    _connect(m)
    m.handle(ev.StreamError(node=A, condition=ev.StreamCondition.SYSTEM_SHUTDOWN))
    m.handle(ev.TimerFired(timer_id=m.pending_timer))
    m.handle(ev.SoapFailed(node=A, code="services-stopped"))
    cmds = m.handle(ev.SoapFailed(node=B, code="bad-onetime-password", sender_fault=True))
    assert (m.state, m.round, m.end_reason) == (S.FAILOVER, 2, None)
    assert _of(cmds, ev.StateChanged)[0].reason == "soap-fault:bad-onetime-password"
    m.handle(ev.TimerFired(timer_id=m.pending_timer))
    assert (m.state, m.round, m.node) == (S.SOAPCONNECT_P, 2, A)
    cmds = m.handle(ev.SoapFailed(node=A, code="services-stopped"))
    assert cmds[-1] == ev.SoapLogin(node=NODE_B)  # the password, not the OTP
    m.handle(login_ok(B, key="session-key-2"))
    m.handle(ev.OtpOk(node=B, otp="otp-2"))
    assert (m.state, m.round, m.node) == (S.XMPPCONNECT_P, 2, B)
    assert m.handle(ev.XmppUp(node=B))[-1] == ev.Connected(
        node=B, relogin=True, ha_cls="stream-error:system-shutdown")


def test_bad_credentials_on_the_session_login_are_a_failure_not_the_end() -> None:
    m = machine()
    _connect(m)
    m.handle(ev.ConnectionLost(node=A, cls=ev.LossKind.CONNECTION_RESET))
    m.handle(ev.TimerFired(timer_id=m.pending_timer))
    m.handle(ev.SoapFailed(node=A, code="bad-credentials", sender_fault=True))
    assert (m.state, m.round, m.node) == (S.SOAPCONNECT_SESSION_S, 1, B)


def test_xmpp_failure_after_the_session_login_tries_the_other_node_then_waits_for_round_two() -> None:
    m = machine()
    _connect(m)
    m.handle(ev.ConnectionLost(node=A, cls=ev.LossKind.CONNECTION_RESET))
    m.handle(ev.TimerFired(timer_id=m.pending_timer))
    m.handle(login_ok(A))
    m.handle(ev.OtpOk(node=A, otp="otp-2"))
    assert (m.state, m.round, m.node) == (S.XMPPCONNECT_P, 1, A)
    m.handle(ev.ConnectionLost(node=A, cls=ev.LossKind.CONNECTION_RESET))
    assert (m.state, m.round, m.node) == (S.XMPPCONNECT_S, 1, B)
    cmds = m.handle(ev.OperationTimeout(node=B, stage=ev.Stage.AUTH))
    assert (m.state, m.round) == (S.FAILOVER, 2)
    assert _of(cmds, ev.WaitDrawn)[0].round == 2


def test_otp_fetch_failure_in_round_one() -> None:
    m = machine()
    _connect(m)
    m.handle(ev.ConnectionLost(node=A, cls=ev.LossKind.CONNECTION_RESET))
    m.handle(ev.TimerFired(timer_id=m.pending_timer))
    m.handle(login_ok(A))
    m.handle(ev.SoapFailed(node=A, code="unknown-session"))
    assert (m.state, m.round, m.node) == (S.SOAPCONNECT_SESSION_S, 1, B)
    m.handle(login_ok(B))
    m.handle(ev.ConnectionLost(node=B, cls=ev.LossKind.CONNECTION_RESET))
    assert (m.state, m.round, m.end_reason) == (S.FAILOVER, 2, None)


def test_fallback_is_the_same_path_home() -> None:
    m = machine()
    _connect(m)
    m.handle(ev.ConnectionLost(node=A, cls=ev.LossKind.CONNECTION_RESET))
    m.handle(ev.TimerFired(timer_id=m.pending_timer))
    m.handle(ev.OperationTimeout(node=A, stage=ev.Stage.SOAP))
    m.handle(login_ok(B))
    m.handle(ev.OtpOk(node=B, otp="otp-2"))
    m.handle(ev.XmppUp(node=B))
    # fallback: the backup closes the stream; the home node takes the session back
    cmds = m.handle(ev.StreamError(node=B, condition=ev.StreamCondition.SYSTEM_SHUTDOWN))
    assert (m.state, m.round) == (S.FAILOVER, 1)
    assert _of(cmds, ev.HaEventSeen) == [ev.HaEventSeen(node=B, cls="stream-error:system-shutdown")]
    cmds = m.handle(ev.TimerFired(timer_id=m.pending_timer))
    assert (m.state, m.node) == (S.SOAPCONNECT_SESSION_P, A)
    assert cmds[-1] == ev.SoapLogin(node=NODE_A, otp="otp-2")  # the OTP of the last sign-in
    m.handle(login_ok(A, key="session-key-3"))
    m.handle(ev.OtpOk(node=A, otp="otp-3"))
    assert (m.state, m.node) == (S.XMPPCONNECT_P, A)
    assert m.handle(ev.XmppUp(node=A))[-1] == ev.Connected(
        node=A, relogin=True, ha_cls="stream-error:system-shutdown")


def test_two_rounds_then_gave_up_with_reason() -> None:
    m = machine()
    _connect(m)
    m.handle(ev.PingTimeout(node=A))
    first = m.pending_timer
    m.handle(ev.TimerFired(timer_id=first))
    m.handle(ev.SoapFailed(node=A, code="server-busy"))
    cmds = m.handle(ev.ConnectionLost(node=B, cls=ev.LossKind.CONNECTION_REFUSED))
    assert (m.state, m.round, m.node) == (S.FAILOVER, 2, None)
    (wait,) = _of(cmds, ev.WaitDrawn)
    assert wait.round == 2 and m.pending_timer == first + 1
    m.handle(ev.TimerFired(timer_id=m.pending_timer))
    assert (m.state, m.node) == (S.SOAPCONNECT_P, A)
    m.handle(ev.SoapFailed(node=A, code="services-stopped", reason="stopped"))
    assert (m.state, m.node) == (S.SOAPCONNECT_S, B)
    cmds = m.handle(ev.ConnectionLost(node=B, cls=ev.LossKind.CONNECTION_REFUSED))
    assert (m.state, m.round, m.end_reason, m.end_detail) == (
        S.GAVE_UP, 2, EndReason.RELOGIN_FAILED, "connection-refused")
    assert cmds[-1] == ev.EnterEndState(state=S.GAVE_UP, reason=EndReason.RELOGIN_FAILED,
                                        detail="connection-refused")


def test_round_two_fresh_login_reaches_backup_and_caches_its_limits() -> None:
    m = machine()
    _connect(m, limits=ReloginLimits(lower_s=5, upper_s=25))
    m.handle(ev.ConnectionLost(node=A, cls=ev.LossKind.CONNECTION_RESET))
    m.handle(ev.TimerFired(timer_id=m.pending_timer))
    m.handle(ev.OperationTimeout(node=A, stage=ev.Stage.SOAP))
    m.handle(ev.SoapFailed(node=B, code="bad-onetime-password"))  # OTP not replicated
    assert m.limits == ReloginLimits(lower_s=5, upper_s=25)  # still from the last login
    m.handle(ev.TimerFired(timer_id=m.pending_timer))
    m.handle(ev.ConnectionLost(node=A, cls=ev.LossKind.CONNECTION_REFUSED))
    backup_limits = ReloginLimits(lower_s=100, upper_s=101)
    cmds = m.handle(login_ok(B, backup_limits, key="session-key-2", primary=NODE_B, secondary=NODE_A))
    assert (m.state, m.limits, m.limits_node) == (S.SOAPCONNECTED, backup_limits, B)
    assert cmds[-1] == ev.FetchOtp(node=NODE_B, session_key="session-key-2")
    m.handle(ev.OtpOk(node=B, otp="otp-2"))
    assert (m.state, m.node) == (S.XMPPCONNECT_P, B)  # the CPA now names the backup as primary
    m.handle(ev.XmppUp(node=B))
    cmds = m.handle(ev.StreamError(node=B, condition=ev.StreamCondition.SYSTEM_SHUTDOWN))
    (wait,) = _of(cmds, ev.WaitDrawn)
    assert 100 <= wait.wait_s <= 101 and wait.limits_node == B
    m.handle(ev.TimerFired(timer_id=m.pending_timer))
    assert m.state is S.SOAPCONNECT_SESSION_P  # a CPA call in flight, no XMPP connection to close
    assert m.handle(ev.StopRequested())[0] == ev.SoapLogout(node=NODE_B, session_key="session-key-2")


def test_otp_fetch_failure_moves_on_or_gives_up() -> None:
    m = machine()
    m.handle(ev.Start())
    m.handle(login_ok(A))
    m.handle(ev.SoapFailed(node=A, code="unknown-session"))
    assert (m.state, m.node) == (S.SOAPCONNECT_S, B)
    m.handle(login_ok(B))
    m.handle(ev.ConnectionLost(node=B, cls=ev.LossKind.CONNECTION_RESET))
    assert (m.state, m.end_reason) == (S.GAVE_UP, EndReason.INITIAL_LOGIN_FAILED)


def test_bad_credentials_give_up_at_once() -> None:
    m = machine()
    m.handle(ev.Start())
    cmds = m.handle(ev.SoapFailed(node=A, code="bad-credentials", reason="no", sender_fault=True))
    assert (m.state, m.end_reason, m.end_detail) == (S.GAVE_UP, EndReason.BAD_CREDENTIALS,
                                                      "soap-fault:bad-credentials")
    assert _of(cmds, ev.SoapLogin) == []


@pytest.mark.parametrize("text", [f"127.0.0.1:{NODE_B.xmpp_port}", NODE_B.name])
def test_see_other_host_names_the_first_choice(text: str) -> None:
    m = machine()
    _connect(m)
    m.handle(ev.StreamError(node=A, condition=ev.StreamCondition.SEE_OTHER_HOST, text=text))
    assert m.preferred_node == B
    m.handle(ev.TimerFired(timer_id=m.pending_timer))
    assert (m.state, m.node) == (S.SOAPCONNECT_SESSION_P, B)
    m.handle(login_ok(B))
    m.handle(ev.OtpOk(node=B, otp="otp-2"))
    m.handle(ev.XmppUp(node=B))
    assert m.preferred_node is None


def test_see_other_host_during_initial_xmpp_connect() -> None:
    m = machine()
    m.handle(ev.Start())
    m.handle(login_ok(A))
    m.handle(ev.OtpOk(node=A, otp="otp-1"))
    m.handle(ev.StreamError(node=A, condition=ev.StreamCondition.SEE_OTHER_HOST, text="nowhere:1"))
    # an unknown target is followed at once (tests/core/test_redirect.py); the CPA's node stays preferred
    assert (m.state, m.node, m.preferred_node) == (S.XMPPCONNECT_P, "nowhere:1", A)


def test_xmpp_only_path() -> None:
    m = machine(Mode.XMPP_ONLY)
    assert m.limits == settings(Mode.XMPP_ONLY).default_limits
    assert m.handle(ev.Start())[-1] == ev.XmppConnect(node=NODE_A, mechanism=SaslMechanism.PLAIN)
    assert m.handle(ev.OperationTimeout(node=A, stage=ev.Stage.BIND))[-1] == ev.XmppConnect(
        node=NODE_B, mechanism=SaslMechanism.PLAIN)
    m.handle(ev.XmppUp(node=B))
    cmds = m.handle(ev.ConnectionLost(node=B, cls=ev.LossKind.CONNECTION_CLOSED))
    (wait,) = _of(cmds, ev.WaitDrawn)
    assert 1.0 <= wait.wait_s <= 2.0 and wait.limits_node is None
    m.handle(ev.TimerFired(timer_id=m.pending_timer))
    assert (m.state, m.round, m.node) == (S.XMPPCONNECT_P, 1, A)
    m.handle(ev.XmppAuthFailed(node=A, condition=ev.SaslCondition.TEMPORARY_AUTH_FAILURE))
    m.handle(ev.ConnectionLost(node=B, cls=ev.LossKind.CONNECTION_REFUSED))
    assert (m.state, m.round) == (S.FAILOVER, 2)
    m.handle(ev.TimerFired(timer_id=m.pending_timer))
    m.handle(ev.XmppAuthFailed(node=A, condition=ev.SaslCondition.NOT_AUTHORIZED))
    assert (m.state, m.end_reason) == (S.GAVE_UP, EndReason.BAD_CREDENTIALS)


def test_xmpp_only_scram_and_no_cpa_urls() -> None:
    pair = PAIR.__class__(nodes=(NodeAddress(name="p", cpa_url=None, xmpp_host="127.0.0.1"),),
                          domain="example.test")
    s = ClientSettings(xmpp_only=True, password_mechanism=SaslMechanism.SCRAM_SHA_1)
    m = ClientMachine("u", random.Random(1), s, pair)
    assert m.handle(ev.Start())[-1].mechanism is SaslMechanism.SCRAM_SHA_1
    m.handle(ev.ConnectionLost(node="p", cls=ev.LossKind.CONNECTION_REFUSED))
    assert (m.state, m.node) == (S.XMPPCONNECT_S, "p")  # a one-node pair tries its node twice
    with pytest.raises(ConfigError):
        ClientMachine("u", random.Random(1), ClientSettings(), pair)


def test_stale_events_are_dropped() -> None:
    m = machine()
    _connect(m)
    m.handle(ev.ConnectionLost(node=A, cls=ev.LossKind.CONNECTION_RESET))
    timer = m.pending_timer
    assert m.handle(ev.PingTimeout(node=A)) == []  # late ping failure of the lost connection
    assert m.handle(ev.TimerFired(timer_id=timer + 5)) == []
    m.handle(ev.TimerFired(timer_id=timer))
    assert m.handle(ev.XmppUp(node=B)) == []  # not the node being tried
    assert m.handle(ev.TimerFired(timer_id=timer)) == []  # already fired
    assert (m.state, m.stale_events) == (S.SOAPCONNECT_SESSION_P, 4)


def test_stop_while_waiting_cancels_the_timer() -> None:
    reg = ClientRegistry()
    m = machine(registry=reg)
    _connect(m)
    m.handle(ev.ConnectionLost(node=A, cls=ev.LossKind.CONNECTION_RESET))
    timer = m.pending_timer
    cmds = m.handle(ev.StopRequested())
    assert cmds[0] == ev.CancelTimer(timer_id=timer)
    assert cmds[1] == ev.SoapLogout(node=NODE_A, session_key="session-key-1")
    assert cmds[-1] == ev.EnterEndState(state=S.LOGGED_OUT, reason=EndReason.STOP_REQUESTED,
                                        detail="connection-reset")
    assert (m.state, m.pending_timer) == (S.LOGGED_OUT, None)
    assert reg.end_reasons() == {(S.LOGGED_OUT, EndReason.STOP_REQUESTED): 1}


def test_reproducible_waits_for_same_seed_and_user() -> None:
    def waits(seed: int) -> list[float]:
        m = machine(seed=seed)
        _connect(m)
        out = []
        for _ in range(20):
            cmds = m.handle(ev.ConnectionLost(node=m.node, cls=ev.LossKind.CONNECTION_RESET))
            out.append(_of(cmds, ev.WaitDrawn)[0].wait_s)
            m.handle(ev.TimerFired(timer_id=m.pending_timer))
            m.handle(login_ok(m.node))
            m.handle(ev.OtpOk(node=m.node, otp="otp-2"))
            m.handle(ev.XmppUp(node=m.node))
        return out

    assert waits(3) == waits(3)
    assert waits(3) != waits(4)


def test_secrets_stay_out_of_repr() -> None:
    texts = [repr(login_ok(A, key="SECRET-KEY")), repr(ev.OtpOk(node=A, otp="SECRET-OTP")),
             repr(ev.XmppConnect(node=NODE_A, mechanism=SaslMechanism.CISCO_VTG_TOKEN, otp="SECRET-OTP")),
             repr(ev.FetchOtp(node=NODE_A, session_key="SECRET-KEY")),
             repr(ev.SoapLogin(node=NODE_A, otp="SECRET-OTP"))]
    assert not any("SECRET" in t for t in texts)


def test_events_are_checked() -> None:
    with pytest.raises(LocalProtocolError):
        ev.StreamError(node=A, condition="system-shutdown")  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        ev.XmppUp(node="")
    with pytest.raises(LocalProtocolError):
        ev.XmppConnect(node=NODE_A, mechanism=SaslMechanism.PLAIN, otp="x")
    with pytest.raises(LocalProtocolError):
        ev.StartTimer(timer_id=1, delay_s=float("nan"), purpose=ev.TimerPurpose.RELOGIN_WAIT)
    with pytest.raises(TypeError):
        ev.XmppUp(A)  # type: ignore[misc]  # keyword-only
    assert ev.StreamCondition.parse("bogus") is ev.StreamCondition.UNDEFINED_CONDITION
    assert ev.SaslCondition.parse("bogus") is ev.SaslCondition.NOT_AUTHORIZED


@pytest.mark.parametrize(
    ("event", "cls"),
    [
        (ev.StreamError(node=A, condition=ev.StreamCondition.SEE_OTHER_HOST, text="x"), "stream-error:see-other-host"),
        (ev.ConnectionLost(node=A, cls=ev.LossKind.CONNECTION_RESET), "connection-reset"),
        (ev.ConnectionLost(node=A, cls=ev.LossKind.CONNECTION_CLOSED), "connection-closed"),
        (ev.PingTimeout(node=A), "ping-timeout"),
        (ev.OperationTimeout(node=A, stage=ev.Stage.BIND), "timeout:bind"),
    ],
)
def test_ha_event_classes(event: ev.Event, cls: str) -> None:
    m = machine()
    _connect(m)
    assert m.handle(event)[0] == ev.HaEventSeen(node=A, cls=cls)
    assert m.ha_cause is not None and m.ha_cause.cls == cls


def test_classify_soap_and_auth() -> None:
    assert ev.classify(ev.SoapFailed(node=A, code="server-busy")).cls == "soap-fault:server-busy"
    assert ev.classify(ev.XmppAuthFailed(node=A, condition=ev.SaslCondition.TEMPORARY_AUTH_FAILURE)).cls \
        == "auth-failure:temporary-auth-failure"
    with pytest.raises(LocalProtocolError):
        ev.classify(ev.Start())


def test_sign_out_after_failover_goes_to_the_node_serving_the_client() -> None:
    """The home node's services are stopped after a failover; the session key is replicated."""
    m = machine()
    _connect(m)
    timer = _of(m.handle(ev.StreamError(node=A, condition=ev.StreamCondition.SYSTEM_SHUTDOWN)), ev.StartTimer)[0]
    m.handle(ev.TimerFired(timer_id=timer.timer_id))
    m.handle(ev.ConnectionLost(node=A, cls=ev.LossKind.CONNECTION_REFUSED))
    m.handle(login_ok(B, key="session-key-2"))
    m.handle(ev.OtpOk(node=B, otp="otp-2"))
    m.handle(ev.XmppUp(node=B))
    cmds = m.handle(ev.StopRequested())
    assert _of(cmds, ev.SoapLogout) == [ev.SoapLogout(node=NODE_B, session_key="session-key-2")]
    assert m.state is S.LOGGED_OUT


def test_sign_out_while_waiting_goes_to_the_node_of_the_login() -> None:
    m = machine()
    _connect(m)
    m.handle(ev.StreamError(node=A, condition=ev.StreamCondition.SYSTEM_SHUTDOWN))
    cmds = m.handle(ev.StopRequested())
    assert _of(cmds, ev.SoapLogout) == [ev.SoapLogout(node=NODE_A, session_key="session-key-1")]
