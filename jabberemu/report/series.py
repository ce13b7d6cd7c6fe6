"""Per-second series of a run on the load clock (pure, numpy).

Bin ``i`` covers load-clock seconds ``[i, i + 1)``. Counts (logins/s) are events in the bin;
levels (connected clients, clients per state) are the value at the end of the bin.
"""

from __future__ import annotations

import enum
import math
from array import array
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from jabberemu.report.records import (
    CONNECTED_STATE,
    Action,
    ConnectedRecord,
    RunData,
    ServerEvent,
    StateRecord,
)

__all__ = ["Marker", "MarkerKind", "Series", "SeriesBuilder", "build_series", "markers_of"]

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


def _grow(arr: array[int], size: int) -> None:
    if len(arr) < size:
        arr.extend(array("q", [0]) * (size - len(arr)))


class SeriesBuilder:
    """The per-second series, built one record at a time (records in time order; bounded memory:
    one integer per second and series, one entry per client).

    Feed ``state`` and ``connected`` records with :meth:`add_state` / :meth:`add_connected`, in
    ``ts`` order, then :meth:`build`.

    Args:
        started_ts: the run's start (epoch s): bin ``i`` is ``[started_ts + i, started_ts + i + 1)``.
    """

    def __init__(self, started_ts: float) -> None:
        self.t0 = started_ts
        self._current: dict[str, tuple[str, str | None]] = {}
        self._state_counts: dict[str, int] = defaultdict(int)
        self._node_counts: dict[str, int] = defaultdict(int)
        self._states: dict[str, array[int]] = {}
        self._connected: dict[str, array[int]] = {}
        self._seen_states: set[str] = set()
        self._nodes: set[str] = set()
        self._logins: dict[str, array[int]] = {}
        self._relogins: dict[str, array[int]] = {}
        self._bin = 0  # the next bin to snapshot

    def _snapshot_until(self, ts: float) -> None:
        """Snapshot every bin that ends at or before ``ts`` (levels at the end of the bin)."""
        while ts >= self.t0 + self._bin + 1:
            b = self._bin
            for state, count in self._state_counts.items():
                arr = self._states.setdefault(state, array("q"))
                _grow(arr, b)
                arr.append(count)
            for node, count in self._node_counts.items():
                arr = self._connected.setdefault(node, array("q"))
                _grow(arr, b)
                arr.append(count)
            self._bin += 1

    def add_state(self, rec: StateRecord) -> None:
        """One ``state`` record."""
        self._snapshot_until(rec.ts)
        self._seen_states.add(rec.to_state)
        if rec.from_state:
            self._seen_states.add(rec.from_state)
        if rec.node:
            self._nodes.add(rec.node)
        old = self._current.get(rec.client)
        if old is not None:
            self._state_counts[old[0]] -= 1
            if old[0] == CONNECTED_STATE and old[1]:
                self._node_counts[old[1]] -= 1
        self._current[rec.client] = (rec.to_state, rec.node)
        self._state_counts[rec.to_state] += 1
        if rec.to_state == CONNECTED_STATE and rec.node:
            self._node_counts[rec.node] += 1

    def add_connected(self, rec: ConnectedRecord) -> None:
        """One ``connected`` record (a first login or a re-login completed)."""
        node = rec.node or "?"
        self._nodes.add(node)
        t = rec.ts - self.t0
        if t < 0:
            return
        b = math.floor(t)
        arr = (self._relogins if rec.relogin else self._logins).setdefault(node, array("q"))
        _grow(arr, b + 1)
        arr[b] += 1

    def build(self, last_ts: float, markers: Sequence[Marker] = (),
              server: dict[tuple[str, str], tuple[FloatArray, FloatArray]] | None = None) -> Series:
        """The series from load-clock second 0 to ``last_ts`` (epoch s)."""
        n = max(1, math.ceil(last_ts - self.t0) + 1)
        self._snapshot_until(self.t0 + n)

        def dense(arr: array[int] | None) -> IntArray:
            out = np.zeros(n, dtype=np.int64)
            if arr is not None and len(arr):
                src = np.frombuffer(arr, dtype=np.int64)[:n]
                out[: src.size] = src
            return out

        nodes = sorted(self._nodes)  # of connected records and of state records
        connected = {node: dense(self._connected.get(node)) for node in nodes}
        return Series(
            seconds=np.arange(n, dtype=float),
            logins={node: dense(self._logins.get(node)) for node in nodes},
            relogins={node: dense(self._relogins.get(node)) for node in nodes},
            connected=connected,
            states={st: dense(self._states.get(st)) for st in sorted(self._seen_states)},
            server=server or {}, markers=tuple(sorted(markers, key=lambda m: m.t_s)),
        )


def markers_of(data_actions: Sequence[Action], server_events: Sequence[ServerEvent], t0: float) -> list[Marker]:
    """Timeline markers: admin actions and SRM state changes."""
    markers = [Marker(t_s=a.ts - t0, kind=MarkerKind.ADMIN_ACTION, node=a.node,
                      label=f"{a.name} {a.node or ''}".strip()) for a in data_actions]
    markers += [Marker(t_s=e.ts - t0, kind=MarkerKind.SERVER_STATE, node=e.node, label=e.label)
                for e in server_events
                if e.kind in _STATE_MARKER_KINDS or (e.kind not in _OTHER_KINDS and e.to_state)]
    return markers


def build_series(data: RunData) -> Series:
    """Build the per-second series of a run.

    Args:
        data: the loaded run.
    Returns:
        The series from load-clock second 0 to the end of the run.
    """
    t0 = data.info.started_ts
    builder = SeriesBuilder(t0)
    for c in data.connected:
        builder.add_connected(c)
    for rec in data.states:
        builder.add_state(rec)
    server: dict[tuple[str, str], tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for m in data.server_metrics:
        for name, value in m.values.items():
            ts_list, values = server[(m.node, name)]
            ts_list.append(m.ts - t0)
            values.append(value)
    return builder.build(data.last_ts, markers_of(data.actions, data.server_events, t0),
                         {k: (np.asarray(v[0]), np.asarray(v[1])) for k, v in server.items()})
