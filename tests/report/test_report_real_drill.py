"""Issue 6 acceptance on a real drill: ``summary.json`` against numbers computed here, independently,
from the raw ``client_events.jsonl`` of the failover + fallback drill the end-to-end tests share
(``cli_support.FAILOVER_DRILL``, ``tests/conftest.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_support import FAILOVER_DRILL, Drill
from scipy import stats

from jabberemu.rundata import JsonlReader

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

CLIENTS, LOWER_S, UPPER_S = FAILOVER_DRILL.clients, FAILOVER_DRILL.lower_s, FAILOVER_DRILL.upper_s


@pytest.fixture
def drill(failover_drill: Drill) -> Path:
    """The run directory of the session's shared failover drill (``tests/conftest.py``)."""
    return failover_drill.out


def _records(run: Path) -> list[dict]:
    return [obj for _p, _l, obj in JsonlReader(run, "client_events.jsonl", [])]


def _peak(times: list[float], window_s: float) -> int:
    """Most events in any half-open window [t, t + window_s) starting at an event."""
    t = np.sort(np.asarray(times))
    return int(max(np.searchsorted(t, t + window_s, side="left") - np.arange(len(t)))) if len(t) else 0


def test_summary_matches_the_raw_events(drill: Path) -> None:
    summary = json.loads((drill / "summary.json").read_text())
    run = json.loads((drill / "run.json").read_text())
    recs = _records(drill)
    fallback_ts = next(a["ts"] for a in run["actions"] if a["action"] == "fallback")

    ends = [r for r in recs if r["type"] == "end"]
    assert len({r["client"] for r in ends}) == CLIENTS == summary["clients_started"]
    assert sum(summary["end_states"].values()) == CLIENTS

    waves = summary["ha_events"]
    assert [w["kind"] for w in waves] == ["failover", "fallback"]
    for wave, (lo, hi) in zip(waves, [(0.0, fallback_ts - 2.0), (fallback_ts - 2.0, float("inf"))]):
        ha = {r["client"]: r["ts"] for r in recs if r["type"] == "ha_event" and lo <= r["ts"] < hi
              and r["cls"].startswith("stream-error")}
        waits = [r["wait_s"] for r in recs if r["type"] == "wait" and r["client"] in ha and lo <= r["ts"] < hi
                 and r.get("round", 1) == 1]
        back = {}
        for r in recs:
            if r["type"] == "connected" and r["relogin"] and r["client"] in ha and r["ts"] > ha[r["client"]]:
                back.setdefault(r["client"], r["ts"])
        recovery = np.array([back[c] - ha[c] for c in back])
        assert wave["clients"] == len(ha) == CLIENTS // 2
        assert wave["recovered"] == len(back) == CLIENTS // 2
        assert wave["recovery_p50_s"] == pytest.approx(float(np.percentile(recovery, 50)), abs=0.05)
        assert wave["recovery_p99_s"] == pytest.approx(float(np.percentile(recovery, 99)), abs=0.05)
        assert wave["recovery_max_s"] == pytest.approx(float(recovery.max()), abs=0.05)
        ks = stats.kstest(waits, "uniform", args=(LOWER_S, UPPER_S - LOWER_S))
        assert wave["ks_statistic"] == pytest.approx(ks.statistic, abs=1e-6)
        assert wave["ks_pvalue"] == pytest.approx(ks.pvalue, rel=1e-3)
        assert wave["predicted_peak_rate"] == pytest.approx(len(ha) / (UPPER_S - LOWER_S))
        relogins = list(back.values())
        assert wave["measured_peak_rate_1s"] == pytest.approx(_peak(relogins, 1.0), abs=1.0)
        assert wave["measured_peak_rate_10s"] == pytest.approx(_peak(relogins, 10.0) / 10.0, abs=0.1)


def test_report_page_has_both_waves_and_the_verdict(drill: Path) -> None:
    page = (drill / "report.html").read_text()
    summary = json.loads((drill / "summary.json").read_text())
    assert summary["verdict"] in page
    assert f"failover #1: imp1 → imp2, {CLIENTS // 2} clients" in page and f"fallback #2: imp2 → imp1, {CLIENTS // 2} clients" in page
    assert page.count("data:image/png;base64,") >= 5
