"""bench/throttle_model.py runs by itself in --smoke mode and prints its result JSON last."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_throttle_bench_smoke(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "throttle_model.py"), "--smoke", "--results-dir",
                           str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=100, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["clients"] == 500 and result["replicas"] == 20 and result["smoke"] is True
    assert set(result["waves"]) == {"failover-storm", "failover-planned", "fallback-storm"}
    assert all(w["arrivals_per_replica"] >= 500 for w in result["waves"].values())
    assert result["plan"]["upper_s"] > 120.0
    assert "CPU (lscpu)" in proc.stdout
    saved = json.loads((tmp_path / "throttle_model.json").read_text(encoding="utf-8"))
    assert saved[-1] == result
