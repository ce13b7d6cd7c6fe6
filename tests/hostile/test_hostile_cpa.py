"""A hostile CPA (SOAP over aiohttp): malformed answers, stalls and resets at every operation,
missing and absurd re-login limits, a lying ``get-all-config``. Each gives a named end state and
reason within ``Timeouts.soap_s``, or a client that works with repaired values.
"""

from __future__ import annotations

import asyncio
import math

import pytest
from hostile_harness import (
    DOMAIN, NODES, TIMEOUT_S, check_accounted, hostile_pair, records, run_clients, settings_for,
)
from waiting import wait_until
from hostile_servers import CpaFault, CpaOp, HostileCpa, HostileXmpp, XmppFault, XmppStage

from jabberemu.core.states import ClientState
from jabberemu.runtime import RecordType

CLIENTS = 3
SLACK_S = 1.0
LOWER, UPPER = "Presence.Relogin.LowerLimit", "Presence.Relogin.UpperLimit"

#: the path of one client when ``op`` fails on both nodes
PATH = {
    CpaOp.LOGIN: ["SOAPCONNECT_P", "SOAPCONNECT_S", "GAVE_UP"],
    CpaOp.GET_ALL_CONFIG: ["SOAPCONNECT_P", "SOAPCONNECT_S", "GAVE_UP"],
    CpaOp.GET_ONETIME_PASSWORD: ["SOAPCONNECT_P", "SOAPCONNECTED", "SOAPCONNECT_S", "SOAPCONNECTED", "GAVE_UP"],
}
DETAIL = {CpaFault.STALL: "timeout:soap", CpaFault.RESET: "connection-reset"}  # else malformed-response


@pytest.mark.parametrize("fault", list(CpaFault), ids=lambda f: f.value)
@pytest.mark.parametrize("op", list(PATH), ids=lambda o: o.value)
async def test_cpa_fault_at_each_operation_gives_up_named_in_time(op: CpaOp, fault: CpaFault) -> None:
    cpa = {n: HostileCpa(node=n, faults={op: fault}) for n in NODES}
    async with hostile_pair(settings_for(xmpp_only=False), cpa=cpa) as env:
        states, elapsed = await run_clients(env, CLIENTS, bound_s=2 * TIMEOUT_S + 5)
        assert states == [ClientState.GAVE_UP] * CLIENTS
        detail = DETAIL.get(fault, "soap-fault:malformed-response")
        assert {(c.machine.end_reason.value, c.machine.end_detail) for c in env.clients} == {  # type: ignore[union-attr]
            ("initial-login-failed", detail)}
        for client in env.clients:
            assert [r["to"] for r in records(env.runtime, RecordType.STATE, client.user_id)] == PATH[op]
        # exactly one failing call per node and client; no XMPP attempt was made
        assert [c.calls[op] for c in env.cpa.values()] == [CLIENTS, CLIENTS]
        assert [x.accepted for x in env.xmpp.values()] == [0, 0]
        if fault is CpaFault.STALL:
            assert 2 * TIMEOUT_S - 0.05 <= elapsed
        assert elapsed <= 2 * TIMEOUT_S + SLACK_S
        failed = [r for r in records(env.runtime, RecordType.REQUEST) if not r["ok"]]
        assert {r["name"] for r in failed} == {op.value, "login"}  # the SOAP call and client/login
        assert check_accounted(env) == {("GAVE_UP", "initial-login-failed"): CLIENTS}


