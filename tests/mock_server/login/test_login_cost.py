"""The pure login admission model (docs/login-model.md §1) on an explicit clock: table-driven cases,
a small discrete-event driver and hypothesis properties. No event loop."""

from __future__ import annotations

import heapq
import itertools
import math
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mock_server.login.cost import LoginCostModel, LoginCostSettings, percentile
from mock_server.login.ticket import (
    TRANSITIONS,
    LoginState,
    LoginStep,
    LoginTicketError,
    Ticket,
    TicketKind,
    next_state,
)
from mock_server.params import ParameterError

EPS = 1e-9


@dataclass
class Trace:
    """What a run of the driver saw."""

    model: LoginCostModel
    tickets: dict[int, Ticket] = field(default_factory=dict)  # latest view of each ticket
    starts: list[Ticket] = field(default_factory=list)  # in the order the model reported them
    busy: list[int] = field(default_factory=list)
    abandoned: list[int] = field(default_factory=list)
    dropped: list[int] = field(default_factory=list)
    answered: dict[int, float] = field(default_factory=dict)
    depth_at_busy: list[int] = field(default_factory=list)
    max_in_service: int = 0

    def start_of(self, i: int) -> float | None:
        return self.tickets[i].started_s


def check_invariant(model: LoginCostModel) -> None:
    c = model.counters()
    assert c.attempts == c.started + c.busy + c.abandoned + c.queue_depth, c
    assert c.in_service == c.started - c.completed, c
    assert c.queue_depth == model.queue_depth and c.in_service == model.in_service


def simulate(cost: LoginCostSettings, arrivals: list[float], patience_s: list[float | None] | None = None) -> Trace:
    """Drive the model like a node would: arrivals, starts at ``next_start_at``, completions at
    ``done_s`` and clients giving up ``patience_s[i]`` after arriving (while waiting or in
    service). The invariant is checked after every step."""
    assert arrivals == sorted(arrivals), "arrivals in time order: ticket id = arrival index"
    model = LoginCostModel(cost)
    trace = Trace(model=model)
    patience = patience_s or [None] * len(arrivals)
    completions: list[tuple[float, int]] = []
    give_ups: list[tuple[float, int]] = []
    nxt = 0

    def started(tickets: list[Ticket]) -> None:
        for t in tickets:
            trace.tickets[t.id] = t
            trace.starts.append(t)
            assert t.done_s is not None
            heapq.heappush(completions, (t.done_s, t.id))
        trace.max_in_service = max(trace.max_in_service, model.in_service)

    while True:
        times = [arrivals[nxt]] if nxt < len(arrivals) else []
        times += [completions[0][0]] if completions else []
        times += [give_ups[0][0]] if give_ups else []
        start_at = model.next_start_at()
        times += [start_at] if start_at is not None else []
        if not times:
            break
        now = min(times)
        if completions and completions[0][0] <= now:
            _, tid = heapq.heappop(completions)
            model.complete(trace.tickets[tid], now)
            if tid not in trace.dropped:
                trace.answered[tid] = now
        elif start_at is not None and start_at <= now:
            started(model.start_due(now))
        elif give_ups and give_ups[0][0] <= now:
            _, tid = heapq.heappop(give_ups)
            if model.is_live(trace.tickets[tid]):
                state = model.abandon(trace.tickets[tid], now)
                (trace.abandoned if state is LoginState.ABANDONED else trace.dropped).append(tid)
                started(model.start_due(now))
        else:
            i = nxt
            nxt += 1
            depth = model.queue_depth
            t = model.arrive(now)
            assert t.id == i
            trace.tickets[t.id] = t
            if t.kind is TicketKind.BUSY:
                trace.busy.append(t.id)
                trace.depth_at_busy.append(depth)
            else:
                if t.kind is TicketKind.STARTED:
                    started([t])
                wait = patience[i]
                if wait is not None:
                    heapq.heappush(give_ups, (now + wait, t.id))
            started(model.start_due(now))
        check_invariant(model)
    return trace


S = LoginCostSettings

