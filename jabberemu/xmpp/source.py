"""XMPP connections from several local source addresses (``--source-addresses``).

One source address opens at most one connection per ephemeral port towards one node ``ip:port``
(``net.ipv4.ip_local_port_range``: ~28,000 on a stock Linux); a pool larger than that uses several
addresses, each connection from the next one in turn. On loopback every ``127.x.y.z`` is local
without configuration. A :data:`~jabberemu.xmpp.client.Connector`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
from collections.abc import Callable, Sequence
from typing import Any

from jabberemu.errors import ConfigError

__all__ = ["SourceAddressConnector", "parse_source_addresses"]


def parse_source_addresses(text: str) -> tuple[str, ...]:
    """``127.0.0.1,127.0.0.2`` -> the addresses; ConfigError naming the first that is no IP address."""
    out = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            out.append(str(ipaddress.ip_address(item)))
        except ValueError:
            raise ConfigError(f"--source-addresses: {item!r} is not an IP address", field="source_addresses") from None
    if not out:
        raise ConfigError("--source-addresses: no address given", field="source_addresses")
    return tuple(out)


class SourceAddressConnector:
    """Opens each connection from the next of ``addresses`` (round robin), the port chosen by the kernel.

    Args:
        addresses: local IP addresses of this host.
        loop: the event loop (the running one when None).
    """

    def __init__(self, addresses: Sequence[str], loop: asyncio.AbstractEventLoop | None = None) -> None:
        if not addresses:
            raise ValueError("SourceAddressConnector needs at least one address")
        self.addresses = tuple(addresses)
        self._next = itertools.cycle(self.addresses)
        self._loop = loop

    async def __call__(self, protocol_factory: Callable[[], asyncio.BaseProtocol], host: str, port: int,
                       **kw: Any) -> tuple[asyncio.BaseTransport, asyncio.BaseProtocol]:
        loop = self._loop or asyncio.get_running_loop()
        return await loop.create_connection(protocol_factory, host, port, local_addr=(next(self._next), 0), **kw)