@pytest.mark.parametrize(("lower", "upper", "expected", "warned"), [
    (None, None, (0.1, 0.3), {"limits-missing": 2}),  # deleted: the settings' defaults
    ("0.2", None, (0.2, 0.3), {"limits-missing": 1}),
    (None, "0.25", (0.1, 0.25), {"limits-missing": 1}),
    ("", "  ", (0.1, 0.3), {"limits-missing": 2}),
    ("abc", "0.3", (0.1, 0.3), {"limits-absurd": 1}),
    ("0.5", "0.2", (0.2, 0.5), {"limits-absurd": 1}),  # lower > upper: swapped
    ("-1", "0.3", (0.1, 0.3), {"limits-absurd": 1}),
    ("-5", "-1", (0.1, 0.3), {"limits-absurd": 2}),
    ("nan", "inf", (0.1, 0.3), {"limits-absurd": 2}),
    ("0", "0", (0.0, 0.0), {}),  # legal: re-login at once
    ("0.1", "1e9", (0.1, 1e9), {"limits-absurd": 1}),  # huge: obeyed, reported
    ("1e308", "1e309", (0.3, 1e308), {"limits-absurd": 3}),  # inf -> default 0.3, then swapped
], ids=lambda v: repr(v) if isinstance(v, str) or v is None else None)
async def test_missing_and_absurd_limits_are_repaired_and_govern_the_wait(
        lower: str | None, upper: str | None, expected: tuple[float, float], warned: dict[str, int]) -> None:
    overrides = {LOWER: lower, UPPER: upper}
    cpa = {n: HostileCpa(node=n, system_overrides=overrides) for n in NODES}
    # the first session of each client is closed once it is up: the wait then uses the limits
    xmpp = {n: HostileXmpp(domain=DOMAIN, stage=XmppStage.PRESENCE, fault=XmppFault.STREAM_ERROR, times_per_user=1)
            for n in NODES}
    async with hostile_pair(settings_for(xmpp_only=False, lower_s=0.1, upper_s=0.3), cpa=cpa, xmpp=xmpp) as env:
        states, _ = await run_clients(env, CLIENTS, bound_s=5)
        assert states == [ClientState.XMPPCONNECTED] * CLIENTS
        rt = env.runtime
        assert {(c.machine.limits.lower_s, c.machine.limits.upper_s) for c in env.clients} == {expected}
        assert dict(rt.warned) == {k: v * CLIENTS for k, v in warned.items()}
        await wait_until(lambda: len(records(rt, RecordType.WAIT)) == CLIENTS, 3, "every wait drawn")
        for wait in records(rt, RecordType.WAIT):
            assert (wait["lower_s"], wait["upper_s"]) == expected
            assert expected[0] <= wait["wait_s"] <= expected[1] and math.isfinite(wait["wait_s"])
        if expected[1] <= 1.0:
            await wait_until(lambda: len(records(rt, RecordType.CONNECTED)) == 2 * CLIENTS, 3, "re-login")
            assert {c.state for c in env.clients} == {ClientState.XMPPCONNECTED}
        else:  # a wait of days: the client sits in FAILOVER and still stops at once
            assert {c.state for c in env.clients} == {ClientState.FAILOVER}
            states = await asyncio.wait_for(asyncio.gather(*(c.stop(timeout_s=1) for c in env.clients)), 3)
            assert states == [ClientState.LOGGED_OUT] * CLIENTS
            assert all(not c._timers for c in env.clients)
        assert check_accounted(env) == ({} if expected[1] <= 1.0 else {("LOGGED_OUT", "stop-requested"): CLIENTS})


@pytest.mark.parametrize("overrides", [
    {"Presence.PrimaryServer.XmppPort": "99999"},  # out of range
    {"Presence.PrimaryServer.XmppPort": "not-a-port"},
    {"Presence.PrimaryServer": "evil.example.org", "Presence.PrimaryServer.XmppHost": None,
     "Presence.PrimaryServer.XmppPort": None},  # unknown node, no address of its own
    {"Presence.PrimaryServer": "", "Presence.BackupServer": ""},
    {"Presence.BackupServer": NODES[0]},  # backup = primary
], ids=["port-99999", "port-text", "unknown-primary", "no-servers", "backup-is-primary"])
async def test_lying_get_all_config_falls_back_to_the_configured_pair(overrides: dict[str, str | None]) -> None:
    cpa = {n: HostileCpa(node=n, system_overrides=overrides) for n in NODES}
    async with hostile_pair(settings_for(xmpp_only=False), cpa=cpa) as env:
        states, _ = await run_clients(env, CLIENTS, bound_s=5)
        assert states == [ClientState.XMPPCONNECTED] * CLIENTS
        assert {c.machine.primary for c in env.clients} == {env.pair.nodes[0]}
        assert {c.machine.secondary for c in env.clients} == {env.pair.nodes[1]}
        await wait_until(lambda: env.xmpp[NODES[0]].up_users == {c.user_id: 1 for c in env.clients}, 3,
                         "every presence read on the primary")
        assert check_accounted(env) == {}


