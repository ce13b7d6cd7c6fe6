"""Helpers of the fault scenario suite: the real mock pair (``MockPair``, two node processes) with
short SRM timers, a few hundred :class:`~jabberemu.driver.EmulatedClient` on the test's loop, the
pair's state sequence from ``/api/events``, and the accounting of every client at the end.

Imported by the ``test_fault_*`` modules (pytest puts this directory on ``sys.path``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jabberemu.config import ClientSettings, ServerPair, Timeouts
from jabberemu.core.states import END_STATES, ClientState, EndReason
from jabberemu.driver import EmulatedClient
from jabberemu.runtime import RecordType, RunDataSink, Runtime
from mock_server.pair.runner import MockPair
from mock_server.pair_config import DEFAULT_NODE_NAMES, PairConfig
from mock_server.users import provision

__all__ = [
    "N1", "N2", "CSD", "ADMIN", "PEER_DOWN", "INIT", "base_params", "FaultRun", "fault_run",
    "transitions", "paths", "server_totals",
]

N1, N2 = DEFAULT_NODE_NAMES
CSD, ADMIN, PEER_DOWN, INIT = "Critical Service Down", "On Admin Request", "Peer Down", "Initialization"


def base_params(lower_s: float = 0.3, upper_s: float = 1.2, *extra: str) -> tuple[str, ...]:
    """SRM timers for a loaded 2-core box: beat 0.2 s, peer silent 1.5 s = down (7 beats missed),
    critical service delay 0.3 s, and the re-login limits; ``extra`` ``--param`` items win."""
    return ("heartbeat_interval_s=0.2", "heartbeat_timeout_s=1.5", "init_heartbeat_timeout_s=5",
            "critical_service_delay_s=0.3", f"relogin_lower_s={lower_s}", f"relogin_upper_s={upper_s}", *extra)


def transitions(events: Iterable[dict[str, Any]], node: str) -> list[tuple[str, str]]:
    """``(to, reason)`` of ``node``'s SRM transitions, in the order recorded."""
    rows = sorted((e for e in events if e.get("kind") == "transition" and e["node"] == node), key=lambda e: e["ts"])
    return [(e["to"], e["reason"]) for e in rows]


