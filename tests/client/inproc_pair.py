"""An in-process two-node IM&P stand-in for the client tests: real sockets on 127.0.0.1.

Each node = the mock's CPA app (``make_cpa_app`` + ``StaticCpaBackend``, run by aiohttp's
``TestServer`` on port 0) and the mock's XMPP listener (``XmppListener``) with a ``LocalBackend``
that checks OTPs against the one Login Datastore both CPAs share (replication, simplified). A node
can be failed over (services stopped, streams closed with ``system-shutdown``), fallen back, or
killed (TCP resets).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp.test_utils import TestServer

from jabberemu.config import ClientSettings, NodeAddress, ServerPair, Timeouts
from jabberemu.runtime import Clock, Runtime, RunDataSink
from mock_server.cpa.app import StaticCpaBackend, make_cpa_app
from mock_server.cpa.properties import NodeContact
from mock_server.datastore import LoginDatastore
from mock_server.users import UserDirectory, provision
from mock_server.xmpp.backend import LocalBackend, NodeRef
from mock_server.xmpp.events import StreamCondition
from mock_server.xmpp.listener import XmppListener
from mock_server.xmpp.settings import ListenerSettings

__all__ = ["DOMAIN", "NODES", "InProcPair", "inproc_pair", "make_runtime", "fast_timeouts"]

DOMAIN = "example.test"
NODES = ("imp1.example.test", "imp2.example.test")


def fast_timeouts(**kw: float) -> Timeouts:
    base = dict(soap_s=3.0, connect_s=3.0, auth_s=3.0, bind_s=3.0, ping_interval_s=60.0, ping_timeout_s=5.0)
    base.update(kw)
    return Timeouts(**base)


@dataclass(kw_only=True)
class NodeBackend(LocalBackend):
    """LocalBackend whose OTPs and serving node come from the shared pair state."""

    env: Any = None

    def check_token(self, user: str, otp: str) -> bool:
        return bool(self.env.datastore.check_otp(user, otp))

    def serving_node(self, user: str) -> NodeRef | None:
        name = self.env.cpa[self.node_name].serving_node(user)
        if name is None:
            return None
        listener = self.env.listener_ports[name]
        return NodeRef(name=name, xmpp_host="127.0.0.1", xmpp_port=listener)

    def route(self, to_jid: str, stanza: bytes) -> bool:
        peer = next(n for n in NODES if n != self.node_name)
        return self.env.listeners[peer].sessions.deliver_available(to_jid.split("/")[0], stanza) > 0


@dataclass(kw_only=True)
class InProcPair:
    directory: UserDirectory
    datastore: LoginDatastore
    down: set[str] = field(default_factory=set)
    cpa: dict[str, StaticCpaBackend] = field(default_factory=dict)
    servers: dict[str, TestServer] = field(default_factory=dict)
    listeners: dict[str, XmppListener] = field(default_factory=dict)
    listener_ports: dict[str, int] = field(default_factory=dict)
    pair: ServerPair | None = None

    def user_ids(self, node: str | None = None) -> list[str]:
        return [u.user_id for u in self.directory if node is None or u.home_node == node]

    def password(self, user_id: str) -> str:
        user = self.directory.get(user_id)
        assert user is not None
        return user.password

    def home(self, user_id: str) -> str:
        home = self.directory.home_node(user_id)
        assert home is not None
        return home

    def fail_over(self, node: str) -> int:
        """Stop ``node``'s services: CPA answers services-stopped, its streams get system-shutdown."""
        self.down.add(node)
        self.cpa[node].running = False
        return self.listeners[node].shutdown_sessions(lambda _u: True, StreamCondition.SYSTEM_SHUTDOWN)

    def fall_back(self, node: str) -> int:
        """``node`` serves its users again; the peer closes their streams with system-shutdown."""
        self.down.discard(node)
        self.cpa[node].running = True
        peer = next(n for n in NODES if n != node)
        homed = set(self.user_ids(node))
        return self.listeners[peer].shutdown_sessions(lambda u: u in homed, StreamCondition.SYSTEM_SHUTDOWN)

    def kill(self, node: str) -> int:
        """TCP resets for every XMPP connection of ``node`` (a killed node)."""
        self.down.add(node)
        self.cpa[node].running = False
        return self.listeners[node].abort_all()


@contextlib.asynccontextmanager
async def inproc_pair(users: int = 10, *, lower_s: float = 0.05, upper_s: float = 0.3,
                      lower_property: str = "Presence.Relogin.LowerLimit",
                      upper_property: str = "Presence.Relogin.UpperLimit",
                      contacts: int = 2, listener: ListenerSettings | None = None,
                      server_ssl: Any = None) -> AsyncIterator[InProcPair]:
    directory = provision(users, list(NODES), seed=1, contacts=contacts)
    env = InProcPair(directory=directory, datastore=LoginDatastore(node="shared"))
    contacts_map: dict[str, NodeContact] = {
        n: NodeContact(name=n, xmpp_host="127.0.0.1", xmpp_port=1, cpa_url="http://127.0.0.1:1/") for n in NODES}
    try:
        for name in NODES:
            backend = StaticCpaBackend(
                node_name=name, domain=DOMAIN, directory=directory, contacts=contacts_map,
                datastore=env.datastore, lower_limit_s=lower_s, upper_limit_s=upper_s,
                lower_limit_property=lower_property, upper_limit_property=upper_property, down_nodes=env.down)
            env.cpa[name] = backend
            server = TestServer(make_cpa_app(backend), host="127.0.0.1", port=0)
            await server.start_server()
            env.servers[name] = server
            xb = NodeBackend(domain=DOMAIN, node_name=name, env=env,
                             passwords={u.user_id: u.password for u in directory},
                             contacts={u.user_id: directory.contacts_of(u.user_id) for u in directory},
                             peer_hostname=next(n for n in NODES if n != name))
            lst = XmppListener(xb, listener or ListenerSettings(), ssl_context=server_ssl)
            port = await lst.start("127.0.0.1", 0)
            xb.xmpp_port = port
            env.listeners[name] = lst
            env.listener_ports[name] = port
        nodes = []
        for name in NODES:
            url = f"http://127.0.0.1:{env.servers[name].port}/EPASSoap/service/v80"
            contacts_map[name] = NodeContact(name=name, xmpp_host="127.0.0.1",
                                             xmpp_port=env.listener_ports[name], cpa_url=url)
            nodes.append(NodeAddress(name=name, cpa_url=url, xmpp_host="127.0.0.1",
                                     xmpp_port=env.listener_ports[name]))
        env.pair = ServerPair(nodes=tuple(nodes), domain=DOMAIN)
        yield env
    finally:
        for lst in env.listeners.values():
            await lst.stop(timeout_s=0.5)
        for server in env.servers.values():
            await server.close()


async def make_runtime(env: InProcPair, settings: ClientSettings | None = None, *, run_seed: int = 7,
                       measurements: list[Any] | None = None, sink: RunDataSink | None = None,
                       clock: Clock | None = None) -> Runtime:
    settings = settings or ClientSettings(verify_tls=False, timeouts=fast_timeouts())
    assert env.pair is not None

    def measure(client: str, m: Any) -> None:
        if measurements is not None:
            measurements.append((client, m))

    return await Runtime.create(env.pair, settings, run_seed=run_seed, measure=measure, sink=sink, clock=clock)
