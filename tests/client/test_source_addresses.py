"""``--source-addresses``: each XMPP connection from the next local address in turn."""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any

import pytest

from jabberemu.errors import ConfigError
from jabberemu.xmpp.source import SourceAddressConnector, loopback_sources, parse_source_addresses


async def test_connections_come_from_each_address_in_turn() -> None:
    peers: list[str] = []

    async def on_conn(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        peers.append(w.get_extra_info("peername")[0])
        w.close()

    server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    connector = SourceAddressConnector(("127.0.0.2", "127.0.0.3"))
    transports = []
    for _ in range(4):
        transport, _protocol = await connector(asyncio.Protocol, "127.0.0.1", port)
        transports.append(transport)
    for _ in range(200):
        if len(peers) == 4:
            break
        await asyncio.sleep(0.01)
    for transport in transports:
        transport.close()
    server.close()
    await server.wait_closed()
    assert peers == ["127.0.0.2", "127.0.0.3", "127.0.0.2", "127.0.0.3"]


def test_the_option_is_read_and_refused_in_its_own_terms() -> None:
    assert parse_source_addresses(" 127.0.0.2, 127.0.0.3 ,") == ("127.0.0.2", "127.0.0.3")
    with pytest.raises(ConfigError, match=r"--source-addresses: 'imp1\.corp' is not an IP address"):
        parse_source_addresses("127.0.0.2,imp1.corp")
    with pytest.raises(ConfigError, match="--source-addresses: no address given"):
        parse_source_addresses(" , ")


def test_a_large_pool_towards_loopback_is_spread_before_connect_slows() -> None:
    # 28,232 ports (32768-60999): one address keeps at most 40 % of them (11,292) towards one node port
    assert loopback_sources(11_292, ["127.0.0.1", "127.0.0.1"], 28_232) == ()
    assert loopback_sources(15_000, ["127.0.0.1", "127.0.0.1"], 28_232) == ("127.0.0.1", "127.0.0.2")
    assert loopback_sources(25_000, ["127.0.0.1", "127.0.1.1"], 28_232) == ("127.0.0.1", "127.0.0.2", "127.0.0.3")
    # not ours to choose: a node off loopback, a host name, IPv6
    assert loopback_sources(15_000, ["127.0.0.1", "10.0.0.2"], 28_232) == ()
    assert loopback_sources(15_000, ["localhost"], 28_232) == ()
    assert loopback_sources(15_000, ["::1"], 28_232) == ()


class _Recording(socket.socket):
    """A socket that notes its options and binds (the connector's calls on the wire path)."""

    made: list[_Recording] = []

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.calls: list[tuple[Any, ...]] = []
        _Recording.made.append(self)

    def setsockopt(self, *args: Any) -> None:  # type: ignore[override]
        self.calls.append(("setsockopt", *args))
        super().setsockopt(*args)

    def bind(self, address: Any) -> None:
        self.calls.append(("bind", address))
        super().bind(address)


async def test_the_port_is_left_to_connect_and_the_loop_names_the_socket_class() -> None:
    server = await asyncio.start_server(lambda _r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    loop = asyncio.get_running_loop()
    _Recording.made.clear()
    try:
        loop.socket_class = _Recording  # type: ignore[attr-defined]  # what BridgeLoop does under Locust
        bound, _p = await SourceAddressConnector(("127.0.0.2",))(asyncio.Protocol, "127.0.0.1", port)
        plain, _p = await SourceAddressConnector()(asyncio.Protocol, "localhost", port)  # a name: resolved
    finally:
        del loop.socket_class  # type: ignore[attr-defined]
    first, last = _Recording.made[0], _Recording.made[-1]  # "localhost" may try ::1 first, refused
    nodelay = ("setsockopt", socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # asyncio's, as on its own connections
    # IP_BIND_ADDRESS_NO_PORT (24) before bind: connect() picks the port for the whole 4-tuple
    assert first.calls == [("setsockopt", socket.IPPROTO_IP, 24, 1), ("bind", ("127.0.0.2", 0)), nodelay]
    assert bound.get_extra_info("sockname")[0] == "127.0.0.2" and bound.get_extra_info("sockname")[1] > 0
    assert last.calls == [nodelay] and plain.get_extra_info("peername")[1] == port
    bound.close()
    plain.close()
    server.close()
    await server.wait_closed()


async def test_a_refused_connection_raises_and_leaves_no_socket_open() -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]  # bound, never listening: refused
    fds = len(os.listdir("/proc/self/fd"))
    connector = SourceAddressConnector(("127.0.0.2",))
    for _ in range(20):
        with pytest.raises(ConnectionRefusedError):
            await connector(asyncio.Protocol, "127.0.0.1", port)
    assert len(os.listdir("/proc/self/fd")) == fds
    probe.close()
