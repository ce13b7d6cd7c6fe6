"""The mock node's XMPP c2s listener: the server socket, its connections, pings of idle clients.

One ``C2sConnection`` (``xmpp.connection``) per client runs the sans-IO ``C2sStream``; the bound
sessions, their delivery and routing are the listener's :class:`~mock_server.xmpp.sessions.SessionTable`
(``listener.sessions``); the node the listener runs in answers everything else through
``XmppBackend`` (``xmpp.backend``). Behaviour copied from the real system: stream errors on HA
events (``system-shutdown``, ``see-other-host``, RFC 6120 §4.9.3, DOMAIN.md "What a Jabber client
does"), a TCP reset for a killed node (``abort_all``), XEP-0199 pings of idle clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import ssl
import struct
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from mock_server.xmpp.backend import XmppBackend
from mock_server.xmpp.connection import C2sConnection
from mock_server.xmpp.events import StreamCondition
from mock_server.xmpp.sessions import SessionTable
from mock_server.xmpp.settings import COUNTERS, ListenerMetrics, ListenerSettings
from mock_server.xmpp.wire import C2sStream, WireSettings

__all__ = ["XmppListener"]

logger = logging.getLogger(__name__)


class XmppListener:
    """A c2s listener for one node.

    Args:
        backend: the node (credentials, serving node, rosters, routing).
        settings: tunables.
        ssl_context: server context (``node.tls.server_context``) to offer STARTTLS; None: no TLS.
    """

    def __init__(self, backend: XmppBackend, settings: ListenerSettings | None = None,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.backend = backend
        self.settings = settings or ListenerSettings()
        self.ssl_context = ssl_context
        self._wire = WireSettings(domain=backend.domain, limits=self.settings.limits,
                                  tls_available=ssl_context is not None, tls_required=self.settings.tls_required)
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self.sessions: SessionTable[C2sConnection] = SessionTable(backend, self.counters)
        self._conns: set[C2sConnection] = set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._ping_ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop the listener was started on."""
        assert self._loop is not None, "listener not started"
        return self._loop

    def now(self) -> float:
        """Loop time in seconds."""
        return self.loop.time()

    @property
    def session_count(self) -> int:
        """Bound sessions on this listener."""
        return len(self.sessions)

    @property
    def connection_count(self) -> int:
        """Open TCP connections, bound or not."""
        return len(self._conns)

    @property
    def sockets(self) -> Sequence[socket.socket]:
        """The listening sockets (none before :meth:`start` or after :meth:`stop`)."""
        return self._server.sockets if self._server is not None else ()

    @property
    def metrics(self) -> ListenerMetrics:
        """A copy of the counters (auths ok/failed, sessions, connections, errors, pings,
        stanzas routed/bounced, TLS upgrades, bytes received). Read it as a dict
        (``dict(listener.metrics)``) or call it (``listener.metrics()``): both are in use."""
        return ListenerMetrics(self.counters)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen on ``host:port``.

        Returns:
            The bound port (useful with ``port=0``).

        Raises:
            OSError: the address cannot be bound.
        """
        self._loop = asyncio.get_running_loop()
        self._server = await self._loop.create_server(
            lambda: C2sConnection(self, C2sStream(self._wire)), host, port, backlog=4096)
        if self.settings.ping_interval_s > 0:
            self.spawn(self._pinger())
        bound: int = self._server.sockets[0].getsockname()[1]
        logger.info("XMPP c2s for %s on %s:%s", self.backend.node_name, host, bound)
        return bound

    async def stop(self, timeout_s: float = 2.0) -> None:
        """Stop listening, close every stream with ``system-shutdown`` and wait (bounded) for
        the connections to go; reset the rest."""
        if self._server is not None:
            self._server.close()
        self.shutdown_sessions(lambda _user: True, StreamCondition.SYSTEM_SHUTDOWN)
        deadline = self.loop.time() + timeout_s
        while self._conns and self.loop.time() < deadline:
            await asyncio.sleep(0.01)
        self.abort_all()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def shutdown_sessions(self, predicate: Callable[[str | None], bool],
                          condition: StreamCondition = StreamCondition.SYSTEM_SHUTDOWN,
                          text: str | None = None) -> int:
        """Close streams with a stream error (RFC 6120 §4.9.3).

        Args:
            predicate: called with each connection's user id (None before authentication);
                True closes it.
            condition: e.g. ``system-shutdown`` (services stopped), ``see-other-host`` (with
                ``text`` = ``host:port``).
            text: error text, or the see-other-host address.

        Returns:
            The number of connections closed.
        """
        condition = StreamCondition(condition)
        victims = [c for c in self._conns if not c.stream.closed and predicate(c.stream.user)]
        for conn in victims:
            conn.kick(condition, text)
        return len(victims)

    def abort_all(self) -> int:
        """Reset every connection: ``SO_LINGER`` 0 then ``transport.abort()``, so clients see a
        TCP RST (what a killed node looks like to a client). Returns the count."""
        conns = [c for c in self._conns if c.transport is not None]
        for conn in conns:
            assert conn.transport is not None
            sock = conn.transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.transport.abort()
        return len(conns)

    # -- what a connection asks of the listener that accepted it ------------------------------
    def admit(self, conn: C2sConnection) -> bool:
        """Count a new connection; False when it is over ``max_connections`` (it is then refused
        with ``resource-constraint`` when its stream opens)."""
        self._conns.add(conn)
        self.counters["connections_total"] += 1
        self.counters["connections_active"] = len(self._conns)
        return len(self._conns) <= self.settings.max_connections

    def release(self, conn: C2sConnection) -> None:
        """The connection is gone."""
        self._conns.discard(conn)
        self.counters["connections_active"] = len(self._conns)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` as a task of the listener (cancelled by :meth:`stop`)."""
        task: asyncio.Task[None] = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def next_ping_id(self) -> str:
        """The id of the next server-to-client ping."""
        return f"s2c-{next(self._ping_ids)}"

    # -- internals -------------------------------------------------------------------------
    async def _pinger(self) -> None:
        tick_s = min(self.settings.ping_interval_s, self.settings.ping_timeout_s) / 4
        while True:
            await asyncio.sleep(tick_s)
            now = self.now()
            for conn in self.sessions:
                conn.check_idle(now)
