"""Scripted hostile servers for the emulated client: a CPA (aiohttp) and an XMPP c2s (raw asyncio).

Both bind 127.0.0.1 port 0. Each answers correctly until the scripted stage, where it does the
scripted fault instead: malformed SOAP, a stall (request read, never answered), a TCP reset, a
stream error, a clean close or garbage bytes. Counters and the set of open connections let a test
check that the client let go of every socket once it ended.

XMPP per RFC 6120: the server sends its stream header in reply to the client's (§4.2), features
(§4.3), SASL ``<success/>`` (§6.4.6) then a fresh stream, bind (§7), roster (RFC 6121 §2.1.3);
stream errors per §4.9 (header first, then ``<stream:error/>``, then ``</stream:stream>``).
Credentials are not checked: the faults are the point.
"""

from __future__ import annotations

import asyncio
import base64
import enum
import socket
import struct
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field

from aiohttp import web
from lxml import etree

from jabberemu.config import NodeAddress, ServerPair
from mock_server.cpa import response as cpa_response

__all__ = [
    "CpaFault", "CpaOp", "FullBacklog", "HostileCpa", "HostileXmpp", "XmppFault", "XmppStage", "reset_transport",
]

NS_STREAM = "http://etherx.jabber.org/streams"
NS_CLIENT = "jabber:client"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_ROSTER = "jabber:iq:roster"
NS_PING = "urn:xmpp:ping"
NS_STREAMS_ERR = "urn:ietf:params:xml:ns:xmpp-streams"
SOAP12_NS = "http://www.w3.org/2003/05/soap-envelope"
SOAP11_NS = "http://schemas.xmlsoap.org/soap/envelope/"


