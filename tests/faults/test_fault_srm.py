"""Fault scenarios of the Server Recovery Manager (DOMAIN.md "Faults admins report"; docs/srm.md for
the mock's answer to each), on the real mock pair with 200 emulated clients:

- split ownership after a network partition heals, then Recover;
- a critical service down on the backup while failed over (automatic recovery moves every user);
- High Availability enabled while a critical service is down (fails over at once).

Each asserts both nodes' state sequence from ``/api/events``, where the clients are at each step,
and at the end that the clients started equal the sum of clients by end state and reason.
"""

from __future__ import annotations

import pytest
from fault_support import ADMIN, CSD, INIT, N1, N2, PEER_DOWN, FaultRun, fault_run, paths
from waiting import wait_until

from jabberemu.core.states import ClientState
from jabberemu.runtime import RecordType

pytestmark = pytest.mark.slow

DB = "Database Failure"
BACKUP, FAILED_MODE, CRIT_DOWN = "Running in Backup Mode", "Running in Failed Mode", "Failed Over with Critical Services not Running"


def ha_classes(run: FaultRun, since: float) -> dict[str, list[str]]:
    return {u: [r["cls"] for r in rs] for u, rs in run.records(RecordType.HA_EVENT, since).items()}


async def test_split_ownership_after_a_partition_heals_then_recover() -> None:
    async with fault_run(240, hold_back=40) as run:
        await run.pair.admin("POST", "/api/partition")
        await run.wait_transitions({N1: [(BACKUP, PEER_DOWN)], N2: [(BACKUP, PEER_DOWN)]})
        assert run.connected(N1) == 80 and run.connected(N2) == 120  # a partition drops no session
        # 40 users homed on imp1 sign in through imp2 (clients configured with imp2): imp2 serves
        # everybody; imp1, also in backup mode, cannot check the OTP imp2 issued (no replication
        # across the partition), so they stay on imp2: both nodes own users of imp1
        split = run.held_back
        t_split = run.rt.now_ts()
        states = await run.start_clients(split, via={u: N2 for u in split})
        assert states == [ClientState.XMPPCONNECTED] * 40
        assert run.connected(N1) == 80 and run.connected(N2) == 160
        for u in split:
            # signed in on imp2's CPA: XMPP goes there first
            assert paths(run, u, t_split) == ["SOAPCONNECT_P", "SOAPCONNECTED", "XMPPCONNECT_P",
                                              "XMPPCONNECTED"], paths(run, u, t_split)
        await run.pair.admin("POST", "/api/heal")
        seq = {N1: [(BACKUP, PEER_DOWN), (FAILED_MODE, PEER_DOWN)], N2: [(BACKUP, PEER_DOWN), (FAILED_MODE, PEER_DOWN)]}
        await run.wait_transitions(seq)
        status = await run.pair.admin("GET", "/api/status")
        assert [n["actions"] for n in status["nodes"]] == [["recover"], ["recover"]]
        assert run.connected(N1) == 80 and run.connected(N2) == 160  # each still serves what it served
        t_rec = run.rt.now_ts()
        await run.pair.admin("POST", "/api/recover")
        await run.wait_transitions({n: seq[n] + [("Initializing", INIT), ("Normal", "Normal")] for n in (N1, N2)})
        # Recover sends imp2's imp1 users home; nobody else is touched
        await wait_until(run.all_home, 30, "every client on its home node")
        assert ha_classes(run, t_rec) == {u: ["stream-error:system-shutdown"] for u in split}
        # their OTP came from imp2 during the partition: imp1 accepts it only if the Login Datastore
        # was re-synchronised after the heal (the mock does not: our choice); else a fresh sign-in
        session = ["FAILOVER", "SOAPCONNECT_SESSION_P", "SOAPCONNECTED", "XMPPCONNECT_P", "XMPPCONNECTED"]
        fresh = ["FAILOVER", "SOAPCONNECT_SESSION_P", "SOAPCONNECT_SESSION_S", "FAILOVER", "SOAPCONNECT_P",
                 "SOAPCONNECTED", "XMPPCONNECT_P", "XMPPCONNECTED"]
        assert {tuple(paths(run, u, t_rec)) for u in split} <= {tuple(session), tuple(fresh)}
        counted = await run.finish()
        assert dict(counted) == {("LOGGED_OUT", "stop-requested"): 240}


