"""Generator health: above --cpu-warn / --loop-lag-warn-ms a warning says latencies are no longer
trustworthy, at most once every 10 s per worker. The run is configured from a locust.conf file and
environment variables (options: every one of them works from both, see test_swarm_units.py)."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from jabberemu.loadgen.collect import HealthWatch

N = 10
WARNING = re.compile(r"^\[(?P<ts>[\d-]+ [\d:,]+)\] \S+/WARNING/jabberemu\.loadgen\.collect: load generator (?P<worker>\S+) "
                     r"is saturated now \((?P<why>.*)\): latencies it measures are not trustworthy meanwhile", re.M)


@pytest.mark.timeout(180)
def test_saturation_warning_at_most_every_ten_seconds(tmp_path: Path, mock_pair: Any, locust_run: Any,
                                                      swarm_tools: Any) -> None:
    pair = mock_pair(N, "balanced")
    conf = tmp_path / "jabber.conf"
    conf.write_text(f"topology = {pair.topology}\nheadless = true\nusers = {N}\nspawn-rate = {N}\n"
                    "cpu-warn = 0\nloop-lag-warn-ms = 0\n", encoding="utf-8")
    run = locust_run("--config", str(conf), env={"JABBEREMU_DRILL": "stop@ready+12", "JABBEREMU_DEFAULT_LOWER": "1",
                                                 "JABBEREMU_DEFAULT_UPPER": "3"})
    assert run.wait(150) == 0, run.err_text()[-3000:]
    err = run.err_text()
    warnings = [(datetime.strptime(m["ts"], "%Y-%m-%d %H:%M:%S,%f").timestamp(), m["worker"], m["why"])
                for m in WARNING.finditer(err)]
    samples = [json.loads(line) for line in (run.run_dir / "generator.jsonl").read_text().splitlines() if line]
    assert len(samples) >= 12 and len({s["worker"] for s in samples}) == 1
    # replay the rule on the samples' own times: exactly the warnings the run logged
    replay = HealthWatch(cpu_warn=0.0, loop_lag_warn_ms=0.0)
    expected = sum(1 for s in samples if replay.check(s, s["ts"]) is not None)
    assert len(warnings) == expected >= 2
    gaps = [b[0] - a[0] for a, b in zip(warnings, warnings[1:])]
    assert all(gap >= 9.9 for gap in gaps), gaps
    assert all("CPU" in why for _, _, why in warnings)
    # options from the conf file and the environment took effect
    assert len(run.records("end")) == N
    info = json.loads((run.run_dir / "run.json").read_text(encoding="utf-8"))
    assert (info["lower_s"], info["upper_s"], info["clients"]) == (1.0, 3.0, N)
    assert [a["action"] for a in info["actions"]] == ["stop"]
    swarm_tools.assert_clean_shutdown(err)
