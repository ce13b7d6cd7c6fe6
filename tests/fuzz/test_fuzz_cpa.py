"""Fuzz corpus against the CPA SOAP endpoint: ``cpa.request.parse_request`` directly (fast), the
``cpa.app`` routes through aiohttp's test client, and raw (malformed) HTTP over a socket.

Every answer must be a 4xx or a SOAP 1.2 fault with one of our codes; a 500 only for a Receiver
fault whose code is the server's fault (``services-stopped``, ``server-busy``) or for
VersionMismatch (SOAP 1.2 Part 2 §7.5.2.2 maps it to 500); never aiohttp's 500 page. No external
entity or DTD is ever loaded (an lxml resolver that records every request stays empty), and a
control login works between batches and at the end.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.client_exceptions import ClientConnectionResetError
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from fuzz_cpa_inputs import CAP_BYTES, CONTENT_TYPES, RAW_HTTP_KINDS, body, body_cases, envelope, login, raw_http
from fuzz_support import COUNTS, budget, fuzz_settings, run_corpus
from mock_server.cpa import request as cpa_request
from mock_server.cpa.app import CPA_PATHS, StaticCpaBackend, make_cpa_app
from mock_server.cpa.properties import NodeContact
from mock_server.cpa.request import (
    EPAS_NS, SOAP12_NS, FaultCode, FaultSide, RequestTooLargeError, SoapFault, parse_content_type,
)
from mock_server.cpa.response import build_fault
from mock_server.datastore import LoginDatastore
from mock_server.users import provision

NS = {"env": SOAP12_NS, "epas": EPAS_NS}
NODES = ["imp1.example.test", "imp2.example.test"]
OUR_CODES = {c.value for c in FaultCode}
SERVER_SIDE_CODES = {FaultCode.SERVICES_STOPPED.value, FaultCode.SERVER_BUSY.value}
ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


class _Recorder(etree.Resolver):
    """Records every external resource libxml2 asks for; resolves nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[str] = []

    def resolve(self, system_url: str, public_id: str, context: object) -> None:
        self.requests.append(system_url)
        return None


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> _Recorder:
    """The module's parser, rebuilt with the same options plus a recording resolver."""
    rec = _Recorder()
    parser = cpa_request._parser()
    parser.resolvers.add(rec)
    monkeypatch.setattr(cpa_request, "_PARSER", parser)
    return rec


def server_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    """ERROR records, except aiohttp's own for a malformed HTTP message it answered with a 4xx
    (it logs those with a traceback) or for a peer that went away before the answer."""
    bad = []
    for r in caplog.records:
        if r.levelno < logging.ERROR:
            continue
        exc = r.exc_info[1] if r.exc_info else None
        if r.name == "aiohttp.server" and (
                (isinstance(exc, HttpProcessingError) and 400 <= (exc.code or 0) < 500)
                or isinstance(exc, (ConnectionResetError, ClientConnectionResetError))):
            continue
        bad.append(f"{r.name}: {r.getMessage()} {exc!r}")
    return bad


def _classify(exc: BaseException | None) -> str:
    if exc is None:
        return "ok"
    if isinstance(exc, RequestTooLargeError):
        return "too-large"
    assert isinstance(exc, SoapFault), exc
    if exc.side is FaultSide.VERSION_MISMATCH:
        return "version-mismatch"
    return exc.code.value


def _check_fault_xml(fault: SoapFault) -> None:
    """The fault we would send is well-formed and names our code; no entity text leaked."""
    root = etree.fromstring(build_fault(fault))
    assert root.find(".//env:Detail/epas:error", namespaces=NS).get("code") == fault.code.value
    assert "lollol" not in fault.reason and "root:x:0" not in fault.reason


_CT_POOL = ["application/soap+xml", "; action=", '"', "'", "*", "=", "%ff", "utf-8''", "\\", ";", " ", "\u00e9",
            "text/xml", "charset", "\x7f", "(comment)", "a" * 50]


def _parse(case: tuple[str, int]) -> None:
    kind, seed = case
    b = body(kind, seed)
    exc: BaseException | None = None
    try:
        req = cpa_request.parse_request(b.data, action=b.action, max_body_bytes=CAP_BYTES)
        assert req.operation in cpa_request.Operation
    except (SoapFault, RequestTooLargeError) as caught:
        exc = caught
        if isinstance(caught, SoapFault):
            _check_fault_xml(caught)
    got = _classify(exc)
    assert got in b.outcomes, (kind, got, exc, b.data[:200])
    rng = random.Random(seed)
    parse_content_type("".join(rng.choice(_CT_POOL) for _ in range(rng.randrange(12))))


