"""What one node exchanges with its peer node over the peer link (``node.peer_link``).

Frames out and in, each a JSON object with a ``"t"`` kind: ``srm`` (the SRM machines' frames, for
``node.srm_driver``), ``ds`` (Login Datastore deltas, so that either node accepts an OTP the other
issued, when replication is on), ``stanza`` (a stanza for a user the peer serves), ``presence`` and
``presence-all`` (the broadcast presence of the sessions each node holds).

Presence across the pair is exact (our model of the shared presence state of a Presence Redundancy
Group): every change of a local session's broadcast presence goes to the peer as one ``presence``
frame, whoever is connected there, and each time the link comes up or a partition heals each node
sends ``presence-all``, every available session it holds. The receiver delivers what changed to its
local contacts and keeps the peer's sessions per resource, so a user signing in here gets its
contacts' current presence (RFC 6121 §4.2.3) even after this node served nobody for a while (failed
over); when the peer goes away with its users, the contacts here hear them go unavailable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mock_server import srm
from mock_server.datastore import Delta, LoginDatastore
from mock_server.node.peer_link import PeerLink
from mock_server.pair_config import PairConfig
from mock_server.users import UserDirectory
from mock_server.xmpp.sessions import SessionTable

__all__ = ["PeerAddress", "PeerSide"]



def _xml_attr(text: str) -> str:
    """``text`` escaped for a single-quoted XML attribute."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace("'", "&apos;")


class PeerAddress:
    """The peer node's addresses, learnt from the supervisor (``configure_peer``)."""

    def __init__(self, *, name: str, host: str, peer_port: int, xmpp_port: int, cpa_port: int) -> None:
        self.name = name
        self.host = host
        self.peer_port = peer_port
        self.xmpp_port = xmpp_port
        self.cpa_port = cpa_port


