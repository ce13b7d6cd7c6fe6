"""A zeep transport whose operation calls go through one shared aiohttp session.

zeep's own ``AsyncTransport`` builds an httpx client per instance (~58 ms, 1.7 MB each) and httpx
costs 2-8 ms client CPU per request under concurrency (httpx#3215); aiohttp costs ~0.3 ms
(../shared/ENGINEERING.md). This transport keeps zeep's synchronous WSDL loading (done once per
process at start-up) and overrides ``post_xml`` with aiohttp. It never logs message bodies: a login
request carries the user's password. Its ``ClientTimeout`` is a call's one deadline
(``Timeouts.soap_s``: connection from the pool, request and answer).

:class:`SoapTransport` is the seam under the CPA client: :class:`MockTransport` answers from a
function in memory (as httpx's ``MockTransport`` does), so driver tests need no sockets.
"""

from __future__ import annotations

import ssl
import asyncio
import inspect
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
from requests.structures import CaseInsensitiveDict
from requests.models import Response
from zeep.transports import Transport
from zeep.wsdl.utils import etree_to_string

__all__ = ["AiohttpTransport", "MockRequest", "MockTransport", "RawResponse", "SoapTransport", "as_requests_response"]


@dataclass(frozen=True, kw_only=True, slots=True)
class RawResponse:
    """One HTTP answer as the CPA client's fast path reads it.

    Attributes:
        status: HTTP status code.
        content: the body.
        content_type: the ``Content-Type`` header ("" when absent).
        charset: the body's charset (``utf-8`` unless the header says otherwise).
        headers: every response header (for zeep when the fast path hands over).
    """

    status: int
    content: bytes
    content_type: str
    charset: str
    headers: dict[str, str]


def as_requests_response(raw: RawResponse) -> Response:
    """The ``requests.Response`` zeep's ``process_reply`` expects, built from ``raw``."""
    new = Response()
    new._content = raw.content
    new.status_code = raw.status
    new.headers = CaseInsensitiveDict(raw.headers)
    new.encoding = raw.charset
    return new


class AiohttpTransport(Transport):
    """One per process; shared by every emulated client and every node address.

    Args:
        ssl_context: TLS settings for https CPA URLs (one shared context), or None for defaults.
        verify_tls: False turns certificate verification off (the mock's self-signed certificate).
        timeout_s: seconds a single SOAP call may take before ``asyncio.TimeoutError``.
        limit: connection pool size (concurrent connections over all nodes).
    """

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        verify_tls: bool = True,
        timeout_s: float = 10.0,
        limit: int = 2000,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else verify_tls
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._limit = limit
        self._session: aiohttp.ClientSession | None = None

    def _session_or_new(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # The threaded resolver calls loop.getaddrinfo: no aiodns/pycares thread (which, under
            # Locust's gevent patching, becomes a greenlet nobody runs).
            # Sockets of the loop's class when it names one (the bridge's loop under Locust: gevent's
            # original; gevent's would wrap every send and recv in Python: jabberemu.xmpp.source).
            socket_class = getattr(asyncio.get_running_loop(), "socket_class", socket.socket)
            connector = aiohttp.TCPConnector(
                limit=self._limit, ssl=self._ssl, ttl_dns_cache=None, resolver=aiohttp.ThreadedResolver(),
                socket_factory=lambda info: socket_class(info[0], info[1], info[2]),
            )
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self._session

    async def post_bytes(self, address: str, body: bytes, headers: dict[str, str]) -> RawResponse:
        """POST an already serialised SOAP envelope (the CPA client's pre-built requests).

        Returns:
            The HTTP status, the body and the ``Content-Type`` header ("" when absent).

        Raises:
            aiohttp.ClientError: the connection failed or was reset.
            asyncio.TimeoutError: no answer within ``timeout_s`` seconds.
        """
        async with self._session_or_new().post(address, data=body, headers=headers) as resp:
            content = await resp.read()
            return RawResponse(status=resp.status, content=content,
                               content_type=resp.headers.get("Content-Type", ""),
                               charset=resp.charset or "utf-8", headers=dict(resp.headers))

    async def post_xml(self, address: str, envelope: Any, headers: dict[str, str]) -> Response:
        """POST one SOAP envelope and return a ``requests.Response`` as zeep expects.

        Raises:
            aiohttp.ClientError: the connection failed or was reset.
            asyncio.TimeoutError: no answer within ``timeout_s`` seconds.
        """
        message = etree_to_string(envelope)  # type: ignore[no-untyped-call]
        async with self._session_or_new().post(address, data=message, headers=headers) as resp:
            body = await resp.read()
            new = Response()
            new._content = body
            new.status_code = resp.status
            new.headers = CaseInsensitiveDict(resp.headers)
            new.encoding = resp.charset or "utf-8"
            return new

    async def aclose(self) -> None:
        """Close the shared HTTP session (call once, at process shut-down)."""
        if self._session is not None:
            await self._session.close()
            self._session = None


class SoapTransport(Protocol):
    """What the CPA client needs of a transport (zeep's ``Transport`` for the WSDL, plus these)."""

    async def post_bytes(self, address: str, body: bytes, headers: dict[str, str]) -> RawResponse: ...

    async def post_xml(self, address: str, envelope: Any, headers: dict[str, str]) -> Response: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, kw_only=True)
class MockRequest:
    """One request as a :class:`MockTransport` handler sees it."""

    url: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


MockHandler = Callable[[MockRequest], RawResponse | Awaitable[RawResponse]]


class MockTransport(Transport):
    """A transport that answers from ``handler`` in memory (tests): no socket, same deadline.

    Args:
        handler: returns (or awaits) the answer to a request; raising emulates a failure (e.g.
            ``aiohttp.ClientConnectorError``, ``aiohttp.ServerDisconnectedError``).
        timeout_s: the call's deadline, as :class:`AiohttpTransport` enforces it.

    Attributes:
        requests: every request seen, in order.
    """

    def __init__(self, handler: MockHandler, *, timeout_s: float = 10.0) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._handler = handler
        self._timeout_s = timeout_s
        self.requests: list[MockRequest] = []

    async def post_bytes(self, address: str, body: bytes, headers: dict[str, str]) -> RawResponse:
        """Hand the request to the handler; its answer, or ``TimeoutError`` after ``timeout_s``."""
        request = MockRequest(url=address, body=body, headers=dict(headers))
        self.requests.append(request)
        async with asyncio.timeout(self._timeout_s):
            answer = self._handler(request)
            if inspect.isawaitable(answer):
                answer = await answer
        assert isinstance(answer, RawResponse)
        return answer

    async def post_xml(self, address: str, envelope: Any, headers: dict[str, str]) -> Response:
        """zeep's path: serialise, ask the handler, answer as ``requests.Response``."""
        message = etree_to_string(envelope)  # type: ignore[no-untyped-call]
        return as_requests_response(await self.post_bytes(address, message, headers))

    async def aclose(self) -> None:
        """Nothing to close."""
