"""The node's ``/api/metrics`` rows: once a second, the counts since the previous row and the gauges.

Keys: ``xmpp_*`` (the listener's counters), ``cpa_*`` (the CPA endpoint's), the login admission's
``login_*`` of docs/login-model.md (``login.cost.LoginInterval``), ``active_sessions`` and the SRM
``state``; each row stamped with Unix time (``ts``) and the node's name. The last
:data:`METRICS_KEPT_S` seconds are kept (**our choice**: readers poll every 30 s and write every row
to the run's data, so a longer history only made a soaking node grow through its first hour, ~9 MB).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any

from mock_server import srm
from mock_server.cpa.metrics import CpaMetrics
from mock_server.login.admission import LoginAdmission
from mock_server.xmpp.listener import XmppListener

__all__ = ["METRICS_INTERVAL_S", "METRICS_KEPT_S", "MetricsSampler"]

logger = logging.getLogger(__name__)

METRICS_INTERVAL_S = 1.0
"""Seconds between two ``/api/metrics`` rows of a node."""
METRICS_KEPT_S = 900
"""Seconds of rows a node keeps (one row per second): 15 minutes."""


class MetricsSampler:
    """Samples one node's counters into rows.

    Args:
        name: the node's name.
        listener: its XMPP listener.
        cpa_metrics: its CPA endpoint's counters.
        admission: its login admission.
        machine: its SRM machine (the state in each row).
    """

    def __init__(self, *, name: str, listener: XmppListener, cpa_metrics: CpaMetrics, admission: LoginAdmission,
                 machine: srm.SrmMachine) -> None:
        self.name = name
        self._listener = listener
        self._cpa_metrics = cpa_metrics
        self._admission = admission
        self._machine = machine
        self._rows: deque[dict[str, Any]] = deque(maxlen=int(METRICS_KEPT_S / METRICS_INTERVAL_S))
        self._last_counters: dict[str, int] = {}

    def rows(self, since: object = None) -> list[dict[str, Any]]:
        """The rows kept, or those after ``since`` (Unix seconds) when it is a number."""
        if isinstance(since, (int, float)) and not isinstance(since, bool):
            return [row for row in self._rows if row["ts"] > since]
        return list(self._rows)

    async def run(self) -> None:
        """Once a second: per-second counters for ``/api/metrics``."""
        while True:
            await asyncio.sleep(METRICS_INTERVAL_S)
            try:
                self._rows.append(self.row())
            except Exception:  # a bad sample must not end the sampling
                logger.exception("metrics sample failed on %s", self.name)

    def row(self) -> dict[str, Any]:
        """Counts since the previous row (``xmpp_*``, ``cpa_*``), gauges (``active_sessions``,
        ``xmpp_*_active``), the SRM state, and the login admission's ``login_*`` keys of
        docs/login-model.md (counts and wait/latency percentiles since the previous row, gauges
        now; ``login.cost.LoginInterval``).
        """
        cur = {f"xmpp_{k}": v for k, v in self._listener.metrics.items()}
        cur.update({f"cpa_{c.value}": v for c, v in self._cpa_metrics.totals.items()})
        row: dict[str, Any] = {"ts": round(time.time(), 3), "node": self.name}
        for key, value in cur.items():
            row[key] = value if key.endswith("_active") else value - self._last_counters.get(key, 0)
        row.update(self._admission.take_interval().to_metrics())
        row["active_sessions"] = self._listener.session_count
        row["state"] = self._machine.state.value
        self._last_counters = cur
        return row
