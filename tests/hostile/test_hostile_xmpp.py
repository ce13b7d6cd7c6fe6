"""A hostile XMPP server at every login stage: each fault ends in a named state and reason within the
configured timeouts, or (once connected) is an HA event the client recovers from.

The table (stage x fault -> end detail) below is the contract. Both nodes of the pair are scripted
alike, so an initial login fails on the primary, then on the secondary, then gives up
(``initial-login-failed``). Every test is bounded; every client is accounted for in the registry;
every socket is released.
"""

from __future__ import annotations

import asyncio

import pytest
from hostile_harness import (
    DOMAIN, NODES, TIMEOUT_S, check_accounted, hostile_pair, records, run_clients, settings_for,
)
from waiting import wait_until
from hostile_servers import FullBacklog, HostileXmpp, XmppFault, XmppStage

from jabberemu.config import NodeAddress, ServerPair
from jabberemu.core.states import ClientState
from jabberemu.driver import EmulatedClient
from jabberemu.runtime import RecordType, Runtime

CLIENTS = 3
SLACK_S = 1.0  # scheduling slack on a loaded 2-core box
S, F = XmppStage, XmppFault

#: stream error condition used at each stage (RFC 6120 §4.9.3), so the table covers several
CONDITION = {S.ACCEPT: "system-shutdown", S.OPEN: "host-unknown", S.FEATURES: "policy-violation",
             S.AUTH: "not-authorized", S.BIND: "resource-constraint", S.ROSTER: "internal-server-error",
             S.PRESENCE: "conflict"}
_BEFORE_AUTH = (S.ACCEPT, S.OPEN, S.FEATURES)


def expected_detail(stage: XmppStage, fault: XmppFault) -> set[str]:
    """The end detail (the last failure's class) for a fault at a login stage."""
    if fault is F.STREAM_ERROR:
        return {f"stream-error:{CONDITION[stage]}"}
    if fault is F.STALL:  # the auth deadline runs from TCP connect to <success/>, bind's from there on
        return {"timeout:auth" if stage in _BEFORE_AUTH else "timeout:bind"}
    if fault is F.RESET:
        return {"connection-reset"}
    if fault is F.CLOSE and stage is S.ACCEPT:
        # FIN before anything was read: our stream header then meets a closed socket (RST) or the
        # FIN is seen first; both are what a client on the wire sees
        return {"connection-closed", "connection-reset"}
    # CLOSE; GARBAGE: slixmpp answers not-well-formed itself and closes (RFC 6120 §4.9.3.13)
    return {"connection-closed"}


LOGIN_STAGES = [s for s in XmppStage if s is not S.PRESENCE]
LOGIN_FAULTS = [F.STREAM_ERROR, F.STALL, F.RESET, F.CLOSE, F.GARBAGE]


#: stage x fault, XMPP-only (password SASL) for every fault; CPA mode (OTP SASL) for the three the
#: issue names (stream error, stall, reset): 6 x 5 + 6 x 3 = 48 scenarios
MATRIX = [pytest.param(stage, fault, xmpp_only, id=f"{stage.value}-{fault.value}-{'xo' if xmpp_only else 'cpa'}")
          for xmpp_only in (True, False) for stage in LOGIN_STAGES for fault in LOGIN_FAULTS
          if xmpp_only or fault in (F.STREAM_ERROR, F.STALL, F.RESET)]


@pytest.mark.parametrize(("stage", "fault", "xmpp_only"), MATRIX)
async def test_fault_at_login_stage_gives_up_named_in_time(stage: XmppStage, fault: XmppFault,
                                                           xmpp_only: bool) -> None:
    xmpp = {n: HostileXmpp(domain=DOMAIN, stage=stage, fault=fault, condition=CONDITION[stage]) for n in NODES}
    async with hostile_pair(settings_for(xmpp_only=xmpp_only), xmpp=xmpp) as env:
        states, elapsed = await run_clients(env, CLIENTS, bound_s=2 * TIMEOUT_S + 5)
        assert states == [ClientState.GAVE_UP] * CLIENTS
        details = {c.machine.end_detail for c in env.clients}
        assert details <= expected_detail(stage, fault), details
        assert {c.machine.end_reason.value for c in env.clients} == {"initial-login-failed"}  # type: ignore[union-attr]
        # one attempt per node and client: the secondary was tried, nothing was retried
        assert [x.accepted for x in env.xmpp.values()] == [CLIENTS, CLIENTS]
        xmpp_states = [r["to"] for r in records(env.runtime, RecordType.STATE, env.clients[0].user_id)]
        assert xmpp_states[-3:] == ["XMPPCONNECT_P", "XMPPCONNECT_S", "GAVE_UP"]
        if fault is F.STALL:  # the deadline fired on each node, not earlier
            assert elapsed >= 2 * TIMEOUT_S - 0.05
        assert elapsed <= 2 * TIMEOUT_S + SLACK_S
        assert check_accounted(env) == {("GAVE_UP", "initial-login-failed"): CLIENTS}
        await wait_until(lambda: env.open_connections() == 0, 3, "every socket released")


