"""Sign-outs at a swarm's stop: started by each user's ``on_stop``, run on the loop a few at a time,
awaited once by the process.

Our choices, each measured on the 15,000-client failover (BENCHMARKS.md, section 7):

- **the user's greenlet does not wait.** A greenlet parked in ``on_stop`` keeps its stack and the
  ``GreenletExit`` that stopped it, and Locust parks one more greenlet per user to wait for it:
  stopping 7,500 users whose ``on_stop`` waited grew a process by 97 MiB and 315,000 objects for the
  collector to walk (one pass: 109 ms); with an ``on_stop`` that returns, 1 MiB, 37,000 objects,
  3.6 ms. The process waits once, in :meth:`SignOuts.wait` (``events.test_stop``), before it sends
  its last records.
- **at most** :data:`SIGN_OUTS_AT_ONCE` **at a time.** 7,500 sign-outs started together kept their
  objects alive across the collector's ticks (passes of 100-440 ms in each second of the sign-out);
  the node sees the same sign-outs, at the rate this process can run them.
- **bounded.** :meth:`SignOuts.wait` waits :data:`SIGN_OUT_TIMEOUT_S` at most; then the loop cuts the
  rest short: sign-outs in a slot are cancelled (their clients' ``end`` records are written when a
  sign-out starts), and every client still waiting for its turn, or not yet started, signs out
  without waiting for the node (``stop(timeout_s=0)``), 48 per loop iteration. Every client writes
  its ``end`` record; none vanishes from the accounting. The next stop starts with fresh slots.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import logging
import time
from typing import Any, Protocol

import gevent.lock

from jabberemu.loadgen.bridge import INBOX_SLICE, AsyncioBridge, BridgeHandle

__all__ = ["CUT_SHORT_GRACE_S", "GRACE_PER_SIGN_OUT_S", "SIGN_OUTS_AT_ONCE", "SIGN_OUT_TIMEOUT_S", "Outcome",
           "SignOuts", "Signing"]

logger = logging.getLogger(__name__)

SIGN_OUTS_AT_ONCE = 200
"""Sign-outs a process runs at once; the others wait their turn on the loop."""

SIGN_OUT_TIMEOUT_S = 15.0
"""Seconds :meth:`SignOuts.wait` waits for the sign-outs before it cuts the rest short."""

CUT_SHORT_GRACE_S = 2.0
GRACE_PER_SIGN_OUT_S = 0.001
"""Seconds the sign-outs cut short get to end (their clients' ``end`` records): CUT_SHORT_GRACE_S plus
GRACE_PER_SIGN_OUT_S per sign-out still pending (each takes ~0.3 ms of the loop)."""

_PRUNE_FROM = 1024
"""Finished sign-outs are taken off the books once this many are kept (a web UI's ramp-down)."""


class Outcome(enum.Enum):
    """How one sign-out ended, as :meth:`SignOuts.wait` counts it."""

    CLEAN = "clean"
    CUT_SHORT = "cut short"
    FAILED = "failed"
    UNFINISHED = "unfinished"


_CUT_SHORT = object()
"""What a sign-out cut short before its turn returns."""


class Signing(Protocol):
    """What a sign-out needs of a client (``jabberemu.driver.EmulatedClient``)."""

    user_id: str

    async def stop(self, *, timeout_s: float = ...) -> Any:
        """Sign out; the ``end`` record is written when it starts, ``timeout_s`` bounds the waits."""


class _Slots:
    """On the loop: :data:`SIGN_OUTS_AT_ONCE` slots, the sign-outs waiting for one, those in one, and
    whether the bound has cut the rest short (a new ``_Slots`` for the next stop)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.free = SIGN_OUTS_AT_ONCE
        self.queue: collections.deque[asyncio.Future[bool]] = collections.deque()
        self.running: set[asyncio.Task[Any]] = set()
        self.cut = False

    async def take(self) -> bool:
        """Wait for a slot: True once in one, False when cut short first."""
        if self.cut:
            return False
        if self.free > 0:
            self.free -= 1
            return True
        turn: asyncio.Future[bool] = self.loop.create_future()
        self.queue.append(turn)
        try:
            got = await turn
        except asyncio.CancelledError:  # the bridge's shut-down: a slot handed over just before goes back
            if turn.done() and not turn.cancelled() and turn.result():
                self.give_back()
            raise
        if got and self.cut:  # handed a slot, then cut short before this task ran again
            self.give_back()
            return False
        return got

    def give_back(self) -> None:
        while self.queue and not self.cut:
            turn = self.queue.popleft()
            if not turn.done():
                turn.set_result(True)  # the slot goes to the next in line
                return
        self.free += 1

    def cut_short(self) -> None:
        self.cut = True
        for task in list(self.running):
            task.cancel()
        self._release_turns()

    def _release_turns(self) -> None:
        """Tell the sign-outs waiting for a turn that they are cut short, INBOX_SLICE per loop iteration
        (thousands at once stalled the loop for seconds, as the bridge's inbox did)."""
        for _ in range(INBOX_SLICE):
            if not self.queue:
                return
            turn = self.queue.popleft()
            if not turn.done():
                turn.set_result(False)
        if self.queue:
            self.loop.call_soon(self._release_turns)


class SignOuts:
    """The sign-outs of one process's users (gevent side, plus the coroutine each runs on the loop).

    Args:
        bridge: the process's bridge to its asyncio loop.
    """

    def __init__(self, bridge: AsyncioBridge) -> None:
        self._bridge = bridge
        self._pending: dict[BridgeHandle, str] = {}
        self._unclean = 0  # outcomes of sign-outs taken off the books by start()'s pruning
        self._prune_at = _PRUNE_FROM
        self._slots: _Slots | None = None
        self._waiting = gevent.lock.Semaphore()

    def __len__(self) -> int:
        """Sign-outs started and not yet settled by :meth:`wait`."""
        return len(self._pending)

    def start(self, client: Signing) -> None:
        """Start ``client``'s sign-out on the loop and return at once (``JabberUser.on_stop``)."""
        try:
            handle = self._bridge.submit_nowait(self._sign_out, client)
        except Exception as exc:  # the loop is gone (the process is ending): the report counts a missing end
            logger.warning("%s could not start its sign-out: %s", client.user_id, exc)
            return
        self._pending[handle] = client.user_id
        if len(self._pending) >= self._prune_at:
            for done in [h for h in self._pending if h.done()]:
                self._unclean += self._settle(done) is not Outcome.CLEAN
            self._prune_at = max(_PRUNE_FROM, 2 * len(self._pending))

    def wait(self, timeout_s: float = SIGN_OUT_TIMEOUT_S) -> int:
        """Wait (this greenlet only) for every sign-out started; a second caller waits for the first.

        Args:
            timeout_s: bound on the wait; then the loop cuts the rest short (module docstring) and
                they get the grace of :data:`CUT_SHORT_GRACE_S` to end.

        Returns:
            How many sign-outs since the last wait did not end cleanly (cut short, failed, unfinished).
        """
        with self._waiting:
            deadline = time.monotonic() + timeout_s
            cut_sent = False
            try:
                for handle in list(self._pending):
                    if not handle.wait(max(0.0, deadline - time.monotonic())):
                        break
                    self._unclean += self._settle(handle) is not Outcome.CLEAN
                if self._pending:
                    logger.warning("%d sign-outs had not ended %g s after the users stopped: cut short",
                                   len(self._pending), timeout_s)
                    grace = time.monotonic() + CUT_SHORT_GRACE_S + GRACE_PER_SIGN_OUT_S * len(self._pending)
                    cut_sent = self._cut_short()
                    for handle in list(self._pending):
                        handle.wait(max(0.0, grace - time.monotonic()))
                        self._unclean += self._settle(handle) is not Outcome.CLEAN
            finally:
                if self._pending and not cut_sent:  # this greenlet was killed: the loop cuts the rest short
                    cut_sent = self._cut_short()
                if cut_sent:
                    self._in_loop(self._new_slots)  # the next stop starts uncut
            unclean, self._unclean = self._unclean, 0
            return unclean

    def _cut_short(self) -> bool:
        return self._in_loop(self._cut_short_in_loop)

    def _in_loop(self, fn: Any) -> bool:
        try:
            self._bridge.call_soon(fn)
        except Exception:  # the loop is gone: nothing runs there any more
            logger.debug("%s skipped: the loop is not running", getattr(fn, "__name__", fn), exc_info=True)
            return False
        return True

    def _cut_short_in_loop(self) -> None:
        if self._slots is None:
            self._slots = _Slots(asyncio.get_running_loop())
        self._slots.cut_short()

    def _new_slots(self) -> None:
        self._slots = None  # stragglers give their slots back to the old one

    def _settle(self, handle: BridgeHandle) -> Outcome:
        """Take a sign-out off the books (once: a second call finds it gone and counts it clean)."""
        user_id = self._pending.pop(handle, None)
        if user_id is None:
            return Outcome.CLEAN
        if not handle.done():
            logger.warning("%s: its sign-out had not ended after it was cut short", user_id)
            return Outcome.UNFINISHED
        try:
            return Outcome.CUT_SHORT if handle.get(0) is _CUT_SHORT else Outcome.CLEAN
        except asyncio.CancelledError:
            return Outcome.CUT_SHORT
        except Exception:
            logger.warning("%s did not sign out cleanly", user_id, exc_info=True)
            return Outcome.FAILED

    async def _sign_out(self, client: Signing) -> Any:
        """On the loop: ``client.stop()`` in one of :data:`SIGN_OUTS_AT_ONCE` slots; cut short, a
        ``client.stop(timeout_s=0)`` without a slot."""
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots.loop is not loop:
            self._slots = _Slots(loop)
        slots = self._slots
        if not await slots.take():
            await client.stop(timeout_s=0)
            return _CUT_SHORT
        task = asyncio.current_task()
        assert task is not None
        slots.running.add(task)
        try:
            return await client.stop()
        finally:
            slots.running.discard(task)
            slots.give_back()
