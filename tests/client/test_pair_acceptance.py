"""Issue 4 acceptance: emulated clients against the real mock pair (``MockPair``: two node processes).

Failover and fallback move every client and bring it home, each re-login attempt falls in
[lower, upper + 0.5 s] after the stream closed, the waits pass a KS test against U[lower, upper],
and every re-login of both waves is one CPA session login (the cached one-time password) on the node
that serves the client afterwards, as the clients recorded it and as the nodes counted it;
a killed node moves its clients; both nodes killed -> every client GAVE_UP after two rounds, and
the registry accounts for all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from waiting import wait_until
from scipy import stats

from jabberemu.config import ClientSettings, ServerPair, Timeouts
from jabberemu.core.states import ClientState, EndReason
from jabberemu.driver import EmulatedClient
from jabberemu.runtime import RecordType, Runtime
from mock_server.pair.runner import MockPair
from mock_server.pair_config import PairConfig
from mock_server.users import provision

pytestmark = pytest.mark.slow

LOWER_S, UPPER_S = 2.0, 8.0  # 300 re-logins over 6 s: ~50/s, light enough that timers fire on time
# Heartbeat timeouts generous enough for a loaded 2-core box (only manual actions use PARAMS);
# the kill test needs the survivor to notice within the first re-login wait: KILL_PARAMS.
PARAMS = ("heartbeat_interval_s=0.2", "heartbeat_timeout_s=5", "init_heartbeat_timeout_s=5",
          "critical_service_delay_s=0.3", f"relogin_lower_s={LOWER_S}", f"relogin_upper_s={UPPER_S}")
KILL_PARAMS = ("heartbeat_interval_s=0.2", "heartbeat_timeout_s=1.2", "init_heartbeat_timeout_s=5",
               "critical_service_delay_s=0.3", "relogin_lower_s=2", "relogin_upper_s=4")


@contextlib.asynccontextmanager
async def clients_on_pair(users: int, params: tuple[str, ...] = PARAMS
                          ) -> AsyncIterator[tuple[MockPair, Runtime, list[EmulatedClient]]]:
    config = PairConfig(users=users, params=params, contacts=2)
    homes = {u.user_id: u.home_node for u in provision(users, config.node_names, seed=config.seed, contacts=0)}
    async with MockPair(config) as pair:
        await pair.wait_for_states({n: "Normal" for n in config.node_names}, timeout_s=20)
        settings = ClientSettings(verify_tls=False, timeouts=Timeouts(soap_s=10, connect_s=5, auth_s=10, bind_s=10))
        rt = await Runtime.create(ServerPair.from_topology(pair.topology), settings, run_seed=11)
        clients = [EmulatedClient(u, f"pass-{u}", homes[u], rt) for u in sorted(homes)]
        gate = asyncio.Semaphore(100)

        async def start(c: EmulatedClient) -> ClientState:
            async with gate:
                return await c.start()

        states = await asyncio.wait_for(asyncio.gather(*(start(c) for c in clients)), 90)
        assert states.count(ClientState.XMPPCONNECTED) == users
        try:
            yield pair, rt, clients
        finally:
            await asyncio.wait_for(asyncio.gather(*(c.stop(timeout_s=2) for c in clients)), 30)
            await rt.aclose()


def connected(rt: Runtime, node: str) -> int:
    return rt.registry.snapshot().connected_by_node.get(node, 0)


def by_client(rt: Runtime, kind: RecordType, since: float) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rt.sink.of_type(kind):
        if r["ts"] >= since:
            out.setdefault(r["client"], []).append(r)
    return out


def check_session_logins(rt: Runtime, movers: set[str], since: float, node: str) -> None:
    """Each mover's re-login was exactly one CPA session login served by ``node`` (the node it is
    connected to now), sent after its drawn wait, then XMPP there; no password login."""
    logins = by_client(rt, RecordType.REQUEST, since)
    for user in movers:
        cpa = [r for r in logins[user] if r["request_type"] == "soap" and r["name"] in ("login", "session-login")]
        served = [r for r in cpa if r["ok"]]
        assert [(r["name"], r["node"]) for r in served] == [("session-login", node)], (user, cpa)
        assert all(r["name"] == "session-login" for r in cpa)  # a refusal by the failed node at most
        (connected,) = by_client(rt, RecordType.CONNECTED, since)[user]
        assert connected["node"] == node and connected["ts"] >= served[0]["ts"]


async def session_logins_served(pair: MockPair, after_ts: float) -> dict[str, int]:
    """Node -> CPA session logins it served, from its per-second counters (all rows after ``after_ts``)."""
    names = [n["name"] for n in pair.topology["nodes"]]
    while True:
        rows = (await pair.admin("GET", "/api/metrics"))["metrics"]
        if all(any(r["node"] == n and r["ts"] > after_ts for r in rows) for n in names):
            break
        await asyncio.sleep(0.1)
    return {n: sum(r.get("cpa_session_logins_ok") or 0 for r in rows if r["node"] == n) for n in names}


def check_wave(rt: Runtime, movers: set[str], since: float, cls: str) -> list[float]:
    """Every mover saw one HA event of class ``cls``; its first re-login attempt came between lower
    and upper + 0.5 s after it; returns the drawn waits."""
    ha = by_client(rt, RecordType.HA_EVENT, since)
    states = by_client(rt, RecordType.STATE, since)
    waits = by_client(rt, RecordType.WAIT, since)
    assert set(ha) == movers
    drawn = []
    for user in movers:
        (event,) = ha[user]
        assert event["cls"] == cls, event
        attempt = next(r for r in states[user] if r["to"] == "SOAPCONNECT_SESSION_P")
        delay_s = attempt["ts"] - event["ts"]
        assert LOWER_S <= delay_s <= UPPER_S + 0.5, (user, delay_s)
        wait = waits[user][0]
        assert (wait["lower_s"], wait["upper_s"]) == (LOWER_S, UPPER_S)
        assert delay_s >= wait["wait_s"] - 0.005  # never early (late = loop lag on a busy box)
        drawn.append(wait["wait_s"])
    return drawn


async def test_failover_and_fallback_of_300_clients() -> None:
    async with clients_on_pair(300) as (pair, rt, clients):
        n1, n2 = (n["name"] for n in pair.topology["nodes"])
        movers = {c.user_id for c in clients if c.machine.node == n1}
        assert len(movers) == 150 and connected(rt, n1) == 150

        since = rt.now_ts()
        await pair.admin("POST", "/api/failover", {"node": n1})
        await wait_until(lambda: connected(rt, n2) == 300, timeout_s=UPPER_S + 20, what="all on the backup")
        waits = check_wave(rt, movers, since, "stream-error:system-shutdown")
        ks = stats.kstest(waits, "uniform", args=(LOWER_S, UPPER_S - LOWER_S))
        assert ks.pvalue > 0.01, ks
        relogged = by_client(rt, RecordType.CONNECTED, since)
        assert all(r[-1]["relogin"] and r[-1]["node"] == n2 for u, r in relogged.items() if u in movers)
        check_session_logins(rt, movers, since, n2)
        assert await session_logins_served(pair, rt.now_ts()) == {n1: 0, n2: 150}

        since = rt.now_ts()
        await pair.admin("POST", "/api/fallback", {"node": n1})
        await wait_until(lambda: connected(rt, n1) == 150 and connected(rt, n2) == 150, timeout_s=UPPER_S + 20,
                         what="home again")
        waits = check_wave(rt, movers, since, "stream-error:system-shutdown")
        assert stats.kstest(waits, "uniform", args=(LOWER_S, UPPER_S - LOWER_S)).pvalue > 0.01
        check_session_logins(rt, movers, since, n1)
        assert await session_logins_served(pair, rt.now_ts()) == {n1: 150, n2: 150}
        assert all(c.machine.node == c.machine.primary.name for c in clients)
        snap = rt.registry.snapshot()
        assert snap.started == 300 and snap.by_state[ClientState.XMPPCONNECTED] == 300
        rt.registry.check()


async def test_node_kill_moves_its_clients() -> None:
    async with clients_on_pair(100, KILL_PARAMS) as (pair, rt, clients):
        n1, n2 = (n["name"] for n in pair.topology["nodes"])
        movers = {c.user_id for c in clients if c.machine.node == n1}
        since = rt.now_ts()
        await pair.admin("POST", f"/api/nodes/{n1}/kill")
        await wait_until(lambda: connected(rt, n2) == 100, timeout_s=40, what="all on the survivor")
        ha = by_client(rt, RecordType.HA_EVENT, since)
        assert set(ha) == movers
        assert {r[0]["cls"] for r in ha.values()} <= {"connection-reset", "ping-timeout", "connection-closed"}
        assert {r[0]["cls"] for r in ha.values()} >= {"connection-reset"}
        rt.registry.check()


async def test_both_nodes_killed_every_client_gives_up_after_two_rounds() -> None:
    async with clients_on_pair(100) as (pair, rt, clients):
        n1, n2 = (n["name"] for n in pair.topology["nodes"])
        await pair.admin("POST", f"/api/nodes/{n1}/kill")
        await pair.admin("POST", f"/api/nodes/{n2}/kill")
        await wait_until(lambda: rt.registry.snapshot().by_state[ClientState.GAVE_UP] == 100,
                         timeout_s=2 * UPPER_S + 30, what="all gave up")
        snap = rt.registry.snapshot()
        assert snap.started == 100
        assert snap.end_reasons == {(ClientState.GAVE_UP, EndReason.RELOGIN_FAILED): 100}
        rt.registry.check()
        waits = by_client(rt, RecordType.WAIT, 0)
        assert all(len(waits[c.user_id]) == 2 for c in clients)  # two rounds each
        ends = rt.sink.of_type(RecordType.END)
        assert len(ends) == 100 and {e["detail"] for e in ends} == {"connection-refused"}