def reset_transport(transport: asyncio.BaseTransport) -> None:
    """Close with a TCP RST (SO_LINGER 0), not a FIN."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    transport.abort()


# ------------------------------------------------------------------------------------ CPA ---
class CpaOp(enum.Enum):
    LOGIN = "login"
    GET_ALL_CONFIG = "get-all-config"
    GET_ONETIME_PASSWORD = "get-onetime-password"
    LOGOUT = "logout"


class CpaFault(enum.Enum):
    NOT_XML = "not-xml"  # 200, soap+xml, body not XML
    SOAP11_ENVELOPE = "soap11-envelope"  # a SOAP 1.1 envelope (wrong envelope namespace)
    WRONG_NAMESPACE = "wrong-namespace"  # SOAP 1.2 envelope, answer in another namespace
    HTML_200 = "html-200"  # 200 text/html (a proxy's login page)
    EMPTY_200 = "empty-200"  # 200, empty body
    NO_SUCCESS = "no-success"  # right envelope and operation, no <success/> child
    STALL = "stall"  # request read, never answered
    RESET = "reset"  # request read, TCP reset


def _fault_body(op: CpaOp, fault: CpaFault) -> tuple[int, bytes, str]:
    resp = f"{op.value}-resp"
    if fault is CpaFault.NOT_XML:
        return 200, b"<env:Envelope <<< this is not XML", "application/soap+xml"
    if fault is CpaFault.SOAP11_ENVELOPE:
        return 200, (f"<?xml version='1.0'?><s:Envelope xmlns:s='{SOAP11_NS}' xmlns:epas='urn:cisco:epas:soap'>"
                     f"<s:Body><epas:{resp}><epas:success><epas:session-key>K</epas:session-key>"
                     f"<epas:password>P</epas:password></epas:success></epas:{resp}></s:Body></s:Envelope>"
                     ).encode(), "application/soap+xml"
    if fault is CpaFault.WRONG_NAMESPACE:
        return 200, (f"<?xml version='1.0'?><env:Envelope xmlns:env='{SOAP12_NS}' xmlns:x='urn:other:ns'>"
                     f"<env:Body><x:{resp}><x:success><x:session-key>K</x:session-key><x:password>P</x:password>"
                     f"</x:success></x:{resp}></env:Body></env:Envelope>").encode(), "application/soap+xml"
    if fault is CpaFault.HTML_200:
        return 200, b"<!DOCTYPE html><html><head><title>Sign in</title></head><body><p>proxy</p></body></html>", \
            "text/html"
    if fault is CpaFault.EMPTY_200:
        return 200, b"", "application/soap+xml"
    if fault is CpaFault.NO_SUCCESS:
        return 200, (f"<?xml version='1.0'?><env:Envelope xmlns:env='{SOAP12_NS}' xmlns:epas='urn:cisco:epas:soap'>"
                     f"<env:Body><epas:{resp}/></env:Body></env:Envelope>").encode(), "application/soap+xml"
    raise AssertionError(fault)


@dataclass(kw_only=True, eq=False)
class HostileCpa:
    """A CPA for one node of ``pair`` that answers correctly except where ``faults`` says.

    Args:
        node: this node's name (must be in the pair once it is set).
        faults: operation -> fault to do instead of answering.
        system_overrides: ``get-all-config`` system properties to set (None deletes one).
        lower_s, upper_s: the re-login limits sent (as text).
    """

    node: str
    faults: dict[CpaOp, CpaFault] = field(default_factory=dict)
    system_overrides: dict[str, str | None] = field(default_factory=dict)
    lower_s: str = "0.1"
    upper_s: str = "0.3"
    pair: ServerPair | None = None
    port: int = 0
    calls: Counter[CpaOp] = field(default_factory=Counter)
    _runner: web.AppRunner | None = None
    _release: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> int:
        app = web.Application()
        app.router.add_post("/EPASSoap/service/v80", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.2, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self.port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/EPASSoap/service/v80"

    async def stop(self) -> None:
        self._release.set()
        if self._runner is not None:
            await asyncio.wait_for(self._runner.cleanup(), 5)
            self._runner = None

    def system_config(self) -> dict[str, str]:
        assert self.pair is not None
        me = self.pair.node(self.node)
        peer = self.pair.peer_of(self.node)
        props: dict[str, str] = {
            "Presence.Domain": self.pair.domain,
            "Presence.PrimaryServer": me.name,
            "Presence.PrimaryServer.XmppHost": me.xmpp_host,
            "Presence.PrimaryServer.XmppPort": str(me.xmpp_port),
            "Presence.PrimaryServer.CpaUrl": me.cpa_url or "",
            "Presence.Relogin.LowerLimit": self.lower_s,
            "Presence.Relogin.UpperLimit": self.upper_s,
        }
        if peer is not None:
            props |= {
                "Presence.BackupServer": peer.name,
                "Presence.BackupServer.XmppHost": peer.xmpp_host,
                "Presence.BackupServer.XmppPort": str(peer.xmpp_port),
                "Presence.BackupServer.CpaUrl": peer.cpa_url or "",
            }
        for name, value in self.system_overrides.items():
            if value is None:
                props.pop(name, None)
            else:
                props[name] = value
        return props

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        op = _operation(body)
        self.calls[op] += 1
        fault = self.faults.get(op)
        if fault is CpaFault.STALL:
            await self._release.wait()
            raise web.HTTPServiceUnavailable()
        if fault is CpaFault.RESET:
            assert request.transport is not None
            reset_transport(request.transport)
            raise asyncio.CancelledError()  # aiohttp drops the request quietly
        if fault is not None:
            status, data, ctype = _fault_body(op, fault)
            return web.Response(status=status, body=data, headers={"Content-Type": ctype})
        if op is CpaOp.LOGIN:
            data = cpa_response.build_login_response(f"key-{self.node}-{self.calls[op]}")
        elif op is CpaOp.GET_ALL_CONFIG:
            data = cpa_response.build_get_all_config_response(self.system_config(), {})
        elif op is CpaOp.GET_ONETIME_PASSWORD:
            data = cpa_response.build_onetime_password_response(f"otp-{self.node}-{self.calls[op]}")
        else:
            data = cpa_response.build_logout_response()
        return web.Response(status=200, body=data, headers={"Content-Type": "application/soap+xml; charset=utf-8"})


def _operation(body: bytes) -> CpaOp:
    root = etree.fromstring(body, etree.XMLParser(resolve_entities=False, no_network=True))
    request = root.find(f"{{{SOAP12_NS}}}Body")[0]  # type: ignore[index]
    return CpaOp(etree.QName(request).localname)


# ----------------------------------------------------------------------------------- XMPP ---
class XmppStage(enum.Enum):
    """Where the scripted fault replaces the server's next step."""

    ACCEPT = "accept"  # TCP accepted; nothing sent
    OPEN = "open"  # client's stream header received; our header sent, no features
    FEATURES = "features"  # features sent; the client's <auth/> is not accepted
    AUTH = "auth"  # <success/> sent; the restarted stream gets our header, no features
    BIND = "bind"  # the bind request is not answered
    ROSTER = "roster"  # the roster get is not answered
    PRESENCE = "presence"  # the client's initial presence arrived (the client is up)


