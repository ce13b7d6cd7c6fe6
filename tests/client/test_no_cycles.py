"""Finished connections leave no reference cycles: reference counting alone frees them (issue 17).

The collector is switched off for the whole scenario (login, pings, messages, presence, a failover
with its re-login, a fallback, sign-out); then every XMPP session and every client socket transport
the clients made must already be gone, and a full collection must find no garbage of ours or
slixmpp's. The runtime's GC policy is off here: its ticks would collect what this test looks for.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections import Counter
from typing import Any

import pytest
from waiting import wait_until
from inproc_pair import NODES, fast_timeouts, inproc_pair

from jabberemu.config import ActivityRates, ClientSettings
from jabberemu.core.states import ClientState
from jabberemu.driver import EmulatedClient
from jabberemu.runtime import Runtime
from jabberemu.xmpp.client import XmppSession

IMP1, IMP2 = NODES


@pytest.fixture
def tracked(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[weakref.ref[Any]]]:
    """Weak references to every XmppSession started and every transport it was given."""
    made: dict[str, list[weakref.ref[Any]]] = {"sessions": [], "transports": []}
    start, made_conn = XmppSession.start, XmppSession.connection_made

    def tracking_start(self: XmppSession) -> None:
        made["sessions"].append(weakref.ref(self))
        start(self)

    def tracking_connection_made(self: XmppSession, transport: Any, send_event: bool = True) -> None:
        made["transports"].append(weakref.ref(transport))
        made_conn(self, transport, send_event)

    monkeypatch.setattr(XmppSession, "start", tracking_start)
    monkeypatch.setattr(XmppSession, "connection_made", tracking_connection_made)
    return made


def garbage_of_ours() -> Counter[str]:
    """Types of the unreachable objects a full collection finds, ours and slixmpp's only."""
    gc.set_debug(gc.DEBUG_SAVEALL)
    gc.collect()
    found = Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.garbage
                    if type(o).__module__.startswith(("jabberemu", "slixmpp")))
    gc.garbage.clear()
    gc.set_debug(0)
    return found


async def settle() -> None:
    """A few loop turns: transports' connection_lost and the sessions' release run."""
    for _ in range(5):
        await asyncio.sleep(0.01)


async def test_sessions_of_a_failover_drill_are_freed_without_the_collector(
        collector_off: None, tracked: dict[str, list[weakref.ref[Any]]]) -> None:
    async with inproc_pair(6, lower_s=0.05, upper_s=0.2, contacts=2) as env:
        assert env.pair is not None
        settings = ClientSettings(verify_tls=False, timeouts=fast_timeouts(ping_interval_s=0.05, ping_timeout_s=1),
                                  activity=ActivityRates(messages_per_min=1200, presence_per_min=600))
        measured: list[str] = []
        rt = await Runtime.create(env.pair, settings, run_seed=3, gc_policy=None,
                                  measure=lambda _c, m: measured.append(m.label))
        clients = [EmulatedClient(u, env.password(u), env.home(u), rt) for u in env.user_ids()]
        states = await asyncio.wait_for(asyncio.gather(*(c.start() for c in clients)), 10)
        assert set(states) == {ClientState.XMPPCONNECTED}
        await wait_until(lambda: measured.count("xmpp/ping") >= 6 and measured.count("xmpp/message-latency") >= 3,
                         what="pings and messages")
        assert env.fail_over(IMP1) == 3
        await wait_until(lambda: rt.registry.snapshot().connected_by_node.get(IMP2, 0) == 6, what="all on imp2")
        assert env.fall_back(IMP1) == 3
        await wait_until(lambda: rt.registry.snapshot().connected_by_node.get(IMP1, 0) == 3, what="home again")
        await asyncio.wait_for(asyncio.gather(*(c.stop() for c in clients)), 10)
        assert {c.state for c in clients} == {ClientState.LOGGED_OUT}
        await settle()

        # 6 logins + 3 re-logins on the backup + 3 back home: each one XMPP session
        assert len(tracked["sessions"]) == 12 and len(tracked["transports"]) == 12
        alive = [ref() for ref in tracked["sessions"] if ref() is not None]
        assert alive == [], f"{len(alive)} sessions kept alive after sign-out"
        assert [ref() for ref in tracked["transports"] if ref() is not None] == []
        assert garbage_of_ours() == Counter()
        await rt.aclose()


async def test_a_session_killed_while_connecting_is_freed(collector_off: None,
                                                          tracked: dict[str, list[weakref.ref[Any]]]) -> None:
    async with inproc_pair(2) as env:
        assert env.pair is not None
        settings = ClientSettings(xmpp_only=True, verify_tls=False, timeouts=fast_timeouts())
        rt = await Runtime.create(env.pair, settings, gc_policy=None)
        user = env.user_ids(IMP1)[0]
        client = EmulatedClient(user, env.password(user), IMP1, rt)
        assert await client.start(wait=False) is not ClientState.XMPPCONNECTED
        assert await client.stop() is ClientState.LOGGED_OUT  # stopped before the connection was up
        await settle()
        assert len(tracked["sessions"]) == 1
        assert tracked["sessions"][0]() is None
        assert garbage_of_ours() == Counter()
        await rt.aclose()
