"""Fault scenarios that hit the pair while a re-login wave is still running (DOMAIN.md "Faults admins
report"), on the real mock pair with 200 emulated clients:

- a node killed, then restarted while its users are still waiting to re-login on the survivor;
- a Fallback pressed while the failover's re-login wave is still running.

Each asserts both nodes' state sequence from ``/api/events`` and that every client is accounted for.
"""

from __future__ import annotations

import logging
import pytest
from fault_support import ADMIN, INIT, N1, N2, PEER_DOWN, base_params, fault_run
from waiting import wait_until

from jabberemu.runtime import RecordType

pytestmark = pytest.mark.slow

logger = logging.getLogger(__name__)

BACKUP = "Running in Backup Mode"


async def test_node_kill_and_restart_during_the_relogin_wave() -> None:
    lower_s, upper_s = 2.0, 4.5  # lower > heartbeat timeout (1.5 s): the survivor is in backup mode by then
    async with fault_run(200, params=base_params(lower_s, upper_s)) as run:
        movers = run.home_of(N1)
        await run.pair.admin("POST", f"/api/nodes/{N1}/kill")
        await run.wait_transitions({N1: [], N2: [(BACKUP, PEER_DOWN)]})
        await wait_until(lambda: run.connected(N2) >= 110, upper_s + 10, "the wave under way")
        on_n2 = run.connected(N2)
        await run.pair.admin("POST", f"/api/nodes/{N1}/restart")
        events = await run.wait_transitions({N1: [("Failed Over", INIT)], N2: [(BACKUP, PEER_DOWN)]})
        (t_restart,) = [e["ts"] for e in events if e["kind"] == "process" and e.get("action") == "started"]
        await wait_until(lambda: run.connected(N2) == 200, upper_s + 20, "imp1's users on imp2")
        attempts = {u: [r["ts"] for r in rs if r["to"] == "SOAPCONNECT_SESSION_P"]
                    for u, rs in run.records(RecordType.STATE, run.t0).items()}
        late = {u for u in movers if attempts[u] and attempts[u][0] > t_restart}
        assert on_n2 < 200 and late, f"restart after the wave: {on_n2} on imp2 at the restart"
        ha = run.records(RecordType.HA_EVENT, run.t0)
        assert set(ha) == movers
        classes = {r[0]["cls"] for r in ha.values()}
        assert "connection-reset" in classes and classes <= {"connection-reset", "connection-closed", "ping-timeout"}
        # home again: Fallback of the restarted node
        await run.pair.admin("POST", "/api/fallback", {"node": N1})
        await run.wait_transitions({N1: [("Failed Over", INIT), ("Taking Back", ADMIN), ("Normal", "Normal")],
                                    N2: [(BACKUP, PEER_DOWN), ("Falling Back", ADMIN), ("Normal", "Normal")]})
        await wait_until(run.all_home, upper_s + 20, "every client home")
        counted = await run.finish()
        assert dict(counted) == {("LOGGED_OUT", "stop-requested"): 200}
        logger.info("kill/restart: %s movers on imp2 at the restart, %s tried after it", on_n2 - 100, len(late))


async def test_fallback_while_the_failover_wave_is_still_running() -> None:
    lower_s, upper_s = 0.8, 4.0
    async with fault_run(200, params=base_params(lower_s, upper_s)) as run:
        movers = run.home_of(N1)
        await run.pair.admin("POST", "/api/failover", {"node": N1})
        await run.wait_transitions({N1: [("Failing Over", ADMIN), ("Idle", ADMIN)],
                                    N2: [("Taking Over", ADMIN), (BACKUP, ADMIN)]})
        await wait_until(lambda: run.connected(N2) >= 125, upper_s + 10, "a quarter of the wave done")
        t_fb = run.rt.now_ts()
        await run.pair.admin("POST", "/api/fallback", {"node": N1})
        on_n2 = run.connected(N2)
        await run.wait_transitions({
            N1: [("Failing Over", ADMIN), ("Idle", ADMIN), ("Taking Back", ADMIN), ("Normal", "Normal")],
            N2: [("Taking Over", ADMIN), (BACKUP, ADMIN), ("Falling Back", ADMIN), ("Normal", "Normal")]})
        await wait_until(run.all_home, 2 * upper_s + 20, "every client home")
        ha = run.records(RecordType.HA_EVENT, run.t0)
        assert set(ha) == movers
        # movers that had reached imp2 were closed again by the fallback; the others went home
        # straight from their wait
        twice = {u for u, rs in ha.items() if len(rs) == 2}
        once = {u for u, rs in ha.items() if len(rs) == 1}
        assert twice | once == movers and twice and once, (len(twice), len(once))
        assert all(rs[1]["ts"] >= t_fb and rs[1]["node"] == N2 for u, rs in ha.items() if u in twice)
        connected = run.records(RecordType.CONNECTED, run.t0)
        assert all(connected[u][-1]["node"] == N1 and connected[u][-1]["relogin"] for u in movers)
        assert all(len(connected[u]) == 1 for u in once)  # never reached imp2
        counted = await run.finish()
        assert dict(counted) == {("LOGGED_OUT", "stop-requested"): 200}
        logger.info("fallback mid-wave: %s movers on imp2 at the fallback, %s moved twice, %s once", on_n2 - 100,
                    len(twice), len(once))
