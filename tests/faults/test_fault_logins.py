"""Fault scenarios about re-login credentials and limits (DOMAIN.md "Faults admins report"), each on
the real mock pair with 200 emulated clients:

- OTP replication cut: the backup refuses the cached one-time password; the clients fall through
  SOAPCONNECT_SESSION_P/S into a fresh sign-in round (SOAPCONNECT_P/S) and recover, both ways;
- the two nodes configured with different re-login limits: each wait uses the limits of the node
  the client last signed in to (CPA ``get-all-config``);
- a re-login window far too narrow for the login capacity: ``server-busy`` faults, retries, and
  every client's final state named and counted.
"""

from __future__ import annotations

import logging
from collections import Counter

import pytest
from fault_support import ADMIN, N1, N2, FaultRun, base_params, fault_run, paths, server_totals
from waiting import wait_until

from jabberemu.core.states import ClientState
from jabberemu.runtime import RecordType
from mock_server.pair_config import LoginCostConfig

pytestmark = pytest.mark.slow

logger = logging.getLogger(__name__)

FAILOVER_SEQ = {N1: [("Failing Over", ADMIN), ("Idle", ADMIN)], N2: [("Taking Over", ADMIN), ("Running in Backup Mode", ADMIN)]}
FALLBACK_SEQ = {N1: [("Taking Back", ADMIN), ("Normal", "Normal")], N2: [("Falling Back", ADMIN), ("Normal", "Normal")]}
# the path of a client whose cached OTP the other node refuses, through the fresh sign-in round:
# on failover the failed home node refuses both logins (services stopped), the backup the OTP
# (bad-onetime-password) and then takes the password; on fallback the home node refuses the OTP the
# backup issued, the backup no longer serves the user, and the password signs it in at home.
FAILOVER_ROUND = ["FAILOVER", "SOAPCONNECT_SESSION_P", "SOAPCONNECT_SESSION_S", "FAILOVER", "SOAPCONNECT_P",
                  "SOAPCONNECT_S", "SOAPCONNECTED", "XMPPCONNECT_P", "XMPPCONNECTED"]
FALLBACK_ROUND = ["FAILOVER", "SOAPCONNECT_SESSION_P", "SOAPCONNECT_SESSION_S", "FAILOVER", "SOAPCONNECT_P",
                  "SOAPCONNECTED", "XMPPCONNECT_P", "XMPPCONNECTED"]


async def _failover_and_fallback(run: FaultRun, upper_s: float) -> tuple[float, float]:
    """Failover of imp1, every client on imp2; Fallback, every client home. Returns both start times."""
    movers = run.home_of(N1)
    t_fo = run.t0
    await run.pair.admin("POST", "/api/failover", {"node": N1})
    await wait_until(lambda: run.connected(N2) == 200, 2 * upper_s + 30, "all 200 on imp2")
    await run.wait_transitions(FAILOVER_SEQ)
    assert {c.user_id for c in run.clients if c.machine.node == N2} >= movers
    t_fb = run.rt.now_ts()
    await run.pair.admin("POST", "/api/fallback", {"node": N1})
    await wait_until(run.all_home, 2 * upper_s + 30, "every client home again")
    await run.wait_transitions({n: FAILOVER_SEQ[n] + FALLBACK_SEQ[n] for n in (N1, N2)})
    return t_fo, t_fb


async def test_otp_replication_cut_falls_through_to_a_fresh_sign_in() -> None:
    async with fault_run(200, replicate_otp=False) as run:
        movers = run.home_of(N1)
        t_fo, t_fb = await _failover_and_fallback(run, 2.0)
        for user in movers:
            assert paths(run, user, t_fo) == FAILOVER_ROUND + FALLBACK_ROUND, (user, paths(run, user, t_fo))
            states = run.records(RecordType.STATE, t_fo)[user]
            reasons = [(r["to"], r["node"], r["reason"]) for r in states if r["to"] in ("SOAPCONNECT_SESSION_S", "FAILOVER")]
            assert reasons == [
                ("FAILOVER", None, "stream-error:system-shutdown"),
                ("SOAPCONNECT_SESSION_S", N2, "soap-fault:services-stopped"),
                ("FAILOVER", None, "soap-fault:bad-onetime-password"),
                ("FAILOVER", None, "stream-error:system-shutdown"),
                ("SOAPCONNECT_SESSION_S", N2, "soap-fault:bad-onetime-password"),
                ("FAILOVER", None, "soap-fault:not-served-here"),
            ], (user, reasons)
            signed_in = [r["node"] for r in states if r["to"] == "SOAPCONNECTED"]
            assert signed_in == [N2, N1]
        # the nodes count it: every mover's OTP refused once by each node, no session login served
        totals = await server_totals(run, "cpa_session_logins_refused", "cpa_session_logins_ok")
        assert totals[(N1, "cpa_session_logins_refused")] == totals[(N2, "cpa_session_logins_refused")] == len(movers)
        assert totals[(N1, "cpa_session_logins_ok")] == totals[(N2, "cpa_session_logins_ok")] == 0
        stayers = run.home_of(N2)
        assert not any(u in stayers for u in run.records(RecordType.HA_EVENT, t_fo))
        counted = await run.finish()
        assert dict(counted) == {("LOGGED_OUT", "stop-requested"): 200}


