"""Route tests of the CPA aiohttp app: the happy path on the wire and every bad-input case."""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from lxml import etree

from mock_server.cpa.app import CPA_METRICS, StaticCpaBackend, make_cpa_app
from mock_server.cpa.metrics import CpaCounter, CpaMetrics
from mock_server.cpa.properties import NodeContact
from mock_server.cpa.request import EPAS_NS, SOAP12_NS
from mock_server.datastore import LoginDatastore
from mock_server.users import provision

GOLDEN = Path(__file__).resolve().parents[3] / "tests" / "data" / "soap"
URL = "/EPASSoap/service/v80"
SOAP12 = "application/soap+xml; charset=utf-8"
NS = {"env": SOAP12_NS, "epas": EPAS_NS}
NODES = ["imp1.example.test", "imp2.example.test"]

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


def c14n(data: bytes) -> str:
    return str(etree.canonicalize(etree.fromstring(data), strip_text=True, rewrite_prefixes=True))


def golden(name: str) -> bytes:
    return (GOLDEN / name).read_bytes()


def envelope(body: str, key: str | None = None) -> bytes:
    header = f"<env:Header><epas:session-key>{key}</epas:session-key></env:Header>" if key else ""
    return (
        f'<env:Envelope xmlns:env="{SOAP12_NS}" xmlns:epas="{EPAS_NS}">{header}<env:Body>{body}</env:Body></env:Envelope>'
    ).encode()


def login_body(user: str = "user00001", password: str | None = None) -> bytes:
    pw = password if password is not None else f"pass-{user}"
    return envelope(f'<epas:login client-type="CUPC" force="true"><epas:username>{user}</epas:username><epas:password>{pw}</epas:password></epas:login>')


def make_backend() -> StaticCpaBackend:
    contacts = {
        name: NodeContact(name=name, xmpp_host="127.0.0.1", xmpp_port=5222 + i, cpa_url=f"http://127.0.0.1:{8081 + i}{URL}")
        for i, name in enumerate(NODES)
    }
    return StaticCpaBackend(
        node_name=NODES[0], domain="example.test", directory=provision(4, NODES, seed=7), contacts=contacts,
        datastore=LoginDatastore(node=NODES[0]), lower_limit_s=2.5, upper_limit_s=10,
    )


@pytest.fixture
def backend() -> StaticCpaBackend:
    return make_backend()


@pytest.fixture
async def client(aiohttp_client: ClientFactory, backend: StaticCpaBackend) -> TestClient[Any, Any]:
    return await aiohttp_client(make_cpa_app(backend, max_body_bytes=64 * 1024))


async def post(client: TestClient[Any, Any], data: bytes | io.BytesIO, content_type: str | None = SOAP12, path: str = URL) -> tuple[int, bytes]:
    headers = {"Content-Type": content_type} if content_type is not None else {}
    async with client.post(path, data=data, headers=headers) as resp:
        return resp.status, await resp.read()


def fault_code(data: bytes) -> tuple[str, str]:
    root = etree.fromstring(data)
    return root.findtext(".//env:Code/env:Value", namespaces=NS), root.find(".//env:Detail/epas:error", namespaces=NS).get("code")


async def login(client: TestClient[Any, Any], user: str = "user00001") -> str:
    status, data = await post(client, login_body(user))
    assert status == 200, data
    return etree.fromstring(data).findtext(".//epas:login-resp/epas:success/epas:session-key", namespaces=NS)


