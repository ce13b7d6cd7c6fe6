"""The node as its protocol layers see it: the two backends they ask, as adapters over the node.

``cpa.app`` asks a ``CpaBackend`` and ``xmpp.listener`` an ``XmppBackend`` who a user is, which node
serves them, whether services run, what to tell a client. :class:`CpaSide` and :class:`XmppSide`
answer from the node's state, which they read through :class:`NodeView` (``node.node.MockNode``
implements it), so this module imports nothing above it.
"""

from __future__ import annotations

from typing import Protocol

from mock_server.cpa.properties import NodeContact, system_config
from mock_server.datastore import LoginDatastore
from mock_server.login.admission import LoginAdmission
from mock_server.node.peer_side import PeerSide
from mock_server.node.srm_driver import SrmDriver
from mock_server.pair_config import PairConfig
from mock_server.users import UserDirectory
from mock_server.xmpp.backend import NodeRef, RosterItem, SessionInfo

__all__ = ["CpaSide", "NodeView", "XmppSide"]


class NodeView(Protocol):
    """What the adapters read of the node."""

    name: str
    peer_name: str
    config: PairConfig
    users: UserDirectory
    datastore: LoginDatastore
    admission: LoginAdmission
    srm: SrmDriver
    peer: PeerSide

    def serving_node_name(self, user: str) -> str | None:
        """The node serving ``user`` now, as far as this node knows, or None."""

    def my_ref(self) -> NodeRef:
        """This node's XMPP address."""

    def peer_ref(self) -> NodeRef | None:
        """The peer's XMPP address, once known."""

    def contact_of(self, name: str) -> NodeContact:
        """How a client reaches node ``name`` (this node or its peer, once known)."""


class CpaSide:
    """``cpa.app.CpaBackend`` over the node."""

    def __init__(self, node: NodeView) -> None:
        self._node = node

    @property
    def node_name(self) -> str:
        return self._node.name

    @property
    def domain(self) -> str:
        return self._node.config.domain

    @property
    def datastore(self) -> LoginDatastore:
        return self._node.datastore

    def check_password(self, user: str, password: str) -> bool:
        return self._node.users.check_password(user, password)

    def serving_node(self, user: str) -> str | None:
        return self._node.serving_node_name(user)

    def services_running(self) -> bool:
        return self._node.srm.services_running()

    async def admit_login(self) -> bool:
        return await self._node.admission.admit()

    def system_properties(self, user: str) -> dict[str, str]:
        node = self._node
        home = node.users.home_node(user) or node.name
        other = node.peer_name if home == node.name else node.name
        params = node.srm.machine.params
        backup = node.contact_of(other) if node.peer.address is not None else None
        return system_config(
            domain=node.config.domain,
            primary=node.contact_of(home) if (home == node.name or node.peer.address) else node.contact_of(node.name),
            backup=backup,
            lower_limit_s=params.relogin_lower_s,
            upper_limit_s=params.relogin_upper_s,
            lower_limit_property=node.config.lower_property,
            upper_limit_property=node.config.upper_property,
        )


class XmppSide:
    """``xmpp.backend.XmppBackend`` over the node."""

    def __init__(self, node: NodeView) -> None:
        self._node = node

    @property
    def domain(self) -> str:
        return self._node.config.domain

    @property
    def node_name(self) -> str:
        return self._node.name

    def hostname_hints(self) -> list[str]:
        return [self._node.name, self._node.peer_name]

    def check_password(self, user: str, password: str) -> bool:
        return self._node.users.check_password(user, password)

    def check_token(self, user: str, otp: str) -> bool:
        return self._node.datastore.check_otp(user, otp)

    def serving_node(self, user: str) -> NodeRef | None:
        name = self._node.serving_node_name(user)
        if name is None:
            return None
        return self._node.my_ref() if name == self._node.name else self._node.peer_ref()

    def roster(self, user: str) -> list[RosterItem]:
        node = self._node
        domain = node.config.domain
        out = []
        for contact in node.users.contacts_of(user):
            u = node.users.get(contact)
            out.append(RosterItem(jid=f"{contact}@{domain}", name=u.display_name if u else None))
        return out

    def session_started(self, session: SessionInfo) -> None:
        pass

    def session_ended(self, session: SessionInfo) -> None:
        pass

    def route(self, to_jid: str, stanza: bytes) -> bool:
        return self._node.peer.route(to_jid, stanza)

    def presence_of_contacts(self, user: str) -> list[bytes]:
        return self._node.peer.presence_of_contacts(user)

    def presence_changed(self, session: SessionInfo, stanza: bytes, available: bool) -> None:
        self._node.peer.publish_presence(session.full_jid, stanza, available)
