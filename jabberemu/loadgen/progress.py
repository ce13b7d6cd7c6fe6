"""The swarm's progress: per-process snapshots summed, and the one-line-a-second view (pure).

Each Locust process snapshots its clients once a second (clients started, per state, connected per
node, per node in any live state); workers send theirs to the master. :func:`sum_progress` adds them
up for the drill's ready probe, the Prometheus gauges and the web UI; :func:`progress_line` is the
line ``--progress`` prints.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["progress_line", "sum_progress"]


def sum_progress(snapshots: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The processes' snapshots summed: ``started``, ``states``, ``connected``, ``nodes``."""
    states: Counter[str] = Counter()
    connected: Counter[str] = Counter()
    nodes: Counter[str] = Counter()
    started = 0
    for snap in snapshots:
        started += int(snap.get("started", 0))
        states.update(snap.get("states", {}))
        connected.update(snap.get("connected", {}))
        nodes.update(snap.get("nodes", {}))
    return {"started": started, "states": dict(states), "connected": dict(connected), "nodes": dict(nodes)}


def progress_line(totals: Mapping[str, Any], elapsed_s: float) -> str:
    """``[  12.0s] clients 200: connected imp1=100 imp2=100 | waiting to re-login 0 | logging in 0 | ended 0``."""
    states: Mapping[str, int] = totals["states"]
    waiting = sum(v for k, v in states.items() if k == "FAILOVER")
    busy = sum(v for k, v in states.items() if k.startswith(("SOAP", "XMPPCONNECT_")))
    nodes = " ".join(f"{n.split('.')[0]}={c}" for n, c in sorted(totals["connected"].items()))
    ended = sum(v for k, v in states.items() if k in ("GAVE_UP", "LOGGED_OUT"))
    return (f"[{elapsed_s:6.1f}s] clients {totals['started']}: connected {nodes or '-'} | "
            f"waiting to re-login {waiting} | logging in {busy} | ended {ended}")
