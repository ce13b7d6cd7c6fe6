"""The streaming report equals the in-memory one (summary.json field by field) on the test run
directories, on multi-wave soaks, and on run data written out of order in rotated segments; the
waves it holds open at once are bounded by the largest wave, not by the run."""

from __future__ import annotations

import importlib.util
import json
import random
import sys
from pathlib import Path
from typing import Any

import pytest
from synthetic_run import SimConfig, simulate

from jabberemu.report.build import build_report
from jabberemu.report.drift import WARMUP_S
from jabberemu.report.stream import analyze_run
from jabberemu.rundata import CLIENT_EVENTS_FILE, RotatingJsonlWriter, segment_paths


def _load_bench_soak() -> Any:
    """``bench/synthetic_run.py`` (same file name as this directory's simulator: loaded by path)."""
    path = Path(__file__).resolve().parents[2] / "bench" / "synthetic_run.py"
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location("bench_synthetic_run", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


write_soak = _load_bench_soak().write_run

#: The configurations the report tests build their run directories from.
CONFIGS: dict[str, dict[str, Any]] = {
    "drill600": dict(clients=600, ramp_per_s=150, lower_s=4, upper_s=16, fallback_at_s=40, gave_up=2,
                     server_login_rate=60, seed=7),
    "fb40": dict(clients=40, ramp_per_s=40, lower_s=1, upper_s=3, fallback_at_s=12),
    "c20": dict(clients=20, ramp_per_s=20, lower_s=6, upper_s=8),
    "partial": dict(clients=100, ramp_per_s=100, lower_s=5, upper_s=25, stop_at_s=12.0),
    "tight": dict(clients=40, ramp_per_s=40, lower_s=0.5, upper_s=1.0, failover_at_s=5.0, fallback_at_s=8.0),
    "narrow": dict(clients=300, ramp_per_s=150, server_login_rate=30.0, seed=3, lower_s=4, upper_s=6),
    "late": dict(clients=300, ramp_per_s=150, server_login_rate=60.0, seed=3, lower_s=4, upper_s=6,
                 recovery_margin_s=0.0),
    "lost": dict(clients=300, ramp_per_s=150, server_login_rate=60.0, seed=3, lower_s=4, upper_s=24, gave_up=3),
    "hot": dict(clients=300, ramp_per_s=150, server_login_rate=60.0, seed=3, lower_s=4, upper_s=24,
                loop_lag_ms=120.0),
    "html": dict(clients=300, ramp_per_s=150, server_login_rate=30.0, seed=3, lower_s=4, upper_s=6, fallback_at_s=20),
    "part": dict(clients=300, ramp_per_s=150, server_login_rate=60.0, seed=3, lower_s=4, upper_s=24, stop_at_s=12.0),
}


def _both(run_dir: Path, tmp_path: Path, html: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    streamed = build_report(run_dir, out_dir=tmp_path / "streamed", html=html)
    loaded = build_report(run_dir, out_dir=tmp_path / "loaded", html=html, stream=False)
    return streamed.data, loaded.data


def _assert_same(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert set(a) == set(b)
    for key in a:
        assert a[key] == b[key], key


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_streamed_summary_equals_the_loaded_one(name: str, tmp_path: Path) -> None:
    run = simulate(tmp_path / name, SimConfig(**CONFIGS[name])).run_dir
    streamed, loaded = _both(run, tmp_path)
    _assert_same(streamed, loaded)
    assert streamed["ha_events"], "each configuration has at least one wave"


def test_the_html_page_has_every_wave_figure(tmp_path: Path) -> None:
    run = simulate(tmp_path / "run", SimConfig(**CONFIGS["html"])).run_dir
    _both(run, tmp_path, html=True)
    pages = [(tmp_path / d / "report.html").read_text() for d in ("streamed", "loaded")]
    assert pages[0].count("data:image/png;base64,") == pages[1].count("data:image/png;base64,") >= 8


@pytest.mark.parametrize("detail", ["full", "summary"])
def test_a_multi_wave_soak_streams_one_wave_at_a_time(detail: str, tmp_path: Path) -> None:
    run = tmp_path / "soak"
    written = write_soak(run, hours=1.0, clients=200, drill_every_s=300.0, lower_s=5.0, upper_s=20.0,
                         ramp_per_s=50.0, detail=detail, seed=4, rotate_bytes=200_000)
    assert written["waves"] >= 10 and written["segments"] > 2
    streamed, loaded = _both(run, tmp_path)
    _assert_same(streamed, loaded)
    assert len(streamed["ha_events"]) == written["waves"]
    assert [w["clients"] for w in streamed["ha_events"]] == [100] * written["waves"]
    _data, _analysis, stats = analyze_run(run)
    assert stats.waves == written["waves"]
    assert stats.peak_open_parts <= 100  # one wave's clients, not the run's 100 x waves
    assert stats.late_records == 0


def test_records_out_of_order_in_rotated_segments_give_the_same_summary(tmp_path: Path) -> None:
    run = simulate(tmp_path / "ordered", SimConfig(**CONFIGS["drill600"])).run_dir
    lines = (run / CLIENT_EVENTS_FILE).read_text().splitlines()
    # workers' batches: records shuffled within blocks of ~1 s, rotated into compressed segments
    rng = random.Random(5)
    blocks: dict[int, list[str]] = {}
    for line in lines:
        blocks.setdefault(int(json.loads(line)["ts"]), []).append(line)
    shuffled = run.parent / "shuffled"
    shuffled.mkdir()
    for name in ("run.json", "server_events.jsonl", "server_metrics.jsonl", "generator.jsonl"):
        (shuffled / name).write_bytes((run / name).read_bytes())
    w = RotatingJsonlWriter(shuffled, CLIENT_EVENTS_FILE, rotate_bytes=50_000)
    for second in sorted(blocks):
        block = blocks[second]
        rng.shuffle(block)
        for line in block:
            w.write_line(line)
    w.close()
    assert len(segment_paths(shuffled, CLIENT_EVENTS_FILE)) > 3
    a = build_report(shuffled, out_dir=tmp_path / "a", html=False).data
    b = build_report(run, out_dir=tmp_path / "b", html=False, stream=False).data
    _assert_same(a, b)


@pytest.mark.parametrize(("growth", "verdict", "status"), [(0.0, "PASS", "pass"), (0.03, "FAIL", "fail")])
def test_a_soak_report_shows_the_whole_run_and_judges_its_drift(growth: float, verdict: str, status: str,
                                                                tmp_path: Path) -> None:
    run = tmp_path / "soak"
    write_soak(run, hours=1.5, clients=100, drill_every_s=900.0, lower_s=5.0, upper_s=30.0, ramp_per_s=50.0,
               detail="summary", seed=2, rotate_bytes=1 << 20, rss_growth_per_h=growth)
    summary = build_report(run)
    assert summary.data["soak"]["drift_judged"] is True and summary.verdict.value == verdict
    soak = summary.data["soak"]
    ready = soak["latency_warmup_end_s"] - WARMUP_S  # latency's warm-up: 15 minutes after the sign-in
    assert 0 < ready < 10 and soak["warmup_end_s"] > soak["latency_warmup_end_s"]  # memory's waits for a wave
    drift = {c["name"]: c for c in summary.data["checks"] if c["name"].startswith(("latency p99", "generator RSS"))}
    assert drift["generator RSS stays flat (slope per hour after warm-up)"]["status"] == status
    assert drift["latency p99 does not creep up (slope per hour after warm-up)"]["status"] == "pass"
    page = (run / "report.html").read_text()
    assert "Soak at a glance" in page and 'alt="soak at a glance"' in page
    waves = len(summary.data["ha_events"])
    assert waves >= 5 and all(f"href='#wave-{i}'" in page and f"id='wave-{i}'" in page for i in range(1, waves + 1))
