"""The header's re-login limits: what the clients cached (their waits), else the mock's parameters
recorded in run.json, else the client defaults, each labelled with its source."""

from __future__ import annotations

import json
from pathlib import Path

from synthetic_run import SimConfig, simulate

from jabberemu.report.build import build_report
from jabberemu.report.limits import LimitsSource, limits_of
from jabberemu.report.records import RunInfo, WaitRecord


def _info(**extra: object) -> RunInfo:
    return RunInfo(run_id="r", started_ts=1.0, clients=3, lower_s=120.0, upper_s=537.0, server_login_rate=None,
                   recovery_margin_s=5.0, actions=(), partial=False, extra=extra)


def _wait(lo: float, up: float) -> WaitRecord:
    return WaitRecord(ts=2.0, client="c", wait_s=lo, lower_s=lo, upper_s=up, round=1)


def test_waits_win_and_mixed_limits_are_listed() -> None:
    seen = limits_of([_wait(5, 25)] * 3 + [_wait(6, 30)], _info(server_parameters={"a": {"relogin_lower_s": 9,
                                                                                        "relogin_upper_s": 99}}))
    assert (seen.lower_s, seen.upper_s, seen.source, seen.waits) == (5, 25, LimitsSource.WAITS, 4)
    assert seen.by_limits == {(5, 25): 3, (6, 30): 1}
    assert seen.label == "5–25 s (from the clients' waits (what the server handed out at login), 4 waits; also 6–30 s (1))"


def test_server_parameters_without_waits_then_client_defaults() -> None:
    params = {"imp1": {"relogin_lower_s": 2.0, "relogin_upper_s": 8.0}, "imp2": {"relogin_lower_s": 2.0,
                                                                                 "relogin_upper_s": 8.0}}
    seen = limits_of([], _info(server_parameters=params))
    assert (seen.lower_s, seen.upper_s, seen.source) == (2.0, 8.0, LimitsSource.SERVER_PARAMETERS)
    fallback = limits_of([], _info())
    assert (fallback.lower_s, fallback.upper_s, fallback.source) == (120.0, 537.0, LimitsSource.CLIENT_DEFAULTS)
    assert "client defaults" in fallback.label


def test_the_header_and_summary_show_the_limits_the_clients_cached(tmp_path: Path) -> None:
    run = simulate(tmp_path / "r", SimConfig(clients=40, ramp_per_s=40, lower_s=3, upper_s=9)).run_dir
    info = json.loads((run / "run.json").read_text())
    info.update(lower_s=120.0, upper_s=537.0)  # the client's defaults, not what the server handed out
    (run / "run.json").write_text(json.dumps(info))
    summary = build_report(run)
    assert summary.data["relogin_limits"] == {"lower_s": 3.0, "upper_s": 9.0, "source": "waits", "waits": 20,
                                              "by_limits": [{"lower_s": 3.0, "upper_s": 9.0, "count": 20}]}
    page = (run / "report.html").read_text()
    assert "re-login limits 3–9 s (from the clients&#x27; waits" in page and "120–537" not in page
