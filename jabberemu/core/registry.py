"""How many clients are in each state and on which node, at any moment.

Every :class:`~jabberemu.core.machine.ClientMachine` given a registry adds itself on construction
and moves itself on every transition, so the invariant "every started client is in exactly one
state" holds by construction; :meth:`ClientRegistry.check` recounts to prove it. Pure apart from a
lock: the asyncio loop thread writes while a Locust (gevent) thread may read snapshots.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from jabberemu.core.states import END_STATES, ClientState, EndReason
from jabberemu.errors import LocalProtocolError

__all__ = ["ClientRegistry", "RegistrySnapshot"]


@dataclass(frozen=True, kw_only=True, slots=True)
class RegistrySnapshot:
    """One consistent view of the registry.

    Attributes:
        started: clients ever added.
        by_state: every :class:`ClientState` -> clients in it (zeros included).
        by_node: node name -> clients whose current state works with that node (any live state).
        connected_by_node: node name -> clients in XMPPCONNECTED on it.
        end_reasons: ``(end state, reason)`` -> clients.
    """

    started: int
    by_state: Mapping[ClientState, int]
    by_node: Mapping[str, int]
    connected_by_node: Mapping[str, int]
    end_reasons: Mapping[tuple[ClientState, EndReason], int]


class ClientRegistry:
    """Counts of clients per state, per node and per end reason, updated on every transition."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._where: dict[str, tuple[ClientState, str | None]] = {}
        self._by_state: Counter[ClientState] = Counter()
        self._by_node: Counter[str] = Counter()
        self._connected: Counter[str] = Counter()
        self._ends: Counter[tuple[ClientState, EndReason]] = Counter()

    def __len__(self) -> int:
        return len(self._where)

    def add(self, client_id: str, state: ClientState = ClientState.NEW, node: str | None = None) -> None:
        """Register a started client.

        Raises:
            LocalProtocolError: ``client_id`` is already registered.
        """
        with self._lock:
            if client_id in self._where:
                raise LocalProtocolError(f"client {client_id!r} registered twice")
            self._where[client_id] = (state, node)
            self._count(state, node, +1)

    def move(self, client_id: str, state: ClientState, node: str | None = None,
             reason: EndReason | None = None) -> None:
        """Record a transition of ``client_id`` to ``state`` (working with ``node``).

        Args:
            client_id: a registered client.
            state: its new state.
            node: the node the new state works with, or None.
            reason: required when ``state`` is an end state, else must be None.

        Raises:
            LocalProtocolError: unknown client, a move out of an end state, a missing or extra reason.
        """
        if (state in END_STATES) != (reason is not None):
            raise LocalProtocolError(f"end states need a reason, others none: {state} {reason}")
        with self._lock:
            old = self._where.get(client_id)
            if old is None:
                raise LocalProtocolError(f"client {client_id!r} was never added")
            if old[0] in END_STATES:
                raise LocalProtocolError(f"client {client_id!r} already ended in {old[0].value}")
            self._count(old[0], old[1], -1)
            self._where[client_id] = (state, node)
            self._count(state, node, +1)
            if reason is not None:
                self._ends[(state, reason)] += 1

    def state_of(self, client_id: str) -> tuple[ClientState, str | None]:
        """``(state, node)`` of one client.

        Raises:
            LocalProtocolError: unknown client.
        """
        with self._lock:
            try:
                return self._where[client_id]
            except KeyError:
                raise LocalProtocolError(f"client {client_id!r} was never added") from None

    def snapshot(self) -> RegistrySnapshot:
        """A consistent copy of all counts."""
        with self._lock:
            return RegistrySnapshot(
                started=len(self._where),
                by_state={s: self._by_state.get(s, 0) for s in ClientState},
                by_node=dict(self._by_node),
                connected_by_node=dict(self._connected),
                end_reasons=dict(self._ends),
            )

    def end_reasons(self) -> dict[tuple[ClientState, EndReason], int]:
        """``(end state, reason)`` -> number of clients that ended so."""
        with self._lock:
            return dict(self._ends)

    def check(self) -> None:
        """Recount everything from the per-client entries.

        Raises:
            LocalProtocolError: a counter disagrees with the entries (a bug).
        """
        with self._lock:
            states = Counter(s for s, _ in self._where.values())
            nodes = Counter(n for _, n in self._where.values() if n is not None)
            connected = Counter(
                n for s, n in self._where.values() if s is ClientState.XMPPCONNECTED and n is not None
            )
            ended = sum(self._ends.values())
            in_end = sum(states[s] for s in END_STATES)
            if (
                +self._by_state != states
                or +self._by_node != nodes
                or +self._connected != connected
                or ended != in_end
                or sum(states.values()) != len(self._where)
            ):
                raise LocalProtocolError("client registry counters disagree with its entries")

    def _count(self, state: ClientState, node: str | None, delta: int) -> None:
        self._by_state[state] += delta
        if not self._by_state[state]:
            del self._by_state[state]
        if node is not None:
            self._by_node[node] += delta
            if not self._by_node[node]:
                del self._by_node[node]
            if state is ClientState.XMPPCONNECTED:
                self._connected[node] += delta
                if not self._connected[node]:
                    del self._connected[node]
