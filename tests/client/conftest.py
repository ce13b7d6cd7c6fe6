"""Shared helpers of the client tests (this directory is on sys.path for pytest)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from jabberemu.runtime import Runtime


async def wait_until(predicate: Callable[[], bool], timeout_s: float = 5.0, what: str = "condition") -> None:
    """Poll ``predicate`` every 10 ms until true; fail after ``timeout_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"{what} not met within {timeout_s} s")
        await asyncio.sleep(0.01)


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
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(autouse=True)
async def _close_runtimes(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[list[Runtime]]:
    """Close every Runtime a test built, even when the test failed (no unclosed HTTP sessions)."""
    made: list[Runtime] = []
    original = Runtime.create.__func__  # type: ignore[attr-defined]

    async def create(cls: type[Runtime], *args: Any, **kwargs: Any) -> Runtime:
        rt = await original(cls, *args, **kwargs)
        made.append(rt)
        return rt

    monkeypatch.setattr(Runtime, "create", classmethod(create))
    yield made
    for rt in made:
        await rt.aclose()
