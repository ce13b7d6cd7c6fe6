"""see-other-host on real sockets (RFC 6120 §4.9.3.19): the client follows a redirect to a host:port
outside its configured pair, at login and after an HA event, and a loop or too long a chain of
redirects ends its attempts with that failure class.

The in-process pair (``inproc_pair``: the mock's CPAs and XMPP listeners) serves the users. The
client's pair, and the CPAs' ``get-all-config``, name tiny stand-ins (:class:`Redirector`) as the
nodes' XMPP addresses: each answers the stream header with ``<see-other-host/>`` naming wherever
the test says, so every redirect target here is a ``host:port`` the client was never configured with.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from waiting import wait_until
from inproc_pair import DOMAIN, NODES, InProcPair, inproc_pair, make_runtime

from jabberemu.config import ServerPair
from jabberemu.core.states import ClientState, EndReason
from jabberemu.driver import EmulatedClient
from jabberemu.runtime import RecordType, Runtime
from mock_server.cpa.properties import NodeContact
from mock_server.xmpp.events import StreamCondition

IMP1, IMP2 = NODES
LOWER_S, UPPER_S = 0.05, 0.2

_HEADER = ("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
           "xmlns:stream='http://etherx.jabber.org/streams' from='{domain}' id='r{n}' version='1.0'>")


class Redirector:
    """An XMPP c2s stand-in on 127.0.0.1: answers every stream header with a ``see-other-host``
    stream error naming :attr:`target` (as the element's character data), then closes."""

    def __init__(self) -> None:
        self.port = 0
        self.target = ""
        self.accepted = 0
        self._server: asyncio.Server | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            seen = b""
            while b"<stream:stream" not in seen or not seen.rstrip().endswith(b">"):
                chunk = await asyncio.wait_for(reader.read(4096), 5)
                if not chunk:
                    return
                seen += chunk
            writer.write((_HEADER.format(domain=DOMAIN, n=self.accepted)
                          + "<stream:error><see-other-host xmlns='urn:ietf:params:xml:ns:xmpp-streams'>"
                          + self.target + "</see-other-host></stream:error></stream:stream>").encode())
            await writer.drain()
        except (OSError, asyncio.TimeoutError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@contextlib.asynccontextmanager
async def redirectors(count: int) -> AsyncIterator[list[Redirector]]:
    started: list[Redirector] = []
    try:
        for _ in range(count):
            r = Redirector()
            await r.start()
            started.append(r)
        yield started
    finally:
        for r in started:
            await r.stop()


def front(env: InProcPair, stand_ins: dict[str, Redirector]) -> None:
    """Put ``stand_ins`` in front of the pair's nodes: the client's configured pair and both CPAs'
    ``get-all-config`` give the stand-in's port as the node's XMPP address."""
    assert env.pair is not None
    contacts: Any = env.cpa[IMP1].contacts  # the one mapping both CPAs read
    nodes = []
    for node in env.pair.nodes:
        r = stand_ins.get(node.name)
        if r is not None:
            node = replace(node, xmpp_port=r.port)
            contacts[node.name] = NodeContact(name=node.name, xmpp_host="127.0.0.1", xmpp_port=r.port,
                                              cpa_url=node.cpa_url or "")
        nodes.append(node)
    env.pair = ServerPair(nodes=tuple(nodes), domain=DOMAIN)


def listener_address(env: InProcPair, node: str) -> str:
    return f"127.0.0.1:{env.listener_ports[node]}"


def path(rt: Runtime, client: str) -> list[tuple[str, str | None]]:
    return [(r["to"], r["node"]) for r in rt.sink.of_type(RecordType.STATE) if r["client"] == client]


def records_of(rt: Runtime, kind: RecordType, client: str) -> list[dict[str, Any]]:
    return [r for r in rt.sink.of_type(kind) if r["client"] == client]


async def test_login_follows_see_other_host_to_a_host_outside_the_pair() -> None:
    async with inproc_pair(2, lower_s=LOWER_S, upper_s=UPPER_S) as env, redirectors(1) as (r1,):
        (user,) = env.user_ids(IMP1)
        target = listener_address(env, IMP1)  # the mock's listener for imp1, unknown to the client
        r1.target = target
        front(env, {IMP1: r1})
        rt = await make_runtime(env)
        assert rt.pair.find(target) is None
        client = EmulatedClient(user, env.password(user), IMP1, rt)
        assert await asyncio.wait_for(client.start(), 10) is ClientState.XMPPCONNECTED
        assert client.machine.node == target
        assert path(rt, user) == [("SOAPCONNECT_P", IMP1), ("SOAPCONNECTED", IMP1), ("XMPPCONNECT_P", IMP1),
                                  ("XMPPCONNECT_P", target), ("XMPPCONNECTED", target)]
        assert [r["reason"] for r in rt.sink.of_type(RecordType.STATE)][3] == "stream-error:see-other-host"
        (conn,) = records_of(rt, RecordType.CONNECTED, user)
        assert (conn["node"], conn["relogin"]) == (target, False)
        assert r1.accepted == 1
        assert rt.registry.snapshot().connected_by_node == {target: 1}
        assert await client.stop() is ClientState.LOGGED_OUT
        rt.registry.check()
        await rt.aclose()


async def test_ha_see_other_host_to_a_host_outside_the_pair() -> None:
    """Connected through imp1's stand-in to a host outside the pair; imp1 fails over and redirects the
    user to another host outside the pair (imp2's listener): after the re-login wait and the CPA
    session login on the pair's nodes, XMPP goes to the named host."""
    async with inproc_pair(2, lower_s=LOWER_S, upper_s=UPPER_S) as env, redirectors(2) as (r1, r2):
        (user,) = env.user_ids(IMP1)
        first, second = listener_address(env, IMP1), listener_address(env, IMP2)
        r1.target, r2.target = first, second
        front(env, {IMP1: r1, IMP2: r2})
        rt = await make_runtime(env)
        client = EmulatedClient(user, env.password(user), IMP1, rt)
        assert await asyncio.wait_for(client.start(), 10) is ClientState.XMPPCONNECTED
        assert client.machine.node == first
        env.down.add(IMP1)  # imp2 serves imp1's users now; imp1 sends them there
        assert env.listeners[IMP1].shutdown_sessions(lambda u: u == user, StreamCondition.SEE_OTHER_HOST, second) == 1
        await wait_until(lambda: len(records_of(rt, RecordType.CONNECTED, user)) == 2, what="re-login")
        (ha,) = records_of(rt, RecordType.HA_EVENT, user)
        assert (ha["node"], ha["cls"]) == (first, "stream-error:see-other-host")
        after = path(rt, user)[5:]
        assert after == [("FAILOVER", None), ("SOAPCONNECT_SESSION_P", IMP1), ("SOAPCONNECT_SESSION_S", IMP2),
                         ("SOAPCONNECTED", IMP2), ("XMPPCONNECT_P", second), ("XMPPCONNECTED", second)]
        again = records_of(rt, RecordType.CONNECTED, user)[1]
        assert (again["node"], again["relogin"]) == (second, True)
        assert (r1.accepted, r2.accepted) == (1, 0)
        assert client.machine.redirect_chain == () and client.machine.redirect_target is None
        assert await client.stop() is ClientState.LOGGED_OUT
        rt.registry.check()
        await rt.aclose()


@pytest.mark.parametrize("shape", ["loop", "chain"])
async def test_redirect_loop_or_long_chain_ends_named(shape: str) -> None:
    """loop: both nodes' stand-ins send the client to X, X to Y, Y back to X. chain: both send it to
    X1, then X1 -> X2 -> X3 -> X4, one hop past MAX_REDIRECTS (3). Each XMPP attempt ends with the
    failure class; the initial login gives up after both nodes, named by it."""
    async with inproc_pair(2, lower_s=LOWER_S, upper_s=UPPER_S) as env, redirectors(6) as stand_ins:
        r1, r2, x1, x2, x3, x4 = stand_ins
        x4.target = x1.address  # never reached
        if shape == "loop":
            r1.target = r2.target = x1.address
            x1.target, x2.target = x2.address, x1.address
            hops, cls = [x1, x2], "redirect-loop"
        else:
            r1.target = r2.target = x1.address
            x1.target, x2.target, x3.target = x2.address, x3.address, x4.address
            hops, cls = [x1, x2, x3], "too-many-redirects"
        front(env, {IMP1: r1, IMP2: r2})
        rt = await make_runtime(env)
        (user,) = env.user_ids(IMP1)
        client = EmulatedClient(user, env.password(user), IMP1, rt)
        assert await asyncio.wait_for(client.start(), 10) is ClientState.GAVE_UP
        assert (client.machine.end_reason, client.machine.end_detail) == (EndReason.INITIAL_LOGIN_FAILED, cls)
        names = [h.address for h in hops]
        assert path(rt, user) == [
            ("SOAPCONNECT_P", IMP1), ("SOAPCONNECTED", IMP1),
            ("XMPPCONNECT_P", IMP1), *[("XMPPCONNECT_P", n) for n in names],
            ("XMPPCONNECT_S", IMP2), *[("XMPPCONNECT_S", n) for n in names],
            ("GAVE_UP", None)]
        (end,) = records_of(rt, RecordType.END, user)
        assert (end["reason"], end["detail"]) == ("initial-login-failed", cls)
        assert [r.accepted for r in stand_ins] == [1, 1, 2, 2, 2 if shape == "chain" else 0, 0]
        rt.registry.check()
        await rt.aclose()
