"""A two-node IM&P pair in memory, behind the driver's transport seam: no socket at all.

The CPA of each node answers through a :class:`~jabberemu.soap.transport.MockTransport` handler
(answers built from the golden files of tests/data/soap), the XMPP side through a
:class:`~jabberemu.xmpp.memory.MemoryConnector` whose server protocol speaks just enough c2s (stream,
SASL PLAIN and CISCO-VTG-TOKEN, bind, session, roster, ping, stream errors). One-time passwords are
shared by both nodes (the replicated Login Datastore). ``fail_over`` stops a node's services and
closes its streams with ``system-shutdown``, as the real pair does.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jabberemu.config import ClientSettings, NodeAddress, ServerPair
from jabberemu.runtime import Runtime, RunDataSink
from jabberemu.soap.transport import MockRequest, MockTransport, RawResponse
from jabberemu.xmpp.memory import MemoryConnector

__all__ = ["DOMAIN", "MEM_NODES", "MemoryPair", "memory_runtime"]

DOMAIN = "example.test"
MEM_NODES = ("imp1.example.test", "imp2.example.test")
SOAP_DATA = Path(__file__).resolve().parents[1] / "data" / "soap"
SOAP_MEDIA = "application/soap+xml; charset=utf-8"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_STREAMS = "urn:ietf:params:xml:ns:xmpp-streams"
_ACTION = re.compile(r'action="urn:cisco:epas:soap/([a-z-]+)"')


def golden(name: str) -> str:
    return (SOAP_DATA / name).read_text(encoding="utf-8")


def _text(body: bytes, tag: str) -> str | None:
    match = re.search(rf"<(?:\w+:)?{tag}(?:\s[^>]*)?>([^<]*)</(?:\w+:)?{tag}>".encode(), body)
    return match.group(1).decode() if match else None


@dataclass(kw_only=True)
class MemoryPair:
    """Both nodes' CPA and XMPP, in memory. Users ``user1``.. with password ``pw-<user>``; odd users homed
    on node 1, even ones on node 2.

    Attributes:
        down: nodes whose services are stopped (CPA faults services-stopped, XMPP refuses).
        lower_s, upper_s: the re-login limits ``get-all-config`` hands out.
        streams: node -> live server streams.
        cpa_calls: (node, operation) of every CPA request, in order.
    """

    users: int = 4
    lower_s: float = 0.01
    upper_s: float = 0.05
    down: set[str] = field(default_factory=set)
    streams: dict[str, list[MemoryXmppStream]] = field(default_factory=lambda: {n: [] for n in MEM_NODES})
    cpa_calls: list[tuple[str, str]] = field(default_factory=list)
    otps: dict[str, set[str]] = field(default_factory=dict)
    sessions: dict[str, str] = field(default_factory=dict)
    _seq: Any = field(default_factory=lambda: itertools.count(1))

    # ---- topology -------------------------------------------------------------------------------
    @property
    def pair(self) -> ServerPair:
        return ServerPair(nodes=tuple(NodeAddress(name=n, cpa_url=f"http://{n}/EPASSoap/service/v80", xmpp_host=n,
                                                  xmpp_port=5222) for n in MEM_NODES), domain=DOMAIN)

    def user_ids(self, node: str | None = None) -> list[str]:
        ids = [f"user{i}" for i in range(1, self.users + 1)]
        return [u for u in ids if node is None or self.home(u) == node]

    def home(self, user: str) -> str:
        return MEM_NODES[(int(user[4:]) + 1) % 2]

    @staticmethod
    def password(user: str) -> str:
        return f"pw-{user}"

    @staticmethod
    def peer(node: str) -> str:
        return MEM_NODES[1 - MEM_NODES.index(node)]

    # ---- CPA --------------------------------------------------------------------------------------
    def cpa(self, request: MockRequest) -> RawResponse:
        node = request.url.split("/")[2]
        match = _ACTION.search(request.headers.get("Content-Type", ""))
        op = match.group(1) if match else "?"
        if op == "login" and b"onetime-password" in request.body:
            op = "session-login"
        self.cpa_calls.append((node, op))
        if node in self.down:
            return self._answer(golden("fault-services-stopped.xml").replace("imp1.example.test", node), 500)
        if op in ("login", "session-login"):
            user = _text(request.body, "username") or ""
            if op == "login":
                ok = _text(request.body, "password") == self.password(user)
            else:
                ok = (_text(request.body, "onetime-password") or "") in self.otps.get(user, set())
            if not ok:
                name = "fault-bad-credentials.xml" if op == "login" else "fault-bad-onetime-password.xml"
                return self._answer(golden(name), 400)
            key = f"K-{next(self._seq)}"
            self.sessions[key] = user
            return self._answer(golden("login-response.xml").replace("K-0123456789abcdef", key))
        key = _text(request.body, "session-key") or ""
        user = self.sessions.get(key)
        if user is None:
            return self._answer(golden("fault-unknown-session.xml"), 400)
        if op == "get-all-config":
            home = self.home(user)
            text = golden("get-all-config-response.xml")
            for old, new in (('"Presence.PrimaryServer">imp1.example.test<', f'"Presence.PrimaryServer">{home}<'),
                             ('"Presence.BackupServer">imp2.example.test<', f'"Presence.BackupServer">{self.peer(home)}<'),
                             (">120<", f">{self.lower_s:g}<"), (">537<", f">{self.upper_s:g}<"),
                             (">user00001<", f">{user}<"), (">user00001@", f">{user}@")):
                assert old in text, old
                text = text.replace(old, new)
            # the CPA names the nodes only; their addresses come from the configured pair
            text = re.sub(r"\s*<epas:property name=\"Presence\.\w+Server\.\w+\">[^<]*</epas:property>", "", text)
            return self._answer(text)
        if op == "get-onetime-password":
            otp = f"OTP-{next(self._seq)}"
            self.otps.setdefault(user, set()).add(otp)
            return self._answer(golden("get-onetime-password-response.xml").replace("OTP-fedcba9876543210", otp))
        if op == "logout":
            self.sessions.pop(key, None)
            return self._answer(golden("logout-response.xml"))
        return self._answer(golden("fault-unknown-operation.xml"), 400)

    @staticmethod
    def _answer(text: str, status: int = 200) -> RawResponse:
        return RawResponse(status=status, content=text.encode(), content_type=SOAP_MEDIA, charset="utf-8",
                           headers={"Content-Type": SOAP_MEDIA})

    # ---- XMPP -------------------------------------------------------------------------------------
    def xmpp(self, host: str, _port: int) -> asyncio.Protocol | None:
        if host not in MEM_NODES or host in self.down:
            return None
        stream = MemoryXmppStream(self, host)
        self.streams[host].append(stream)
        return stream

    def connected(self, node: str) -> list[str]:
        return [s.user for s in self.streams[node] if s.user is not None and s.bound and not s.closed]

    # ---- HA ---------------------------------------------------------------------------------------
    def fail_over(self, node: str) -> int:
        """Stop ``node``'s services; its streams end with ``system-shutdown``. Returns streams closed."""
        self.down.add(node)
        closed = 0
        for stream in list(self.streams[node]):
            if not stream.closed:
                stream.stream_error("system-shutdown")
                closed += 1
        return closed

    def fall_back(self, node: str) -> int:
        """``node`` serves again; the peer closes the streams of ``node``'s users with ``system-shutdown``."""
        self.down.discard(node)
        closed = 0
        for stream in list(self.streams[self.peer(node)]):
            if not stream.closed and stream.user is not None and self.home(stream.user) == node:
                stream.stream_error("system-shutdown")
                closed += 1
        return closed


