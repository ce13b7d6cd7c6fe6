"""One mock IM&P node: CPA SOAP, XMPP c2s, the SRM and the peer link, on one asyncio loop.

``MockNode`` carries out what the pure parts decide: the SRM machine's commands (timers, peer
frames, stopping services, which users to serve, which streams to close), the Login Datastore's
replication deltas, and the routing of stanzas to users served by the peer node. It implements the
backends the protocol layers ask for (``cpa_app.CpaBackend``, ``xmpp_backend.XmppBackend``) as two
small adapter objects over the node's state.

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
import re
import socket
import struct
import time
from collections import deque
from typing import Any, cast

from aiohttp import web

from mock_server import srm
from mock_server.cpa.app import make_cpa_app, make_cpa_runner
from mock_server.cpa.metrics import CpaMetrics
from mock_server.cpa.properties import NodeContact, system_config
from mock_server.datastore import Delta, LoginDatastore
from mock_server.login.admission import LoginAdmission
from mock_server.pair_config import NodePorts, PairConfig
from mock_server.params import SrmParameters, apply_params, to_dict, update_from_dict
from mock_server.peer_link import PeerLink
from mock_server.users import AssignmentMode, UserDirectory, load_csv, provision
from mock_server.xmpp.backend import NodeRef, RosterItem, SessionInfo
from mock_server.xmpp.events import StreamCondition
from mock_server.xmpp.listener import XmppListener
from mock_server.xmpp.settings import ListenerSettings

__all__ = ["MockNode", "PeerAddress", "NodeControlError"]

logger = logging.getLogger(__name__)

_FROM_RE = re.compile(rb"""\sfrom=(['"])([^'"]+)\1""")
_UNAVAILABLE_RE = re.compile(rb"""\stype=(['"])unavailable\1""")

_SERVES_OWN = (srm.ServeSet.OWN, srm.ServeSet.OWN_AND_PEER)
_PEER_SERVES_MY_USERS = frozenset({srm.NodeState.BACKUP, srm.NodeState.TAKING_OVER})
_PEER_LEFT_ITS_USERS = frozenset(
    {srm.NodeState.IDLE, srm.NodeState.FAILED_OVER, srm.NodeState.FAILED_OVER_CRITICAL_DOWN, srm.NodeState.FAILING_OVER}
)


METRICS_INTERVAL_S = 1.0
"""Seconds between two ``/api/metrics`` rows of a node."""

_PEER_GONE = frozenset({srm.Reason.PEER_DOWN, srm.Reason.PEER_REBOOT, srm.Reason.PEER_DOWN_DURING_INITIALIZATION})


def xml_attr(text: str) -> str:
    """``text`` escaped for a single-quoted XML attribute."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace("'", "&apos;")


def _reset_when_killed(sockets: Any) -> None:
    """``SO_LINGER`` 0 on listening sockets; accepted sockets inherit it (Linux), so when the node
    process is killed the kernel resets its client connections instead of closing them cleanly:
    a killed node "just vanishes (TCP reset, no stream error)" (issue 3). Graceful closes are not
    affected: the listener half-closes (``shutdown(SHUT_WR)``) and waits for the client first."""
    for sock in sockets or ():
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


class NodeControlError(Exception):
    """A control operation was refused; ``str()`` is the message shown to the admin.

    Attributes:
        status: HTTP status for the admin API (409 refused in this state, 400 bad arguments,
            404 unknown service).
    """

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


class PeerAddress:
    """The peer node's addresses, learnt from the supervisor (``configure_peer``)."""

    def __init__(self, *, name: str, host: str, peer_port: int, xmpp_port: int, cpa_port: int) -> None:
        self.name = name
        self.host = host
        self.peer_port = peer_port
        self.xmpp_port = xmpp_port
        self.cpa_port = cpa_port


class MockNode:
    """One IM&P node of the mock pair.

    Args:
        config: the pair's settings (both nodes get the same).
        index: 0 or 1, this node's position in ``config.node_names``.
        emit: called with every event dict to push to the supervisor (transitions, services).
    """

    def __init__(self, config: PairConfig, index: int, emit: Any = None) -> None:
        self.config = config
        self.index = index
        self.name = config.node_names[index]
        self.peer_name = config.node_names[1 - index]
        self._emit = emit or (lambda event: None)
        self.users = self._load_users()
        self.params: dict[str, SrmParameters] = apply_params(config.params, config.node_names)
        self.datastore = LoginDatastore(
            node=self.name, otp_lifetime_s=config.otp_lifetime_s, on_delta=self._on_local_delta
        )
        self.srm = srm.SrmMachine(node=self.name, params=self.params[self.name], ha_enabled=config.ha_enabled)
        self.serving = srm.ServeSet.NONE
        self.services: dict[srm.MonitoredService, bool] = dict.fromkeys(srm.ALWAYS_CRITICAL, True)
        self._srm_stopped = False
        self.admission = LoginAdmission(config.login_cost[index].settings())
        self.cpa_metrics = CpaMetrics()
        self.peer = PeerLink(self._on_peer_frame)
        self.peer_addr: PeerAddress | None = None
        self.listener = XmppListener(
            _XmppSide(self),
            ListenerSettings(ping_interval_s=config.server_ping_interval_s),
            ssl_context=self._ssl_context() if config.starttls else None,
        )
        self.ports = NodePorts()
        self._remote_presence: dict[str, dict[str, bytes]] = {}  # bare JID -> full JID -> stanza
        self._timers: dict[srm.Timer, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._runner: web.AppRunner | None = None
        self._metrics: deque[dict[str, Any]] = deque(maxlen=3600)
        self._last_counters: dict[str, int] = {}

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
        app = make_cpa_app(_CpaSide(self), metrics=self.cpa_metrics)
        self._runner = make_cpa_runner(app)  # handler cancellation: a client that gives up abandons its login
        await self._runner.setup()
        site = web.TCPSite(self._runner, bind, want.cpa, reuse_address=True)
        await site.start()
        server = cast(asyncio.Server, site._server)
        cpa_port = int(server.sockets[0].getsockname()[1])
        xmpp_port = await self.listener.start(bind, want.xmpp)
        # accepted c2s sockets inherit SO_LINGER 0 from the listening socket
        _reset_when_killed(self.listener.sockets)
        peer_port = await self.peer.listen(bind, want.peer)
        self.ports = NodePorts(cpa=cpa_port, xmpp=xmpp_port, peer=peer_port)
        self._run(self.srm.start())
        self._spawn(self._heartbeats())
        self._spawn(self._sample_metrics())
        self._spawn(self._housekeeping())
        self._handle(srm.InitializationDone())
        return self.ports

    async def stop(self) -> None:
        """Close every listener and connection and cancel the node's tasks."""
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.listener.stop()
        await self.peer.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.admission.close()

    def configure_peer(self, peer: PeerAddress) -> None:
        """Learn the peer's addresses and start dialling its peer port."""
        self.peer_addr = peer
        self.peer.connect_to(peer.host, peer.peer_port)
        for delta in self.datastore.snapshot():
            self._send_delta(delta)

    # -- who serves whom -----------------------------------------------------------------------

    def my_ref(self) -> NodeRef:
        return NodeRef(name=self.name, xmpp_host=self.config.bind, xmpp_port=self.ports.xmpp or 1)

    def peer_ref(self) -> NodeRef | None:
        if self.peer_addr is None:
            return None
        return NodeRef(name=self.peer_name, xmpp_host=self.peer_addr.host, xmpp_port=self.peer_addr.xmpp_port)

    def is_own(self, user: str) -> bool:
        return self.users.home_node(user) == self.name

    def serving_node_name(self, user: str) -> str | None:
        """The node serving ``user`` now, as far as this node knows, or None."""
        home = self.users.home_node(user)
        if home is None:
            return None
        peer_state = self.srm.peer_state
        if home == self.name:
            if self.serving in _SERVES_OWN:
                return self.name
            return self.peer_name if peer_state in _PEER_SERVES_MY_USERS else None
        if self.serving is srm.ServeSet.OWN_AND_PEER:
            return self.name
        if peer_state is not None and peer_state not in _PEER_LEFT_ITS_USERS and self.peer.connected:
            return self.peer_name
        return None

    def services_running(self) -> bool:
        return not self._srm_stopped and all(self.services.get(s, True) for s in srm.ALWAYS_CRITICAL)

    # -- SRM glue --------------------------------------------------------------------------------

    def _handle(self, event: srm.Event) -> None:
        self._run(self.srm.handle(event))

    def _run(self, commands: list[srm.Command]) -> None:
        loop = asyncio.get_running_loop()
        for cmd in commands:
            if isinstance(cmd, srm.SendToPeer):
                self.peer.send({"t": "srm", "msg": cmd.message.to_dict()}, keep_while_away=False)
            elif isinstance(cmd, srm.StartTimer):
                old = self._timers.pop(cmd.timer, None)
                if old is not None:
                    old.cancel()
                self._timers[cmd.timer] = loop.call_later(cmd.delay_s, self._timer_due, cmd.timer)
            elif isinstance(cmd, srm.CancelTimer):
                running = self._timers.pop(cmd.timer, None)
                if running is not None:
                    running.cancel()
            elif isinstance(cmd, srm.StopCriticalServices):
                self._srm_stopped = True
                self._emit({"kind": "service", "service": "critical", "to": "stopped", "by": "srm"})
            elif isinstance(cmd, srm.StartCriticalServices):
                self._srm_stopped = False
                self._emit({"kind": "service", "service": "critical", "to": "running", "by": "srm"})
            elif isinstance(cmd, srm.ServeUsers):
                self.serving = cmd.users
            elif isinstance(cmd, srm.DisconnectUsers):
                own = cmd.group is srm.UserGroup.OWN

                def in_group(user: str | None, own: bool = own) -> bool:
                    return user is not None and self.is_own(user) == own

                n = self.listener.shutdown_sessions(in_group, StreamCondition(cmd.stream_error))
                self._emit({"kind": "disconnect", "group": cmd.group.value, "condition": cmd.stream_error, "count": n})
            elif isinstance(cmd, srm.BeginUserMove):
                # Sessions and OTPs are already replicated: the move itself is immediate here.
                loop.call_soon(self._handle, srm.UsersMoved(move=cmd.move, ok=True))
            elif isinstance(cmd, srm.RecordTransition):
                if cmd.to_state is srm.NodeState.BACKUP and cmd.reason in _PEER_GONE:
                    self._forget_peer_presence()
                self._emit(
                    {
                        "kind": "transition",
                        "from": cmd.from_state.value,
                        "to": cmd.to_state.value,
                        "reason": cmd.reason.value,
                    }
                )

    def _timer_due(self, timer: srm.Timer) -> None:
        """A timer expired. The heartbeat timeout is checked once more on the next loop pass: a loop
        that stalled (busy node, busy machine) runs due timers in the same pass as the socket reads
        that carry the peer's late heartbeats, but the peer link's reader task only sees those
        bytes on the next pass; the heartbeat re-arms the timer there and the check is void."""
        handle = self._timers.get(timer)
        if timer is srm.Timer.HEARTBEAT_TIMEOUT and handle is not None:
            asyncio.get_running_loop().call_soon(self._timer_still_due, timer, handle)
        else:
            self._timer_fired(timer)

    def _timer_still_due(self, timer: srm.Timer, handle: asyncio.TimerHandle) -> None:
        if self._timers.get(timer) is handle:  # not re-armed meanwhile
            self._timer_fired(timer)

    def _timer_fired(self, timer: srm.Timer) -> None:
        self._timers.pop(timer, None)
        self._handle(srm.TimerFired(timer=timer))

    async def _heartbeats(self) -> None:
        while True:
            self.peer.send({"t": "srm", "msg": self.srm.heartbeat().to_dict()}, keep_while_away=False)
            await asyncio.sleep(self.srm.params.heartbeat_interval_s)

    # -- peer link -------------------------------------------------------------------------------

    def _on_peer_frame(self, frame: dict[str, Any]) -> None:
        kind = frame.get("t")
        if kind == "srm":
            self._handle(srm.PeerMessageReceived(message=srm.PeerMessage.from_dict(frame["msg"])))
        elif kind == "ds":
            if self.config.replicate_otp:
                self.datastore.apply(Delta.from_dict(frame["delta"]))
        elif kind == "stanza":
            xml = str(frame["xml"]).encode()
            to = str(frame["to"])
            if xml.startswith(b"<presence"):
                self._note_remote_presence(xml)
                self.listener.sessions.deliver_available(to.split("/")[0], xml)
            else:
                self.listener.sessions.deliver(to, xml)

    def _note_remote_presence(self, xml: bytes) -> None:
        """Cache the last available presence of each resource served by the peer (RFC 6121
        §4.2.3: a user logging in here gets its contacts' current presence)."""
        m = _FROM_RE.search(xml)
        if m is None:
            return
        full = m.group(2).decode()
        bare = full.split("/", 1)[0].lower()
        head = xml.split(b">", 1)[0]
        if _UNAVAILABLE_RE.search(head):
            resources = self._remote_presence.get(bare, {})
            resources.pop(full, None)
            if not resources:
                self._remote_presence.pop(bare, None)
        elif b"type=" not in head:
            self._remote_presence.setdefault(bare, {})[full] = xml

    def _forget_peer_presence(self) -> None:
        """The peer is gone (Peer Down or Peer Reboot): its users' sessions went with it, so each
        cached presence becomes unavailable for the local contacts (RFC 6121 §4.5.2 on the
        server's behalf) and is dropped."""
        cached, self._remote_presence = self._remote_presence, {}
        domain = self.config.domain
        for bare, resources in cached.items():
            user = bare.split("@", 1)[0]
            for full in resources:
                gone = f"<presence type='unavailable' from='{xml_attr(full)}'/>".encode()
                for contact in self.users.contacts_of(user):
                    self.listener.sessions.deliver_available(f"{contact}@{domain}", gone)

    def _on_local_delta(self, delta: Delta) -> None:
        self._send_delta(delta)

    def _send_delta(self, delta: Delta) -> None:
        if self.config.replicate_otp:
            self.peer.send({"t": "ds", "delta": delta.to_dict()})

    def route_to_peer(self, to_jid: str, stanza: bytes) -> bool:
        user = to_jid.split("@", 1)[0]
        if self.serving_node_name(user) != self.peer_name or not self.peer.connected:
            return False
        self.peer.send({"t": "stanza", "to": to_jid, "xml": stanza.decode()})
        return True

    # -- control (from the supervisor) -------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """What the admin page shows for this node."""
        assigned = len(self.users.users_on(self.name))
        state = self.srm.state
        actions = []
        if state is srm.NodeState.NORMAL:
            actions.append("failover")
        if state in (srm.NodeState.IDLE, srm.NodeState.FAILED_OVER):
            actions.append("fallback")
        if state is srm.NodeState.FAILED_MODE:
            actions.append("recover")
        services = {s.value: ("running" if up and not self._srm_stopped else "stopped") for s, up in self.services.items()}
        return {
            "name": self.name,
            "state": state.value,
            "reason": self.srm.reason.value,
            "ha_enabled": state is not srm.NodeState.UNKNOWN,
            "assigned_users": assigned,
            "active_users": self.listener.session_count,
            "services": services,
            "serving": self.serving.value,
            "peer_state": self.srm.peer_state.value if self.srm.peer_state else None,
            "tkhaserverstate": srm.TKHASERVERSTATE[state],
            "actions": actions,
            "login_queue_depth": self.admission.queue_depth,
            "login_model": self._login_model(),
            "partitioned": self.peer.partitioned,
        }

    def _login_model(self) -> dict[str, Any]:
        """The node's login admission settings (docs/login-model.md §1), for a client-side model."""
        s = self.admission.model.settings
        return {"rate_per_s": s.rate_per_s, "burst": s.burst, "workers": s.workers, "service_s": s.service_s,
                "queue_limit": s.queue_limit}

    def control(self, op: str, args: dict[str, Any]) -> Any:
        """Carry out one control operation (see ``control.ControlOp``).

        Raises:
            NodeControlError: the SRM refuses it in this state, or the arguments are wrong.
        """
        try:
            return self._control(op, args)
        except srm.SrmTransitionError as exc:
            raise NodeControlError(
                f"{op} is not allowed on {self.name} while {exc.state.value} ({exc.reason.value})"
            ) from exc

    def _control(self, op: str, args: dict[str, Any]) -> Any:
        if op == "status":
            return self.status()
        if op == "configure_peer":
            self.configure_peer(PeerAddress(**args))
            return None
        if op == "ha":
            self._handle(srm.HaEnabled() if args.get("enabled") else srm.HaDisabled())
            return self.status()
        if op == "failover":
            self._handle(srm.AdminFailover())
            return self.status()
        if op == "fallback":
            self._handle(srm.AdminFallback())
            return self.status()
        if op == "recover":
            if self.srm.state is not srm.NodeState.FAILED_MODE:
                return self.status()  # Recover is pressed for the pair; a node not failed ignores it
            self._handle(srm.AdminRecover())
            return self.status()
        if op == "service":
            return self._service(str(args.get("service")), str(args.get("action")))
        if op == "partition":
            self.peer.set_partitioned(bool(args.get("on")))
            return {"partitioned": self.peer.partitioned}
        if op == "params_get":
            return to_dict({self.name: self.srm.params})[self.name]
        if op == "params_put":
            try:
                updated = update_from_dict({self.name: self.srm.params}, {self.name: args.get("params", {})})
            except (ValueError, TypeError) as exc:
                raise NodeControlError(str(exc), status=400) from exc
            self.srm.params = updated[self.name]
            return to_dict(updated)[self.name]
        if op == "metrics":
            since = args.get("since")
            if isinstance(since, (int, float)) and not isinstance(since, bool):
                return [row for row in self._metrics if row["ts"] > since]
            return list(self._metrics)
        raise NodeControlError(f"unknown control operation {op!r}", status=400)

    def _service(self, name: str, action: str) -> dict[str, Any]:
        try:
            service = srm.MonitoredService(name)
        except ValueError:
            known = ", ".join(s.value for s in srm.MonitoredService)
            raise NodeControlError(f"unknown service {name!r}; known: {known}", status=404) from None
        if action not in ("stop", "start"):
            raise NodeControlError("service action must be 'stop' or 'start'", status=400)
        up = action == "start"
        was = self.services.get(service)
        self.services[service] = up
        if was is not up:
            self._emit({"kind": "service", "service": service.value, "to": "running" if up else "stopped", "by": "admin"})
            if service in self.srm.critical_services or service in srm.ALWAYS_CRITICAL:
                self._handle(srm.ServiceUp(service=service) if up else srm.ServiceDown(service=service))
        return self.status()

    # -- background ------------------------------------------------------------------------------

    async def _sample_metrics(self) -> None:
        """Once a second: per-second counters for ``/api/metrics``."""
        while True:
            await asyncio.sleep(METRICS_INTERVAL_S)
            try:
                self._metrics.append(self.metrics_row())
            except Exception:  # a bad sample must not end the sampling
                logger.exception("metrics sample failed on %s", self.name)

    def metrics_row(self) -> dict[str, Any]:
        """Counts since the previous row (``xmpp_*``, ``cpa_*``), gauges (``active_sessions``,
        ``xmpp_*_active``), the SRM state, and the login admission's ``login_*`` keys of
        docs/login-model.md (counts and wait/latency percentiles since the previous row, gauges
        now; ``login.cost.LoginInterval``).
        """
        cur = {f"xmpp_{k}": v for k, v in self.listener.metrics.items()}
        cur.update({f"cpa_{c.value}": v for c, v in self.cpa_metrics.totals.items()})
        row: dict[str, Any] = {"ts": round(time.time(), 3), "node": self.name}
        for key, value in cur.items():
            row[key] = value if key.endswith("_active") else value - self._last_counters.get(key, 0)
        row.update(self.admission.take_interval().to_metrics())
        row["active_sessions"] = self.listener.session_count
        row["state"] = self.srm.state.value
        self._last_counters = cur
        return row

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(30.0)
            self.datastore.purge_expired()

    def _spawn(self, coro: Any) -> None:
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
        from mock_server.tls import server_context

        return server_context(self.name)

    def contact_of(self, name: str) -> NodeContact:
        if name == self.name:
            port, xport = self.ports.cpa, self.ports.xmpp
        else:
            assert self.peer_addr is not None
            port, xport = self.peer_addr.cpa_port, self.peer_addr.xmpp_port
        host = self.config.bind
        return NodeContact(
            name=name, xmpp_host=host, xmpp_port=xport, cpa_url=f"http://{host}:{port}/EPASSoap/service/v80"
        )


class _CpaSide:
    """``cpa_app.CpaBackend`` over a :class:`MockNode`."""

    def __init__(self, node: MockNode) -> None:
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
        return self._node.services_running()

    async def admit_login(self) -> bool:
        return await self._node.admission.admit()

    def system_properties(self, user: str) -> dict[str, str]:
        node = self._node
        home = node.users.home_node(user) or node.name
        other = node.peer_name if home == node.name else node.name
        params = node.srm.params
        backup = node.contact_of(other) if node.peer_addr is not None else None
        return system_config(
            domain=node.config.domain,
            primary=node.contact_of(home) if (home == node.name or node.peer_addr) else node.contact_of(node.name),
            backup=backup,
            lower_limit_s=params.relogin_lower_s,
            upper_limit_s=params.relogin_upper_s,
            lower_limit_property=node.config.lower_property,
            upper_limit_property=node.config.upper_property,
        )


class _XmppSide:
    """``xmpp_backend.XmppBackend`` over a :class:`MockNode`."""

    def __init__(self, node: MockNode) -> None:
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
        return self._node.route_to_peer(to_jid, stanza)

    def presence_of_contacts(self, user: str) -> list[bytes]:
        node = self._node
        domain = node.config.domain
        out: list[bytes] = []
        for contact in node.users.contacts_of(user):
            out.extend(node._remote_presence.get(f"{contact}@{domain}", {}).values())
        return out

