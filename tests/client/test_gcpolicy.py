"""The runtime's garbage-collector policy: thresholds raised, ticks collect then freeze (jabberemu.gcpolicy)."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import psutil
import pytest
from inproc_pair import inproc_pair, make_runtime

from jabberemu import gcpolicy
from jabberemu.gcpolicy import GcPolicy


@pytest.fixture(autouse=True)
def _restore_collector() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.set_threshold(*threshold)
    gc.unfreeze()
    policy = gcpolicy.active_policy()
    while policy is not None:
        policy.uninstall()
        policy = gcpolicy.active_policy()


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the collector frees it


def test_a_tick_collects_cyclic_garbage_first_then_freezes_the_survivors() -> None:
    gc.unfreeze()
    policy = GcPolicy()
    kept = Node()
    dropped = Node()
    dropped_ref = weakref.ref(dropped)
    del dropped
    frozen_before = gc.get_freeze_count()
    found = policy.tick()
    assert dropped_ref() is None and found >= 1  # collected, not frozen
    assert gc.get_freeze_count() > frozen_before
    assert not any(o is kept for o in gc.get_objects())  # frozen objects leave the generations
    assert policy.stats.ticks == 1 and policy.stats.collected == found
    assert policy.stats.max_ms == policy.stats.total_ms > 0


def test_the_c_allocators_free_pages_go_back_once_per_trim_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    trims: list[int] = []

    def fake_trim(pad: int) -> int:
        trims.append(pad)
        return 1

    monkeypatch.setattr(gcpolicy, "malloc_trim", fake_trim)
    policy = GcPolicy(trim_interval_s=60.0, clock=lambda: clock[0])
    never = GcPolicy(trim_interval_s=0, clock=lambda: clock[0])
    for dt in (1.0, 58.0, 1.0, 1.0, 59.0, 1.0):  # at 1, 59, 60, 61, 120, 121 s after the policies were made
        clock[0] += dt
        policy.tick()
        never.tick()
    assert trims == [0, 0]  # at 60 s and at 120 s, by the first policy only
    assert (policy.stats.trims, policy.stats.ticks) == (2, 6) and (never.stats.trims, never.stats.ticks) == (0, 6)
    monkeypatch.setattr(gcpolicy, "malloc_trim", None)  # not glibc: ticks go on, nothing to trim
    clock[0] += 600.0
    policy.tick()
    assert policy.stats.trims == 2 and policy.stats.ticks == 7
    with pytest.raises(ValueError):
        GcPolicy(trim_interval_s=-1)


@pytest.mark.skipif(gcpolicy.malloc_trim is None, reason="not glibc: no malloc_trim")
def test_a_trim_gives_a_fragmented_heaps_free_memory_back() -> None:
    process = psutil.Process()
    blocks = [bytes(2000) for _ in range(20_000)]  # 40 MB from glibc's heap (over pymalloc's 512 bytes)
    pin = blocks.pop()  # the last one allocated, above the others: the heap's top cannot simply shrink
    del blocks
    before = process.memory_info().rss
    assert gcpolicy.malloc_trim is not None
    gcpolicy.malloc_trim(0)
    released = before - process.memory_info().rss
    assert released > 30 * 2**20, f"{released / 2**20:.1f} MiB given back"
    del pin


async def test_install_raises_the_young_threshold_and_ticks_on_the_loop() -> None:
    gc.set_threshold(700, 10, 10)
    policy = GcPolicy(young_threshold=5_000, interval_s=0.01)
    policy.install(asyncio.get_running_loop())
    assert gc.get_threshold() == (5_000, 10, 10)
    assert gcpolicy.active_policy() is policy and policy.running
    for _ in range(100):
        if policy.stats.ticks >= 3:
            break
        await asyncio.sleep(0.01)
    assert policy.stats.ticks >= 3
    policy.install(asyncio.get_running_loop())  # a second runtime on the same loop
    policy.uninstall()
    assert policy.running  # one install left
    policy.uninstall()
    assert not policy.running and gcpolicy.active_policy() is None
    ticks = policy.stats.ticks
    await asyncio.sleep(0.05)
    assert policy.stats.ticks == ticks


def test_a_higher_threshold_set_by_the_program_is_kept() -> None:
    gc.set_threshold(50_000, 10, 10)
    policy = GcPolicy(interval_s=0)
    loop = asyncio.new_event_loop()
    try:
        policy.install(loop)
        assert gc.get_threshold()[0] == 50_000 and not policy.running
    finally:
        policy.uninstall()
        loop.close()


def test_only_one_policy_per_process() -> None:
    loop = asyncio.new_event_loop()
    first, second = GcPolicy(interval_s=0), GcPolicy(interval_s=0)
    try:
        first.install(loop)
        with pytest.raises(RuntimeError, match="another GcPolicy"):
            second.install(loop)
    finally:
        first.uninstall()
        loop.close()


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        GcPolicy(young_threshold=0)
    with pytest.raises(ValueError):
        GcPolicy(interval_s=-1)


async def test_the_runtime_installs_the_policy_by_default_and_removes_it_on_close() -> None:
    async with inproc_pair(1) as env:
        rt = await make_runtime(env)
        assert rt.gc_policy is not None and rt.gc_policy is gcpolicy.active_policy() and rt.gc_policy.running
        assert gc.get_threshold()[0] >= gcpolicy.YOUNG_THRESHOLD
        await rt.aclose()
        assert rt.gc_policy is None and gcpolicy.active_policy() is None


def test_a_paused_collector_makes_no_pass_until_resumed() -> None:
    policy = GcPolicy()
    policy.pause()
    policy.pause()  # idempotent
    try:
        assert (policy.paused, gc.isenabled()) == (True, False)
        dropped = Node()
        dropped_ref = weakref.ref(dropped)
        del dropped
        assert policy.tick() == 0 and policy.stats.ticks == 0  # the tick makes no pass either
        for _ in range(3 * gc.get_threshold()[0]):  # enough allocations for an automatic pass
            Node().me = None
        assert dropped_ref() is not None  # cyclic garbage waits
    finally:
        policy.resume()
    assert (policy.paused, gc.isenabled()) == (False, True)
    assert policy.tick() >= 1 and dropped_ref() is None


async def test_the_last_uninstall_resumes_a_paused_collector() -> None:
    policy = GcPolicy()
    policy.install(asyncio.get_running_loop())
    policy.pause()
    policy.uninstall()
    assert (policy.paused, gc.isenabled()) == (False, True)


def test_a_collector_the_program_turned_off_stays_off_after_a_pause(collector_off: None) -> None:
    policy = GcPolicy()
    policy.pause()
    policy.resume()
    assert (policy.paused, gc.isenabled()) == (False, False)
