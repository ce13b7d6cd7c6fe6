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

- **free memory handed back**: every :data:`TRIM_INTERVAL_S` the same tick asks the C allocator to
  return its free pages to the system (glibc ``malloc_trim(0)``; nothing on other C libraries).
  Buffers over 512 bytes (socket reads, SOAP bodies, TLS records) come from glibc's heap, whose
  free chunks fragment and are kept: in a 1,000-client run with a failover every 30 s the heap's
  free space grew 1.6 -> 8.1 MiB in 6.5 minutes while the memory in use stayed at 55.8 MiB and
  Python's own 1 MiB arenas at 93 of them; the generator's RSS grew +1.5 %/h after warm-up in a
  60-minute soak, a growth that is not a leak but reads as one. One trim took 0.3-1.0 ms there and
  brought the RSS back by 4.5 MiB; after it, the RSS stayed within 0.2 MiB (BENCHMARKS.md, section 6).

- **no collection while a swarm signs out**: :meth:`GcPolicy.pause` turns the collector off, ticks
  included, until :meth:`GcPolicy.resume` (the Locust swarm pauses it when its test starts to stop,
  and resumes it once the sign-outs are over and the last records sent). A process signing out
  7,500 clients in ~10 s made ~1,000 sign-outs a second of short-lived objects, and the passes over
  them took 20-440 ms of each of those seconds; reference counting frees what sign-outs leave
  without cycles, and what has cycles waits for the resume.

The price of freezing: a frozen object that later becomes part of *cyclic* garbage is never
collected. Finished connections leave no reference cycles by design (``jabberemu.xmpp.lean``,
tests/client/test_no_cycles.py), so reference counting frees them, frozen or not (the live
session objects return to their level after each failover cycle; the 60-minute soaks of BENCHMARKS.md
section 6 show what remains of the resident memory's growth). Garbage that is cyclic *and* young is
collected by the tick before it could be frozen.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["FREEZE_INTERVAL_S", "TRIM_INTERVAL_S", "YOUNG_THRESHOLD", "GcPolicy", "GcStats", "active_policy",
           "malloc_trim"]

logger = logging.getLogger(__name__)

YOUNG_THRESHOLD = 20_000
"""Generation-0 threshold (CPython's default: 700). At 700 the collector ran ~600 passes per
1,000 logins, ~2 ms CPU per login; at 20,000 ~20 passes, ~0.7 ms (bench/login_cost.py)."""

FREEZE_INTERVAL_S = 1.0
"""Seconds between two collect-and-freeze ticks. A tick walks what one interval allocated and kept:
shorter intervals mean shorter pauses for the same total work."""

TRIM_INTERVAL_S = 60.0
"""Seconds between two returns of the C allocator's free pages to the system (module docstring)."""


def _find_malloc_trim() -> Callable[[int], int] | None:
    try:
        trim = getattr(ctypes.CDLL(None), "malloc_trim")  # the process's own symbols: no ldconfig lookup
    except (OSError, AttributeError, TypeError):
        return None  # not glibc (musl, macOS): nothing to trim
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim  # type: ignore[no-any-return]


malloc_trim: Callable[[int], int] | None = _find_malloc_trim()
"""glibc's ``malloc_trim``, or None where the C library has none."""


@dataclass(kw_only=True)
class GcStats:
    """What the policy's ticks did (for benchmarks and tests).

    Attributes:
        ticks: collect-and-freeze ticks run.
        collected: unreachable objects the ticks found.
        total_ms, max_ms: time the ticks held the process (ms), in total and at most (trims included).
        trims: times the C allocator was asked to return its free pages.
        trim_max_ms: the longest of those (ms).
    """

    ticks: int = 0
    collected: int = 0
    total_ms: float = 0.0
    max_ms: float = 0.0
    trims: int = 0
    trim_max_ms: float = 0.0


class GcPolicy:
    """Thresholds and periodic collect-and-freeze for the process (one active at a time).

    Args:
        young_threshold: generation-0 threshold; only ever raised, never lowered below what the
            embedding program set.
        interval_s: seconds between ticks; 0 disables the ticks (thresholds only).
        trim_interval_s: seconds between two trims of the C allocator, done by the first tick due
            after them; 0 disables them.
        clock: monotonic seconds (the trim interval's clock).
    """

    def __init__(self, *, young_threshold: int = YOUNG_THRESHOLD, interval_s: float = FREEZE_INTERVAL_S,
                 trim_interval_s: float = TRIM_INTERVAL_S, clock: Callable[[], float] = time.monotonic) -> None:
        if young_threshold < 1 or interval_s < 0 or trim_interval_s < 0:
            raise ValueError("young_threshold must be >= 1, interval_s and trim_interval_s >= 0")
        self.young_threshold = young_threshold
        self.interval_s = interval_s
        self.trim_interval_s = trim_interval_s
        self._clock = clock
        self._last_trim = clock()
        self.stats = GcStats()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._users = 0
        self._paused = False
        self._was_enabled = True
        self._pause_lock = threading.Lock()  # pause() on gevent's thread, resume() also on the loop's

    @property
    def running(self) -> bool:
        """True while the ticks are scheduled on a loop."""
        return self._handle is not None

    @property
    def paused(self) -> bool:
        """True between :meth:`pause` and :meth:`resume`."""
        return self._paused

    def pause(self) -> None:
        """Turn the collector off, ticks included (from any thread; idempotent). Reference counting
        still frees what has no cycles; cyclic garbage waits for :meth:`resume`."""
        with self._pause_lock:
            if not self._paused:
                self._paused = True
                self._was_enabled = gc.isenabled()
            gc.disable()

    def resume(self) -> None:
        """Turn the collector back on after :meth:`pause` (from any thread; idempotent; a collector
        the embedding program turned off itself stays off)."""
        with self._pause_lock:
            if self._paused:
                self._paused = False
                if self._was_enabled:
                    gc.enable()

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
            self.resume()
        _ACTIVE = self
        self._users += 1
        threshold = gc.get_threshold()
        if threshold[0] < self.young_threshold:
            gc.set_threshold(self.young_threshold, *threshold[1:])
        if self._handle is None and self.interval_s > 0:
            self._loop = loop
            self._handle = loop.call_later(self.interval_s, self._tick)

    def uninstall(self) -> None:
        """Undo one :meth:`install`; the last one stops the ticks and resumes a paused collector
        (thresholds and frozen objects stay)."""
        global _ACTIVE
        self._users = max(0, self._users - 1)
        if self._users:
            return
        self.resume()
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._loop = None
        if _ACTIVE is self:
            _ACTIVE = None

    def tick(self) -> int:
        """Collect what was made since the previous tick, then freeze the survivors; trim the C
        allocator when :attr:`trim_interval_s` has passed since the last trim.

        Returns:
            The number of unreachable objects found (0 while :attr:`paused`: no pass then).
        """
        if self._paused:
            return 0
        t0 = time.perf_counter()
        found = gc.collect(2)  # frozen objects are not walked: costs what the interval allocated
        gc.freeze()
        s = self.stats
        now = self._clock()
        if malloc_trim is not None and self.trim_interval_s and now - self._last_trim >= self.trim_interval_s:
            self._last_trim = now
            t1 = time.perf_counter()
            malloc_trim(0)
            s.trims += 1
            s.trim_max_ms = max(s.trim_max_ms, (time.perf_counter() - t1) * 1000.0)
        ms = (time.perf_counter() - t0) * 1000.0
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