async def test_mismatched_relogin_limits_each_client_uses_its_last_sign_in_node() -> None:
    limits = {N1: (0.3, 1.0), N2: (1.5, 2.5)}
    params = base_params(0.5, 2.0, *(f"{n}:relogin_lower_s={lo}" for n, (lo, _) in limits.items()),
                         *(f"{n}:relogin_upper_s={up}" for n, (_, up) in limits.items()))
    # OTP replication cut: the movers sign in afresh on the backup, so their limits change
    async with fault_run(200, params=params, replicate_otp=False) as run:
        movers = run.home_of(N1)
        t_fo, t_fb = await _failover_and_fallback(run, 2.5)
        states = run.records(RecordType.STATE)
        waits = run.records(RecordType.WAIT)
        by_limits: Counter[tuple[float, float]] = Counter()
        for c in run.clients:
            user, history = c.user_id, sorted(states[c.user_id] + waits.get(c.user_id, []), key=lambda r: r["ts"])
            signed_in_at: str | None = None
            for r in history:
                if r["type"] == "state" and r["to"] == "SOAPCONNECTED":
                    signed_in_at = r["node"]
                elif r["type"] == "wait":
                    assert signed_in_at is not None
                    assert (r["lower_s"], r["upper_s"]) == limits[signed_in_at], (user, r, signed_in_at)
                    assert limits[signed_in_at][0] <= r["wait_s"] <= limits[signed_in_at][1]
                    by_limits[(r["lower_s"], r["upper_s"])] += 1
            assert len(waits.get(user, [])) == (4 if user in movers else 0)
        # failover: two waits per mover with imp1's limits; fallback: two with imp2's (signed in there)
        assert by_limits == {limits[N1]: 200, limits[N2]: 200}
        counted = await run.finish()
        assert dict(counted) == {("LOGGED_OUT", "stop-requested"): 200}


async def test_relogin_window_too_narrow_for_the_login_capacity() -> None:
    cost = LoginCostConfig(rate_per_s=20, queue_limit=20)
    # 100 movers re-sign in within 0.4 s (OTP replication cut: every re-login is a CPA login) at a
    # capacity of 20 logins/s and 20 queued: most get server-busy
    async with fault_run(200, params=base_params(0.1, 0.5), login_cost=(cost, cost), replicate_otp=False,
                         login_concurrency=15) as run:
        movers = run.home_of(N1)
        await run.pair.admin("POST", "/api/failover", {"node": N1})
        await run.wait_transitions(FAILOVER_SEQ)
        await wait_until(run.settled, 60, "every client connected or ended")
        snap = run.rt.registry.snapshot()
        connected, gave_up = snap.connected_by_node.get(N2, 0), snap.by_state[ClientState.GAVE_UP]
        assert snap.connected_by_node.get(N1, 0) == 0
        assert connected + gave_up == 200 and gave_up > 0 and connected > 100
        requests = run.records(RecordType.REQUEST, run.t0)
        logins = Counter((r["node"], r["ok"], r["error"]) for rs in requests.values() for r in rs
                         if r["name"] == "login" and r["request_type"] == "soap")
        busy = sum(n for (node, ok, err), n in logins.items() if err and "server-busy" in err)
        assert busy > 0, logins
        ends = run.rt.sink.of_type(RecordType.END)
        assert {u["client"] for u in ends} <= movers
        # the clients that gave up: busy on imp2, then imp1's services stopped (round two over)
        details = Counter(e["detail"] for e in ends)
        assert set(details) <= {"soap-fault:server-busy", "soap-fault:services-stopped"}, details
        # retries: every mover that gave up went through both rounds
        for e in ends:
            path = paths(run, e["client"], run.t0)
            assert path[:4] == ["FAILOVER", "SOAPCONNECT_SESSION_P", "SOAPCONNECT_SESSION_S", "FAILOVER"], path
            assert path[-1] == "GAVE_UP" and "SOAPCONNECT_S" in path, path
        counted = await run.finish()
        assert dict(counted) == {("LOGGED_OUT", "stop-requested"): connected,
                                 ("GAVE_UP", "relogin-failed"): gave_up}
        logger.info("narrow window: %s re-signed in, %s gave up, %s server-busy faults, %s", connected, gave_up,
                    busy, details)
