"""zeep client of the Client Profile Agent (CPA, "EPAS SOAP") of an IM&P node.

The WSDL is parsed once per process (:func:`load_wsdl`, the bundled copy by default, never
downloaded at run time unless asked) and one service proxy is bound per node address
(``zeep.Client.create_service`` semantics, async). Every call goes through the one shared
:class:`~jabberemu.soap.transport.AiohttpTransport`, whose ``ClientTimeout`` is the call's one
deadline. zeep, aiohttp and asyncio errors are translated once, here (:func:`translate`): into a
jabberemu error, chained with ``from``, that carries the client machine's event for the failure. Per call, zeep's object model is the cost (~1 ms of a ~1.3 ms call):
requests are zeep's bytes built once per operation and completed per call, and success answers
of the expected shape are read with lxml directly; faults and anything unexpected still go
through zeep (:mod:`jabberemu.soap.fastpath`).

Operations and names follow the IM and Presence Developer Cookbook 10.5 ("EPAS SOAP"): ``login``
(-> session key; with the password, or with the cached one-time password for the session re-login), ``get-all-config`` (system and user properties, among them the SRM re-login limits
under configurable property names), ``get-onetime-password``, ``logout``.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp
import lxml.etree
import zeep.exceptions
from zeep import AsyncClient
from zeep.proxy import AsyncServiceProxy
from zeep.transports import Transport
from zeep.wsdl import Document
from zeep.wsdl.utils import etree_to_string

from jabberemu.core import events as ev
from jabberemu.errors import HttpStatusError, JabberEmuError, RemoteProtocolError, SoapFault, TransportError
from jabberemu.soap.fastpath import MISS, RequestTemplate, build_template, read_success
from jabberemu.soap.transport import SoapTransport, as_requests_response

__all__ = ["CpaClient", "CpaConfig", "load_wsdl", "translate", "BUNDLED_WSDL", "EPAS_NS", "BINDING_QNAME"]

logger = logging.getLogger(__name__)

EPAS_NS = "urn:cisco:epas:soap"
BINDING_QNAME = "{urn:cisco:epas:soap}EPASSoapBinding"
#: Media types of a SOAP answer (SOAP 1.2, and 1.1 for a VersionMismatch); anything else with an
#: error status is an HTTP error page.
_SOAP_MEDIA = frozenset({"application/soap+xml", "text/xml", "application/xml"})
BUNDLED_WSDL = str(importlib.resources.files("jabberemu.soap").joinpath("wsdl/epas.wsdl"))
"""Path of the bundled WSDL (package data)."""


def load_wsdl(location: str = BUNDLED_WSDL) -> Document:
    """Parse the CPA WSDL once (blocking; call at start-up, outside the event loop's hot path).

    Args:
        location: a file path (default: the bundled copy) or the server's ``?wsdl`` URL.

    Raises:
        zeep.exceptions.Error: the document is not a usable WSDL.
    """
    return Document(location, Transport())  # type: ignore[no-untyped-call,arg-type]


@dataclass(frozen=True, kw_only=True)
class CpaConfig:
    """What ``get-all-config`` returned.

    Attributes:
        system: system configuration properties, name -> text.
        user: user configuration properties, name -> text.
    """

    system: dict[str, str]
    user: dict[str, str]


def _properties(plist: Any) -> dict[str, str]:
    if plist is None:
        return {}
    out: dict[str, str] = {}
    for prop in plist["property"] or []:
        name = prop["name"]
        if name:
            value = prop["_value_1"]
            out[str(name)] = "" if value is None else str(value)
    return out


def _with_event(error: JabberEmuError, event: ev.Event) -> JabberEmuError:
    error.event = event
    return error


def _malformed(node: str, what: str) -> JabberEmuError:
    return _with_event(RemoteProtocolError(f"{node}: {what}", node=node),
                       ev.SoapFailed(node=node, code="malformed-response", reason=what[:200]))


def _transport(node: str, loss: ev.LossKind) -> JabberEmuError:
    return _with_event(TransportError(node=node, cls=loss.value), ev.ConnectionLost(node=node, cls=loss))


def translate(exc: BaseException, node: str, op: str) -> JabberEmuError:
    """The one translation of a failed CPA call: zeep's, aiohttp's and asyncio's exceptions become a
    jabberemu error whose :attr:`~jabberemu.errors.JabberEmuError.event` is the client machine's event.

    Args:
        exc: what the call raised.
        node: the node called.
        op: the operation (for messages).

    Returns:
        ``SoapFault`` (event ``SoapFailed``), ``HttpStatusError`` (``HttpFailed``), ``TransportError``
        (``ConnectionLost``; ``OperationTimeout`` of stage SOAP for the call's deadline) or
        ``RemoteProtocolError`` (``SoapFailed`` code ``malformed-response``; code ``client-error``
        for anything unexpected, which is logged).
    """
    if isinstance(exc, JabberEmuError) and exc.event is not None:
        return exc
    if isinstance(exc, HttpStatusError):
        return _with_event(HttpStatusError(node=node, status=exc.status, content_type=exc.content_type),
                           ev.HttpFailed(node=node, status=exc.status, content_type=exc.content_type))
    if isinstance(exc, zeep.exceptions.Fault):
        code = _fault_code(exc.detail)
        sender = "Sender" in str(exc.code or "")
        reason = str(exc.message or code)
        return _with_event(SoapFault(node=node, code=code, reason=reason, sender_fault=sender),
                           ev.SoapFailed(node=node, code=code, reason=reason, sender_fault=sender))
    if isinstance(exc, zeep.exceptions.TransportError):
        if exc.status_code is not None and exc.status_code < 300:
            return _malformed(node, f"answer to {op} is not SOAP (HTTP {exc.status_code})")
        code = f"http-{exc.status_code}"
        return _with_event(SoapFault(node=node, code=code, reason=f"HTTP {exc.status_code}", sender_fault=False),
                           ev.SoapFailed(node=node, code=code, reason=f"HTTP {exc.status_code}"))
    if isinstance(exc, (zeep.exceptions.Error, lxml.etree.XMLSyntaxError, RemoteProtocolError)):
        return _malformed(node, f"malformed SOAP answer to {op}: {exc}")
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return _transport(node, ev.LossKind.CONNECTION_CLOSED)
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return _transport(node, ev.LossKind.DNS_FAILURE)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return _transport(node, ev.LossKind.CONNECTION_REFUSED)
    if isinstance(exc, asyncio.TimeoutError):  # the call's one deadline (the transport's ClientTimeout)
        return _with_event(TransportError(node=node, cls="timeout"),
                           ev.OperationTimeout(node=node, stage=ev.Stage.SOAP))
    if isinstance(exc, (aiohttp.ClientError, ConnectionError)):
        return _transport(node, ev.LossKind.CONNECTION_RESET)
    logger.error("unexpected CPA failure on %s (%s): %r", node, op, exc)
    return _with_event(RemoteProtocolError(f"{node}: {op} failed: {type(exc).__name__}", node=node),
                       ev.SoapFailed(node=node, code="client-error", reason=type(exc).__name__))


def _fault_code(detail: Any) -> str:
    if detail is None:
        return "unknown"
    for el in detail.iter(f"{{{EPAS_NS}}}error"):
        return str(el.get("code") or "unknown")
    return "unknown"


class CpaClient:
    """Calls the CPA of any node of the pair; share one per process.

    Requests are zeep's bytes, built once per operation and completed per call; success answers
    of the expected shape are read directly; everything else goes through zeep
    (:mod:`jabberemu.soap.fastpath`). ``fast_path=False`` sends every call through zeep's
    service proxy (the reference behaviour, for comparisons).

    Args:
        wsdl: the parsed WSDL from :func:`load_wsdl`.
        transport: the process's shared transport.
        client_version: sent as the ``client-version`` attribute of ``login``.
        fast_path: use the pre-built requests and the direct reader.
    """

    def __init__(self, wsdl: Document, transport: SoapTransport, *, client_version: str = "14.1",
                 fast_path: bool = True) -> None:
        self._client = AsyncClient(wsdl=wsdl, transport=transport)  # type: ignore[no-untyped-call]
        self._binding = self._client.wsdl.bindings[BINDING_QNAME]
        self._transport = transport
        self._services: dict[str, AsyncServiceProxy] = {}
        self._client_version = client_version
        self.fast_path = fast_path
        login_fixed = {"client-type": "CUPC", "client-version": client_version, "force": True}
        self._fixed: dict[str, dict[str, Any]] = {"login": login_fixed}
        key_slot = {"session-key": "session_key"}
        self._templates: dict[str, RequestTemplate] = {
            "login": build_template(self._binding, self._client, "login",
                                    body_slots={"username": "username", "password": "password"}, fixed=login_fixed),
            "session-login": build_template(self._binding, self._client, "login",
                                            body_slots={"username": "username", "onetime-password": "otp"},
                                            fixed=login_fixed),
            **{op: build_template(self._binding, self._client, op, header_slots=key_slot)
               for op in ("get-all-config", "get-onetime-password", "logout")},
        }

    def service(self, cpa_url: str) -> AsyncServiceProxy:
        """The service proxy bound to ``cpa_url`` (made once per address)."""
        svc = self._services.get(cpa_url)
        if svc is None:
            svc = AsyncServiceProxy(self._client, self._binding, address=cpa_url)  # type: ignore[no-untyped-call]
            self._services[cpa_url] = svc
        return svc

    def _zeep_kwargs(self, op: str, values: dict[str, str]) -> dict[str, Any]:
        if op == "login":
            return {"username": values["username"], "password": values["password"], **self._fixed["login"]}
        if op == "session-login":
            return {"username": values["username"], "onetime-password": values["otp"], **self._fixed["login"]}
        return {"_soapheaders": {"session-key": values["session_key"]}}

    async def _exchange(self, cpa_url: str, op: str, values: dict[str, str]) -> tuple[bool, Any]:
        """One call: ``(True, fast result)`` or ``(False, zeep result)``.

        ``op`` is a WSDL operation, or ``session-login``: the ``login`` operation carrying the
        one-time password instead of the password.
        """
        wsdl_op = "login" if op == "session-login" else op
        if not self.fast_path:
            return False, await self.service(cpa_url)[wsdl_op](**self._zeep_kwargs(op, values))
        template = self._templates[op]
        body = template.render(values)
        headers = template.headers
        if body is None:  # a value zeep/lxml writes otherwise (or refuses): zeep builds this one
            binding: Any = self._binding
            envelope, headers = binding._create(wsdl_op, (), self._zeep_kwargs(op, values), client=self._client,
                                                options={"address": cpa_url})
            body = etree_to_string(envelope)  # type: ignore[no-untyped-call]
        raw = await self._transport.post_bytes(cpa_url, body, headers)
        media = raw.content_type.split(";", 1)[0].strip().lower()
        if raw.status >= 300 and media not in _SOAP_MEDIA:
            # an HTML error page (a proxy, a crashed CPA): zeep would fail reading it as a fault
            raise HttpStatusError(node="", status=raw.status, content_type=media)
        result = read_success(wsdl_op, raw.status, raw.content, raw.content_type)
        if result is not MISS:
            return True, result
        soap: Any = self._binding
        return False, soap.process_reply(self._client, soap.get(wsdl_op), as_requests_response(raw))

    async def _call(self, node: str, cpa_url: str, op: str, values: dict[str, str]) -> tuple[bool, Any]:
        try:
            return await self._exchange(cpa_url, op, values)
        except Exception as exc:  # no local name for the new error: this frame is in its traceback
            raise translate(exc, node, op) from exc

    async def login(self, node: str, cpa_url: str, username: str, password: str) -> str:
        """``login``; returns the session key.

        Raises:
            SoapFault: the node refused (``code`` e.g. bad-credentials, services-stopped, server-busy).
            TransportError: the connection failed, was reset or timed out.
            RemoteProtocolError: the answer is not the expected SOAP.
        """
        _fast, resp = await self._call(node, cpa_url, "login", {"username": username, "password": password})
        if not isinstance(resp, str) or not resp:
            raise _malformed(node, "login answer has no session-key")
        return resp

    async def session_login(self, node: str, cpa_url: str, username: str, otp: str) -> str:
        """``login`` with the one-time password cached at the last sign-in; returns the session key.

        The session re-login of SOAPCONNECT_SESSION_P/_S (docs/ARCHITECTURE.md, CPA contract).

        Raises:
            SoapFault: the node refused (``bad-onetime-password``, ``server-busy``, ...).
            TransportError, RemoteProtocolError: as :meth:`login`.
        """
        _fast, resp = await self._call(node, cpa_url, "session-login", {"username": username, "otp": otp})
        if not isinstance(resp, str) or not resp:
            raise _malformed(node, "login answer has no session-key")
        return resp

    async def get_all_config(self, node: str, cpa_url: str, session_key: str) -> CpaConfig:
        """``get-all-config`` with the session key header.

        Raises:
            SoapFault, TransportError, RemoteProtocolError: as :meth:`login`.
        """
        fast, resp = await self._call(node, cpa_url, "get-all-config", {"session_key": session_key})
        if fast:
            system, user = resp
            return CpaConfig(system=system, user=user)
        try:
            return CpaConfig(system=_properties(resp["system-config"]), user=_properties(resp["user-config"]))
        except (AttributeError, KeyError, TypeError) as exc:
            raise _malformed(node, "get-all-config answer is malformed") from exc

    async def get_onetime_password(self, node: str, cpa_url: str, session_key: str) -> str:
        """``get-onetime-password``; returns the OTP (never log it).

        Raises:
            SoapFault, TransportError, RemoteProtocolError: as :meth:`login`.
        """
        _fast, resp = await self._call(node, cpa_url, "get-onetime-password", {"session_key": session_key})
        if not isinstance(resp, str) or not resp:
            raise _malformed(node, "get-onetime-password answer has no password")
        return resp

    async def logout(self, node: str, cpa_url: str, session_key: str) -> None:
        """``logout``.

        Raises:
            SoapFault, TransportError, RemoteProtocolError: as :meth:`login`.
        """
        await self._call(node, cpa_url, "logout", {"session_key": session_key})