# (name, settings, arrival times, expected start times; None = refused busy)
CASES = [
    ("free by default", S(), [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]),
    ("rate 10, burst 1", S(rate_per_s=10), [0, 0, 0, 0], [0, 0.1, 0.2, 0.3]),
    ("rate 10, burst 3", S(rate_per_s=10, burst=3), [0] * 5, [0, 0, 0, 0.1, 0.2]),
    ("2 workers, 1 s each", S(workers=2, service_ms=1000), [0] * 5, [0, 0, 1, 1, 2]),
    ("the worker binds, not the bucket", S(rate_per_s=10, workers=1, service_ms=250), [0] * 3, [0, 0.25, 0.5]),
    ("the bucket binds, not the worker", S(rate_per_s=2, workers=1, service_ms=100), [0] * 3, [0, 0.5, 1.0]),
    ("queue of 1", S(rate_per_s=1, queue_limit=1), [0, 0, 0], [0, 1, None]),
    ("no waiting", S(workers=1, service_ms=1000, queue_limit=0), [0, 0, 1], [0, None, 1]),
    ("spaced below the rate", S(rate_per_s=10, queue_limit=0), [0, 0.2, 0.4, 0.5], [0, 0.2, 0.4, 0.5]),
    ("bucket refills after a quiet spell", S(rate_per_s=10, burst=3), [0, 0, 0, 10, 10, 10, 10],
     [0, 0, 0, 10, 10, 10, 10.1]),
    ("late arrival joins the queue tail", S(rate_per_s=1), [0, 0, 0.5], [0, 1, 2]),
    ("a free slot is not taken past the queue", S(workers=1, service_ms=1000), [0, 0.5, 0.6], [0, 1, 2]),
]


