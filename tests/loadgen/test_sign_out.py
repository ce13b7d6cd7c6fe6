"""Sign-outs at a swarm's stop (jabberemu.loadgen.signout): started by each user's ``on_stop``, run a
few at a time on the loop, awaited once by the process; every client ends.

Runs in the gevent-patched pytest process of tests/loadgen (conftest.py). The clients are stand-ins
with the driver's contract: ``stop()`` writes the ``end`` record when it starts (here: ``ended``), its
``timeout_s`` bounds its waits for the node.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from typing import Any

import gevent
import greenlet
import pytest
from locust import User, constant, task
from locust.env import Environment

from waiting import wait_until_sync

from jabberemu.loadgen import signout
from jabberemu.loadgen.bridge import AsyncioBridge, BridgeState
from jabberemu.loadgen.signout import SignOuts

USERS = 300


class Client:
    """A stand-in client: ``stop()`` records its end at once, then waits for the node (``released``)."""

    def __init__(self, user_id: str, node: Node) -> None:
        self.user_id = user_id
        self.node = node

    async def stop(self, *, timeout_s: float = 5.0) -> str:
        node = self.node
        node.ended.append(self.user_id)
        node.running += 1
        node.most = max(node.most, node.running)
        try:
            if self.user_id in node.failing:
                raise ConnectionResetError("reset by peer")
            if timeout_s > 0:
                await node.answer(self.user_id)
            node.signed_out.append(self.user_id)
            return "LOGGED_OUT"
        finally:
            node.running -= 1


class Node:
    """What the stand-in clients sign out from: answers once ``released`` is set, or never (``hung``)."""

    def __init__(self) -> None:
        self.ended: list[str] = []
        self.signed_out: list[str] = []
        self.failing: set[str] = set()
        self.hung: set[str] = set()
        self.running = self.most = 0
        self.released = asyncio.Event()  # bound to the loop at its first wait (Python >= 3.10)

    async def answer(self, user_id: str) -> None:
        await self.released.wait()
        if user_id in self.hung:
            await asyncio.Event().wait()


@pytest.fixture
def bridge() -> Iterator[AsyncioBridge]:
    b = AsyncioBridge()
    b.start()
    yield b
    b.stop(5.0)
    assert b.state is BridgeState.STOPPED


def _user_greenlets() -> int:
    """Live greenlets running a Locust user."""
    return sum(1 for g in gc.get_objects()
               if isinstance(g, greenlet.greenlet) and not g.dead and getattr(g, "args", None)
               and isinstance(g.args[0], User))


def _stop_users(sign_outs: SignOuts, node: Node) -> list[int]:
    """Run USERS Locust users that sign out through ``sign_outs``, stop them; return the user greenlets
    alive when ``test_stop`` fired."""
    names = iter(range(USERS))
    started: list[str] = []

    class SigningOutUser(User):
        wait_time = constant(3600)

        def on_start(self) -> None:
            self.client = Client(f"user{next(names):04d}", node)
            started.append(self.client.user_id)

        @task
        def idle(self) -> None:
            gevent.sleep(0)

        def on_stop(self) -> None:
            sign_outs.start(self.client)

    env = Environment(user_classes=[SigningOutUser], stop_timeout=10)
    at_test_stop: list[int] = []
    env.events.test_stop.add_listener(lambda **_kw: at_test_stop.append(_user_greenlets()))
    runner = env.create_local_runner()
    runner.start(USERS, spawn_rate=10_000)
    wait_until_sync(lambda: len(started) == USERS, 10, "every user signed in (has its client)", interval_s=0.01)
    assert runner.user_count == USERS
    runner.stop()
    return at_test_stop


def _until(cond: Any, what: str = "the slots filled") -> None:
    wait_until_sync(cond, 10, what, interval_s=0.01)  # time.sleep is gevent's in this process


def _assert_slots_all_free(sign_outs: SignOuts, size: int) -> None:
    slots = sign_outs._slots
    assert slots is None or (slots.free, len(slots.running), slots.cut) == (size, 0, False)


def test_users_stop_at_once_and_the_process_waits_for_every_sign_out(bridge: AsyncioBridge) -> None:
    sign_outs, node = SignOuts(bridge), Node()
    # the node answers no sign-out until the users are stopped: a user whose on_stop waited for its
    # sign-out would hold Locust's stop for its stop_timeout (10 s) and be killed
    at_test_stop = _stop_users(sign_outs, node)
    assert at_test_stop == [0]  # every user greenlet ended ...
    assert node.signed_out == [] and len(sign_outs) == USERS  # ... while no sign-out has finished
    bridge.call_soon(node.released.set)
    assert sign_outs.wait(timeout_s=10) == 0
    assert sorted(node.signed_out) == sorted(node.ended) == [f"user{i:04d}" for i in range(USERS)]
    assert len(sign_outs) == 0 and sign_outs.wait(timeout_s=10) == 0  # nothing left to wait for


def test_at_most_the_slots_sign_out_at_once(bridge: AsyncioBridge, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(signout, "SIGN_OUTS_AT_ONCE", 16)
    sign_outs, node = SignOuts(bridge), Node()
    _stop_users(sign_outs, node)
    _until(lambda: node.running == 16)  # the slots filled, the rest waiting for a turn
    bridge.call_soon(node.released.set)
    assert sign_outs.wait(timeout_s=10) == 0
    assert (node.most, len(node.signed_out), node.running) == (16, USERS, 0)
    _assert_slots_all_free(sign_outs, 16)


def test_at_the_bound_every_client_still_ends(bridge: AsyncioBridge, monkeypatch: pytest.MonkeyPatch) -> None:
    """A node that never answers: at the bound the 16 sign-outs in their slots are cancelled and the 284
    waiting for a turn sign out without waiting for the node; every client has its end, none is counted
    clean, none is left running."""
    monkeypatch.setattr(signout, "SIGN_OUTS_AT_ONCE", 16)
    sign_outs, node = SignOuts(bridge), Node()
    node.hung = {f"user{i:04d}" for i in range(USERS)}
    _stop_users(sign_outs, node)
    _until(lambda: node.running == 16)
    assert sign_outs.wait(timeout_s=0.5) == USERS
    assert sorted(node.ended) == [f"user{i:04d}" for i in range(USERS)]
    assert (len(node.signed_out), node.running, len(sign_outs)) == (USERS - 16, 0, 0)


def test_failed_sign_outs_are_counted_and_the_rest_end_cleanly(bridge: AsyncioBridge,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    sign_outs, node = SignOuts(bridge), Node()
    node.failing = {f"user{i:04d}" for i in range(0, USERS, 3)}
    _stop_users(sign_outs, node)
    bridge.call_soon(node.released.set)
    assert sign_outs.wait(timeout_s=10) == USERS // 3
    assert len(node.ended) == USERS and len(node.signed_out) == USERS - USERS // 3
    assert sum("did not sign out cleanly" in r.getMessage() for r in caplog.records) == USERS // 3


def test_a_second_waiter_waits_for_the_first(bridge: AsyncioBridge) -> None:
    """SIGTERM during test_stop's wait: quitting's wait must not find the books empty and go on."""
    sign_outs, node = SignOuts(bridge), Node()
    _stop_users(sign_outs, node)
    results: list[tuple[str, Any]] = []
    first = gevent.spawn(lambda: results.append(("first", sign_outs.wait(timeout_s=10))))
    second = gevent.spawn(lambda: results.append(("second", (sign_outs.wait(timeout_s=10), len(node.signed_out)))))
    gevent.sleep(0)
    bridge.call_soon(node.released.set)
    gevent.joinall([first, second], timeout=15)
    assert results == [("first", 0), ("second", (0, USERS))]


def test_sign_outs_not_yet_started_at_the_bound_end_all_the_same(bridge: AsyncioBridge) -> None:
    """A bound of 0: most sign-outs are still in the bridge's inbox when the loop cuts them short."""
    sign_outs, node = SignOuts(bridge), Node()
    node.hung = {f"user{i:04d}" for i in range(USERS)}
    _stop_users(sign_outs, node)
    assert sign_outs.wait(timeout_s=0) == USERS
    assert sorted(node.ended) == [f"user{i:04d}" for i in range(USERS)]
    assert (node.running, len(sign_outs)) == (0, 0)


