"""The CPA side of an emulated client: SOAP calls in, core events and measurements out.

:class:`CpaAdapter` is the SOAP counterpart of :class:`~jabberemu.xmpp.client.XmppSession`: the driver
asks it for a sign-in, a one-time password or a logout and gets back the client machine's event
(``SoapLoginOk``, ``OtpOk``, or the failure the call's translation named: ``SoapFailed``,
``HttpFailed``, ``ConnectionLost``, ``OperationTimeout``). Each call is timed here and its
measurement handed to the runtime's one road (``report``); its deadline is the transport's
(``Timeouts.soap_s``, enforced once, by aiohttp). What ``get-all-config`` says about the nodes is
completed here, once, from the configured pair (the CPA may name a node without its CPA URL or XMPP
address), and the re-login limits are read under the configured property names
(:meth:`~jabberemu.config.ReloginLimits.from_server`).

One adapter serves every client of a process (no per-client state): the client's user id comes
with each call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from jabberemu.config import ClientSettings, NodeAddress, ReloginLimits, ServerPair
from jabberemu.core import events as ev
from jabberemu.core import metrics as mx
from jabberemu.errors import ConfigError, JabberEmuError
from jabberemu.soap.cpa import CpaClient, translate

__all__ = ["CpaAdapter", "Report"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

Report = Callable[[str, mx.Measurement], None]
"""``report(client_id, measurement)``: the runtime's one road for a measurement."""
Warn = Callable[..., None]


class _Failed(Exception):
    def __init__(self, event: ev.Event) -> None:
        super().__init__(repr(event))
        self.event = event


class CpaAdapter:
    """Sign-ins, one-time passwords and logouts of every client of a process, as core events.

    Args:
        cpa: the process's CPA client.
        pair: the configured pair (completes the nodes ``get-all-config`` names).
        report: the runtime's measurement road.
        warn_once: ``warn_once(key, message, *args)`` of the runtime.
        monotonic: clock for durations.
    """

    def __init__(self, cpa: CpaClient, pair: ServerPair, report: Report, warn_once: Warn,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.cpa = cpa
        self.pair = pair
        self._report = report
        self._warn_once = warn_once
        self._mono = monotonic

    async def _timed(self, user_id: str, metric: mx.Metric, node: NodeAddress, call: Awaitable[T]) -> T:
        """Await one CPA call, report its measurement; a failure raises :class:`_Failed` with its event."""
        t0 = self._mono()
        try:
            result = await call
        except Exception as exc:
            raise _Failed(self._failed(user_id, metric, node, t0, exc)) from None
        self._report(user_id, mx.Measurement.of(metric, (self._mono() - t0) * 1000.0, node=node.name))
        return result

    def _failed(self, user_id: str, metric: mx.Metric, node: NodeAddress, t0: float, exc: Exception) -> ev.Event:
        """Report a failed call; returns its event. (A function of its own: the caller's frame, which the
        exception's traceback holds, must not hold the exception in turn.)"""
        error = exc if isinstance(exc, JabberEmuError) and exc.event is not None else translate(exc, node.name,
                                                                                                metric.name)
        event: Any = error.event
        self._report(user_id, mx.Measurement.of(metric, (self._mono() - t0) * 1000.0, node=node.name,
                                                exception=error, cause=ev.classify(event).cls))
        return event  # type: ignore[no-any-return]

    async def sign_in(self, user_id: str, node: NodeAddress, settings: ClientSettings, *, password: str | None = None,
                      otp: str | None = None, primary: NodeAddress) -> ev.Event:
        """``login`` (with the password, or the session login with the cached ``otp``), then ``get-all-config``.

        Args:
            user_id: the client's user id (the SOAP user name).
            node: the node to sign in to (its ``cpa_url`` set).
            settings: the client's settings (limit property names, default limits).
            password, otp: exactly one of them.
            primary: the client's primary node, kept when the CPA names none.

        Returns:
            ``SoapLoginOk`` with the limits and the (completed) primary and secondary nodes, or the
            failure event of the call that failed.
        """
        assert node.cpa_url is not None and (password is None) != (otp is None)
        cpa, url = self.cpa, node.cpa_url
        try:
            if otp is None:
                assert password is not None
                key = await self._timed(user_id, mx.SOAP_LOGIN, node, cpa.login(node.name, url, user_id, password))
            else:
                key = await self._timed(user_id, mx.SOAP_SESSION_LOGIN, node,
                                        cpa.session_login(node.name, url, user_id, otp))
            config = await self._timed(user_id, mx.SOAP_GET_ALL_CONFIG, node, cpa.get_all_config(node.name, url, key))
        except _Failed as failed:
            return failed.event
        system = config.system
        limits, problems = ReloginLimits.from_server(system.get(settings.lower_limit_property),
                                                     system.get(settings.upper_limit_property),
                                                     default=settings.default_limits)
        first = self.node_from(system, "Presence.PrimaryServer") or primary
        second = self.node_from(system, "Presence.BackupServer")
        if second is None or second.name == first.name:
            second = self.pair.peer_of(first.name) if self.pair.find(first.name) else None
        return ev.SoapLoginOk(node=node.name, session_key=key, limits=limits, primary=first, secondary=second,
                              problems=tuple(problems))

    def node_from(self, system: Mapping[str, str], prefix: str) -> NodeAddress | None:
        """A node as ``get-all-config`` describes it (``<prefix>``, ``.CpaUrl``, ``.XmppHost``,
        ``.XmppPort``), completed from the configured pair; None when the CPA names none. A node
        described badly is warned about once and taken from the pair."""
        name = (system.get(prefix) or "").strip()
        if not name:
            return None
        known = self.pair.find(name)
        try:
            port_text = system.get(f"{prefix}.XmppPort")
            return NodeAddress(
                name=name,
                cpa_url=system.get(f"{prefix}.CpaUrl") or (known.cpa_url if known else None),
                xmpp_host=system.get(f"{prefix}.XmppHost") or (known.xmpp_host if known else ""),
                xmpp_port=int(port_text) if port_text else (known.xmpp_port if known else 5222),
            )
        except (ConfigError, ValueError):
            self._warn_once("config-node", "get-all-config describes node %r badly; using the configured address",
                            name)
            return known

    async def fetch_otp(self, user_id: str, node: NodeAddress, session_key: str) -> ev.Event:
        """``get-onetime-password``: ``OtpOk`` or the failure event."""
        assert node.cpa_url is not None
        try:
            otp = await self._timed(user_id, mx.SOAP_GET_ONETIME_PASSWORD, node,
                                    self.cpa.get_onetime_password(node.name, node.cpa_url, session_key))
        except _Failed as failed:
            return failed.event
        return ev.OtpOk(node=node.name, otp=otp)

    async def logout(self, user_id: str, node: NodeAddress, session_key: str) -> bool:
        """``logout``, best effort (the session expires on the server anyway).

        Returns:
            True when the node confirmed.
        """
        if node.cpa_url is None:
            return False
        try:
            await self._timed(user_id, mx.SOAP_LOGOUT, node, self.cpa.logout(node.name, node.cpa_url, session_key))
        except _Failed as failed:
            logger.debug("%s: logout on %s failed: %r", user_id, node.name, failed.event)
            return False
        return True
