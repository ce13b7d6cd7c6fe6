"""Issue 15 acceptance, first half: the planner and the verdict agree. ``jabberemu plan`` recommends an
upper limit for a node's login model and the clients' SOAP timeout; ``jabberemu drill`` with that
window on a mock enforcing that model PASSes, with no client refused or timed out and none predicted
at risk. The second half (a narrower window FAILs): test_cli_plan_narrower_drill.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from plan_support import drill, planned_upper

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]


def test_the_planned_window_passes(tmp_path: Path) -> None:
    planned = drill(tmp_path, "planned", planned_upper())
    assert planned["verdict"] == "PASS", planned["reasons"][:4]
    for wave in planned["ha_events"]:
        assert (wave["busy"], wave["timeouts"]) == (0, 0)
        assert wave["predicted"]["clients_at_risk"]["p95"] == 0
