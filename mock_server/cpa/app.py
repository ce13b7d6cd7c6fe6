"""aiohttp routes of one mock node's CPA SOAP endpoint and its WSDL.

``POST /EPASSoap/service/{v80,v105,latest}`` speaks SOAP 1.2 (codec: ``cpa.request``,
``cpa.response``); ``GET`` of the same path with ``?wsdl`` serves the WSDL (``cpa/wsdl/``) with the
endpoint address rewritten to the request's host, and ``GET /EPASSoap/service/epas.xsd`` the schema
it imports (Cisco IM and Presence Developer Cookbook 10.5, "EPAS SOAP": the CPA at
``https://<node>:8443/EPASSoap/service/v80``).

What the node decides (who a user is, which node serves them, whether services run, login admission,
the system properties) comes from a :class:`CpaBackend` the node implements;
:class:`StaticCpaBackend` is a fixed one for tests.

A ``login`` carries the password (a sign-in) or the one-time password (the session re-login after a
failover or a fallback). Both go the same way (docs/login-model.md §1): services stopped ->
``services-stopped`` at once, before admission; then the node's login admission (``server-busy``
when refused; the handler waits while the login is queued and in service); then the credentials
(``bad-credentials``, or ``bad-onetime-password`` when the replicated Login Datastore does not know
the OTP); then ``not-served-here``; then a new session key. Passwords and OTPs are never logged.
Serve the app with :func:`make_cpa_runner`: a client that gives up closes its connection, and the
handler must then be cancelled for its login to leave the queue.

HTTP-level answers: wrong media type -> 415, body over the cap -> 413, a GET without ``?wsdl`` -> 400,
all as plain text; everything that reached the SOAP layer is answered with a SOAP 1.2 fault
(Sender -> 400, Receiver/VersionMismatch -> 500).
"""

from __future__ import annotations

import html
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from aiohttp import hdrs, web

from mock_server.cpa.metrics import CpaCounter, CpaMetrics
from mock_server.cpa.properties import (
    DEFAULT_LOWER_LIMIT_PROPERTY, DEFAULT_UPPER_LIMIT_PROPERTY, NodeContact, system_config, user_config,
)
from mock_server.cpa.request import (
    MAX_BODY_BYTES, CpaRequest, FaultCode, Operation, RequestTooLargeError, SoapFault, parse_content_type,
    parse_request,
)
from mock_server.cpa.response import (
    build_fault, build_get_all_config_response, build_login_response, build_logout_response,
    build_onetime_password_response,
)
from mock_server.datastore import LoginDatastore
from mock_server.login.admission import LoginAdmission
from mock_server.users import UserDirectory

__all__ = [
    "CPA_PATHS",
    "XSD_PATH",
    "WSDL_DIR",
    "WSDL_TEMPLATE_ADDRESS",
    "CPA_BACKEND",
    "CPA_METRICS",
    "CpaBackend",
    "StaticCpaBackend",
    "make_cpa_app",
    "make_cpa_runner",
]

logger = logging.getLogger(__name__)

CPA_PATHS = tuple(f"/EPASSoap/service/{version}" for version in ("v80", "v105", "latest"))
XSD_PATH = "/EPASSoap/service/epas.xsd"
WSDL_DIR = Path(__file__).resolve().parent / "wsdl"
#: The endpoint address written in epas.wsdl; replaced by the request's URL when served.
WSDL_TEMPLATE_ADDRESS = "http://localhost:8080/EPASSoap/service/v80"
_SOAP_CONTENT_TYPE = "application/soap+xml"
_CHUNK_BYTES = 64 * 1024


class CpaBackend(Protocol):
    """What the CPA endpoint asks the node. Implemented by ``MockNode``; see :class:`StaticCpaBackend`."""

    @property
    def node_name(self) -> str:
        """This node's name, e.g. ``imp1.example.test``."""

    @property
    def domain(self) -> str:
        """The presence domain."""

    @property
    def datastore(self) -> LoginDatastore:
        """This node's (replicated) Login Datastore."""

    def check_password(self, user: str, password: str) -> bool:
        """True when the user exists and the password matches."""

    def serving_node(self, user: str) -> str | None:
        """Name of the node currently serving ``user`` (home, or its peer after failover); None if unknown."""

    def services_running(self) -> bool:
        """False while this node's critical services are stopped (failed over, failed mode)."""

    async def admit_login(self) -> bool:
        """Login admission: may wait in the node's queue and service; False means busy (fault
        ``server-busy``). Cancelled when the client goes away (the login is then abandoned)."""

    def system_properties(self, user: str) -> dict[str, str]:
        """``get-all-config`` system properties for ``user`` (see :func:`cpa.properties.system_config`)."""


CPA_BACKEND = web.AppKey("cpa_backend", CpaBackend)
CPA_METRICS = web.AppKey("cpa_metrics", CpaMetrics)
_MAX_BODY = web.AppKey("cpa_max_body_bytes", int)
_WSDL_TEXT = web.AppKey("cpa_wsdl_text", str)
_XSD_BYTES = web.AppKey("cpa_xsd_bytes", bytes)


