"""The process's garbage collector, managed for thousands of long-lived emulated clients.

A process that holds 10,000 connected clients holds millions of objects that live for the whole
run. CPython's collector walks every one of them on each full (generation 2) pass: passes of
0.3-3.3 s at 2,000-10,000 clients, which held every re-login timer back (BENCHMARKS.md, before
issue 17). What this module does, installed by :class:`~jabberemu.runtime.Runtime` on its loop
with no option to set (our choice, measured in BENCHMARKS.md):

- **young collections rarer**: generation 0 is collected after :data:`YOUNG_THRESHOLD` net
  allocations instead of CPython's 700 (a login allocates a few hundred objects that live as long
  as its connection);
- **long-lived objects frozen**: every :data:`FREEZE_INTERVAL_S` a timer on the loop collects the
  objects made since the previous tick (``gc.collect(2)``: frozen objects are not walked, so the
  pass costs what one interval allocated, a few milliseconds) and then ``gc.freeze()``\\ s the
  survivors. No pass, automatic or ours, ever walks the whole client population again.

The price of freezing: a frozen object that later becomes part of *cyclic* garbage is never
collected. Finished connections leave no reference cycles by design (``jabberemu.xmpp.lean``,
tests/client/test_no_cycles.py), so reference counting frees them, frozen or not; the 60-minute
soak in BENCHMARKS.md shows the resident memory flat. Garbage that is cyclic *and* young is
collected by the tick before it could be frozen.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from dataclasses import dataclass

__all__ = ["FREEZE_INTERVAL_S", "YOUNG_THRESHOLD", "GcPolicy", "GcStats", "active_policy"]

logger = logging.getLogger(__name__)

YOUNG_THRESHOLD = 20_000
"""Generation-0 threshold (CPython's default: 700). At 700 the collector ran ~600 passes per
1,000 logins, ~2 ms CPU per login; at 20,000 ~20 passes, ~0.7 ms (bench/login_cost.py)."""

FREEZE_INTERVAL_S = 1.0
"""Seconds between two collect-and-freeze ticks. A tick walks what one interval allocated and kept:
shorter intervals mean shorter pauses for the same total work."""


@dataclass(kw_only=True)
class GcStats:
    """What the policy's ticks did (for benchmarks and tests).

    Attributes:
        ticks: collect-and-freeze ticks run.
        collected: unreachable objects the ticks found.
        total_ms, max_ms: time the ticks held the process (ms), in total and at most.
    """

    ticks: int = 0
    collected: int = 0
    total_ms: float = 0.0
    max_ms: float = 0.0


class GcPolicy:
    """Thresholds and periodic collect-and-freeze for the process (one active at a time).

    Args:
        young_threshold: generation-0 threshold; only ever raised, never lowered below what the
            embedding program set.
        interval_s: seconds between ticks; 0 disables the ticks (thresholds only).
    """

    def __init__(self, *, young_threshold: int = YOUNG_THRESHOLD, interval_s: float = FREEZE_INTERVAL_S) -> None:
        if young_threshold < 1 or interval_s < 0:
            raise ValueError("young_threshold must be >= 1 and interval_s >= 0")
        self.young_threshold = young_threshold
        self.interval_s = interval_s
        self.stats = GcStats()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._users = 0

    @property
    def running(self) -> bool:
        """True while the ticks are scheduled on a loop."""
        return self._handle is not None

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        """Apply the thresholds and start the ticks on ``loop`` (counted: each install needs an
        :meth:`uninstall`; ticks stop with the last one).

        A policy whose loop was closed without its uninstalls (a runtime never closed) moves to
        ``loop``; while its loop runs, installs from another loop share its ticks.

        Raises:
            RuntimeError: another policy is active in this process.
        """
        global _ACTIVE
        if _ACTIVE is not None and _ACTIVE is not self:
            raise RuntimeError("another GcPolicy is active in this process")
        if self._loop is not None and self._loop.is_closed():
            self._handle = None
            self._loop = None
            self._users = 0
        _ACTIVE = self
        self._users += 1
        threshold = gc.get_threshold()
        if threshold[0] < self.young_threshold:
            gc.set_threshold(self.young_threshold, *threshold[1:])
        if self._handle is None and self.interval_s > 0:
            self._loop = loop
            self._handle = loop.call_later(self.interval_s, self._tick)

    def uninstall(self) -> None:
        """Undo one :meth:`install`; the last one stops the ticks (thresholds and frozen objects stay)."""
        global _ACTIVE
        self._users = max(0, self._users - 1)
        if self._users:
            return
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._loop = None
        if _ACTIVE is self:
            _ACTIVE = None

    def tick(self) -> int:
        """Collect what was made since the previous tick, then freeze the survivors.

        Returns:
            The number of unreachable objects found.
        """
        t0 = time.perf_counter()
        found = gc.collect(2)  # frozen objects are not walked: costs what the interval allocated
        gc.freeze()
        ms = (time.perf_counter() - t0) * 1000.0
        s = self.stats
        s.ticks += 1
        s.collected += found
        s.total_ms += ms
        s.max_ms = max(s.max_ms, ms)
        return found

    def _tick(self) -> None:
        loop = self._loop
        self._handle = None
        if loop is None or loop.is_closed():
            return
        try:
            self.tick()
        finally:
            if self._users and self._loop is loop:
                self._handle = loop.call_later(self.interval_s, self._tick)


_ACTIVE: GcPolicy | None = None


def active_policy() -> GcPolicy | None:
    """The policy installed in this process, if any."""
    return _ACTIVE
