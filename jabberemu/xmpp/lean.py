"""``LeanClientXMPP``: slixmpp's ``ClientXMPP`` with only what an emulated Jabber client uses.

``ClientXMPP.__init__`` (via ``BaseXMPP``) gives every connection a multi-JID roster with presence
tracking, an API registry, 17 event handlers for presence and subscription bookkeeping, seven
stream-feature plugins and an asyncio ``Event``; every incoming presence then walks that roster.
An emulated client needs none of it: it reads its contacts from the roster result (RFC 6121
§2.1.3) and only notes which contacts' resources are available. Measured (500-1,000 logins
against the mock, this machine): GC-tracked objects per connected client 350 -> ~220, client
construction 0.50 -> 0.32 ms and 29 -> 20 KiB, slixmpp stanza-interface lookups per login
284 -> 65 (the roster walk of every incoming presence).

This class runs slixmpp's own ``XMLStream.__init__`` and sets the attributes ``BaseXMPP`` and
``ClientXMPP`` methods read, registers the stream handlers and stream-feature plugins a client
login needs (STARTTLS when asked, SASL, bind, session: RFC 6120 §5-§7, RFC 3921 §3) and nothing
else. Everything slixmpp does on the wire (stream header, feature negotiation, SASL, stanza ids,
IQ tracking, stream errors, STARTTLS) is still slixmpp's code. Two more cuts:

- stanzas are written at once when slixmpp's send queue is empty and the stream allows them (no
  outgoing filters are ever registered here): the queue's task hand-off per stanza is skipped,
  the order on the wire is unchanged;
- the roster get parses the result's ``<item jid=.../>`` elements directly instead of filling
  slixmpp's roster (no ``roster_update`` event);
- slixmpp's send task (``run_filters``, one task and one queue getter per connection) and its send
  queue are made only when a stanza has to wait in the queue, which an emulated client's stanzas
  never do;
- once the session is up (:meth:`LeanClientXMPP.shed_login`, our choice): the SASL, bind, session
  and STARTTLS plugins, their handlers and the login's event handlers are dropped, and so are the
  credentials; between stanzas the XML parser is dropped too (expat keeps ~20 KiB per connection
  once it has parsed a login) and made again, primed with the stream's namespaces, when the next
  bytes arrive (~6 us).

**No reference cycles left behind (our choice).** slixmpp's objects point at each other: the stream
holds handlers and event handlers that are bound methods of itself and of its plugins, each plugin
holds the stream, ``Iq.send`` builds a callback closure that refers to itself, and asyncio's socket
transport keeps a bound method of itself. Left alone, every connection that ends is cyclic garbage
that only a full collection frees (seconds with 10,000 clients: BENCHMARKS.md). Here
:meth:`LeanClientXMPP.release` clears those tables once the connection is gone, :class:`LeanIq`
sends IQs without the self-referring closure, and :func:`break_transport_cycle` drops the
transport's bound method, so reference counting frees a finished connection at once
(tests/client/test_no_cycles.py).

Pinned to slixmpp 1.17 (pyproject.toml); tests/client/test_xmpp_lean.py checks the attributes
this class sets against a real ``ClientXMPP``.
"""

from __future__ import annotations

import asyncio
import ssl
import xml.etree.ElementTree as ET
from typing import Any
from xml.sax.saxutils import quoteattr

from slixmpp import ClientXMPP, stanza
from slixmpp.jid import JID
from slixmpp.plugins import PluginManager
from slixmpp.stanza import Iq, Message, Presence, StreamError
from slixmpp.stanza.rootstanza import RootStanza
from slixmpp.xmlstream import XMLStream
from slixmpp.xmlstream.handler import Callback, CoroutineCallback
from slixmpp.xmlstream.matcher import MatchXPath
from slixmpp.xmlstream.stanzabase import StanzaBase
from slixmpp.xmlstream.tostring import tostring

from jabberemu.xmpp.leanparts import (
    _IDS,
    _NO_API,
    _NO_QUEUE,
    _IqWaiter,
    _NoQueue,
    LeanIq,
    LeanStreamFeatures,
    MatchTag,
    RawIqError,
    RosterView,
    _BindFlag,
    _single_step,
    break_transport_cycle,
)

__all__ = ["LeanClientXMPP", "LeanIq", "MatchTag", "RawIqError", "NS_ROSTER", "RosterView", "STREAM_PRIMER", "break_transport_cycle"]

