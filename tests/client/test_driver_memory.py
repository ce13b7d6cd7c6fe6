"""The driver on its transport seam: the whole client (machine, driver, CPA and XMPP adapters, slixmpp,
zeep's requests) against a pair in memory (memory_pair.py), no socket. The same behaviours are tested
on real sockets in test_login.py, test_ha.py and test_true_causes.py."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from waiting import wait_until
from inproc_pair import fast_timeouts
from memory_pair import DOMAIN, MEM_NODES, MemoryPair, memory_runtime

from jabberemu.config import ClientSettings, ReloginLimits, SaslMechanism
from jabberemu.core.states import ClientState, EndReason
from jabberemu.driver import EmulatedClient
from jabberemu.runtime import RecordType
from jabberemu.soap.transport import MockRequest, MockTransport, RawResponse
from jabberemu.xmpp.memory import MemoryConnector

IMP1, IMP2 = MEM_NODES
LOGIN_LABELS = ["soap/login", "soap/get-all-config", "soap/get-onetime-password", "xmpp/connect", "xmpp/auth",
                "xmpp/bind", "client/login"]


def settings(**kw: Any) -> ClientSettings:
    return ClientSettings(verify_tls=False, timeouts=fast_timeouts(), **kw)


async def test_a_full_cpa_login_in_memory() -> None:
    mem = MemoryPair(lower_s=0.5, upper_s=3.0)
    measured: list[Any] = []
    rt = await memory_runtime(mem, settings(), measurements=measured)
    user = mem.user_ids(IMP1)[0]
    client = EmulatedClient(user, mem.password(user), IMP1, rt)
    assert await client.start() is ClientState.XMPPCONNECTED
    assert [m.label for _c, m in measured] == LOGIN_LABELS
    assert all(c == user and m.ok and m.node == IMP1 for c, m in measured)
    assert mem.cpa_calls == [(IMP1, "login"), (IMP1, "get-all-config"), (IMP1, "get-onetime-password")]
    assert mem.connected(IMP1) == [user]
    assert client.machine.limits == ReloginLimits(lower_s=0.5, upper_s=3.0)
    # get-all-config named the nodes only: their addresses were completed from the configured pair, once
    assert client.machine.primary == rt.pair.node(IMP1) and client.machine.secondary == rt.pair.node(IMP2)
    assert client.hostname_hints == [IMP1, IMP2]
    assert client.contacts == [f"{u}@{DOMAIN}" for u in mem.user_ids() if u != user][:2]
    states = [(r["from"], r["to"]) for r in rt.sink.of_type(RecordType.STATE)]
    assert states == [("NEW", "SOAPCONNECT_P"), ("SOAPCONNECT_P", "SOAPCONNECTED"),
                      ("SOAPCONNECTED", "XMPPCONNECT_P"), ("XMPPCONNECT_P", "XMPPCONNECTED")]
    # one road: every measurement is also the run data's request record, in the same order
    assert [f"{r['request_type']}/{r['name']}" for r in rt.sink.of_type(RecordType.REQUEST)] == LOGIN_LABELS
    assert await client.stop() is ClientState.LOGGED_OUT
    assert mem.cpa_calls[-1] == (IMP1, "logout") and measured[-1][1].label == "soap/logout"
    await rt.aclose()


async def test_failover_and_fallback_in_memory() -> None:
    mem = MemoryPair(users=4, lower_s=0.01, upper_s=0.05)
    rt = await memory_runtime(mem, settings())
    clients = [EmulatedClient(u, mem.password(u), mem.home(u), rt) for u in mem.user_ids()]
    assert await asyncio.gather(*(c.start() for c in clients)) == [ClientState.XMPPCONNECTED] * 4
    movers = mem.user_ids(IMP1)
    assert mem.fail_over(IMP1) == 2
    # the node sees the bound session a moment before the client records XMPPCONNECTED: wait for both
    await wait_until(lambda: sorted(mem.connected(IMP2)) == sorted(mem.user_ids())
                     and all(c.state is ClientState.XMPPCONNECTED for c in clients), what="all on imp2")
    for user in movers:
        path = [r["to"] for r in rt.sink.of_type(RecordType.STATE) if r["client"] == user][4:]
        assert path == ["FAILOVER", "SOAPCONNECT_SESSION_P", "SOAPCONNECT_SESSION_S", "SOAPCONNECTED",
                        "XMPPCONNECT_P", "XMPPCONNECTED"]
        (ha,) = [r for r in rt.sink.of_type(RecordType.HA_EVENT) if r["client"] == user]
        assert (ha["node"], ha["cls"]) == (IMP1, "stream-error:system-shutdown")
    refused = [r for r in rt.sink.of_type(RecordType.REQUEST) if r["name"] == "session-login" and not r["ok"]]
    assert sorted(r["client"] for r in refused) == sorted(movers)
    assert {r["cause"] for r in refused} == {"soap-fault:services-stopped"}
    assert mem.fall_back(IMP1) == 2
    await wait_until(lambda: sorted(mem.connected(IMP1)) == sorted(movers)
                     and all(c.state is ClientState.XMPPCONNECTED for c in clients), what="home again")
    await asyncio.gather(*(c.stop() for c in clients))
    rt.registry.check()
    await rt.aclose()


@pytest.mark.parametrize(("failure", "cause"), [
    (aiohttp.ServerDisconnectedError(), "connection-closed"),
    (ConnectionResetError(), "connection-reset"),
    (aiohttp.ClientPayloadError("truncated"), "connection-reset"),
])
async def test_a_cpa_transport_failure_is_translated_once(failure: Exception, cause: str) -> None:
    mem = MemoryPair()

    def handler(request: MockRequest) -> RawResponse:
        raise failure

    rt = await memory_runtime(mem, settings())
    rt.cpa._transport = MockTransport(handler)  # type: ignore[union-attr]
    user = mem.user_ids(IMP1)[0]
    client = EmulatedClient(user, mem.password(user), IMP1, rt)
    assert await client.start() is ClientState.GAVE_UP
    causes = [r["cause"] for r in rt.sink.of_type(RecordType.REQUEST) if r["request_type"] == "soap"]
    assert causes == [cause, cause]  # primary, then secondary
    assert client.machine.end_detail == cause
    await rt.aclose()


async def test_the_soap_deadline_is_the_transports_and_ends_the_attempt_as_a_timeout() -> None:
    mem = MemoryPair()
    stalled: list[MockRequest] = []

    async def handler(request: MockRequest) -> RawResponse:
        stalled.append(request)
        await asyncio.Event().wait()  # a CPA that never answers
        raise AssertionError("not reached")

    measured: list[Any] = []
    rt = await memory_runtime(mem, settings(), measurements=measured)
    rt.cpa._transport = MockTransport(handler, timeout_s=0.05)  # type: ignore[union-attr]
    user = mem.user_ids(IMP1)[0]
    client = EmulatedClient(user, mem.password(user), IMP1, rt)
    assert await client.start() is ClientState.GAVE_UP
    assert len(stalled) == 2
    assert [(m.label, m.cause) for _c, m in measured[:2]] == [("soap/login", "timeout:soap")] * 2
    assert client.machine.end_detail == "timeout:soap"
    # the failed sign-in as a whole is counted under its end reason, not as an unclassified error (each
    # attempt is already counted under its own class)
    (login,) = [m for _c, m in measured if m.label == "client/login"]
    assert (login.ok, login.cause) == (False, "initial-login-failed")
    await rt.aclose()


async def test_an_html_error_page_in_memory_is_an_http_error() -> None:
    mem = MemoryPair()

    def handler(request: MockRequest) -> RawResponse:
        return RawResponse(status=502, content=b"<html>bad gateway</html>", content_type="text/html",
                           charset="utf-8", headers={"Content-Type": "text/html"})

    rt = await memory_runtime(mem, settings())
    rt.cpa._transport = MockTransport(handler)  # type: ignore[union-attr]
    client = EmulatedClient("user1", "pw-user1", IMP1, rt)
    assert await client.start() is ClientState.GAVE_UP
    assert (client.machine.end_reason, client.machine.end_detail) == (EndReason.INITIAL_LOGIN_FAILED,
                                                                      "http-error:502:text/html")
    await rt.aclose()


async def test_bad_credentials_and_a_refused_xmpp_connection_in_memory() -> None:
    mem = MemoryPair()
    rt = await memory_runtime(mem, settings())
    client = EmulatedClient("user1", "wrong", IMP1, rt)
    assert await client.start() is ClientState.GAVE_UP
    assert client.machine.end_detail == "soap-fault:bad-credentials"
    assert mem.cpa_calls == [(IMP1, "login")]  # a wrong password is not tried on the peer
    await rt.aclose()

    mem = MemoryPair()
    xo = await memory_runtime(mem, settings(xmpp_only=True, password_mechanism=SaslMechanism.PLAIN))
    assert isinstance(xo.xmpp_connector, MemoryConnector)
    mem.down.update(MEM_NODES)  # both nodes refuse XMPP connections
    client = EmulatedClient("user1", "pw-user1", IMP1, xo)
    assert await client.start() is ClientState.GAVE_UP
    assert client.machine.end_detail == "connection-refused"
    assert xo.xmpp_connector.opened == []
    assert mem.cpa_calls == []
    await xo.aclose()


async def test_xmpp_only_login_and_pings_in_memory() -> None:
    mem = MemoryPair()
    measured: list[Any] = []
    rt = await memory_runtime(mem, ClientSettings(xmpp_only=True, verify_tls=False, password_mechanism=SaslMechanism.PLAIN,
                                                  timeouts=fast_timeouts(ping_interval_s=0.01)),
                              measurements=measured)
    client = EmulatedClient("user2", "pw-user2", IMP2, rt)
    assert await client.start() is ClientState.XMPPCONNECTED
    assert [m.label for _c, m in measured[:4]] == ["xmpp/connect", "xmpp/auth", "xmpp/bind", "client/login"]
    await wait_until(lambda: sum(m.label == "xmpp/ping" for _c, m in measured) >= 3, what="three pings")
    (stream,) = mem.streams[IMP2]
    assert stream.pings >= 3 and all(m.ok for _c, m in measured)
    assert await client.stop() is ClientState.LOGGED_OUT
    await rt.aclose()
