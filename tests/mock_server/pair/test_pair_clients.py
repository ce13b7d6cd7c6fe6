"""Issue 2 on the real pair (two node processes, short timers): zeep with only the served WSDL,
slixmpp with PLAIN and CISCO-VTG-TOKEN on the home node and with the same OTP on the backup after a
failover, presence and a message between users on different nodes, and bad input the component
tests do not reach (cross-node OTP replay, session keys on the wrong node, garbage on the peer link),
each followed by a control client that is still served."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import zeep
import zeep.exceptions
from pair_support import (
    DOMAIN, N1, N2, TIMEOUT_S, cpa_url, fast_config, slix_client, slix_connected, soap, soap_login_otp,
    started_pair, wait_transitions, xmpp_port,
)
from raw_xmpp import RawXmppClient

from mock_server.pair.runner import MockPair

pytestmark = pytest.mark.asyncio(loop_scope="module")

CONFIG = fast_config(users=10)
U1, U2 = "user00001", "user00002"  # homed on imp1 and imp2; roster contacts of each other


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def pair() -> AsyncIterator[MockPair]:
    async with started_pair(CONFIG) as p:
        yield p


@pytest_asyncio.fixture(loop_scope="module")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def control_client_served(pair: MockPair, http: aiohttp.ClientSession, node: str = N1) -> None:
    """A well-behaved XMPP and SOAP client on ``node`` is served (user homed there)."""
    user = "user00009" if node == N1 else "user00010"
    probe = await RawXmppClient.open(xmpp_port(pair, node))
    try:
        assert await probe.login(user, resource="control", presence=True) == f"{user}@{DOMAIN}/control"
        pong = await probe.ping()
        assert b"result" in pong, pong
    finally:
        probe.close()
    login = await soap(http, cpa_url(pair, node), "login", user=user)
    assert login.status == 200 and login.value, login.body


def zeep_session(wsdl_url: str) -> dict[str, Any]:
    """Blocking zeep 4.3 client built from the served WSDL only (runs in a worker thread)."""
    transport = zeep.Transport(timeout=10, operation_timeout=10)
    try:
        client = zeep.Client(wsdl_url, transport=transport)
        key = client.service.login(username=U1, password=f"pass-{U1}",
                                   **{"client-type": "CUPC", "client-version": "14.1", "force": True})
        header = {"session-key": key}
        config = client.service["get-all-config"](_soapheaders=header)
        system = {p["name"]: p["_value_1"] for p in config["system-config"]["property"]}
        otp = client.service["get-onetime-password"](_soapheaders=header)
        try:
            client.service.login(username=U1, password="wrong")
            bad = None
        except zeep.exceptions.Fault as fault:
            bad = fault.detail.find("{urn:cisco:epas:soap}error").get("code")
        return {"key": key, "system": system, "otp": otp, "bad": bad}
    finally:
        transport.session.close()


async def test_zeep_with_only_the_served_wsdl_logs_in_reads_limits_and_otp(pair: MockPair) -> None:
    result = await asyncio.wait_for(asyncio.to_thread(zeep_session, cpa_url(pair, N1) + "?wsdl"), 30)
    system = result["system"]
    assert system["Presence.Domain"] == DOMAIN
    assert (system["Presence.Relogin.LowerLimit"], system["Presence.Relogin.UpperLimit"]) == ("1", "2")
    assert (system["Presence.PrimaryServer"], system["Presence.BackupServer"]) == (N1, N2)
    assert system["Presence.PrimaryServer.XmppPort"] == str(xmpp_port(pair, N1))
    assert system["Presence.BackupServer.XmppPort"] == str(xmpp_port(pair, N2))
    assert system["Presence.BackupServer.CpaUrl"] == cpa_url(pair, N2)
    assert len(result["otp"]) >= 16 and result["bad"] == "bad-credentials"
    # the OTP works once, with CISCO-VTG-TOKEN, on the home node
    probe = await RawXmppClient.open(xmpp_port(pair, N1))
    assert await probe.login(U1, otp=result["otp"], resource="probe", presence=True) == f"{U1}@{DOMAIN}/probe"
    probe.close()


async def test_slixmpp_plain_and_token_on_home_then_same_otp_on_backup(pair: MockPair, http: aiohttp.ClientSession) -> None:
    otp_home = await soap_login_otp(http, cpa_url(pair, N1), U1)
    otp_backup = await soap_login_otp(http, cpa_url(pair, N1), U1)
    async with slix_connected(slix_client(U1, resource="plain"), xmpp_port(pair, N1)) as c:
        assert c.plugin["feature_mechanisms"].mech.name == "PLAIN"
        assert str(c.boundjid) == f"{U1}@{DOMAIN}/plain"
    async with slix_connected(slix_client(U1, otp=otp_home, resource="tok"), xmpp_port(pair, N1)) as c:
        assert c.plugin["feature_mechanisms"].mech.name == "CISCO-VTG-TOKEN"
        assert str(c.boundjid) == f"{U1}@{DOMAIN}/tok"

    since = time.time()
    await pair.admin("POST", "/api/failover", {"node": N1})
    await wait_transitions(pair, since, {
        N1: [("Failing Over", "On Admin Request"), ("Idle", "On Admin Request")],
        N2: [("Taking Over", "On Admin Request"), ("Running in Backup Mode", "On Admin Request")],
    })
    # the second OTP, issued by imp1 before the failover, is accepted by the backup (replicated)
    async with slix_connected(slix_client(U1, otp=otp_backup, resource="tok"), xmpp_port(pair, N2)) as c:
        assert c.plugin["feature_mechanisms"].mech.name == "CISCO-VTG-TOKEN"
        assert str(c.boundjid) == f"{U1}@{DOMAIN}/tok"
    since = time.time()
    await pair.admin("POST", "/api/fallback", {"node": N1})
    await wait_transitions(pair, since, {
        N1: [("Taking Back", "On Admin Request"), ("Normal", "Normal")],
        N2: [("Falling Back", "On Admin Request"), ("Normal", "Normal")],
    })


async def test_users_on_different_nodes_exchange_presence_and_a_message(pair: MockPair) -> None:
    a, b = slix_client(U1, resource="a"), slix_client(U2, resource="b")
    got_a: asyncio.Queue[Any] = asyncio.Queue()
    got_b: asyncio.Queue[Any] = asyncio.Queue()
    for client, q in ((a, got_a), (b, got_b)):
        client.add_event_handler("presence_available", q.put_nowait)
        client.add_event_handler("presence_unavailable", q.put_nowait)
        client.add_event_handler("message", q.put_nowait)
    async with slix_connected(b, xmpp_port(pair, N2)):
        b.send_presence(pstatus="b on imp2")
        await asyncio.sleep(0)  # let the broadcast go before a logs in (order does not matter for the asserts)
        async with slix_connected(a, xmpp_port(pair, N1)):
            a.send_presence(pstatus="a on imp1")
            # a gets b's current presence (from the peer's cache), b gets a's broadcast over the peer link
            pa = await asyncio.wait_for(got_a.get(), TIMEOUT_S)
            pb = await asyncio.wait_for(got_b.get(), TIMEOUT_S)
            assert (str(pa["from"]), pa["type"], pa["status"]) == (f"{U2}@{DOMAIN}/b", "available", "b on imp2")
            assert (str(pb["from"]), pb["type"], pb["status"]) == (f"{U1}@{DOMAIN}/a", "available", "a on imp1")
            a.send_message(mto=f"{U2}@{DOMAIN}", mbody="hello over the peer link", mtype="chat")
            msg = await asyncio.wait_for(got_b.get(), TIMEOUT_S)
            assert (str(msg["from"]), str(msg["to"]), msg["type"], msg["body"]) == (
                f"{U1}@{DOMAIN}/a", f"{U2}@{DOMAIN}", "chat", "hello over the peer link")
            b.send_message(mto=f"{U1}@{DOMAIN}/a", mbody="and back", mtype="chat")
            msg = await asyncio.wait_for(got_a.get(), TIMEOUT_S)
            assert (str(msg["from"]), msg["body"]) == (f"{U2}@{DOMAIN}/b", "and back")
        # a went away: b sees a's unavailable presence routed from imp1
        gone = await asyncio.wait_for(got_b.get(), TIMEOUT_S)
        assert (str(gone["from"]), gone["type"]) == (f"{U1}@{DOMAIN}/a", "unavailable")
    assert got_a.empty()


async def test_otp_replayed_for_another_user_on_the_backup_is_refused(pair: MockPair, http: aiohttp.ClientSession) -> None:
    otp = await soap_login_otp(http, cpa_url(pair, N1), U1)
    await asyncio.sleep(0.2)  # replication is asynchronous; the OTP is on imp2 well before this
    # user00002 is homed on imp2: the replicated OTP of user00001 must not log it in
    probe = await RawXmppClient.open(xmpp_port(pair, N2))
    got = await probe.auth(U2, otp=otp)
    assert b"<not-authorized/>" in got, got
    probe.close()
    await control_client_served(pair, http, N2)
    # and the OTP still belongs to user00001 (refusing the replay did not consume it)
    probe = await RawXmppClient.open(xmpp_port(pair, N1))
    assert await probe.login(U1, otp=otp, resource="probe", presence=True) == f"{U1}@{DOMAIN}/probe"
    probe.close()


async def test_session_key_used_on_the_node_not_serving_the_user(pair: MockPair, http: aiohttp.ClientSession) -> None:
    login = await soap(http, cpa_url(pair, N1), "login", user=U1)
    assert login.value
    await asyncio.sleep(0.2)
    # the key is replicated, but imp2 does not serve user00001 while imp1 is Normal
    wrong = await soap(http, cpa_url(pair, N2), "get-onetime-password", key=login.value)
    assert (wrong.status, wrong.fault) == (400, "not-served-here") or wrong.fault == "not-served-here", wrong.body
    assert N1 in wrong.body
    await control_client_served(pair, http, N2)


@pytest.mark.parametrize("garbage", [
    b"\x00\xff garbage \x01\n",
    b'{"t": "srm", "msg": {"kind": "take-over-request", "state": "Normal"}}\n',
    b'{"t": "ds", "delta": {"op": "nonsense"}}\n',
    b'{"t": "stanza", "to": 5}\n',
    b"[1, 2, 3]\n",
])
async def test_garbage_on_the_peer_port_changes_nothing(pair: MockPair, http: aiohttp.ClientSession, garbage: bytes) -> None:
    status = await pair.admin("GET", "/api/status")
    peer_port = pair.supervisor.node(N1).ports.peer
    reader, writer = await asyncio.open_connection("127.0.0.1", peer_port)
    writer.write(garbage)
    await writer.drain()
    await asyncio.sleep(0.3)  # > 2 heartbeats
    writer.close()
    after = await pair.admin("GET", "/api/status")
    assert [(n["state"], n["reason"]) for n in after["nodes"]] == [(n["state"], n["reason"]) for n in status["nodes"]]
    assert all(n["state"] == "Normal" for n in after["nodes"])
    await control_client_served(pair, http, N1)
    events = (await pair.admin("GET", "/api/events"))["events"]
    assert not [e for e in events if e.get("kind") == "process" and e.get("action") == "exited"], json.dumps(events)
