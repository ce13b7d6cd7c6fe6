"""The clients' event loop hands out ready sockets in slices (jabberemu.eventloop)."""

from __future__ import annotations

import asyncio
import selectors
import socket

import pytest

from jabberemu import eventloop


def test_bounded_selector_returns_at_most_max_events_and_every_socket_in_turn() -> None:
    selector = eventloop.bounded_selector_class(max_events=4)()
    pairs = [socket.socketpair() for _ in range(10)]
    try:
        for a, b in pairs:
            a.setblocking(False)
            selector.register(a, selectors.EVENT_READ, data=a)
            b.send(b"x")  # all ten readable at once
        served: list[int] = []
        sizes = []
        for _ in range(3):
            ready = selector.select(0)
            sizes.append(len(ready))
            for key, _events in ready:
                key.data.recv(1)  # served: no longer ready
                served.append(key.data.fileno())
        assert sizes == [4, 4, 2]
        assert sorted(served) == sorted(a.fileno() for a, _b in pairs)
        assert selector.select(0) == []
    finally:
        selector.close()
        for a, b in pairs:
            a.close()
            b.close()


def test_a_socket_left_unserved_comes_back_after_the_others() -> None:
    selector = eventloop.bounded_selector_class(max_events=2)()
    pairs = [socket.socketpair() for _ in range(3)]
    try:
        for a, b in pairs:
            selector.register(a, selectors.EVENT_READ, data=a)
            b.send(b"x")
        first = [key.data for key, _ in selector.select(0)]
        second = [key.data for key, _ in selector.select(0)]  # nothing read: level-triggered, still ready
        assert len(first) == len(second) == 2
        assert set(first) | set(second) == {a for a, _b in pairs}  # the third one's turn came
    finally:
        selector.close()
        for a, b in pairs:
            a.close()
            b.close()


def test_max_events_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_events"):
        eventloop.bounded_selector_class(max_events=0)


def test_a_burst_of_ready_connections_is_handled_in_slices_with_timers_between() -> None:
    """300 connections become readable at once: each loop iteration handles at most MAX_EVENTS of them,
    and a callback chain that runs once per iteration sees the burst cut into slices."""
    slices: list[int] = []
    served = 0

    class Reader(asyncio.Protocol):
        def data_received(self, data: bytes) -> None:
            nonlocal served
            served += 1

    async def main() -> None:
        loop = asyncio.get_running_loop()
        pairs = [socket.socketpair() for _ in range(300)]
        transports = []
        for a, _b in pairs:
            transport, _ = await loop.connect_accepted_socket(Reader, a)
            transports.append(transport)
        seen = 0

        def per_iteration() -> None:
            nonlocal seen
            slices.append(served - seen)
            seen = served
            if served < len(pairs):
                loop.call_soon(per_iteration)

        for _a, b in pairs:
            b.send(b"<stream:error/>")
        loop.call_soon(per_iteration)
        for _ in range(200):
            if served == len(pairs):
                break
            await asyncio.sleep(0)
        for t in transports:
            t.close()
        for _a, b in pairs:
            b.close()
        await asyncio.sleep(0)

    eventloop.run(main(), max_events=32)
    assert served == 300
    assert max(slices) <= 32
    assert sum(1 for n in slices if n) >= 300 // 32


def test_run_uses_a_bounded_selector() -> None:
    async def selector_of_running_loop() -> object:
        return asyncio.get_running_loop()._selector  # type: ignore[attr-defined]

    selector = eventloop.run(selector_of_running_loop(), max_events=7)
    assert getattr(selector, "max_events", None) == 7
