"""One mock IM&P node: CPA SOAP, XMPP c2s, the SRM and the peer link, on one asyncio loop.

``MockNode`` puts the node's parts together and starts and stops them: the CPA app (``cpa.app``,
served through ``node.backends.CpaSide``), the XMPP listener (``xmpp.listener``, through
``node.backends.XmppSide``), the SRM (``node.srm_driver``), the peer side (``node.peer_side``), the
login admission (``login.admission``), the metrics rows (``node.sampler``) and the control surface
the supervisor speaks to (``node.control``). It keeps what they all ask: who serves a user now, and
where each node is reached.

Who serves a user (our reading of the IM&P HA guide 12.5(1), "Configure Redundancy and High
Availability"): a user is homed on one node; the node serves its own users while its SRM says
``ServeUsers(OWN...)``, and the peer's users while it says ``OWN_AND_PEER`` (Running in Backup Mode,
Taking Over). A client that reaches a node which does not serve it gets ``see-other-host`` (XMPP) or
``not-served-here`` (CPA) naming the node that does, or ``system-shutdown``/``services-stopped``
when none does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Coroutine, Iterable
from typing import Any, cast

from aiohttp import web

from mock_server import srm
from mock_server.cpa.app import make_cpa_app, make_cpa_runner
from mock_server.cpa.metrics import CpaMetrics
from mock_server.cpa.properties import NodeContact
from mock_server.datastore import Delta, LoginDatastore
from mock_server.login.admission import LoginAdmission
from mock_server.node.backends import CpaSide, XmppSide
from mock_server.node.control import NodeControl
from mock_server.node.peer_side import PeerSide
from mock_server.node.sampler import MetricsSampler
from mock_server.node.srm_driver import Emit, SrmDriver
from mock_server.pair_config import NodePorts, PairConfig
from mock_server.params import SrmParameters, apply_params
from mock_server.users import AssignmentMode, UserDirectory, load_csv, provision
from mock_server.xmpp.backend import NodeRef
from mock_server.xmpp.events import StreamCondition
from mock_server.xmpp.listener import XmppListener
from mock_server.xmpp.settings import ListenerSettings

__all__ = ["MockNode"]

logger = logging.getLogger(__name__)

_SERVES_OWN = (srm.ServeSet.OWN, srm.ServeSet.OWN_AND_PEER)
_PEER_SERVES_MY_USERS = frozenset({srm.NodeState.BACKUP, srm.NodeState.TAKING_OVER})
_PEER_LEFT_ITS_USERS = frozenset(
    {srm.NodeState.IDLE, srm.NodeState.FAILED_OVER, srm.NodeState.FAILED_OVER_CRITICAL_DOWN, srm.NodeState.FAILING_OVER}
)


def _reset_when_killed(sockets: Iterable[socket.socket]) -> None:
    """``SO_LINGER`` 0 on listening sockets; accepted sockets inherit it (Linux), so when the node
    process is killed the kernel resets its client connections instead of closing them cleanly:
    a killed node "just vanishes (TCP reset, no stream error)" (issue 3). Graceful closes are not
    affected: the listener half-closes (``shutdown(SHUT_WR)``) and waits for the client first."""
    for sock in sockets or ():
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


class MockNode:
    """One IM&P node of the mock pair.

    Args:
        config: the pair's settings (both nodes get the same).
        index: 0 or 1, this node's position in ``config.node_names``.
        emit: called with every event dict to push to the supervisor (transitions, services).
    """

    def __init__(self, config: PairConfig, index: int, emit: Emit | None = None) -> None:
        self.config = config
        self.index = index
        self.name = config.node_names[index]
        self.peer_name = config.node_names[1 - index]
        self._emit: Emit = emit or (lambda event: None)
        self.users = self._load_users()
        self.params: dict[str, SrmParameters] = apply_params(config.params, config.node_names)
        self.datastore = LoginDatastore(
            node=self.name, otp_lifetime_s=config.otp_lifetime_s, on_delta=self._on_local_delta
        )
        self.admission = LoginAdmission(config.login_cost[index].settings())
        self.cpa_metrics = CpaMetrics()
        self.listener = XmppListener(
            XmppSide(self),
            ListenerSettings(ping_interval_s=config.server_ping_interval_s),
            ssl_context=self._ssl_context() if config.starttls else None,
        )
        self.peer = PeerSide(config=config, users=self.users, datastore=self.datastore,
                             sessions=self.listener.sessions, on_srm=self._on_srm_frame,
                             serving_node_name=self.serving_node_name, peer_name=self.peer_name)
        self.srm = SrmDriver(
            srm.SrmMachine(node=self.name, params=self.params[self.name], ha_enabled=config.ha_enabled),
            send=self.peer.send_srm, emit=self._emit, disconnect=self._disconnect, peer_gone=self.peer.forget_presence,
        )
        self.sampler = MetricsSampler(name=self.name, listener=self.listener, cpa_metrics=self.cpa_metrics,
                                      admission=self.admission, machine=self.srm.machine)
        self.control = NodeControl(name=self.name, users=self.users, srm=self.srm, peer=self.peer,
                                   listener=self.listener, admission=self.admission, sampler=self.sampler,
                                   emit=self._emit)
        self.ports = NodePorts()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._runner: web.AppRunner | None = None

    # -- start and stop ----------------------------------------------------------------------

    async def start(self) -> NodePorts:
        """Bind the CPA, XMPP and peer listeners (ports from the config; 0 = free) and start the SRM.

        Returns:
            The bound ports.

        Raises:
            OSError: a port could not be bound.
        """
        want = self.config.ports[self.index]
        bind = self.config.bind
        app = make_cpa_app(CpaSide(self), metrics=self.cpa_metrics)
        self._runner = make_cpa_runner(app)  # handler cancellation: a client that gives up abandons its login
        await self._runner.setup()
        site = web.TCPSite(self._runner, bind, want.cpa, reuse_address=True)
        await site.start()
        server = cast(asyncio.Server, site._server)
        cpa_port = int(server.sockets[0].getsockname()[1])
        xmpp_port = await self.listener.start(bind, want.xmpp)
        # accepted c2s sockets inherit SO_LINGER 0 from the listening socket
        _reset_when_killed(self.listener.sockets)
        peer_port = await self.peer.link.listen(bind, want.peer)
        self.ports = NodePorts(cpa=cpa_port, xmpp=xmpp_port, peer=peer_port)
        self.srm.start()
        self._spawn(self.srm.heartbeats())
        self._spawn(self.sampler.run())
        self._spawn(self._housekeeping())
        self.srm.handle(srm.InitializationDone())
        return self.ports

    async def stop(self) -> None:
        """Close every listener and connection and cancel the node's tasks."""
        self.srm.stop()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.listener.stop()
        await self.peer.link.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.admission.close()

    # -- who serves whom -----------------------------------------------------------------------

    def my_ref(self) -> NodeRef:
        return NodeRef(name=self.name, xmpp_host=self.config.bind, xmpp_port=self.ports.xmpp or 1)

    def peer_ref(self) -> NodeRef | None:
        peer = self.peer.address
        if peer is None:
            return None
        return NodeRef(name=self.peer_name, xmpp_host=peer.host, xmpp_port=peer.xmpp_port)

    def is_own(self, user: str) -> bool:
        return self.users.home_node(user) == self.name

    def serving_node_name(self, user: str) -> str | None:
        """The node serving ``user`` now, as far as this node knows, or None."""
        home = self.users.home_node(user)
        if home is None:
            return None
        peer_state = self.srm.machine.peer_state
        if home == self.name:
            if self.srm.serving in _SERVES_OWN:
                return self.name
            return self.peer_name if peer_state in _PEER_SERVES_MY_USERS else None
        if self.srm.serving is srm.ServeSet.OWN_AND_PEER:
            return self.name
        if peer_state is not None and peer_state not in _PEER_LEFT_ITS_USERS and self.peer.link.connected:
            return self.peer_name
        return None

    def contact_of(self, name: str) -> NodeContact:
        """How a client reaches node ``name``: this node, or its peer once ``configure_peer`` told us."""
        if name == self.name:
            port, xport = self.ports.cpa, self.ports.xmpp
        else:
            assert self.peer.address is not None
            port, xport = self.peer.address.cpa_port, self.peer.address.xmpp_port
        host = self.config.bind
        return NodeContact(
            name=name, xmpp_host=host, xmpp_port=xport, cpa_url=f"http://{host}:{port}/EPASSoap/service/v80"
        )

    # -- glue between the parts ----------------------------------------------------------------

    def _on_srm_frame(self, message: srm.PeerMessage) -> None:
        self.srm.heard(message)

    def _on_local_delta(self, delta: Delta) -> None:
        self.peer.send_delta(delta)

    def _disconnect(self, group: srm.UserGroup, condition: str) -> int:
        """Close the XMPP streams of this node's own users, or of the peer's users it served."""
        own = group is srm.UserGroup.OWN

        def in_group(user: str | None) -> bool:
            return user is not None and self.is_own(user) == own

        return self.listener.shutdown_sessions(in_group, StreamCondition(condition))

    # -- background ------------------------------------------------------------------------------

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(30.0)
            self.datastore.purge_expired()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- helpers -----------------------------------------------------------------------------------

    def _load_users(self) -> UserDirectory:
        mode = AssignmentMode(self.config.assignment)
        if self.config.users_csv:
            return load_csv(
                self.config.users_csv, self.config.node_names, seed=self.config.seed, mode=mode,
                contacts=self.config.contacts,
            )
        return provision(
            self.config.users,
            self.config.node_names,
            seed=self.config.seed,
            password_pattern=self.config.password_pattern,
            mode=mode,
            contacts=self.config.contacts,
        )

    def _ssl_context(self) -> Any:
        from mock_server.node.tls import server_context

        host = self.config.bind if self.config.bind else "127.0.0.1"
        return server_context([self.name, self.config.domain, host])
