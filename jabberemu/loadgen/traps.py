"""Locust/gevent traps met by the swarm, each with its fix (ENGINEERING.md, "Locust (gevent) and asyncio").

Called by :mod:`jabberemu.loadgen.swarm` at install and init: aiohttp's resolver kept off pycares
threads, the bridge's loop thread started with the process signals blocked, Locust's ``--csv``
writer ended quietly after its files are closed, Locust's statistics kept from growing with the
run's length (:func:`trim_locust_stats`), Locust's default options computed once per process
(:func:`cache_locust_default_args`), and its users counted as they come and go
(:func:`count_locust_users`).
"""

from __future__ import annotations

import collections
import functools
import signal
import time
from typing import Any

import gevent
import gevent.pool

from jabberemu.loadgen.bridge import AsyncioBridge

__all__ = ["STATS_HISTORY_KEPT", "STATS_SECONDS_KEPT", "UserCountingGroup", "cache_locust_default_args",
           "count_locust_users", "guard_csv_writer",
           "keep_locust_stats_trimmed", "start_bridge", "trim_locust_stats", "use_threaded_resolver"]

STATS_SECONDS_KEPT = 120
"""Seconds of Locust's per-second request and failure counts kept per statistics entry (its current
rates read the last ~12)."""
STATS_HISTORY_KEPT = 720
"""Records of Locust's chart history kept (one per 5 s: the web UI's charts show the last hour)."""


def use_threaded_resolver() -> None:
    """Make aiohttp resolve with ``loop.getaddrinfo`` (the bridge's original resolver), not aiodns.

    With aiodns installed aiohttp's default resolver is pycares, whose channel starts a
    ``threading.Thread`` at first use. In a gevent-patched process that thread is a greenlet on a
    hub of the bridge's loop thread that nobody runs; at shut-down pycares puts the channel into a
    gevent ``SimpleQueue`` waited on by that greenlet and gevent prints "AssertionError: Can only use
    Waiter.switch method from the Hub greenlet". The threaded resolver calls the loop's
    ``getaddrinfo``, which the bridge runs with the original (unpatched) resolver (ENGINEERING.md,
    trap 3).
    """
    import aiohttp.connector
    import aiohttp.resolver

    setattr(aiohttp.connector, "DefaultResolver", aiohttp.resolver.ThreadedResolver)  # noqa: B010


_PROCESS_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2}


def start_bridge(bridge: AsyncioBridge) -> None:
    """Start the bridge's loop thread with the process signals blocked in it.

    A thread inherits its creator's signal mask. Without this, the kernel may deliver SIGTERM to
    the loop thread, where gevent's handler (libev, main thread) does not see it: the process died
    at once, skipping Locust's graceful shut-down (stats, ``--csv``, sign-outs).
    """
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _PROCESS_SIGNALS)
    try:
        bridge.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def guard_csv_writer() -> None:
    """End Locust's ``--csv`` writer greenlet quietly once its files are closed (idempotent).

    Locust 2.47's ``shutdown()`` closes the CSV files, then exits (locust PR #3486); when the hub runs
    once more in between (threads joined at exit), the writer greenlet, still in its loop, writes to a
    closed file and prints ``ValueError: I/O operation on closed file`` with a traceback (seen once in
    ``tests/loadgen/test_distributed.py`` under a parallel suite). The files are complete by then.
    """
    from locust.stats import StatsCSVFileWriter

    original = StatsCSVFileWriter.stats_writer
    if getattr(original, "_jabberemu_guard", False):
        return

    def stats_writer(self: Any) -> None:
        try:
            original(self)
        except ValueError:
            if not self.requests_csv_filehandle.closed:
                raise

    stats_writer._jabberemu_guard = True  # type: ignore[attr-defined]
    StatsCSVFileWriter.stats_writer = stats_writer  # type: ignore[method-assign]


def cache_locust_default_args() -> None:
    """Compute Locust's default options once per process (idempotent).

    Locust 2.47's ``WorkerRunner.handle_message`` answers each ``spawn`` message of the master with a
    dict comprehension over the master's options that calls ``argument_parser.default_args_dict()``
    for EVERY option: each call builds and parses Locust's whole argument parser (2.7 ms here), ~100
    calls per message, ~0.3 s of the worker's main thread per message, GIL held. A py-spy of a worker
    at the end of the 15,000-client ramp found 15 % of its samples there, and the event loop's lag
    spikes of 50-130 ms at those moments (BENCHMARKS.md, section 7). Locust's own options and their
    defaults do not change within a process, so the first result is kept and a copy handed out.
    """
    from locust import argument_parser

    original = argument_parser.default_args_dict
    if getattr(original, "_jabberemu_cached", False):
        return
    computed_once = functools.cache(original)

    def default_args_dict() -> dict[str, Any]:
        return dict(computed_once())

    default_args_dict._jabberemu_cached = True  # type: ignore[attr-defined]
    argument_parser.default_args_dict = default_args_dict


