"""Waves of jabberemu emulated clients for the bench scripts (all on this process's one loop).

A wave starts N :class:`~jabberemu.driver.EmulatedClient` at a fixed arrival rate (evenly spaced
starts) or as fast as ``concurrency`` allows, waits until each is XMPPCONNECTED or ended, and
returns the clients (still connected) with the CPU and wall time of the login phase: from the
first start to the last client settled. Client objects are built inside the phase, so their
construction is part of the measured cost.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchkit import cpu_s
from jabberemu.config import ClientSettings, NodeAddress, ServerPair, Timeouts
from jabberemu.core.metrics import Measurement
from jabberemu.core.states import ClientState
from jabberemu.driver import EmulatedClient
from jabberemu.runtime import Runtime, RunDataSink

__all__ = ["Wave", "make_runtime", "mock_users", "run_wave", "stop_all"]


def mock_users(count: int, first: int = 1) -> list[tuple[str, str]]:
    """The mock's provisioned users ``user00001``... with their default passwords."""
    return [(f"user{i:05d}", f"pass-user{i:05d}") for i in range(first, first + count)]


@dataclass(kw_only=True)
class Wave:
    """One login wave: its clients and what the login phase cost."""

    clients: list[EmulatedClient]
    states: Counter[str]
    t0: float
    t1: float
    cpu_s: float
    login_ms: list[float] = field(default_factory=list)

    @property
    def connected(self) -> int:
        return self.states.get(ClientState.XMPPCONNECTED.value, 0)

    @property
    def wall_s(self) -> float:
        return self.t1 - self.t0

    def cpu_per_login_ms(self) -> float | None:
        return round(self.cpu_s / self.connected * 1000.0, 3) if self.connected else None


async def make_runtime(pair: ServerPair, *, xmpp_only: bool, run_dir: Path | None, ping_interval_s: float = 60.0,
                       login_ms: list[float] | None = None, run_seed: int = 1) -> Runtime:
    """The process's shared client objects, writing run data to ``run_dir`` (a file, as in real runs).

    Args:
        pair: target pair.
        xmpp_only: password SASL without CPA.
        run_dir: where ``client_events.jsonl`` goes; None keeps records in memory.
        ping_interval_s: XEP-0199 keepalive period of idle clients.
        login_ms: when given, ``client/login`` response times are appended to it.
    """
    settings = ClientSettings(xmpp_only=xmpp_only, verify_tls=False,
                              timeouts=Timeouts(ping_interval_s=ping_interval_s))

    def measure(_client: str, m: Measurement) -> None:
        if login_ms is not None and m.label == "client/login" and m.exception is None:
            login_ms.append(m.response_time_ms)

    return await Runtime.create(pair, settings, measure=measure, run_seed=run_seed,
                                sink=RunDataSink(run_dir) if run_dir is not None else None)


async def run_wave(rt: Runtime, users: Sequence[tuple[str, str]], home: str | None, *,
                   rate_per_s: float | None, concurrency: int = 500, login_ms: list[float] | None = None,
                   timeout_s: float | None = None, batch: int = 1) -> Wave:
    """Log ``users`` in and wait until every client settled.

    Args:
        rt: the runtime.
        users: ``(user, password)`` pairs.
        home: home node name (None: the pair's first node).
        rate_per_s: arrival rate (evenly spaced starts); None = as fast as ``concurrency`` allows.
        concurrency: logins in flight at most.
        login_ms: the list the runtime's callback appends login times to (reported back).
        timeout_s: bound of the whole wave; clients not settled by then count as ``unsettled``.
        batch: with a rate, start the clients ``batch`` at a time, back to back, every ``batch / rate``
            seconds (1: evenly spaced, as Tsung does; a second's worth: as Locust's master hands users out);
            at least 1.
    """
    if batch < 1:
        raise ValueError(f"batch must be at least 1, not {batch}")
    gate = asyncio.Semaphore(concurrency)
    clients: list[EmulatedClient] = []
    tasks: list[asyncio.Task[ClientState]] = []
    timeout_s = timeout_s or (len(users) / (rate_per_s or 50.0) + 120.0)

    async def one(c: EmulatedClient) -> ClientState:
        async with gate:
            return await c.start()

    c0, t0 = cpu_s(), time.monotonic()
    loop = asyncio.get_running_loop()
    for i, (user, password) in enumerate(users):
        if rate_per_s is not None:
            due = t0 + (i // batch) * batch / rate_per_s
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        client = EmulatedClient(user, password, home, rt, starttls=False)
        clients.append(client)
        tasks.append(loop.create_task(one(client)))
        if rate_per_s is None and i % 200 == 199:
            await asyncio.sleep(0)
    done, pending = await asyncio.wait(tasks, timeout=max(1.0, t0 + timeout_s - time.monotonic()))
    t1, c1 = time.monotonic(), cpu_s()
    states: Counter[str] = Counter(t.result().value for t in done if not t.cancelled() and t.exception() is None)
    states["unsettled"] += len(pending) + sum(1 for t in done if t.cancelled() or t.exception() is not None)
    if not states["unsettled"]:
        del states["unsettled"]
    return Wave(clients=clients, states=states, t0=t0, t1=t1, cpu_s=c1 - c0,
                login_ms=list(login_ms) if login_ms is not None else [])


async def stop_all(clients: Sequence[EmulatedClient], timeout_s: float = 30.0) -> None:
    """Sign every client out (bounded)."""
    if clients:
        await asyncio.wait([asyncio.ensure_future(c.stop(timeout_s=5.0)) for c in clients], timeout=timeout_s)


def one_node_pair(name: str, host: str, port: int, domain: str) -> ServerPair:
    """An XMPP-only one-node target (e.g. Prosody)."""
    return ServerPair(nodes=(NodeAddress(name=name, cpa_url=None, xmpp_host=host, xmpp_port=port),), domain=domain)


__all__ += ["one_node_pair"]
