"""Issue 15 acceptance: the planner and the verdict agree. ``jabberemu plan`` recommends an upper
limit for a node's login model and the clients' SOAP timeout; ``jabberemu drill`` with that window on
a mock enforcing that model PASSes; a window 20 % narrower with the same short SOAP timeout FAILs,
with the clients at risk predicted and measured side by side."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from cli_support import jabberemu

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

CLIENTS = 200  # balanced: 100 re-login in each wave; they sign in at 15/s per node, under the capacity
RATE, LOWER, SOAP_TIMEOUT = 20.0, 1.0, 1.5


def _drill(tmp_path: Path, name: str, upper: float) -> dict:
    out = tmp_path / name
    res = jabberemu("drill", "--clients", str(CLIENTS), "--ramp", "30", "--lower", f"{LOWER:g}", "--upper",
                    f"{upper:g}", "--login-rate", f"{RATE:g}", "--soap-timeout", f"{SOAP_TIMEOUT:g}", "--hold", "1",
                    "--margin", "3", "--fail-on-verdict", "--out", str(out), timeout_s=240)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert res.returncode == (0 if summary["verdict"] == "PASS" else 1), res.stdout[-3000:] + res.stderr[-3000:]
    return summary


def test_the_planned_window_passes_and_a_narrower_one_fails(tmp_path: Path) -> None:
    res = jabberemu("plan", "--users", str(CLIENTS // 2), "--rate", f"{RATE:g}", "--lower", f"{LOWER:g}",
                    "--critical-service-delay", "0", "--soap-timeout", f"{SOAP_TIMEOUT:g}")
    assert res.returncode == 0, res.stderr
    upper = float(re.search(r"Client Re-Login Upper Limit\s+([\d.]+) s", res.stdout).group(1))  # type: ignore[union-attr]
    assert upper >= LOWER + (CLIENTS // 2) / RATE * 0.5

    planned = _drill(tmp_path, "planned", upper)
    assert planned["verdict"] == "PASS", planned["reasons"][:4]
    for wave in planned["ha_events"]:
        assert (wave["busy"], wave["timeouts"]) == (0, 0)
        assert wave["predicted"]["clients_at_risk"]["p95"] == 0

    narrow = _drill(tmp_path, "narrow", LOWER + 0.8 * (upper - LOWER))
    assert narrow["verdict"] == "FAIL"
    waves = narrow["ha_events"]
    assert any(w["timeouts"] > 0 for w in waves)
    for wave in waves:
        assert wave["predicted"]["clients_at_risk"]["median"] > 0  # the model said so before the run
        assert wave["predicted"]["probability_clean"] < 0.99
    timed_out = [c for c in narrow["checks"] if c["name"] == "no CPA login timed out" and c["status"] == "fail"]
    assert timed_out and all("; model: " in c["message"] for c in timed_out)
