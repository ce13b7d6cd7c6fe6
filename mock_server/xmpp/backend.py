"""What the XMPP c2s listener asks of the node it runs in.

The listener (``xmpp.listener.XmppListener``) knows streams and sessions on its own socket only.
Everything else -- who may log in, which node serves a user, rosters, stanzas for users connected
elsewhere -- it asks of an ``XmppBackend``. The node process (``mock_server.node.backends``) implements it
with the Login Datastore, the SRM and the peer link; ``LocalBackend`` here is the in-process,
single-node implementation used by the listener's tests and usable by the node as its local part.

Nothing in this module does I/O.
"""

from __future__ import annotations

import hmac
import logging
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable

__all__ = [
    "LocalBackend",
    "NodeRef",
    "RosterItem",
    "SessionInfo",
    "Subscription",
    "XmppBackend",
]

logger = logging.getLogger(__name__)


class Subscription(StrEnum):
    """Roster item subscription states (RFC 6121 §2.1.2.5)."""

    NONE = "none"
    TO = "to"
    FROM = "from"
    BOTH = "both"


@dataclass(frozen=True, kw_only=True)
class NodeRef:
    """Where a user is served: an IM&P node and its XMPP c2s address.

    Args:
        name: node name, e.g. ``imp1.example.test``.
        xmpp_host: host or IP literal of its c2s listener.
        xmpp_port: TCP port of its c2s listener (1..65535).

    Raises:
        ValueError: empty name or host, port out of range.
    """

    name: str
    xmpp_host: str
    xmpp_port: int

    def __post_init__(self) -> None:
        if not self.name or not self.xmpp_host:
            raise ValueError("NodeRef needs a name and an xmpp_host")
        if not 0 < self.xmpp_port < 65536:
            raise ValueError(f"xmpp_port out of range: {self.xmpp_port}")

    @property
    def see_other_host_text(self) -> str:
        """Text of a ``<see-other-host/>`` stream error: ``host:port``, IPv6 in brackets
        (RFC 6120 §4.9.3.19)."""
        host = f"[{self.xmpp_host}]" if ":" in self.xmpp_host else self.xmpp_host
        return f"{host}:{self.xmpp_port}"


@dataclass(frozen=True, kw_only=True)
class RosterItem:
    """One roster entry (RFC 6121 §2.1.2).

    Args:
        jid: bare JID of the contact.
        name: display name, or None.
        subscription: subscription state; ``BOTH`` for the mock's provisioned contacts.
        groups: roster groups.

    Raises:
        ValueError: a JID that is empty or carries a resource.
    """

    jid: str
    name: str | None = None
    subscription: Subscription = Subscription.BOTH
    groups: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.jid or "/" in self.jid or "@" not in self.jid:
            raise ValueError(f"roster item needs a bare user JID, not {self.jid!r}")


@dataclass(frozen=True, kw_only=True)
class SessionInfo:
    """A bound c2s session, as the listener reports it to the backend.

    Args:
        user: local part (user id) of the JID.
        domain: presence domain.
        resource: bound resource (RFC 6120 §7).
        node_name: the node whose listener holds the session.
        peer: remote ``host:port`` of the TCP connection.
        secured: True when the stream runs over TLS.
    """

    user: str
    domain: str
    resource: str
    node_name: str
    peer: str = ""
    secured: bool = False

    def __post_init__(self) -> None:
        if not self.user or not self.domain or not self.resource:
            raise ValueError("SessionInfo needs user, domain and resource")

    @property
    def bare_jid(self) -> str:
        """``user@domain``."""
        return f"{self.user}@{self.domain}"

    @property
    def full_jid(self) -> str:
        """``user@domain/resource``."""
        return f"{self.user}@{self.domain}/{self.resource}"


@runtime_checkable
class XmppBackend(Protocol):
    """The node as seen by its XMPP listener. All methods are called on the listener's loop and
    must not block.

    Order on a login (our choice, matching what a real node must know when): ``check_password``/
    ``check_token`` (SASL ``not-authorized``), ``serving_node`` (None: stream error ``system-shutdown``; another node:
    ``see-other-host``), then ``session_started`` once the resource is bound.
    """

    @property
    def domain(self) -> str:
        """Presence domain, e.g. ``example.test``."""
        ...

    @property
    def node_name(self) -> str:
        """Name of this node, e.g. ``imp1.example.test``."""
        ...

    def hostname_hints(self) -> list[str]:
        """Host names for the ``urn:xmpp:domain-based-name:0`` hints in ``<mechanisms>``: this
        node first, then its peer (before SASL the user is unknown)."""
        ...

    def check_password(self, user: str, password: str) -> bool:
        """True when ``password`` is the user's password (SASL PLAIN, RFC 4616)."""
        ...

    def check_token(self, user: str, otp: str) -> bool:
        """True when ``otp`` is a one-time password the Login Datastore issued to ``user``
        (SASL CISCO-VTG-TOKEN)."""
        ...

    def serving_node(self, user: str) -> NodeRef | None:
        """The node that serves ``user`` now, or None when no node does."""
        ...

    def roster(self, user: str) -> list[RosterItem]:
        """The user's roster (RFC 6121 §2.1.3); also the targets of presence broadcast."""
        ...

    def session_started(self, session: SessionInfo) -> None:
        """A resource was bound on this node."""
        ...

    def session_ended(self, session: SessionInfo) -> None:
        """A bound session ended (closed, errored or reset)."""
        ...

    def route(self, to_jid: str, stanza: bytes) -> bool:
        """Deliver a stanza (``from`` already stamped) to a JID with no session on this node.

        Returns:
            True when it was handed on (e.g. to the peer node), False when nobody can take it.
        """
        ...

    def presence_of_contacts(self, user: str) -> list[bytes]:
        """Current available presence stanzas of the user's contacts served elsewhere, sent to
        the user after its initial presence (RFC 6121 §4.2.3, the server's presence probes)."""
        ...

    def presence_changed(self, session: SessionInfo, stanza: bytes, available: bool) -> None:
        """A local session broadcast presence (``available``) or went unavailable (its stanza, or
        the one the server wrote when the session ended): the contacts served elsewhere must hear
        it, and the peer node must know it even when none of them is connected there now."""
        ...


