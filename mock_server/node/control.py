"""The control operations one node carries out for the supervisor (``pair.channel.ControlOp``):
status, HA on/off, failover, fallback, recover, services, partition, SRM parameters, metrics rows.

The admin's buttons become SRM events (``node.srm_driver``); an operation the SRM refuses in its
state, or one with wrong arguments, raises :class:`NodeControlError` with the message and HTTP
status the admin API shows.
"""

from __future__ import annotations

from typing import Any

from mock_server import srm
from mock_server.login.admission import LoginAdmission
from mock_server.node.peer_side import PeerAddress, PeerSide
from mock_server.node.sampler import MetricsSampler
from mock_server.node.srm_driver import Emit, SrmDriver
from mock_server.params import to_dict, update_from_dict
from mock_server.users import UserDirectory
from mock_server.xmpp.listener import XmppListener

__all__ = ["NodeControl", "NodeControlError"]


class NodeControlError(Exception):
    """A control operation was refused; ``str()`` is the message shown to the admin.

    Attributes:
        status: HTTP status for the admin API (409 refused in this state, 400 bad arguments,
            404 unknown service).
    """

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


class NodeControl:
    """The control surface of one node.

    Args:
        name: the node's name.
        users: the pair's users.
        srm: the node's SRM driver.
        peer: its peer side.
        listener: its XMPP listener.
        admission: its login admission.
        sampler: its metrics rows.
        emit: pushes an event to the supervisor.
    """

    def __init__(self, *, name: str, users: UserDirectory, srm: SrmDriver, peer: PeerSide, listener: XmppListener,
                 admission: LoginAdmission, sampler: MetricsSampler, emit: Emit) -> None:
        self.name = name
        self._users = users
        self._srm = srm
        self._peer = peer
        self._listener = listener
        self._admission = admission
        self._sampler = sampler
        self._emit = emit

    def run(self, op: str, args: dict[str, Any]) -> Any:
        """Carry out one control operation (see ``pair.channel.ControlOp``).

        Raises:
            NodeControlError: the SRM refuses it in this state, or the arguments are wrong.
        """
        try:
            return self._run(op, args)
        except srm.SrmTransitionError as exc:
            raise NodeControlError(
                f"{op} is not allowed on {self.name} while {exc.state.value} ({exc.reason.value})"
            ) from exc

    def status(self) -> dict[str, Any]:
        """What the admin page shows for this node."""
        machine = self._srm.machine
        assigned = len(self._users.users_on(self.name))
        state = machine.state
        actions = []
        if state is srm.NodeState.NORMAL:
            actions.append("failover")
        if state in (srm.NodeState.IDLE, srm.NodeState.FAILED_OVER):
            actions.append("fallback")
        if state is srm.NodeState.FAILED_MODE:
            actions.append("recover")
        stopped = self._srm.stopped
        services = {s.value: ("running" if up and not stopped else "stopped") for s, up in self._srm.services.items()}
        return {
            "name": self.name,
            "state": state.value,
            "reason": machine.reason.value,
            "ha_enabled": state is not srm.NodeState.UNKNOWN,
            "assigned_users": assigned,
            "active_users": self._listener.session_count,
            "services": services,
            "serving": self._srm.serving.value,
            "peer_state": machine.peer_state.value if machine.peer_state else None,
            "tkhaserverstate": srm.TKHASERVERSTATE[state],
            "actions": actions,
            "login_queue_depth": self._admission.queue_depth,
            "login_model": self._login_model(),
            "partitioned": self._peer.link.partitioned,
        }

    def _login_model(self) -> dict[str, Any]:
        """The node's login admission settings (docs/login-model.md §1), for a client-side model."""
        s = self._admission.model.settings
        return {"rate_per_s": s.rate_per_s, "burst": s.burst, "workers": s.workers, "service_s": s.service_s,
                "queue_limit": s.queue_limit}

    def _run(self, op: str, args: dict[str, Any]) -> Any:
        if op == "status":
            return self.status()
        if op == "configure_peer":
            self._peer.connect(PeerAddress(**args))
            return None
        if op == "ha":
            self._srm.handle(srm.HaEnabled() if args.get("enabled") else srm.HaDisabled())
            return self.status()
        if op == "failover":
            self._srm.handle(srm.AdminFailover())
            return self.status()
        if op == "fallback":
            self._srm.handle(srm.AdminFallback())
            return self.status()
        if op == "recover":
            if self._srm.machine.state is not srm.NodeState.FAILED_MODE:
                return self.status()  # Recover is pressed for the pair; a node not failed ignores it
            self._srm.handle(srm.AdminRecover())
            return self.status()
        if op == "service":
            return self._service(str(args.get("service")), str(args.get("action")))
        if op == "partition":
            self._peer.link.set_partitioned(bool(args.get("on")))
            return {"partitioned": self._peer.link.partitioned}
        if op == "params_get":
            return to_dict({self.name: self._srm.machine.params})[self.name]
        if op == "params_put":
            try:
                updated = update_from_dict({self.name: self._srm.machine.params}, {self.name: args.get("params", {})})
            except (ValueError, TypeError) as exc:
                raise NodeControlError(str(exc), status=400) from exc
            self._srm.machine.params = updated[self.name]
            return to_dict(updated)[self.name]
        if op == "metrics":
            return self._sampler.rows(args.get("since"))
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
        services = self._srm.services
        was = services.get(service)
        services[service] = up
        if was is not up:
            self._emit({"kind": "service", "service": service.value, "to": "running" if up else "stopped", "by": "admin"})
            if service in self._srm.machine.critical_services or service in srm.ALWAYS_CRITICAL:
                self._srm.handle(srm.ServiceUp(service=service) if up else srm.ServiceDown(service=service))
        return self.status()
