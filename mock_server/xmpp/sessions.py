"""The table of bound c2s sessions of one listener: delivery and routing (RFC 6120 §10, RFC 6121).

A session is one bound resource: ``user@domain/resource``, held by one connection. The table
registers a session when its resource is bound (an older session with the same full JID gets
``conflict``, RFC 6120 §7.7.2.2) and drops it when the session ends, telling the user's contacts it
is unavailable (RFC 6121 §4.6). It delivers stanzas to local sessions by full or bare JID, broadcasts
presence to contacts here and to the user's other resources (and tells the backend once, for the
peer node), and routes a stanza to a local session or else to the node's backend (a user served by
the peer node).

Nothing here does I/O: a session is anything with :class:`Session`'s members (the connection,
``xmpp.connection.C2sConnection``, in the mock); writing to it is the session's business.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, Protocol, TypeVar

from mock_server.xmpp.backend import SessionInfo, XmppBackend
from mock_server.xmpp.events import PresenceBroadcast, Routed, StreamCondition
from mock_server.xmpp.jid import split_jid
from mock_server.xmpp.xml import attr_escape

__all__ = ["Session", "SessionTable"]


class Session(Protocol):
    """What the table needs of a session: its facts, its last presence, a way to write to it and a
    way to end it with a stream error."""

    info: SessionInfo | None
    presence: bytes | None  # last available presence, stamped; None: none sent or unavailable
    sent_initial: bool  # initial presence sent (the contacts' presence was written back once)

    def write(self, data: bytes) -> None:
        """Queue bytes to the client (dropped when the connection is closing)."""

    def kick(self, condition: StreamCondition, text: str | None = None) -> None:
        """Send a stream error, end the session and close the connection."""


S = TypeVar("S", bound=Session)


class SessionTable(Generic[S]):
    """The bound sessions of one listener, by full JID and by bare JID.

    Args:
        backend: the node (rosters, presence of contacts served elsewhere, routing to the peer,
            session start and end).
        counters: the listener's counters; the table keeps ``sessions_active`` and
            ``stanzas_routed``.
    """

    def __init__(self, backend: XmppBackend, counters: dict[str, int]) -> None:
        self.backend = backend
        self.counters = counters
        self._by_full: dict[str, S] = {}
        self._by_bare: dict[str, dict[str, S]] = {}

    def __len__(self) -> int:
        return len(self._by_full)

    def __iter__(self) -> Iterator[S]:
        """The sessions, in binding order (a snapshot: the table may change meanwhile)."""
        return iter(list(self._by_full.values()))

    def get(self, full_jid: str) -> S | None:
        """The session bound to ``full_jid`` (``user@domain/resource`` as bound), or None."""
        return self._by_full.get(full_jid)

    # -- binding ---------------------------------------------------------------------------------
    def bind(self, session: S) -> None:
        """Register a session whose resource was just bound (``session.info`` set); an older one with
        the same full JID gets ``conflict`` first (RFC 6120 §7.7.2.2 and §4.9.3.3)."""
        info = session.info
        assert info is not None
        old = self._by_full.get(info.full_jid)
        if old is not None:
            old.kick(StreamCondition.CONFLICT, "replaced by a new connection")
        self._by_full[info.full_jid] = session
        self._by_bare.setdefault(info.bare_jid, {})[info.resource] = session
        self.counters["sessions_active"] += 1
        self.backend.session_started(info)

    def unbind(self, session: S, info: SessionInfo) -> None:
        """The session ended (``info`` is what it was bound as): forget it, tell its contacts it is
        unavailable if it had sent available presence (RFC 6121 §4.6), and tell the backend."""
        if self._by_full.get(info.full_jid) is session:
            del self._by_full[info.full_jid]
            resources = self._by_bare.get(info.bare_jid, {})
            resources.pop(info.resource, None)
            if not resources:
                self._by_bare.pop(info.bare_jid, None)
        self.counters["sessions_active"] -= 1
        if session.presence is not None:
            session.presence = None
            gone = f"<presence type='unavailable' from='{attr_escape(info.full_jid)}'/>".encode()
            self.presence_to_contacts(info, gone, available=False)
        self.backend.session_ended(info)

    # -- delivery --------------------------------------------------------------------------------
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
            session = self._by_full.get(f"{bare}/{resource}")
            targets = [session] if session is not None else []
        else:
            sessions = list(self._by_bare.get(bare, {}).values())
            targets = [s for s in sessions if s.presence is not None] or sessions
        for session in targets:
            session.write(stanza)
        return len(targets)

    def deliver_available(self, bare_jid: str, stanza: bytes) -> int:
        """Write to the sessions of ``bare_jid`` that sent available presence (RFC 6121 §4.4.2)."""
        targets = [s for s in self._by_bare.get(bare_jid.lower(), {}).values() if s.presence is not None]
        for session in targets:
            session.write(stanza)
        return len(targets)

    def presence_to_contacts(self, info: SessionInfo, stanza: bytes, *, available: bool) -> None:
        """A session's broadcast presence (or its end): written to each roster contact available
        here, and told once to the backend, which keeps the peer node's view of this node's users
        (``XmppBackend.presence_changed``) whoever is connected there."""
        for item in self.backend.roster(info.user):
            self.deliver_available(item.jid, stanza)
        self.backend.presence_changed(info, stanza, available)

    def broadcast(self, session: S, event: PresenceBroadcast) -> None:
        """Presence without ``to`` from ``session``: RFC 6121 §4.2.2 (initial), §4.4.2 (update),
        §4.5.2 (unavailable); the user's other resources get it too. On initial presence the user
        gets its contacts' presence (§4.2.3), local ones and those the backend knows."""
        info = session.info
        assert info is not None
        user = info.user
        session.presence = event.stanza if event.available else None
        self.presence_to_contacts(info, event.stanza, available=event.available)
        for other in self._by_bare.get(info.bare_jid, {}).values():
            if other is not session and other.presence is not None:
                other.write(event.stanza)
        if event.available and not session.sent_initial:
            session.sent_initial = True
            for item in self.backend.roster(user):
                for contact in self._by_bare.get(item.jid, {}).values():
                    if contact.presence is not None:
                        session.write(contact.presence)
            for stanza in self.backend.presence_of_contacts(user):
                session.write(stanza)

    def route(self, event: Routed) -> bool:
        """A stanza for another entity (RFC 6120 §10.5 for the local domain, RFC 6121 §8.5): a local
        session, else the backend (the peer node).

        Returns:
            True when someone took it; False: the sender's stream answers with a bounce.
        """
        self.counters["stanzas_routed"] += 1
        local, domain, resource = split_jid(event.to_jid)
        to_account = domain == self.backend.domain and bool(local)
        if to_account and not (event.kind.value == "iq" and not resource):
            if self.deliver(event.to_jid, event.stanza) or self.backend.route(event.to_jid, event.stanza):
                return True
        return False
