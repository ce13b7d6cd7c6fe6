"""In-memory stream connections: the seam under :class:`~jabberemu.xmpp.client.XmppSession` for tests.

:class:`MemoryConnector` has ``loop.create_connection``'s signature (an
:data:`~jabberemu.xmpp.client.Connector`); instead of a socket it joins the client's protocol to a
server protocol (any ``asyncio.Protocol``) made by a factory, through two :class:`MemoryTransport`
ends on the same loop. Bytes written on one end reach the other end's ``data_received`` on the next
loop turn, in order; closing one end ends both. No TLS (STARTTLS needs a real socket).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

__all__ = ["MemoryConnector", "MemoryTransport", "ServerFactory"]

ServerFactory = Callable[[str, int], "asyncio.Protocol | None"]
"""``factory(host, port)`` -> the server end's protocol, or None to refuse the connection."""


class MemoryTransport(asyncio.Transport):
    """One end of an in-memory byte stream.

    Attributes:
        written: bytes written on this end, in order.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, protocol: asyncio.BaseProtocol,
                 name: tuple[str, int], peername: tuple[str, int]) -> None:
        super().__init__()
        self._loop = loop
        self._protocol = protocol
        self._peer: MemoryTransport | None = None
        self._closing = False
        self._lost_called = False
        self._extra = {"sockname": name, "peername": peername}
        self.written = bytearray()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._extra.get(name, default)

    def is_closing(self) -> bool:
        return self._closing

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def pause_reading(self) -> None:
        """No flow control in memory."""

    def resume_reading(self) -> None:
        """No flow control in memory."""

    def is_reading(self) -> bool:
        return not self._closing

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing:
            return
        chunk = bytes(data)
        self.written += chunk
        peer = self._peer
        if peer is not None:
            self._loop.call_soon(peer._receive, chunk)

    def can_write_eof(self) -> bool:
        return False

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._loop.call_soon(self._lost, None)
        peer, self._peer = self._peer, None
        if peer is not None:  # after the bytes already on their way (call_soon keeps the order)
            peer._peer = None
            self._loop.call_soon(peer._closed_by_peer)

    def abort(self) -> None:
        self.close()

    def _receive(self, chunk: bytes) -> None:
        if not self._lost_called:
            self._protocol.data_received(chunk)  # type: ignore[attr-defined]

    def _closed_by_peer(self) -> None:
        if not self._closing:
            self._closing = True
            self._loop.call_soon(self._lost, None)

    def _lost(self, exc: Exception | None) -> None:
        self._lost_called = True
        protocol, self._protocol = self._protocol, asyncio.Protocol()
        protocol.connection_lost(exc)


class MemoryConnector:
    """Opens in-memory connections to server protocols made by ``factory``.

    Args:
        factory: ``factory(host, port)`` -> the server protocol, or None (connection refused).

    Attributes:
        opened: (host, port) of every connection opened, in order.
    """

    def __init__(self, factory: ServerFactory) -> None:
        self.factory = factory
        self.opened: list[tuple[str, int]] = []
        self._next_port = 40000

    async def __call__(self, protocol_factory: Callable[[], asyncio.BaseProtocol], host: str, port: int, *,
                       ssl: Any = None, server_hostname: str | None = None,
                       **_kw: Any) -> tuple[asyncio.BaseTransport, asyncio.BaseProtocol]:
        """``loop.create_connection`` in memory.

        Raises:
            ConnectionRefusedError: the factory refused.
            OSError: TLS asked for (not available in memory).
        """
        if ssl is not None:
            raise OSError("TLS is not available on an in-memory connection")
        server = self.factory(host, port)
        if server is None:
            raise ConnectionRefusedError(f"in-memory {host}:{port} refused")
        loop = asyncio.get_running_loop()
        self._next_port += 1
        local = ("127.0.0.1", self._next_port)
        client_protocol = protocol_factory()
        client_end = MemoryTransport(loop, client_protocol, local, (host, port))
        server_end = MemoryTransport(loop, server, (host, port), local)
        client_end._peer, server_end._peer = server_end, client_end
        self.opened.append((host, port))
        server.connection_made(server_end)
        client_protocol.connection_made(client_end)
        return client_end, client_protocol
