"""One XMPP connection of an emulated Jabber client: a slixmpp ``ClientXMPP`` turned into core events.

An :class:`XmppSession` lives for one connection attempt on one node: it connects, authenticates
(``CISCO-VTG-TOKEN`` with the OTP, or PLAIN/SCRAM with the password in XMPP-only mode), binds,
starts the session, fetches the roster and sends initial presence, then reports
:class:`~jabberemu.core.events.XmppUp`. Whatever ends it is reported exactly once as a core event
(:class:`StreamError`, :class:`XmppAuthFailed`, :class:`ConnectionLost`, :class:`PingTimeout`,
:class:`OperationTimeout`); after that the session is dead and the driver builds a new one for the
next attempt. slixmpp's own retry loop (``min(300, 2w+1)`` s back-off) and its ``see-other-host``
reconnect are disabled: only the client machine decides when and where to go.

Configuration per ../shared/ENGINEERING.md: a shared ``ssl_context`` and ``loop`` (a default SSL
context per client costs 67-84 ms and ~880 KiB), ``enable_direct_tls=False`` (else a wasted TLS
connection per login), STARTTLS when the server offers it (or plain TCP with
``unencrypted_plain``), whitespace keepalive off (XEP-0199 pings instead). No optional plugin is
loaded: XEP-0199 (RFC-free, https://xmpp.org/extensions/xep-0199.html) is done with its stanza
class only, which saves ``xep_0030`` (disco) per client.

Timed inside the loop: ``xmpp/connect`` (TCP connect, to the end of STARTTLS when negotiated),
``xmpp/auth`` (``<auth/>`` sent -> ``<success/>``), ``xmpp/bind`` (bind request -> session
established), ``xmpp/ping`` (XEP-0199 round trip), ``xmpp/message-latency`` (sender's wall-clock
stamp -> receipt, in the ``<sent xmlns='urn:jabberemu:0' ts='...'/>`` child of chat messages).

The ``<hostname xmlns='urn:xmpp:domain-based-name:0'>`` hints inside ``<mechanisms>``
(DOMAIN.md "XMPP side") are kept in :attr:`XmppSession.hostname_hints`.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import logging
import math
import os
import socket
import ssl
import time
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from typing import Any

import slixmpp
from slixmpp.plugins.xep_0199.stanza import Ping
from slixmpp.stanza import Iq
from slixmpp.xmlstream import register_stanza_plugin
from slixmpp.xmlstream.handler import Callback

import jabberemu.xmpp.sasl  # noqa: F401  (registers CISCO-VTG-TOKEN with slixmpp)
import jabberemu.xmpp.redact  # noqa: F401  (keeps SASL payloads out of slixmpp's DEBUG log)
from jabberemu.config import NodeAddress, SaslMechanism, Timeouts
from jabberemu.core import events as ev
from jabberemu.core import metrics as mx
from jabberemu.xmpp.lean import LeanClientXMPP, MatchTag, RawIqError, break_transport_cycle

__all__ = ["NS_HOSTNAME", "NS_SENT", "PING_GRID_S", "Phase", "XmppSession", "ping_phase"]

logger = logging.getLogger(__name__)

NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_HOSTNAME = "urn:xmpp:domain-based-name:0"
NS_SENT = "urn:jabberemu:0"
"""Namespace of our ``<sent ts='...'/>`` message child (send time, Unix seconds)."""
_SENT_TAG = f"{{{NS_SENT}}}sent"
_IQ_TAG = "{jabber:client}iq"
_PING_TAG = "{urn:xmpp:ping}ping"
_MESSAGE_TAG = "{jabber:client}message"
_BODY_TAG = "{jabber:client}body"
_PING_PAYLOAD = "<ping xmlns='urn:xmpp:ping'/>"
PING_GRID_S = 0.25
"""Keepalive pings fall due on a grid of this many seconds (at most 1 % of the interval) of the loop's
clock, shifted by a phase of the process (:meth:`XmppSession._schedule_ping`; our choice)."""
_INITIAL_PRESENCE = "<presence/>"
_RESOURCE = "jabberemu"

register_stanza_plugin(Iq, Ping)


def ping_phase(grid_s: float, pid: int | None = None) -> float:
    """This process's offset on the keepalive grid, in [0, ``grid_s``): spread by the process id with the
    golden ratio, so that the workers of one host (forked from one master: a random value drawn at import
    would be the same in each) ping on different instants of the grid."""
    return ((pid if pid is not None else os.getpid()) * 0.6180339887498949) % 1.0 * grid_s


class Phase(enum.Enum):
    """Where one connection is."""

    NEW = "new"
    CONNECTING = "connecting"  # TCP (+ STARTTLS)
    AUTHENTICATING = "authenticating"
    BINDING = "binding"  # bind, session, roster get, initial presence
    UP = "up"
    DEAD = "dead"


EventCallback = Callable[["XmppSession", ev.Event], None]
Report = Callable[[str, mx.Measurement], None]
"""``report(client_id, measurement)``: the runtime's one road for a measurement."""
Connector = Callable[..., Awaitable[tuple[asyncio.BaseTransport, asyncio.BaseProtocol]]]
"""Opens a stream connection: ``loop.create_connection``'s signature (``protocol_factory, host, port, *,
ssl, server_hostname``); the seam under the sessions (``jabberemu.xmpp.memory`` for tests)."""