async def test_get_all_config_pointing_at_a_dead_xmpp_port_moves_to_the_secondary() -> None:
    dead = HostileXmpp(domain=DOMAIN)
    await dead.start()
    await dead.stop()  # a port that refuses
    overrides = {"Presence.PrimaryServer.XmppPort": str(dead.port)}
    cpa = {n: HostileCpa(node=n, system_overrides=overrides) for n in NODES}
    async with hostile_pair(settings_for(xmpp_only=False), cpa=cpa) as env:
        states, elapsed = await run_clients(env, CLIENTS, bound_s=5)
        assert states == [ClientState.XMPPCONNECTED] * CLIENTS and elapsed < SLACK_S
        assert {c.xmpp.node.name for c in env.clients if c.xmpp} == {NODES[1]}
        fails = [r for r in records(env.runtime, RecordType.STATE) if r["to"] == "XMPPCONNECT_S"]
        assert {r["reason"] for r in fails} == {"connection-refused"} and len(fails) == CLIENTS


@pytest.mark.parametrize("op", [CpaOp.GET_ALL_CONFIG, CpaOp.GET_ONETIME_PASSWORD], ids=lambda o: o.value)
async def test_stop_during_a_stalled_soap_call_ends_logged_out_at_once(op: CpaOp) -> None:
    cpa = {n: HostileCpa(node=n, faults={op: CpaFault.STALL}) for n in NODES}
    async with hostile_pair(settings_for(xmpp_only=False, soap_s=30.0), cpa=cpa) as env:
        with pytest.raises(asyncio.TimeoutError):
            await run_clients(env, CLIENTS, bound_s=0.3)
        await wait_until(lambda: env.cpa[NODES[0]].calls[op] == CLIENTS, 3, "all stalled")
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        states = await asyncio.wait_for(asyncio.gather(*(c.stop(timeout_s=0.5) for c in env.clients)), 3)
        assert states == [ClientState.LOGGED_OUT] * CLIENTS and loop.time() - t0 < SLACK_S
        # logout once the machine holds the session key (after get-all-config); a key whose
        # get-all-config never came back is left to expire on the server
        expected = CLIENTS if op is CpaOp.GET_ONETIME_PASSWORD else 0
        assert env.cpa[NODES[0]].calls[CpaOp.LOGOUT] == expected
        assert check_accounted(env) == {("LOGGED_OUT", "stop-requested"): CLIENTS}


@pytest.mark.parametrize("fault", [CpaFault.STALL, CpaFault.RESET, CpaFault.NOT_XML], ids=lambda f: f.value)
async def test_hostile_logout_does_not_hold_up_the_stop(fault: CpaFault) -> None:
    cpa = {n: HostileCpa(node=n, faults={CpaOp.LOGOUT: fault}) for n in NODES}
    async with hostile_pair(settings_for(xmpp_only=False), cpa=cpa) as env:
        states, _ = await run_clients(env, CLIENTS, bound_s=5)
        assert states == [ClientState.XMPPCONNECTED] * CLIENTS
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        states = await asyncio.wait_for(asyncio.gather(*(c.stop(timeout_s=2) for c in env.clients)), 5)
        assert states == [ClientState.LOGGED_OUT] * CLIENTS
        assert loop.time() - t0 < TIMEOUT_S + SLACK_S  # the logout's own SOAP deadline bounds a stall
        assert env.cpa[NODES[0]].calls[CpaOp.LOGOUT] == CLIENTS
        logouts = [r for r in records(env.runtime, RecordType.REQUEST) if r["name"] == "logout"]
        assert len(logouts) == CLIENTS and not any(r["ok"] for r in logouts)
        assert check_accounted(env) == {("LOGGED_OUT", "stop-requested"): CLIENTS}
        await wait_until(lambda: env.open_connections() == 0, 3, "every socket released")
