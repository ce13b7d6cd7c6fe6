"""storm.py on hand-written run data: demand, served, waits and client outcomes counted exactly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from jabberemu.report.analysis import analyze
from jabberemu.report.data import load_run
from jabberemu.report.verdict import CheckName, CheckStatus, Verdict, judge

T0 = 1_800_000_000.0
A, B = "imp1.example.test", "imp2.example.test"


class Run:
    """Writes a run directory record by record (times on the load clock)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.metrics: list[dict[str, Any]] = []

    def rec(self, t: float, kind: str, **fields: Any) -> None:
        self.events.append({"ts": T0 + t, "type": kind, **fields})

    def state(self, t: float, c: str, old: str, new: str, node: str | None, rnd: int, reason: str | None = None) -> None:
        self.rec(t, "state", client=c, node=node, reason=reason, round=rnd, **{"from": old, "to": new})

    def login(self, t_end: float, c: str, node: str, rt_s: float, *, name: str = "session-login",
              cause: str | None = None) -> None:
        self.rec(t_end, "request", client=c, request_type="soap", name=name, node=node,
                 response_time_ms=rt_s * 1000, ok=cause is None, error=None if cause is None else "x", cause=cause)

    def connected(self, t: float, c: str, node: str, *, relogin: bool) -> None:
        self.state(t, c, "XMPPCONNECT_P", "XMPPCONNECTED", node, 0)
        self.rec(t, "connected", client=c, node=node, relogin=relogin, recovery_s=None)

    def write(self, path: Path, **info: Any) -> Path:
        path.mkdir(parents=True)
        with (path / "client_events.jsonl").open("w") as fh:
            for e in sorted(self.events, key=lambda e: e["ts"]):
                fh.write(json.dumps(e) + "\n")
        with (path / "server_metrics.jsonl").open("w") as fh:
            for m in self.metrics:
                fh.write(json.dumps(m) + "\n")
        run = {"run_id": "storm", "started_ts": T0, "clients": 6, "lower_s": 1.0, "upper_s": 2.0,
               "actions": [{"ts": T0 + 10.0, "action": "failover", "node": A}], "partial": False,
               "ended_ts": T0 + 60.0, **info}
        (path / "run.json").write_text(json.dumps(run))
        return path


def _storm_run(tmp_path: Path) -> Path:
    """Six clients on A fail over at t=10: two come back in round one at once, one after a 4 s wait in
    the queue, one refused busy then in round two, one timed out twice and gave up, one refused its OTP
    (replication cut) then signed in with its password in round two."""
    r = Run()
    clients = [f"u{i}" for i in range(6)]
    for i, c in enumerate(clients):
        r.state(0.1 * i, c, "NEW", "SOAPCONNECT_P", A, 0)
        r.login(0.1 * i + 0.01, c, A, 0.01, name="login")
        r.connected(0.1 * i + 0.02, c, A, relogin=False)
        r.rec(10.0, "ha_event", client=c, node=A, cls="stream-error:system-shutdown")
        r.state(10.0, c, "XMPPCONNECTED", "FAILOVER", A, 1, "stream-error:system-shutdown")
        r.rec(10.0, "wait", client=c, wait_s=1.5, lower_s=1.0, upper_s=2.0)
        # every round-one attempt first meets the failed home node: refused before admission
        r.state(11.5, c, "FAILOVER", "SOAPCONNECT_SESSION_P", A, 1)
        r.login(11.51, c, A, 0.01, cause="soap-fault:services-stopped")
        r.state(11.51, c, "SOAPCONNECT_SESSION_P", "SOAPCONNECT_SESSION_S", B, 1, "soap-fault:services-stopped")
    u0, u1, u2, u3, u4, u5 = clients
    for c in (u0, u1):  # served at once
        r.login(11.56, c, B, 0.05)
        r.connected(11.6, c, B, relogin=True)
    r.login(15.51, u2, B, 4.0)  # waited 4 s in the queue
    r.connected(15.6, u2, B, relogin=True)
    for c, cause, rt in ((u3, "soap-fault:server-busy", 0.01), (u4, "timeout:soap", 3.0),
                         (u5, "soap-fault:bad-onetime-password", 0.2)):
        r.login(11.51 + rt, c, B, rt, cause=cause)
        r.state(11.51 + rt, c, "SOAPCONNECT_SESSION_S", "FAILOVER", None, 2, cause)
        r.rec(11.51 + rt, "wait", client=c, wait_s=1.0, lower_s=1.0, upper_s=2.0)
        r.state(13.0 + rt, c, "FAILOVER", "SOAPCONNECT_P", A, 2)
        r.login(13.01 + rt, c, A, 0.01, name="login", cause="soap-fault:services-stopped")
    for c in (u3, u5):  # round two: the password login on B
        r.login(13.1, c, B, 0.08, name="login")
        r.connected(13.2, c, B, relogin=True)
    r.login(16.02, u4, B, 3.0, name="login", cause="timeout:soap")
    r.state(16.02, u4, "SOAPCONNECT_S", "GAVE_UP", None, 2, "timeout:soap")
    r.rec(16.02, "end", client=u4, state="GAVE_UP", reason="relogin-failed")
    for s in range(9, 20):
        r.metrics.append({"ts": T0 + s, "node": B, "login_queue_max": 3 if 11 < s <= 15 else 0,
                          "login_in_service": 1, "login_wait_p99_ms": 4000.0 if s == 16 else 10.0,
                          "login_busy": 1 if s == 12 else 0, "login_abandoned": 1 if s == 15 else 0,
                          "login_completed": 1})
    return r.write(tmp_path / "run", server_login_rate=2.0, max_login_wait_s=3.5)


