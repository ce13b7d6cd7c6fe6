"""Issue 15 acceptance, second half: a window 20 % narrower than the one ``jabberemu plan`` recommends,
with the same short SOAP timeout, FAILs, with the clients at risk predicted before the run and
measured in it side by side (first half: test_cli_plan_then_drill.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from plan_support import LOWER, drill, planned_upper

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]


def test_a_window_narrower_than_planned_fails(tmp_path: Path) -> None:
    upper = planned_upper()
    narrow = drill(tmp_path, "narrow", LOWER + 0.8 * (upper - LOWER))
    assert narrow["verdict"] == "FAIL"
    waves = narrow["ha_events"]
    assert any(w["timeouts"] > 0 for w in waves)
    for wave in waves:
        assert wave["predicted"]["clients_at_risk"]["median"] > 0  # the model said so before the run
        assert wave["predicted"]["probability_clean"] < 0.99
    timed_out = [c for c in narrow["checks"] if c["name"] == "no CPA login timed out" and c["status"] == "fail"]
    assert timed_out and all("; model: " in c["message"] for c in timed_out)
