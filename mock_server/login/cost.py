"""Login admission of one mock node (docs/login-model.md §1): pure, on the caller's clock.

Every CPA ``login`` (password or one-time password) passes it. Parameters (:class:`LoginCostSettings`):
a token bucket of rate R (logins started per second) and size B (starts full), C workers (logins in
service at once), a service time S (how long a started login holds its worker before it answers) and
a FIFO queue of at most Q waiting logins; beyond it a login is refused busy (SOAP ``server-busy``).
A waiting login whose client gives up is removed and never served; one in service runs to its end,
its answer dropped. Every parameter at its default (no rate, no worker limit, S = 0, no queue
limit): a login costs nothing.

No I/O, no sleeping: the caller passes ``now`` (monotonic seconds, never decreasing) and carries
out the times the model names. An asyncio caller (``login.admission``) does::

    ticket = model.arrive(loop.time())       # STARTED, QUEUED or BUSY
    ...                                      # at model.next_start_at(): model.start_due(now)
    ...                                      # at ticket.done_s:         model.complete(ticket, now)
    ...                                      # client gone:              model.abandon(ticket, now)

A queued login starts at the first instant at which a worker is free *and* the bucket holds a token
(the bucket is kept as the time it would be full again, the generic cell rate algorithm); its
``started_s`` is that instant even when the caller learns of it later. Each login's life is one row
of ``login.ticket.TRANSITIONS``.
"""

from __future__ import annotations

import dataclasses
import math
from collections import OrderedDict
from dataclasses import dataclass

from mock_server.login.ticket import LoginState, LoginStep, LoginTicketError, Ticket, TicketKind, next_state
from mock_server.params import ParameterError, login_profile

__all__ = [
    "LoginCostCounters", "LoginCostModel", "LoginCostSettings", "LoginInterval", "LoginState", "LoginStep",
    "LoginTicketError", "Ticket", "TicketKind", "percentile",
]


def _bad_int(value: object, least: int) -> bool:
    return isinstance(value, bool) or not isinstance(value, int) or value < least


@dataclass(frozen=True, kw_only=True)
class LoginCostSettings:
    """Login cost of one node (docs/login-model.md §1). The defaults are our choice: free logins.

    Attributes:
        rate_per_s: R, logins started per second, sustained; None = unlimited (no bucket).
        burst: B, tokens the bucket holds: logins that may start back to back (>= 1).
        workers: C, logins in service at once; None = unlimited.
        service_ms: S in milliseconds, how long a started login holds its worker (>= 0).
        queue_limit: Q, logins that may wait; None = unbounded, 0 = no waiting.

    Raises:
        ParameterError: a value out of range (``name`` = ``login_rate``, ``login_burst``,
            ``login_workers``, ``login_service_ms`` or ``login_queue``).
    """

    rate_per_s: float | None = None
    burst: int = 1
    workers: int | None = None
    service_ms: float = 0.0
    queue_limit: int | None = None

    def __post_init__(self) -> None:
        rate = self.rate_per_s
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float))
                                 or not 0 < rate < math.inf):
            raise ParameterError(f"login rate must be > 0 logins/s, not {rate!r}", name="login_rate", value=rate)
        if _bad_int(self.burst, 1):
            raise ParameterError(f"login burst must be an int >= 1, not {self.burst!r}", name="login_burst",
                                 value=self.burst)
        if self.workers is not None and _bad_int(self.workers, 1):
            raise ParameterError(f"login workers must be an int >= 1, not {self.workers!r}", name="login_workers",
                                 value=self.workers)
        service = self.service_ms
        if isinstance(service, bool) or not isinstance(service, (int, float)) or not 0 <= service < math.inf:
            raise ParameterError(f"login service time must be >= 0 ms, not {service!r}", name="login_service_ms",
                                 value=service)
        if self.queue_limit is not None and _bad_int(self.queue_limit, 0):
            raise ParameterError(f"login queue must be an int >= 0, not {self.queue_limit!r}", name="login_queue",
                                 value=self.queue_limit)

    @property
    def service_s(self) -> float:
        """S in seconds."""
        return self.service_ms / 1000.0

    @classmethod
    def from_profile(cls, name: str, *, burst: int = 1, workers: int | None = None, service_ms: float = 0.0,
                     queue_limit: int | None = None) -> LoginCostSettings:
        """Settings at the rate of a Cisco HA login profile (``--login-profile``, see params.LOGIN_PROFILES).

        Raises:
            ParameterError: unknown profile name, or another value out of range.
        """
        return cls(rate_per_s=login_profile(name).users_per_s, burst=burst, workers=workers,
                   service_ms=service_ms, queue_limit=queue_limit)


@dataclass(frozen=True, kw_only=True)
class LoginCostCounters:
    """Cumulative counts; ``attempts == started + busy + abandoned + queue_depth`` at every instant."""

    attempts: int
    started: int
    completed: int
    busy: int
    abandoned: int
    abandoned_in_service: int
    queue_depth: int
    in_service: int