class UserCountingGroup(gevent.pool.Group):  # type: ignore[misc]  # gevent ships no stubs
    """Locust's group of user greenlets, counting its users per class as they are added and dropped.

    A user's class is read when its greenlet is added (its ``args[0]``: Locust's ``User.start``
    spawns ``run_user(user)`` into the group) and kept until the greenlet leaves the group.
    """

    def __init__(self) -> None:
        super().__init__()
        self.counts: collections.Counter[str] = collections.Counter()
        self._class_of: dict[Any, str] = {}

    def add(self, greenlet: Any) -> None:
        super().add(greenlet)
        if greenlet not in self._class_of:
            args = getattr(greenlet, "args", ())
            name = type(args[0]).__name__ if args else ""
            self._class_of[greenlet] = name
            self.counts[name] += 1

    def _discard(self, greenlet: Any) -> None:
        super()._discard(greenlet)
        name = self._class_of.pop(greenlet, None)
        if name is not None:
            self.counts[name] -= 1


def _counted_user_classes_count(self: Any) -> dict[str, int]:
    counts = {user_class.__name__: 0 for user_class in self.user_classes}
    group = self.user_greenlets
    if not isinstance(group, UserCountingGroup):
        return dict(_LOCUST_USER_CLASSES_COUNT(self))
    for name, n in group.counts.items():
        if name in counts:
            counts[name] = n
    return counts


_LOCUST_USER_CLASSES_COUNT: Any = None


def count_locust_users(runner: Any) -> None:
    """Make ``runner.user_classes_count`` a lookup instead of a walk over every user (idempotent).

    Locust 2.47's ``Runner.user_classes_count`` walks every user greenlet, and a worker reads it ~8
    times per ``spawn`` message of the master (``start_worker``: twice per user class, the spawn
    log line, ``spawning_complete``): ~25 ms of its main thread per message at 7,500 users, GIL held,
    once a second through a ramp. A py-spy of a worker at the end of a 15,000-client ramp found a
    quarter of the main thread's samples there, and the event loop's lag rose to 50-110 ms at those
    moments. The runner's group (still empty: called at ``events.init``) is replaced by a
    :class:`UserCountingGroup`; ``user_classes_count`` reads its counts. One difference, ours: a user
    whose greenlet has died but not yet left the group (until the hub's next callbacks) still counts,
    as it does in Locust's ``user_count``.
    """
    global _LOCUST_USER_CLASSES_COUNT
    from locust.runners import Runner

    current = Runner.__dict__["user_classes_count"]
    if current.fget is not _counted_user_classes_count:
        _LOCUST_USER_CLASSES_COUNT = current.fget
        Runner.user_classes_count = property(_counted_user_classes_count)  # type: ignore[method-assign,assignment]
    if runner is None or isinstance(getattr(runner, "user_greenlets", None), UserCountingGroup):
        return
    group = UserCountingGroup()
    for greenlet in list(runner.user_greenlets):
        group.add(greenlet)
    runner.user_greenlets = group


def trim_locust_stats(stats: Any, now: float | None = None) -> int:
    """Forget what Locust's statistics keep for the whole run but only ever read recently.

    Locust 2.47's ``StatsEntry`` counts requests and failures per second of the run in
    ``num_reqs_per_sec``/``num_fail_per_sec`` (one key per second per request name, never dropped;
    read only for the current rates, the last ~12 s), and ``RequestStats.history`` gains a chart
    record every 5 s. Over an hour of a soak's 15 request names that is ~4 MiB, 2 % of the generator
    per hour (measured with tracemalloc): a drift the soak verdict would blame on us. Totals,
    response times and failures are untouched.

    Returns:
        Per-second keys dropped.
    """
    cutoff = int(time.time() if now is None else now) - STATS_SECONDS_KEPT
    dropped = 0
    for entry in [*stats.entries.values(), stats.total]:
        for name in ("num_reqs_per_sec", "num_fail_per_sec"):
            per_sec = getattr(entry, name)
            old = [t for t in per_sec if t < cutoff]
            for t in old:
                del per_sec[t]
            dropped += len(old)
    if len(stats.history) > STATS_HISTORY_KEPT:
        del stats.history[: len(stats.history) - STATS_HISTORY_KEPT]
    return dropped


def keep_locust_stats_trimmed(environment: Any, every_s: float = 60.0) -> gevent.Greenlet:
    """A greenlet that calls :func:`trim_locust_stats` on ``environment.stats`` every ``every_s``."""

    def loop() -> None:
        while True:
            gevent.sleep(every_s)
            trim_locust_stats(environment.stats)

    return gevent.spawn(loop)
