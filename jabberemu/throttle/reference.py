"""Reference simulator: docs/login-model.md as a plain event-driven simulation (heapq, pure Python).

For tests only (it handles a few hundred clients per second of CPU): it exists so that the fast
model (``wave.py`` + ``admission.py``) can be checked client by client against a second, obvious
implementation of the same spec. It shares no logic with them: the token bucket is a level that
refills continuously, the queue a deque, the workers a counter, and every client a small state
machine driven by events.

Events at one instant are handled in the order answers (end of service), give-ups (SOAP timeout),
starts (a wake-up of the node), arrivals; simultaneous arrivals in (round, client) order. A node
whose head waits for a token schedules a wake-up when the token is due; an end of service schedules
a wake-up at that instant. A token is "there" when the level is >= 1 - 1e-9 (float slack).
"""

from __future__ import annotations

import enum
import heapq
import itertools
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from jabberemu.throttle.errors import ModelInputError
from jabberemu.throttle.model import (
    AttemptOutcome,
    ClientFate,
    ClientOutcomes,
    NodeAttempts,
    ServerModel,
    WaveKind,
    WaveSpec,
    Waits,
)

__all__ = ["reference_clients"]

_TOKEN_SLACK = 1e-9


class _Ev(enum.IntEnum):
    """Event kinds; the value is the priority among events at one instant."""

    END = 0
    TIMEOUT = 1
    WAKE = 2
    ARRIVAL = 3


class _LoginState(enum.Enum):
    WAITING = "waiting"
    IN_SERVICE = "in-service"
    DONE = "done"
    ABANDONED = "abandoned"


@dataclass(kw_only=True, slots=True)
class _Login:
    node: int
    client: int
    rnd: int
    arrival: float
    state: _LoginState = _LoginState.WAITING


class _Arrival(NamedTuple):
    node: int
    client: int
    rnd: int


class _Node:
    def __init__(self, index: int, server: ServerModel) -> None:
        self.index = index
        self.server = server
        self.level = float(server.burst)
        self.level_t = 0.0
        self.in_service = 0
        self.queue: deque[_Login] = deque()
        self.wake_at: float | None = None
        self.peak = 0

    def refill(self, t: float) -> None:
        if self.server.rate_per_s is not None:
            self.level = min(float(self.server.burst), self.level + (t - self.level_t) * self.server.rate_per_s)
        self.level_t = t

    def worker_free(self) -> bool:
        return self.server.workers is None or self.in_service < self.server.workers

    def token(self) -> bool:
        return self.server.rate_per_s is None or self.level >= 1.0 - _TOKEN_SLACK


