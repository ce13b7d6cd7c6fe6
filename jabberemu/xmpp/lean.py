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
  slixmpp's roster (no ``roster_update`` event).

Pinned to slixmpp 1.17 (pyproject.toml); tests/client/test_xmpp_lean.py checks the attributes
this class sets against a real ``ClientXMPP``.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from slixmpp import ClientXMPP, stanza
from slixmpp.jid import JID
from slixmpp.plugins import PluginManager
from slixmpp.stanza import Iq, Message, Presence, StreamError, StreamFeatures
from slixmpp.stanza.rootstanza import RootStanza
from slixmpp.xmlstream import XMLStream
from slixmpp.xmlstream.handler import Callback, CoroutineCallback
from slixmpp.xmlstream.matcher import MatchXPath, StanzaPath
from slixmpp.xmlstream.stanzabase import StanzaBase
from slixmpp.xmlstream.tostring import tostring

__all__ = ["LeanClientXMPP", "NS_ROSTER", "RosterView"]

NS_CLIENT = "jabber:client"
NS_STREAM = "http://etherx.jabber.org/streams"
NS_ROSTER = "jabber:iq:roster"
_ROSTER_QUERY = f"{{{NS_ROSTER}}}query"
_ROSTER_ITEM = f"{{{NS_ROSTER}}}item"


class _BindFlag:
    """Stands in for ``BaseXMPP.session_bind_event`` (an ``asyncio.Event`` nobody here awaits)."""

    __slots__ = ("_set",)

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def clear(self) -> None:
        self._set = False

    def is_set(self) -> bool:
        return self._set


class _NoApi:
    """Stands in for ``BaseXMPP.api`` (a per-client ``APIRegistry``): ``BasePlugin.__init__`` asks it
    for a wrapper, and none of the stream-feature plugins loaded here calls one."""

    __slots__ = ()

    def wrap(self, _name: str) -> _NoApi:
        return self


_NO_API = _NoApi()


class _Contact:
    """What :class:`RosterView` shows of one contact: its available resources."""

    __slots__ = ("resources",)

    def __init__(self, resources: dict[str, dict[str, Any]]) -> None:
        self.resources = resources


class RosterView:
    """Read-only, slixmpp-shaped view of the presence seen: ``view[jid].resources``."""

    __slots__ = ("_available",)

    def __init__(self, available: dict[str, dict[str, dict[str, Any]]]) -> None:
        self._available = available

    def __getitem__(self, jid: str) -> _Contact:
        return _Contact(dict(self._available.get(str(JID(jid).bare), {})))


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
        self.register_handler(Callback("Stream Error", MatchXPath(f"{{{NS_STREAM}}}error"),
                                       self._handle_stream_error))
        for root in (Message, Iq, Presence, StreamError, StreamFeatures):
            self.register_stanza(root)
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
        self.register_handler(CoroutineCallback("Stream Features", MatchXPath(f"{{{NS_STREAM}}}features"),
                                                self._handle_stream_features))  # type: ignore[arg-type]
        self.register_handler(Callback("Roster Update", StanzaPath("iq@type=set/roster"), self._answer_roster_push))
        self.register_handler(Callback("Presence", MatchXPath(f"{{{NS_CLIENT}}}presence"), self._track_presence))
        self._available: dict[str, dict[str, dict[str, Any]]] = {}
        if starttls:
            self.register_plugin("feature_starttls")
        self.register_plugin("feature_bind")
        self.register_plugin("feature_session")
        self.register_plugin("feature_mechanisms")
        if sasl_mech:
            self.plugin["feature_mechanisms"].use_mech = sasl_mech

    # ---------------------------------------------------------------- presence (RFC 6121 §4) ---
    def _track_presence(self, pres: Any) -> None:
        """Available/unavailable presence of others, straight from the XML (RFC 6121 §4.2-§4.5);
        subscription requests and errors are ignored."""
        xml = pres.xml
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
        reply.send()  # type: ignore[no-untyped-call]

    async def fetch_roster_jids(self, timeout_s: float) -> list[str]:
        """Roster get (RFC 6121 §2.1.3); returns the contacts' bare JIDs, in the server's order.

        Raises:
            IqError: the server answered with an error.
            IqTimeout: no answer within ``timeout_s``.
        """
        iq = self.Iq()
        iq["type"] = "get"
        iq.enable("roster")
        result = await iq.send(timeout=timeout_s)  # type: ignore[no-untyped-call]
        query = result.xml.find(_ROSTER_QUERY)
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
        (``XMLStream.send``); that path, and any stanza behind a non-empty queue, is slixmpp's.
        """
        if (self.transport is not None and self.waiting_queue.empty()
                and (self._session_started or not isinstance(data, (RootStanza, str)))):
            if isinstance(data, StanzaBase):
                self.send_raw(tostring(data.xml, xmlns=self.default_ns, stream=self, top_level=True))
            else:
                self.send_raw(data)
            return
        super().send(data, use_filters)