NS_CLIENT = "jabber:client"
NS_STREAM = "http://etherx.jabber.org/streams"
NS_ROSTER = "jabber:iq:roster"
_ROSTER_QUERY = f"{{{NS_ROSTER}}}query"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
_IQ_CLIENT = f"{{{NS_CLIENT}}}iq"
_PRESENCE_CLIENT = f"{{{NS_CLIENT}}}presence"
_PING = "{urn:xmpp:ping}ping"
_ROSTER_ITEM = f"{{{NS_ROSTER}}}item"


#: slixmpp 1.17's private (name-mangled) tables of a stream that hold bound methods.
_HANDLERS = "_XMLStream__handlers"
_EVENT_HANDLERS = "_XMLStream__event_handlers"
_FILTERS = "_XMLStream__filters"
_QUEUED = "_XMLStream__queued_stanzas"


#: What a re-made parser is fed first: the c2s namespaces of the stream (RFC 6120 §4.8; every server
#: writes the ``stream`` prefix), so that the stanzas that follow parse as on the original stream.
STREAM_PRIMER = (b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
                 b"version='1.0'>")
#: Handlers only a login uses (slixmpp 1.17 names: feature_mechanisms, feature_starttls, ClientXMPP).
_LOGIN_HANDLERS = ("SASL Success", "SASL Failure", "SASL Challenge", "STARTTLS Proceed", "Stream Features")


_ROOTS: tuple[type[StanzaBase], ...] = (Message, LeanIq, Presence, StreamError, LeanStreamFeatures)
_ROOT_BY_TAG: dict[str, type[StanzaBase]] = {}
for _root in reversed(_ROOTS):  # slixmpp takes the first registered class that matches
    _ROOT_BY_TAG[f"{{{NS_CLIENT}}}{_root.name}"] = _root
    _ROOT_BY_TAG[_root.tag_name()] = _root