def _check_secret(expected: str | None, given: str) -> bool:
    if expected is None:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


@dataclass(kw_only=True)
class LocalBackend:
    """A single node serving every known user itself, with no peer.

    Args:
        domain: presence domain.
        node_name: this node's name.
        passwords: user id -> password.
        tokens: user id -> one-time passwords valid for that user (not consumed on use: the same
            OTP is good on the backup node, DOMAIN.md "Login Datastore").
        contacts: user id -> contact user ids (symmetric contacts are the caller's business).
        display_names: user id -> display name shown in rosters.
        peer_hostname: host name announced second in the hostname hints, or None.
        elsewhere: user id -> node serving that user instead of this one (see-other-host).
        nobody_serves: users no node serves now (stream error system-shutdown).
        xmpp_host / xmpp_port: this node's own c2s address, for its ``NodeRef``.
    """

    domain: str
    node_name: str
    passwords: Mapping[str, str] = field(default_factory=dict)
    tokens: dict[str, set[str]] = field(default_factory=dict)
    contacts: Mapping[str, Sequence[str]] = field(default_factory=dict)
    display_names: Mapping[str, str] = field(default_factory=dict)
    peer_hostname: str | None = None
    elsewhere: dict[str, NodeRef] = field(default_factory=dict)
    nobody_serves: set[str] = field(default_factory=set)
    xmpp_host: str = "127.0.0.1"
    xmpp_port: int = 5222
    sessions: dict[str, SessionInfo] = field(default_factory=dict)
    routed: deque[tuple[str, bytes]] = field(default_factory=lambda: deque(maxlen=1000))
    published: deque[tuple[str, bytes, bool]] = field(default_factory=lambda: deque(maxlen=1000))

    def hostname_hints(self) -> list[str]:
        """This node, then the peer if any."""
        return [self.node_name] + ([self.peer_hostname] if self.peer_hostname else [])

    def check_password(self, user: str, password: str) -> bool:
        """Constant-time compare against ``passwords``."""
        return _check_secret(self.passwords.get(user), password)

    def check_token(self, user: str, otp: str) -> bool:
        """True when ``otp`` is one of the user's tokens (an OTP of another user is refused)."""
        return any(_check_secret(known, otp) for known in self.tokens.get(user, ()))

    def issue_token(self, user: str, otp: str) -> None:
        """Record an OTP for ``user`` (what CPA ``get-onetime-password`` does on a real node)."""
        self.tokens.setdefault(user, set()).add(otp)

    def serving_node(self, user: str) -> NodeRef | None:
        """``elsewhere[user]``, None for ``nobody_serves``, else this node."""
        if user in self.nobody_serves:
            return None
        if user in self.elsewhere:
            return self.elsewhere[user]
        return NodeRef(name=self.node_name, xmpp_host=self.xmpp_host, xmpp_port=self.xmpp_port)

    def roster(self, user: str) -> list[RosterItem]:
        """Contacts of ``user`` with their display names, subscription ``both``."""
        return [
            RosterItem(jid=f"{c}@{self.domain}", name=self.display_names.get(c))
            for c in self.contacts.get(user, ())
        ]

    def session_started(self, session: SessionInfo) -> None:
        """Remember the session by full JID."""
        self.sessions[session.full_jid] = session

    def session_ended(self, session: SessionInfo) -> None:
        """Forget the session."""
        self.sessions.pop(session.full_jid, None)

    def route(self, to_jid: str, stanza: bytes) -> bool:
        """No peer: record the stanza (last 1,000 kept in ``routed``) and report it undeliverable."""
        self.routed.append((to_jid, stanza))
        logger.debug("no route to %s", to_jid)
        return False

    def presence_of_contacts(self, user: str) -> list[bytes]:
        """No contacts are served elsewhere."""
        return []

    def presence_changed(self, session: SessionInfo, stanza: bytes, available: bool) -> None:
        """No peer: record it (last 1,000 kept in ``published``)."""
        self.published.append((session.full_jid, stanza, available))

    @classmethod
    def with_users(
        cls, *, domain: str, node_name: str, users: Iterable[str], password_pattern: str = "pass-{user}",
        contacts_each: int = 0,
    ) -> LocalBackend:
        """Build a backend for ``users`` with passwords from a pattern and a ring of contacts.

        Args:
            domain: presence domain.
            node_name: this node's name.
            users: user ids.
            password_pattern: ``str.format`` pattern with ``{user}``.
            contacts_each: each user gets the next ``contacts_each`` users (wrapping) and the
                previous ones, so contacts are symmetric.
        """
        ids = list(users)
        contacts: dict[str, list[str]] = {u: [] for u in ids}
        n = len(ids)
        for i, u in enumerate(ids):
            for k in range(1, min(contacts_each, n - 1) + 1):
                for other in (ids[(i + k) % n], ids[(i - k) % n]):
                    if other not in contacts[u]:
                        contacts[u].append(other)
        return cls(
            domain=domain, node_name=node_name,
            passwords={u: password_pattern.format(user=u) for u in ids}, contacts=contacts,
        )
