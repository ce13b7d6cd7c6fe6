"""Hostile and stalled servers: every failure ends in a named state and reason within the timeouts."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from client_support import SilentServer, free_port
from inproc_pair import DOMAIN, NODES, fast_timeouts, inproc_pair, make_runtime

from jabberemu.config import ClientSettings, NodeAddress, ReloginLimits, ServerPair
from jabberemu.core.states import ClientState, EndReason
from jabberemu.driver import EmulatedClient
from jabberemu.runtime import RecordType, Runtime

IMP1, IMP2 = NODES


async def test_bad_password_gives_up_with_bad_credentials() -> None:
    async with inproc_pair(2) as env:
        measured: list = []
        rt = await make_runtime(env, measurements=measured)
        user = env.user_ids(IMP1)[0]
        client = EmulatedClient(user, "not-the-password", IMP1, rt)
        assert await asyncio.wait_for(client.start(), 10) is ClientState.GAVE_UP
        assert (client.machine.end_reason, client.machine.end_detail) == (
            EndReason.BAD_CREDENTIALS, "soap-fault:bad-credentials")
        labels = [(m.label, m.ok) for _c, m in measured]
        assert labels == [("soap/login", False), ("client/login", False)]
        assert rt.registry.snapshot().end_reasons == {(ClientState.GAVE_UP, EndReason.BAD_CREDENTIALS): 1}
        await rt.aclose()


async def test_home_services_stopped_at_login_moves_to_backup() -> None:
    async with inproc_pair(2) as env:
        rt = await make_runtime(env)
        user = env.user_ids(IMP1)[0]
        env.fail_over(IMP1)
        client = EmulatedClient(user, env.password(user), IMP1, rt)
        assert await asyncio.wait_for(client.start(), 10) is ClientState.XMPPCONNECTED
        path = [(r["to"], r["node"], r["reason"]) for r in rt.sink.of_type(RecordType.STATE)]
        assert path == [
            ("SOAPCONNECT_P", IMP1, None),
            ("SOAPCONNECT_S", IMP2, "soap-fault:services-stopped"),
            ("SOAPCONNECTED", IMP2, None),
            ("XMPPCONNECT_P", IMP2, None),  # XMPP first on the node whose CPA signed the client in
            ("XMPPCONNECTED", IMP2, None),
        ]
        await client.stop()
        await rt.aclose()


def _pair_at(cpa_ports: list[int], xmpp_ports: list[int]) -> ServerPair:
    return ServerPair(domain=DOMAIN, nodes=tuple(
        NodeAddress(name=n, cpa_url=f"http://127.0.0.1:{c}/EPASSoap/service/v80", xmpp_host="127.0.0.1", xmpp_port=x)
        for n, c, x in zip(NODES, cpa_ports, xmpp_ports)))


async def _run_one(pair: ServerPair, settings: ClientSettings) -> tuple[EmulatedClient, Runtime, float]:
    rt = await Runtime.create(pair, settings)
    client = EmulatedClient("user00001", "pass-user00001", IMP1, rt)
    t0 = time.monotonic()
    state = await asyncio.wait_for(client.start(), 20)
    assert state in (ClientState.GAVE_UP, ClientState.XMPPCONNECTED)
    return client, rt, time.monotonic() - t0


@pytest.mark.parametrize(("status", "body", "detail"), [
    (200, b"<not-soap", "soap-fault:malformed-response"),
    (500, b"Internal Server Error", "soap-fault:http-500"),
    (200, b"<?xml version='1.0'?><env:Envelope xmlns:env='http://www.w3.org/2003/05/soap-envelope'>"
          b"<env:Body><x/></env:Body></env:Envelope>", "soap-fault:malformed-response"),
])
async def test_broken_cpa_answers_end_in_initial_login_failed(status: int, body: bytes, detail: str) -> None:
    async def handler(_request: web.Request) -> web.Response:
        return web.Response(status=status, body=body, content_type="application/soap+xml")

    app = web.Application()
    app.router.add_post("/EPASSoap/service/v80", handler)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        settings = ClientSettings(verify_tls=False, timeouts=fast_timeouts())
        client, rt, _elapsed = await _run_one(_pair_at([server.port] * 2, [free_port()] * 2), settings)
        assert (client.state, client.machine.end_reason) == (ClientState.GAVE_UP, EndReason.INITIAL_LOGIN_FAILED)
        assert client.machine.end_detail == detail
        states = [r["to"] for r in rt.sink.of_type(RecordType.STATE)]
        assert states == ["SOAPCONNECT_P", "SOAPCONNECT_S", "GAVE_UP"]
        await rt.aclose()
    finally:
        await server.close()


async def test_stalled_cpa_times_out_on_both_nodes() -> None:
    async with SilentServer() as silent:
        settings = ClientSettings(verify_tls=False, timeouts=fast_timeouts(soap_s=0.3))
        client, rt, elapsed = await _run_one(_pair_at([silent.port] * 2, [free_port()] * 2), settings)
        assert (client.state, client.machine.end_detail) == (ClientState.GAVE_UP, "timeout:soap")
        assert 0.6 <= elapsed < 2.0 and silent.accepted == 2
        await rt.aclose()


async def test_refused_cpa_ends_with_connection_refused() -> None:
    settings = ClientSettings(verify_tls=False, timeouts=fast_timeouts())
    client, rt, elapsed = await _run_one(_pair_at([free_port()] * 2, [free_port()] * 2), settings)
    assert (client.state, client.machine.end_detail) == (ClientState.GAVE_UP, "connection-refused")
    assert elapsed < 2.0
    await rt.aclose()


@pytest.mark.parametrize("stage", ["auth", "refused"])
async def test_xmpp_only_stall_or_refusal_is_named(stage: str) -> None:
    settings = ClientSettings(xmpp_only=True, verify_tls=False, timeouts=fast_timeouts(auth_s=0.3, connect_s=0.3))
    async with SilentServer() as silent:
        port = silent.port if stage == "auth" else free_port()
        client, rt, elapsed = await _run_one(_pair_at([1, 1], [port, port]), settings)
        expected = "timeout:auth" if stage == "auth" else "connection-refused"
        assert (client.state, client.machine.end_reason, client.machine.end_detail) == (
            ClientState.GAVE_UP, EndReason.INITIAL_LOGIN_FAILED, expected)
        assert elapsed < 2.0
        assert [r["to"] for r in rt.sink.of_type(RecordType.STATE)] == ["XMPPCONNECT_P", "XMPPCONNECT_S", "GAVE_UP"]
        await rt.aclose()


async def test_missing_limit_properties_use_defaults_and_warn_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="jabberemu")
    async with inproc_pair(4, lower_property="Other.Lower", upper_property="Other.Upper") as env:
        rt = await make_runtime(env)
        clients = [EmulatedClient(u, env.password(u), env.home(u), rt) for u in env.user_ids()]
        await asyncio.wait_for(asyncio.gather(*(c.start() for c in clients)), 10)
        assert all(c.machine.limits == ReloginLimits(lower_s=120, upper_s=537) for c in clients)
        assert rt.warned["limits-missing"] == 8  # two properties x four clients
        warnings = [r for r in caplog.records if "limits" in r.getMessage()]
        assert len(warnings) == 1 and "missing" in warnings[0].getMessage()
        await asyncio.wait_for(asyncio.gather(*(c.stop() for c in clients)), 10)
        await rt.aclose()


@pytest.mark.parametrize(("lower", "upper", "expected"), [
    ("3", "1", (1.0, 3.0)),  # lower > upper: swapped
    ("nan", "-4", (120.0, 537.0)),  # unusable: the defaults
    ("0.5", "1e9", (0.5, 1e9)),  # huge: kept (the server said so) but reported
])
async def test_absurd_limits_are_repaired_and_reported(lower: str, upper: str, expected: tuple[float, float]) -> None:
    async with inproc_pair(2) as env:
        for backend in env.cpa.values():
            props = backend.system_properties

            def patched(user: str, _orig=props) -> dict[str, str]:
                return {**_orig(user), "Presence.Relogin.LowerLimit": lower, "Presence.Relogin.UpperLimit": upper}

            backend.system_properties = patched  # type: ignore[method-assign]
        rt = await make_runtime(env)
        user = env.user_ids()[0]
        client = EmulatedClient(user, env.password(user), env.home(user), rt)
        assert await asyncio.wait_for(client.start(), 10) is ClientState.XMPPCONNECTED
        assert (client.machine.limits.lower_s, client.machine.limits.upper_s) == expected
        assert rt.warned["limits-absurd"] >= 1
        await client.stop()
        await rt.aclose()


async def test_stop_during_a_stalled_login_ends_logged_out() -> None:
    async with SilentServer() as silent:
        rt = await Runtime.create(_pair_at([silent.port] * 2, [1, 1]),
                                  ClientSettings(verify_tls=False, timeouts=fast_timeouts(soap_s=5)))
        client = EmulatedClient("user00001", "pw", IMP1, rt)
        await client.start(wait=False)
        assert client.state is ClientState.SOAPCONNECT_P
        assert await asyncio.wait_for(client.stop(), 2) is ClientState.LOGGED_OUT
        assert not client._ops and not client._closing
        assert rt.sink.of_type(RecordType.END)[0]["reason"] == "stop-requested"
        await rt.aclose()