def _soap_response(payload: bytes, status: int = 200) -> web.Response:
    return web.Response(body=payload, status=status, content_type=_SOAP_CONTENT_TYPE, charset="utf-8")


async def _read_capped(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise RequestTooLargeError(request.content_length, limit)
    data = bytearray()
    async for chunk in request.content.iter_chunked(_CHUNK_BYTES):
        data += chunk
        if len(data) > limit:
            raise RequestTooLargeError(len(data), limit)
    return bytes(data)


def _session_user(backend: CpaBackend, req: CpaRequest) -> str:
    if req.session_key is None:
        raise SoapFault(FaultCode.UNKNOWN_SESSION, f"{req.operation.value} needs an epas:session-key header")
    user = backend.datastore.user_for_session(req.session_key)
    if user is None:
        raise SoapFault(FaultCode.UNKNOWN_SESSION, "unknown or expired session key")
    return user


def _check_served(backend: CpaBackend, user: str) -> None:
    serving = backend.serving_node(user)
    if serving != backend.node_name:
        where = f"served by {serving}" if serving else "not served by any node"
        raise SoapFault(FaultCode.NOT_SERVED_HERE, f"user {user} is {where}, not by {backend.node_name}")


_LOGIN_FAULT_COUNTERS = {
    FaultCode.SERVER_BUSY: CpaCounter.LOGIN_BUSY,
    FaultCode.BAD_ONETIME_PASSWORD: CpaCounter.SESSION_LOGIN_REFUSED,
}


async def _login(backend: CpaBackend, metrics: CpaMetrics, req: CpaRequest) -> bytes:
    user = req.username or ""
    try:
        if not await backend.admit_login():
            raise SoapFault(FaultCode.SERVER_BUSY, f"{backend.node_name} is over its login capacity; retry later")
        if req.onetime_password is not None:
            if not backend.datastore.check_otp(user, req.onetime_password):
                raise SoapFault(FaultCode.BAD_ONETIME_PASSWORD, "unknown or expired one-time password")
        elif not backend.check_password(user, req.password or ""):
            raise SoapFault(FaultCode.BAD_CREDENTIALS, "invalid user name or password")
        _check_served(backend, user)
    except SoapFault as fault:
        metrics.count(_LOGIN_FAULT_COUNTERS.get(fault.code, CpaCounter.LOGIN_FAILED))
        raise
    key = backend.datastore.issue_session_key(user)
    metrics.count(CpaCounter.SESSION_LOGIN_OK if req.session_login else CpaCounter.LOGIN_OK)
    logger.debug("CPA %s ok: %s on %s", "session login" if req.session_login else "login", user, backend.node_name)
    return build_login_response(key)


async def _dispatch(backend: CpaBackend, metrics: CpaMetrics, req: CpaRequest) -> bytes:
    if not backend.services_running():
        if req.operation is Operation.LOGIN:
            metrics.count(CpaCounter.LOGIN_FAILED)
        raise SoapFault(FaultCode.SERVICES_STOPPED, f"critical services are stopped on {backend.node_name}")
    if req.operation is Operation.LOGIN:
        return await _login(backend, metrics, req)
    user = _session_user(backend, req)
    if req.operation is Operation.LOGOUT:
        assert req.session_key is not None
        backend.datastore.drop_session(req.session_key)
        return build_logout_response()
    _check_served(backend, user)
    if req.operation is Operation.GET_ALL_CONFIG:
        return build_get_all_config_response(backend.system_properties(user), user_config(user, backend.domain))
    return build_onetime_password_response(backend.datastore.issue_otp(user))


async def _handle_soap(request: web.Request) -> web.Response:
    backend = request.app[CPA_BACKEND]
    metrics = request.app[CPA_METRICS]
    content_type = parse_content_type(request.headers.get(hdrs.CONTENT_TYPE))
    if not content_type.acceptable:
        shown = content_type.media_type or "none"
        return web.Response(
            status=415,
            text=f"unsupported content type {shown}; send application/soap+xml (SOAP 1.2)\n",
        )
    limit = request.app[_MAX_BODY]
    try:
        body = await _read_capped(request, limit)
    except RequestTooLargeError as exc:
        return web.Response(status=413, text=f"{exc}\n")
    metrics.count(CpaCounter.REQUESTS)
    try:
        req = parse_request(body, action=content_type.action, max_body_bytes=limit)
        return _soap_response(await _dispatch(backend, metrics, req))
    except SoapFault as fault:
        metrics.count(CpaCounter.FAULTS)
        logger.debug("CPA fault on %s: %s", backend.node_name, fault)
        return _soap_response(build_fault(fault), status=fault.http_status)


async def _handle_wsdl(request: web.Request) -> web.Response:
    if "wsdl" not in {key.lower() for key in request.query}:
        return web.Response(status=400, text="GET serves the WSDL at ?wsdl; SOAP calls are POSTs\n")
    address = html.escape(f"{request.scheme}://{request.host}{request.path}", quote=True)
    text = request.app[_WSDL_TEXT].replace(WSDL_TEMPLATE_ADDRESS, address)
    return web.Response(text=text, content_type="text/xml", charset="utf-8")


async def _handle_xsd(request: web.Request) -> web.Response:
    return web.Response(body=request.app[_XSD_BYTES], content_type="text/xml", charset="utf-8")


def make_cpa_app(
    backend: CpaBackend,
    *,
    metrics: CpaMetrics | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    wsdl_dir: Path = WSDL_DIR,
) -> web.Application:
    """Build the CPA application of one node.

    Args:
        backend: the node's answers.
        metrics: counters to fill (a new one when None); also at ``app[CPA_METRICS]``.
        max_body_bytes: request body cap (larger -> 413).
        wsdl_dir: where ``epas.wsdl`` and ``epas.xsd`` live.

    Returns:
        The application; the node may add its own routes (``/_mock/...``) to it.

    Raises:
        ValueError: the WSDL lacks the template address to rewrite.
    """
    wsdl_text = (wsdl_dir / "epas.wsdl").read_text(encoding="utf-8")
    if wsdl_text.count(WSDL_TEMPLATE_ADDRESS) != 1:
        raise ValueError(f"{wsdl_dir / 'epas.wsdl'} must contain the address {WSDL_TEMPLATE_ADDRESS} once")
    app = web.Application()
    app[CPA_BACKEND] = backend
    app[CPA_METRICS] = metrics if metrics is not None else CpaMetrics()
    app[_MAX_BODY] = max_body_bytes
    app[_WSDL_TEXT] = wsdl_text
    app[_XSD_BYTES] = (wsdl_dir / "epas.xsd").read_bytes()
    for path in CPA_PATHS:
        app.router.add_post(path, _handle_soap)
        app.router.add_get(path, _handle_wsdl)
    app.router.add_get(XSD_PATH, _handle_xsd)
    return app


def make_cpa_runner(app: web.Application) -> web.AppRunner:
    """The runner a node serves its CPA app with: no access log, no signal handlers, and handler
    cancellation on (opt-in since aiohttp 3.9): a client that closes its connection cancels its
    handler, so a login it left waiting is abandoned (``login.admission``).

    Args:
        app: from :func:`make_cpa_app` (plus the node's own routes).

    Returns:
        The runner, not set up yet.
    """
    return web.AppRunner(app, access_log=None, handle_signals=False, handler_cancellation=True)


@dataclass(kw_only=True)
class StaticCpaBackend:
    """A fixed :class:`CpaBackend` for tests and benchmarks.

    Users are served by their home node unless it is in ``down_nodes``, then by the other node.
    ``running`` and ``busy`` switch the services-stopped and server-busy answers; ``admission``,
    when set, admits the logins that are not refused busy.
    """

    node_name: str
    domain: str
    directory: UserDirectory
    contacts: Mapping[str, NodeContact]
    datastore: LoginDatastore = field(default_factory=LoginDatastore)
    lower_limit_s: float = 120.0
    upper_limit_s: float = 537.0
    lower_limit_property: str = DEFAULT_LOWER_LIMIT_PROPERTY
    upper_limit_property: str = DEFAULT_UPPER_LIMIT_PROPERTY
    running: bool = True
    busy: bool = False
    down_nodes: set[str] = field(default_factory=set)
    admission: LoginAdmission | None = None

    def __post_init__(self) -> None:
        if self.node_name not in self.contacts:
            raise ValueError(f"contacts lack this node {self.node_name!r}")

    def check_password(self, user: str, password: str) -> bool:
        """See :class:`CpaBackend`."""
        return self.directory.check_password(user, password)

    def _peer_of(self, node: str) -> str | None:
        return next((name for name in self.contacts if name != node), None)

    def serving_node(self, user: str) -> str | None:
        """See :class:`CpaBackend`."""
        home = self.directory.home_node(user)
        if home is None or home not in self.down_nodes:
            return home
        peer = self._peer_of(home)
        return None if peer is None or peer in self.down_nodes else peer

    def services_running(self) -> bool:
        """See :class:`CpaBackend`."""
        return self.running

    async def admit_login(self) -> bool:
        """See :class:`CpaBackend`."""
        if self.busy:
            return False
        return await self.admission.admit() if self.admission is not None else True

    def system_properties(self, user: str) -> dict[str, str]:
        """See :class:`CpaBackend`."""
        home = self.directory.home_node(user) or self.node_name
        peer = self._peer_of(home)
        return system_config(
            domain=self.domain,
            primary=self.contacts[home],
            backup=self.contacts[peer] if peer is not None else None,
            lower_limit_s=self.lower_limit_s,
            upper_limit_s=self.upper_limit_s,
            lower_limit_property=self.lower_limit_property,
            upper_limit_property=self.upper_limit_property,
        )
