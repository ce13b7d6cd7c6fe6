"""HA events seen by the client: stream errors, resets, ping timeouts, both nodes down."""

from __future__ import annotations

import asyncio
from typing import Any

from waiting import wait_until
from inproc_pair import NODES, InProcPair, fast_timeouts, inproc_pair, make_runtime

from jabberemu.config import ClientSettings
from jabberemu.core.states import ClientState, EndReason
from jabberemu.driver import EmulatedClient
from jabberemu.runtime import RecordType, Runtime
from mock_server.xmpp.events import StreamCondition

LOWER_S, UPPER_S = 0.05, 0.3
IMP1, IMP2 = NODES


async def start_all(env: InProcPair, rt: Runtime, users: list[str]) -> list[EmulatedClient]:
    clients = [EmulatedClient(u, env.password(u), env.home(u), rt) for u in users]
    states = await asyncio.wait_for(asyncio.gather(*(c.start() for c in clients)), 20)
    assert states == [ClientState.XMPPCONNECTED] * len(users)
    return clients


def records_of(rt: Runtime, kind: RecordType, client: str) -> list[dict[str, Any]]:
    return [r for r in rt.sink.of_type(kind) if r["client"] == client]


#: The failover path: imp1's CPA refuses the session login (services stopped), imp2's signs the client in
#: with the cached one-time password, then XMPP on imp2 (the node whose CPA signed it in) with a fresh one.
MOVED = [("FAILOVER", None), ("SOAPCONNECT_SESSION_P", IMP1), ("SOAPCONNECT_SESSION_S", IMP2),
         ("SOAPCONNECTED", IMP2), ("XMPPCONNECT_P", IMP2), ("XMPPCONNECTED", IMP2)]


def relogin_path(rt: Runtime, client: str) -> list[tuple[str, str | None]]:
    """(state, node) entered after the first HA event."""
    ha_ts = records_of(rt, RecordType.HA_EVENT, client)[0]["ts"]
    return [(r["to"], r["node"]) for r in records_of(rt, RecordType.STATE, client) if r["ts"] >= ha_ts]


def connected_on(rt: Runtime, node: str) -> int:
    return rt.registry.snapshot().connected_by_node.get(node, 0)


async def test_failover_system_shutdown_then_fallback_home() -> None:
    async with inproc_pair(8, lower_s=LOWER_S, upper_s=UPPER_S) as env:
        measured: list = []
        rt = await make_runtime(env, measurements=measured)
        clients = await start_all(env, rt, env.user_ids())
        on_imp1 = env.user_ids(IMP1)
        assert len(on_imp1) == 4 and connected_on(rt, IMP1) == 4

        assert env.fail_over(IMP1) == 4
        await wait_until(lambda: connected_on(rt, IMP2) == 8, what="all on imp2")
        for user in on_imp1:
            (ha,) = records_of(rt, RecordType.HA_EVENT, user)
            assert (ha["node"], ha["cls"]) == (IMP1, "stream-error:system-shutdown")
            (wait,) = records_of(rt, RecordType.WAIT, user)
            assert LOWER_S <= wait["wait_s"] <= UPPER_S and (wait["lower_s"], wait["upper_s"]) == (LOWER_S, UPPER_S)
            attempt = next(r for r in records_of(rt, RecordType.STATE, user) if r["to"] == "SOAPCONNECT_SESSION_P")
            assert wait["wait_s"] - 0.005 <= attempt["ts"] - ha["ts"] <= wait["wait_s"] + 0.1
            assert relogin_path(rt, user) == MOVED
            (conn,) = [r for r in records_of(rt, RecordType.CONNECTED, user) if r["relogin"]]
            assert conn["node"] == IMP2 and conn["recovery_s"] >= wait["wait_s"]
        relogins = [m for c, m in measured if m.label == "ha/relogin"]
        waits = [m for c, m in measured if m.label == "ha/wait"]
        assert len(relogins) == 4 and all(m.ok and m.node == IMP2 for m in relogins)
        assert len(waits) == 4 and all(LOWER_S * 1000 <= m.response_time_ms <= UPPER_S * 1000 for m in waits)

        assert env.fall_back(IMP1) == 4
        await wait_until(lambda: connected_on(rt, IMP1) == 4 and connected_on(rt, IMP2) == 4, what="home again")
        for user in on_imp1:
            assert [r["cls"] for r in records_of(rt, RecordType.HA_EVENT, user)] == ["stream-error:system-shutdown"] * 2
            assert relogin_path(rt, user)[-4:] == [("SOAPCONNECT_SESSION_P", IMP1), ("SOAPCONNECTED", IMP1),
                                                   ("XMPPCONNECT_P", IMP1), ("XMPPCONNECTED", IMP1)]
        assert sum(m.label == "ha/relogin" for _c, m in measured) == 8
        await asyncio.wait_for(asyncio.gather(*(c.stop() for c in clients)), 10)
        rt.registry.check()
        await rt.aclose()