@pytest.mark.parametrize("path", ["/EPASSoap/service/v80", "/EPASSoap/service/v105", "/EPASSoap/service/latest"])
async def test_full_session_on_the_wire(client: TestClient[Any, Any], backend: StaticCpaBackend, path: str) -> None:
    status, data = await post(client, login_body(), path=path)
    assert status == 200
    key = etree.fromstring(data).findtext(".//epas:session-key", namespaces=NS)
    assert backend.datastore.user_for_session(key) == "user00001"

    status, data = await post(client, envelope("<epas:get-all-config/>", key), path=path)
    assert status == 200
    props = {p.get("name"): p.text for p in etree.fromstring(data).iterfind(".//epas:system-config/epas:property", namespaces=NS)}
    assert props["Presence.Relogin.LowerLimit"] == "2.5" and props["Presence.Relogin.UpperLimit"] == "10"
    assert props["Presence.PrimaryServer"] == NODES[0] and props["Presence.BackupServer"] == NODES[1]
    assert props["Presence.BackupServer.XmppPort"] == "5223"

    status, data = await post(client, envelope("<epas:get-onetime-password/>", key), path=path)
    assert status == 200
    otp = etree.fromstring(data).findtext(".//epas:password", namespaces=NS)
    assert backend.datastore.check_otp("user00001", otp)
    assert not backend.datastore.check_otp("user00003", otp)

    status, data = await post(client, envelope("<epas:logout/>", key), path=path)
    assert status == 200
    assert etree.fromstring(data).find(".//epas:logout-resp/epas:success", namespaces=NS) is not None
    assert backend.datastore.user_for_session(key) is None
    assert fault_code((await post(client, envelope("<epas:logout/>", key), path=path))[1]) == ("env:Sender", "unknown-session")


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", None])
async def test_wrong_content_type_is_415_text(client: TestClient[Any, Any], content_type: str | None) -> None:
    status, data = await post(client, login_body(), content_type=content_type)
    assert status == 415
    assert data.startswith(b"unsupported content type ")
    assert client.app[CPA_METRICS].totals[CpaCounter.REQUESTS] == 0


async def test_missing_session_header_is_unknown_session(client: TestClient[Any, Any]) -> None:
    status, data = await post(client, envelope("<epas:get-all-config/>"))
    assert status == 400
    assert fault_code(data) == ("env:Sender", "unknown-session")
    reason = etree.fromstring(data).findtext(".//env:Reason/env:Text", namespaces=NS)
    assert reason == "get-all-config needs an epas:session-key header"


async def test_unknown_session_key_matches_golden(client: TestClient[Any, Any]) -> None:
    status, data = await post(client, envelope("<epas:get-onetime-password/>", "no-such-key"))
    assert status == 400
    assert c14n(data) == c14n(golden("fault-unknown-session.xml"))


async def test_empty_body_element_matches_golden(client: TestClient[Any, Any]) -> None:
    status, data = await post(client, envelope(""))
    assert status == 400
    assert c14n(data) == c14n(golden("fault-malformed-request.xml"))


@pytest.mark.parametrize(
    "data",
    [
        b"\x00\xffgarbage",
        b"",
        b"<env:Envelope xmlns:env='http://www.w3.org/2003/05/soap-envelope'><env:Body>",
        b"<foo>not soap</foo>",
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"><env:Body><x>&a;</x></env:Body></env:Envelope>',
    ],
    ids=["garbage", "empty", "unclosed", "not-soap", "dtd"],
)
async def test_non_soap_input_is_400_malformed(client: TestClient[Any, Any], data: bytes) -> None:
    status, reply = await post(client, data)
    assert status == 400
    assert fault_code(reply) == ("env:Sender", "malformed-request")
    assert b"Traceback" not in reply


async def test_soap11_envelope_is_version_mismatch(client: TestClient[Any, Any]) -> None:
    soap11 = b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><epas:login xmlns:epas="urn:cisco:epas:soap"/></s:Body></s:Envelope>'
    status, data = await post(client, soap11, content_type='text/xml; charset=utf-8')
    assert status == 500
    assert c14n(data) == c14n(golden("fault-version-mismatch.xml"))


async def test_unknown_operation_matches_golden(client: TestClient[Any, Any]) -> None:
    status, data = await post(client, envelope("<epas:get-roster/>", "k"))
    assert status == 400
    assert c14n(data) == c14n(golden("fault-unknown-operation.xml"))


async def test_action_mismatch_is_malformed(client: TestClient[Any, Any]) -> None:
    status, data = await post(client, login_body(), content_type=f'{SOAP12}; action="urn:cisco:epas:soap/logout"')
    assert status == 400
    assert fault_code(data) == ("env:Sender", "malformed-request")


async def test_oversize_body_is_413(client: TestClient[Any, Any]) -> None:
    status, data = await post(client, b"<" + b"a" * (64 * 1024))
    assert status == 413
    assert b"exceeds the 65536-byte limit" in data
    status, _ = await post(client, login_body())
    assert status == 200


