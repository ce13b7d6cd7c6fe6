"""``jabberemu drill`` end to end through the console script: the bundled pair, a Locust swarm, a fault,
the re-login waves, the report (the shared failover drill; one small drill per other fault in
test_cli_drill_faults.py, a file of its own so that the suite's workers run them beside these)."""

from __future__ import annotations

import json
import re
import statistics

import pytest
from cli_support import FAILOVER_DRILL, Drill, assert_accounted, orphans_of, read_jsonl, run_file_exists, state_sequence

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

NODE1, NODE2 = "imp1.example.test", "imp2.example.test"
CLIENTS = FAILOVER_DRILL.clients
RUN_FILES = ("report.html", "summary.json", "run.json", "client_events.jsonl", "server_events.jsonl",
             "server_metrics.jsonl", "topology.json")


def test_drill_writes_every_run_file_and_prints_the_verdict(failover_drill: Drill) -> None:
    for name in RUN_FILES:
        assert run_file_exists(failover_drill.out, name), name
    out = failover_drill.proc.output
    assert re.search(r"^verdict: (PASS|FAIL)$", out, re.M), out[-2000:]
    assert f"report: {failover_drill.out / 'report.html'}" in out
    assert failover_drill.summary["verdict"] in out
    info = json.loads((failover_drill.out / "run.json").read_text(encoding="utf-8"))
    assert info["clients"] == CLIENTS and info.get("partial") is False
    assert [a["action"] for a in info["actions"]] == ["failover", "fallback", "stop"]
    assert orphans_of(failover_drill.proc.descendants) == []
    assert any("mock_server.node_main" in cmd for cmd in failover_drill.proc.descendants.values())
    assert any("locust" in cmd for cmd in failover_drill.proc.descendants.values())


def test_drill_summary_shows_a_failover_and_a_fallback_wave(failover_drill: Drill) -> None:
    summary = failover_drill.summary
    half = CLIENTS // 2  # balanced assignment: node 1 homes every other user
    assert failover_drill.waves() == [("failover", half, half), ("fallback", half, half)]
    failover, fallback = summary["ha_events"]
    assert failover["target_nodes"] == {NODE2: half}
    assert fallback["target_nodes"] == {NODE1: half}
    assert set(failover["ha_classes"]) == {"stream-error:system-shutdown"}
    assert failover["lower_s"] == 1.0 and failover["upper_s"] == 3.0
    assert fallback["at_s"] - failover["at_s"] >= 7.0
    for wave in (failover, fallback):
        assert wave["pending"] == 0
        assert 1.0 <= wave["recovery_p50_s"] <= wave["recovery_max_s"]


def test_drill_accounts_for_every_client(failover_drill: Drill) -> None:
    summary = failover_drill.summary
    assert_accounted(summary, CLIENTS)
    assert summary["end_states"] == {"LOGGED_OUT": CLIENTS}
    assert summary["end_reasons"] == {"LOGGED_OUT": {"stop-requested": CLIENTS}}
    ends = [e for e in read_jsonl(failover_drill.out / "client_events.jsonl") if e["type"] == "end"]
    assert len({e["client"] for e in ends}) == CLIENTS


def test_drill_report_shows_both_waves_and_the_accounting(failover_drill: Drill) -> None:
    page = (failover_drill.out / "report.html").read_text(encoding="utf-8")
    half = CLIENTS // 2
    assert f"failover #1: imp1 → imp2, {half} clients" in page
    assert f"fallback #2: imp2 → imp1, {half} clients" in page
    text = re.sub(r"<[^>]+>", "", page)
    assert f"Clients started: {CLIENTS} of {CLIENTS} planned; sum over end states: {CLIENTS}" in text
    assert "PARTIAL RUN" not in page


def test_drill_mock_went_through_failover_and_fallback(failover_drill: Drill) -> None:
    events = failover_drill.server_events
    assert state_sequence(events, NODE1) == ["Initializing", "Normal", "Failing Over", "Idle", "Taking Back", "Normal"]
    assert state_sequence(events, NODE2) == [
        "Initializing", "Normal", "Taking Over", "Running in Backup Mode", "Falling Back", "Normal"]
    assert [e["action"] for e in events if e["kind"] == "admin"] == ["failover", "fallback"]


def test_drill_prints_progress_once_a_second(failover_drill: Drill) -> None:
    progress = failover_drill.proc.progress()
    assert len(progress) >= 15, failover_drill.proc.output[-3000:]
    clocks = [float(m["t"]) for _, m in progress]
    steps = [b - a for a, b in zip(clocks, clocks[1:])]
    assert 0.8 <= statistics.median(steps) <= 1.3, steps
    rows = [(m["connected"], int(m["waiting"]), int(m["logging_in"]), int(m["ended"])) for _, m in progress]
    half = CLIENTS // 2
    assert (f"imp1={half} imp2={half}", 0, 0, 0) in rows  # steady state before the fault, per node
    assert (f"imp2={CLIENTS}", 0, 0, 0) in rows  # failed over, settled
    assert any(waiting > 0 for _, waiting, _, _ in rows)  # the wave, waiting to re-login
    # fallen back and settled until the stop: nobody waiting or logging in; those still connected and
    # those who already signed out at the stop make all clients; with
    # --processes 2 a line may come while one worker's clients have signed out and the other's not yet
    last_connected, last_waiting, last_logging_in, last_ended = rows[-1]
    per_node = dict(item.split("=") for item in last_connected.split()) if last_connected != "-" else {}
    assert (last_waiting, last_logging_in) == (0, 0), rows[-3:]
    assert sum(int(n) for n in per_node.values()) + last_ended == CLIENTS, rows[-3:]
    assert set(per_node) <= {"imp1", "imp2"}, rows[-3:]
    assert all(int(m["clients"]) <= CLIENTS for _, m in progress)