class LeanClientXMPP(ClientXMPP):
    """A ``ClientXMPP`` without roster, presence bookkeeping or optional stream features.

    Args:
        jid: the full JID to request (``user@domain/resource``).
        password: the password ("" when authenticating with a token).
        sasl_mech: the one SASL mechanism to use (``feature_mechanisms.use_mech``).
        ssl_context: the process's shared TLS context (never one per client).
        loop: the running loop.
        starttls: load ``feature_starttls`` (else plain TCP only).
    """

    def __init__(self, jid: str, password: str, *, sasl_mech: str | None, ssl_context: ssl.SSLContext,
                 loop: asyncio.AbstractEventLoop, starttls: bool) -> None:
        XMLStream.__init__(self, ssl_context=ssl_context, loop=loop)
        self.waiting_queue = _NO_QUEUE  # type: ignore[assignment]
        self._lean_parsing = False  # True once the session is up: the parser is dropped between stanzas
        # --- BaseXMPP.__init__, minus roster, API registry and presence handlers
        self.default_ns = NS_CLIENT
        self.stream_ns = NS_STREAM
        self.namespace_map[NS_STREAM] = "stream"
        self.stream_id = None
        self.requested_jid = JID(jid)
        self.boundjid = JID(jid)
        self._expected_server_name = self.boundjid.host
        self._redirect_attempts = 0
        self.max_redirects = 5
        self.session_bind_event = _BindFlag()  # type: ignore[assignment]
        self.api = _NO_API  # type: ignore[assignment]
        self.plugin = PluginManager(self)  # type: ignore[assignment]
        self.is_component = False
        self.use_message_ids = True
        self.use_presence_ids = True
        self.use_origin_id = False
        self.sentpresence = False
        self.stanza = stanza
        self.register_handler(Callback("Stream Error", MatchTag(f"{{{NS_STREAM}}}error"),
                                       self._handle_stream_error))
        for root in _ROOTS:
            self.register_stanza(root)
        self._iq_waiters: dict[str, _IqWaiter] = {}
        self._raw_iqs: dict[str, tuple[asyncio.Future[Any], asyncio.TimerHandle, set[str | None]]] = {}
        # --- ClientXMPP.__init__, minus roster, rosterver, preapproval and limits (XEP-0478)
        self.escape_quotes = True
        self.plugin_config = {}
        self.plugin_whitelist = []
        self.default_port = 5222
        self.default_domain = self.boundjid.host
        self.default_lang = "en"
        self.credentials = {}
        self.password = password
        self.stream_header = (f"<stream:stream to='{self.boundjid.host}' xmlns:stream='{NS_STREAM}' "
                              f"xmlns='{NS_CLIENT}' xml:lang='en' version='1.0'>")
        self.stream_footer = "</stream:stream>"
        self.features = set()
        self._stream_feature_handlers = {}
        self._stream_feature_order = []
        self.tls_services = {"xmpps-client"}
        self.starttls_services = {"xmpp-client"}
        self.authenticated = False
        self.sessionstarted = False
        self.bound = False
        self.bindfail = False
        self.add_event_handler("connected", self._reset_connection_state)
        self.register_handler(CoroutineCallback("Stream Features", MatchTag(f"{{{NS_STREAM}}}features"),
                                                self._handle_stream_features))  # type: ignore[arg-type]
        self.register_handler(Callback("Roster Update", MatchTag(f"{{{NS_CLIENT}}}iq", iq_type="set",
                                                                 child=_ROSTER_QUERY), self._answer_roster_push))
        self.register_handler(Callback("Presence", MatchTag(f"{{{NS_CLIENT}}}presence"), self._track_presence))
        self._available: dict[str, dict[str, dict[str, Any]]] = {}
        if starttls:
            self.register_plugin("feature_starttls")
        self.register_plugin("feature_bind")
        self.register_plugin("feature_session")
        self.register_plugin("feature_mechanisms")
        if sasl_mech:
            self.plugin["feature_mechanisms"].use_mech = sasl_mech
        for handler in getattr(self, _HANDLERS):  # the plugins' one-step XPath matchers, by tag
            tag = _single_step(handler._matcher._criteria) if isinstance(handler._matcher, MatchXPath) else None
            if tag is not None:
                handler._matcher = MatchTag(tag)

    def new_id(self) -> str:
        """A stanza id unique in the process (slixmpp draws a uuid4 per stanza)."""
        return f"j{next(_IDS):x}"

    def _build_stanza(self, xml: Any, default_ns: str | None = None) -> StanzaBase:
        """slixmpp's ``_build_stanza`` with the root classes found by tag in one lookup, and the
        ``xml:lang`` interface read only when the peer declared a default language."""
        cls = _ROOT_BY_TAG.get(xml.tag) if default_ns is None else None
        if cls is None:
            return super()._build_stanza(xml, default_ns)
        stanza: Any = cls(self, xml, recv=True)
        if self.peer_default_lang and stanza["lang"] is None:
            stanza["lang"] = self.peer_default_lang
        return stanza  # type: ignore[no-any-return]

    def Iq(self, *args: Any, **kwargs: Any) -> LeanIq:  # noqa: N802 - slixmpp's name
        """An IQ of this stream (a :class:`LeanIq`: no reference cycle once answered)."""
        return LeanIq(self, *args, **kwargs)  # type: ignore[no-untyped-call]

    def connect(self, host: str | None = None, port: int | None = None) -> asyncio.Future[Any]:
        """slixmpp's ``connect`` without starting the send task (:meth:`send` starts it if needed)."""
        self.disconnect_reason = None
        self.cancel_connection_attempt()
        self._connect_loop_wait = 0
        if host and port:
            self.custom_address = (host, int(port))
        elif (host, port) == (None, None):
            self.custom_address = None
        self.event("connecting")
        self._current_connection_attempt = asyncio.ensure_future(self._connect_loop(), loop=self.loop)
        return self._current_connection_attempt

    def _real_queue(self) -> None:
        if isinstance(self.waiting_queue, _NoQueue):
            self.waiting_queue = asyncio.Queue()

    def _start_send_task(self) -> None:
        self._real_queue()
        task = self._run_out_filters
        if task is None or task.done():
            self._run_out_filters = asyncio.ensure_future(self.run_filters(), loop=self.loop)

    def _set_session_start(self, event: Any) -> None:
        if getattr(self, _QUEUED):
            self._start_send_task()
        super()._set_session_start(event)

    def send_raw_iq(self, kind: str, payload: str, timeout_s: float, *, to: str | None = None) -> asyncio.Future[Any]:
        """Send ``<iq type=kind>payload</iq>`` as text and wait for its answer without slixmpp's stanza
        objects, handler and scheduled event (our choice: the client's fixed IQs, roster get and ping,
        are the hot ones). The answer is matched by id and sender as slixmpp's ``MatchIDSender`` does.

        Args:
            kind: ``get`` or ``set``.
            payload: the child element, serialised.
            timeout_s: how long to wait for the answer.
            to: the ``to`` attribute (None: the server of the account).

        Returns:
            A future of the answer's ``<iq type='result'/>`` element; it fails with
            :class:`RawIqError` for an ``<iq type='error'/>`` and with ``TimeoutError`` after ``timeout_s``.
        """
        iq_id = self.new_id()
        future: asyncio.Future[Any] = self.loop.create_future()
        to_attr = "" if to is None else f" to={quoteattr(to)}"
        senders = {None, "", self.boundjid.domain, self.boundjid.bare, self.boundjid.full, to}
        handle = self.loop.call_later(timeout_s, self._raw_iq_expired, iq_id)
        self._raw_iqs[iq_id] = (future, handle, senders)
        self.send(f"<iq type='{kind}' id='{iq_id}'{to_attr}>{payload}</iq>")
        return future

    def _raw_iq_expired(self, iq_id: str) -> None:
        entry = self._raw_iqs.pop(iq_id, None)
        if entry is not None and not entry[0].done():
            entry[0].set_exception(TimeoutError(f"no answer to iq {iq_id}"))

    def _raw_iq_answered(self, xml: Any) -> bool:
        """Settle the raw IQ ``xml`` answers; False when it answers none (slixmpp's handlers then see it)."""
        entry = self._raw_iqs.get(xml.get("id", ""))
        if entry is None or xml.get("from") not in entry[2]:
            return False
        future, handle, _senders = self._raw_iqs.pop(xml.get("id", ""))
        handle.cancel()
        if not future.done():
            if xml.get("type") == "result":
                future.set_result(xml)
            else:
                error = xml.find(f"{{{NS_CLIENT}}}error")
                condition = next((child.tag.rsplit("}", 1)[-1] for child in error if child.tag.startswith(
                    f"{{{NS_STANZAS}}}") and not child.tag.endswith("}text")), "undefined-condition") \
                    if error is not None else "undefined-condition"
                future.set_exception(RawIqError(condition))
        return True

    def _spawn_event(self, xml: Any) -> None:
        """slixmpp's dispatch, with the hot stanzas of a client handled from the XML (our choice): answers
        to raw IQs always; once the session is up, presence of others and server pings too."""
        tag = xml.tag
        if tag == _IQ_CLIENT:
            kind = xml.get("type")
            if kind in ("result", "error"):
                if self._raw_iqs and self._raw_iq_answered(xml):
                    return
            elif kind == "get" and self._lean_parsing and xml.find(_PING) is not None:
                sender = xml.get("from")
                to_attr = "" if sender is None else f" to={quoteattr(sender)}"
                self.send(f"<iq type='result' id={quoteattr(xml.get('id', ''))}{to_attr}/>")
                return
        elif tag == _PRESENCE_CLIENT and self._lean_parsing:
            self._track_presence_xml(xml)
            return
        super()._spawn_event(xml)

    def shed_login(self) -> None:
        """Drop what only the login used, once the session is up (our choice): the feature plugins and
        their handlers, the login's event handlers (only ``disconnected`` stays), the credentials; and
        from now on the XML parser between stanzas (:meth:`data_received`)."""
        for name in _LOGIN_HANDLERS:
            self.remove_handler(name)
        self._drop_plugins()
        events = getattr(self, _EVENT_HANDLERS)
        for name in [n for n in events if n != "disconnected"]:
            del events[name]
        self.credentials = {}
        self.password = ""
        self._lean_parsing = True

    def data_received(self, data: bytes | str) -> None:
        """slixmpp's ``data_received``; once the session is up, with a parser made for the bytes and
        dropped again when they end between two stanzas (``xml_depth`` 1, last byte ``>``)."""
        if not self._lean_parsing:
            super().data_received(data)
            return
        if self.parser is None:
            self._remake_parser()
        super().data_received(data)
        tail = data.rstrip()[-1:]
        if self.xml_depth == 1 and self.transport is not None and tail in (b">", ">"):
            self.parser = None
            self.xml_root = None

    def _remake_parser(self) -> None:
        parser: Any = ET.XMLPullParser(("start", "end"))
        parser.feed(STREAM_PRIMER)
        for _event, root in parser.read_events():
            self.xml_root = root
        self.parser = parser
        self.xml_depth = 1

    def _drop_plugins(self) -> None:
        manager: Any = self.plugin
        for plugin in list(manager._plugins.values()):
            vars(plugin).clear()  # each holds the stream and bound methods of itself
        manager._plugins.clear()
        self._stream_feature_handlers.clear()
        self._stream_feature_order.clear()

    def release(self) -> None:
        """Break this stream's reference cycles once its connection is gone (idempotent).

        Clears slixmpp's handler, event-handler and filter tables, the feature plugins (each holds
        the stream and bound methods of itself), scheduled events, IQs still waiting (their futures
        are cancelled) and the credentials; stops the send task. The object cannot connect again.
        """
        getattr(self, _HANDLERS).clear()
        getattr(self, _EVENT_HANDLERS).clear()
        for chain in getattr(self, _FILTERS).values():
            chain.clear()
        for name in list(self.scheduled_events):
            self.cancel_schedule(name)
        for waiter in list(self._iq_waiters.values()):
            waiter.future.cancel()
        self._iq_waiters.clear()
        for future, handle, _senders in list(self._raw_iqs.values()):
            handle.cancel()
            future.cancel()
        self._raw_iqs.clear()
        self._drop_plugins()
        manager: Any = self.plugin
        manager.xmpp = None
        self.credentials = {}
        self.password = ""
        task = self._run_out_filters
        if task is not None and not task.done():
            task.cancel()
        self._run_out_filters = None
        self.cancel_connection_attempt()
        self.parser = None
        self.xml_root = None
        self._available.clear()

    # ---------------------------------------------------------------- presence (RFC 6121 §4) ---
    def _track_presence(self, pres: Any) -> None:
        """Available/unavailable presence of others, straight from the XML (RFC 6121 §4.2-§4.5);
        subscription requests and errors are ignored."""
        self._track_presence_xml(pres.xml)

    def _track_presence_xml(self, xml: Any) -> None:
        kind = xml.get("type")
        sender = xml.get("from")
        if not sender or kind not in (None, "unavailable"):
            return
        bare, _, resource = sender.partition("/")
        bare = bare.lower()
        if kind is None:
            self._available.setdefault(bare, {})[resource] = {}
        else:
            resources = self._available.get(bare)
            if resources is not None:
                resources.pop(resource, None)
                if not resources:
                    del self._available[bare]

    def available_resources(self, bare_jid: str) -> set[str]:
        """Resources of ``bare_jid`` last seen available on this connection."""
        return set(self._available.get(bare_jid.lower(), ()))

    @property
    def client_roster(self) -> RosterView:  # type: ignore[override]
        """slixmpp-shaped read-only view (``client_roster[jid].resources``) of the presence seen."""
        return RosterView(self._available)

    # ------------------------------------------------------------------ roster (RFC 6121 §2) ---
    def _answer_roster_push(self, iq: Any) -> None:
        """RFC 6121 §2.1.6: acknowledge a roster push from our own account (the roster itself is
        not kept); refuse one from anybody else (§2.1.6, as ``ClientXMPP`` does)."""
        sender = iq["from"]
        if sender and sender != JID("") and sender != self.boundjid.bare:
            reply = iq.reply()
            reply["type"] = "error"
            reply["error"]["type"] = "cancel"
            reply["error"]["code"] = 503
            reply["error"]["condition"] = "service-unavailable"
            reply.send()
            return
        reply = self.Iq(stype="result", sto=sender, sid=iq["id"])
        reply.enable("roster")
        reply.send()

    async def fetch_roster_jids(self, timeout_s: float) -> list[str]:
        """Roster get (RFC 6121 §2.1.3); returns the contacts' bare JIDs, in the server's order.

        Raises:
            RawIqError: the server answered with an error.
            TimeoutError: no answer within ``timeout_s``.
        """
        result = await self.send_raw_iq("get", f"<query xmlns='{NS_ROSTER}'/>", timeout_s)
        query = result.find(_ROSTER_QUERY)
        if query is None:
            return []
        jids = []
        for item in query.iter(_ROSTER_ITEM):
            text = item.get("jid")
            if text:
                try:
                    jids.append(str(JID(text)))
                except Exception:  # noqa: BLE001 - slixmpp raises InvalidJID; skip that item
                    continue
        return jids

    # ----------------------------------------------------------------------------- sending ---
    def send(self, data: StanzaBase | str, use_filters: bool = True) -> None:
        """Write ``data`` now when slixmpp's queue is empty and the stream accepts it; else queue.

        Before the session starts, slixmpp holds back stanzas other than bind/session IQs
        (``XMLStream.send``): those two go at once too; the held-back ones, and any stanza behind a
        non-empty queue, take slixmpp's path.
        """
        if (self.transport is not None and self.waiting_queue.empty()
                and (self._session_started or not isinstance(data, (RootStanza, str))
                     or (isinstance(data, Iq) and (data.get_plugin("bind", check=True)
                                                   or data.get_plugin("session", check=True))))):
            if isinstance(data, StanzaBase):
                self.send_raw(tostring(data.xml, xmlns=self.default_ns, stream=self, top_level=True))
            else:
                self.send_raw(data)
            return
        self._real_queue()
        super().send(data, use_filters)
        if not self.waiting_queue.empty():
            self._start_send_task()
