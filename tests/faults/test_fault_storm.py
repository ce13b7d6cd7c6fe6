"""A login storm on the real mock pair: a re-login window too narrow for the nodes' login capacity.

A re-login is a CPA login, and a node starts no more than its login rate (docs/login-model.md): the
wave queues, logins answer late, and with a short SOAP timeout or a bounded queue some clients time
out or are refused, wait again, sign in with the password in round two, or give up. Each test
checks what the clients recorded against what the nodes counted, then the report and the verdict
built from the run's data as a drill writes it.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from fault_support import N1, N2, FaultRun, base_params, fault_run, paths, server_totals
from waiting import wait_until

from jabberemu.config import ClientSettings, Timeouts
from jabberemu.report.build import build_report
from jabberemu.runtime import RecordType
from mock_server.pair_config import LoginCostConfig

pytestmark = pytest.mark.slow

RATE = 20.0  # logins started per second per node
BURST = 1  # the mock's default: in any 1 s at most BURST + RATE logins start

# the failover paths of a mover (its home node, imp1, refuses every login at once: services stopped)
ROUND_ONE = ("FAILOVER", "SOAPCONNECT_SESSION_P", "SOAPCONNECT_SESSION_S", "SOAPCONNECTED", "XMPPCONNECT_P",
             "XMPPCONNECTED")
ROUND_TWO = ("FAILOVER", "SOAPCONNECT_SESSION_P", "SOAPCONNECT_SESSION_S", "FAILOVER", "SOAPCONNECT_P",
             "SOAPCONNECT_S", "SOAPCONNECTED", "XMPPCONNECT_P", "XMPPCONNECTED")
GAVE_UP = ("FAILOVER", "SOAPCONNECT_SESSION_P", "SOAPCONNECT_SESSION_S", "FAILOVER", "SOAPCONNECT_P",
           "SOAPCONNECT_S", "GAVE_UP")


def _settings(soap_s: float) -> ClientSettings:
    return ClientSettings(verify_tls=False, timeouts=Timeouts(soap_s=soap_s, connect_s=5, auth_s=10, bind_s=10))


def _cpa_logins(run: FaultRun, since: float, node: str) -> list[dict]:
    return [r for rs in run.records(RecordType.REQUEST, since).values() for r in rs
            if r["request_type"] == "soap" and r["name"] in ("login", "session-login") and r["node"] == node]


async def _failover(run: FaultRun) -> tuple[float, list[dict]]:
    t = time.time()
    await run.pair.admin("POST", "/api/failover", {"node": N1})
    return t, [{"ts": t, "action": "failover", "node": N1}]


async def test_storm_with_an_unbounded_queue_serves_at_capacity_and_fails_the_verdict(tmp_path: Path) -> None:
    """200 clients, limits 1/2 s, 20 logins/s per node, unbounded queue, SOAP timeout 30 s."""
    cost = LoginCostConfig(rate_per_s=RATE)
    async with fault_run(200, params=base_params(1.0, 2.0), settings=_settings(30.0),
                         login_cost=(cost, cost)) as run:
        movers = run.home_of(N1)
        t_fo, actions = await _failover(run)
        await wait_until(lambda: run.connected(N2) == 200, 30, "every client on imp2")
        # every mover came back through one CPA session login on imp2, served at the node's rate
        served = [r for r in _cpa_logins(run, t_fo, N2) if r["ok"]]
        assert sorted(r["client"] for r in served) == sorted(movers)
        assert {r["name"] for r in served} == {"session-login"}
        done = np.array([r["ts"] for r in served])
        assert done.max() - done.min() >= (len(movers) - 1) / RATE * 0.9  # 100 logins take >= ~5 s
        # the node's own count: logins started between two of its rows (dt apart) <= BURST + RATE * dt
        await server_totals(run, "login_started")  # waits for a row after the wave
        rows = sorted((r for r in (await run.pair.admin("GET", "/api/metrics"))["metrics"] if r["node"] == N2),
                      key=lambda r: r["ts"])
        for before, row in zip(rows, rows[1:]):
            assert row["login_started"] <= BURST + RATE * (row["ts"] - before["ts"]) + 1e-6, (before, row)
        assert max(row["login_started"] for row in rows) >= RATE - 1  # it did run at its rate
        recovery = [r[-1]["recovery_s"] for u, r in run.records(RecordType.CONNECTED, t_fo).items() if u in movers]
        assert min(recovery) >= 1.0 and max(recovery) >= len(movers) / RATE * 0.9  # >= 4.5 s
        totals = await server_totals(run, "cpa_session_logins_ok", "login_busy", "login_abandoned")
        assert totals[(N2, "cpa_session_logins_ok")] == len(movers)
        assert totals[(N2, "login_busy")] == totals[(N2, "login_abandoned")] == 0
        run_dir = await run.write_run_dir(tmp_path / "storm", actions=actions, server_login_rate=RATE,
                                          lower_s=1.0, upper_s=2.0)
        counted = await run.finish()
    assert dict(counted) == {("LOGGED_OUT", "stop-requested"): 200}
    summary = build_report(run_dir)
    (wave,) = summary.data["ha_events"]
    assert wave["clients"] == wave["recovered"] == len(movers)
    assert wave["busiest_node"] == N2 and wave["demand_peak_1s"] > 2 * RATE  # the window: ~100 in a second
    # served as the clients saw the answers: the node's exact bound is checked above on its own rows;
    # answers a loaded client loop delayed bunch (23/s and 29/s seen under a parallel suite), never
    # towards the unthrottled ~100/s of the demand
    assert RATE - 1 <= wave["served_peak_1s"] <= 2 * (RATE + BURST) < wave["demand_peak_1s"]
    assert wave["queue_peak"] >= 50 and wave["busy"] == wave["timeouts"] == 0
    assert wave["recovered_by"] == {"round 1 (session login)": len(movers)}
    assert summary.verdict.value == "FAIL"
    # FAIL on what the server went through: logins waited ~4 s in its queue; the message names
    # demand against served, the queue and the model's figure beside the measured one
    failed = [c for c in summary.data["checks"] if c["status"] == "fail"]
    assert failed[0]["name"] == "p99 CPA login wait <= bound" and failed[0]["measured"] > 3.0
    message = failed[0]["message"]
    assert f"demand peaked at {wave['demand_peak_1s']:.0f}/s, served at most {wave['served_peak_1s']:.0f}/s" in message
    assert f"queue peaked at {wave['queue_peak']} logins" in message and "; model: " in message
    # the model agrees on every figure but the 1 s served peak, whose bunching is bounded above
    compared = {r["name"]: r for r in wave["measured_vs_predicted"]}
    assert "peak served (1 s bins)" in compared and len(compared) >= 7
    assert all(r["agrees"] for name, r in compared.items() if name != "peak served (1 s bins)"), compared
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    assert "What each wave did to the servers and to its clients" in page and "servers during wave 1" in page


async def test_storm_with_a_short_timeout_and_a_bounded_queue_accounts_for_every_client(tmp_path: Path) -> None:
    """200 clients, limits 1/2 s, 5 logins/s per node, a queue of 20, SOAP timeout 3 s: logins refused
    busy and timed out, second rounds, clients that give up; every one in a named end state."""
    cost = LoginCostConfig(rate_per_s=5.0, queue_limit=20)
    async with fault_run(200, params=base_params(1.0, 2.0), settings=_settings(3.0), login_cost=(cost, cost),
                         login_concurrency=10) as run:
        movers = run.home_of(N1)
        t_fo, actions = await _failover(run)
        # round one, then round two after a second drawn wait: at most ~2 + 2 + 3 + 3 s each
        await wait_until(run.settled, 40, "every mover back or given up")
        attempts = _cpa_logins(run, t_fo, N2)
        causes = Counter(r.get("cause") for r in attempts)
        assert causes["soap-fault:server-busy"] > 0 and causes["timeout:soap"] > 0, causes
        assert set(causes) <= {None, "soap-fault:server-busy", "timeout:soap"}, causes
        # every CPA login the clients sent to imp2 reached its admission, and the node counted each
        totals = await server_totals(run, "login_attempts", "login_started", "login_busy", "login_abandoned",
                                     "login_abandoned_in_service", "cpa_session_logins_ok", "cpa_logins_ok")
        own = len(run.home_of(N2))  # imp2's own users signed in there before the failover, one login each
        assert totals[(N2, "login_attempts")] == len(attempts) + own
        assert totals[(N2, "login_busy")] == causes["soap-fault:server-busy"]
        assert totals[(N2, "login_attempts")] == (totals[(N2, "login_started")] + totals[(N2, "login_busy")]
                                                  + totals[(N2, "login_abandoned")])
        # a client whose SOAP timeout fired left the queue: the node dropped it and never served it; a login
        # that started (and was answered) in the instant the client gave up counts as served on the node
        # a timed-out login either left the queue (abandoned), kept its worker to the end of its service
        # (abandoned in service), or finished its admission in the instant its client gave up: then the
        # node answered it (counted served) or its handler was cancelled before it could
        assert 1 <= totals[(N2, "login_abandoned")] <= causes["timeout:soap"]
        late = causes["timeout:soap"] - totals[(N2, "login_abandoned")] - totals[(N2, "login_abandoned_in_service")]
        served = totals[(N2, "cpa_session_logins_ok")] + totals[(N2, "cpa_logins_ok")] - own
        assert causes[None] <= served <= causes[None] + late
        # the paths the state machine gives them
        by_path = Counter(tuple(paths(run, u, t_fo)) for u in movers)
        assert set(by_path) == {ROUND_ONE, ROUND_TWO, GAVE_UP}, by_path
        waits = run.records(RecordType.WAIT, t_fo)
        for u in movers:  # a new wait is drawn for round two
            assert len(waits[u]) == (1 if tuple(paths(run, u, t_fo)) == ROUND_ONE else 2)
            assert all(1.0 <= w["wait_s"] <= 2.0 for w in waits[u])
        run_dir = await run.write_run_dir(tmp_path / "storm", actions=actions, server_login_rate=5.0,
                                          lower_s=1.0, upper_s=2.0)
        counted = await run.finish()
    gave_up = by_path[GAVE_UP]
    assert dict(counted) == {("LOGGED_OUT", "stop-requested"): 200 - gave_up, ("GAVE_UP", "relogin-failed"): gave_up}
    summary = build_report(run_dir)
    (wave,) = summary.data["ha_events"]
    assert (wave["busy"], wave["timeouts"]) == (causes["soap-fault:server-busy"], causes["timeout:soap"])
    assert wave["second_rounds"] == by_path[ROUND_TWO] + gave_up
    assert sum(wave["gave_up"].values()) == gave_up == len(movers) - wave["recovered"]
    assert wave["recovered_by"] == {"round 1 (session login)": by_path[ROUND_ONE],
                                    "round 2 (password login)": by_path[ROUND_TWO]}
    assert summary.verdict.value == "FAIL"
    names = {c["name"] for c in summary.data["checks"] if c["status"] == "fail"}
    assert {"no CPA login refused busy", "no CPA login timed out", "every client recovered"} <= names
    # the failures table groups the same failed requests by the same words (docs/failure-causes.md)
    table = {f["cause"]: f for f in summary.data["failures_by_cause"]}
    for cause in ("soap-fault:server-busy", "timeout:soap"):
        logins = table[cause]["requests"]  # session logins of round one, password logins of round two
        assert set(logins) <= {"soap/session-login", "soap/login"} and table[cause]["nodes"] == {N2: table[cause]["count"]}
        assert table[cause]["count"] == sum(logins.values()) == causes[cause]
        assert 0 <= table[cause]["first_s"] <= table[cause]["last_s"] <= summary.data["duration_s"]
    # a client that gave up: its re-login as a whole is one failure under its end reason (each of its
    # attempts is counted above, under the attempt's own class), never "unclassified"
    if gave_up:
        assert table["relogin-failed"]["requests"] == {"ha/relogin": gave_up}
        assert table["relogin-failed"]["clients"] == gave_up
    assert not any(cause.startswith("unclassified") for cause in table), sorted(table)