def test_parse_request_corpus(recorder: _Recorder) -> None:
    """Malformed envelopes, SOAP 1.1, DOCTYPEs (billion laughs, XXE, parameter entities,
    external DTDs), deep nesting, huge attributes, oversize bodies, invalid UTF-8, encodings,
    mutations; plus random Content-Type values through ``parse_content_type``."""
    run_corpus("cpa_parse", body_cases(), _parse)
    assert recorder.requests == []


# -- the aiohttp app ---------------------------------------------------------------------------------
def make_backend() -> StaticCpaBackend:
    contacts = {
        name: NodeContact(name=name, xmpp_host="127.0.0.1", xmpp_port=5222 + i,
                          cpa_url=f"http://127.0.0.1:{8081 + i}{CPA_PATHS[0]}")
        for i, name in enumerate(NODES)
    }
    return StaticCpaBackend(node_name=NODES[0], domain="example.test", directory=provision(4, NODES, seed=7),
                            contacts=contacts, datastore=LoginDatastore(node=NODES[0]))


async def control_login(client: TestClient[Any, Any], backend: StaticCpaBackend) -> None:
    async with client.post(CPA_PATHS[0], data=envelope(login("user00001")),
                           headers={"Content-Type": "application/soap+xml; charset=utf-8"}) as resp:
        data = await resp.read()
        assert resp.status == 200, data
    key = etree.fromstring(data).findtext(".//epas:session-key", namespaces=NS)
    assert key and backend.datastore.user_for_session(key) == "user00001"


AppCase = tuple[str, int, int, int, int, bool]


def collect_app_cases() -> list[AppCase]:
    cases: list[AppCase] = []

    @fuzz_settings("cpa_app")
    @given(st.tuples(body_cases(), st.one_of(st.just(0), st.integers(0, len(CONTENT_TYPES) - 1)), st.integers(0, 9),
                     st.integers(0, 9),
                     st.booleans()).map(lambda t: (t[0][0], t[0][1], t[1], t[2], t[3], t[4])))
    def draw(case: AppCase) -> None:
        cases.append(case)

    draw()
    return cases


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for off in range(0, len(data), 700):
        yield data[off:off + 700]


def check_answer(status: int, content_type: str, data: bytes) -> str:
    """The rule of the issue; returns what the answer was (for the counts)."""
    if content_type == "application/soap+xml":
        root = etree.fromstring(data)
        fault = root.find("env:Body/env:Fault", namespaces=NS)
        if fault is None:
            assert status == 200, (status, data[:300])
            return "200"
        side = fault.findtext("env:Code/env:Value", namespaces=NS)
        code = fault.find("env:Detail/epas:error", namespaces=NS).get("code")
        assert code in OUR_CODES, code
        if status == 500:
            assert (side == "env:Receiver" and code in SERVER_SIDE_CODES) or side == "env:VersionMismatch", (side, code)
        else:
            assert status == 400 and side == "env:Sender", (status, side, code)
        return f"fault:{code}"
    assert 400 <= status < 500, (status, data[:300])
    return str(status)


async def test_cpa_app_corpus(aiohttp_client: ClientFactory, caplog: pytest.LogCaptureFixture) -> None:
    """Wrong and duplicated content types, wrong paths and methods, chunked bodies, the bodies
    above, with the node running, busy or with services stopped."""
    caplog.set_level(logging.ERROR)
    backend = make_backend()
    client = await aiohttp_client(make_cpa_app(backend, max_body_bytes=CAP_BYTES))
    cases = collect_app_cases()
    answers: dict[str, int] = {}
    tried = 0
    try:
        for i, (kind, seed, ct_i, path_i, mode, chunked) in enumerate(cases):
            b = body(kind, seed)
            backend.running, backend.busy = mode != 0, mode == 1
            ct = CONTENT_TYPES[ct_i]
            headers: list[tuple[str, str]] = []
            if isinstance(ct, tuple):
                headers = [("Content-Type", str(v)) for v in ct]
            elif ct is not None:
                headers = [("Content-Type", str(ct))]
            path = CPA_PATHS[path_i % 3] if path_i < 8 else rng_path(seed)
            method = "GET" if path_i == 7 else "POST"
            data: Any = _chunks(b.data) if chunked else b.data
            async with client.request(method, path, data=data, headers=headers) as resp:
                payload = await resp.read()
                got = check_answer(resp.status, resp.content_type, payload)
            answers[got] = answers.get(got, 0) + 1
            tried += 1
            if i % 50 == 49:
                backend.running, backend.busy = True, False
                await control_login(client, backend)
    finally:
        COUNTS["cpa_app"] += tried
    backend.running, backend.busy = True, False
    await control_login(client, backend)
    assert tried >= budget("cpa_app")
    assert answers.get("200", 0) > 0 and answers.get("415", 0) > 0 and answers.get("fault:malformed-request", 0) > 0
    assert server_errors(caplog) == []


