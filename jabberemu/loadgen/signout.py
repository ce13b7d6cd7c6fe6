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
- **bounded.** :meth:`SignOuts.wait` waits :data:`SIGN_OUT_TIMEOUT_S` at most; then what still runs
  is cancelled, and a client still waiting for its turn signs out without waiting for the node
  (``stop(timeout_s=0)``): every client writes its ``end`` record, none vanishes from the accounting.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Protocol

import gevent.lock

from jabberemu.loadgen.bridge import AsyncioBridge, BridgeHandle, BridgeTimeoutError

__all__ = ["CUT_SHORT_GRACE_S", "SIGN_OUTS_AT_ONCE", "SIGN_OUT_TIMEOUT_S", "SignOuts", "Signing"]

logger = logging.getLogger(__name__)

SIGN_OUTS_AT_ONCE = 200
"""Sign-outs a process runs at once; the others wait their turn on the loop."""

SIGN_OUT_TIMEOUT_S = 15.0
"""Seconds :meth:`SignOuts.wait` waits for the sign-outs before it cuts the rest short."""

CUT_SHORT_GRACE_S = 2.0
"""Seconds the sign-outs cut short get to write their clients' ``end`` records."""

_PRUNE_FROM = 1024
"""Finished sign-outs are dropped from the books once this many are kept (a web UI's ramp-down)."""


class Signing(Protocol):
    """What a sign-out needs of a client (``jabberemu.driver.EmulatedClient``)."""

    user_id: str

    async def stop(self, *, timeout_s: float = ...) -> Any:
        """Sign out; the ``end`` record is written when it starts, ``timeout_s`` bounds the waits."""


class SignOuts:
    """The sign-outs of one process's users (gevent side, plus the coroutine each runs on the loop).

    Args:
        bridge: the process's bridge to its asyncio loop.
    """

    def __init__(self, bridge: AsyncioBridge) -> None:
        self._bridge = bridge
        self._pending: dict[BridgeHandle, str] = {}
        self._prune_at = _PRUNE_FROM
        self._slots: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None
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
                self._settle(done, 0.0)
            self._prune_at = max(_PRUNE_FROM, 2 * len(self._pending))

    def wait(self, timeout_s: float = SIGN_OUT_TIMEOUT_S) -> int:
        """Wait (this greenlet only) for every sign-out started; a second caller waits for the first.

        After ``timeout_s`` what still runs is cancelled; those that had not begun sign their clients
        out without waiting for the node, within :data:`CUT_SHORT_GRACE_S`.

        Returns:
            How many sign-outs did not end cleanly (cut short at the bound, or failed).
        """
        with self._waiting:
            deadline = time.monotonic() + timeout_s
            unclean = cut = 0
            try:
                for handle in list(self._pending):
                    outcome = self._settle(handle, max(0.0, deadline - time.monotonic()))
                    cut += outcome == "cut"
                    unclean += outcome != "ok"
                grace = time.monotonic() + CUT_SHORT_GRACE_S
                for handle in list(self._pending):  # the ones cut short: their end records first
                    self._settle(handle, max(0.0, grace - time.monotonic()), cut_short=True)
            finally:
                for handle in self._pending:  # this greenlet was killed: the rest is cut short
                    handle.cancel()
            if cut:
                logger.warning("%d sign-outs had not ended %g s after the users stopped: cut short", cut, timeout_s)
            return unclean

    def _settle(self, handle: BridgeHandle, timeout_s: float, *, cut_short: bool = False) -> str:
        """Wait for one sign-out; "ok", "failed", or "cut" (still running after ``timeout_s``: cancelled
        and kept in the books for the grace pass, unless this is it)."""
        user_id = self._pending[handle]
        try:
            handle.get(timeout_s)
            outcome = "ok"
        except BridgeTimeoutError:
            if not cut_short:
                return "cut"
            outcome = "cut"
        except asyncio.CancelledError:
            outcome = "cut"
        except Exception:
            outcome = "failed"
            logger.warning("%s did not sign out cleanly", user_id, exc_info=True)
        del self._pending[handle]
        return outcome

    async def _sign_out(self, client: Signing) -> Any:
        """On the loop: ``client.stop()`` in one of :data:`SIGN_OUTS_AT_ONCE` slots."""
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots[0] is not loop:
            self._slots = (loop, asyncio.Semaphore(SIGN_OUTS_AT_ONCE))
        slots = self._slots[1]
        try:
            await slots.acquire()
        except asyncio.CancelledError:  # cut short before its turn: the client ends all the same
            await client.stop(timeout_s=0)
            raise
        try:
            return await client.stop()
        finally:
            slots.release()
