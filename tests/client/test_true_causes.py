"""Every failure carries its true cause (issue 16): an HTML error page from the CPA names its HTTP
status and content type, a host name that does not resolve is a DNS failure (CPA and XMPP alike)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from jabberemu.config import ClientSettings, NodeAddress, ServerPair
from jabberemu.core.states import ClientState, EndReason
from jabberemu.driver import EmulatedClient
from jabberemu.errors import HttpStatusError, TransportError
from jabberemu.runtime import RecordType, Runtime
from jabberemu.soap.cpa import CpaClient, load_wsdl
from jabberemu.soap.transport import AiohttpTransport

UNRESOLVABLE = "unresolvable.example.test"


@pytest.fixture
async def error_page() -> AsyncIterator[tuple[list[tuple[int, str, str]], int]]:
    """A CPA stand-in that answers each POST with the next (status, content type, body) of the list."""
    answers: list[tuple[int, str, str]] = []

    async def handle(_req: web.Request) -> web.Response:
        status, ctype, body = answers.pop(0) if len(answers) > 1 else answers[0]
        return web.Response(status=status, text=body, content_type=ctype)

    app = web.Application()
    app.router.add_post("/EPASSoap/service/v80", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield answers, port
    await runner.cleanup()


@pytest.fixture
async def no_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """``UNRESOLVABLE`` does not resolve (deterministic: no resolver is asked)."""
    loop = asyncio.get_running_loop()
    real = loop.getaddrinfo

    async def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == UNRESOLVABLE:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return await real(host, *args, **kwargs)

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)


@pytest.mark.parametrize(("status", "ctype", "body"), [
    (500, "text/html", "<html><body><h1>500 Internal Server Error</h1></body></html>"),
    (404, "text/html", "<html><body>Not Found</body></html>"),
    (503, "text/plain", "Service Unavailable"),
])
async def test_an_html_error_page_is_an_http_error_not_a_client_bug(
        error_page: tuple[list[tuple[int, str, str]], int], status: int, ctype: str, body: str) -> None:
    answers, port = error_page
    answers.append((status, ctype, body))
    cpa = CpaClient(load_wsdl(), AiohttpTransport())
    try:
        with pytest.raises(HttpStatusError) as info:
            await cpa.login("imp1", f"http://127.0.0.1:{port}/EPASSoap/service/v80", "u", "p")
    finally:
        await cpa._transport.aclose()
    assert (info.value.node, info.value.status, info.value.content_type) == ("imp1", status, ctype)


async def test_a_client_ends_naming_http_500(error_page: tuple[list[tuple[int, str, str]], int]) -> None:
    answers, port = error_page
    answers.append((500, "text/html", "<html>proxy error</html>"))
    url = f"http://127.0.0.1:{port}/EPASSoap/service/v80"
    pair = ServerPair(nodes=(NodeAddress(name="imp1", cpa_url=url, xmpp_host="127.0.0.1", xmpp_port=1),
                             NodeAddress(name="imp2", cpa_url=url, xmpp_host="127.0.0.1", xmpp_port=1)),
                      domain="example.test")
    rt = await Runtime.create(pair, ClientSettings(verify_tls=False))
    client = EmulatedClient("user00001", "pass", "imp1", rt)
    assert await client.start() is ClientState.GAVE_UP
    assert (client.machine.end_reason, client.machine.end_detail) == (
        EndReason.INITIAL_LOGIN_FAILED, "http-error:500:text/html")
    (end,) = rt.sink.of_type(RecordType.END)
    assert end["detail"] == "http-error:500:text/html"
    causes = [r["cause"] for r in rt.sink.of_type(RecordType.REQUEST) if r["request_type"] == "soap"]
    assert causes == ["http-error:500:text/html", "http-error:500:text/html"]  # primary, then secondary


async def test_a_cpa_host_that_does_not_resolve_is_a_dns_failure(no_dns: None) -> None:
    cpa = CpaClient(load_wsdl(), AiohttpTransport())
    try:
        with pytest.raises(TransportError) as info:
            await cpa.login("imp1", f"http://{UNRESOLVABLE}:8080/EPASSoap/service/v80", "u", "p")
    finally:
        await cpa._transport.aclose()
    assert info.value.cls == "dns-failure"


async def test_an_xmpp_host_that_does_not_resolve_is_a_dns_failure(no_dns: None) -> None:
    pair = ServerPair(nodes=(NodeAddress(name="imp1", cpa_url=None, xmpp_host=UNRESOLVABLE, xmpp_port=5222),
                             NodeAddress(name="imp2", cpa_url=None, xmpp_host=UNRESOLVABLE, xmpp_port=5222)),
                      domain="example.test")
    rt = await Runtime.create(pair, ClientSettings(verify_tls=False, xmpp_only=True))
    client = EmulatedClient("user00001", "pass", "imp1", rt)
    assert await client.start() is ClientState.GAVE_UP
    assert client.machine.end_detail == "dns-failure"
    reasons = [r["reason"] for r in rt.sink.of_type(RecordType.STATE)]
    assert reasons == [None, "dns-failure", "initial-login-failed"]