def rng_path(seed: int) -> str:
    return random.Random(seed).choice(["/EPASSoap/service/v81", "/EPASSoap/service/v80/../v80", "/%00", "/" + "a" * 3000,
                                       "/EPASSoap/service/epas.xsd", "/EPASSoap/service/v80?wsdl&x=%ff"])


# -- raw HTTP ------------------------------------------------------------------------------------------
IDLE_S = 0.25


async def _raw_exchange(port: int, data: bytes) -> bytes:
    """Send ``data``; read until the server closes or stays silent for IDLE_S (a server still
    waiting for the rest of a body: we then stop listening; no half-close, which aiohttp takes
    as the end of the connection)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5.0)
    got = b""
    try:
        writer.write(data)
        await writer.drain()
        while True:
            try:
                chunk = await asyncio.wait_for(reader.read(65536), IDLE_S)
            except TimeoutError:
                break
            if not chunk:
                break
            got += chunk
    except (ConnectionResetError, BrokenPipeError):
        pass
    finally:
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), 5.0)
        except (ConnectionResetError, BrokenPipeError):
            pass
    return got


async def control_login_raw(port: int, backend: StaticCpaBackend) -> None:
    soap = envelope(login("user00001"))
    got = await _raw_exchange(port, (f"POST {CPA_PATHS[0]} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                                     f"Content-Type: application/soap+xml\r\nContent-Length: {len(soap)}\r\n\r\n").encode()
                              + soap)
    head, _, data = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), got[:300]
    key = etree.fromstring(data).findtext(".//epas:session-key", namespaces=NS)
    assert key and backend.datastore.user_for_session(key) == "user00001"


async def test_raw_http_corpus(caplog: pytest.LogCaptureFixture) -> None:
    """Bad request lines, bad and duplicated headers, Content-Length with Transfer-Encoding,
    bad chunks, huge headers, short bodies, pipelining: every status line is 1xx, 2xx or 4xx."""
    caplog.set_level(logging.ERROR)
    backend = make_backend()
    server = TestServer(make_cpa_app(backend, max_body_bytes=CAP_BYTES), host="127.0.0.1")
    await server.start_server()
    cases: list[tuple[str, int]] = []

    @fuzz_settings("cpa_http_raw")
    @given(st.tuples(st.sampled_from(RAW_HTTP_KINDS), st.integers(0, 2**31)))
    def draw(case: tuple[str, int]) -> None:
        cases.append(case)

    draw()
    statuses: dict[int, int] = {}
    tried = 0
    try:
        assert server.port is not None
        for i in range(0, len(cases), 20):
            batch = cases[i:i + 20]
            answers = await asyncio.gather(*(_raw_exchange(server.port, raw_http(k, s, CPA_PATHS[s % 3]))
                                             for k, s in batch))
            for (kind, _seed), got in zip(batch, answers):
                for line in got.split(b"\r\n"):
                    if line.startswith(b"HTTP/1."):
                        status = int(line.split()[1])
                        statuses[status] = statuses.get(status, 0) + 1
                        assert status < 500, (kind, got[:300])
            tried += len(batch)
            await control_login_raw(server.port, backend)
    finally:
        COUNTS["cpa_http_raw"] += tried
        await server.close()
    assert tried >= budget("cpa_http_raw") and statuses.get(400, 0) > 0
    assert server_errors(caplog) == []


def test_app_is_a_web_application() -> None:
    assert isinstance(make_cpa_app(make_backend()), web.Application)
