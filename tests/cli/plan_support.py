"""Issue 15's planner-and-verdict acceptance, shared by its two end-to-end files (one drill each, so the
suite's workers run them side by side): ``jabberemu plan`` for a node's login model and the clients'
SOAP timeout, then ``jabberemu drill`` with a window on a mock enforcing that model."""

from __future__ import annotations

import json
import re
from pathlib import Path

from cli_support import jabberemu

__all__ = ["CLIENTS", "LOWER", "RATE", "SOAP_TIMEOUT", "drill", "planned_upper"]

CLIENTS = 200  # balanced: 100 re-login in each wave; they sign in at 15/s per node, under the capacity
RATE, LOWER, SOAP_TIMEOUT = 20.0, 1.0, 1.5


def planned_upper() -> float:
    """The upper limit ``jabberemu plan`` recommends for the movers of one wave."""
    res = jabberemu("plan", "--users", str(CLIENTS // 2), "--rate", f"{RATE:g}", "--lower", f"{LOWER:g}",
                    "--critical-service-delay", "0", "--soap-timeout", f"{SOAP_TIMEOUT:g}")
    assert res.returncode == 0, res.stderr
    upper = float(re.search(r"Client Re-Login Upper Limit\s+([\d.]+) s", res.stdout).group(1))  # type: ignore[union-attr]
    assert upper >= LOWER + (CLIENTS // 2) / RATE * 0.5
    return upper


def drill(tmp_path: Path, name: str, upper: float) -> dict:
    """``jabberemu drill --fail-on-verdict`` with that window; its summary (exit code checked against it)."""
    out = tmp_path / name
    res = jabberemu("drill", "--clients", str(CLIENTS), "--ramp", "30", "--lower", f"{LOWER:g}", "--upper",
                    f"{upper:g}", "--login-rate", f"{RATE:g}", "--soap-timeout", f"{SOAP_TIMEOUT:g}", "--hold", "1",
                    "--margin", "3", "--fail-on-verdict", "--out", str(out), timeout_s=240)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert res.returncode == (0 if summary["verdict"] == "PASS" else 1), res.stdout[-3000:] + res.stderr[-3000:]
    return summary