class MemoryXmppStream(asyncio.Protocol):
    """The server end of one in-memory c2s stream."""

    def __init__(self, pair: MemoryPair, node: str) -> None:
        self.pair = pair
        self.node = node
        self.user: str | None = None
        self.bound = False
        self.closed = False
        self.pings = 0
        self.transport: asyncio.Transport | None = None
        self._parser = ET.XMLPullParser(("start", "end"))
        self._depth = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True

    def send(self, text: str) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(text.encode())

    def stream_error(self, condition: str) -> None:
        self.send(f"<stream:error><{condition} xmlns='{NS_STREAMS}'/></stream:error></stream:stream>")
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        self._parser.feed(data)
        for kind, el in self._parser.read_events():
            if kind == "start":
                self._depth += 1
                if self._depth == 1:
                    self._open()
            else:
                self._depth -= 1
                if self._depth == 0:
                    self.send("</stream:stream>")
                    self.close()
                    return
                if self._depth == 1:
                    self._stanza(el)

    def _open(self) -> None:
        self.send(f"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                  f"xmlns:stream='http://etherx.jabber.org/streams' id='s{id(self)}' from='{DOMAIN}' version='1.0'>")
        if self.user is None:
            hints = "".join(f"<hostname xmlns='urn:xmpp:domain-based-name:0'>{n}</hostname>"
                            for n in (self.node, self.pair.peer(self.node)))
            self.send(f"<stream:features><mechanisms xmlns='{NS_SASL}'><mechanism>PLAIN</mechanism>"
                      f"<mechanism>CISCO-VTG-TOKEN</mechanism>{hints}</mechanisms></stream:features>")
        else:
            self.send("<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"
                      "<session xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/></session></stream:features>")

    def _stanza(self, el: ET.Element) -> None:
        tag = el.tag
        if tag == f"{{{NS_SASL}}}auth":
            self._auth(el.get("mechanism", ""), base64.b64decode(el.text or ""))
        elif tag == "{jabber:client}iq":
            self._iq(el)

    def _auth(self, mechanism: str, payload: bytes) -> None:
        user = None
        if mechanism == "PLAIN":
            _authz, authc, password = payload.decode().split("\0")
            user = authc if password == self.pair.password(authc) else None
        elif mechanism == "CISCO-VTG-TOKEN":
            fields = dict(part.split("=", 1) for part in payload.decode().split("\0"))
            name = fields.get("userid", "").split("@")[0]
            user = name if fields.get("token") in self.pair.otps.get(name, set()) else None
        if user is None:
            self.send(f"<failure xmlns='{NS_SASL}'><not-authorized/></failure>")
            return
        self.user = user
        self.send(f"<success xmlns='{NS_SASL}'/>")
        self._parser = ET.XMLPullParser(("start", "end"))  # the client restarts the stream
        self._depth = 0

    def _iq(self, iq: ET.Element) -> None:
        iq_id = iq.get("id", "")
        child = iq[0] if len(iq) else None
        ns = child.tag.split("}")[0][1:] if child is not None else ""
        if ns == "urn:ietf:params:xml:ns:xmpp-bind":
            self.bound = True
            self.send(f"<iq type='result' id='{iq_id}'><bind xmlns='{ns}'><jid>{self.user}@{DOMAIN}/jabberemu</jid>"
                      "</bind></iq>")
        elif ns == "jabber:iq:roster":
            contacts = [u for u in self.pair.user_ids() if u != self.user][:2]
            items = "".join(f"<item jid='{c}@{DOMAIN}' subscription='both'/>" for c in contacts)
            self.send(f"<iq type='result' id='{iq_id}'><query xmlns='jabber:iq:roster'>{items}</query></iq>")
        else:  # session, ping: an empty result
            if ns == "urn:xmpp:ping":
                self.pings += 1
            self.send(f"<iq type='result' id='{iq_id}'/>")


async def memory_runtime(mem: MemoryPair, settings: ClientSettings, *, measurements: list[Any] | None = None,
                         sink: RunDataSink | None = None, soap_timeout_s: float | None = None) -> Runtime:
    """A runtime whose CPA and XMPP go to ``mem`` (the driver's transport seam), GC policy off."""

    def measure(client: str, m: Any) -> None:
        if measurements is not None:
            measurements.append((client, m))

    transport = MockTransport(mem.cpa, timeout_s=soap_timeout_s if soap_timeout_s is not None
                              else settings.timeouts.soap_s)
    return await Runtime.create(mem.pair, settings, run_seed=5, measure=measure, sink=sink, gc_policy=None,
                                http_transport=transport, xmpp_connector=MemoryConnector(mem.xmpp))
