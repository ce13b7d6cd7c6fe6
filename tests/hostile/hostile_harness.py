"""A two-node pair of hostile servers and the checks every hostile test makes.

:func:`hostile_pair` starts a :class:`HostileCpa` and a :class:`HostileXmpp` per node (both nodes
scripted alike unless told), builds the :class:`ServerPair` and a :class:`Runtime`, and stops
everything within a bound on exit. :func:`run_clients` starts clients and waits (bounded) until
each is XMPPCONNECTED or ended; :func:`check_accounted` is the "nobody vanished" invariant.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from hostile_servers import HostileCpa, HostileXmpp

from jabberemu.config import ClientSettings, ReloginLimits, ServerPair, Timeouts
from jabberemu.core.states import END_STATES, ClientState
from jabberemu.driver import EmulatedClient
from jabberemu.runtime import RecordType, Runtime

__all__ = [
    "DOMAIN", "NODES", "TIMEOUT_S", "HostilePair", "check_accounted", "hostile_pair", "records", "run_clients",
    "settings_for", "small_timeouts",
]

DOMAIN = "example.test"
NODES = ("imp1.example.test", "imp2.example.test")
TIMEOUT_S = 0.4
"""Every login deadline in these tests (connect, auth, bind, SOAP)."""


CONNECT_TIMEOUT_S = 1.5
"""TCP connect deadline: a loopback connect never takes this long unless stalled on purpose (a
busy test machine can take longer than ``TIMEOUT_S`` to run the connect callback)."""


def small_timeouts(**kw: float) -> Timeouts:
    base = dict(soap_s=TIMEOUT_S, connect_s=CONNECT_TIMEOUT_S, auth_s=TIMEOUT_S, bind_s=TIMEOUT_S,
                ping_interval_s=0.2, ping_timeout_s=0.3)
    base.update(kw)
    return Timeouts(**base)


def settings_for(*, xmpp_only: bool, lower_s: float = 0.1, upper_s: float = 0.3, **kw: float) -> ClientSettings:
    return ClientSettings(xmpp_only=xmpp_only, verify_tls=False, timeouts=small_timeouts(**kw),
                          default_limits=ReloginLimits(lower_s=lower_s, upper_s=upper_s))


@dataclass(kw_only=True, eq=False)
class HostilePair:
    cpa: dict[str, HostileCpa]
    xmpp: dict[str, HostileXmpp]
    pair: ServerPair
    runtime: Runtime
    clients: list[EmulatedClient] = field(default_factory=list)

    def open_connections(self) -> int:
        return sum(len(x.open) for x in self.xmpp.values())


@contextlib.asynccontextmanager
async def hostile_pair(settings: ClientSettings, *, cpa: dict[str, HostileCpa] | None = None,
                       xmpp: dict[str, HostileXmpp] | None = None) -> AsyncIterator[HostilePair]:
    """Start hostile servers for both nodes (well-behaved ones where not given)."""
    cpas = {n: (cpa or {}).get(n) or HostileCpa(node=n) for n in NODES}
    xmpps = {n: (xmpp or {}).get(n) or HostileXmpp(domain=DOMAIN) for n in NODES}
    env: HostilePair | None = None
    try:
        for n in NODES:
            await cpas[n].start()
            await xmpps[n].start()
        pair = ServerPair(domain=DOMAIN, nodes=tuple(xmpps[n].address(n, cpas[n].url) for n in NODES))
        for c in cpas.values():
            c.pair = pair
        runtime = await Runtime.create(pair, settings)
        env = HostilePair(cpa=cpas, xmpp=xmpps, pair=pair, runtime=runtime)
        yield env
    finally:
        if env is not None:
            await asyncio.wait_for(asyncio.gather(*(c.stop(timeout_s=1) for c in env.clients)), 5)
            await env.runtime.aclose()
        for n in NODES:
            await xmpps[n].stop()
            await cpas[n].stop()


async def run_clients(env: HostilePair, count: int, *, bound_s: float) -> tuple[list[ClientState], float]:
    """Start ``count`` clients (homed on the first node); wait until each settles, at most ``bound_s``.

    Returns:
        The states reached and the elapsed seconds.
    """
    for i in range(count):
        env.clients.append(EmulatedClient(f"user{i + 1:05d}", f"pw-{i + 1}", NODES[0], env.runtime, starttls=False))
    t0 = time.monotonic()
    states = await asyncio.wait_for(asyncio.gather(*(c.start() for c in env.clients)), bound_s)
    return list(states), time.monotonic() - t0


def records(rt: Runtime, kind: RecordType, client: str | None = None) -> list[dict[str, Any]]:
    return [r for r in rt.sink.of_type(kind) if client is None or r["client"] == client]


def check_accounted(env: HostilePair) -> dict[tuple[str, str], int]:
    """started = sum over states, each ended client has one END record with a named reason.

    Returns:
        ``(end state, reason)`` -> clients, from the registry.
    """
    snap = env.runtime.registry.snapshot()
    assert snap.started == len(env.clients) == sum(snap.by_state.values()), snap
    ended = [c for c in env.clients if c.state in END_STATES]
    ends = records(env.runtime, RecordType.END)
    assert sorted(r["client"] for r in ends) == sorted(c.user_id for c in ended)
    assert all(r["reason"] and r["state"] in ("GAVE_UP", "LOGGED_OUT") for r in ends)
    return {(s.value, r.value): n for (s, r), n in snap.end_reasons.items()}