@pytest.mark.parametrize(("cost", "arrivals", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_start_times(cost: LoginCostSettings, arrivals: list[float], expected: list[float | None]) -> None:
    trace = simulate(cost, arrivals)
    got = [trace.start_of(i) for i in range(len(arrivals))]
    assert got == pytest.approx(expected, abs=EPS)
    assert sorted(trace.busy) == [i for i, e in enumerate(expected) if e is None]
    c = trace.model.counters()
    served = sum(e is not None for e in expected)
    assert (c.attempts, c.started, c.completed, c.busy, c.abandoned, c.queue_depth, c.in_service) == (
        len(arrivals), served, served, len(arrivals) - served, 0, 0, 0)


def test_arrive_returns_the_decision() -> None:
    model = LoginCostModel(S(rate_per_s=1, queue_limit=1, service_ms=20))
    a, b, c = (model.arrive(5.0) for _ in range(3))
    assert (a.kind, a.started_s, a.done_s, a.wait_s) == (TicketKind.STARTED, 5.0, pytest.approx(5.02), 0.0)
    assert (b.kind, b.started_s, b.done_s, c.kind) == (TicketKind.QUEUED, None, None, TicketKind.BUSY)
    assert model.next_start_at() == pytest.approx(6.0)
    assert model.start_due(5.999) == [] and model.oldest_wait_s(5.5) == pytest.approx(0.5)
    (started,) = model.start_due(6.3)  # learnt late: it started at 6.0
    assert (started.id, started.kind, started.started_s, started.wait_s) == (b.id, TicketKind.STARTED, 6.0, 1.0)
    assert model.next_start_at() is None and model.in_service == 2


@settings(deadline=None)
@given(rate=st.floats(0.5, 500), n=st.integers(1, 60))
def test_kth_of_a_burst_starts_at_k_over_r(rate: float, n: int) -> None:
    trace = simulate(S(rate_per_s=rate), [3.0] * n)
    assert [trace.start_of(k) for k in range(n)] == pytest.approx([3.0 + k / rate for k in range(n)], rel=1e-9)


settings_st = st.builds(
    LoginCostSettings,
    rate_per_s=st.none() | st.floats(0.5, 50),
    burst=st.integers(1, 5),
    workers=st.none() | st.integers(1, 4),
    service_ms=st.sampled_from([0.0, 10.0, 100.0, 700.0]),
    queue_limit=st.none() | st.integers(0, 6),
)
arrivals_st = st.lists(st.floats(0, 3, allow_nan=False).map(lambda t: round(t, 2)), min_size=1,
                       max_size=40).map(sorted)


@settings(max_examples=300, deadline=None)
@given(cost=settings_st, arrivals=arrivals_st, data=st.data())
def test_properties(cost: LoginCostSettings, arrivals: list[float], data: st.DataObject) -> None:
    patience = data.draw(st.lists(st.none() | st.sampled_from([0.0, 0.05, 0.3, 1.0]),
                                  min_size=len(arrivals), max_size=len(arrivals)))
    trace = simulate(cost, arrivals, patience)
    starts = [t.started_s for t in trace.starts]
    assert all(s is not None for s in starts)
    # FIFO: nobody overtakes; starts reported in time order
    assert [t.id for t in trace.starts] == sorted(t.id for t in trace.starts)
    assert starts == sorted(starts)  # type: ignore[type-var]
    # starts in any window of length w never exceed B + R*w (and C*ceil(w/S) + C)
    for i, j in itertools.combinations(range(len(starts)), 2):
        w = starts[j] - starts[i]  # type: ignore[operator]
        if cost.rate_per_s is not None:
            assert j - i + 1 <= cost.burst + cost.rate_per_s * w + 1e-6
        if cost.workers is not None and cost.service_ms > 0:
            assert j - i + 1 <= cost.workers * math.ceil(w / cost.service_s - 1e-9) + cost.workers
    if cost.workers is not None:
        assert trace.max_in_service <= cost.workers
    # refused busy exactly when the queue was full
    if cost.queue_limit is None:
        assert trace.busy == []
    assert trace.depth_at_busy == [cost.queue_limit] * len(trace.busy)
    # an abandoned waiting login never starts; everybody else was served or refused
    started_ids = {t.id for t in trace.starts}
    assert not started_ids & set(trace.abandoned)
    assert started_ids | set(trace.busy) | set(trace.abandoned) == set(range(len(arrivals)))
    assert set(trace.dropped) <= started_ids and not set(trace.dropped) & set(trace.answered)
    c = trace.model.counters()
    assert (c.busy, c.abandoned, c.abandoned_in_service) == (len(trace.busy), len(trace.abandoned), len(trace.dropped))
    assert (c.queue_depth, c.in_service, c.completed) == (0, 0, c.started)


@settings(max_examples=100, deadline=None)
@given(cost=settings_st.filter(lambda c: c.queue_limit is None), arrivals=arrivals_st)
def test_without_abandonment_an_unbounded_queue_serves_everyone(cost: LoginCostSettings,
                                                                arrivals: list[float]) -> None:
    trace = simulate(cost, arrivals)
    assert sorted(trace.answered) == list(range(len(arrivals)))
    for i, t in trace.tickets.items():
        assert trace.answered[i] == pytest.approx(t.done_s, abs=EPS)


def test_abandoned_queued_login_frees_its_place() -> None:
    # rate 1/s: 0 starts at once, 1 gives up after 0.5 s, so 2 and 3 move up a second
    trace = simulate(S(rate_per_s=1), [0, 0, 0, 0], [None, 0.5, None, None])
    assert [trace.start_of(i) for i in range(4)] == pytest.approx([0, None, 1, 2])  # type: ignore[list-item]
    assert trace.abandoned == [1] and trace.dropped == []
    c = trace.model.counters()
    assert (c.attempts, c.started, c.abandoned, c.busy, c.completed) == (4, 3, 1, 0, 3)


def test_abandonment_in_a_bounded_queue_makes_room() -> None:
    # queue of 1: 1 waits, gives up at 0.2; 2 arrives at 0.3 and takes its place instead of busy
    trace = simulate(S(rate_per_s=1, queue_limit=1), [0, 0, 0.3, 0.4], [None, 0.2, None, None])
    assert [trace.start_of(i) for i in range(4)] == pytest.approx([0, None, 1, None])  # type: ignore[list-item]
    assert (trace.abandoned, trace.busy) == ([1], [3])


def test_abandonment_in_service_keeps_the_worker() -> None:
    model = LoginCostModel(S(workers=1, service_ms=1000))
    a, b = model.arrive(0.0), model.arrive(0.0)
    assert model.abandon(a, 0.5) is LoginState.DROPPING
    assert model.start_due(0.9) == [] and model.next_start_at() is None  # A still holds the worker
    with pytest.raises(LoginTicketError):
        model.abandon(a, 0.9)  # already dropping
    model.complete(a, 1.0)
    (b_started,) = model.start_due(1.0)
    assert b_started.started_s == 1.0
    model.complete(b_started, 2.0)
    interval = model.take_interval(2.0)
    assert (interval.completed, interval.abandoned_in_service, interval.abandoned) == (2, 1, 0)
    assert (interval.latency_p50_ms, interval.latency_p99_ms) == (2000.0, 2000.0)  # B only: A's answer was dropped
    check_invariant(model)


def test_abandoning_a_login_due_to_start_finds_it_in_service() -> None:
    model = LoginCostModel(S(rate_per_s=1, service_ms=500))
    model.arrive(0.0)
    b = model.arrive(0.0)
    assert model.abandon(b, 1.2) is LoginState.DROPPING  # it started at 1.0, unbeknown to the caller
    (started,) = model.start_due(1.2)
    assert (started.id, started.started_s) == (b.id, 1.0)


def test_steps_the_table_lacks_raise() -> None:
    model = LoginCostModel(S(rate_per_s=1, queue_limit=0))
    a, busy = model.arrive(0.0), model.arrive(0.0)
    with pytest.raises(LoginTicketError) as info:
        model.abandon(busy, 0.0)
    assert (info.value.ticket_id, info.value.state, info.value.step) == (busy.id, None, LoginStep.ABANDON)
    model.complete(a, 0.0)
    with pytest.raises(LoginTicketError):
        model.complete(a, 0.0)
    q = LoginCostModel(S(rate_per_s=1))
    q.arrive(0.0)
    waiting = q.arrive(0.0)
    with pytest.raises(LoginTicketError) as info:
        q.complete(waiting, 0.1)
    assert info.value.state is LoginState.WAITING
    assert q.abandon(waiting, 0.1) is LoginState.ABANDONED
    with pytest.raises(LoginTicketError):
        q.abandon(waiting, 0.2)
    with pytest.raises(ValueError, match="backwards"):
        q.arrive(0.0)
    for state, step in itertools.product(LoginState, LoginStep):
        if (state, step) in TRANSITIONS:
            assert next_state(1, state, step) is TRANSITIONS[(state, step)]
        else:
            with pytest.raises(LoginTicketError):
                next_state(1, state, step)


def test_interval_summary() -> None:
    model = LoginCostModel(S(rate_per_s=10, service_ms=50, queue_limit=1))
    tickets = [model.arrive(0.0) for _ in range(3)]  # start, queue, busy
    assert [t.kind for t in tickets] == [TicketKind.STARTED, TicketKind.QUEUED, TicketKind.BUSY]
    model.complete(tickets[0], 0.05)
    (second,) = model.start_due(0.1)
    model.complete(second, 0.15)
    late = model.arrive(0.18)  # the bucket refills at 0.2
    assert late.kind is TicketKind.QUEUED
    first = model.take_interval(0.19)
    assert first.to_metrics() == {
        "login_attempts": 4, "login_started": 2, "login_completed": 2, "login_busy": 1, "login_abandoned": 0,
        "login_abandoned_in_service": 0, "login_queue_depth": 1, "login_queue_max": 1, "login_in_service": 0,
        "login_oldest_wait_ms": pytest.approx(10.0), "login_wait_p50_ms": 0.0,
        "login_wait_p99_ms": pytest.approx(100.0), "login_wait_max_ms": pytest.approx(100.0),
        "login_latency_p50_ms": pytest.approx(50.0), "login_latency_p99_ms": pytest.approx(150.0),
    }
    assert model.abandon(late, 0.195) is LoginState.ABANDONED
    second_row = model.take_interval(1.0)
    assert second_row.to_metrics() == {
        "login_attempts": 0, "login_started": 0, "login_completed": 0, "login_busy": 0, "login_abandoned": 1,
        "login_abandoned_in_service": 0, "login_queue_depth": 0, "login_queue_max": 1, "login_in_service": 0,
        "login_oldest_wait_ms": 0.0, "login_wait_p50_ms": None, "login_wait_p99_ms": None,
        "login_wait_max_ms": None, "login_latency_p50_ms": None, "login_latency_p99_ms": None,
    }
    assert model.take_interval(2.0).queue_max == 0


@pytest.mark.parametrize(("values", "p", "expected"), [
    ([], 50, None), ([7.0], 99, 7.0), ([3.0, 1.0, 2.0], 50, 2.0), ([1.0, 2.0], 50, 1.0),
    (list(map(float, range(1, 101))), 99, 99.0), (list(map(float, range(1, 101))), 100, 100.0),
])
def test_percentile_is_nearest_rank(values: list[float], p: float, expected: float | None) -> None:
    assert percentile(values, p) == expected


def test_profile_rate() -> None:
    cost = LoginCostSettings.from_profile("15k-active-standby", workers=4, queue_limit=10)
    assert (cost.rate_per_s, cost.workers, cost.queue_limit, cost.burst) == (6.0, 4, 10, 1)
    with pytest.raises(ParameterError):
        LoginCostSettings.from_profile("huge")


def test_defaults_cost_nothing() -> None:
    assert LoginCostSettings() == LoginCostSettings(rate_per_s=None, burst=1, workers=None, service_ms=0.0,
                                                    queue_limit=None)
    model = LoginCostModel()
    tickets = [model.arrive(5.0) for _ in range(1000)]
    assert {(t.kind, t.started_s, t.done_s) for t in tickets} == {(TicketKind.STARTED, 5.0, 5.0)}
    assert model.next_start_at() is None


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"rate_per_s": 0}, "login_rate"), ({"rate_per_s": -1}, "login_rate"), ({"rate_per_s": math.inf}, "login_rate"),
    ({"rate_per_s": True}, "login_rate"), ({"burst": 0}, "login_burst"), ({"burst": 1.5}, "login_burst"),
    ({"workers": 0}, "login_workers"), ({"workers": 2.0}, "login_workers"), ({"service_ms": -1}, "login_service_ms"),
    ({"service_ms": math.nan}, "login_service_ms"), ({"queue_limit": -1}, "login_queue"),
    ({"queue_limit": True}, "login_queue"),
])
def test_settings_checked(kwargs: dict[str, object], name: str) -> None:
    with pytest.raises(ParameterError) as info:
        LoginCostSettings(**kwargs)  # type: ignore[arg-type]
    assert info.value.name == name
