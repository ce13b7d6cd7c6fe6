"""``jabberemu drill`` end to end, one small drill per fault besides the default failover, each checked
against the mock's SRM states, the admin actions, the clients' HA classes and the accounting."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_support import assert_accounted, orphans_of, run_drill, state_sequence

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

NODE1, NODE2 = "imp1.example.test", "imp2.example.test"

# -- one small drill per fault -------------------------------------------------------------------

FAULT_CASES = {
    "service-down": (
        ["Initializing", "Normal", "Failing Over", "Failed Over with Critical Services not Running", "Failed Over",
         "Taking Back", "Normal"],
        ["Initializing", "Normal", "Taking Over", "Running in Backup Mode", "Falling Back", "Normal"],
        ["service-stop", "service-start", "fallback"],
        {"stream-error:system-shutdown"},
    ),
    "node-kill": (
        # killed, restarted: the new process hears its peer in backup mode and comes up Failed Over
        ["Initializing", "Normal", "Initializing", "Failed Over", "Taking Back", "Normal"],
        ["Initializing", "Normal", "Running in Backup Mode", "Falling Back", "Normal"],
        ["kill", "restart", "fallback"],
        {"connection-reset"},
    ),
    "partition": (
        # split ownership: each side serves what it served, nobody's session drops; heal; Recover
        ["Initializing", "Normal", "Running in Backup Mode", "Running in Failed Mode", "Initializing", "Normal"],
        ["Initializing", "Normal", "Running in Backup Mode", "Running in Failed Mode", "Initializing", "Normal"],
        ["partition", "heal", "recover"],
        set(),
    ),
}


@pytest.mark.parametrize("fault", sorted(FAULT_CASES))
def test_drill_fault(fault: str, tmp_path: Path) -> None:
    node1_states, node2_states, admin_actions, ha_classes = FAULT_CASES[fault]
    clients = 40
    # a killed node's clients try both nodes twice, each after a wait >= lower: 2 x lower must outlast the
    # heartbeat timeout (5 s) after which the peer takes them over, else they give up (the drill warns)
    lower, upper = ("3", "4") if fault == "node-kill" else ("1", "2")
    drill = run_drill(tmp_path / fault, "--fault", fault, "--clients", str(clients), "--ramp", "40", "--lower", lower,
                   "--upper", upper, "--hold", "2", "--margin", "3")
    assert "warning:" not in drill.proc.output
    assert state_sequence(drill.server_events, NODE1) == node1_states
    assert state_sequence(drill.server_events, NODE2) == node2_states
    assert [e["action"] for e in drill.server_events if e["kind"] == "admin"] == admin_actions
    assert_accounted(drill.summary, clients)
    assert drill.summary["end_states"] == {"LOGGED_OUT": clients}
    if ha_classes:
        assert drill.waves() == [("failover", clients // 2, clients // 2), ("fallback", clients // 2, clients // 2)]
        assert set(drill.summary["ha_events"][0]["ha_classes"]) == ha_classes
    else:
        assert drill.waves() == []
    assert orphans_of(drill.proc.descendants) == []