def test_the_stop_after_a_cut_short_one_starts_with_fresh_slots(bridge: AsyncioBridge,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The web UI's next test: its sign-outs get slots and wait for the node again."""
    monkeypatch.setattr(signout, "SIGN_OUTS_AT_ONCE", 16)
    sign_outs, node = SignOuts(bridge), Node()
    node.hung = {f"user{i:04d}" for i in range(USERS)}
    _stop_users(sign_outs, node)
    assert sign_outs.wait(timeout_s=0.2) == USERS
    second = Node()
    _stop_users(sign_outs, second)
    _until(lambda: second.running == 16)
    bridge.call_soon(second.released.set)
    assert sign_outs.wait(timeout_s=10) == 0
    assert (second.most, len(second.signed_out)) == (16, USERS)
    _assert_slots_all_free(sign_outs, 16)


def test_finished_sign_outs_taken_off_the_books_early_are_still_counted(bridge: AsyncioBridge,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A web UI's ramp-downs: finished sign-outs leave the books as new ones come; their outcomes stay."""
    monkeypatch.setattr(signout, "_PRUNE_FROM", 64)
    sign_outs, node = SignOuts(bridge), Node()
    node.failing = {f"user{i:04d}" for i in range(0, 63, 3)}
    bridge.call_soon(node.released.set)
    for i in range(63):
        sign_outs.start(Client(f"user{i:04d}", node))
    _until(lambda: len(node.ended) == 63 and all(h.done() for h in list(sign_outs._pending)), "63 sign-outs done")
    sign_outs.start(Client("user0063", node))  # 64 kept, 63 of them finished: pruned
    assert len(sign_outs) <= 1
    assert sign_outs.wait(timeout_s=10) == 21  # the 21 failed ones, counted when pruned
    assert len(sign_outs) == 0 and sign_outs.wait(timeout_s=1) == 0