class PeerSide:
    """The peer link of one node and what travels on it.

    Args:
        config: the pair's settings (domain, whether the Login Datastore is replicated).
        users: the pair's users (roster contacts).
        datastore: this node's Login Datastore.
        sessions: the node's XMPP sessions, for stanzas the peer routes here.
        on_srm: called with each SRM frame from the peer.
        serving_node_name: the node serving a user now, as this node knows it (None: none).
        peer_name: the peer node's name.
    """

    def __init__(self, *, config: PairConfig, users: UserDirectory, datastore: LoginDatastore,
                 sessions: SessionTable[Any], on_srm: Callable[[srm.PeerMessage], None],
                 serving_node_name: Callable[[str], str | None], peer_name: str) -> None:
        self.config = config
        self.users = users
        self.datastore = datastore
        self.sessions = sessions
        self.peer_name = peer_name
        self._on_srm = on_srm
        self._serving_node_name = serving_node_name
        self.link = PeerLink(self._on_frame, on_up=self._send_all_presence)
        self.address: PeerAddress | None = None
        self._remote_presence: dict[str, dict[str, bytes]] = {}  # bare JID -> full JID -> stanza

    def connect(self, peer: PeerAddress) -> None:
        """Learn the peer's addresses, start dialling its peer port and queue the whole Login
        Datastore for it."""
        self.address = peer
        self.link.connect_to(peer.host, peer.peer_port)
        for delta in self.datastore.snapshot():
            self.send_delta(delta)

    # -- out -------------------------------------------------------------------------------------
    def send_srm(self, message: srm.PeerMessage) -> None:
        """An SRM frame (dropped, not queued, while the peer is away)."""
        self.link.send({"t": "srm", "msg": message.to_dict()}, keep_while_away=False)

    def send_delta(self, delta: Delta) -> None:
        """A Login Datastore change, when replication is on."""
        if self.config.replicate_otp:
            self.link.send({"t": "ds", "delta": delta.to_dict()})

    def route(self, to_jid: str, stanza: bytes) -> bool:
        """Send a stanza for a user the peer serves now; False when the peer does not serve that
        user or the link is down."""
        user = to_jid.split("@", 1)[0]
        if self._serving_node_name(user) != self.peer_name or not self.link.connected:
            return False
        self.link.send({"t": "stanza", "to": to_jid, "xml": stanza.decode()})
        return True

    def publish_presence(self, full_jid: str, stanza: bytes, available: bool) -> None:
        """A local session's broadcast presence changed (or it ended): tell the peer now (dropped
        while the link is down: ``presence-all`` resends the truth when it is back)."""
        self.link.send({"t": "presence", "jid": full_jid, "xml": stanza.decode(), "available": available},
                       keep_while_away=False)

    def _send_all_presence(self) -> None:
        items = {s.info.full_jid: s.presence.decode() for s in self.sessions
                 if s.info is not None and s.presence is not None}
        self.link.send({"t": "presence-all", "items": items}, keep_while_away=False)

    # -- the peer's users' presence --------------------------------------------------------------
    def presence_of_contacts(self, user: str) -> list[bytes]:
        """The last available presence of each resource of ``user``'s contacts that the peer serves."""
        domain = self.config.domain
        out: list[bytes] = []
        for contact in self.users.contacts_of(user):
            out.extend(self._remote_presence.get(f"{contact}@{domain}", {}).values())
        return out

    def forget_presence(self) -> None:
        """The peer is gone (Peer Down or Peer Reboot): its users' sessions went with it, so each
        cached presence becomes unavailable for the local contacts (RFC 6121 §4.5.2 on the
        server's behalf) and is dropped."""
        cached, self._remote_presence = self._remote_presence, {}
        for resources in cached.values():
            for full in resources:
                self._to_contacts(full, _unavailable(full))

    def _to_contacts(self, full_jid: str, stanza: bytes) -> None:
        """Write a peer user's presence to its roster contacts available here."""
        domain = self.config.domain
        for contact in self.users.contacts_of(full_jid.split("@", 1)[0]):
            self.sessions.deliver_available(f"{contact}@{domain}", stanza)

    def _on_presence(self, full_jid: str, xml: bytes, available: bool) -> None:
        bare = full_jid.split("/", 1)[0].lower()
        if available:
            self._remote_presence.setdefault(bare, {})[full_jid] = xml
        else:
            resources = self._remote_presence.get(bare, {})
            resources.pop(full_jid, None)
            if not resources:
                self._remote_presence.pop(bare, None)
        self._to_contacts(full_jid, xml)

    def _on_all_presence(self, items: dict[str, bytes]) -> None:
        """The peer's whole view: what this node missed is delivered as a change."""
        old = {full: xml for resources in self._remote_presence.values() for full, xml in resources.items()}
        self._remote_presence = {}
        for full, xml in items.items():
            self._remote_presence.setdefault(full.split("/", 1)[0].lower(), {})[full] = xml
            if old.get(full) != xml:
                self._to_contacts(full, xml)
        for full in old.keys() - items.keys():
            self._to_contacts(full, _unavailable(full))

    # -- in --------------------------------------------------------------------------------------
    def _on_frame(self, frame: dict[str, Any]) -> None:
        kind = frame.get("t")
        if kind == "srm":
            self._on_srm(srm.PeerMessage.from_dict(frame["msg"]))
        elif kind == "ds":
            if self.config.replicate_otp:
                self.datastore.apply(Delta.from_dict(frame["delta"]))
        elif kind == "stanza":
            xml = str(frame["xml"]).encode()
            to = str(frame["to"])
            if xml.startswith(b"<presence"):  # directed presence
                self.sessions.deliver_available(to.split("/")[0], xml)
            else:
                self.sessions.deliver(to, xml)
        elif kind == "presence":
            self._on_presence(str(frame["jid"]), str(frame["xml"]).encode(), bool(frame["available"]))
        elif kind == "presence-all":
            items = frame["items"]
            if isinstance(items, dict):
                self._on_all_presence({str(k): str(v).encode() for k, v in items.items()})


def _unavailable(full_jid: str) -> bytes:
    """The unavailable presence the server writes on a session's behalf (RFC 6121 §4.5.2)."""
    return f"<presence type='unavailable' from='{_xml_attr(full_jid)}'/>".encode()
