"""Polling with a bound, for the mock's tests (this directory is on ``sys.path``,
``tests/mock_server/conftest.py``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

__all__ = ["wait_until"]


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
