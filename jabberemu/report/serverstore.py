"""The nodes' metric rows in compact arrays (the streaming report's ``ServerRows``).

``server_metrics.jsonl`` holds one row per node and second with ~45 numbers (the mock's
``/api/metrics``). The streaming report keeps only the keys it reads (:data:`KEPT_KEYS`: a wave's
server side, ``storm.SERVER_KEYS``, and the soak figures: sessions, process RSS and CPU) in float
arrays: 8 bytes per kept value and 8 per row's time, ~150 KiB per node and hour; every other key
is only remembered as seen (``keys``), as :class:`~jabberemu.report.storm.ServerRowList` does.
"""

from __future__ import annotations

import bisect
import math
from array import array
from collections.abc import Iterable, Sequence, Set

import numpy as np
from numpy.typing import NDArray

from jabberemu.report.storm import SERVER_KEYS
from jabberemu.rundata.records import ServerMetric

__all__ = ["KEPT_KEYS", "ServerMetricStore"]

#: Keys kept per row: the storm's and the soak figures' (``report.soak``).
KEPT_KEYS = frozenset(SERVER_KEYS | {"active_sessions", "rss_bytes", "cpu_percent", "cpa_logins_ok",
                                     "cpa_session_logins_ok"})

FloatArray = NDArray[np.float64]


class _Node:
    __slots__ = ("ts", "values", "keys", "sorted")

    def __init__(self) -> None:
        self.ts: array[float] = array("d")
        self.values: dict[str, array[float]] = {}
        self.keys: set[str] = set()
        self.sorted = True


class ServerMetricStore:
    """Rows by node, in time order, holding the kept keys (NaN where a row lacked one)."""

    def __init__(self, rows: Iterable[ServerMetric] = ()) -> None:
        self._nodes: dict[str, _Node] = {}
        self.rows_added = 0
        for r in rows:
            self.add(r)

    def add(self, row: ServerMetric) -> None:
        """Keep one row."""
        node = self._nodes.get(row.node)
        if node is None:
            node = self._nodes[row.node] = _Node()
        if node.ts and row.ts < node.ts[-1]:
            node.sorted = False
        n = len(node.ts)
        node.ts.append(row.ts)
        for key, value in row.values.items():
            node.keys.add(key)
            if key not in KEPT_KEYS:
                continue
            arr = node.values.get(key)
            if arr is None:
                arr = node.values[key] = array("d", [math.nan]) * n
            arr.append(value)
        for key, arr in node.values.items():
            if len(arr) == n:
                arr.append(math.nan)
        self.rows_added += 1

    def finish(self) -> None:
        """Sort each node's rows by time (files written per node and poll are nearly sorted)."""
        for node in self._nodes.values():
            if node.sorted:
                continue
            order = np.argsort(np.frombuffer(node.ts, dtype=float), kind="stable")
            node.ts = array("d", np.frombuffer(node.ts, dtype=float)[order].tobytes())
            node.values = {k: array("d", np.frombuffer(v, dtype=float)[order].tobytes())
                           for k, v in node.values.items()}
            node.sorted = True

    @property
    def nodes(self) -> list[str]:
        """Node names, sorted."""
        return sorted(self._nodes)

    def rows(self, node: str, lo_ts: float, hi_ts: float) -> Sequence[ServerMetric]:
        n = self._nodes.get(node)
        if n is None:
            return []
        i, j = bisect.bisect_left(n.ts, lo_ts), bisect.bisect_right(n.ts, hi_ts)
        out = []
        for k in range(i, j):
            values = {key: arr[k] for key, arr in n.values.items() if not math.isnan(arr[k])}
            out.append(ServerMetric(ts=n.ts[k], node=node, values=values))
        return out

    def keys(self, node: str) -> Set[str]:
        n = self._nodes.get(node)
        return n.keys if n is not None else set()

    def series(self, node: str, key: str) -> tuple[FloatArray, FloatArray] | None:
        """(times epoch s, values) of one kept key of one node (NaN rows dropped), or None."""
        n = self._nodes.get(node)
        if n is None or key not in n.values:
            return None
        ts = np.frombuffer(n.ts, dtype=float)
        values = np.frombuffer(n.values[key], dtype=float)
        keep = ~np.isnan(values)
        return ts[keep].copy(), values[keep].copy()

    @property
    def nbytes(self) -> int:
        """Bytes held in arrays."""
        return sum(len(n.ts) * 8 + sum(len(v) * 8 for v in n.values.values()) for n in self._nodes.values())
