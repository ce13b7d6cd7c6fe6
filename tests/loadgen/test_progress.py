"""The swarm's progress: two processes' snapshots summed, and the line ``--progress`` prints."""

from __future__ import annotations

from jabberemu.loadgen.progress import progress_line, sum_progress

WORKER_A = {"started": 100, "states": {"XMPPCONNECTED": 60, "FAILOVER": 30, "SOAPCONNECT_SESSION_S": 10},
            "connected": {"imp2.example.test": 60}, "nodes": {"imp2.example.test": 70, "imp1.example.test": 30}}
WORKER_B = {"started": 100, "states": {"XMPPCONNECTED": 95, "XMPPCONNECT_P": 3, "GAVE_UP": 1, "LOGGED_OUT": 1},
            "connected": {"imp1.example.test": 40, "imp2.example.test": 55}, "nodes": {"imp2.example.test": 98}}


def test_two_processes_are_summed_per_state_and_node() -> None:
    tot = sum_progress([WORKER_A, WORKER_B])
    assert tot == {
        "started": 200,
        "states": {"XMPPCONNECTED": 155, "FAILOVER": 30, "SOAPCONNECT_SESSION_S": 10, "XMPPCONNECT_P": 3,
                   "GAVE_UP": 1, "LOGGED_OUT": 1},
        "connected": {"imp2.example.test": 115, "imp1.example.test": 40},
        "nodes": {"imp2.example.test": 168, "imp1.example.test": 30},
    }
    assert sum_progress([]) == {"started": 0, "states": {}, "connected": {}, "nodes": {}}


def test_the_progress_line_names_waiting_logging_in_and_ended() -> None:
    line = progress_line(sum_progress([WORKER_A, WORKER_B]), 12.04)
    assert line == ("[  12.0s] clients 200: connected imp1=40 imp2=115 | waiting to re-login 30 | "
                    "logging in 13 | ended 2")
    assert "connected - |" in progress_line(sum_progress([{"started": 5, "states": {}}]), 1.0)
