"""Acceptance: 1,000 clients sign in through Locust, all fail over to node 2, and all sign out.

``locust -f locustfiles/jabber.py --headless -u 1000 -r 200 --topology T --csv out --drill
failover:imp1@ready+1`` against an Active-Standby mock pair (every user homed on node 1, so the
failover moves ALL clients). The drill waits until every client is signed in (``ready``), the test
waits until every client re-logged in on node 2, then sends SIGTERM (what CI sends) and checks the
graceful end: statistics in the CSV, one ``end`` record per user.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

N = 1000
NODE1, NODE2 = "imp1.example.test", "imp2.example.test"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_thousand_clients_fail_over_and_nobody_is_lost(mock_pair: Any, locust_run: Any, swarm_tools: Any) -> None:
    # a 20 s re-login window: 50 re-logins/s, what this 2-core box sustains beside the mock pair
    pair = mock_pair(N, "active-standby", lower_s=2, upper_s=22)
    run = locust_run("--headless", "-u", str(N), "-r", "200", "-t", "600s", "--topology", str(pair.topology),
                     "--drill", f"failover:{NODE1}@ready+1", "--default-lower", "2", "--default-upper", "22")

    def relogins() -> list[dict[str, Any]]:
        return [r for r in run.records("connected") if r["relogin"]]

    swarm_tools.wait_until(lambda: run.count('"connected"', '"relogin":false') >= N or run.proc.poll() is not None,
                           300, f"{N} clients signed in", interval_s=1.0)
    first = run.records("connected")[:N]
    swarm_tools.wait_until(lambda: run.count('"connected"', '"relogin":true') >= N or run.proc.poll() is not None
                           or run.count('"end"', "GAVE_UP") > 0, 240, f"{N} clients re-logged in after the failover",
                           interval_s=1.0)
    assert run.count('"end"', "GAVE_UP") == 0, run.records("end")[:5]
    assert run.proc.poll() is None, run.err_text()[-3000:]
    code = run.terminate(180)

    stats = run.stats()
    counts = {k: (int(v["Request Count"]), int(v["Failure Count"])) for k, v in stats.items()}
    # SIGTERM interrupted the run: 128 + 15, and run.json says partial (issue 16). The failed requests:
    # every mover's session login is refused once by the failed node (services stopped) before the
    # backup signs it in; soap/logout may fail too (the driver sends the logout to the old node)
    assert code == 143
    assert {k for k, (_, fails) in counts.items() if fails} <= {("soap", "logout"), ("soap", "session-login"),
                                                               ("", "Aggregated")}
    assert counts[("soap", "session-login")] == (2 * N, N)
    assert counts[("client", "login")] == (N, 0)
    assert counts[("ha", "relogin")] == (N, 0)
    assert counts[("ha", "wait")][0] >= N and counts[("ha", "wait")][1] == 0  # a failed attempt waits again
    assert counts[("soap", "login")] == (N, 0)

    users = {f"user{n:05d}" for n in range(1, N + 1)}
    assert {r["client"] for r in first} == users and all(r["node"] == NODE1 and not r["relogin"] for r in first)
    again = relogins()
    assert len(again) == N and {r["client"] for r in again} == users and {r["node"] for r in again} == {NODE2}
    ends = run.records("end")
    assert len(ends) == N and {r["client"] for r in ends} == users
    assert {(r["state"], r["reason"]) for r in ends} == {("LOGGED_OUT", "stop-requested")}

    info = json.loads((run.run_dir / "run.json").read_text(encoding="utf-8"))
    assert [a["action"] for a in info["actions"]] == ["failover"] and info["partial"] is True
    assert "jabberemu: interrupted by SIGTERM: partial run" in run.err_text()
    swarm_tools.assert_clean_shutdown(run.err_text())

    t0 = info["started_ts"]
    login_s = max(r["ts"] for r in first) - t0
    waits = [r["wait_s"] for r in run.records("wait")]
    print(f"\n{N} clients: signed in {login_s:.1f} s after the start ({N / login_s:.0f} logins/s); "
          f"re-login wave {max(r['ts'] for r in again) - min(r['ts'] for r in again):.1f} s; "
          f"waits {min(waits):.2f}..{max(waits):.2f} s")
