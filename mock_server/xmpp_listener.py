"""The mock node's XMPP c2s listener: one asyncio Protocol per connection around ``C2sStream``.

The listener owns the sockets and the table of bound sessions on this node; the node it runs in
answers everything else through ``XmppBackend`` (``mock_server/xmpp_backend.py``). Behaviour copied
from the real system: stream errors on HA events (``system-shutdown``, ``see-other-host``, RFC 6120
§4.9.3, DOMAIN.md "What a Jabber client does"), a TCP reset for a killed node (``abort_all``),
XEP-0199 pings of idle clients.

STARTTLS (RFC 6120 §5): after ``<proceed/>`` reading stops at once (the TLS ClientHello must not
reach the XML parser) and ``loop.start_tls()`` upgrades the transport. The client's new stream
header can arrive through the TLS layer before ``start_tls()`` returns the new transport
(ENGINEERING.md): writes are queued until it does, then flushed over TLS.
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
from dataclasses import dataclass, field

from mock_server.xmpp_backend import SessionInfo, XmppBackend
from mock_server.xmpp_events import (
    AuthRequested, DataOut, Event, IqResponse, PresenceBroadcast, Routed, RosterRequested, SaslCondition,
    SaslMechanism, SessionBound, StartTlsRequested, StreamClosed, StreamCondition, StreamErrorSent, StreamOpened,
)
from mock_server.xmpp_wire import C2sStream, WireSettings, split_jid
from mock_server.xmpp_xml import ParseLimits, attr_escape

__all__ = ["ListenerSettings", "XmppListener"]

logger = logging.getLogger(__name__)

_COUNTERS = ("connections_total", "connections_active", "sessions_active", "auths_ok", "auths_failed",
             "auths_busy", "redirects", "stream_errors_sent", "pings_sent", "pongs_received", "ping_timeouts",
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


@dataclass(eq=False)
class _Conn(asyncio.Protocol):
    """One client connection."""

    listener: XmppListener
    stream: C2sStream
    transport: asyncio.Transport | None = None
    peer: str = ""
    info: SessionInfo | None = None
    presence: bytes | None = None  # last available presence, stamped
    sent_initial: bool = False
    last_rx: float = 0.0
    ping_id: str | None = None
    ping_sent: float = 0.0
    upgrading: bool = False
    queued: list[bytes] = field(default_factory=list)
    refuse: bool = False
    abort_handle: asyncio.TimerHandle | None = None
    closing: bool = False

    # -- asyncio.Protocol ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.last_rx = self.listener.now()
        self.refuse = not self.listener._add(self)
        transport.set_write_buffer_limits(high=256 * 1024)

    def data_received(self, data: bytes) -> None:
        if self.stream.closed:
            return  # draining after our close
        self.last_rx = self.listener.now()
        self.listener.counters["bytes_received"] += len(data)
        self.handle(self.stream.feed(data))

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if self.abort_handle is not None:
            self.abort_handle.cancel()
        self.end_session()
        self.listener._remove(self)

    def pause_writing(self) -> None:
        if self.transport is not None and not self.upgrading:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and not self.upgrading and not self.transport.is_closing():
            self.transport.resume_reading()

    # -- output ----------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if not data or self.transport is None:
            return
        if self.upgrading:
            self.queued.append(data)
            return
        if self.closing or self.transport.is_closing():
            return
        self.transport.write(data)
        if self.transport.get_write_buffer_size() > self.listener.settings.max_write_buffer_bytes:
            logger.warning("client %s does not read; resetting", self.peer)
            self.transport.abort()

    def finish(self) -> None:
        """End the connection after our closing bytes (RFC 6120 §4.4): half-close (FIN after
        the buffered bytes) and drain what the client still sends, so no unread data turns our
        close into a RST that could discard the stream error on the client's side; reset the
        socket if the client has not closed within ``close_grace_s``. TLS: plain close."""
        transport = self.transport
        if transport is None or self.upgrading or self.abort_handle is not None or transport.is_closing():
            return
        self.closing = True
        if transport.can_write_eof():
            transport.write_eof()
        else:
            transport.close()
        self.abort_handle = self.listener.loop.call_later(self.listener.settings.close_grace_s, transport.abort)

    def kick(self, condition: StreamCondition, text: str | None = None) -> None:
        """Send a stream error, end the session now and close."""
        self.listener.counters["stream_errors_sent"] += 1
        self.write(self.stream.stream_error(condition, text))
        self.end_session()
        self.finish()

    # -- events ------------------------------------------------------------------------------
    def handle(self, events: list[Event]) -> None:
        lst = self.listener
        for ev in events:
            if isinstance(ev, DataOut):
                self.write(ev.data)
            elif isinstance(ev, StreamOpened):
                if self.refuse:
                    self.kick(StreamCondition.RESOURCE_CONSTRAINT, "too many connections")
                else:
                    self.write(self.stream.accept_stream(lst.backend.hostname_hints()))
            elif isinstance(ev, StartTlsRequested):
                self.start_tls()
            elif isinstance(ev, AuthRequested):
                self.on_auth(ev)
            elif isinstance(ev, SessionBound):
                self.on_bound(ev)
            elif isinstance(ev, RosterRequested):
                assert self.stream.user is not None
                self.write(self.stream.roster_result(ev.iq_id, lst.backend.roster(self.stream.user)))
            elif isinstance(ev, PresenceBroadcast):
                lst._broadcast(self, ev)
            elif isinstance(ev, Routed):
                lst._route(self, ev)
            elif isinstance(ev, IqResponse):
                if ev.iq_id == self.ping_id:
                    self.ping_id = None
                    lst.counters["pongs_received"] += 1
            elif isinstance(ev, StreamClosed):
                self.write(self.stream.close())
            elif isinstance(ev, StreamErrorSent):
                lst.counters["stream_errors_sent"] += 1
                logger.info("stream error %s to %s: %s", ev.condition.value, self.peer, ev.text)
        if self.stream.closed:
            self.end_session()
            self.finish()

    def on_auth(self, ev: AuthRequested) -> None:
        """Admission, credentials, serving node; see ``XmppBackend`` for the order."""
        lst, backend, counters = self.listener, self.listener.backend, self.listener.counters
        if not backend.admit_login():
            counters["auths_busy"] += 1
            self.write(self.stream.auth_failure(SaslCondition.TEMPORARY_AUTH_FAILURE, "login capacity reached"))
            return
        if ev.mechanism is SaslMechanism.PLAIN:
            ok = backend.check_password(ev.user, ev.secret)
        else:
            ok = backend.check_token(ev.user, ev.secret)
        if not ok:
            counters["auths_failed"] += 1
            logger.info("%s authentication failed for %s from %s", ev.mechanism.value, ev.user, self.peer)
            self.write(self.stream.auth_failure(SaslCondition.NOT_AUTHORIZED))
            return
        ref = backend.serving_node(ev.user)
        if ref is None:
            self.kick(StreamCondition.SYSTEM_SHUTDOWN, "no node serves this user now")
        elif ref.name != backend.node_name:
            counters["redirects"] += 1
            self.kick(StreamCondition.SEE_OTHER_HOST, ref.see_other_host_text)
        else:
            counters["auths_ok"] += 1
            self.write(self.stream.auth_success(ev.user))

    def on_bound(self, ev: SessionBound) -> None:
        """Register the session; an older one with the same full JID gets ``conflict``
        (RFC 6120 §7.7.2.2 and §4.9.3.3)."""
        lst = self.listener
        old = lst._by_full.get(ev.full_jid)
        if old is not None:
            old.kick(StreamCondition.CONFLICT, "replaced by a new connection")
        assert self.stream.user is not None
        self.info = SessionInfo(user=self.stream.user, domain=self.stream.settings.domain, resource=ev.resource,
                                node_name=lst.backend.node_name, peer=self.peer, secured=self.stream.secured)
        lst._by_full[ev.full_jid] = self
        lst._by_bare.setdefault(self.info.bare_jid, {})[ev.resource] = self
        lst.counters["sessions_active"] += 1
        lst.backend.session_started(self.info)

    def end_session(self) -> None:
        """Unregister once; tell contacts we are unavailable (RFC 6121 §4.6) and the backend."""
        info, self.info = self.info, None
        if info is None:
            return
        lst = self.listener
        if lst._by_full.get(info.full_jid) is self:
            del lst._by_full[info.full_jid]
            res = lst._by_bare.get(info.bare_jid, {})
            res.pop(info.resource, None)
            if not res:
                lst._by_bare.pop(info.bare_jid, None)
        lst.counters["sessions_active"] -= 1
        if self.presence is not None:
            self.presence = None
            gone = f"<presence type='unavailable' from='{attr_escape(info.full_jid)}'/>".encode()
            lst._send_to_contacts(info.user, gone)
        lst.backend.session_ended(info)

    # -- STARTTLS ------------------------------------------------------------------------------
    def start_tls(self) -> None:
        assert self.transport is not None
        self.write(self.stream.proceed_tls())
        self.transport.pause_reading()
        self.upgrading = True
        self.listener._spawn(self._upgrade(self.transport))

    async def _upgrade(self, transport: asyncio.Transport) -> None:
        lst = self.listener
        assert lst.ssl_context is not None
        try:
            new = await lst.loop.start_tls(transport, self, lst.ssl_context, server_side=True,
                                           ssl_handshake_timeout=10.0)
        except (OSError, ssl.SSLError, asyncio.TimeoutError, ConnectionError) as exc:
            logger.info("TLS handshake with %s failed: %s", self.peer, exc)
            self.upgrading = False
            transport.abort()
            return
        if new is None:
            return
        assert isinstance(new, asyncio.Transport)
        self.transport = new
        self.upgrading = False
        lst.counters["tls_upgrades"] += 1
        queued, self.queued = self.queued, []
        for data in queued:
            self.write(data)
        if self.stream.closed:
            self.finish()

    # -- pings (XEP-0199 §4.2) ---------------------------------------------------------------
    def check_idle(self, now: float) -> None:
        s = self.listener.settings
        if self.ping_id is not None:
            if now - self.ping_sent >= s.ping_timeout_s:
                self.listener.counters["ping_timeouts"] += 1
                self.kick(StreamCondition.CONNECTION_TIMEOUT, "ping unanswered")
        elif now - self.last_rx >= s.ping_interval_s:
            self.ping_id = f"s2c-{next(self.listener._ping_ids)}"
            self.ping_sent = now
            self.listener.counters["pings_sent"] += 1
            self.write(self.stream.ping(self.ping_id))


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
        self._conns: set[_Conn] = set()
        self._by_full: dict[str, _Conn] = {}
        self._by_bare: dict[str, dict[str, _Conn]] = {}
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

    def metrics(self) -> dict[str, int]:
        """A copy of the counters (auths ok/failed/busy, sessions, connections, errors, pings)."""
        return dict(self.counters)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen on ``host:port``.

        Returns:
            The bound port (useful with ``port=0``).

        Raises:
            OSError: the address cannot be bound.
        """
        self._loop = asyncio.get_running_loop()
        self._server = await self._loop.create_server(
            lambda: _Conn(self, C2sStream(self._wire)), host, port, backlog=4096)
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
    def _add(self, conn: _Conn) -> bool:
        self._conns.add(conn)
        self.counters["connections_total"] += 1
        self.counters["connections_active"] = len(self._conns)
        return len(self._conns) <= self.settings.max_connections

    def _remove(self, conn: _Conn) -> None:
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

    def _broadcast(self, conn: _Conn, ev: PresenceBroadcast) -> None:
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

    def _route(self, conn: _Conn, ev: Routed) -> None:
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
