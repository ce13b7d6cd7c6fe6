"""``--source-addresses``: each XMPP connection from the next local address in turn."""

from __future__ import annotations

import asyncio

import pytest

from jabberemu.errors import ConfigError
from jabberemu.xmpp.source import SourceAddressConnector, parse_source_addresses


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
