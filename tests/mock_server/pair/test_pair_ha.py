"""Issue 3 on the real pair (two node processes, heartbeat 0.1 s, timeout 0.5 s, critical service
delay 0.3 s): every HA drill asserts both nodes' states and reasons in order from ``/api/events``,
and what real clients see: XMPP streams closed with ``<system-shutdown/>`` (or reset when a node is
killed), CPA faults, and where the users are accepted afterwards."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import aiohttp
import pytest
from pair_support import N1, N2, cpa_url, online, soap, soap_login_otp, wait_transitions, xmpp_port
from raw_xmpp import RawXmppClient
from waiting import wait_until

from mock_server.pair.runner import MockPair

pytestmark = pytest.mark.asyncio(loop_scope="module")

U1, U2, U3 = "user00001", "user00002", "user00003"  # homes: imp1, imp2, imp1; U1 and U2 are contacts
CSD, ADMIN, DB = "Critical Service Down", "On Admin Request", "Database Failure"


async def still_served(probe: RawXmppClient) -> None:
    assert b"result" in await probe.ping(f"alive-{time.monotonic_ns()}")


async def shut_down(probe: RawXmppClient) -> None:
    closed = await probe.closed()
    assert (closed.stream_error, closed.reset) == ("system-shutdown", False), closed


async def back_to_normal(pair: MockPair, *, start: tuple[str, str] | None = None, fallback: str | None = None,
                         recover: bool = False, params: dict[str, Any] | None = None) -> None:
    """Best effort to leave the shared pair Normal for the next test (the pool starts a fresh
    pair when this does not work out, so nothing here is asserted)."""
    with contextlib.suppress(Exception):
        if params:
            await pair.admin("PUT", "/api/parameters", params)
        if start:
            await pair.admin("POST", f"/api/nodes/{start[0]}/services/{start[1]}/start")
        if recover:
            await pair.admin("POST", "/api/recover")
        if fallback:
            await pair.wait_for_states({fallback: "Failed Over"}, timeout_s=2)
            await pair.admin("POST", "/api/fallback", {"node": fallback})
        await pair.wait_for_states({N1: "Normal", N2: "Normal"}, timeout_s=3)


def ts_of(events: list[dict[str, Any]], node: str, to: str) -> float:
    return next(e["ts"] for e in events if e.get("kind") == "transition" and e["node"] == node and e["to"] == to)


async def test_manual_failover_and_fallback(pair: MockPair, http: aiohttp.ClientSession) -> None:
    a, b = await online(pair, N1, U1), await online(pair, N2, U2)
    since = time.time()
    await pair.admin("POST", "/api/failover", {"node": N1})
    events = await wait_transitions(pair, since, {
        N1: [("Failing Over", ADMIN), ("Idle", ADMIN)],
        N2: [("Taking Over", ADMIN), ("Running in Backup Mode", ADMIN)],
    })
    assert ts_of(events, N1, "Failing Over") < ts_of(events, N2, "Taking Over") < ts_of(events, N1, "Idle")
    await shut_down(a)  # the failing node closes its users' streams
    await still_served(b)  # the peer's own users are not touched
    assert [e["count"] for e in events if e["kind"] == "disconnect"] == [1]
    # CPA: the failed node answers "services stopped"; the backup serves the user
    assert (await soap(http, cpa_url(pair, N1), "login", user=U1)).fault == "services-stopped"
    otp = await soap_login_otp(http, cpa_url(pair, N2), U1)
    a2 = await online(pair, N2, U1, otp=otp)
    # the home node, services stopped, sends the user to the node serving it now
    probe = await RawXmppClient.open(xmpp_port(pair, N1))
    got = await probe.auth(U3)
    assert b"<stream:error><see-other-host" in got, got
    assert f">127.0.0.1:{xmpp_port(pair, N2)}<".encode() in got
    assert not (await probe.closed()).reset

    since = time.time()
    await pair.admin("POST", "/api/fallback", {"node": N1})
    events = await wait_transitions(pair, since, {
        N1: [("Taking Back", ADMIN), ("Normal", "Normal")],
        N2: [("Falling Back", ADMIN), ("Normal", "Normal")],
    })
    assert ts_of(events, N1, "Taking Back") < ts_of(events, N2, "Falling Back")
    await shut_down(a2)  # the backup closes the failed-over users' streams
    await still_served(b)
    (await online(pair, N1, U1)).close()  # home again
    assert (await soap(http, cpa_url(pair, N2), "login", user=U1)).fault == "not-served-here"
    b.close()


async def test_see_other_host_names_the_node_serving_the_user(pair: MockPair, http: aiohttp.ClientSession) -> None:
    probe = await RawXmppClient.open(xmpp_port(pair, N1))
    got = await probe.auth(U2)  # homed on imp2, which is Normal
    assert b"<see-other-host" in got and f">127.0.0.1:{xmpp_port(pair, N2)}<".encode() in got, got
    closed = await probe.closed()
    assert not closed.reset
    fault = await soap(http, cpa_url(pair, N1), "login", user=U2)
    assert fault.fault == "not-served-here" and N2 in fault.body


async def test_critical_service_stopped_past_the_delay_fails_over(pair: MockPair, http: aiohttp.ClientSession) -> None:
    a = await online(pair, N1, U1)
    since = time.time()
    await pair.admin("POST", f"/api/nodes/{N1}/services/presence-engine/stop")
    events = await wait_transitions(pair, since, {
        N1: [("Failing Over", CSD), ("Failed Over with Critical Services not Running", CSD)],
        N2: [("Taking Over", CSD), ("Running in Backup Mode", CSD)],
    })
    stopped = next(e["ts"] for e in events if e["kind"] == "service" and e["to"] == "stopped")
    assert ts_of(events, N1, "Failing Over") - stopped >= 0.3  # Critical Service Delay
    await shut_down(a)
    assert (await soap(http, cpa_url(pair, N1), "login", user=U1)).fault == "services-stopped"
    (await online(pair, N2, U1, otp=await soap_login_otp(http, cpa_url(pair, N2), U1))).close()

    since = time.time()
    await pair.admin("POST", f"/api/nodes/{N1}/services/presence-engine/start")
    await wait_transitions(pair, since, {N1: [("Failed Over", CSD)], N2: []})
    since = time.time()
    await pair.admin("POST", "/api/fallback", {"node": N1})
    await wait_transitions(pair, since, {
        N1: [("Taking Back", ADMIN), ("Normal", "Normal")], N2: [("Falling Back", ADMIN), ("Normal", "Normal")],
    })


async def test_node_kill_is_peer_down_and_backup_mode_then_restart(pair: MockPair, http: aiohttp.ClientSession) -> None:
    watcher = await online(pair, N1, U1)  # contact of U2
    victim = await online(pair, N2, U2)
    await watcher.read_until(rb"<presence from='user00002@example.test/probe'")
    since = time.time()
    await pair.admin("POST", f"/api/nodes/{N2}/kill")
    closed = await victim.closed()
    assert (closed.stream_error, closed.reset) == (None, True), closed  # vanished: reset, no stream error
    events = await wait_transitions(pair, since, {N1: [("Running in Backup Mode", "Peer Down")], N2: []})
    killed = next(e["ts"] for e in events if e["kind"] == "admin")
    # Heartbeat Timeout 0.5 s after the last beat heard, which came at most one interval (0.1 s) before
    assert 0.4 - 0.02 <= ts_of(events, N1, "Running in Backup Mode") - killed < 1.5
    # the survivor tells U2's contacts that U2 is gone, and serves U2 now
    await watcher.read_until(rb"<presence type='unavailable' from='user00002@example.test/probe'/>")
    status = await pair.admin("GET", "/api/status")
    assert [(n["name"], n["alive"]) for n in status["nodes"]] == [(N1, True), (N2, False)]
    moved = await online(pair, N1, U2, otp=await soap_login_otp(http, cpa_url(pair, N1), U2))
    await watcher.read_until(rb"<presence from='user00002@example.test/probe'")

    since = time.time()
    await pair.admin("POST", f"/api/nodes/{N2}/restart")
    events = await wait_transitions(pair, since, {N1: [], N2: [("Failed Over", "Initialization")]})
    assert [e["action"] for e in events if e["kind"] == "process"] == ["started"]
    since = time.time()
    await pair.admin("POST", "/api/fallback", {"node": N2})
    await wait_transitions(pair, since, {
        N1: [("Falling Back", ADMIN), ("Normal", "Normal")], N2: [("Taking Back", ADMIN), ("Normal", "Normal")],
    })
    await shut_down(moved)
    await still_served(watcher)
    (await online(pair, N2, U2)).close()
    watcher.close()


async def test_partition_then_heal_is_split_ownership_until_recover(pair: MockPair) -> None:
    a, b = await online(pair, N1, U1), await online(pair, N2, U2)
    since = time.time()
    await pair.admin("POST", "/api/partition")
    await wait_transitions(pair, since, {
        N1: [("Running in Backup Mode", "Peer Down")], N2: [("Running in Backup Mode", "Peer Down")],
    })
    # each side believes the other is down and serves everybody: U2 logs in on imp1 too
    split = await online(pair, N1, U2, resource="split")
    await still_served(a)
    await still_served(b)
    since = time.time()
    await pair.admin("POST", "/api/heal")
    await wait_transitions(pair, since, {
        N1: [("Running in Failed Mode", "Peer Down")], N2: [("Running in Failed Mode", "Peer Down")],
    })
    status = await pair.admin("GET", "/api/status")
    assert [n["actions"] for n in status["nodes"]] == [["recover"], ["recover"]]
    since = time.time()
    await pair.admin("POST", "/api/recover")
    await wait_transitions(pair, since, {
        N1: [("Initializing", "Initialization"), ("Normal", "Normal")],
        N2: [("Initializing", "Initialization"), ("Normal", "Normal")],
    })
    await shut_down(split)  # the peer's user on imp1 goes home
    await still_served(a)
    await still_served(b)
    a.close()
    b.close()


async def test_critical_service_down_on_the_backup_while_failed_over(pair: MockPair, http: aiohttp.ClientSession) -> None:
    await pair.admin("POST", f"/api/nodes/{N1}/services/presence-engine/stop")
    await pair.wait_for_states({N1: "Failed Over with Critical Services not Running", N2: "Running in Backup Mode"})
    await pair.admin("POST", f"/api/nodes/{N1}/services/presence-engine/start")
    await pair.wait_for_states({N1: "Failed Over", N2: "Running in Backup Mode"})
    moved = await online(pair, N2, U1, otp=await soap_login_otp(http, cpa_url(pair, N2), U1))
    own = await online(pair, N2, U2)
    since = time.time()
    await pair.admin("POST", f"/api/nodes/{N2}/services/xcp-router/stop")
    # automatic recovery: the healthy Failed Over peer takes its users back, then the backup fails
    # over its own users to it, so every user moves
    await wait_transitions(pair, since, {
        N1: [("Taking Back", CSD), ("Normal", "Normal"), ("Taking Over", CSD), ("Running in Backup Mode", CSD)],
        N2: [("Falling Back", CSD), ("Failing Over", CSD), ("Failed Over with Critical Services not Running", CSD)],
    })
    await shut_down(moved)
    await shut_down(own)
    for user in (U1, U2):
        (await online(pair, N1, user, otp=await soap_login_otp(http, cpa_url(pair, N1), user))).close()
    assert (await soap(http, cpa_url(pair, N2), "login", user=U2)).fault == "services-stopped"
    await back_to_normal(pair, start=(N2, "xcp-router"), fallback=N2)


async def test_critical_service_down_on_the_backup_after_manual_failover(pair: MockPair) -> None:
    await pair.admin("POST", "/api/failover", {"node": N1})
    await pair.wait_for_states({N1: "Idle", N2: "Running in Backup Mode"})
    b = await online(pair, N2, U2)
    since = time.time()
    await pair.admin("POST", f"/api/nodes/{N2}/services/xcp-router/stop")
    # the Idle node's services were stopped by the admin: nobody can take the users: both failed
    await wait_transitions(pair, since, {
        N1: [("Running in Failed Mode", CSD)], N2: [("Running in Failed Mode", CSD)],
    })
    status = await pair.admin("GET", "/api/status")
    assert [n["actions"] for n in status["nodes"]] == [["recover"], ["recover"]]
    b.close()
    await back_to_normal(pair, start=(N2, "xcp-router"), recover=True)


async def test_enabling_ha_while_a_critical_service_is_down_fails_over_at_once(pair: MockPair, http: aiohttp.ClientSession) -> None:
    since = time.time()
    await pair.admin("POST", "/api/ha", {"enabled": False})
    await wait_transitions(pair, since, {
        N1: [("Unknown", "High Availability Not Enabled")], N2: [("Unknown", "High Availability Not Enabled")],
    })
    a = await online(pair, N1, U1)
    await pair.admin("POST", f"/api/nodes/{N1}/services/ids-database/stop")
    t_stop = time.time()
    await wait_until(lambda: time.time() - t_stop > 0.5, what="past the critical service delay")
    events = (await pair.admin("GET", f"/api/events?since={t_stop}"))["events"]
    assert [e for e in events if e["kind"] == "transition"] == []  # HA off: no failover
    await still_served(a)

    since = time.time()
    await pair.admin("POST", "/api/ha", {"enabled": True})
    await wait_transitions(pair, since, {
        N1: [("Initializing", "Initialization"), ("Failing Over", DB),
             ("Failed Over with Critical Services not Running", DB)],
        N2: [("Initializing", "Initialization"), ("Taking Over", DB), ("Running in Backup Mode", DB)],
    })
    await shut_down(a)
    (await online(pair, N2, U1, otp=await soap_login_otp(http, cpa_url(pair, N2), U1))).close()
    await back_to_normal(pair, start=(N1, "ids-database"), fallback=N1)


async def test_automatic_fallback_when_enabled(pair: MockPair, http: aiohttp.ClientSession) -> None:
    await pair.admin("PUT", "/api/parameters", {"auto_fallback": True, "auto_fallback_delay_s": 0.5})
    await pair.admin("POST", f"/api/nodes/{N1}/services/presence-engine/stop")
    await pair.wait_for_states({N1: "Failed Over with Critical Services not Running", N2: "Running in Backup Mode"})
    moved = await online(pair, N2, U1, otp=await soap_login_otp(http, cpa_url(pair, N2), U1))
    since = time.time()
    await pair.admin("POST", f"/api/nodes/{N1}/services/presence-engine/start")
    events = await wait_transitions(pair, since, {
        N1: [("Failed Over", CSD), ("Taking Back", "Automatic Fallback"), ("Normal", "Normal")],
        N2: [("Falling Back", "Automatic Fallback"), ("Normal", "Normal")],
    })
    assert ts_of(events, N1, "Taking Back") - ts_of(events, N1, "Failed Over") >= 0.5
    await shut_down(moved)
    (await online(pair, N1, U1)).close()
    await back_to_normal(pair, params={"auto_fallback": False, "auto_fallback_delay_s": 1800.0})
