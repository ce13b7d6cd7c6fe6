"""The gevent/asyncio bridge, exercised from greenlets in a Locust-patched process.

Runs in a pytest process of its own: ``pytest tests/loadgen -p no:asyncio -p no:aiohttp``.
"""

from __future__ import annotations

import asyncio
import collections
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import gevent
import pytest
from gevent import monkey
from locust import User, task
from locust.env import Environment
from locust.exception import StopUser

from jabberemu.loadgen import bridge as bridge_mod
from jabberemu.loadgen.bridge import (
    AsyncioBridge,
    BridgeError,
    BridgeErrorReason,
    BridgeState,
    BridgeTimeoutError,
    attach,
)



def _os_thread_alive(native_id: int) -> bool:
    return os.path.exists(f"/proc/self/task/{native_id}")


def _wait_until(cond: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within %.1f s" % timeout_s)
        gevent.sleep(0.005)


@pytest.fixture
def bridge() -> Iterator[AsyncioBridge]:
    fired: list[dict[str, Any]] = []
    b = AsyncioBridge(lambda **kw: fired.append(kw))
    b.fired = fired  # type: ignore[attr-defined]
    b.start()
    yield b
    assert b.stop(5.0) is True or b.state is BridgeState.STOPPED


async def _echo_after(value: int, delay_s: float) -> int:
    await asyncio.sleep(delay_s)
    return value


# ---- basic hand-off -------------------------------------------------------------------------
def test_submit_returns_the_coroutine_result_and_reraises_its_exception(bridge: AsyncioBridge) -> None:
    assert bridge.submit(_echo_after, 41, 0.0, timeout_s=5) == 41

    async def boom() -> None:
        raise ValueError("from the loop")

    with pytest.raises(ValueError, match="from the loop"):
        bridge.submit(boom, timeout_s=5)


def test_coroutines_run_in_one_other_os_thread(bridge: AsyncioBridge) -> None:
    get_ident = monkey.get_original("_thread", "get_ident")

    async def where() -> int:
        return get_ident()

    idents = {bridge.submit(where, timeout_s=5) for _ in range(20)}
    assert len(idents) == 1
    assert idents != {get_ident()}


def test_tcp_round_trip_on_loopback_resolves_localhost_in_the_loop(bridge: AsyncioBridge) -> None:
    async def round_trip() -> bytes:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write((await reader.readline()).upper())
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        with bridge.measure("xmpp", "ping"):
            reader, writer = await asyncio.open_connection("localhost", port)
            writer.write(b"ping\n")
            reply = await reader.readline()
        writer.close()
        server.close()
        await server.wait_closed()
        return reply

    assert bridge.submit(round_trip, timeout_s=5) == b"PING\n"
    _wait_until(lambda: len(bridge.fired) == 1)  # type: ignore[attr-defined]
    sample = bridge.fired[0]  # type: ignore[attr-defined]
    assert (sample["request_type"], sample["name"], sample["exception"]) == ("xmpp", "ping", None)
    assert 0.0 < sample["response_time"] < 5000.0
    assert abs(sample["start_time"] - time.time()) < 10.0


def test_connections_of_the_loop_thread_are_no_gevent_sockets(bridge: AsyncioBridge) -> None:
    """XMPP (the connector) and CPA (the aiohttp transport) sockets are of the class gevent did not patch."""
    from jabberemu.soap.transport import AiohttpTransport
    from jabberemu.xmpp.source import SourceAddressConnector

    async def classes() -> tuple[type, type, bytes]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        transport, _protocol = await SourceAddressConnector()(asyncio.Protocol, "127.0.0.1", port)
        xmpp_class = type(transport.get_extra_info("socket")._sock)
        transport.close()
        made: list[type] = []
        http = AiohttpTransport(timeout_s=5.0)
        session = http._session_or_new()
        factory = session.connector._socket_factory  # type: ignore[union-attr]
        probe = factory((2, 1, 6, "", ("127.0.0.1", port)))  # AF_INET, SOCK_STREAM, TCP
        made.append(type(probe))
        probe.close()
        answer = await http.post_bytes(f"http://127.0.0.1:{port}/", b"<x/>", {})
        await http.aclose()
        server.close()
        await server.wait_closed()
        return xmpp_class, made[0], answer.content

    xmpp_class, cpa_class, body = bridge.submit(classes, timeout_s=10)
    original = monkey.get_original("socket", "socket")
    assert xmpp_class is original and cpa_class is original
    assert original is not __import__("socket").socket  # the process is patched: the default is gevent's
    assert body == b"ok"


def test_measurements_of_the_loop_reach_locust_in_one_batch_per_flush(bridge: AsyncioBridge,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """300 measurements over 30 loop iterations wake the gevent side once, through the one flush timer the
    first of them armed; one alone, with nothing else happening on the loop, still arrives."""
    monkeypatch.setattr(bridge_mod, "SAMPLE_FLUSH_S", 0.5)  # the 30 iterations fit in it on a busy box
    flushes: list[int] = []
    flush = bridge._flush_samples

    def counting_flush() -> None:
        flushes.append(len(bridge._samples))
        flush()

    bridge._flush_samples = counting_flush  # type: ignore[method-assign]

    async def burst() -> None:
        for i in range(30):
            for _ in range(10):
                bridge.record("xmpp", "ping", float(i))
            await asyncio.sleep(0)
        await asyncio.sleep(30)  # no result handed back (it would take the batch along): only the flush wakes

    bridge.submit_nowait(burst)
    _wait_until(lambda: bridge.samples_fired == 300)
    assert flushes == [300]
    assert [s["response_time"] for s in bridge.fired] == [float(i) for i in range(30) for _ in range(10)]  # type: ignore[attr-defined]

    assert bridge._loop is not None
    bridge._loop.call_soon_threadsafe(bridge.record, "xmpp", "ping", 7.0)
    _wait_until(lambda: bridge.samples_fired == 301)
    assert flushes == [300, 1]


def test_a_finished_call_takes_the_queued_measurements_along(bridge: AsyncioBridge,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """With the flush timer far away, the results' wake-up delivers the samples; one recorded outside the
    loop thread wakes the hub itself."""
    monkeypatch.setattr(bridge_mod, "SAMPLE_FLUSH_S", 60.0)

    async def measured() -> int:
        for i in range(5):
            bridge.record("soap", "login", float(i))
        return 5

    assert bridge.submit(measured, timeout_s=5) == 5
    _wait_until(lambda: bridge.samples_fired == 5)
    bridge.record("soap", "login", 9.0)  # the gevent thread: at once
    _wait_until(lambda: bridge.samples_fired == 6)
    assert [s["response_time"] for s in bridge.fired] == [0.0, 1.0, 2.0, 3.0, 4.0, 9.0]  # type: ignore[attr-defined]


@pytest.mark.parametrize("how", ["flush", "stop"])
def test_flush_and_stop_fire_what_waits_for_the_flush_timer(bridge: AsyncioBridge, monkeypatch: pytest.MonkeyPatch,
                                                            how: str) -> None:
    monkeypatch.setattr(bridge_mod, "SAMPLE_FLUSH_S", 60.0)

    async def measured_then_waiting() -> None:
        bridge.record("xmpp", "auth", 3.0)
        await asyncio.sleep(30)

    bridge.submit_nowait(measured_then_waiting)
    _wait_until(lambda: len(bridge._samples) == 1)
    gevent.sleep(0.05)
    assert bridge.samples_fired == 0  # nothing woke the hub for it
    if how == "flush":
        bridge.flush()
    else:
        assert bridge.stop(5.0) is True
    assert bridge.samples_fired == 1  # on return, not later
    assert bridge.fired[0]["name"] == "auth"  # type: ignore[attr-defined]


# ---- many greenlets, bursts ---------------------------------------------------------------------
def test_thousands_of_submits_from_1000_greenlets_all_complete(bridge: AsyncioBridge) -> None:
    per_greenlet = 4
    results: dict[int, list[int]] = {}

    async def work(g: int, i: int) -> int:
        if i % 2:
            await asyncio.sleep(0.001 * (g % 5))  # completions arrive in bursts
        bridge.record("bench", "work", 1.0)
        return g * 100 + i

    def greenlet(g: int) -> None:
        results[g] = [bridge.submit(work, g, i, timeout_s=20) for i in range(per_greenlet)]

    greenlets = [gevent.spawn(greenlet, g) for g in range(1000)]
    gevent.joinall(greenlets, timeout=30)
    assert all(g.successful() for g in greenlets)
    assert results == {g: [g * 100 + i for i in range(per_greenlet)] for g in range(1000)}
    _wait_until(lambda: bridge.samples_fired == 4000)
    assert len(bridge.fired) == 4000  # type: ignore[attr-defined]


def test_a_burst_of_submissions_starts_in_slices_of_one_loop_iteration_each(bridge: AsyncioBridge) -> None:
    """A swarm's stop submits every user's sign-out at once: at most INBOX_SLICE of them may start in
    one loop iteration (they all started in one before), and none is lost."""
    loop = bridge._loop
    assert loop is not None
    iteration = [0]
    ticking = [True]

    def tick() -> None:  # runs once per loop iteration: call_soon from a callback lands in the next one
        iteration[0] += 1
        if ticking[0]:
            loop.call_soon(tick)

    started: list[int] = []

    async def sign_out(i: int) -> int:
        started.append(iteration[0])
        await asyncio.sleep(0)
        return i

    async def hold_the_loop() -> None:
        loop.call_soon(tick)
        time.sleep(0.2)  # the loop thread is busy while the greenlet submits the whole burst

    bridge.submit_nowait(hold_the_loop)
    n = 5 * bridge_mod.INBOX_SLICE + 7
    handles = [bridge.submit_nowait(sign_out, i) for i in range(n)]
    try:
        assert [h.get(timeout_s=10) for h in handles] == list(range(n))
    finally:
        ticking[0] = False
    per_iteration = collections.Counter(started)
    assert sum(per_iteration.values()) == n
    assert max(per_iteration.values()) == bridge_mod.INBOX_SLICE
    assert len(per_iteration) >= 6


def test_stop_with_a_backlog_of_submissions_answers_every_one_of_them() -> None:
    """A swarm stopped while its sign-outs still wait in the inbox: each greenlet gets STOPPED, none waits
    forever (a slice started after the shutdown listed its tasks used to be left pending)."""
    b = AsyncioBridge(lambda **_kw: None)
    b.start()

    async def slow() -> None:
        await asyncio.sleep(3.0)

    async def hold_the_loop() -> None:
        time.sleep(0.1)

    b.submit_nowait(hold_the_loop)
    handles = [b.submit_nowait(slow) for _ in range(5 * bridge_mod.INBOX_SLICE)]
    assert b.stop(5.0) is True
    assert sum(not h.done() for h in handles) == 0  # answered by stop() itself
    reasons = []
    for h in handles:
        with pytest.raises(BridgeError) as caught:
            h.get(timeout_s=0.1)
        reasons.append(caught.value.reason)
    assert reasons == [BridgeErrorReason.STOPPED] * len(handles)


def test_idle_hub_raises_no_loop_exit_and_wakes_on_time(bridge: AsyncioBridge) -> None:
    # Only this greenlet waits; the hub has nothing but the bridge watcher.
    t0 = time.perf_counter()
    assert bridge.submit(_echo_after, 7, 0.2, timeout_s=5) == 7
    assert 0.19 <= time.perf_counter() - t0 < 0.8
    # A long timer pending in the loop must not delay a short call (asyncio-gevent added ~0.9 s).
    slow = bridge.submit_nowait(_echo_after, 1, 3.0)
    t0 = time.perf_counter()
    assert bridge.submit(_echo_after, 2, 0.0, timeout_s=5) == 2
    assert time.perf_counter() - t0 < 0.5  # the 3 s timer would show up here
    slow.cancel()


# ---- guard rails ----------------------------------------------------------------------------
def test_asyncio_run_from_a_greenlet_raises_a_clear_error(bridge: AsyncioBridge) -> None:
    async def nothing() -> int:
        return 1

    def in_greenlet() -> BridgeError:
        with pytest.raises(BridgeError) as info:
            asyncio.run(nothing())
        return info.value

    g = gevent.spawn(in_greenlet)
    g.join(timeout=5)
    assert g.successful()
    assert g.value.reason is BridgeErrorReason.NESTED_LOOP
    assert "bridge.submit()" in str(g.value)

    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(BridgeError) as info:
            loop.run_until_complete(nothing())
        assert info.value.reason is BridgeErrorReason.NESTED_LOOP
    finally:
        loop.close()


def test_submit_from_the_loop_thread_raises_instead_of_deadlocking(bridge: AsyncioBridge) -> None:
    async def nested() -> int:
        return bridge.submit(_echo_after, 1, 0.0, timeout_s=1)

    with pytest.raises(BridgeError) as info:
        bridge.submit(nested, timeout_s=5)
    assert info.value.reason is BridgeErrorReason.LOOP_THREAD


def test_submit_before_start_is_refused() -> None:
    with pytest.raises(BridgeError) as info:
        AsyncioBridge().submit(_echo_after, 1, 0.0)
    assert info.value.reason is BridgeErrorReason.NOT_RUNNING


# ---- cancellation ---------------------------------------------------------------------------
def _cancellable(flags: list[str]) -> Callable[[], Any]:
    async def wait_forever() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            flags.append("cancelled")
            raise

    return wait_forever


def test_timeout_cancels_the_task_in_the_loop(bridge: AsyncioBridge) -> None:
    flags: list[str] = []
    t0 = time.perf_counter()
    with pytest.raises(BridgeTimeoutError) as info:
        bridge.submit(_cancellable(flags), timeout_s=0.1)
    assert info.value.timeout_s == 0.1
    assert time.perf_counter() - t0 < 1.0
    _wait_until(lambda: flags == ["cancelled"])


def test_wait_times_out_without_cancelling_the_task(bridge: AsyncioBridge) -> None:
    gate: list[asyncio.Event] = []

    async def until_opened() -> str:
        gate.append(asyncio.Event())
        await gate[0].wait()
        return "opened"

    handle = bridge.submit_nowait(until_opened)
    assert handle.wait(0.05) is False and not handle.done()
    _wait_until(lambda: bool(gate))
    bridge.call_soon(gate[0].set)
    assert handle.wait(5) is True and handle.get(0) == "opened"  # still running after the timeout, then done


def test_killing_the_waiting_greenlet_cancels_the_task(bridge: AsyncioBridge) -> None:
    flags: list[str] = []
    g = gevent.spawn(bridge.submit, _cancellable(flags), timeout_s=30)
    gevent.sleep(0.05)
    g.kill(block=True, timeout=5)
    assert g.dead
    _wait_until(lambda: flags == ["cancelled"])


def test_stop_cancels_pending_tasks_and_joins_the_thread() -> None:
    b = AsyncioBridge()
    b.start()
    get_native_id = monkey.get_original("_thread", "get_native_id")

    async def native_id() -> int:
        return get_native_id()

    loop_tid = b.submit(native_id, timeout_s=5)
    assert loop_tid != get_native_id() and _os_thread_alive(loop_tid)
    flags: list[str] = []
    handles = [b.submit_nowait(_cancellable(flags)) for _ in range(50)]
    _wait_until(lambda: len(b._tasks) == 50)  # all started in the loop
    t0 = time.perf_counter()
    assert b.stop(5.0) is True
    assert time.perf_counter() - t0 < 2.0
    assert b.state is BridgeState.STOPPED
    assert flags == ["cancelled"] * 50
    for handle in handles:
        with pytest.raises(BridgeError) as info:
            handle.get(1.0)
        assert info.value.reason is BridgeErrorReason.STOPPED
    _wait_until(lambda: not _os_thread_alive(loop_tid))
    # stopped: asyncio.run is no longer refused by the guard, the bridge restarts cleanly
    b.start()
    assert b.submit(_echo_after, 3, 0.0, timeout_s=5) == 3
    assert b.stop(5.0) is True


# ---- generator health ---------------------------------------------------------------------
def test_loop_lag_reports_a_blocked_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bridge_mod, "LAG_PROBE_INTERVAL_S", 0.01)
    b = AsyncioBridge()
    b.start()
    try:
        _wait_until(lambda: (b.loop_lag_ms(99.0, 5.0) or -1.0) >= 0.0)
        b.cpu_percent()

        async def block_loop(duration_s: float) -> None:
            end = time.perf_counter() + duration_s
            while time.perf_counter() < end:  # CPU-bound on purpose: the loop cannot run timers
                pass

        b.submit(block_loop, 0.15, timeout_s=5)
        _wait_until(lambda: (b.loop_lag_ms(99.0, 5.0) or 0.0) >= 100.0)
        assert b.cpu_percent() > 20.0
    finally:
        b.stop(5.0)


# ---- Locust integration -------------------------------------------------------------------
def test_attach_follows_locust_life_cycle() -> None:
    env = Environment(user_classes=[])
    b = attach(env.events)
    assert b.state is BridgeState.NEW
    env.events.init.fire(environment=env, runner=None, web_ui=None)
    assert b.state is BridgeState.RUNNING
    env.events.test_stop.fire(environment=env)
    assert b.state is BridgeState.STOPPED
    env.events.test_start.fire(environment=env)
    assert b.state is BridgeState.RUNNING
    env.events.quitting.fire(environment=env)
    assert b.state is BridgeState.STOPPED


def test_locust_users_submit_coroutines_and_stats_count_exactly() -> None:
    users, calls = 20, 5

    class EchoUser(User):
        host = "127.0.0.1"
        wait_time = staticmethod(lambda: 0)  # type: ignore[assignment]

        @task
        def talk(self) -> None:
            bridge = self.environment.bridge  # type: ignore[attr-defined]
            for i in range(calls):
                bridge.submit(echo, i, timeout_s=10)
            with pytest.raises(LookupError):
                bridge.submit(fail, timeout_s=10)
            raise StopUser()

    env = Environment(user_classes=[EchoUser])
    bridge = attach(env.events)
    env.bridge = bridge  # type: ignore[attr-defined]

    async def echo(i: int) -> int:
        with bridge.measure("soap", "login"):
            await asyncio.sleep(0.001 * (i % 3))
        return i

    async def fail() -> None:
        with bridge.measure("xmpp", "auth"):
            raise LookupError("not-authorized")

    runner = env.create_local_runner()
    env.events.init.fire(environment=env, runner=runner, web_ui=None)
    try:
        runner.start(users, spawn_rate=100)

        def count(name: str, request_type: str) -> int:
            entry = env.stats.entries.get((name, request_type))  # start() replaces the dict
            return entry.num_requests if entry is not None else 0

        _wait_until(lambda: count("login", "soap") == users * calls and count("auth", "xmpp") == users, 10)
        runner.stop()
        login, auth = env.stats.entries[("login", "soap")], env.stats.entries[("auth", "xmpp")]
        assert (login.num_requests, login.num_failures) == (users * calls, 0)
        assert (auth.num_requests, auth.num_failures) == (users, users)
        assert env.stats.total.num_requests == users * calls + users
        assert [e.error for e in env.stats.errors.values()] and all(
            "not-authorized" in str(e.error) for e in env.stats.errors.values())
    finally:
        runner.quit()
        env.events.quitting.fire(environment=env)
    assert bridge.state is BridgeState.STOPPED


def test_an_outer_gevent_timeout_propagates_and_cancels_the_task(bridge: AsyncioBridge) -> None:
    flags: list[str] = []
    with pytest.raises(gevent.Timeout) as info, gevent.Timeout(0.1):
        bridge.submit(_cancellable(flags), timeout_s=30)
    assert not isinstance(info.value, BridgeTimeoutError)
    _wait_until(lambda: flags == ["cancelled"])
