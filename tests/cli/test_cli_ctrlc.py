"""Ctrl-C during a drill's hold: everything stops, no orphan process, a partial report."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from cli_support import DrillProcess, PROGRESS_RE, assert_accounted, orphans_of, read_jsonl

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

CLIENTS = 40


def _all_connected(line: str) -> bool:
    m = PROGRESS_RE.match(line)
    return bool(m) and sum(int(n) for n in re.findall(r"=(\d+)", m["connected"])) == CLIENTS


def _start(out: Path) -> DrillProcess:
    # a long hold: the fault would come 60 s after every client signed in; we interrupt before
    return DrillProcess(["--out", str(out), "--clients", str(CLIENTS), "--ramp", "40", "--lower", "1", "--upper", "2",
                         "--hold", "60", "--margin", "1"])


def _check_partial_run(drill: DrillProcess, code: int, out: Path) -> None:
    assert code == 130, drill.output[-3000:]
    assert orphans_of(drill.descendants) == [], drill.descendants
    kinds = " ".join(drill.descendants.values())
    assert "mock_server.node_main" in kinds and "locust" in kinds  # the tree we looked at was the whole drill
    info = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert info["partial"] is True
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["partial"] is True
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "PARTIAL RUN" in page
    assert f"report (partial run): {out / 'report.html'}" in drill.output
    assert "Traceback" not in drill.output
    # stopped during the hold: nobody saw an HA event, every client logged out and is accounted for
    assert summary["ha_events"] == []
    assert_accounted(summary, CLIENTS)
    assert summary["end_states"] == {"LOGGED_OUT": CLIENTS}
    assert not any(e["type"] == "ha_event" for e in read_jsonl(out / "client_events.jsonl"))
    admin = [e for e in read_jsonl(out / "server_events.jsonl") if e["kind"] == "admin"]
    assert admin == []  # the fault never came


def test_sigint_to_the_drill_during_the_hold(tmp_path: Path) -> None:
    out = tmp_path / "run"
    drill = _start(out)
    try:
        drill.wait_for_line(_all_connected, timeout_s=120)
        drill.interrupt()
        code = drill.wait(90)
    finally:
        drill.close()
    _check_partial_run(drill, code, out)


def test_ctrl_c_in_a_terminal_during_the_hold(tmp_path: Path) -> None:
    out = tmp_path / "run"
    drill = _start(out)
    try:
        drill.wait_for_line(_all_connected, timeout_s=120)
        drill.interrupt_group()  # what the terminal does: SIGINT to the foreground process group
        code = drill.wait(90)
    finally:
        drill.close()
    _check_partial_run(drill, code, out)


def test_sigint_before_the_swarm_started(tmp_path: Path) -> None:
    out = tmp_path / "run"
    drill = _start(out)
    try:
        drill.wait_for_line(lambda line: line.startswith("drill: "), timeout_s=60)  # Locust is starting
        drill.interrupt()
        code = drill.wait(60)
    finally:
        drill.close()
    assert code == 130, drill.output[-3000:]
    assert "Traceback" not in drill.output and "KeyboardInterrupt" not in drill.output, drill.output[-3000:]
    assert f"no run data in {out}: the swarm did not start" in drill.output
    assert orphans_of(drill.descendants) == [], drill.descendants
    assert any("mock_server.node_main" in cmd for cmd in drill.descendants.values())
