"""Polling with a bound, for every test directory (``tests/`` is on ``sys.path`` through
``tests/conftest.py``): ``from waiting import wait_until, wait_until_sync``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

__all__ = ["wait_until", "wait_until_sync"]


async def wait_until(predicate: Callable[[], Any], timeout_s: float = 5.0, what: str = "condition") -> Any:
    """Poll ``predicate`` every 10 ms until it is truthy; returns that value.

    Raises:
        AssertionError: not met within ``timeout_s`` seconds (``what`` names it).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout_s} s")
        await asyncio.sleep(0.01)


def wait_until_sync(predicate: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.2) -> Any:
    """The same for code that may block (subprocesses, gevent): polls every ``interval_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout_s} s")
        time.sleep(interval_s)