@dataclass
class FaultRun:
    """A running pair with its clients.

    Attributes:
        pair: the mock pair.
        rt: the clients' runtime (in-memory sink, shared registry).
        clients: every client started, in user order.
        homes: user id -> home node.
        t0: wall time (Unix s) before the first fault action of the test.
        held_back: provisioned users not started at the beginning (the test starts them later).
    """

    pair: MockPair
    rt: Runtime
    clients: list[EmulatedClient]
    homes: dict[str, str]
    t0: float = field(default_factory=time.time)
    held_back: list[str] = field(default_factory=list)

    def connected(self, node: str) -> int:
        return self.rt.registry.snapshot().connected_by_node.get(node, 0)

    def home_of(self, node: str) -> set[str]:
        return {u for u, h in self.homes.items() if h == node}

    def all_home(self) -> bool:
        """Every client XMPPCONNECTED on its own home node."""
        return all(c.state is ClientState.XMPPCONNECTED and c.machine.node == self.homes[c.user_id]
                   for c in self.clients)

    def settled(self) -> bool:
        """No client between attempts or waiting: each is connected or has ended."""
        by_state = self.rt.registry.snapshot().by_state
        return by_state[ClientState.XMPPCONNECTED] + sum(by_state[s] for s in END_STATES) == len(self.clients)

    def records(self, kind: RecordType, since: float = 0.0) -> dict[str, list[dict[str, Any]]]:
        """Run-data records of one type per client, in order, from ``since`` (Unix s)."""
        out: dict[str, list[dict[str, Any]]] = {}
        for r in self.rt.sink.of_type(kind):
            if r["ts"] >= since:
                out.setdefault(r["client"], []).append(r)
        return out

    async def events(self, since: float | None = None) -> list[dict[str, Any]]:
        events = (await self.pair.admin("GET", "/api/events"))["events"]
        start = self.t0 if since is None else since
        return [e for e in events if e["ts"] >= start]

    async def wait_transitions(self, expected: dict[str, list[tuple[str, str]]], timeout_s: float = 15.0,
                               since: float | None = None) -> list[dict[str, Any]]:
        """Wait until each node's transitions since ``since`` (default :attr:`t0`) are exactly
        ``expected[node]`` in order; a different prefix fails at once.

        Raises:
            AssertionError: another sequence, or not complete within ``timeout_s``.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            events = await self.events(since)
            seen = {n: transitions(events, n) for n in expected}
            if seen == expected:
                return events
            for n, want in expected.items():
                assert seen[n] == want[: len(seen[n])], f"{n}: transitions {seen[n]}, expected {want}"
            if time.monotonic() > deadline:
                raise AssertionError(f"transitions {seen}, expected {expected}")
            await asyncio.sleep(0.05)

    async def write_run_dir(self, run_dir: Path, *, actions: list[dict[str, Any]],
                            server_login_rate: float | None = None, **info: Any) -> Path:
        """Write the run data of this run as a drill does (``run.json``, client and server records),
        for ``jabberemu.report.build_report``. ``actions``: ``{"ts", "action", "node"}`` items."""
        run_dir.mkdir(parents=True, exist_ok=True)
        with (run_dir / "client_events.jsonl").open("w", encoding="utf-8") as fh:
            for r in sorted(self.rt.sink.records, key=lambda r: r["ts"]):
                fh.write(json.dumps(r) + "\n")
        for name, rows in (("server_metrics.jsonl", (await self.pair.admin("GET", "/api/metrics"))["metrics"]),
                           ("server_events.jsonl", (await self.pair.admin("GET", "/api/events"))["events"])):
            with (run_dir / name).open("w", encoding="utf-8") as fh:
                for r in rows:
                    fh.write(json.dumps(r) + "\n")
        started = min(r["ts"] for r in self.rt.sink.records)
        run = {"run_id": run_dir.name, "started_ts": started, "ended_ts": time.time(), "clients": len(self.clients),
               "server_login_rate": server_login_rate, "actions": actions, "partial": False, **info}
        (run_dir / "run.json").write_text(json.dumps(run), encoding="utf-8")
        return run_dir

    async def start_clients(self, users: Iterable[str], *, via: dict[str, str] | None = None,
                            concurrency: int = 100, timeout_s: float = 90.0) -> list[ClientState]:
        """Create and sign in clients for ``users`` (``via[user]`` overrides the node the client
        first signs in to, as a client configured with the wrong server would); returns their states."""
        made = [EmulatedClient(u, f"pass-{u}", (via or {}).get(u, self.homes[u]), self.rt) for u in users]
        self.clients.extend(made)
        gate = asyncio.Semaphore(concurrency)

        async def start(c: EmulatedClient) -> ClientState:
            async with gate:
                return await c.start()

        return list(await asyncio.wait_for(asyncio.gather(*(start(c) for c in made)), timeout_s))

    async def finish(self) -> Counter[tuple[str, str]]:
        """Sign every client out and account for all of them.

        Checks: the registry started exactly the clients made; each client wrote exactly one
        ``end`` record, in an end state, with an :class:`EndReason`; the ``end`` records, the
        registry's end reasons and the registry's end-state counts agree; their sum is the
        number of clients started. Returns ``(state, reason)`` -> clients, from the ``end`` records.
        """
        await asyncio.wait_for(asyncio.gather(*(c.stop(timeout_s=3) for c in self.clients)), 60)
        snap = self.rt.registry.snapshot()
        self.rt.registry.check()
        started = len(self.clients)
        assert snap.started == started == len({c.user_id for c in self.clients})
        ends = self.rt.sink.of_type(RecordType.END)
        per_client = Counter(e["client"] for e in ends)
        assert set(per_client) == {c.user_id for c in self.clients} and set(per_client.values()) == {1}, \
            "each client writes exactly one end record"
        names = {r.value for r in EndReason}
        counted: Counter[tuple[str, str]] = Counter((e["state"], e["reason"]) for e in ends)
        for (state, reason), n in counted.items():
            assert ClientState(state) in END_STATES and reason in names, (state, reason, n)
        assert {(s.value, r.value): n for (s, r), n in snap.end_reasons.items()} == dict(counted)
        assert sum(snap.by_state[s] for s in END_STATES) == sum(counted.values()) == started
        for c in self.clients:
            assert c.state in END_STATES and c.machine.end_reason is not None
        return counted


async def server_totals(run: FaultRun, *keys: str, after_ts: float | None = None) -> dict[tuple[str, str], float]:
    """``(node, key)`` -> the sum of ``key`` over every metrics row of the pair's run (counts since the
    previous row add up to the node's total).

    Args:
        after_ts: wait first until both nodes sampled a row after this Unix time (a node samples once
            a second), so that everything counted before it is in the sum; default now.
    """
    limit = time.time() if after_ts is None else after_ts

    async def rows() -> list[dict[str, Any]]:
        return list((await run.pair.admin("GET", "/api/metrics"))["metrics"])

    deadline = time.monotonic() + 10.0
    while True:
        got = await rows()
        latest = {n: max((r["ts"] for r in got if r["node"] == n), default=0.0) for n in (N1, N2)}
        if min(latest.values()) > limit:
            break
        assert time.monotonic() < deadline, f"no metrics row after {limit} from both nodes: {latest}"
        await asyncio.sleep(0.1)
    totals: Counter[tuple[str, str]] = Counter()
    for row in got:
        for key in keys:
            totals[(row["node"], key)] += row.get(key) or 0
    return dict(totals)


def paths(run: FaultRun, user: str, since: float) -> list[str]:
    """The states ``user`` entered since ``since``, in order."""
    return [r["to"] for r in run.records(RecordType.STATE, since).get(user, [])]


@contextlib.asynccontextmanager
async def fault_run(users: int = 200, *, params: tuple[str, ...] | None = None, login_concurrency: int = 100,
                    settings: ClientSettings | None = None, hold_back: int = 0,
                    **config_kw: Any) -> AsyncIterator[FaultRun]:
    """A pair (Normal | Normal) with ``users`` clients signed in to their home nodes.

    Args:
        users: users provisioned and clients started (half per node, balanced assignment).
        params: ``--param`` items (default :func:`base_params`).
        login_concurrency: clients signing in at once at the start.
        settings: client settings (default: plain TCP, generous timeouts for a loaded box).
        hold_back: the last ``hold_back`` users homed on node 1 are provisioned but not started
            (:attr:`FaultRun.held_back`).
        config_kw: further :class:`PairConfig` fields.
    """
    config = PairConfig(users=users, params=params if params is not None else base_params(), contacts=2,
                        **config_kw)
    homes = {u.user_id: u.home_node for u in provision(users, config.node_names, seed=config.seed, contacts=0)}
    async with MockPair(config) as pair:
        await pair.wait_for_states({n: "Normal" for n in config.node_names}, timeout_s=20)
        settings = settings or ClientSettings(
            verify_tls=False, timeouts=Timeouts(soap_s=10, connect_s=5, auth_s=10, bind_s=10))
        rt = await Runtime.create(ServerPair.from_topology(pair.topology), settings, run_seed=9,
                                  sink=RunDataSink())
        held = sorted(u for u, h in homes.items() if h == N1)[-hold_back:] if hold_back else []
        run = FaultRun(pair=pair, rt=rt, clients=[], homes=homes, held_back=held)
        try:
            states = await run.start_clients(sorted(set(homes) - set(held)), concurrency=login_concurrency)
            assert states.count(ClientState.XMPPCONNECTED) == users - len(held), Counter(states)
            assert run.connected(N1) == len(run.home_of(N1)) - len(held)
            assert run.connected(N2) == len(run.home_of(N2))
            run.t0 = time.time()
            yield run
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.gather(*(c.stop(timeout_s=2) for c in run.clients)), 30)
            await rt.aclose()
