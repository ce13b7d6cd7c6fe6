"""A drill whose clients cannot sign in never injects its fault: INCONCLUSIVE, exit 3 with
``--fail-on-verdict``, and no process of the drill left behind (its swarm's workers included)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_support import DrillProcess, orphans_of

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def test_clients_that_cannot_sign_in_make_the_drill_inconclusive(tmp_path: Path) -> None:
    out = tmp_path / "run"
    # one login a second and no queue: most of the 20 sign-ins are refused busy, so not every client is
    # ever signed in, the fault waits for them until the swarm's -t bound, and nothing was tested
    drill = DrillProcess(["--out", str(out), "--seed", "7", "--clients", "20", "--ramp", "20", "--lower", "1",
                          "--upper", "2", "--hold", "1", "--margin", "1", "--login-rate", "1", "--login-queue", "0",
                          "--processes", "2", "--fail-on-verdict"])
    try:
        code = drill.wait(200)
    finally:
        drill.close()
    assert code == 3, drill.output[-3000:]
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["verdict"] == "INCONCLUSIVE"
    run = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert run["actions"] == []  # the failover was never injected
    assert "was never injected" in drill.output
    ended = sum(summary["end_states"].values())
    assert ended == 20 and summary["end_states"].get("GAVE_UP", 0) > 0, summary["end_states"]
    kinds = " ".join(drill.descendants.values())
    assert kinds.count("locust") >= 3  # the main process and its two workers were there
    assert orphans_of(drill.descendants) == []  # and none of them outlived the drill