class XmppFault(enum.Enum):
    STREAM_ERROR = "stream-error"
    STALL = "stall"
    RESET = "reset"
    CLOSE = "close"  # TCP FIN without a stream error
    GARBAGE = "garbage"  # bytes that are not XML
    SASL_FAILURE = "sasl-failure"  # FEATURES only: <failure><condition/></failure> to <auth/>
    BAD_FEATURES = "bad-features"  # OPEN/AUTH only: features offering nothing usable


_HEADER = ("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
           "from='{domain}' id='h{n}' version='1.0' xml:lang='en'>")


@dataclass(kw_only=True, eq=False)
class HostileXmpp:
    """An XMPP c2s listener with one scripted fault.

    Args:
        domain: the stream's domain.
        stage, fault: where and what (None: a well-behaved server).
        condition: the stream error condition for ``XmppFault.STREAM_ERROR``.
        text: optional ``<text/>`` of the stream error; for ``see-other-host`` the host it names
            (the ``<see-other-host/>`` element's character data).
        times_per_user: apply the fault to this many connections per user (None: always). Before
            SASL the user is unknown: then the count is per server.
    """

    domain: str = "example.test"
    stage: XmppStage | None = None
    fault: XmppFault | None = None
    condition: str = "system-shutdown"
    text: str | None = None
    times_per_user: int | None = None
    port: int = 0
    accepted: int = 0
    faults_done: Counter[str] = field(default_factory=Counter)
    up_users: Counter[str] = field(default_factory=Counter)
    pings: int = 0
    open: set[_XmppConn] = field(default_factory=set)
    _server: asyncio.Server | None = None

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _XmppConn(self), "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    def address(self, name: str, cpa_url: str | None = None) -> NodeAddress:
        return NodeAddress(name=name, cpa_url=cpa_url, xmpp_host="127.0.0.1", xmpp_port=self.port)

    def should_fault(self, stage: XmppStage, user: str | None) -> bool:
        if self.stage is not stage or self.fault is None:
            return False
        key = user or "?"
        if self.times_per_user is not None and self.faults_done[key] >= self.times_per_user:
            return False
        self.faults_done[key] += 1
        return True

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for conn in list(self.open):
                conn.transport.abort()
            await asyncio.wait_for(self._server.wait_closed(), 5)
            self._server = None