async def test_default_cap_is_one_mebibyte(aiohttp_client: ClientFactory, backend: StaticCpaBackend) -> None:
    client = await aiohttp_client(make_cpa_app(backend))
    assert (await post(client, io.BytesIO(b" " * (1 << 20) + b"x")))[0] == 413
    status, data = await post(client, io.BytesIO(login_body() + b" " * ((1 << 20) - len(login_body()))))
    assert status == 200, data


async def test_bad_credentials_match_golden_and_count(client: TestClient[Any, Any]) -> None:
    status, data = await post(client, login_body(password="wrong"))
    assert status == 400
    assert c14n(data) == c14n(golden("fault-bad-credentials.xml"))
    assert fault_code((await post(client, login_body("nobody")))[1]) == ("env:Sender", "bad-credentials")
    totals = client.app[CPA_METRICS].totals
    assert (totals[CpaCounter.LOGIN_FAILED], totals[CpaCounter.LOGIN_OK], totals[CpaCounter.FAULTS]) == (2, 0, 2)


async def test_user_of_the_peer_is_not_served_here(client: TestClient[Any, Any], backend: StaticCpaBackend) -> None:
    status, data = await post(client, login_body("user00002"))
    assert status == 400
    assert c14n(data) == c14n(golden("fault-not-served-here.xml"))
    backend.down_nodes.add(NODES[1])  # peer failed over to us: we serve its users now
    key = await login(client, "user00002")
    status, data = await post(client, envelope("<epas:get-all-config/>", key))
    props = {p.get("name"): p.text for p in etree.fromstring(data).iterfind(".//epas:property", namespaces=NS)}
    assert (props["Presence.PrimaryServer"], props["Presence.BackupServer"]) == (NODES[1], NODES[0])


async def test_session_of_a_user_that_moved_away_is_not_served_here(client: TestClient[Any, Any], backend: StaticCpaBackend) -> None:
    key = await login(client)
    backend.down_nodes.add(NODES[0])
    status, data = await post(client, envelope("<epas:get-onetime-password/>", key))
    assert status == 400
    assert fault_code(data) == ("env:Sender", "not-served-here")


async def test_services_stopped_matches_golden(client: TestClient[Any, Any], backend: StaticCpaBackend) -> None:
    key = await login(client)
    backend.running = False
    status, data = await post(client, login_body())
    assert status == 500
    assert c14n(data) == c14n(golden("fault-services-stopped.xml"))
    assert fault_code((await post(client, envelope("<epas:get-all-config/>", key)))[1]) == ("env:Receiver", "services-stopped")


async def test_busy_matches_golden_and_counts(client: TestClient[Any, Any], backend: StaticCpaBackend) -> None:
    backend.busy = True
    status, data = await post(client, login_body())
    assert status == 500
    assert c14n(data) == c14n(golden("fault-server-busy.xml"))
    backend.busy = False
    await login(client)
    totals = client.app[CPA_METRICS].totals
    assert (totals[CpaCounter.LOGIN_BUSY], totals[CpaCounter.LOGIN_OK], totals[CpaCounter.LOGIN_FAILED]) == (1, 1, 0)


async def test_wsdl_is_served_with_the_request_address(client: TestClient[Any, Any]) -> None:
    for path in ("/EPASSoap/service/v105", URL):
        async with client.get(path + "?wsdl") as resp:
            assert resp.status == 200
            text = await resp.text()
        location = etree.fromstring(text.encode()).find(".//{http://schemas.xmlsoap.org/wsdl/soap12/}address").get("location")
        assert location == f"http://{client.host}:{client.port}{path}"
    async with client.get("/EPASSoap/service/epas.xsd") as resp:
        assert resp.status == 200
        assert await resp.read() == (Path(__file__).resolve().parents[3] / "mock_server" / "cpa" / "wsdl" / "epas.xsd").read_bytes()
    async with client.get(URL) as resp:
        assert resp.status == 400
        assert "?wsdl" in await resp.text()


