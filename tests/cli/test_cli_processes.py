"""``jabberemu drill --processes``: the clients spread over Locust workers, the drill unchanged by the split.

The same drill (same seed) with one worker process and with two: the same users, each homed on the same
node, each drawing the same re-login waits (a function of the seed and the user, never of the process),
and the same two waves; the two-process run's report is one report over both workers.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from cli_support import DrillProcess, assert_accounted, read_jsonl

from jabberemu.drill import build_parser, default_processes

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

CLIENTS = 40


def _drill(out: Path, processes: int) -> dict[str, Any]:
    proc = DrillProcess(["--out", str(out), "--seed", "11", "--processes", str(processes), "--clients", str(CLIENTS),
                         "--ramp", "40", "--lower", "1", "--upper", "3", "--hold", "1", "--margin", "2"])
    try:
        code = proc.wait(180)
    finally:
        proc.close()
    assert code == 0, proc.output[-4000:]
    records = read_jsonl(out / "client_events.jsonl")
    waits: dict[str, list[float]] = defaultdict(list)
    homes: dict[str, str] = {}
    for r in records:
        if r["type"] == "wait":
            waits[r["client"]].append(r["wait_s"])
        elif r["type"] == "connected" and not r["relogin"]:
            homes.setdefault(r["client"], r["node"])
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    workers = {g["worker"] for g in read_jsonl(out / "generator.jsonl")}
    return {"waits": dict(waits), "homes": homes, "summary": summary, "workers": workers}


def test_one_and_two_processes_run_the_same_drill(tmp_path: Path) -> None:
    one = _drill(tmp_path / "one", 1)
    two = _drill(tmp_path / "two", 2)
    assert len(one["workers"]) == 1 and len(two["workers"]) == 2  # the load really was split
    for run in (one, two):
        assert_accounted(run["summary"], CLIENTS)
    assert sorted(one["homes"]) == sorted(two["homes"]) == sorted(f"user{i:05d}" for i in range(1, CLIENTS + 1))
    assert one["homes"] == two["homes"]
    movers = {u for u, node in one["homes"].items() if node == "imp1.example.test"}
    assert set(one["waits"]) == set(two["waits"]) == movers  # node 1's users, failed over and back
    for user in movers:
        assert len(one["waits"][user]) == 2  # the failover wave's wait, then the fallback's
        assert one["waits"][user] == two["waits"][user], user
    waves = [[(w["kind"], w["clients"], w["recovered"]) for w in run["summary"]["ha_events"]] for run in (one, two)]
    assert waves[0] == waves[1] == [("failover", CLIENTS // 2, CLIENTS // 2), ("fallback", CLIENTS // 2, CLIENTS // 2)]


def test_the_drill_uses_every_core_by_default() -> None:
    assert build_parser().parse_args([]).processes == default_processes() >= 1