HA_CLASS = {F.STREAM_ERROR: "stream-error:conflict", F.STALL: "ping-timeout", F.RESET: "connection-reset",
            F.CLOSE: "connection-closed", F.GARBAGE: "connection-closed"}


@pytest.mark.parametrize("xmpp_only", [True, False], ids=["xmpp-only", "cpa"])
@pytest.mark.parametrize("fault", LOGIN_FAULTS, ids=lambda f: f.value)
async def test_fault_after_presence_is_an_ha_event_and_the_client_recovers(fault: XmppFault,
                                                                           xmpp_only: bool) -> None:
    lower_s, upper_s = 0.1, 0.3  # CPA mode: the hostile CPA sends the same limits
    xmpp = {n: HostileXmpp(domain=DOMAIN, stage=S.PRESENCE, fault=fault, condition=CONDITION[S.PRESENCE],
                           times_per_user=1) for n in NODES}
    async with hostile_pair(settings_for(xmpp_only=xmpp_only, lower_s=lower_s, upper_s=upper_s), xmpp=xmpp) as env:
        states, _ = await run_clients(env, CLIENTS, bound_s=5)
        assert states == [ClientState.XMPPCONNECTED] * CLIENTS
        rt = env.runtime
        # ping timeout (0.2 s interval + 0.3 s) + wait (<= 0.3 s) + login
        await wait_until(lambda: len(records(rt, RecordType.CONNECTED)) == 2 * CLIENTS, 5, "every client back")
        for client in env.clients:
            (ha,) = records(rt, RecordType.HA_EVENT, client.user_id)
            assert (ha["node"], ha["cls"]) == (NODES[0], HA_CLASS[fault])
            (wait,) = records(rt, RecordType.WAIT, client.user_id)
            assert lower_s <= wait["wait_s"] <= upper_s and (wait["lower_s"], wait["upper_s"]) == (lower_s, upper_s)
            first, again = records(rt, RecordType.CONNECTED, client.user_id)
            assert (first["relogin"], again["relogin"], again["node"]) == (False, True, NODES[0])
            assert wait["wait_s"] <= again["recovery_s"] <= wait["wait_s"] + SLACK_S
            retry = (["XMPPCONNECT_P"] if xmpp_only
                     else ["SOAPCONNECT_SESSION_P", "SOAPCONNECTED", "XMPPCONNECT_P"])  # CPA login with the OTP
            path = [r["to"] for r in records(rt, RecordType.STATE, client.user_id) if r["ts"] >= ha["ts"]]
            assert path == ["FAILOVER", *retry, "XMPPCONNECTED"]
        # the client reports up once its presence is written; the server reads it a moment later
        await wait_until(lambda: env.xmpp[NODES[0]].up_users == {c.user_id: 2 for c in env.clients}, 3,
                         "second presence of every client read")
        if fault is F.STALL:  # the new sessions' pings are answered (the stall hit the first one only)
            await wait_until(lambda: env.xmpp[NODES[0]].pings >= CLIENTS, 3, "pings answered")
        # connected at the end (a ping of 0.3 s may time out once more on a loaded box: the client then
        # re-logins again, which the exact path above would already have shown had it come earlier)
        await wait_until(lambda: rt.registry.snapshot().by_state[ClientState.XMPPCONNECTED] == CLIENTS, 3,
                         "every client connected")
        assert check_accounted(env) == {}
        await asyncio.wait_for(asyncio.gather(*(c.stop() for c in env.clients)), 5)
        assert check_accounted(env) == {("LOGGED_OUT", "stop-requested"): CLIENTS}
        await wait_until(lambda: env.open_connections() == 0, 3, "every socket released")


