"""Smoke tests of the bench scripts: each runs alone with tiny numbers and prints its result JSON.

Each script is run as its own process (as a user runs it) with ``--smoke`` and a private results
directory; the test reads the JSON on the last line of its output and the appended results file.
The pure helpers (Tsung log parsing, re-login lateness analysis) are checked on fixed inputs.
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
sys.path.insert(0, str(BENCH))

from node_failover import Windows, _ratios, generator_cost, windows  # noqa: E402
from relogin_timing import analyse_records  # noqa: E402
from tsung_runner import parse_tsung_log, tsung_config  # noqa: E402

HAVE_TSUNG = shutil.which("tsung") is not None
HAVE_PROSODY = shutil.which("prosody") is not None


def _run(script: str, tmp_path: Path, *extra: str, timeout_s: float = 100.0) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, str(BENCH / script), "--smoke", "--results-dir", str(tmp_path), *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout_s, check=False,
    )
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-3000:])
    lines = proc.stdout.strip().splitlines()
    result = json.loads(lines[-1])
    saved = json.loads((tmp_path / f"{script[:-3]}.json").read_text(encoding="utf-8"))
    assert saved[-1] == result
    assert result["machine"]["nproc"] >= 1 and len(result["machine"]["load_avg"]) == 3
    assert result["argv"][-1] in extra or result["argv"][-1] == str(tmp_path)
    assert any(line.startswith("metric") for line in lines)
    return result


def test_wake_cost_smoke(tmp_path: Path) -> None:
    result = _run("wake_cost.py", tmp_path)
    assert (result["rounds"], result["calls"], result["gap_ms"]) == (2, 5, 20.0)
    assert set(result["median_us"]) == {"back-to-back", "after-sleep", "after-spin"}
    assert all(len(v) == 2 and min(v) > 0 for v in result["rounds_us"].values())
    assert result["ratio_to_back_to_back"]["back-to-back"] == 1.0


def test_sessions_per_process_smoke(tmp_path: Path) -> None:
    # Tsung's side is covered by the login_cost smoke test (a Tsung VM costs ~8 s to start and stop)
    result = _run("sessions_per_process.py", tmp_path, "--no-tsung")
    ours = result["jabberemu"]
    assert result["clients"] == 20 and result["mode"] == "cpa"
    assert ours["connected"] == 20 and ours["states"] == {"XMPPCONNECTED": 20}
    # 20 clients are too few for a stable RSS growth (page reuse): check the figures exist and are sane
    assert ours["rss_total_mib"] >= ours["rss_base_mib"] - 5 > 10
    assert isinstance(ours["rss_per_client_kib"], float) and ours["cpu_per_login_ms"] > 0
    assert ours["idle"]["lag_samples"] >= 10
    assert result["tsung"] is None and result["ratio_rss_ours_over_tsung"] is None


def test_login_cost_smoke(tmp_path: Path) -> None:
    extra = ["--no-saturate"] + ([] if HAVE_TSUNG else ["--no-tsung"]) + ([] if HAVE_PROSODY else ["--no-prosody"])
    result = _run("login_cost.py", tmp_path, *extra)
    runs = result["runs"]
    assert "cpa-saturated/mock" not in runs
    ours = ["cpa/mock", "xmpp-only/mock"] + (["xmpp-only/prosody"] if HAVE_PROSODY else [])
    for label in ours:
        assert runs[label]["logins"] == 30, runs[label]
        assert runs[label]["states"] == {"XMPPCONNECTED": 30}
        assert runs[label]["cpu_per_login_ms"] > 0
    if not HAVE_PROSODY:
        assert runs["xmpp-only/prosody"] == {"skipped": "disabled"}
    if not HAVE_TSUNG:
        assert result["ratio_xmpp_only_ours_over_tsung"] == {"mock": None, "prosody": None}
        return
    for label in ["tsung/mock"] + (["tsung/prosody"] if HAVE_PROSODY else []):
        assert runs[label]["logins"] == 30 and runs[label]["errors"] == 0, runs[label]
        assert runs[label]["cpu_per_login_ms"] > 0
    assert result["ratio_xmpp_only_ours_over_tsung"]["mock"] > 0


def test_relogin_timing_smoke(tmp_path: Path) -> None:
    result = _run("relogin_timing.py", tmp_path)
    timing = result["timing"]
    assert result["initial_login"]["states"] == {"XMPPCONNECTED": 30}
    assert timing["ha_events"] == timing["waits"] == timing["attempts"] == 30
    assert 0.5 <= timing["wait_min_s"] <= timing["wait_max_s"] <= 2.0
    assert timing["late_min_ms"] > -1.0 and timing["ks_p"] is not None
    assert result["wave"]["connected_on_backup"] == 30


def test_parse_tsung_log_sums_dumps() -> None:
    text = (
        "# stats: dump at 1\n"
        "stats: tr_login 10 20.0 1.0 30.0 10.0 0 0\n"
        "stats: error_connection_closed 2 2\n"
        "stats: {cpu,\"tsung_controller@vm\"} 1 63.0 0 63.0 63.0 0 0\n"
        "# stats: dump at 2\n"
        "stats: tr_login 30 40.0 1.0 50.0 10.0 20.0 10\n"
        "stats: tr_login 0 0 0 0 0 0 0\n"
        "stats: error_connection_closed 0 2\n"
    )
    stats = parse_tsung_log(text)
    assert stats["tr_login"] == {"count": 40.0, "mean_ms": 35.0, "max_ms": 50.0}
    assert stats["error_connection_closed"] == {"count": 2.0}
    assert not any(k.startswith("{") for k in stats)


def test_tsung_config_uses_sasl_plain_and_users_file(tmp_path: Path) -> None:
    xml = tsung_config(host="127.0.0.1", port=5222, domain="example.test", users_csv=tmp_path / "u.csv",
                       clients=100, rate_per_s=50, hold_s=7)
    assert 'maxnumber="100" arrivalrate="50"' in xml
    assert xml.count('type="connect"') == 2 and 'type="auth_sasl"' in xml
    assert f'value="{tmp_path / "u.csv"}"' in xml and '<thinktime value="7"' in xml


def test_analyse_records_measures_lateness_per_client() -> None:
    records = [
        {"type": "state", "ts": 99.0, "client": "a", "from": "FAILOVER", "to": "X"},  # before the failover
        {"type": "ha_event", "ts": 100.0, "client": "a"},
        {"type": "wait", "ts": 100.0, "client": "a", "wait_s": 1.0},
        {"type": "state", "ts": 101.010, "client": "a", "from": "FAILOVER", "to": "SOAPCONNECT_SESSION_P"},
        {"type": "state", "ts": 105.0, "client": "a", "from": "FAILOVER", "to": "SOAPCONNECT_SESSION_P"},
        {"type": "ha_event", "ts": 100.5, "client": "b"},
        {"type": "wait", "ts": 100.5, "client": "b", "wait_s": 1.5},
        {"type": "state", "ts": 102.1, "client": "b", "from": "FAILOVER", "to": "SOAPCONNECT_SESSION_P"},
        {"type": "ha_event", "ts": 100.6, "client": "c"},
    ]
    out = analyse_records(records, 0.5, 2.0, since_ts=100.0)
    assert (out["ha_events"], out["waits"], out["attempts"]) == (3, 2, 2)
    assert out["missing_wait"] == 1 and out["missing_attempt"] == 0
    assert out["late_min_ms"] == pytest.approx(10.0, abs=0.01)
    assert out["late_max_ms"] == pytest.approx(100.0, abs=0.01)
    assert out["on_time"] == 1 and out["on_time_share"] == 0.5
    assert 0.0 < out["ks_p"] <= 1.0


def test_synthetic_run_smoke(tmp_path: Path) -> None:
    result = _run("synthetic_run.py", tmp_path)
    assert (result["clients"], result["detail"]) == (30, "summary")
    assert result["waves"] == 8 and result["records"] > 30 * 15
    assert result["report"]["exit"] == 0 and result["report"]["verdict"] == "PASS"
    assert result["report"]["peak_rss_mib"] > 50 and result["kib_per_client_hour"] > 0


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_node_failover_windows_split_the_ramp_and_the_waves(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text(json.dumps({"actions": [
        {"ts": 100.0, "action": "failover"}, {"ts": 200.0, "action": "fallback"}, {"ts": 300.0, "action": "stop"}]}),
        encoding="utf-8")
    rows: list[dict[str, Any]] = [{"type": "state", "ts": 10.0, "client": "a"}]
    rows += [{"type": "connected", "ts": 10.5 + i, "client": f"c{i}", "relogin": False} for i in range(4)]
    rows += [{"type": "connected", "ts": ts, "client": "c0", "relogin": True} for ts in (130.0, 150.0, 250.0)]
    rows.append({"type": "connected", "ts": 301.0, "client": "c1", "relogin": True})  # after the stop: no wave's
    _jsonl(tmp_path / "client_events.jsonl", rows[:3])
    with gzip.open(tmp_path / "client_events.0001.jsonl.gz", "wt", encoding="utf-8") as f:  # written first
        f.write("".join(json.dumps(r) + "\n" for r in rows[3:6]))
    (tmp_path / "client_events.0001.jsonl").write_text("not JSON: a leftover of the .gz\n", encoding="utf-8")
    _jsonl(tmp_path / "client_events.jsonl", rows[:3] + rows[6:])
    win = windows(tmp_path)
    assert (win.ramp_start, win.ramp_end, win.logins) == (10.0, 13.5, 4)
    assert win.waves == [{"kind": "failover", "start": 100.0, "end": 150.0, "relogins": 2, "until": 200.0},
                         {"kind": "fallback", "start": 200.0, "end": 250.0, "relogins": 1, "until": 300.0}]


def test_node_failover_windows_without_a_fault_count_no_wave(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text(json.dumps({"actions": [{"ts": 50.0, "action": "stop"}]}), encoding="utf-8")
    _jsonl(tmp_path / "client_events.jsonl", [{"type": "connected", "ts": 5.0, "client": "a", "relogin": False},
                                              {"type": "connected", "ts": 9.0, "client": "a", "relogin": True}])
    win = windows(tmp_path)
    assert (win.logins, win.waves) == (1, [])


def test_node_failover_cost_counts_the_swarm_only_and_takes_the_idle_rate_off() -> None:
    win = Windows(ramp_start=0.0, ramp_end=100.0, logins=1000,
                  waves=[{"kind": "failover", "start": 110.0, "end": 150.0, "relogins": 500, "until": 200.0}])
    samples = []
    for t in range(0, 201):
        # the swarm's CPU seconds: 25 ms a second over the ramp (10 logins/s: 2.5 ms each), 1 % of a core idle
        # after it, and 100 ms a second more through the wave's 40 s (4 s for 500 re-logins)
        swarm = 0.025 * min(t, 100) + 0.01 * max(0, t - 100) + 0.1 * max(0, min(t, 150) - 110)
        rss = 100 * 2**20 + 30 * 1024 * 10 * min(t, 100)  # 30 KiB per client, 10 clients/s
        samples.append((float(t), {"swarm": swarm, "mock": 5.0 * t, "drill": 1.0 * t},
                        {"swarm": rss, "mock": 10**9, "drill": 10**9}))
    cost = generator_cost(samples, win)
    assert cost["cpu_per_login_ms"] == 2.5  # the mock's and the drill's CPU left out
    assert cost["rss_per_client_kib"] == 30.0
    (wave,) = cost["waves"]
    assert wave["relogins"] == 500 and wave["window_s"] == 40.0
    assert wave["idle_cpu_percent"] == 1.0  # from the settled tail, 151-199.5 s
    assert wave["cpu_per_relogin_ms"] == 8.8  # (0.4 s idle + 4 s) / 500
    assert wave["cpu_per_relogin_less_idle_ms"] == 8.0


def test_node_failover_ratios_put_xmpp_only_beside_xmpp_only() -> None:
    result: dict[str, Any] = {"cost": {"cpu_per_login_ms": 2.6, "rss_per_client_kib": 28.0},
                              "xmpp_only": {"cpu_per_login_ms": 1.5, "rss_per_client_kib": 24.0},
                              "tsung": {"cpu_per_login_ms": 2.0, "rss_per_session_kib": 20.0}}
    _ratios(result)
    assert result["ratio_cpu_xmpp_only_over_tsung"] == 0.75  # issue 17's ratio: the same login on both sides
    assert result["ratio_rss_xmpp_only_over_tsung"] == 1.2
    assert result["ratio_cpu_full_login_over_tsung_xmpp_only"] == 1.3  # the drill's full login beside it
    assert result["ratio_rss_per_client_over_tsung"] == 1.4
    skipped: dict[str, Any] = {"cost": {"cpu_per_login_ms": 2.6}, "tsung": {"skipped": "tsung not installed"}}
    _ratios(skipped)
    assert not [k for k in skipped if k.startswith("ratio")]
