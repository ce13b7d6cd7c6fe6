"""An interrupted Locust run is marked partial everywhere and never PASSes (issue 16): SIGTERM (what a
CI timeout sends) and Ctrl-C (SIGINT) at 8 s of ``-t 60s``; ``-t`` shorter than the last drill action."""

from __future__ import annotations

import json
import signal
import time
from typing import Any

import pytest

NODE1 = "imp1.example.test"
N = 20


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_marks_the_run_partial(mock_pair: Any, locust_run: Any, swarm_tools: Any, sig: int,
                                        code: int) -> None:
    pair = mock_pair(N, "balanced", lower_s=1, upper_s=3)
    run = locust_run("--headless", "-u", str(N), "-r", str(N), "-t", "60s", "--topology", str(pair.topology),
                     "--drill", f"failover:{NODE1}@ready+30", "--report", "--fail-on-verdict")
    swarm_tools.wait_until(lambda: run.count('"connected"') >= N or run.proc.poll() is not None, 60,
                           f"{N} clients signed in")
    time.sleep(3.0)  # an operator's Ctrl-C (or a CI timeout) a few seconds into the run
    run.proc.send_signal(sig)
    assert run.wait(120) == code, run.err_text()[-3000:]
    info = json.loads((run.run_dir / "run.json").read_text(encoding="utf-8"))
    assert info["partial"] is True
    summary = json.loads((run.run_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["partial"] is True and summary["verdict"] == "INCONCLUSIVE"
    assert any("the run was interrupted" in r for r in summary["reasons"])
    assert f"jabberemu: interrupted by {signal.Signals(sig).name}: partial run" in run.err_text()
    ends = run.records("end")
    assert len(ends) == N  # every client accounted for


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_run_shorter_than_its_drill_is_partial(mock_pair: Any, locust_run: Any, swarm_tools: Any) -> None:
    """A drill whose last action is after -t is refused at the door when -t is known; a ready+ action
    that the run cannot reach (the clients signed in late) leaves the run partial, not PASS."""
    pair = mock_pair(N, "balanced", lower_s=1, upper_s=3)
    run = locust_run("--headless", "-u", str(N), "-r", "1", "-t", "12s", "--topology", str(pair.topology),
                     "--drill", f"failover:{NODE1}@ready+1", "--report")
    assert run.wait(120) == 0, run.err_text()[-3000:]  # not interrupted: the run ends at -t; judged below
    info = json.loads((run.run_dir / "run.json").read_text(encoding="utf-8"))
    assert info["partial"] is True and info["actions"] == []
    summary = json.loads((run.run_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["verdict"] == "INCONCLUSIVE"
    assert any("failover imp1.example.test planned at ready+1 s was never injected" in r for r in summary["reasons"])
