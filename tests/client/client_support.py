"""Test servers of the client tests: a node that accepts and never answers, a port nobody serves."""

from __future__ import annotations

import asyncio
import socket

__all__ = ["SilentServer", "free_port"]


class SilentServer:
    """A TCP server on 127.0.0.1 that accepts and then never answers (a stalled node)."""

    def __init__(self) -> None:
        self.port = 0
        self.accepted = 0
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> SilentServer:
        async def on_conn(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            self.accepted += 1
            self._writers.append(w)

        self._server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for w in self._writers:
            w.close()
        await self._server.wait_closed()


def free_port() -> int:
    """A loopback port nobody listens on (bound then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