def test_storm_counts_every_path(tmp_path: Path) -> None:
    data = load_run(_storm_run(tmp_path))
    analysis = analyze(data)
    (wave,), (s,) = analysis.waves, analysis.storms
    assert (wave.clients, wave.recovered) == (6, 5)
    assert (s.busy, s.timeouts, s.otp_refused, s.second_rounds) == (1, 2, 1, 3)
    assert s.gave_up == {"relogin-failed (timeout:soap)": 1}
    assert s.recovered_by == {"round 1 (session login)": 3, "round 2 (password login)": 2}
    assert s.at_risk == 3
    b = next(n for n in s.nodes if n.node == B)
    # demand on B: 6 session logins (round one) + 3 password logins (round two); A's refusals left out
    assert (b.demand_total, b.served_total) == (9, 6)  # the busy one and two timeouts were not served
    assert [n.node for n in s.nodes] == [B]
    assert s.busiest_node == B
    assert s.demand_peak_1s == 6.0  # six session logins sent at 11.51 s; round two's three at 13.02 s
    assert s.queue_peak == 3 and s.abandoned == 1
    assert b.server_busy == 1 and b.server_completed == 9  # the rows of seconds 11..19 (after the failover)
    # waits: 0.05, 0.05, 4.0, 3.0 (timeout), 0.2, 0.08, 0.08, 3.0 (timeout); the busy refusal is no wait
    waits = np.array([0.05, 0.05, 4.0, 3.0, 0.2, 0.08, 0.08, 3.0])
    assert s.login_wait_p99_s == pytest.approx(float(np.percentile(waits, 99)))
    assert s.login_wait_max_s == pytest.approx(4.0)
    assert b.t_s[0] == pytest.approx(0.0) and b.demand.sum() == 9 and b.served.sum() == 6


def test_storm_verdict_names_each_failure(tmp_path: Path) -> None:
    data = load_run(_storm_run(tmp_path))
    result = judge(data.info, analyze(data))
    assert result.verdict is Verdict.FAIL
    by_name = {c.name: c for c in result.checks}
    assert by_name[CheckName.NO_BUSY].status is CheckStatus.FAIL and by_name[CheckName.NO_BUSY].measured == 1
    assert by_name[CheckName.NO_TIMEOUT].measured == 2
    message = by_name[CheckName.NO_TIMEOUT].message
    assert "2 CPA login attempts timed out at the client (timeout:soap); model: " in message
    assert "3 clients needed a second round, 1 gave up" in message
    wait = by_name[CheckName.LOGIN_WAIT]
    assert wait.status is CheckStatus.FAIL and wait.limit == 3.5 and wait.measured == pytest.approx(3.93, abs=0.01)
    rate = by_name[CheckName.PEAK_RATE_1S]  # information beside the checks, never a verdict of its own
    assert rate.status is CheckStatus.INFO and rate.measured == 6.0 and rate.limit == 2.0
    assert "served at most" in rate.message and "queue peaked at 3 logins" in rate.message
    assert by_name[CheckName.ALL_RECOVERED].status is CheckStatus.FAIL
