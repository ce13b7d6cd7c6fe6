"""Full client logins against the in-process node pieces (real sockets on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from waiting import wait_until
from inproc_pair import NODES, fast_timeouts, inproc_pair, make_runtime

from jabberemu.config import ActivityRates, ClientSettings, ReloginLimits, SaslMechanism
from jabberemu.core.states import ClientState, EndReason
from jabberemu.driver import EmulatedClient
from jabberemu.runtime import CLIENT_EVENTS_FILE, RecordType, RunDataSink
from jabberemu.xmpp.client import PING_GRID_S, ping_phase

LOGIN_LABELS = ["soap/login", "soap/get-all-config", "soap/get-onetime-password", "xmpp/connect",
                "xmpp/auth", "xmpp/bind", "client/login"]


async def test_full_cpa_login_records_every_measurement(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with inproc_pair(4, lower_s=0.5, upper_s=3.0) as env:
        measured: list = []
        rt = await make_runtime(env, measurements=measured)
        user = env.user_ids(NODES[0])[0]
        client = EmulatedClient(user, env.password(user), NODES[0], rt)
        assert await asyncio.wait_for(client.start(), 10) is ClientState.XMPPCONNECTED

        assert [m.label for _c, m in measured] == LOGIN_LABELS
        assert all(m.ok and m.node == NODES[0] and m.response_time_ms > 0 for _c, m in measured)
        login_ms = measured[-1][1].response_time_ms
        assert login_ms >= sum(m.response_time_ms for _c, m in measured[:-1])
        # limits from get-all-config, hints from <mechanisms>, roster from the server
        assert client.machine.limits == ReloginLimits(lower_s=0.5, upper_s=3.0)
        assert client.machine.limits_node == NODES[0]
        assert client.hostname_hints == [NODES[0], NODES[1]]
        assert sorted(client.contacts) == sorted(f"{c}@example.test" for c in env.directory.contacts_of(user))
        assert client.machine.secondary is not None and client.machine.secondary.name == NODES[1]
        session = env.listeners[NODES[0]].sessions.get(f"{user}@example.test/jabberemu")
        await wait_until(lambda: session.presence is not None, what="initial presence on the server")
        assert rt.registry.snapshot().connected_by_node == {NODES[0]: 1}

        states = [(r["from"], r["to"]) for r in rt.sink.of_type(RecordType.STATE)]
        assert states == [("NEW", "SOAPCONNECT_P"), ("SOAPCONNECT_P", "SOAPCONNECTED"),
                          ("SOAPCONNECTED", "XMPPCONNECT_P"), ("XMPPCONNECT_P", "XMPPCONNECTED")]
        assert rt.sink.of_type(RecordType.CONNECTED)[0] | {"ts": 0} == {
            "type": "connected", "ts": 0, "client": user, "node": NODES[0], "relogin": False, "recovery_s": None}

        assert await client.stop() is ClientState.LOGGED_OUT
        assert measured[-1][1].label == "soap/logout" and measured[-1][1].ok
        assert rt.sink.of_type(RecordType.END)[0]["reason"] == "stop-requested"
        await wait_until(lambda: env.listeners[NODES[0]].session_count == 0, what="session closed")
        assert env.datastore.session_count == 0  # logout dropped the CPA session
        otps = [otp for otps in env.datastore._otps.values() for otp in otps]
        assert otps
        await rt.aclose()
    # no secret in the run data or the logs
    dump = json.dumps(rt.sink.records) + caplog.text
    for secret in [env.password(user), *otps]:
        assert secret not in dump


async def test_xmpp_only_plain_login_with_default_limits() -> None:
    async with inproc_pair(2) as env:
        measured: list = []
        settings = ClientSettings(xmpp_only=True, verify_tls=False, timeouts=fast_timeouts(),
                                  default_limits=ReloginLimits(lower_s=1, upper_s=2),
                                  password_mechanism=SaslMechanism.PLAIN)
        rt = await make_runtime(env, settings, measurements=measured)
        assert rt.cpa is None
        user = env.user_ids(NODES[1])[0]
        client = EmulatedClient(user, env.password(user), NODES[1], rt)
        assert await asyncio.wait_for(client.start(), 10) is ClientState.XMPPCONNECTED
        assert [m.label for _c, m in measured] == ["xmpp/connect", "xmpp/auth", "xmpp/bind", "client/login"]
        assert client.machine.limits == ReloginLimits(lower_s=1, upper_s=2)
        assert env.listeners[NODES[1]].counters["auths_ok"] == 1
        assert await client.stop() is ClientState.LOGGED_OUT
        await rt.aclose()


async def test_xmpp_only_wrong_password_gives_up_with_bad_credentials() -> None:
    async with inproc_pair(2) as env:
        settings = ClientSettings(xmpp_only=True, verify_tls=False, timeouts=fast_timeouts())
        rt = await make_runtime(env, settings)
        user = env.user_ids(NODES[0])[0]
        client = EmulatedClient(user, "wrong", NODES[0], rt)
        assert await asyncio.wait_for(client.start(), 10) is ClientState.GAVE_UP
        assert client.machine.end_reason is EndReason.BAD_CREDENTIALS
        assert client.machine.end_detail == "auth-failure:not-authorized"
        await rt.aclose()


async def test_starttls_login_when_offered() -> None:
    from mock_server.node.tls import server_context
    from mock_server.xmpp.settings import ListenerSettings

    ctx = server_context(["example.test", "127.0.0.1"])  # self-signed: verification off
    async with inproc_pair(2, listener=ListenerSettings(tls_required=True), server_ssl=ctx) as env:
        measured: list = []
        rt = await make_runtime(env, measurements=measured)
        user = env.user_ids(NODES[0])[0]
        client = EmulatedClient(user, env.password(user), NODES[0], rt)
        assert await asyncio.wait_for(client.start(), 10) is ClientState.XMPPCONNECTED
        assert client.xmpp is not None and client.xmpp.transport.get_extra_info("sslcontext") is rt.ssl_context
        assert env.listeners[NODES[0]].counters["tls_upgrades"] == 1
        assert "xmpp/connect" in [m.label for _c, m in measured]
        await client.stop()
        await rt.aclose()


async def test_messages_carry_latency_and_pings_are_measured() -> None:
    async with inproc_pair(2, contacts=1) as env:
        measured: list = []
        settings = ClientSettings(verify_tls=False, timeouts=fast_timeouts(ping_interval_s=0.05, ping_timeout_s=1))
        rt = await make_runtime(env, settings, measurements=measured)
        a, b = env.user_ids()
        ca = EmulatedClient(a, env.password(a), env.home(a), rt)
        cb = EmulatedClient(b, env.password(b), env.home(b), rt)
        await asyncio.wait_for(asyncio.gather(ca.start(), cb.start()), 10)
        assert ca.contacts == [f"{b}@example.test"]
        assert ca.send_message()
        await wait_until(lambda: any(m.label == "xmpp/message-latency" for _c, m in measured), what="latency")
        lat = [(c, m) for c, m in measured if m.label == "xmpp/message-latency"]
        assert lat[0][0] == b and 0 <= lat[0][1].response_time_ms < 1000
        await wait_until(lambda: sum(m.label == "xmpp/ping" for _c, m in measured) >= 4, what="pings")
        assert all(m.ok for _c, m in measured if m.label == "xmpp/ping")
        assert ca.change_presence()
        await asyncio.wait_for(asyncio.gather(ca.stop(), cb.stop()), 10)
        assert ca.send_message() is False
        await rt.aclose()


async def test_ping_interval_zero_schedules_no_ping() -> None:
    """``--ping-interval 0`` is off: a connected session has no keepalive timer (issue 19)."""
    async with inproc_pair(2) as env:
        rt_off = await make_runtime(env, ClientSettings(verify_tls=False, timeouts=fast_timeouts(ping_interval_s=0)))
        rt_on = await make_runtime(env, ClientSettings(verify_tls=False, timeouts=fast_timeouts(ping_interval_s=60)))
        a, b = env.user_ids()[:2]
        off = EmulatedClient(a, env.password(a), env.home(a), rt_off)
        on = EmulatedClient(b, env.password(b), env.home(b), rt_on)
        await asyncio.wait_for(asyncio.gather(off.start(), on.start()), 10)
        assert off.xmpp is not None and off.xmpp._ping_handle is None
        assert on.xmpp is not None and on.xmpp._ping_handle is not None
        await asyncio.wait_for(asyncio.gather(off.stop(), on.stop()), 10)
        await rt_off.aclose()
        await rt_on.aclose()


async def test_keepalive_pings_fall_due_on_the_process_grid() -> None:
    """60 s after the session came up, rounded up to the process's 0.25 s grid: every client of the process
    on the same instants."""
    async with inproc_pair(3) as env:
        rt = await make_runtime(env, ClientSettings(verify_tls=False, timeouts=fast_timeouts(ping_interval_s=60)))
        clients = [EmulatedClient(u, env.password(u), env.home(u), rt) for u in env.user_ids()[:3]]
        t0 = asyncio.get_running_loop().time()
        await asyncio.wait_for(asyncio.gather(*(c.start() for c in clients)), 10)
        t1 = asyncio.get_running_loop().time()
        phase = ping_phase(PING_GRID_S)
        assert 0.0 <= phase < PING_GRID_S and ping_phase(0.25, pid=1) != ping_phase(0.25, pid=2)
        for c in clients:
            assert c.xmpp is not None and c.xmpp._ping_handle is not None
            due = c.xmpp._ping_handle.when()
            steps = (due - phase) / PING_GRID_S
            assert steps == pytest.approx(round(steps), abs=1e-6)
            assert t0 + 60.0 <= due <= t1 + 60.0 + PING_GRID_S
        await asyncio.wait_for(asyncio.gather(*(c.stop() for c in clients)), 10)
        await rt.aclose()


async def test_activity_rates_drive_messages() -> None:
    async with inproc_pair(2, contacts=1) as env:
        measured: list = []
        settings = ClientSettings(verify_tls=False, timeouts=fast_timeouts(),
                                  activity=ActivityRates(messages_per_min=1200, presence_per_min=600))
        rt = await make_runtime(env, settings, measurements=measured)
        clients = [EmulatedClient(u, env.password(u), env.home(u), rt) for u in env.user_ids()]
        await asyncio.wait_for(asyncio.gather(*(c.start() for c in clients)), 10)
        await wait_until(lambda: sum(m.label == "xmpp/message-latency" for _c, m in measured) >= 5,
                         what="five messages")
        await asyncio.wait_for(asyncio.gather(*(c.stop() for c in clients)), 10)
        assert all(not c._activity for c in clients)
        await rt.aclose()


async def test_run_data_written_to_client_events_jsonl(tmp_path) -> None:
    async with inproc_pair(2) as env:
        sink = RunDataSink(tmp_path)
        rt = await make_runtime(env, sink=sink)
        user = env.user_ids()[0]
        client = EmulatedClient(user, env.password(user), env.home(user), rt)
        await asyncio.wait_for(client.start(), 10)
        await client.stop()
        await rt.aclose()
    lines = (tmp_path / CLIENT_EVENTS_FILE).read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == sink.written
    kinds = [r["type"] for r in records]
    assert kinds.count("state") == 5 and kinds.count("connected") == 1 and kinds[-1] in ("end", "request")
    assert all(isinstance(r["ts"], float) for r in records)


async def test_two_hundred_clients_log_in_on_one_loop() -> None:
    async with inproc_pair(200, contacts=2) as env:
        measured: list = []
        rt = await make_runtime(env, measurements=measured)
        clients = [EmulatedClient(u, env.password(u), env.home(u), rt) for u in env.user_ids()]
        states = await asyncio.wait_for(asyncio.gather(*(c.start() for c in clients)), 60)
        assert states == [ClientState.XMPPCONNECTED] * 200
        snap = rt.registry.snapshot()
        assert snap.connected_by_node == {NODES[0]: 100, NODES[1]: 100}
        assert sum(m.label == "client/login" and m.ok for _c, m in measured) == 200
        assert sum(lst.session_count for lst in env.listeners.values()) == 200
        ends = await asyncio.wait_for(asyncio.gather(*(c.stop() for c in clients)), 30)
        assert ends == [ClientState.LOGGED_OUT] * 200
        rt.registry.check()
        assert rt.registry.snapshot().by_state[ClientState.LOGGED_OUT] == 200
        await rt.aclose()