def test_metrics_per_second_rows() -> None:
    now = [1000.2]
    metrics = CpaMetrics(clock=lambda: now[0])
    metrics.count(CpaCounter.LOGIN_OK)
    metrics.count(CpaCounter.LOGIN_OK)
    now[0] = 1001.5
    metrics.count(CpaCounter.LOGIN_BUSY)
    rows = metrics.completed_seconds()
    assert [r.to_dict() for r in rows] == [
        {"ts": 1000, "logins_ok": 2, "logins_failed": 0, "logins_busy": 0, "session_logins_ok": 0,
         "session_logins_refused": 0, "requests": 0, "faults": 0}
    ]
    now[0] = 1003.0
    assert [r.ts for r in metrics.completed_seconds()] == [1000, 1001]
    assert [r.ts for r in metrics.completed_seconds(after_ts=1000)] == [1001]
    assert metrics.totals[CpaCounter.LOGIN_OK] == 2


def otp_login_body(user: str, otp: str) -> bytes:
    return envelope(f'<epas:login client-type="CUPC" force="true"><epas:username>{user}</epas:username>'
                    f'<epas:onetime-password>{otp}</epas:onetime-password></epas:login>')


def login_counts(client: TestClient[Any, Any]) -> dict[str, int]:
    totals = client.app[CPA_METRICS].totals
    return {c.value: totals[c] for c in CpaCounter if c not in (CpaCounter.REQUESTS, CpaCounter.FAULTS)}


async def test_session_login_with_the_onetime_password(client: TestClient[Any, Any], backend: StaticCpaBackend,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    key = await login(client)
    status, data = await post(client, envelope("<epas:get-onetime-password/>", key))
    otp = etree.fromstring(data).findtext(".//epas:password", namespaces=NS)
    status, data = await post(client, otp_login_body("user00001", otp))
    assert status == 200, data
    new_key = etree.fromstring(data).findtext(".//epas:login-resp/epas:success/epas:session-key", namespaces=NS)
    assert new_key != key and backend.datastore.user_for_session(new_key) == "user00001"
    status, data = await post(client, otp_login_body("user00001", otp + "x"))
    assert status == 400
    assert c14n(data) == c14n(golden("fault-bad-onetime-password.xml"))
    assert fault_code((await post(client, otp_login_body("user00003", otp)))[1]) == ("env:Sender", "bad-onetime-password")
    assert login_counts(client) == {"logins_ok": 1, "logins_failed": 0, "logins_busy": 0, "session_logins_ok": 1,
                                    "session_logins_refused": 2}
    assert otp not in caplog.text and "pass-user00001" not in caplog.text
    assert "session login ok: user00001" in caplog.text


async def test_session_login_of_a_user_served_elsewhere(client: TestClient[Any, Any], backend: StaticCpaBackend) -> None:
    otp = backend.datastore.issue_otp("user00002")  # replicated from the peer, which serves user00002
    status, data = await post(client, otp_login_body("user00002", otp))
    assert (status, fault_code(data)) == (400, ("env:Sender", "not-served-here"))
    backend.busy = True
    status, data = await post(client, otp_login_body("user00002", otp))
    assert (status, fault_code(data)) == (500, ("env:Receiver", "server-busy"))
    backend.busy, backend.running = False, False
    status, data = await post(client, otp_login_body("user00002", otp))
    assert (status, fault_code(data)) == (500, ("env:Receiver", "services-stopped"))
    assert login_counts(client) == {"logins_ok": 0, "logins_failed": 2, "logins_busy": 1, "session_logins_ok": 0,
                                    "session_logins_refused": 0}


@pytest.mark.parametrize("inner", [
    "<epas:username>user00001</epas:username>",
    "<epas:username>user00001</epas:username><epas:password>p</epas:password><epas:onetime-password>o</epas:onetime-password>",
    "<epas:onetime-password>o</epas:onetime-password>",
], ids=["neither", "both", "no-username"])
async def test_login_needs_exactly_one_secret(client: TestClient[Any, Any], inner: str) -> None:
    status, data = await post(client, envelope(f"<epas:login>{inner}</epas:login>"))
    assert (status, fault_code(data)) == (400, ("env:Sender", "malformed-request"))
    reason = etree.fromstring(data).findtext(".//env:Reason/env:Text", namespaces=NS)
    assert reason == "login needs epas:username and exactly one of epas:password, epas:onetime-password"
