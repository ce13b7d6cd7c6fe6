"""Per-second series of a run on the load clock (pure, numpy).

Bin ``i`` covers load-clock seconds ``[i, i + 1)``. Counts (logins/s) are events in the bin;
levels (connected clients, clients per state) are the value at the end of the bin.
"""

from __future__ import annotations

import enum
import math
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from jabberemu.report.records import CONNECTED_STATE, RunData

__all__ = ["Marker", "MarkerKind", "Series", "build_series"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


class MarkerKind(enum.Enum):
    """What a vertical line on the timeline stands for."""

    ADMIN_ACTION = "admin action"
    SERVER_STATE = "server state"


@dataclass(frozen=True, kw_only=True, slots=True)
class Marker:
    """A labelled instant on the load clock (admin action or SRM state change)."""

    t_s: float
    kind: MarkerKind
    node: str | None
    label: str


@dataclass(frozen=True, kw_only=True)
class Series:
    """Per-second series; every array has ``len(seconds)`` entries.

    Attributes:
        seconds: bin starts (s on the load clock).
        logins: node -> first logins completed per second (``connected``, relogin false).
        relogins: node -> re-logins completed per second (``connected``, relogin true).
        connected: node -> clients in XMPPCONNECTED on that node at the end of each second.
        states: client state -> clients in that state at the end of each second.
        server: (node, metric) -> (times s, values) of ``server_metrics.jsonl`` numeric fields.
        markers: admin actions and SRM state changes.
    """

    seconds: FloatArray
    logins: dict[str, IntArray] = field(default_factory=dict)
    relogins: dict[str, IntArray] = field(default_factory=dict)
    connected: dict[str, IntArray] = field(default_factory=dict)
    states: dict[str, IntArray] = field(default_factory=dict)
    server: dict[tuple[str, str], tuple[FloatArray, FloatArray]] = field(default_factory=dict)
    markers: tuple[Marker, ...] = ()


#: ``server_events`` kinds drawn as state markers; ``admin`` rows come in through ``RunData.actions``.
_STATE_MARKER_KINDS = frozenset({"transition", "service", "process"})
_OTHER_KINDS = frozenset({"admin", "disconnect"})


def _bins(t: list[float], n: int) -> IntArray:
    idx = np.floor(np.asarray(t, dtype=float)).astype(np.int64)
    idx = idx[(idx >= 0) & (idx < n)]
    return np.bincount(idx, minlength=n).astype(np.int64)


def build_series(data: RunData) -> Series:
    """Build the per-second series of a run.

    Args:
        data: the loaded run.
    Returns:
        The series from load-clock second 0 to the end of the run.
    """
    t0 = data.info.started_ts
    n = max(1, math.ceil(data.t(data.last_ts)) + 1)
    seconds = np.arange(n, dtype=float)

    login_t: dict[str, list[float]] = defaultdict(list)
    relogin_t: dict[str, list[float]] = defaultdict(list)
    for c in data.connected:
        (relogin_t if c.relogin else login_t)[c.node or "?"].append(c.ts - t0)
    nodes = sorted(set(login_t) | set(relogin_t) | {s.node for s in data.states if s.node})
    logins = {node: _bins(login_t.get(node, []), n) for node in nodes}
    relogins = {node: _bins(relogin_t.get(node, []), n) for node in nodes}

    # Levels: walk state records once, snapshot at each bin end.
    current: dict[str, tuple[str, str | None]] = {}
    state_counts: dict[str, int] = defaultdict(int)
    node_counts: dict[str, int] = defaultdict(int)
    all_states = sorted({s.to_state for s in data.states} | {s.from_state for s in data.states if s.from_state})
    states = {s: np.zeros(n, dtype=np.int64) for s in all_states}
    connected = {node: np.zeros(n, dtype=np.int64) for node in nodes}
    records = data.states
    i = 0
    for b in range(n):
        limit = t0 + b + 1
        while i < len(records) and records[i].ts < limit:
            rec = records[i]
            i += 1
            old = current.get(rec.client)
            if old is not None:
                state_counts[old[0]] -= 1
                if old[0] == CONNECTED_STATE and old[1]:
                    node_counts[old[1]] -= 1
            current[rec.client] = (rec.to_state, rec.node)
            state_counts[rec.to_state] += 1
            if rec.to_state == CONNECTED_STATE and rec.node:
                node_counts[rec.node] += 1
        for s, count in state_counts.items():
            states[s][b] = count
        for node, count in node_counts.items():
            connected.setdefault(node, np.zeros(n, dtype=np.int64))[b] = count

    server: dict[tuple[str, str], tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for m in data.server_metrics:
        for name, value in m.values.items():
            ts_list, values = server[(m.node, name)]
            ts_list.append(m.ts - t0)
            values.append(value)

    markers = [Marker(t_s=a.ts - t0, kind=MarkerKind.ADMIN_ACTION, node=a.node,
                      label=f"{a.name} {a.node or ''}".strip()) for a in data.actions]
    markers += [Marker(t_s=e.ts - t0, kind=MarkerKind.SERVER_STATE, node=e.node, label=e.label)
                for e in data.server_events
                if e.kind in _STATE_MARKER_KINDS or (e.kind not in _OTHER_KINDS and e.to_state)]
    return Series(
        seconds=seconds, logins=logins, relogins=relogins, connected=connected, states=states,
        server={k: (np.asarray(v[0]), np.asarray(v[1])) for k, v in server.items()},
        markers=tuple(sorted(markers, key=lambda m: m.t_s)),
    )