@pytest.mark.parametrize(("xmpp_only", "condition", "reason", "detail"), [
    (True, "temporary-auth-failure", "initial-login-failed", "auth-failure:temporary-auth-failure"),
    (True, "made-up-condition", "bad-credentials", "auth-failure:not-authorized"),  # unknown = not-authorized (§6.5)
    (True, "account-disabled", "bad-credentials", "auth-failure:account-disabled"),
    (False, "not-authorized", "initial-login-failed", "auth-failure:not-authorized"),  # an OTP: try the other node
])
async def test_sasl_failures_are_named(xmpp_only: bool, condition: str, reason: str, detail: str) -> None:
    xmpp = {n: HostileXmpp(domain=DOMAIN, stage=S.FEATURES, fault=F.SASL_FAILURE, condition=condition)
            for n in NODES}
    async with hostile_pair(settings_for(xmpp_only=xmpp_only), xmpp=xmpp) as env:
        states, elapsed = await run_clients(env, CLIENTS, bound_s=5)
        assert states == [ClientState.GAVE_UP] * CLIENTS and elapsed < SLACK_S
        assert {(c.machine.end_reason.value, c.machine.end_detail) for c in env.clients} == {  # type: ignore[union-attr]
            (reason, detail)}
        tried_secondary = reason != "bad-credentials"
        assert [x.accepted for x in env.xmpp.values()] == [CLIENTS, CLIENTS if tried_secondary else 0]
        assert check_accounted(env) == {("GAVE_UP", reason): CLIENTS}
        await wait_until(lambda: env.open_connections() == 0, 3, "every socket released")


@pytest.mark.parametrize(("stage", "detail"), [
    (S.OPEN, "connection-closed"),  # only an unknown SASL mechanism: slixmpp closes the stream
    (S.AUTH, "timeout:bind"),  # no bind feature after SASL: nothing to do until the deadline
])
async def test_useless_stream_features_end_named(stage: XmppStage, detail: str) -> None:
    xmpp = {n: HostileXmpp(domain=DOMAIN, stage=stage, fault=F.BAD_FEATURES) for n in NODES}
    async with hostile_pair(settings_for(xmpp_only=True), xmpp=xmpp) as env:
        states, elapsed = await run_clients(env, CLIENTS, bound_s=5)
        assert states == [ClientState.GAVE_UP] * CLIENTS and elapsed <= 2 * TIMEOUT_S + SLACK_S
        assert {c.machine.end_detail for c in env.clients} == {detail}
        assert check_accounted(env) == {("GAVE_UP", "initial-login-failed"): CLIENTS}


async def test_see_other_host_outside_the_pair_is_followed() -> None:
    """A redirect to a host:port that is no node of the pair is followed at once (RFC 6120
    §4.9.3.19): the client ends XMPPCONNECTED on the named host; its secondary is never tried."""
    elsewhere = HostileXmpp(domain=DOMAIN)
    await elsewhere.start()
    target = f"127.0.0.1:{elsewhere.port}"
    try:
        xmpp = {n: HostileXmpp(domain=DOMAIN, stage=S.OPEN, fault=F.STREAM_ERROR, condition="see-other-host",
                               text=target) for n in NODES}
        async with hostile_pair(settings_for(xmpp_only=True), xmpp=xmpp) as env:
            states, _ = await run_clients(env, CLIENTS, bound_s=5)
            assert states == [ClientState.XMPPCONNECTED] * CLIENTS
            assert {c.machine.node for c in env.clients} == {target}
            assert [x.accepted for x in env.xmpp.values()] == [CLIENTS, 0]
            assert elsewhere.up_users == {c.user_id: 1 for c in env.clients}
            assert check_accounted(env) == {}
    finally:
        await elsewhere.stop()


