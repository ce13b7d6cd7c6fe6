"""The asyncio event loop the emulated clients run on: iterations that stay short under bursts.

asyncio's selector loop handles, in one iteration, every socket the selector reports ready. When a
node fails over, thousands of clients receive ``<stream:error><system-shutdown/>`` at the same
moment; one iteration then handled them all (0.8 s for 1,000 clients on the demo, seconds for
10,000) and every timer due meanwhile (a re-login) was late by as much. Here the selector hands the
loop at most :data:`MAX_EVENTS` ready sockets per iteration (``epoll_wait``'s ``maxevents``); the
others stay ready in the kernel (level-triggered) and come in the next iterations, after the timers
due by then. So a burst of N HA events is handled in slices of :data:`MAX_EVENTS`, each a few
milliseconds (our choice; the figure is measured in BENCHMARKS.md). epoll moves the sockets it
reports to the back of its ready list, so every socket gets its turn.

:func:`new_event_loop` builds such a loop (the Locust bridge's loop thread and the benches use it);
:func:`run` is ``asyncio.run`` with it. Where epoll is missing the stock selector is used.
"""

from __future__ import annotations

import asyncio
import math
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["MAX_EVENTS", "bounded_selector_class", "new_event_loop", "run"]

T = TypeVar("T")

MAX_EVENTS = 32
"""Ready sockets handed to the loop per iteration. A socket's HA event costs well under 0.5 ms of
client CPU (BENCHMARKS.md), so a slice of a burst stays within ~10-15 ms."""


def bounded_selector_class(base: type[selectors.BaseSelector] | None = None,
                           max_events: int = MAX_EVENTS) -> type[selectors.BaseSelector]:
    """An epoll selector class whose ``select`` returns at most ``max_events`` ready keys.

    Args:
        base: the epoll selector class to extend (``selectors.EpollSelector`` when None; the bridge
            passes the one gevent did not patch).
        max_events: the bound.

    Returns:
        The class; ``base`` itself (or the default selector) when epoll is not available.

    Raises:
        ValueError: ``max_events`` < 1.
    """
    if max_events < 1:
        raise ValueError(f"max_events must be >= 1, not {max_events}")
    epoll_base = base if base is not None else getattr(selectors, "EpollSelector", None)
    if epoll_base is None or not hasattr(epoll_base, "_EVENT_READ"):
        return base or selectors.DefaultSelector

    class BoundedEpollSelector(epoll_base):  # type: ignore[valid-type,misc]
        """``EpollSelector.select`` (CPython 3.11-3.13) with ``maxevents`` bounded."""

        def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
            if timeout is None:
                timeout = -1
            elif timeout <= 0:
                timeout = 0
            else:
                timeout = math.ceil(timeout * 1e3) * 1e-3  # epoll counts whole milliseconds
            max_ev = min(max(len(self._fd_to_key), 1), max_events)
            ready: list[tuple[selectors.SelectorKey, int]] = []
            try:
                fd_event_list = self._selector.poll(timeout, max_ev)
            except InterruptedError:
                return ready
            read_bit, write_bit = self._EVENT_READ, self._EVENT_WRITE
            fd_to_key = self._fd_to_key
            for fd, event in fd_event_list:
                events = 0
                if event & ~read_bit:
                    events |= selectors.EVENT_WRITE
                if event & ~write_bit:
                    events |= selectors.EVENT_READ
                key = fd_to_key.get(fd)
                if key:
                    ready.append((key, events & key.events))
            return ready

    BoundedEpollSelector.max_events = max_events
    return BoundedEpollSelector


def new_event_loop(max_events: int = MAX_EVENTS) -> asyncio.AbstractEventLoop:
    """A selector event loop on a :func:`bounded_selector_class` selector."""
    return asyncio.SelectorEventLoop(bounded_selector_class(max_events=max_events)())


def run(main: Coroutine[Any, Any, T], *, max_events: int = MAX_EVENTS) -> T:
    """``asyncio.run(main)`` on a loop from :func:`new_event_loop`."""
    with asyncio.Runner(loop_factory=lambda: new_event_loop(max_events)) as runner:
        return runner.run(main)
