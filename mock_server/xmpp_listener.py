"""The mock node's XMPP c2s listener: the server socket, the table of bound sessions, routing.

One ``C2sConnection`` (``mock_server/xmpp_connection.py``) per client runs the sans-IO
``C2sStream``; the node the listener runs in answers everything else through ``XmppBackend``
(``mock_server/xmpp_backend.py``). Behaviour copied from the real system: stream errors on HA
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
from collections.abc import Callable
from dataclasses import dataclass

from mock_server.xmpp_backend import XmppBackend
from mock_server.xmpp_connection import C2sConnection
from mock_server.xmpp_events import PresenceBroadcast, Routed, StreamCondition
from mock_server.xmpp_wire import C2sStream, WireSettings, split_jid
from mock_server.xmpp_xml import ParseLimits

__all__ = ["ListenerMetrics", "ListenerSettings", "XmppListener"]

logger = logging.getLogger(__name__)

_COUNTERS = ("connections_total", "connections_active", "sessions_active", "auths_ok", "auths_failed",
             "redirects", "stream_errors_sent", "pings_sent", "pongs_received", "ping_timeouts",
             "stanzas_routed", "stanzas_bounced", "tls_upgrades", "bytes_received")


@dataclass(frozen=True, kw_only=True)
class ListenerSettings:
    """Listener tunables (all our choice; tests shrink the timers).

    Args:
        limits: XML limits per stream (stanza size default 64 KiB).
        tls_required: refuse SASL before STARTTLS (needs an ``ssl_context``).
        ping_interval_s: ping a bound client idle this long (XEP-0199 §4.2); 0 turns pinging off.
        ping_timeout_s: close with ``connection-timeout`` when the ping is unanswered this long.
        max_connections: over this, a new stream gets ``resource-constraint`` (RFC 6120 §4.9.3.17).
        max_write_buffer_bytes: a client that does not read past this is reset.
        close_grace_s: after our closing bytes, reset the socket if the client has not gone.

    Raises:
        ValueError: negative or zero values where positive ones are needed.
    """

    limits: ParseLimits = ParseLimits()
    tls_required: bool = False
    ping_interval_s: float = 0.0
    ping_timeout_s: float = 30.0
    max_connections: int = 50_000
    max_write_buffer_bytes: int = 4 * 1024 * 1024
    close_grace_s: float = 2.0

    def __post_init__(self) -> None:
        if self.ping_interval_s < 0 or self.ping_timeout_s <= 0 or self.close_grace_s <= 0:
            raise ValueError("ping_interval_s >= 0, ping_timeout_s > 0 and close_grace_s > 0 required")
        if self.max_connections < 1 or self.max_write_buffer_bytes < 64 * 1024:
            raise ValueError("max_connections >= 1 and max_write_buffer_bytes >= 64 KiB required")


class ListenerMetrics(dict[str, int]):
    """A snapshot of the listener counters; calling it returns a plain ``dict`` copy."""

    def __call__(self) -> dict[str, int]:
        return dict(self)


class XmppListener:
    """A c2s listener for one node.

    Args:
        backend: the node (credentials, serving node, rosters, routing).
        settings: tunables.
        ssl_context: server context (``tls.server_context``) to offer STARTTLS; None: no TLS.
    """

    def __init__(self, backend: XmppBackend, settings: ListenerSettings | None = None,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.backend = backend
        self.settings = settings or ListenerSettings()
        self.ssl_context = ssl_context
        self._wire = WireSettings(domain=backend.domain, limits=self.settings.limits,
                                  tls_available=ssl_context is not None, tls_required=self.settings.tls_required)
        self.counters: dict[str, int] = dict.fromkeys(_COUNTERS, 0)
        self._conns: set[C2sConnection] = set()
        self._by_full: dict[str, C2sConnection] = {}
        self._by_bare: dict[str, dict[str, C2sConnection]] = {}
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
        return len(self._by_full)

    @property
    def connection_count(self) -> int:
        """Open TCP connections, bound or not."""
        return len(self._conns)

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
            self._spawn(self._pinger())
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

    def deliver(self, to_jid: str, stanza: bytes) -> int:
        """Write a stanza (``from`` already stamped) to local sessions.

        Args:
            to_jid: a full JID (that session), or a bare JID (its sessions that sent available
                presence, or all its sessions if none did).
            stanza: the bytes to write.

        Returns:
            Sessions written to (0: no such session here).
        """
        local, domain, resource = split_jid(to_jid)
        bare = f"{local}@{domain}"
        if resource:
            conn = self._by_full.get(f"{bare}/{resource}")
            targets = [conn] if conn is not None else []
        else:
            sessions = list(self._by_bare.get(bare, {}).values())
            targets = [c for c in sessions if c.presence is not None] or sessions
        for conn in targets:
            conn.write(stanza)
        return len(targets)

    # -- internals -------------------------------------------------------------------------
    def _add(self, conn: C2sConnection) -> bool:
        self._conns.add(conn)
        self.counters["connections_total"] += 1
        self.counters["connections_active"] = len(self._conns)
        return len(self._conns) <= self.settings.max_connections

    def _remove(self, conn: C2sConnection) -> None:
        self._conns.discard(conn)
        self.counters["connections_active"] = len(self._conns)

    def _spawn(self, coro: object) -> None:
        task: asyncio.Task[None] = self.loop.create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _send_to_contacts(self, user: str, stanza: bytes) -> None:
        for item in self.backend.roster(user):
            if self.deliver_available(item.jid, stanza) == 0:
                self.backend.route(item.jid, stanza)

    def deliver_available(self, bare_jid: str, stanza: bytes) -> int:
        """Write to the sessions of ``bare_jid`` that sent available presence (RFC 6121 §4.4.2)."""
        targets = [c for c in self._by_bare.get(bare_jid.lower(), {}).values() if c.presence is not None]
        for conn in targets:
            conn.write(stanza)
        return len(targets)

    def _broadcast(self, conn: C2sConnection, ev: PresenceBroadcast) -> None:
        """RFC 6121 §4.2.2 (initial), §4.4.2 (update), §4.5.2 (unavailable); the user's other
        resources get it too. On initial presence the user gets its contacts' presence (§4.2.3)."""
        assert conn.info is not None
        user = conn.info.user
        conn.presence = ev.stanza if ev.available else None
        self._send_to_contacts(user, ev.stanza)
        for other in self._by_bare.get(conn.info.bare_jid, {}).values():
            if other is not conn and other.presence is not None:
                other.write(ev.stanza)
        if ev.available and not conn.sent_initial:
            conn.sent_initial = True
            for item in self.backend.roster(user):
                for contact in self._by_bare.get(item.jid, {}).values():
                    if contact.presence is not None:
                        conn.write(contact.presence)
            for stanza in self.backend.presence_of_contacts(user):
                conn.write(stanza)

    def _route(self, conn: C2sConnection, ev: Routed) -> None:
        """RFC 6120 §10.5 (local domain) and RFC 6121 §8.5: local session, else the backend
        (peer node), else an error reply."""
        self.counters["stanzas_routed"] += 1
        local, domain, resource = split_jid(ev.to_jid)
        to_account = domain == self.backend.domain and bool(local)
        if to_account and not (ev.kind.value == "iq" and not resource):
            if self.deliver(ev.to_jid, ev.stanza) or self.backend.route(ev.to_jid, ev.stanza):
                return
        bounce = conn.stream.bounce(ev)
        if bounce:
            self.counters["stanzas_bounced"] += 1
            conn.write(bounce)

    async def _pinger(self) -> None:
        tick_s = min(self.settings.ping_interval_s, self.settings.ping_timeout_s) / 4
        while True:
            await asyncio.sleep(tick_s)
            now = self.now()
            for conn in list(self._by_full.values()):
                conn.check_idle(now)