async def test_see_other_host_without_a_host_is_a_plain_stream_error() -> None:
    """Malformed see-other-host text (here: none) is a plain stream error: secondary, then give up."""
    xmpp = {n: HostileXmpp(domain=DOMAIN, stage=S.OPEN, fault=F.STREAM_ERROR, condition="see-other-host",
                           text=None) for n in NODES}
    async with hostile_pair(settings_for(xmpp_only=True), xmpp=xmpp) as env:
        states, _ = await run_clients(env, CLIENTS, bound_s=5)
        assert states == [ClientState.GAVE_UP] * CLIENTS
        assert {c.machine.end_detail for c in env.clients} == {"stream-error:see-other-host"}
        assert [x.accepted for x in env.xmpp.values()] == [CLIENTS, CLIENTS]
        assert check_accounted(env) == {("GAVE_UP", "initial-login-failed"): CLIENTS}
        assert env.runtime.warned["see-other-host-malformed"] == 2 * CLIENTS


@pytest.mark.parametrize("stop_timeout_s", [0.2, 2.0], ids=["stop-0.2s", "stop-2s"])
@pytest.mark.parametrize("stage", [S.ACCEPT, S.FEATURES, S.AUTH, S.BIND, S.ROSTER], ids=lambda s: s.value)
async def test_stop_during_a_stalled_xmpp_stage_ends_logged_out_and_releases_the_socket(
        stage: XmppStage, stop_timeout_s: float) -> None:
    """The end state is immediate; the graceful close (RFC 6120 §4.4) waits for a silent server at
    most 1 s (``XmppSession.close``) or the stop's own timeout, and the socket is released either way."""
    xmpp = {n: HostileXmpp(domain=DOMAIN, stage=stage, fault=F.STALL) for n in NODES}
    long = dict(connect_s=30.0, auth_s=30.0, bind_s=30.0)
    async with hostile_pair(settings_for(xmpp_only=True, **long), xmpp=xmpp) as env:
        with pytest.raises(asyncio.TimeoutError):
            await run_clients(env, CLIENTS, bound_s=0.3)
        await wait_until(lambda: sum(env.xmpp[NODES[0]].faults_done.values()) == CLIENTS, 3, "all stalled")
        assert {c.state for c in env.clients} == {ClientState.XMPPCONNECT_P}
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        stops = [asyncio.ensure_future(c.stop(timeout_s=stop_timeout_s)) for c in env.clients]
        await asyncio.sleep(0)  # each stop() ran up to its first await
        assert {c.state for c in env.clients} == {ClientState.LOGGED_OUT}  # at once
        states = await asyncio.wait_for(asyncio.gather(*stops), 5)
        assert states == [ClientState.LOGGED_OUT] * CLIENTS
        assert loop.time() - t0 < min(stop_timeout_s, 1.5) + 0.5
        await wait_until(lambda: all(not c._ops and not c._closing and c.xmpp is None for c in env.clients), 1,
                         "no task left")
        assert check_accounted(env) == {("LOGGED_OUT", "stop-requested"): CLIENTS}
        await wait_until(lambda: env.open_connections() == 0, 3, "every socket released")


async def test_tcp_connect_that_never_completes_times_out_on_both_nodes() -> None:
    """SYNs dropped (accept queue full): neither accepted nor refused; ``connect_s`` ends each attempt."""
    stalled = [FullBacklog(), FullBacklog()]
    try:
        pair = ServerPair(domain=DOMAIN, nodes=tuple(
            NodeAddress(name=n, cpa_url=None, xmpp_host="127.0.0.1", xmpp_port=s.port) for n, s in zip(NODES, stalled)))
        rt = await Runtime.create(pair, settings_for(xmpp_only=True, connect_s=TIMEOUT_S))
        try:
            clients = [EmulatedClient(f"user{i:05d}", "pw", NODES[0], rt, starttls=False) for i in range(1, CLIENTS + 1)]
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            states = await asyncio.wait_for(asyncio.gather(*(c.start() for c in clients)), 2 * TIMEOUT_S + 5)
            elapsed = loop.time() - t0
            assert states == [ClientState.GAVE_UP] * CLIENTS
            assert {(c.machine.end_reason.value, c.machine.end_detail) for c in clients} == {  # type: ignore[union-attr]
                ("initial-login-failed", "timeout:connect")}
            assert 2 * TIMEOUT_S - 0.05 <= elapsed <= 2 * TIMEOUT_S + SLACK_S
            snap = rt.registry.snapshot()
            assert snap.started == CLIENTS == sum(snap.by_state.values()) == snap.by_state[ClientState.GAVE_UP]
        finally:
            await rt.aclose()
    finally:
        for s in stalled:
            s.close()