class _XmppConn(asyncio.Protocol):
    def __init__(self, server: HostileXmpp) -> None:
        self.server = server
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.user: str | None = None
        self.authed = False
        self.stalled = False
        self._parser: ET.XMLPullParser = self._new_parser()
        self._depth = 0

    @staticmethod
    def _new_parser() -> ET.XMLPullParser:
        return ET.XMLPullParser(("start", "end"))

    # -- asyncio ---------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.accepted += 1
        self.server.open.add(self)
        if self.server.should_fault(XmppStage.ACCEPT, None):
            self._do_fault(header_sent=False)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.open.discard(self)

    def data_received(self, data: bytes) -> None:
        if self.stalled or self.transport.is_closing():
            return
        try:
            self._parser.feed(data)
            for kind, el in self._parser.read_events():
                if self.stalled or self.transport.is_closing():
                    return
                self._on(kind, el)  # type: ignore[arg-type]
        except ET.ParseError:
            self.transport.abort()

    # -- protocol --------------------------------------------------------------------------
    def _write(self, text: str) -> None:
        if not self.transport.is_closing():
            self.transport.write(text.encode())

    def _header(self) -> None:
        self._write(_HEADER.format(domain=self.server.domain, n=id(self)))

    def _on(self, kind: str, el: ET.Element) -> None:
        if kind == "start":
            self._depth += 1
            if self._depth == 1 and el.tag == f"{{{NS_STREAM}}}stream":
                self._stream_opened()
            return
        self._depth -= 1
        if self._depth == 0:  # </stream:stream>
            self._write("</stream:stream>")
            self.transport.close()
        elif self._depth == 1:
            self._stanza(el)

    def _stream_opened(self) -> None:
        srv = self.server
        stage = XmppStage.AUTH if self.authed else XmppStage.OPEN
        if srv.should_fault(stage, self.user):
            self._header()
            self._do_fault(header_sent=True)
            return
        self._header()
        if not self.authed:
            self._write("<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
                        "<mechanism>PLAIN</mechanism><mechanism>CISCO-VTG-TOKEN</mechanism></mechanisms>"
                        "</stream:features>")
        else:
            self._write("<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>")

    def _stanza(self, el: ET.Element) -> None:
        srv = self.server
        if el.tag == f"{{{NS_SASL}}}auth":
            if srv.should_fault(XmppStage.FEATURES, None):
                self._do_fault(header_sent=True)
                return
            self.user = _sasl_user(el.get("mechanism", ""), el.text or "")
            self.authed = True
            self._parser = self._new_parser()
            self._depth = 0
            self._write("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
            return
        if el.tag == f"{{{NS_CLIENT}}}iq":
            iq_id = el.get("id", "")
            if el.find(f"{{{NS_BIND}}}bind") is not None:
                if srv.should_fault(XmppStage.BIND, self.user):
                    self._do_fault(header_sent=True)
                    return
                jid = f"{self.user}@{srv.domain}/jabberemu"
                self._write(f"<iq type='result' id='{iq_id}'><bind xmlns='{NS_BIND}'><jid>{jid}</jid></bind></iq>")
            elif el.find(f"{{{NS_ROSTER}}}query") is not None:
                if srv.should_fault(XmppStage.ROSTER, self.user):
                    self._do_fault(header_sent=True)
                    return
                self._write(f"<iq type='result' id='{iq_id}'><query xmlns='{NS_ROSTER}'/></iq>")
            elif el.find(f"{{{NS_PING}}}ping") is not None:
                srv.pings += 1
                self._write(f"<iq type='result' id='{iq_id}'/>")
            elif el.get("type") in ("get", "set"):
                self._write(f"<iq type='error' id='{iq_id}'><error type='cancel'><service-unavailable "
                            "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")
            return
        if el.tag == f"{{{NS_CLIENT}}}presence" and el.get("type") is None and el.get("to") is None:
            srv.up_users[self.user or "?"] += 1
            if srv.should_fault(XmppStage.PRESENCE, self.user):
                self._do_fault(header_sent=True)

    def _do_fault(self, *, header_sent: bool) -> None:
        fault = self.server.fault
        if fault is XmppFault.STALL:
            self.stalled = True
        elif fault is XmppFault.RESET:
            reset_transport(self.transport)
        elif fault is XmppFault.CLOSE:
            self.transport.close()
        elif fault is XmppFault.GARBAGE:
            self._write("<<</ \x01 this is not XML >>>")
        elif fault is XmppFault.SASL_FAILURE:
            self._write(f"<failure xmlns='{NS_SASL}'><{self.server.condition}/></failure>")
        elif fault is XmppFault.BAD_FEATURES:  # an unknown mechanism before SASL, no bind after it
            self._write("<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
                        "<mechanism>X-UNKNOWN</mechanism></mechanisms></stream:features>" if not self.authed
                        else "<stream:features/>")
        elif fault is XmppFault.STREAM_ERROR:
            if not header_sent:
                self._header()
            condition, text = self.server.condition, self.server.text
            if condition == "see-other-host":  # the host is the element's character data (RFC 6120 §4.9.3.19)
                error = f"<{condition} xmlns='{NS_STREAMS_ERR}'>{text or ''}</{condition}>"
            else:
                error = f"<{condition} xmlns='{NS_STREAMS_ERR}'/>" + (
                    f"<text xmlns='{NS_STREAMS_ERR}'>{text}</text>" if text else "")
            self._write(f"<stream:error>{error}</stream:error></stream:stream>")
            self.transport.close()


def _sasl_user(mechanism: str, payload: str) -> str | None:
    try:
        raw = base64.b64decode(payload.strip() or "=", validate=False).decode("utf-8", "replace")
    except ValueError:
        return None
    if mechanism == "PLAIN":
        parts = raw.split("\0")
        return parts[1] if len(parts) == 3 else None
    if mechanism == "CISCO-VTG-TOKEN":
        for part in raw.split("\0"):
            if part.startswith("userid="):
                return part[len("userid="):].split("@")[0]
    return None


class FullBacklog:
    """A listening socket whose accept queue is full and never drained: further SYNs are dropped,
    so a TCP connect to it neither succeeds nor is refused (a node that stalls at connect)."""

    def __init__(self) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(0)
        self.port: int = self._listener.getsockname()[1]
        self._fillers: list[socket.socket] = []
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            try:
                filler.connect(("127.0.0.1", self.port))
            except BlockingIOError:
                pass
            self._fillers.append(filler)

    def close(self) -> None:
        for sock in [*self._fillers, self._listener]:
            sock.close()
