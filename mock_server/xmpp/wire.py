"""Sans-IO server side of one XMPP client-to-server stream (RFC 6120, RFC 6121, XEP-0199).

``C2sStream.feed(bytes)`` returns events; decisions that need the node (credentials, roster,
routing) are events the caller answers with a method that returns the bytes to send. Bytes the
stream decides alone (SASL mechanism errors, session, pings, stream errors) come as ``DataOut``
events, in order with the rest. The caller does all I/O, e.g.::

    for event in stream.feed(data):
        match event:
            case DataOut(data=out): transport.write(out)
            case StreamOpened(): transport.write(stream.accept_stream(hints))
            case AuthRequested(): transport.write(stream.auth_success() or stream.auth_failure(...))

Flow (RFC 6120 §9.1): header -> features [-> STARTTLS ``<proceed/>``, caller upgrades, new header]
-> SASL ``PLAIN`` (RFC 4616) or ``CISCO-VTG-TOKEN`` -> ``<success/>`` and stream restart (§6.4.6)
-> resource binding (§7) -> session (RFC 3921 §3, answered for old clients) -> stanzas.
XML hardening and limits: ``xmpp.xml``. Events, wire words and the state table: ``xmpp.events``.
The XML the stream writes is spelled by ``xmpp.render``.
"""

from __future__ import annotations

import logging
import secrets
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mock_server.xmpp import render
from mock_server.xmpp.backend import RosterItem
from mock_server.xmpp.events import (
    AuthRequested, DataOut, Event, IqResponse, PresenceBroadcast, Routed, RosterRequested, SaslCondition,
    SaslMechanism, SessionBound, StanzaCondition, StanzaKind, StartTlsRequested, StreamClosed,
    StreamCondition, StreamErrorSent, StreamOpened, WireInput, WireState, WireStateError, next_state,
)
from mock_server.xmpp.jid import split_jid
from mock_server.xmpp.render import NS_BIND, NS_CLIENT, NS_PING, NS_ROSTER, NS_SASL, NS_SESSION, NS_TLS
from mock_server.xmpp.sasl import decode_sasl
from mock_server.xmpp.xml import (
    NS_STREAM, ParseLimits, StanzaItem, StreamHeaderItem, StreamParser, XmlViolation, restamp, serialize,
)

__all__ = ["C2sStream", "WireSettings"]

logger = logging.getLogger(__name__)

_STANZAS = {f"{{{NS_CLIENT}}}{k.value}": k for k in StanzaKind}


@dataclass(frozen=True, kw_only=True)
class WireSettings:
    """Settings of the c2s stream.

    Args:
        domain: presence domain the stream must be addressed to.
        limits: XML size and depth limits.
        tls_available: offer STARTTLS (RFC 6120 §5) while the stream is not yet secured.
        tls_required: mark STARTTLS ``<required/>`` and offer no SASL before it.
        max_auth_attempts: SASL failures before the stream is closed (RFC 6120 §6.4.5, our number).

    Raises:
        ValueError: empty domain, TLS required but not available, attempts < 1.
    """

    domain: str
    limits: ParseLimits = ParseLimits()
    tls_available: bool = False
    tls_required: bool = False
    max_auth_attempts: int = 5

    def __post_init__(self) -> None:
        if not self.domain:
            raise ValueError("domain is required")
        if self.tls_required and not self.tls_available:
            raise ValueError("tls_required needs tls_available")
        if self.max_auth_attempts < 1:
            raise ValueError("max_auth_attempts must be >= 1")


def _new_id() -> str:
    return secrets.token_hex(8)


