"""The CPA fast path sends zeep's exact bytes and reads answers as zeep does (jabberemu.soap.fastpath)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
from lxml import etree
from zeep.wsdl.utils import etree_to_string

from jabberemu.soap.cpa import CpaClient, load_wsdl
from jabberemu.soap.fastpath import MISS, escape_text, read_success
from jabberemu.soap.transport import AiohttpTransport

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "soap"
CT = "application/soap+xml; charset=utf-8"

TRICKY = ["user00001", "pass-user00001", "a&b", "<x>", "]]>", "quote\"and'apos", "tab\there", "new\nline",
          "ünïcødé ☃ 𝄞", "&amp;", "  spaced  ", ""]


@pytest.fixture(scope="module")
def cpa() -> CpaClient:
    return CpaClient(load_wsdl(), AiohttpTransport())


def zeep_bytes(cpa: CpaClient, op: str, kwargs: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    envelope, headers = cpa._binding._create(op, (), kwargs, client=cpa._client, options={"address": "http://x/"})
    return etree_to_string(envelope), dict(headers)


@pytest.mark.parametrize("value", TRICKY)
def test_login_request_bytes_equal_zeeps(cpa: CpaClient, value: str) -> None:
    template = cpa._templates["login"]
    fast = template.render({"username": value, "password": value[::-1]})
    ref, headers = zeep_bytes(cpa, "login", cpa._zeep_kwargs("login", {"username": value, "password": value[::-1]}))
    assert fast == ref
    assert template.headers == headers


@pytest.mark.parametrize("value", TRICKY)
def test_session_login_request_bytes_equal_zeeps(cpa: CpaClient, value: str) -> None:
    """The session login: ``login`` with ``onetime-password`` in place of ``password``."""
    template = cpa._templates["session-login"]
    fast = template.render({"username": value, "otp": value[::-1]})
    ref, headers = zeep_bytes(cpa, "login", cpa._zeep_kwargs("session-login", {"username": value, "otp": value[::-1]}))
    assert fast == ref
    assert b"onetime-password>" in ref and b"<ns0:password>" not in ref
    assert template.headers == headers


@pytest.mark.parametrize("op", ["get-all-config", "get-onetime-password", "logout"])
@pytest.mark.parametrize("key", ["K-0123456789abcdef", "k&<>\"'", "ключ"])
def test_session_key_request_bytes_equal_zeeps(cpa: CpaClient, op: str, key: str) -> None:
    fast = cpa._templates[op].render({"session_key": key})
    ref, headers = zeep_bytes(cpa, op, {"_soapheaders": {"session-key": key}})
    assert fast == ref
    assert cpa._templates[op].headers == headers


def test_golden_requests_match_after_canonicalisation(cpa: CpaClient) -> None:
    def c14n(data: bytes) -> str:
        return str(etree.canonicalize(etree.fromstring(data), strip_text=True, rewrite_prefixes=True))

    login = cpa._templates["login"].render({"username": "user00001", "password": "pass-user00001"})
    assert login is not None and c14n(login) == c14n((GOLDEN / "login-request.xml").read_bytes())
    session = cpa._templates["session-login"].render({"username": "user00001", "otp": "otp-user00001"})
    assert session is not None and c14n(session) == c14n((GOLDEN / "login-otp-request.xml").read_bytes())
    for op in ("get-all-config", "get-onetime-password", "logout"):
        body = cpa._templates[op].render({"session_key": "K-0123456789abcdef"})
        assert body is not None and c14n(body) == c14n((GOLDEN / f"{op}-request.xml").read_bytes())


@pytest.mark.parametrize("value", ["cr\rhere", "nul\x00", "bell\x07", "lone\ud800", "\ufffe"])
def test_values_lxml_writes_otherwise_are_left_to_zeep(cpa: CpaClient, value: str) -> None:
    assert escape_text(value) is None
    assert cpa._templates["login"].render({"username": value, "password": "p"}) is None


def zeep_reply(cpa: CpaClient, op: str, status: int, content: bytes) -> Any:
    response = requests.Response()
    response.status_code, response._content, response.encoding = status, content, "utf-8"
    response.headers["Content-Type"] = CT
    return cpa._binding.process_reply(cpa._client, cpa._binding.get(op), response)


def test_golden_answers_read_as_zeep_reads_them(cpa: CpaClient) -> None:
    for op in ("login", "get-onetime-password"):
        data = (GOLDEN / f"{op}-response.xml").read_bytes()
        fast = read_success(op, 200, data, CT)
        assert fast == zeep_reply(cpa, op, 200, data)
        assert fast in ("K-0123456789abcdef", "OTP-fedcba9876543210")
    data = (GOLDEN / "get-all-config-response.xml").read_bytes()
    system, user = read_success("get-all-config", 200, data, CT)
    ref = zeep_reply(cpa, "get-all-config", 200, data)
    assert system == {p["name"]: p["_value_1"] for p in ref["system-config"]["property"]}
    assert user == {p["name"]: p["_value_1"] for p in ref["user-config"]["property"]}
    assert system["Presence.Relogin.UpperLimit"] == "537" and len(system) == 11
    assert read_success("logout", 200, (GOLDEN / "logout-response.xml").read_bytes(), CT) is None


def test_escaped_and_spaced_values_read_as_zeep_reads_them(cpa: CpaClient) -> None:
    data = (GOLDEN / "login-response.xml").read_bytes().replace(b"K-0123456789abcdef", b" K&amp;&lt;1 <!-- c --> ")
    assert read_success("login", 200, data, CT) == zeep_reply(cpa, "login", 200, data) == " K&<1  "


@pytest.mark.parametrize("name", sorted(p.name for p in GOLDEN.glob("fault-*.xml")))
def test_faults_are_left_to_zeep(name: str) -> None:
    data = (GOLDEN / name).read_bytes()
    for op in ("login", "get-all-config", "get-onetime-password", "logout"):
        assert read_success(op, 500, data, CT) is MISS
        assert read_success(op, 200, data, CT) is MISS  # a fault with a wrong status too


@pytest.mark.parametrize("mutation", [
    lambda d: d.replace(b"<epas:success>", b"<epas:success><epas:extra/>"),  # unexpected element
    lambda d: d.replace(b"2003/05/soap-envelope", b"2003/05/soap-envelopX"),  # wrong namespace
    lambda d: d.replace(b"<env:Body>", b"<env:Header><epas:x/></env:Header><env:Body>"),  # header entry
    lambda d: b'<!DOCTYPE x [<!ENTITY e "v">]>' + d.split(b"?>", 1)[1],  # DTD
    lambda d: d[:-20],  # truncated
    lambda d: b"",  # empty
    lambda d: d.replace(b"K-0123456789abcdef", b""),  # empty session key
])
def test_unexpected_login_answers_are_left_to_zeep(mutation: Any) -> None:
    data = mutation((GOLDEN / "login-response.xml").read_bytes())
    assert read_success("login", 200, data, CT) is MISS


def test_wrong_operation_and_multipart_are_left_to_zeep() -> None:
    data = (GOLDEN / "login-response.xml").read_bytes()
    assert read_success("get-onetime-password", 200, data, CT) is MISS
    assert read_success("login", 200, data, "multipart/related; type=x") is MISS
    assert read_success("login", 201, data, CT) is MISS
