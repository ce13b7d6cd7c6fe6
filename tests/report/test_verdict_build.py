"""Verdict checks, summary.json, report.html and the ``jabberemu report`` entry point."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from synthetic_run import SimConfig, simulate

from jabberemu.report.build import build_report, main
from jabberemu.report.summary import Summary
from jabberemu.report.verdict import CheckName, CheckStatus, Verdict

SUMMARY_FIELDS = {"clients_started", "end_states", "ha_events", "generator", "verdict", "reasons"}
WAVE_FIELDS = {"kind", "node", "at_s", "lower_s", "upper_s", "clients", "recovered", "predicted_peak_rate",
               "measured_peak_rate_1s", "measured_peak_rate_10s", "recovery_p50_s", "recovery_p99_s",
               "recovery_max_s", "ks_statistic", "ks_pvalue"}


def _run(tmp_path: Path, name: str, **kw: object) -> Path:
    cfg = dict(clients=300, ramp_per_s=150, server_login_rate=60.0, seed=3)
    cfg.update(kw)
    return simulate(tmp_path / name, SimConfig(**cfg)).run_dir  # type: ignore[arg-type]


def _checks(summary: Summary) -> dict[tuple[str, str], dict]:
    return {(c["name"], c["status"]): c for c in summary.data["checks"]}


def test_wide_window_passes(tmp_path: Path) -> None:
    summary = build_report(_run(tmp_path, "wide", lower_s=4, upper_s=24), html=False)
    assert summary.verdict is Verdict.PASS
    assert SUMMARY_FIELDS <= set(summary.data) and WAVE_FIELDS <= set(summary.data["ha_events"][0])
    assert {c["status"] for c in summary.data["checks"]} == {"pass", "info"}
    assert summary.data["ha_events"][0]["measured_peak_rate_1s"] <= 60
    # the model agrees: 150 logins over 20 s at 60/s hardly queue
    wave = summary.data["ha_events"][0]
    assert wave["predicted"]["probability_clean"] == 1.0 and all(r["agrees"] for r in wave["measured_vs_predicted"])


def test_narrow_window_fails_on_the_login_wait_and_shows_demand_against_capacity(tmp_path: Path) -> None:
    """150 re-logins in 2 s at 30 logins/s: 5 s of work, waits up to ~3 s; the 1 s demand peak over the
    capacity is information beside the checks, the wait fails the wave, as the model predicted."""
    summary = build_report(_run(tmp_path, "narrow", lower_s=4, upper_s=6, server_login_rate=30.0), html=False)
    assert summary.verdict is Verdict.FAIL
    failed = [c for c in summary.data["checks"] if c["status"] == "fail"]
    assert [c["name"] for c in failed] == [CheckName.LOGIN_WAIT.value]
    wave = summary.data["ha_events"][0]
    assert wave["predicted_peak_rate"] == pytest.approx(75.0)
    assert failed[0]["measured"] == pytest.approx(wave["login_wait_p99_s"], abs=0.01) and failed[0]["measured"] > 2
    assert failed[0]["limit"] == 2.0 and summary.reasons[0] == failed[0]["message"]
    assert "p99 CPA login wait" in summary.reasons[0] and "model: " in summary.reasons[0]
    assert f"demand peaked at {wave['demand_peak_1s']:.0f}/s, served at most" in summary.reasons[0]
    rate = _checks(summary)[(CheckName.PEAK_RATE_1S.value, "info")]
    assert rate["measured"] == wave["demand_peak_1s"] > 30 and rate["limit"] == 30.0
    assert wave["nodes"][0]["node"] == "imp2.example.test" and wave["nodes"][0]["demand"] == 150
    assert (wave["busy"], wave["timeouts"], wave["second_rounds"]) == (0, 0, 0)
    assert wave["recovered_by"] == {"round 1 (session login)": 150}
    predicted = wave["predicted"]
    assert predicted["server_model"]["rate_per_s"] == 30.0
    assert predicted["wait_p99_s"]["p5"] <= wave["login_wait_p99_s"] <= predicted["wait_p99_s"]["p95"] + 0.05


def test_no_declared_capacity_shows_the_demand_alone(tmp_path: Path) -> None:
    summary = build_report(_run(tmp_path, "nocap", lower_s=4, upper_s=6, server_login_rate=None), html=False)
    assert summary.verdict is Verdict.PASS
    info = [c for c in summary.data["checks"] if c["name"] in (CheckName.PEAK_RATE_1S.value, CheckName.PEAK_RATE_10S.value)]
    assert {c["status"] for c in info} == {"info"} and all("no capacity declared" in c["message"] for c in info)
    assert summary.data["declared_capacity_per_s"] is None


def test_capacity_override_and_recovery_deadline(tmp_path: Path) -> None:
    # 150 re-logins in 2 s at 60/s: the queue holds the last ones past the upper limit
    run = _run(tmp_path, "late", lower_s=4, upper_s=6, recovery_margin_s=0.0)
    summary = build_report(run, html=False)
    late = _checks(summary)[(CheckName.RECOVERY_TIME.value, "fail")]
    wave = summary.data["ha_events"][0]
    assert late["limit"] == 6.0 and late["excess"] == pytest.approx(wave["recovery_max_s"] - 6.0)
    assert "exceeds upper 6 s + margin 0 s = 6 s" in late["message"] and "; model: " in late["message"]
    assert build_report(run, html=False, recovery_margin_s=1.0).verdict is Verdict.PASS
    tight = build_report(run, html=False, recovery_margin_s=1.0, max_login_wait_s=0.001)
    assert tight.verdict is Verdict.FAIL and tight.data["max_login_wait_s"] == 0.001


def test_gave_up_clients_fail_the_recovered_check(tmp_path: Path) -> None:
    summary = build_report(_run(tmp_path, "lost", lower_s=4, upper_s=24, gave_up=3), html=False)
    check = _checks(summary)[(CheckName.ALL_RECOVERED.value, "fail")]
    assert (check["measured"], check["limit"], check["excess"]) == (147.0, 150.0, 3.0)
    assert "3 of 150 clients did not recover" in check["message"]


def test_saturated_generator_warns(tmp_path: Path) -> None:
    summary = build_report(_run(tmp_path, "hot", lower_s=4, upper_s=24, loop_lag_ms=120.0), html=False)
    assert summary.verdict is Verdict.PASS  # a warning, not a failed check
    assert summary.data["generator"]["saturated"] is True
    assert any("latencies not trustworthy" in w for w in summary.data["warnings"])


def test_main_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    narrow = _run(tmp_path, "n", lower_s=4, upper_s=6, server_login_rate=30.0)
    wide = _run(tmp_path, "w", lower_s=4, upper_s=24)
    assert main([str(narrow), "--no-html"]) == 0
    assert main([str(narrow), "--no-html", "--fail-on-verdict"]) == 1
    assert main([str(wide), "--no-html", "--fail-on-verdict"]) == 0
    out = capsys.readouterr().out
    assert out.count("FAIL") >= 2 and "PASS" in out and "p99 CPA login wait" in out
    assert main([str(tmp_path / "nowhere")]) == 2
    assert "run.json" in capsys.readouterr().err
    assert Summary.read(wide / "summary.json").verdict is Verdict.PASS


def test_html_is_self_contained_with_plots_and_verdict(tmp_path: Path) -> None:
    run = _run(tmp_path, "html", lower_s=4, upper_s=6, fallback_at_s=20, server_login_rate=30.0)
    (run / "out_stats.csv").write_text(
        "Type,Name,Request Count,Failure Count,50%,95%,99%,99.9%\n"
        "ha,relogin,300,0,9000,13000,13800,14000\n")
    (run / "out_stats_history.csv").write_text("Timestamp,User Count\n1,2\n")
    summary = build_report(run)
    page = (run / "report.html").read_text()
    assert summary.verdict is Verdict.FAIL
    assert '<div class="banner FAIL"><h1>FAIL</h1>' in page
    assert "exceeds 2 s by" in page and "Predicted and measured" in page
    # timeline, states, 2 waves, 2 server-side (storm) figures, 2 wait/recovery figures, generator
    assert len(re.findall(r'<img alt="[^"]+" src="data:image/png;base64,', page)) == 9
    assert page.count('<img alt="servers during wave ') == 2
    assert "What each wave did to the servers and to its clients" in page
    assert not re.search(r'(src|href)="(https?:)?//', page) and "<script" not in page
    assert "PARTIAL RUN" not in page
    assert "no response time (excluded)" in page
    assert "Locust's own statistics" in page and "<td>13800</td>" in page and "User Count" not in page


def test_partial_run_is_marked_in_the_html(tmp_path: Path) -> None:
    run = _run(tmp_path, "part", lower_s=4, upper_s=24, stop_at_s=12.0)
    build_report(run)
    page = (run / "report.html").read_text()
    assert "PARTIAL RUN" in page and json.loads((run / "summary.json").read_text())["partial"] is True


def test_2000_clients_5_25_predicted_and_measured_agree(tmp_path: Path) -> None:
    """Issue 6: with 2,000 clients and 5/25 s, predicted and measured peak agree within 10%."""
    run = simulate(tmp_path / "big", SimConfig(clients=4000, ramp_per_s=400, lower_s=5, upper_s=25,
                                               seed=11, missing_rt_every=0)).run_dir
    summary = build_report(run, html=False)
    wave = summary.data["ha_events"][0]
    assert wave["clients"] == 2000  # the failed node's half of 4,000 Balanced users
    assert wave["predicted_peak_rate"] == pytest.approx(100.0)
    assert wave["measured_peak_rate_10s"] == pytest.approx(100.0, rel=0.10)