async def test_critical_service_down_on_the_backup_while_failed_over() -> None:
    async with fault_run(200) as run:
        movers, stayers = run.home_of(N1), run.home_of(N2)
        await run.pair.admin("POST", f"/api/nodes/{N1}/services/presence-engine/stop")
        seq = {N1: [("Failing Over", CSD), (CRIT_DOWN, CSD)], N2: [("Taking Over", CSD), (BACKUP, CSD)]}
        await run.wait_transitions(seq)
        await wait_until(lambda: run.connected(N2) == 200, 30, "imp1's users on imp2")
        await run.pair.admin("POST", f"/api/nodes/{N1}/services/presence-engine/start")
        seq[N1].append(("Failed Over", CSD))
        await run.wait_transitions(seq)
        t_down = run.rt.now_ts()
        await run.pair.admin("POST", f"/api/nodes/{N2}/services/xcp-router/stop")
        # automatic recovery: imp1 (healthy, Failed Over) takes its users back, then imp2 fails its
        # own users over to imp1: every user ends on imp1
        seq[N1] += [("Taking Back", CSD), ("Normal", "Normal"), ("Taking Over", CSD), (BACKUP, CSD)]
        seq[N2] += [("Falling Back", CSD), ("Failing Over", CSD), (CRIT_DOWN, CSD)]
        await run.wait_transitions(seq)
        await wait_until(lambda: run.connected(N1) == 200, 30, "every user on imp1")
        ha = ha_classes(run, t_down)
        assert set(ha) == movers | stayers  # all 200 moved
        assert {cls for v in ha.values() for cls in v} == {"stream-error:system-shutdown"}
        # back to Normal | Normal: service up, Fallback of imp2
        await run.pair.admin("POST", f"/api/nodes/{N2}/services/xcp-router/start")
        seq[N2].append(("Failed Over", CSD))
        await run.wait_transitions(seq)
        await run.pair.admin("POST", "/api/fallback", {"node": N2})
        seq[N1] += [("Falling Back", ADMIN), ("Normal", "Normal")]
        seq[N2] += [("Taking Back", ADMIN), ("Normal", "Normal")]
        await run.wait_transitions(seq)
        await wait_until(run.all_home, 30, "every client home")
        counted = await run.finish()
        assert dict(counted) == {("LOGGED_OUT", "stop-requested"): 200}


async def test_enabling_ha_while_a_critical_service_is_down_fails_over_at_once() -> None:
    async with fault_run(200) as run:
        movers = run.home_of(N1)
        await run.pair.admin("POST", "/api/ha", {"enabled": False})
        unknown = ("Unknown", "High Availability Not Enabled")
        await run.wait_transitions({N1: [unknown], N2: [unknown]})
        await run.pair.admin("POST", f"/api/nodes/{N1}/services/ids-database/stop")
        t_stop = run.rt.now_ts()
        # HA off: past the Critical Service Delay (0.3 s) nothing moves
        await wait_until(lambda: run.rt.now_ts() - t_stop > 1.0, 5, "past the critical service delay")
        await run.wait_transitions({N1: [unknown], N2: [unknown]}, timeout_s=0)
        assert run.connected(N1) == 100 and run.connected(N2) == 100
        assert run.records(RecordType.HA_EVENT) == {}
        await run.pair.admin("POST", "/api/ha", {"enabled": True})
        await run.wait_transitions({
            N1: [unknown, ("Initializing", INIT), ("Failing Over", DB), (CRIT_DOWN, DB)],
            N2: [unknown, ("Initializing", INIT), ("Taking Over", DB), (BACKUP, DB)],
        })
        await wait_until(lambda: run.connected(N2) == 200, 30, "imp1's users on imp2")
        ha = ha_classes(run, t_stop)
        assert ha == {u: ["stream-error:system-shutdown"] for u in movers}
        for u in movers:  # the cached OTP is replicated: a session re-login on the backup
            assert paths(run, u, t_stop) == ["FAILOVER", "SOAPCONNECT_SESSION_P", "SOAPCONNECT_SESSION_S",
                                             "SOAPCONNECTED", "XMPPCONNECT_P", "XMPPCONNECTED"], paths(run, u, t_stop)
        counted = await run.finish()
        assert dict(counted) == {("LOGGED_OUT", "stop-requested"): 200}
