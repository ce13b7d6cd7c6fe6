"""One c2s connection: the asyncio Protocol around a sans-IO ``C2sStream``.

Carries out the stream's events: SASL decisions via the node's ``XmppBackend`` (credentials,
serving node; authentication is free: only the CPA login passes the node's login admission,
docs/login-model.md §1), binding (an older session with the same full JID gets ``conflict``,
RFC 6120 §7.7.2.2), roster, presence and routing through the listener's session table
(``xmpp.sessions``), server pings (XEP-0199 §4.2), stream errors and the close (RFC 6120 §4.4,
§4.9). What it asks of the listener that accepted it is :class:`ListenerView`.

STARTTLS (RFC 6120 §5): after ``<proceed/>`` reading stops at once (the TLS ClientHello must not
reach the XML parser) and ``loop.start_tls()`` upgrades the transport. The client's new stream
header can arrive through the TLS layer before ``start_tls()`` returns the new transport
(ENGINEERING.md): writes are queued until it does, then flushed over TLS.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from mock_server.xmpp.backend import SessionInfo, XmppBackend
from mock_server.xmpp.events import (
    AuthRequested, DataOut, Event, IqResponse, PresenceBroadcast, Routed, RosterRequested, SaslCondition,
    SaslMechanism, SessionBound, StartTlsRequested, StreamClosed, StreamCondition, StreamErrorSent, StreamOpened,
    WireState,
)
from mock_server.xmpp.sessions import SessionTable
from mock_server.xmpp.settings import ListenerSettings
from mock_server.xmpp.wire import C2sStream

__all__ = ["C2sConnection", "ListenerView"]

logger = logging.getLogger(__name__)

KICK_RETRY_S = 0.05
"""Seconds between checks whether a client has restarted its stream after SASL success."""
KICK_RETRIES = 40
"""Checks before a pending stream error is sent anyway (2 s)."""


class ListenerView(Protocol):
    """The listener as its connections see it (``xmpp.listener.XmppListener``)."""

    backend: XmppBackend
    settings: ListenerSettings
    ssl_context: ssl.SSLContext | None
    counters: dict[str, int]
    sessions: SessionTable[C2sConnection]

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop the listener runs on."""

    def now(self) -> float:
        """Loop time in seconds."""

    def admit(self, conn: C2sConnection) -> bool:
        """Count a new connection; False: over the limit, refuse its stream."""

    def release(self, conn: C2sConnection) -> None:
        """The connection is gone."""

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` as one of the listener's tasks."""

    def next_ping_id(self) -> str:
        """The id of the next server-to-client ping."""


@dataclass(eq=False)
class C2sConnection(asyncio.Protocol):
    """One client connection: feeds a ``C2sStream`` and carries out its events for the listener
    that accepted it (the listener owns the counters, its session table the sessions and routing)."""

    listener: ListenerView
    stream: C2sStream
    transport: asyncio.Transport | None = None
    raw_transport: asyncio.Transport | None = None  # the socket's own, also after a STARTTLS upgrade
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
        self.transport = self.raw_transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.last_rx = self.listener.now()
        self.refuse = not self.listener.admit(self)
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
        self.listener.release(self)
        # Ended connections are freed by reference counting, not by a full GC pass (issue 19): the
        # stream's XML parser and CPython's socket transport (its ``_read_ready_cb`` is a bound
        # method of itself, CPython 3.11) each hold a reference cycle; both are released here.
        self.stream.release()
        _break_self_cycle(self.raw_transport)

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
            try:
                transport.write_eof()
            except OSError:  # the client's side is gone already (ENOTCONN): nothing to drain
                transport.abort()
                return
        else:
            transport.close()
        self.abort_handle = self.listener.loop.call_later(self.listener.settings.close_grace_s, transport.abort)

    def kick(self, condition: StreamCondition, text: str | None = None, _tries: int = 0) -> None:
        """Send a stream error, end the session now and close.

        Between our SASL ``<success/>`` and the client's stream restart nothing may be sent
        (RFC 6120 §6.4.6: the client resets its parser when it restarts; bytes sent earlier land in
        the old document and a parser such as slixmpp's fails on them). A kick in that window waits
        for the restart, polling every ``KICK_RETRY_S`` up to ``KICK_RETRIES`` times.
        """
        if self.stream.state is WireState.AWAIT_RESTART and _tries < KICK_RETRIES and self.transport is not None:
            asyncio.get_running_loop().call_later(KICK_RETRY_S, self.kick, condition, text, _tries + 1)
            return
        if self.stream.closed:
            return
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
                lst.sessions.broadcast(self, ev)
            elif isinstance(ev, Routed):
                self.route(ev)
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
        """Credentials, serving node; see ``XmppBackend`` for the order."""
        backend, counters = self.listener.backend, self.listener.counters
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
        """Register the session with the listener's table (an older one with the same full JID
        gets ``conflict``, RFC 6120 §7.7.2.2 and §4.9.3.3)."""
        assert self.stream.user is not None
        self.info = SessionInfo(user=self.stream.user, domain=self.stream.settings.domain, resource=ev.resource,
                                node_name=self.listener.backend.node_name, peer=self.peer, secured=self.stream.secured)
        self.listener.sessions.bind(self)

    def route(self, ev: Routed) -> None:
        """A local session or the peer node takes the stanza (the session table), else an error
        reply (RFC 6121 §8.5)."""
        if self.listener.sessions.route(ev):
            return
        bounce = self.stream.bounce(ev)
        if bounce:
            self.listener.counters["stanzas_bounced"] += 1
            self.write(bounce)

    def end_session(self) -> None:
        """Unregister once: the table tells contacts we are unavailable (RFC 6121 §4.6) and the
        backend."""
        info, self.info = self.info, None
        if info is None:
            return
        self.listener.sessions.unbind(self, info)

    # -- STARTTLS ------------------------------------------------------------------------------
    def start_tls(self) -> None:
        assert self.transport is not None
        self.write(self.stream.proceed_tls())
        self.transport.pause_reading()
        self.upgrading = True
        self.listener.spawn(self._upgrade(self.transport))

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
            self.stream.release()
            _break_self_cycle(transport)
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
            self.ping_id = self.listener.next_ping_id()
            self.ping_sent = now
            self.listener.counters["pings_sent"] += 1
            self.write(self.stream.ping(self.ping_id))


def _break_self_cycle(transport: asyncio.BaseTransport | None) -> None:
    """Drop the bound method CPython 3.11's ``_SelectorSocketTransport`` keeps of itself
    (``_read_ready_cb``), once the connection is gone; other transports (TLS) are left alone."""
    if getattr(transport, "_read_ready_cb", None) is not None:
        transport._read_ready_cb = None  # type: ignore[union-attr]
