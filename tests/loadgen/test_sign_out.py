"""Sign-outs at a swarm's stop: started by each user's ``on_stop``, awaited once by the process.

Runs in the gevent-patched pytest process of tests/loadgen (conftest.py).
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

from jabberemu.loadgen.bridge import BridgeState
from jabberemu.loadgen import swarm as swarm_mod
from jabberemu.loadgen.swarm import Swarm

USERS = 300


@pytest.fixture
def swarm() -> Iterator[Swarm]:
    s = Swarm()
    s.bridge.start()
    yield s
    s.bridge.stop(5.0)
    assert s.bridge.state is BridgeState.STOPPED


def _user_greenlets() -> int:
    """Live greenlets running a Locust user (parked in ``on_stop`` or in its wait)."""
    return sum(1 for g in gc.get_objects()
               if isinstance(g, greenlet.greenlet) and not g.dead and getattr(g, "args", None)
               and isinstance(g.args[0], User))


def _run_users(swarm: Swarm, stop: Any, *, at_test_stop: list[Any], mid_stop: list[Any] | None = None) -> Environment:
    """USERS users that sign out with ``stop(user_id)`` through ``swarm``; ``at_test_stop`` gets the
    user greenlets alive when ``test_stop`` fires (before the swarm's wait), ``mid_stop`` those alive
    0.1 s after the stop began."""
    names = iter(range(USERS))

    class SigningOutUser(User):
        wait_time = constant(3600)

        def on_start(self) -> None:
            self.user_id = f"user{next(names):04d}"

        @task
        def idle(self) -> None:
            gevent.sleep(0)

        def on_stop(self) -> None:
            swarm.sign_out(self.user_id, lambda: stop(self.user_id))

    env = Environment(user_classes=[SigningOutUser], stop_timeout=10)
    env.events.test_stop.add_listener(lambda **_kw: at_test_stop.append(_user_greenlets()))
    runner = env.create_local_runner()
    runner.start(USERS, spawn_rate=10_000)
    deadline = gevent.get_hub().loop.now() + 10
    while runner.user_count < USERS and gevent.get_hub().loop.now() < deadline:
        gevent.sleep(0.01)
    assert runner.user_count == USERS
    gevent.sleep(0.05)  # every user parked in its wait
    if mid_stop is not None:
        gevent.spawn_later(0.1, lambda: mid_stop.append(_user_greenlets()))
    runner.stop()
    return env


def test_users_stop_at_once_and_the_process_waits_for_every_sign_out(swarm: Swarm) -> None:
    signed_out: list[str] = []

    async def stop(user_id: str) -> str:
        await asyncio.sleep(0.3)
        signed_out.append(user_id)
        return "LOGGED_OUT"

    at_test_stop: list[int] = []
    mid_stop: list[int] = []
    _run_users(swarm, stop, at_test_stop=at_test_stop, mid_stop=mid_stop)
    # test_stop fires once every user is stopped: no greenlet is left waiting for a sign-out ...
    assert at_test_stop == [0]
    assert signed_out == []  # ... while the sign-outs run on the loop
    assert swarm.wait_for_sign_outs(timeout_s=10) == 0
    assert mid_stop == [0]  # a greenlet parked per user until its sign-out ended: 300 here
    assert sorted(signed_out) == [f"user{i:04d}" for i in range(USERS)]
    assert swarm.wait_for_sign_outs(timeout_s=10) == 0  # nothing left to wait for


def test_sign_outs_still_running_at_the_bound_are_cancelled_and_counted(swarm: Swarm) -> None:
    outcome: dict[str, str] = {}

    async def stop(user_id: str) -> None:
        try:
            if int(user_id[4:]) % 3 == 0:
                await asyncio.sleep(3600)  # a node that never answers the sign-out
            elif int(user_id[4:]) % 3 == 1:
                raise ConnectionResetError("reset by peer")
            outcome[user_id] = "done"
        except asyncio.CancelledError:
            outcome[user_id] = "cancelled"
            raise

    _run_users(swarm, stop, at_test_stop=[])
    assert swarm.wait_for_sign_outs(timeout_s=0.5) == USERS // 3 * 2  # the hung third + the failed third
    deadline = gevent.get_hub().loop.now() + 5
    while len(outcome) < USERS // 3 * 2 and gevent.get_hub().loop.now() < deadline:
        gevent.sleep(0.01)
    assert sorted(outcome.values()).count("cancelled") == USERS // 3
    assert sorted(outcome.values()).count("done") == USERS // 3


def test_at_most_the_slots_sign_out_at_once(swarm: Swarm, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(swarm_mod, "SIGN_OUTS_AT_ONCE", 16)
    running: list[int] = [0]
    most: list[int] = [0]
    done: list[str] = []

    async def stop(user_id: str) -> None:
        running[0] += 1
        most[0] = max(most[0], running[0])
        await asyncio.sleep(0.01)
        running[0] -= 1
        done.append(user_id)

    _run_users(swarm, stop, at_test_stop=[])
    assert swarm.wait_for_sign_outs(timeout_s=10) == 0
    assert (most[0], len(done), running[0]) == (16, USERS, 0)