@dataclass(frozen=True, kw_only=True)
class LoginInterval:
    """What happened since the previous :meth:`LoginCostModel.take_interval`, and the gauges now.

    Counts: logins that arrived, started, completed (answered or dropped), were refused busy,
    abandoned while waiting, abandoned in service. ``queue_max``: the most that waited at once.
    Wait percentiles (arrival to start, ms) are over the logins started in the interval; latency
    percentiles (arrival to answer, ms) over those answered in it (a dropped answer has none);
    None when there is no such login. Percentiles are nearest-rank (:func:`percentile`).
    """

    attempts: int
    started: int
    completed: int
    busy: int
    abandoned: int
    abandoned_in_service: int
    queue_depth: int
    queue_max: int
    in_service: int
    oldest_wait_ms: float
    wait_p50_ms: float | None
    wait_p99_ms: float | None
    wait_max_ms: float | None
    latency_p50_ms: float | None
    latency_p99_ms: float | None

    def to_metrics(self) -> dict[str, int | float | None]:
        """The ``login_*`` keys of a node's metrics row (docs/login-model.md, counter table)."""
        return {f"login_{f.name}": getattr(self, f.name) for f in dataclasses.fields(self)}


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile: the smallest value with at least ``p`` % of ``values`` at or below it.

    Args:
        values: samples in any order.
        p: percent in (0, 100].

    Returns:
        One of the samples, or None when there are none.
    """
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered), math.ceil(p / 100.0 * len(ordered))) - 1)]


@dataclass(kw_only=True)
class _Live:
    state: LoginState
    arrived_s: float


class LoginCostModel:
    """Admits the logins of one node (see the module docstring).

    Args:
        settings: R, B, C, S, Q; the default costs nothing.
    """

    def __init__(self, settings: LoginCostSettings | None = None) -> None:
        self.settings = settings or LoginCostSettings()
        self._service_s = self.settings.service_s
        self._full_at_s = -math.inf  # the bucket is full from this instant on
        self._now_s = -math.inf  # latest time seen: the state below holds from then on
        self._next_id = 0
        self._live: dict[int, _Live] = {}
        self._queue: OrderedDict[int, float] = OrderedDict()  # ticket id -> arrival, FIFO
        self._in_service = 0
        self._pending: list[Ticket] = []  # started, not yet handed out by start_due
        self._totals = dict.fromkeys(("attempts", "started", "completed", "busy", "abandoned",
                                      "abandoned_in_service"), 0)
        self._mark = dict(self._totals)
        self._queue_max = 0
        self._waits_s: list[float] = []
        self._latencies_s: list[float] = []

    # -- decisions ------------------------------------------------------------------------------

    def arrive(self, now: float) -> Ticket:
        """A login reaches admission at ``now``.

        Returns:
            STARTED (at ``now``, one token taken), QUEUED (at the tail) or BUSY (queue full; counted,
            nothing else changes).

        Raises:
            ValueError: ``now`` is earlier than a time already passed in.
        """
        self._advance(now)
        ticket_id = self._next_id
        self._next_id += 1
        self._totals["attempts"] += 1
        if not self._queue and self._worker_free() and self._token_at() <= now:
            self._live[ticket_id] = _Live(state=LoginState.WAITING, arrived_s=now)
            self._start(ticket_id, now)
            return self._pending.pop()
        limit = self.settings.queue_limit
        if limit is not None and len(self._queue) >= limit:
            self._totals["busy"] += 1
            return Ticket(id=ticket_id, kind=TicketKind.BUSY, arrived_s=now)
        self._live[ticket_id] = _Live(state=LoginState.WAITING, arrived_s=now)
        self._queue[ticket_id] = now
        self._queue_max = max(self._queue_max, len(self._queue))
        return Ticket(id=ticket_id, kind=TicketKind.QUEUED, arrived_s=now)

    def next_start_at(self) -> float | None:
        """When the head of the queue can start: None when nobody waits or every worker is busy
        (then the next :meth:`complete` decides); a time <= now when starts are due already."""
        if self._pending:
            return self._pending[0].started_s
        if not self._queue or not self._worker_free():
            return None
        return max(self._token_at(), self._now_s)

    def start_due(self, now: float) -> list[Ticket]:
        """The queued logins that start by ``now``, in queue order (kind STARTED, ``started_s`` the
        instant each could start, which may be before ``now``).

        Raises:
            ValueError: ``now`` went backwards.
        """
        self._advance(now)
        started, self._pending = self._pending, []
        return started

    def complete(self, ticket: Ticket, now: float) -> None:
        """The service of ``ticket`` ended at ``now`` (its ``done_s`` or later): its worker is free.

        Raises:
            LoginTicketError: the ticket is not in service.
            ValueError: ``now`` went backwards.
        """
        self._advance(now)
        live = self._live.get(ticket.id)
        answered = live is not None and live.state is LoginState.IN_SERVICE  # not dropping
        live = self._step(ticket.id, LoginStep.COMPLETE)
        del self._live[ticket.id]
        self._in_service -= 1
        self._totals["completed"] += 1
        if answered:
            self._latencies_s.append(now - live.arrived_s)
        self._advance(now)

    def abandon(self, ticket: Ticket, now: float) -> LoginState:
        """The client of ``ticket`` gave up at ``now``.

        Returns:
            ABANDONED: it was waiting; it left the queue and will never start. DROPPING: it is in
            service; it keeps its worker until :meth:`complete`, which drops the answer.

        Raises:
            LoginTicketError: the ticket is not live (busy, answered, already abandoned while
                waiting) or already dropping.
            ValueError: ``now`` went backwards.
        """
        self._advance(now)  # a login that could have started by now is in service
        live = self._step(ticket.id, LoginStep.ABANDON)
        if live.state is LoginState.ABANDONED:
            del self._queue[ticket.id]
            del self._live[ticket.id]
            self._totals["abandoned"] += 1
        else:
            self._totals["abandoned_in_service"] += 1
        self._advance(now)
        return live.state

    # -- readings -------------------------------------------------------------------------------

    def is_live(self, ticket: Ticket) -> bool:
        """Whether ``ticket`` waits or is in service (complete / abandon apply to it)."""
        return ticket.id in self._live

    @property
    def queue_depth(self) -> int:
        """Logins waiting."""
        return len(self._queue)

    @property
    def in_service(self) -> int:
        """Logins holding a worker (dropping ones included)."""
        return self._in_service

    def oldest_wait_s(self, now: float) -> float:
        """How long the head of the queue has waited at ``now`` (0 when nobody waits)."""
        return max(0.0, now - next(iter(self._queue.values()))) if self._queue else 0.0

    def counters(self) -> LoginCostCounters:
        """Cumulative counters and the two gauges."""
        return LoginCostCounters(queue_depth=len(self._queue), in_service=self._in_service, **self._totals)

    def take_interval(self, now: float) -> LoginInterval:
        """What happened since the previous call (or since the start), and the gauges at ``now``;
        starts a new interval. Starts due by ``now`` are counted (and still handed out by
        :meth:`start_due`).

        Raises:
            ValueError: ``now`` went backwards.
        """
        self._advance(now)
        delta = {k: v - self._mark[k] for k, v in self._totals.items()}
        waits_ms = [w * 1000.0 for w in self._waits_s]
        latencies_ms = [t * 1000.0 for t in self._latencies_s]
        interval = LoginInterval(
            queue_depth=len(self._queue), queue_max=self._queue_max, in_service=self._in_service,
            oldest_wait_ms=self.oldest_wait_s(now) * 1000.0,
            wait_p50_ms=percentile(waits_ms, 50), wait_p99_ms=percentile(waits_ms, 99),
            wait_max_ms=max(waits_ms, default=None),
            latency_p50_ms=percentile(latencies_ms, 50), latency_p99_ms=percentile(latencies_ms, 99),
            **delta,
        )
        self._mark = dict(self._totals)
        self._queue_max = len(self._queue)
        self._waits_s, self._latencies_s = [], []
        return interval

    # -- internals ------------------------------------------------------------------------------

    def _check_time(self, now: float) -> None:
        if now < self._now_s:
            raise ValueError(f"time went backwards: {now} after {self._now_s}")

    def _worker_free(self) -> bool:
        return self.settings.workers is None or self._in_service < self.settings.workers

    def _token_at(self) -> float:
        """Earliest instant at which the bucket holds a token (level >= 1)."""
        rate = self.settings.rate_per_s
        if rate is None:
            return -math.inf
        return self._full_at_s - (self.settings.burst - 1) / rate

    def _step(self, ticket_id: int, step: LoginStep) -> _Live:
        live = self._live.get(ticket_id)
        new = next_state(ticket_id, live.state if live is not None else None, step)
        assert live is not None
        live.state = new
        return live

    def _start(self, ticket_id: int, at_s: float) -> None:
        live = self._step(ticket_id, LoginStep.START)
        rate = self.settings.rate_per_s
        if rate is not None:
            self._full_at_s = max(self._full_at_s, at_s) + 1.0 / rate
        self._in_service += 1
        self._totals["started"] += 1
        self._waits_s.append(at_s - live.arrived_s)
        self._pending.append(Ticket(id=ticket_id, kind=TicketKind.STARTED, arrived_s=live.arrived_s,
                                    started_s=at_s, service_s=self._service_s))

    def _advance(self, now: float) -> None:
        """Start every head that could start by ``now``, each at the first instant it could."""
        self._check_time(now)
        while self._queue and self._worker_free():
            at_s = max(self._token_at(), self._now_s)
            if at_s > now:
                break
            ticket_id, _ = self._queue.popitem(last=False)
            self._start(ticket_id, at_s)
            self._now_s = at_s
        self._now_s = now
