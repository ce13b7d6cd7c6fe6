"""zeep, given only the WSDL the mock serves, runs a whole CPA session against a real socket."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import zeep
import zeep.exceptions
from aiohttp.test_utils import TestServer

from mock_server.cpa.app import CPA_METRICS, StaticCpaBackend, make_cpa_app
from mock_server.cpa.metrics import CpaCounter
from mock_server.cpa.properties import NodeContact
from mock_server.datastore import LoginDatastore
from mock_server.users import provision

NODES = ["imp1.example.test", "imp2.example.test"]
ServerFactory = Callable[..., Awaitable[TestServer]]


def make_backend() -> StaticCpaBackend:
    contacts = {
        name: NodeContact(name=name, xmpp_host="127.0.0.1", xmpp_port=5222 + i, cpa_url=f"http://127.0.0.1:{8081 + i}/EPASSoap/service/v80")
        for i, name in enumerate(NODES)
    }
    return StaticCpaBackend(
        node_name=NODES[0], domain="example.test", directory=provision(4, NODES, seed=1), contacts=contacts,
        datastore=LoginDatastore(node=NODES[0]), lower_limit_s=0.5, upper_limit_s=3,
        lower_limit_property="Test.Lower", upper_limit_property="Test.Upper",
    )


def run_session(wsdl_url: str) -> dict[str, Any]:
    """Blocking zeep session (runs in a worker thread while the server runs on the test's loop)."""
    transport = zeep.Transport(timeout=10, operation_timeout=10)
    try:
        client = zeep.Client(wsdl_url, transport=transport)
        key = client.service.login(username="user00001", password="pass-user00001", **{"client-type": "CUPC", "client-version": "14.1", "force": True})
        header = {"session-key": key}
        config = client.service["get-all-config"](_soapheaders=header)
        system = {p["name"]: p["_value_1"] for p in config["system-config"]["property"]}
        otp = client.service["get-onetime-password"](_soapheaders=header)
        logout = client.service["logout"](_soapheaders=header)
        faults = {}
        for label, call in (
            ("after-logout", lambda: client.service["get-all-config"](_soapheaders=header)),
            ("bad-password", lambda: client.service.login(username="user00001", password="nope")),
            ("other-node", lambda: client.service.login(username="user00002", password="pass-user00002")),
        ):
            try:
                call()
            except zeep.exceptions.Fault as fault:
                faults[label] = (fault.code, fault.detail.find("{urn:cisco:epas:soap}error").get("code"))
        return {"key": key, "system": system, "otp": otp, "logout": logout, "faults": faults}
    finally:
        transport.session.close()


@pytest.mark.parametrize("version", ["v80", "v105", "latest"])
async def test_zeep_with_only_the_served_wsdl(aiohttp_server: ServerFactory, version: str) -> None:
    backend = make_backend()
    server = await aiohttp_server(make_cpa_app(backend), host="127.0.0.1")
    wsdl_url = f"http://127.0.0.1:{server.port}/EPASSoap/service/{version}?wsdl"
    result = await asyncio.wait_for(asyncio.to_thread(run_session, wsdl_url), timeout=30)

    assert len(result["key"]) >= 32
    assert result["system"]["Test.Lower"] == "0.5" and result["system"]["Test.Upper"] == "3"
    assert result["system"]["Presence.Domain"] == "example.test"
    assert result["system"]["Presence.PrimaryServer.XmppPort"] == "5222"
    assert backend.datastore.check_otp("user00001", result["otp"])
    assert result["logout"] is None
    assert result["faults"] == {
        "after-logout": ("env:Sender", "unknown-session"),
        "bad-password": ("env:Sender", "bad-credentials"),
        "other-node": ("env:Sender", "not-served-here"),
    }
    totals = server.app[CPA_METRICS].totals
    assert (totals[CpaCounter.LOGIN_OK], totals[CpaCounter.LOGIN_FAILED]) == (1, 2)


def test_zeep_loads_the_bundled_wsdl_from_a_file_path() -> None:
    path = Path(__file__).resolve().parents[3] / "jabberemu" / "soap" / "wsdl" / "epas.wsdl"
    client = zeep.Client(str(path))
    ops = set(client.wsdl.services["EPASSoapService"].ports["EPASSoap"].binding._operations)
    assert ops == {"login", "get-all-config", "get-onetime-password", "logout"}
    service = client.create_service("{urn:cisco:epas:soap}EPASSoapBinding", "http://127.0.0.1:1/EPASSoap/service/v80")
    assert service._binding_options["address"] == "http://127.0.0.1:1/EPASSoap/service/v80"