def _ignore_event(_session: XmppSession, _event: ev.Event) -> None:
    """Stands in for the driver's callback once a session is released."""


def _ignore_measure(_client: str, _measurement: mx.Measurement) -> None:
    """Stands in for the driver's callback once a session is released."""


class XmppSession(LeanClientXMPP):
    """One XMPP connection of one emulated client to one node.

    Args:
        user_id: the user's id (JID local part).
        domain: presence domain.
        node: the node to connect to.
        mechanism: SASL mechanism; ``CISCO_VTG_TOKEN`` sends ``secret`` as the OTP, the others
            use it as the password.
        secret: OTP or password (kept only in slixmpp's credentials; never logged).
        ssl_context: the process's shared client TLS context.
        timeouts: ``connect_s``, ``auth_s``, ``bind_s`` deadlines and the ping keepalive.
        on_event: receives every core event this session produces (called on the loop).
        report: the runtime's measurement road, ``report(user_id, measurement)`` (called on the loop).
        starttls: negotiate STARTTLS when offered (else plain TCP only).
        monotonic: clock for durations.
        wall: clock for message send stamps (Unix seconds; compared across processes).
        loop: the running loop (the current one when None).
        connector: opens the connection (``loop.create_connection`` when None); an in-memory one in
            driver tests (:class:`jabberemu.xmpp.memory.MemoryConnector`).
    """

    def __init__(self, *, user_id: str, domain: str, node: NodeAddress, mechanism: SaslMechanism,
                 secret: str, ssl_context: ssl.SSLContext, timeouts: Timeouts,
                 on_event: EventCallback, report: Report, starttls: bool = True,
                 monotonic: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time,
                 loop: asyncio.AbstractEventLoop | None = None, connector: Connector | None = None) -> None:
        is_token = mechanism is SaslMechanism.CISCO_VTG_TOKEN
        super().__init__(f"{user_id}@{domain}/{_RESOURCE}", "" if is_token else secret,
                         sasl_mech=mechanism.value, ssl_context=ssl_context,
                         loop=loop or asyncio.get_running_loop(), starttls=starttls)
        self.credentials["host"] = domain.encode()  # type: ignore[assignment]
        if is_token:
            self.credentials["token"] = secret.encode()  # type: ignore[assignment]
        self.node = node
        self.mechanism = mechanism
        self.timeouts = timeouts
        self.phase = Phase.NEW
        self.hostname_hints: list[str] = []
        self.contacts: list[str] = []
        self.messages_received = 0
        self._on_event = on_event
        self.user_id = user_id
        self._report = report
        self._connector: Connector | None = connector
        self._mono = monotonic
        self._wall = wall
        self._deadline: asyncio.TimerHandle | None = None
        self._ping_handle: asyncio.TimerHandle | None = None
        self._ping_future: asyncio.Future[Any] | None = None
        self._finish_task: asyncio.Task[None] | None = None
        self._closing = False
        self._released = False
        self._t0 = 0.0
        self._t_auth = 0.0
        self._t_bind = 0.0
        self._t_tcp: float | None = None
        self._tls_pending = False
        self._dns_failed = False
        self.enable_direct_tls = False
        self.enable_starttls = starttls
        self.enable_plaintext = not starttls
        self.whitespace_keepalive = False
        self.use_aiodns = False
        mech = self.plugin["feature_mechanisms"]
        mech.unencrypted_plain = True
        mech.unencrypted_scram = True
        self.register_handler(Callback("Ping", MatchTag(_IQ_TAG, iq_type="get", child=_PING_TAG), self._answer_ping))
        self.register_handler(Callback("IM", MatchTag(_MESSAGE_TAG, child=_BODY_TAG), self._on_message))
        self.add_event_handler("connected", self._on_connected)
        self.add_event_handler("connection_failed", self._on_connection_failed)
        if starttls:
            self.add_event_handler("tls_success", self._on_tls)
        self.add_event_handler("failed_auth", self._on_failed_auth)
        self.add_event_handler("auth_success", self._on_auth_success)
        self.add_event_handler("session_start", self._on_session_start)

    # ------------------------------------------------------------------------ control ---
    def start(self) -> None:
        """Open the connection (returns at once; the outcome arrives through ``on_event``)."""
        if self.phase is not Phase.NEW:
            raise RuntimeError("an XmppSession is used for one connection only")
        self.phase = Phase.CONNECTING
        self._t0 = self._mono()
        self._arm(ev.Stage.CONNECT, self.timeouts.connect_s)
        self.connect(self.node.xmpp_host, self.node.xmpp_port)

    async def close(self, wait_s: float = 1.0) -> None:
        """End the session on our initiative: close the stream (RFC 6120 §4.4), wait up to
        ``wait_s`` for the server's close, then reset. Reports nothing. Idempotent."""
        if self.phase is Phase.DEAD and self.transport is None:
            self._cleanup()
            return
        self._closing = True
        self.phase = Phase.DEAD
        self._cancel_timers()
        if self.transport is not None:
            try:
                await asyncio.wait_for(self.disconnect(wait=wait_s), wait_s + 0.5)
            except (asyncio.TimeoutError, OSError, slixmpp.exceptions.XMPPError):
                self.abort()
            except asyncio.CancelledError:  # the caller gave up waiting: still release the socket
                self.abort()
                self._cleanup()
                raise
        self._cleanup()

    def kill(self) -> None:
        """Drop the connection at once without reporting anything (idempotent)."""
        self._closing = True
        self.phase = Phase.DEAD
        self._cancel_timers()
        self.cancel_connection_attempt()
        self.abort()
        self._cleanup()

    def send_chat(self, to_bare_jid: str, body: str = "jabberemu") -> None:
        """Send a 1:1 chat message stamped with the wall-clock send time.

        Args:
            to_bare_jid: a roster contact.
            body: message text.
        """
        if self.phase is not Phase.UP:
            return
        msg = self.make_message(mto=to_bare_jid, mbody=body, mtype="chat")
        sent = ET.SubElement(msg.xml, _SENT_TAG)
        sent.set("ts", repr(self._wall()))
        msg.send()

    def change_presence(self, show: str | None, status: str | None = None) -> None:
        """Broadcast a presence change (RFC 6121 §4.4); ``show`` in away/chat/dnd/xa or None."""
        if self.phase is Phase.UP:
            self.send_presence(pshow=show, pstatus=status)

    # ------------------------------------------------------------------------ overrides ---
    def reschedule_connection_attempt(self) -> asyncio.Future[Any] | None:
        """slixmpp would retry with its own back-off; we report the failure instead."""
        self._current_connection_attempt = None
        cls = ev.LossKind.DNS_FAILURE if self._dns_failed else ev.LossKind.CONNECTION_REFUSED
        self._fail(ev.ConnectionLost(node=self.node.name, cls=cls))
        return None

    async def _attempt_connection(self, host: str, port: int, tls: bool, server_hostname: str | None) -> bool:
        """slixmpp 1.17's ``_attempt_connection`` with the connection opened by the session's connector."""
        if self._connector is None:
            return await super()._attempt_connection(host, port, tls, server_hostname)
        self.event_when_connected = "connected"
        self._connect_loop_wait += 1
        ssl_context = self.get_ssl_context() if tls else None
        if self._current_connection_attempt is None:
            return False
        try:
            await self._connector(lambda: self, host, port, ssl=ssl_context, server_hostname=server_hostname)
        except socket.gaierror:
            self.event("connection_failed", f"No DNS record available for {self.default_domain}")
            return False
        except OSError as exc:
            self.event("connection_failed", exc)
            return False
        self._connect_loop_wait = 0
        return True

    def _on_connection_failed(self, error: Any) -> None:
        """slixmpp reports a host name that does not resolve as a text, an OS error as the error."""
        self._dns_failed = isinstance(error, str) and "DNS" in error

    def _handle_stream_error(self, error: Any) -> None:
        """RFC 6120 §4.9: report the condition and text; never follow see-other-host ourselves."""
        condition = ev.StreamCondition.parse(str(error["condition"] or "undefined-condition"))
        text: str | None
        if condition is ev.StreamCondition.SEE_OTHER_HOST:
            text = str(error["see_other_host"] or "") or None
        else:
            text = str(error["text"] or "") or None
        self.event("stream_error", error)
        self._fail(ev.StreamError(node=self.node.name, condition=condition, text=text))

    async def _handle_stream_features(self, features: Any) -> bool | None:
        names = features["features"]
        now = self._mono()
        if self._tls_pending and "starttls" not in names:
            self._tls_pending = False
            self._measure_connect(self._t_tcp if self._t_tcp is not None else now)
        if "mechanisms" in names and not self.authenticated:
            mechs = features.xml.find(f"{{{NS_SASL}}}mechanisms")
            if mechs is not None:
                self.hostname_hints = [(h.text or "").strip() for h in mechs.findall(f"{{{NS_HOSTNAME}}}hostname")]
            self._t_auth = now
        elif "bind" in names and self.authenticated:
            self._t_bind = now
        return await super()._handle_stream_features(features)

    def connection_made(self, transport: Any, send_event: bool = True) -> None:
        if self.phase is Phase.DEAD:  # a connect that completed after kill(): not ours any more
            transport.abort()
            return
        super().connection_made(transport, send_event)

    def connection_lost(self, exception: BaseException | None) -> None:
        transport = self.transport
        super().connection_lost(exception)
        break_transport_cycle(transport)
        if isinstance(exception, ConnectionResetError) or (
            exception is not None and not isinstance(exception, ConnectionAbortedError)
        ):
            cls = ev.LossKind.CONNECTION_RESET
        else:
            cls = ev.LossKind.CONNECTION_CLOSED
        self._fail(ev.ConnectionLost(node=self.node.name, cls=cls))
        self._cleanup()

    # -------------------------------------------------------------------------- handlers ---
    def _on_connected(self, _data: Any) -> None:
        now = self._mono()
        self._t_tcp = now
        if self.enable_starttls:
            self._tls_pending = True  # measured at tls_success, or at features without starttls
        else:
            self._measure_connect(now)
        self.phase = Phase.AUTHENTICATING
        self._arm(ev.Stage.AUTH, self.timeouts.auth_s)

    def _on_tls(self, _data: Any) -> None:
        if self._tls_pending:
            self._tls_pending = False
            self._measure_connect(self._mono())

    def _measure_connect(self, end: float) -> None:
        self._report(self.user_id, mx.Measurement.of(mx.XMPP_CONNECT, (end - self._t0) * 1000.0, node=self.node.name))

    def _on_failed_auth(self, stanza: Any) -> None:
        condition = ev.SaslCondition.parse(str(stanza["condition"] or "not-authorized"))
        text = str(stanza["text"] or "") or None
        self._report(self.user_id, mx.Measurement.of(
            mx.XMPP_AUTH, (self._mono() - (self._t_auth or self._t0)) * 1000.0, node=self.node.name,
            exception=RuntimeError(f"SASL failure {condition.value}")))
        self._fail(ev.XmppAuthFailed(node=self.node.name, condition=condition, text=text), abort_soon=True)

    def _on_auth_success(self, _data: Any) -> None:
        now = self._mono()
        self._report(self.user_id, mx.Measurement.of(mx.XMPP_AUTH, (now - (self._t_auth or now)) * 1000.0,
                                           node=self.node.name))
        self.phase = Phase.BINDING
        self._arm(ev.Stage.BIND, self.timeouts.bind_s)

    def _on_session_start(self, _data: Any) -> None:
        now = self._mono()
        self._report(self.user_id, mx.Measurement.of(mx.XMPP_BIND, (now - (self._t_bind or now)) * 1000.0,
                                           node=self.node.name))
        self._finish_task = self.loop.create_task(self._finish_login())

    async def _finish_login(self) -> None:
        """Roster get (RFC 6121 §2.1.3) and initial presence (§4.2), then report XmppUp."""
        try:
            self.contacts = await self.fetch_roster_jids(self.timeouts.bind_s)
        except RawIqError as exc:
            logger.debug("%s: roster get refused on %s: %s", self.boundjid.bare, self.node.name, exc.condition)
        except TimeoutError:
            return  # the bind deadline reports the stall
        if self.phase is not Phase.BINDING:
            return
        self.send(_INITIAL_PRESENCE)  # RFC 6121 §4.2.1: no attributes, no children
        self.phase = Phase.UP
        self._disarm()
        self.shed_login()  # the session is up: what only the login used goes
        self._finish_task = None
        self._schedule_ping()
        self._on_event(self, ev.XmppUp(node=self.node.name))

    def _on_message(self, msg: Any) -> None:
        sent = msg.xml.find(_SENT_TAG)
        if sent is None or msg["type"] == "error":
            return
        try:
            sent_ts = float(sent.get("ts", ""))
        except ValueError:
            return
        self.messages_received += 1
        latency_ms = max(0.0, (self._wall() - sent_ts) * 1000.0)
        self._report(self.user_id, mx.Measurement.of(mx.XMPP_MESSAGE_LATENCY, latency_ms, node=self.node.name))

    def _answer_ping(self, iq: Any) -> None:
        iq.reply().send()

    # --------------------------------------------------------------------- keepalive ---
    def _schedule_ping(self) -> None:
        """The next keepalive ``ping_interval_s`` after the session came up or the last ping was answered,
        rounded up to the process's grid (:data:`PING_GRID_S`, at most 1 % of the interval, shifted by
        :func:`ping_phase`): a process's pings fall due together on a few loop wake-ups a second instead
        of one each, and the interval grows by less than one grid step (our choice; BENCHMARKS.md section
        7: an idle swarm of 15,000 pings 250 times a second). The server sees each process's pings in
        bursts, 4 a second at most with an interval of 25 s or more."""
        interval_s = self.timeouts.ping_interval_s
        if self.phase is Phase.UP and interval_s > 0:  # 0: no keepalive
            grid_s = min(PING_GRID_S, interval_s / 100.0)
            phase_s = ping_phase(grid_s)
            due_s = math.ceil((self.loop.time() + interval_s - phase_s) / grid_s) * grid_s + phase_s
            self._ping_handle = self.loop.call_at(due_s, self._ping)

    def _ping(self) -> None:
        """XEP-0199 keepalive: a ping to the server (a raw IQ: no stanza objects on this hot path)."""
        self._ping_handle = None
        if self.phase is not Phase.UP:
            return
        t0 = self._mono()  # before the send, which starts the timeout: an unanswered ping measures >= the timeout
        fut = self.send_raw_iq("get", _PING_PAYLOAD, self.timeouts.ping_timeout_s, to=self.boundjid.domain)
        self._ping_future = fut
        fut.add_done_callback(functools.partial(self._pinged, t0))

    def _pinged(self, t0: float, f: asyncio.Future[Any]) -> None:
        self._ping_future = None
        if f.cancelled():
            return
        elapsed_ms = (self._mono() - t0) * 1000.0
        if isinstance(f.exception(), TimeoutError):
            self._report(self.user_id, mx.Measurement.of(mx.XMPP_PING, elapsed_ms, node=self.node.name,
                                                         exception=TimeoutError("ping unanswered")))
            self._fail(ev.PingTimeout(node=self.node.name))
            return
        # a result or an <iq type='error'/> both prove the server is alive (XEP-0199 §4.1)
        self._report(self.user_id, mx.Measurement.of(mx.XMPP_PING, elapsed_ms, node=self.node.name))
        self._schedule_ping()

    # ------------------------------------------------------------------------ internals ---
    def _arm(self, stage: ev.Stage, delay_s: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(delay_s, self._expired, stage)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self, stage: ev.Stage) -> None:
        self._deadline = None
        self._fail(ev.OperationTimeout(node=self.node.name, stage=stage))

    def _fail(self, event: ev.Event, *, abort_soon: bool = False) -> None:
        """Report the end of this session once, then drop the connection."""
        if self.phase is Phase.DEAD or self._closing:
            return
        self.phase = Phase.DEAD
        self._cancel_timers()
        self.cancel_connection_attempt()
        try:
            self._on_event(self, event)
        finally:
            if abort_soon:  # let slixmpp finish the handler that called us first
                self.loop.call_soon(self._drop)
            else:
                self._drop()

    def _drop(self) -> None:
        self.abort()
        if self.transport is None:
            self._cleanup()

    def _cancel_timers(self) -> None:
        self._disarm()
        if self._ping_handle is not None:
            self._ping_handle.cancel()
            self._ping_handle = None
        if self._ping_future is not None and not self._ping_future.done():
            self._ping_future.cancel()
        self._ping_future = None
        if self._finish_task is not None and not self._finish_task.done():
            self._finish_task.cancel()

    def _cleanup(self) -> None:
        """Cancel what slixmpp leaves behind (ENGINEERING.md: 'Task was destroyed but it is pending');
        once the connection is gone, release the session's reference cycles on the next loop turn
        (never from inside one of slixmpp's handlers, whose tables the release clears)."""
        self._cancel_timers()
        for name in list(self.scheduled_events):
            self.cancel_schedule(name)
        task = self._run_out_filters
        if task is not None and not task.done():
            task.cancel()
        if self.transport is None and not self._released:
            self._released = True
            self.loop.call_soon(self._release)

    def _release(self) -> None:
        """Break the session's cycles (:meth:`LeanClientXMPP.release`) and drop the driver's callbacks:
        reference counting frees the session once the driver lets go of it."""
        self.release()
        self._on_event = _ignore_event
        self._report = _ignore_measure