class C2sStream:
    """One client stream, server side.

    Args:
        settings: stream settings.
        id_factory: source of stream ids, generated resources and server iq ids (tests pass a
            deterministic one).
    """

    def __init__(self, settings: WireSettings, id_factory: Callable[[], str] = _new_id) -> None:
        self.settings = settings
        self._ids = id_factory
        self.state = WireState.AWAIT_HEADER
        self.secured = False
        self.user: str | None = None
        self.resource: str | None = None
        self._parser = StreamParser(settings.limits)
        self._header_sent = False
        self._opened: WireState | None = None  # state after a header whose StreamOpened is unanswered
        self._client_from: str | None = None
        self._raw_ok = True
        self._auth_failures = 0
        self._mechanism: SaslMechanism | None = None
        self._events: list[Event] = []

    # -- facts ------------------------------------------------------------------------------
    @property
    def bare_jid(self) -> str | None:
        """``user@domain`` once authenticated."""
        return f"{self.user}@{self.settings.domain}" if self.user else None

    @property
    def full_jid(self) -> str | None:
        """``user@domain/resource`` once bound."""
        return f"{self.bare_jid}/{self.resource}" if self.user and self.resource else None

    @property
    def closed(self) -> bool:
        """True once the stream is over (either side closed it or an error was sent)."""
        return self.state is WireState.CLOSED

    # -- input ------------------------------------------------------------------------------
    def feed(self, data: bytes) -> list[Event]:
        """Consume bytes from the client.

        Args:
            data: bytes as read from the socket (or from TLS), split anywhere.

        Returns:
            Events in order. After ``StreamErrorSent`` or ``StreamClosed`` nothing more is read.
        """
        events: list[Event] = []
        self._events = events
        if self.state is WireState.CLOSED:
            return events
        violation: XmlViolation | None = None
        try:
            items = self._parser.feed(data)
        except XmlViolation as exc:  # what was complete before it is handled first
            items, violation = exc.items_before, exc
        for item in items:
            if self.closed:
                break
            if isinstance(item, StreamHeaderItem):
                self._on_header(item)
            elif isinstance(item, StanzaItem):
                self._on_element(item)
            else:
                self._on_stream_end()
        if violation is not None and not self.closed:
            self._fail(StreamCondition(violation.condition), violation.detail)
        return events

    def _emit(self, event: Event) -> None:
        self._events.append(event)

    def _out(self, data: str | bytes) -> None:
        self._emit(DataOut(data=data.encode() if isinstance(data, str) else data))

    def _go(self, inp: WireInput) -> None:
        self.state = next_state(self.state, inp)
        if self.state is WireState.CLOSED:
            self._parser.close()

    def _fail(self, condition: StreamCondition, text: str | None = None) -> None:
        # With a StreamOpened still unanswered, the caller writes our header when it answers it,
        # before this error (events are handled in order): the error must not repeat it.
        self._out(self._error_bytes(condition, text, header=not self._header_sent and self._opened is None))
        self._emit(StreamErrorSent(condition=condition, text=text))

    def _sasl_failure(self, condition: SaslCondition, text: str | None = None) -> None:
        self._go(WireInput.AUTH_FAILED)
        self._auth_failures += 1
        self._out(render.sasl_failure(condition, text))
        if self._auth_failures >= self.settings.max_auth_attempts:
            self._fail(StreamCondition.POLICY_VIOLATION, "too many authentication failures")

    def _on_header(self, item: StreamHeaderItem) -> None:
        """RFC 6120 §4.7 (attributes), §4.8 (namespaces), §4.9.3 (errors)."""
        self._client_from = item.attrs.get("from")
        if item.tag != f"{{{NS_STREAM}}}stream":
            ns, _, local = item.tag[1:].partition("}") if item.tag.startswith("{") else ("", "", item.tag)
            cond = StreamCondition.INVALID_NAMESPACE if local == "stream" else StreamCondition.BAD_FORMAT
            return self._fail(cond, f"root element {item.tag}")
        if item.namespaces.get("", "") != NS_CLIENT:
            return self._fail(StreamCondition.INVALID_NAMESPACE, "default namespace must be jabber:client")
        to = item.attrs.get("to")
        if to is not None and to.lower() != self.settings.domain.lower():
            return self._fail(StreamCondition.HOST_UNKNOWN, f"this server serves {self.settings.domain}")
        if not item.attrs.get("version", "").startswith("1."):
            return self._fail(StreamCondition.UNSUPPORTED_VERSION, "version 1.0 required")
        self._raw_ok = set(item.namespaces) <= {"", "stream"}
        self._go(WireInput.HEADER)
        self._opened = self.state
        self._emit(StreamOpened(secured=self.secured, authenticated=self.user is not None))

    def _on_stream_end(self) -> None:
        """RFC 6120 §4.4: the client closed its stream; the caller answers with ``close()``."""
        self._go(WireInput.CLIENT_CLOSE)
        self._emit(StreamClosed())

    def _on_element(self, item: StanzaItem) -> None:
        elem = item.element
        tag = elem.tag
        st = self.state
        if st is WireState.NEGOTIATING and tag == f"{{{NS_TLS}}}starttls":
            if not self.settings.tls_available or self.secured:
                self._out(f"<failure xmlns='{NS_TLS}'/>")  # RFC 6120 §5.4.2.2
                self._out(self.close())
                return
            self._go(WireInput.STARTTLS)
            self._emit(StartTlsRequested())
        elif st is WireState.NEGOTIATING and tag == f"{{{NS_SASL}}}auth":
            self._on_auth(elem)
        elif st is WireState.CHALLENGED and tag == f"{{{NS_SASL}}}response":
            self._go(WireInput.RESPONSE)
            self._on_sasl_payload(elem.text or "")
        elif st in (WireState.NEGOTIATING, WireState.CHALLENGED) and tag == f"{{{NS_SASL}}}abort":
            self._sasl_failure(SaslCondition.ABORTED)  # RFC 6120 §6.4.4
        elif st is WireState.BINDING and tag == f"{{{NS_CLIENT}}}iq" and elem.find(f"{{{NS_BIND}}}bind") is not None:
            self._on_bind(elem)
        elif st is WireState.ESTABLISHED and tag in _STANZAS:
            self._on_stanza(_STANZAS[tag], elem, item.raw)
        elif st is WireState.ESTABLISHED:
            self._fail(StreamCondition.UNSUPPORTED_STANZA_TYPE, f"{tag} is not supported")
        elif st in (WireState.NEGOTIATING, WireState.BINDING):
            self._fail(StreamCondition.NOT_AUTHORIZED, f"{tag} before authentication and binding")  # §4.9.3.12
        else:
            self._fail(StreamCondition.POLICY_VIOLATION, f"{tag} sent before the server answered")

    # -- SASL (RFC 6120 §6) --------------------------------------------------------------------
    def _on_auth(self, elem: ET.Element) -> None:
        try:
            self._mechanism = SaslMechanism(elem.get("mechanism", ""))
        except ValueError:
            self._sasl_failure(SaslCondition.INVALID_MECHANISM)  # RFC 6120 §6.5.5
            return
        if self.settings.tls_required and not self.secured:
            self._fail(StreamCondition.POLICY_VIOLATION, "STARTTLS first")
            return
        text = (elem.text or "").strip()
        if not text:  # no initial response: empty challenge (RFC 6120 §6.4.2)
            self._go(WireInput.AUTH_NO_DATA)
            self._out(f"<challenge xmlns='{NS_SASL}'/>")
            return
        self._go(WireInput.AUTH)
        self._on_sasl_payload(text)

    def _on_sasl_payload(self, text: str) -> None:
        assert self._mechanism is not None
        got = decode_sasl(self._mechanism, text, self.settings.domain)
        if isinstance(got, SaslCondition):
            self._sasl_failure(got)
        else:
            self._emit(AuthRequested(mechanism=self._mechanism, user=got.user, secret=got.secret))

    # -- binding and stanzas -----------------------------------------------------------------
    def _on_bind(self, elem: ET.Element) -> None:
        """RFC 6120 §7.6 (server-generated resource), §7.7 (client-submitted)."""
        iq_id = elem.get("id", "")
        res_el = elem.find(f"{{{NS_BIND}}}bind/{{{NS_BIND}}}resource")
        resource = (res_el.text or "").strip() if res_el is not None else ""
        if elem.get("type") != "set" or len(resource.encode()) > 1023 or any(c in resource for c in "/@<>"):
            self._out(render.iq_error(iq_id, "bad-request", "modify"))  # §7.7.2.1
            return
        self.resource = resource or self._ids()
        self._go(WireInput.BIND)
        jid = self.full_jid
        assert jid is not None
        self._out(render.bind_result(iq_id, jid))
        self._emit(SessionBound(full_jid=jid, resource=self.resource))

    def _stamp(self, elem: ET.Element, raw: bytes) -> bytes:
        assert self.full_jid is not None
        if self._raw_ok:
            return restamp(raw, from_jid=self.full_jid)
        elem.set("from", self.full_jid)
        return serialize(elem)

    def _on_stanza(self, kind: StanzaKind, elem: ET.Element, raw: bytes) -> None:
        """RFC 6120 §8 (stanza semantics), §10 (server rules for processing XML stanzas)."""
        to = elem.get("to")
        typ = elem.get("type")
        local, domain, resource = split_jid(to) if to else ("", "", "")
        to_self = not to or (domain == self.settings.domain and (not local or (local == self.user and not resource)))
        if kind is StanzaKind.IQ and to_self:
            return self._on_server_iq(elem, typ)
        if kind is StanzaKind.PRESENCE and not to:
            if typ in (None, "unavailable"):
                self._emit(PresenceBroadcast(available=typ is None, stanza=self._stamp(elem, raw)))
            return
        if not to:
            return  # message without 'to': to the sender's own bare JID (§10.3.1); dropped here
        target = f"{local}@{domain}/{resource}" if resource else (f"{local}@{domain}" if local else domain)
        self._emit(Routed(kind=kind, to_jid=target, stanza_type=typ, stanza_id=elem.get("id"),
                          stanza=self._stamp(elem, raw)))

    def _on_server_iq(self, elem: ET.Element, typ: str | None) -> None:
        iq_id = elem.get("id", "")
        if typ in ("result", "error"):
            self._emit(IqResponse(iq_id=iq_id, ok=typ == "result"))
            return
        child = elem[0] if len(elem) else None
        if typ not in ("get", "set") or child is None or len(elem) != 1:
            self._out(render.iq_error(iq_id, "bad-request", "modify"))  # RFC 6120 §8.2.3
        elif child.tag == f"{{{NS_PING}}}ping" and typ == "get":  # XEP-0199 §4.3
            self._out(render.iq_result(iq_id, from_jid=self.settings.domain))
        elif child.tag == f"{{{NS_SESSION}}}session" and typ == "set":  # RFC 3921 §3
            self._out(render.iq_result(iq_id))
        elif child.tag == f"{{{NS_ROSTER}}}query" and typ == "get":  # RFC 6121 §2.1.3
            self._emit(RosterRequested(iq_id=iq_id))
        else:
            self._out(render.iq_error(iq_id, "service-unavailable", "cancel"))  # RFC 6120 §8.4

    # -- answers the caller asks for ---------------------------------------------------------
    def _require(self, *states: WireState) -> bool:
        if self.state is WireState.CLOSED:
            return False
        if self.state not in states:
            raise WireStateError(state=self.state, action=f"requires {[s.name for s in states]}")
        return True

    def _header(self) -> str:
        self._header_sent = True
        return render.stream_header(stream_id=self._ids(), domain=self.settings.domain, to=self._client_from)

    def accept_stream(self, hostname_hints: Sequence[str] = ()) -> bytes:
        """Answer ``StreamOpened``: our stream header and features (RFC 6120 §4.3.2, §4.3.3).

        Args:
            hostname_hints: host names for ``<hostname xmlns='urn:xmpp:domain-based-name:0'>``
                inside ``<mechanisms>``, this node first, then its peer (DOMAIN.md "XMPP side").

        Returns:
            Bytes to send; ``b""`` if the stream has closed meanwhile. Elements the client sent
            right after its header (pipelined, in the same read) may have been handled already:
            the features are those of the state the header opened, and if those elements closed
            the stream, only our header is returned (their stream error follows in the events).

        Raises:
            WireStateError: no stream header is being answered.
        """
        opened, self._opened = self._opened, None
        if opened is None:
            if self.state is WireState.CLOSED:
                return b""
            raise WireStateError(state=self.state, action="accept_stream without a stream header to answer")
        if self.state is WireState.CLOSED:
            return self._header().encode() if not self._header_sent else b""
        header = self._header()
        return (header + render.features(
            binding=opened is WireState.BINDING, starttls=self.settings.tls_available and not self.secured,
            tls_required=self.settings.tls_required, sasl=self.secured or not self.settings.tls_required,
            hostname_hints=hostname_hints)).encode()

    def _restart(self) -> None:
        self._parser.close()  # frees the old stream's parser now, not at the next full GC pass
        self._parser = StreamParser(self.settings.limits)
        self._header_sent = False
        self._opened = None

    def proceed_tls(self) -> bytes:
        """Answer ``StartTlsRequested`` with ``<proceed/>`` (RFC 6120 §5.4.2.3). The caller then
        upgrades the transport; the next bytes fed must be the decrypted new stream header."""
        if not self._require(WireState.TLS_STARTING):
            return b""
        self._go(WireInput.PROCEED)
        self.secured = True
        self._restart()
        return f"<proceed xmlns='{NS_TLS}'/>".encode()

    def auth_success(self, user: str) -> bytes:
        """Answer ``AuthRequested`` with ``<success/>`` (RFC 6120 §6.4.6); the stream restarts.

        Args:
            user: the authenticated user id (``AuthRequested.user``).
        """
        if not self._require(WireState.AUTHENTICATING):
            return b""
        self.user = user
        self._go(WireInput.AUTH_OK)
        self._restart()
        return f"<success xmlns='{NS_SASL}'/>".encode()

    def auth_failure(self, condition: SaslCondition, text: str | None = None) -> bytes:
        """Answer ``AuthRequested`` with a SASL ``<failure/>`` (RFC 6120 §6.5); after
        ``max_auth_attempts`` failures a ``policy-violation`` stream error follows."""
        if not self._require(WireState.AUTHENTICATING):
            return b""
        saved, self._events = self._events, []
        try:
            self._sasl_failure(condition, text)
            return b"".join(e.data for e in self._events if isinstance(e, DataOut))
        finally:
            self._events = saved

    def roster_result(self, iq_id: str, items: Sequence[RosterItem]) -> bytes:
        """Answer ``RosterRequested`` (RFC 6121 §2.1.3)."""
        if not self._require(WireState.ESTABLISHED):
            return b""
        return render.roster_result(iq_id, self.full_jid or "", items).encode()

    def ping(self, iq_id: str) -> bytes:
        """A server-to-client ping (XEP-0199 §4.2); the answer comes back as ``IqResponse``."""
        if not self._require(WireState.ESTABLISHED):
            return b""
        return render.ping(iq_id, from_jid=self.settings.domain, to=self.full_jid or "").encode()

    def bounce(self, event: Routed, condition: StanzaCondition = StanzaCondition.SERVICE_UNAVAILABLE) -> bytes:
        """Error reply for a stanza nobody could take (RFC 6121 §8.5.2.2.1, §8.5.3.2.1): only
        messages and iq get/set are answered; presence and errors are dropped (``b""``)."""
        if self.state is not WireState.ESTABLISHED:
            return b""
        if event.stanza_type == "error" or (event.kind is StanzaKind.IQ and event.stanza_type not in ("get", "set")):
            return b""
        if event.kind is StanzaKind.PRESENCE:
            return b""
        return render.bounce(event.kind.value, from_jid=event.to_jid, to=self.full_jid or "",
                             stanza_id=event.stanza_id, condition=condition).encode()

    def stream_error(self, condition: StreamCondition, text: str | None = None) -> bytes:
        """Close with a stream error (RFC 6120 §4.9). Sends our header first if none was sent on
        this stream (§4.9.1.1). ``see-other-host`` carries ``text`` as its content
        (``host:port``, §4.9.3.19), others as ``<text/>``.

        Returns:
            The bytes to send, ``b""`` if already closed; the caller then closes the transport.
        """
        if self.state is WireState.CLOSED:
            return b""
        self._opened = None
        return self._error_bytes(condition, text, header=not self._header_sent)

    def _error_bytes(self, condition: StreamCondition, text: str | None, *, header: bool) -> bytes:
        head = self._header() if header else ""
        self.state = WireState.CLOSED
        self._parser.close()
        return (head + render.stream_error(condition, text)).encode()

    def release(self) -> None:
        """The connection is gone (no stream close was exchanged): free the parser now."""
        self._parser.close()

    def close(self) -> bytes:
        """Our closing ``</stream:stream>`` (RFC 6120 §4.4), or ``b""`` when nothing is open."""
        was_open = self._header_sent or self._opened is not None  # a pending header is written first
        self.state = WireState.CLOSED
        self._parser.close()
        self._header_sent = False
        return b"</stream:stream>" if was_open else b""
