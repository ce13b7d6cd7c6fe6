"""Golden files: how the zeep client (bundled WSDL) and the mock's codec agree on the CPA wire format.

Each request golden file is what zeep sends and what the mock parses; each response golden file is
what the mock builds and what zeep decodes. XML is compared after C14N 2.0 with stripped whitespace
and rewritten prefixes (zeep writes ``soap-env:``/``ns0:``, the mock ``env:``/``epas:``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
import zeep
import zeep.exceptions
from lxml import etree

from mock_server.cpa.properties import NodeContact, system_config
from mock_server.cpa.request import CpaRequest, FaultCode, FaultSide, Operation, SoapFault, parse_request
from mock_server.cpa.response import (
    build_fault, build_get_all_config_response, build_login_response, build_logout_response,
    build_onetime_password_response,
)

ROOT = Path(__file__).resolve().parents[3]
GOLDEN = ROOT / "tests" / "data" / "soap"
CLIENT_WSDL = ROOT / "jabberemu" / "soap" / "wsdl" / "epas.wsdl"
MOCK_WSDL_DIR = ROOT / "mock_server" / "cpa" / "wsdl"

KEY = "K-0123456789abcdef"
OTP = "OTP-fedcba9876543210"
LOGIN_ARGS = {"username": "user00001", "password": "pass-user00001", "client-type": "CUPC", "client-version": "14.1", "force": True}
LOGIN_OTP_ARGS = {"username": "user00001", "onetime-password": "otp-user00001", "client-type": "CUPC", "client-version": "14.1", "force": True}
IMP1 = NodeContact(name="imp1.example.test", xmpp_host="127.0.0.1", xmpp_port=5222, cpa_url="http://127.0.0.1:8081/EPASSoap/service/v80")
IMP2 = NodeContact(name="imp2.example.test", xmpp_host="127.0.0.1", xmpp_port=5223, cpa_url="http://127.0.0.1:8082/EPASSoap/service/v80")
SYSTEM = system_config(domain="example.test", primary=IMP1, backup=IMP2, lower_limit_s=120, upper_limit_s=537)
USER_CONFIG = {"Presence.UserId": "user00001", "Presence.Jid": "user00001@example.test"}

FAULT_REASONS = {
    FaultCode.BAD_CREDENTIALS: "invalid user name or password",
    FaultCode.BAD_ONETIME_PASSWORD: "unknown or expired one-time password",
    FaultCode.UNKNOWN_SESSION: "unknown or expired session key",
    FaultCode.NOT_SERVED_HERE: "user user00002 is served by imp2.example.test, not by imp1.example.test",
    FaultCode.SERVICES_STOPPED: "critical services are stopped on imp1.example.test",
    FaultCode.SERVER_BUSY: "imp1.example.test is over its login capacity; retry later",
    FaultCode.MALFORMED_REQUEST: "the Body must hold exactly one element, found 0",
    FaultCode.UNKNOWN_OPERATION: "unknown operation {urn:cisco:epas:soap}get-roster",
}
VERSION_MISMATCH_REASON = "SOAP 1.1 envelope received; this endpoint speaks SOAP 1.2 only"


def c14n(data: bytes) -> str:
    """Canonical form used by every golden comparison."""
    return str(etree.canonicalize(etree.fromstring(data), strip_text=True, rewrite_prefixes=True))


def golden(name: str) -> bytes:
    return (GOLDEN / name).read_bytes()


class ReplayTransport(zeep.Transport):
    """zeep transport that records the request and answers with a canned response."""

    def __init__(self) -> None:
        super().__init__()
        self.reply = b""
        self.status = 200
        self.sent: list[tuple[bytes, dict[str, str]]] = []

    def post_xml(self, address: str, envelope: Any, headers: dict[str, str]) -> requests.Response:
        self.sent.append((etree.tostring(envelope), dict(headers)))
        response = requests.Response()
        response.status_code = self.status
        response._content = self.reply
        response.headers["Content-Type"] = "application/soap+xml; charset=utf-8"
        response.encoding = "utf-8"
        return response


@pytest.fixture(scope="module")
def zeep_client() -> tuple[zeep.Client, ReplayTransport]:
    transport = ReplayTransport()
    return zeep.Client(str(CLIENT_WSDL), transport=transport), transport


# (golden request file, operation, zeep arguments, expected result, what the mock parses)
CASES = [
    ("login", Operation.LOGIN, LOGIN_ARGS, KEY, CpaRequest(operation=Operation.LOGIN, username="user00001", password="pass-user00001", client_type="CUPC", client_version="14.1", force=True)),
    ("login-otp", Operation.LOGIN, LOGIN_OTP_ARGS, KEY, CpaRequest(operation=Operation.LOGIN, username="user00001", onetime_password="otp-user00001", client_type="CUPC", client_version="14.1", force=True)),
    ("get-all-config", Operation.GET_ALL_CONFIG, {"_soapheaders": {"session-key": KEY}}, None, CpaRequest(operation=Operation.GET_ALL_CONFIG, session_key=KEY)),
    ("get-onetime-password", Operation.GET_ONETIME_PASSWORD, {"_soapheaders": {"session-key": KEY}}, OTP, CpaRequest(operation=Operation.GET_ONETIME_PASSWORD, session_key=KEY)),
    ("logout", Operation.LOGOUT, {"_soapheaders": {"session-key": KEY}}, None, CpaRequest(operation=Operation.LOGOUT, session_key=KEY)),
]


@pytest.mark.parametrize(("name", "op", "kwargs", "expected", "_parsed"), CASES, ids=[c[0] for c in CASES])
def test_zeep_sends_the_golden_request_and_reads_the_golden_response(
    zeep_client: tuple[zeep.Client, ReplayTransport], name: str, op: Operation, kwargs: dict[str, Any], expected: Any,
    _parsed: CpaRequest,
) -> None:
    client, transport = zeep_client
    transport.reply, transport.status = golden(f"{op.value}-response.xml"), 200
    result = client.service[op.value](**kwargs)
    sent, headers = transport.sent[-1]
    assert c14n(sent) == c14n(golden(f"{name}-request.xml"))
    assert headers["Content-Type"] == f'application/soap+xml; charset=utf-8; action="urn:cisco:epas:soap/{op.value}"'
    if op is Operation.GET_ALL_CONFIG:
        system = {p["name"]: p["_value_1"] for p in result["system-config"]["property"]}
        user = {p["name"]: p["_value_1"] for p in result["user-config"]["property"]}
        assert system == SYSTEM
        assert system["Presence.Relogin.LowerLimit"] == "120" and system["Presence.Relogin.UpperLimit"] == "537"
        assert user == USER_CONFIG
    else:
        assert result == expected


@pytest.mark.parametrize(("name", "op", "_kwargs", "_expected", "parsed"), CASES, ids=[c[0] for c in CASES])
def test_mock_parses_the_golden_request(name: str, op: Operation, _kwargs: object, _expected: object,
                                        parsed: CpaRequest) -> None:
    request = parse_request(golden(f"{name}-request.xml"), action=op.action)
    assert request == parsed
    assert (request.password, request.onetime_password) == (parsed.password, parsed.onetime_password)
    assert request.session_login is (name == "login-otp")
    assert "pass-user00001" not in repr(request) and "otp-user00001" not in repr(request)


def test_mock_builds_the_golden_responses() -> None:
    assert c14n(build_login_response(KEY)) == c14n(golden("login-response.xml"))
    assert c14n(build_get_all_config_response(SYSTEM, USER_CONFIG)) == c14n(golden("get-all-config-response.xml"))
    assert c14n(build_onetime_password_response(OTP)) == c14n(golden("get-onetime-password-response.xml"))
    assert c14n(build_logout_response()) == c14n(golden("logout-response.xml"))


@pytest.mark.parametrize("code", list(FaultCode), ids=[c.value for c in FaultCode])
def test_fault_golden_files_agree_both_ways(zeep_client: tuple[zeep.Client, ReplayTransport], code: FaultCode) -> None:
    data = golden(f"fault-{code.value}.xml")
    fault = SoapFault(code, FAULT_REASONS[code])
    assert c14n(build_fault(fault)) == c14n(data)
    client, transport = zeep_client
    transport.reply, transport.status = data, fault.http_status
    with pytest.raises(zeep.exceptions.Fault) as info:
        client.service["get-onetime-password"](_soapheaders={"session-key": KEY})
    assert info.value.message == FAULT_REASONS[code]
    assert info.value.code == f"env:{code.side.value}"
    errors = info.value.detail.findall("{urn:cisco:epas:soap}error")
    assert [e.get("code") for e in errors] == [code.value]


def test_fault_sides_and_http_status() -> None:
    sides = {code: code.side for code in FaultCode}
    assert {c for c, s in sides.items() if s is FaultSide.RECEIVER} == {FaultCode.SERVICES_STOPPED, FaultCode.SERVER_BUSY}
    assert SoapFault(FaultCode.BAD_CREDENTIALS, "x").http_status == 400
    assert SoapFault(FaultCode.SERVER_BUSY, "x").http_status == 500


def test_version_mismatch_golden_file() -> None:
    fault = SoapFault(FaultCode.MALFORMED_REQUEST, VERSION_MISMATCH_REASON, side=FaultSide.VERSION_MISMATCH)
    assert fault.http_status == 500
    assert c14n(build_fault(fault)) == c14n(golden("fault-version-mismatch.xml"))


def test_client_and_mock_wsdl_copies_are_byte_identical() -> None:
    for name in ("epas.wsdl", "epas.xsd"):
        mock_copy = (MOCK_WSDL_DIR / name).read_bytes()
        assert mock_copy == (CLIENT_WSDL.parent / name).read_bytes(), name
        assert len(mock_copy) > 1000


def test_every_golden_file_is_used() -> None:
    names = {p.name for p in GOLDEN.glob("*.xml")}
    expected = {f"{op.value}-{kind}.xml" for op in Operation for kind in ("request", "response")}
    expected |= {f"fault-{code.value}.xml" for code in FaultCode} | {"fault-version-mismatch.xml", "login-otp-request.xml"}
    assert names == expected