async def test_see_other_host_is_tried_first() -> None:
    async with inproc_pair(2, lower_s=LOWER_S, upper_s=UPPER_S) as env:
        rt = await make_runtime(env)
        (user,) = env.user_ids(IMP1)
        (client,) = await start_all(env, rt, [user])
        env.down.add(IMP1)  # imp2 now serves the user; imp1 redirects it there
        target = f"127.0.0.1:{env.listener_ports[IMP2]}"
        assert env.listeners[IMP1].shutdown_sessions(lambda u: u == user, StreamCondition.SEE_OTHER_HOST, target) == 1
        await wait_until(lambda: connected_on(rt, IMP2) == 1, what="moved to imp2")
        (ha,) = records_of(rt, RecordType.HA_EVENT, user)
        assert ha["cls"] == "stream-error:see-other-host"
        assert relogin_path(rt, user) == [("FAILOVER", None), ("SOAPCONNECT_SESSION_P", IMP2), ("SOAPCONNECTED", IMP2),
                                          ("XMPPCONNECT_P", IMP2), ("XMPPCONNECTED", IMP2)]
        assert client.machine.preferred_node is None  # used, then forgotten once connected
        await client.stop()
        await rt.aclose()


async def test_node_kill_gives_connection_reset_and_move() -> None:
    async with inproc_pair(4, lower_s=LOWER_S, upper_s=UPPER_S) as env:
        rt = await make_runtime(env)
        clients = await start_all(env, rt, env.user_ids())
        env.listeners[IMP1]._server.close()  # the killed node refuses new connections
        assert env.kill(IMP1) == 2
        await wait_until(lambda: connected_on(rt, IMP2) == 4, what="all on imp2")
        for user in env.user_ids(IMP1):
            (ha,) = records_of(rt, RecordType.HA_EVENT, user)
            assert (ha["node"], ha["cls"]) == (IMP1, "connection-reset")
            assert relogin_path(rt, user) == MOVED
        await asyncio.wait_for(asyncio.gather(*(c.stop() for c in clients)), 10)
        await rt.aclose()


async def test_ping_timeout_against_a_silent_server() -> None:
    async with inproc_pair(2, lower_s=LOWER_S, upper_s=UPPER_S) as env:
        measured: list = []
        settings = ClientSettings(verify_tls=False, timeouts=fast_timeouts(ping_interval_s=0.05, ping_timeout_s=0.2))
        rt = await make_runtime(env, settings, measurements=measured)
        (user,) = env.user_ids(IMP1)
        (client,) = await start_all(env, rt, [user])
        conn = env.listeners[IMP1].sessions.get(f"{user}@example.test/jabberemu")
        conn.transport.pause_reading()  # the server goes silent for this client
        env.down.add(IMP1)  # ... and imp2 takes the user over (imp1 redirects with see-other-host)
        await wait_until(lambda: bool(records_of(rt, RecordType.HA_EVENT, user)), what="HA event")
        (ha,) = records_of(rt, RecordType.HA_EVENT, user)
        assert (ha["node"], ha["cls"]) == (IMP1, "ping-timeout")
        failed = [m for _c, m in measured if m.label == "xmpp/ping" and not m.ok]
        assert len(failed) == 1 and failed[0].response_time_ms >= 200
        await wait_until(lambda: connected_on(rt, IMP2) == 1, what="re-login on imp2")
        assert relogin_path(rt, user) == MOVED
        await client.stop()
        conn.transport.abort()  # the mock's write_eof on this half-dead socket raises ENOTCONN
        await rt.aclose()


async def test_both_nodes_down_gives_up_after_two_rounds() -> None:
    async with inproc_pair(4, lower_s=LOWER_S, upper_s=UPPER_S) as env:
        measured: list = []
        rt = await make_runtime(env, measurements=measured)
        await start_all(env, rt, env.user_ids())
        env.fail_over(IMP2)
        env.fail_over(IMP1)
        await wait_until(lambda: rt.registry.snapshot().by_state[ClientState.GAVE_UP] == 4, timeout_s=10,
                         what="all gave up")
        snap = rt.registry.snapshot()
        assert snap.started == 4 and snap.end_reasons == {(ClientState.GAVE_UP, EndReason.RELOGIN_FAILED): 4}
        rt.registry.check()
        for user in env.user_ids():
            assert len(records_of(rt, RecordType.WAIT, user)) == 2  # two rounds, two waits
            (end,) = records_of(rt, RecordType.END, user)
            assert (end["state"], end["reason"], end["detail"]) == ("GAVE_UP", "relogin-failed",
                                                                    "soap-fault:services-stopped")
        failed = [m for _c, m in measured if m.label == "ha/relogin"]
        assert len(failed) == 4 and not any(m.ok for m in failed)
        await rt.aclose()