class _Sim:
    def __init__(self, wave: WaveSpec, serving: ServerModel, other: ServerModel, round1: Sequence[float],
                 round2: Sequence[float]) -> None:
        self.wave = wave
        self.timeout = float(wave.soap_timeout_s)
        self.fallback = wave.kind is WaveKind.FALLBACK
        self.nodes = [_Node(0, serving), _Node(1, other)]
        self.round2 = [float(w) for w in round2]
        n = wave.clients
        self.arrival = np.full((2, 2, 1, n), np.nan)  # node, round, replica, client
        self.start = np.full((2, 2, 1, n), np.nan)
        self.outcome = np.zeros((2, 2, 1, n), dtype=np.int8)
        self.recovery = np.full((1, n), np.nan)
        self.fate = np.zeros((1, n), dtype=np.int8)
        self.heap: list[tuple[float, int, int, int, int, _Login | _Node | _Arrival]] = []
        self.seq = itertools.count()
        for client, wait in enumerate(round1):
            self.push_arrival(float(wait), 0, client, 1)

    def push(self, t: float, kind: _Ev, payload: _Login | _Node) -> None:
        heapq.heappush(self.heap, (t, int(kind), 0, 0, next(self.seq), payload))

    def push_arrival(self, t: float, node: int, client: int, rnd: int) -> None:
        heapq.heappush(self.heap, (t, int(_Ev.ARRIVAL), rnd, client, next(self.seq), _Arrival(node, client, rnd)))

    def run(self) -> None:
        while self.heap:
            t, kind, _, _, _, payload = heapq.heappop(self.heap)
            if isinstance(payload, _Arrival):
                self.arrive(t, self.nodes[payload.node], payload.client, payload.rnd)
            elif isinstance(payload, _Node):
                if payload.wake_at == t:
                    payload.wake_at = None
                self.try_start(t, payload)
            elif kind == _Ev.END:
                assert isinstance(payload, _Login)
                self.end(t, payload)
            else:
                assert isinstance(payload, _Login)
                self.give_up(t, payload)

    # --- node ------------------------------------------------------------------------------------

    def arrive(self, t: float, node: _Node, client: int, rnd: int) -> None:
        login = _Login(node=node.index, client=client, rnd=rnd, arrival=t)
        self.arrival[node.index, rnd - 1, 0, client] = t
        node.refill(t)
        at_once = not node.queue and node.worker_free() and node.token()
        limit = node.server.queue_limit
        if not at_once and limit is not None and len(node.queue) >= limit:
            self.outcome[node.index, rnd - 1, 0, client] = AttemptOutcome.REFUSED_BUSY
            self.attempt_failed(t, login)
            return
        node.queue.append(login)
        self.push(t + self.timeout, _Ev.TIMEOUT, login)
        self.try_start(t, node)
        node.peak = max(node.peak, len(node.queue))

    def try_start(self, t: float, node: _Node) -> None:
        node.refill(t)
        while node.queue:
            if not node.worker_free():
                return  # an end of service will wake the node
            if not node.token():
                rate = node.server.rate_per_s
                assert rate is not None
                due = t + (1.0 - node.level) / rate
                if node.wake_at is None or node.wake_at > due:
                    node.wake_at = due
                    self.push(due, _Ev.WAKE, node)
                return
            login = node.queue.popleft()
            node.level -= 1.0
            node.in_service += 1
            login.state = _LoginState.IN_SERVICE
            self.start[node.index, login.rnd - 1, 0, login.client] = t
            self.push(t + float(node.server.service_s), _Ev.END, login)

    def end(self, t: float, login: _Login) -> None:
        node = self.nodes[login.node]
        node.in_service -= 1
        self.push(t, _Ev.WAKE, node)
        if login.state is _LoginState.IN_SERVICE:
            login.state = _LoginState.DONE
            self.outcome[login.node, login.rnd - 1, 0, login.client] = AttemptOutcome.ANSWERED
            if login.node == 0:
                self.recovery[0, login.client] = t
                self.fate[0, login.client] = (ClientFate.RECOVERED_ROUND_1 if login.rnd == 1
                                              else ClientFate.RECOVERED_ROUND_2)
            else:
                self.round_failed(t, login)  # not-served-here

    def give_up(self, t: float, login: _Login) -> None:
        if login.state is _LoginState.WAITING:
            self.nodes[login.node].queue.remove(login)
            self.outcome[login.node, login.rnd - 1, 0, login.client] = AttemptOutcome.TIMED_OUT_WAITING
        elif login.state is _LoginState.IN_SERVICE:
            self.outcome[login.node, login.rnd - 1, 0, login.client] = AttemptOutcome.TIMED_OUT_IN_SERVICE
        else:
            return
        login.state = _LoginState.ABANDONED
        self.attempt_failed(t, login)

    # --- client ----------------------------------------------------------------------------------

    def attempt_failed(self, t: float, login: _Login) -> None:
        if self.fallback and login.node == 0:
            self.push_arrival(t, 1, login.client, login.rnd)  # second choice of the round, at once
        else:
            self.round_failed(t, login)

    def round_failed(self, t: float, login: _Login) -> None:
        if login.rnd == 1:
            self.push_arrival(t + self.round2[login.client], 0, login.client, 2)
        else:
            self.fate[0, login.client] = ClientFate.GAVE_UP


def reference_clients(wave: WaveSpec, serving: ServerModel, round1_s: Sequence[float], round2_s: Sequence[float],
                      *, other: ServerModel | None = None) -> ClientOutcomes:
    """Simulate one replica of a wave event by event (reference for tests).

    Args:
        wave: clients, kind, limits, SOAP timeout.
        serving: admission of the serving node.
        round1_s, round2_s: each client's drawn waits (s), ``wave.clients`` each.
        other: admission of the other node (fallback); default the same as ``serving``.

    Returns:
        Per-client outcomes with one replica.

    Raises:
        ModelInputError: wait lists of the wrong length.
    """
    if len(round1_s) != wave.clients or len(round2_s) != wave.clients:
        raise ModelInputError("round1_s/round2_s", (len(round1_s), len(round2_s)), f"need {wave.clients} waits each")
    sim = _Sim(wave, serving, other or serving, round1_s, round2_s)
    sim.run()
    waits = Waits(round1_s=np.asarray([round1_s], dtype=np.float64), round2_s=np.asarray([round2_s], dtype=np.float64))
    node_attempts = [NodeAttempts(arrival_s=sim.arrival[i], start_s=sim.start[i], outcome=sim.outcome[i],
                                  queue_peak=np.array([sim.nodes[i].peak], dtype=np.int64)) for i in (0, 1)]
    return ClientOutcomes(wave=wave, serving_model=serving, other_model=(other or serving) if sim.fallback else None,
                          waits=waits, serving=node_attempts[0], other=node_attempts[1] if sim.fallback else None,
                          recovery_s=sim.recovery, fate=sim.fate)
