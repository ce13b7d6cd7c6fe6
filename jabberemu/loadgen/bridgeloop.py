"""The bridge's loop thread, built on gevent's original primitives (ENGINEERING.md, "Locust (gevent) and asyncio").

Locust patches ``socket``, ``select``, ``threading`` and friends with gevent's versions. The
asyncio loop of :class:`~jabberemu.loadgen.bridge.AsyncioBridge` runs in a real OS thread, where
those versions die with ``LoopExit`` or spawn greenlets nobody runs; so it is built here on the
originals (traps 1-3 of the bridge's docstring):

- ``start_new_thread``, ``get_ident``, ``allocate_lock``: the real ``_thread`` functions;
- :class:`BridgeLoop`: a selector loop on the original ``select.epoll`` (handing out at most
  ``eventloop.MAX_EVENTS`` ready sockets per iteration), its self-pipe on the original socketpair,
  ``getaddrinfo``/``getnameinfo`` on the original resolver, run inline, and the original socket class
  for the connections its clients open (``BridgeLoop.socket_class``);
- :class:`InlineExecutor`: the loop's default executor (the patched thread pool would hang);
- :data:`GC_CLOCK`: the time the collector holds the process (every thread stops meanwhile), for
  generator health.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import selectors
import time
from collections.abc import Callable
from typing import Any

from gevent import monkey

from jabberemu.eventloop import bounded_selector_class

__all__ = ["GC_CLOCK", "BridgeLoop", "GcClock", "InlineExecutor", "allocate_lock", "get_ident", "start_new_thread"]

start_new_thread = monkey.get_original("_thread", "start_new_thread")
get_ident = monkey.get_original("_thread", "get_ident")
allocate_lock = monkey.get_original("_thread", "allocate_lock")
_RealEpollSelector: type[selectors.BaseSelector] = monkey.get_original("selectors", "EpollSelector")
_real_getaddrinfo = monkey.get_original("socket", "getaddrinfo")
_real_getnameinfo = monkey.get_original("socket", "getnameinfo")
_RealSocket = monkey.get_original("socket", "socket")


class GcClock:
    """Time the garbage collector holds the process (``gc.callbacks``; every thread stops meanwhile)."""

    def __init__(self) -> None:
        self._t0: float | None = None
        self._total_ms = 0.0
        self._max_ms = 0.0
        self._installed = False

    def install(self) -> None:
        if not self._installed:
            gc.callbacks.append(self._callback)
            self._installed = True

    def _callback(self, phase: str, _info: dict[str, Any]) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
        elif self._t0 is not None:
            ms = (time.perf_counter() - self._t0) * 1000.0
            self._t0 = None
            self._total_ms += ms
            self._max_ms = max(self._max_ms, ms)

    def take(self) -> tuple[float, float]:
        """(total ms, longest ms) since the previous call."""
        out = (self._total_ms, self._max_ms)
        self._total_ms = self._max_ms = 0.0
        return out


GC_CLOCK = GcClock()


class InlineExecutor(concurrent.futures.Executor):
    """Default executor of the bridge loop: runs the call inline (the patched pool would hang)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            future.set_exception(exc)
        return future


_BoundedEpollSelector = bounded_selector_class(_RealEpollSelector)


class BridgeLoop(asyncio.SelectorEventLoop):
    """Selector loop on the original epoll, self-pipe and resolver (traps 2 and 3); the selector hands
    it at most ``eventloop.MAX_EVENTS`` ready sockets per iteration (:mod:`jabberemu.eventloop`)."""

    socket_class: type = _RealSocket
    """The sockets this loop's connections are made of (``SourceAddressConnector``, the CPA transport's
    ``socket_factory``): the original class, not gevent's (a gevent hub in this thread, two watchers per
    socket, a Python wrapper around every ``send``/``recv``)."""

    def __init__(self) -> None:
        super().__init__(selector=_BoundedEpollSelector())
        self._default_executor = InlineExecutor()  # set_default_executor() insists on a thread pool

    def _make_self_pipe(self) -> None:
        import _socket

        a, b = _socket.socketpair()
        self._ssock = _RealSocket(a.family, a.type, a.proto, fileno=a.detach())
        self._csock = _RealSocket(b.family, b.type, b.proto, fileno=b.detach())
        self._ssock.setblocking(False)
        self._csock.setblocking(False)
        self._internal_fds += 1  # type: ignore[attr-defined]  # mirrors BaseSelectorEventLoop
        self._add_reader(self._ssock.fileno(), self._read_from_self)  # type: ignore[attr-defined]

    async def getaddrinfo(self, host: Any, port: Any, *, family: int = 0, type: int = 0,  # noqa: A002
                          proto: int = 0, flags: int = 0) -> list[Any]:
        return list(_real_getaddrinfo(host, port, family, type, proto, flags))

    async def getnameinfo(self, sockaddr: Any, flags: int = 0) -> tuple[str, str]:
        host, service = _real_getnameinfo(sockaddr, flags)
        return str(host), str(service)
