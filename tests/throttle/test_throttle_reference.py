"""The fast model and the event-driven reference agree client by client on the same drawn waits.

Each parameter set is also checked to exercise what it is named for (refusals, timeouts in the
queue and in service, second rounds, GAVE_UP), so that agreement is not agreement on nothing.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from throttle_helpers import fast_and_reference, shuffled_waits

from jabberemu.throttle import AttemptOutcome, ClientFate, ServerModel, Waits, WaveKind, WaveSpec

A = AttemptOutcome
#: name -> (serving node, other node or None, SOAP timeout s, outcomes that must occur at the serving node)
CASES: dict[str, tuple[ServerModel, ServerModel | None, float, set[AttemptOutcome]]] = {
    "unlimited": (ServerModel(), None, 5.0, {A.ANSWERED}),
    "unlimited-slow-service": (ServerModel(service_s=0.7), None, 5.0, {A.ANSWERED}),
    "rate-bound": (ServerModel(rate_per_s=12.0), None, 30.0, {A.ANSWERED}),
    "rate-bound-timeouts": (ServerModel(rate_per_s=9.0, burst=3), None, 2.5, {A.ANSWERED, A.TIMED_OUT_WAITING}),
    "worker-bound": (ServerModel(workers=3, service_s=0.4), None, 4.0,
                     {A.ANSWERED, A.TIMED_OUT_WAITING, A.TIMED_OUT_IN_SERVICE}),
    "queue-limited": (ServerModel(rate_per_s=10.0, queue_limit=5), None, 30.0, {A.ANSWERED, A.REFUSED_BUSY}),
    "no-queue": (ServerModel(rate_per_s=10.0, queue_limit=0), None, 30.0, {A.ANSWERED, A.REFUSED_BUSY}),
    "everything": (ServerModel(rate_per_s=12.0, burst=2, workers=2, service_s=0.3, queue_limit=12), None, 1.0,
                   {A.ANSWERED, A.REFUSED_BUSY, A.TIMED_OUT_WAITING, A.TIMED_OUT_IN_SERVICE}),
    "short-timeout-abandonment": (ServerModel(rate_per_s=6.0, service_s=0.5), None, 0.9,
                                  {A.ANSWERED, A.TIMED_OUT_WAITING, A.TIMED_OUT_IN_SERVICE}),
    "slow-other-node": (ServerModel(workers=1, service_s=0.2, queue_limit=3),
                        ServerModel(rate_per_s=4.0, service_s=0.5, queue_limit=10), 3.0,
                        {A.ANSWERED, A.REFUSED_BUSY}),
}

#: cases in which some client fails both rounds (with these seeds, in both kinds of wave)
GIVE_UP = {"queue-limited", "no-queue", "everything", "short-timeout-abandonment", "slow-other-node"}


@pytest.mark.parametrize("kind", list(WaveKind))
@pytest.mark.parametrize("name", list(CASES))
def test_fast_model_equals_reference(name: str, kind: WaveKind) -> None:
    serving, other, timeout_s, expected = CASES[name]
    wave = WaveSpec(clients=150, kind=kind, lower_s=2.0, upper_s=12.0, soap_timeout_s=timeout_s)
    waits = shuffled_waits(wave, replicas=4, seed=len(name))
    fast = fast_and_reference(wave, serving, waits, other)
    seen = {AttemptOutcome(int(c)) for c in np.unique(fast.serving.outcome)} - {A.NONE}
    assert expected <= seen
    failures = (fast.serving.outcome[0] >= A.REFUSED_BUSY).sum()
    assert (fast.serving.arrival_s[1] >= 0).sum() == failures  # every round-1 failure has a round 2
    if kind is WaveKind.FALLBACK:
        assert fast.other is not None
        assert (fast.other.arrival_s >= 0).sum() == (fast.serving.outcome >= A.REFUSED_BUSY).sum()
    if expected != {A.ANSWERED}:
        assert (fast.fate == ClientFate.RECOVERED_ROUND_2).any()
        if name in GIVE_UP:
            assert (fast.fate == ClientFate.GAVE_UP).any()


@pytest.mark.parametrize("kind", list(WaveKind))
def test_simultaneous_arrivals_tie_order(kind: WaveKind) -> None:
    """upper == lower: every client at the same instant; round-2 waits equal too, so refusals at one
    instant come back at one instant. Binary fractions keep both simulators' arithmetic exact."""
    wave = WaveSpec(clients=40, kind=kind, lower_s=2.0, upper_s=2.0, soap_timeout_s=1.0)
    waits = Waits(round1_s=np.full((1, 40), 2.0), round2_s=np.full((1, 40), 2.0))
    fast = fast_and_reference(wave, ServerModel(rate_per_s=4.0, queue_limit=6), waits,
                              ServerModel(rate_per_s=8.0, queue_limit=4))
    starts = fast.serving.start_s[0, 0]
    # k-th login of the burst starts at 2 + k/4; client 0..3 at 2, 2.25, 2.5, 2.75; the one due at
    # 3.0 = its deadline has given up first (ties: give-ups before starts)
    np.testing.assert_array_equal(starts[:4], [2.0, 2.25, 2.5, 2.75])
    assert fast.serving.outcome[0, 0, 4] == A.TIMED_OUT_WAITING
    assert (fast.serving.outcome[0, 0, 7:] == A.REFUSED_BUSY).all()  # 1 started + 6 waiting, then full


def test_mixed_random_parameters_equal_reference() -> None:
    """Many small random parameter sets, both kinds."""
    rng = np.random.default_rng(2024)
    for trial in range(12):
        kind = list(WaveKind)[trial % 2]
        serving = ServerModel(rate_per_s=[None, float(rng.uniform(3, 20))][trial % 3 != 0],
                              burst=int(rng.integers(1, 4)), workers=[None, int(rng.integers(1, 4))][trial % 2],
                              service_s=float(rng.choice([0.0, rng.uniform(0.05, 0.6)])),
                              queue_limit=[None, int(rng.integers(0, 12))][trial % 4 < 2])
        other = ServerModel(rate_per_s=float(rng.uniform(2, 10)), service_s=0.1, queue_limit=int(rng.integers(0, 6)))
        lower = float(rng.uniform(0.5, 4))
        wave = WaveSpec(clients=int(rng.integers(20, 200)), kind=kind, lower_s=lower,
                        upper_s=lower + float(rng.uniform(0, 10)), soap_timeout_s=float(rng.uniform(0.3, 4)))
        fast_and_reference(wave, serving, shuffled_waits(wave, replicas=2, seed=trial), other)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(kind=st.sampled_from(list(WaveKind)),
       rate=st.one_of(st.none(), st.floats(1.0, 40.0)), burst=st.integers(1, 4),
       workers=st.one_of(st.none(), st.integers(1, 4)), service_s=st.floats(0.0, 0.8),
       queue=st.one_of(st.none(), st.integers(0, 15)),
       other_rate=st.floats(1.0, 20.0), other_queue=st.one_of(st.none(), st.integers(0, 8)),
       clients=st.integers(1, 120), lower_s=st.floats(0.2, 5.0), window_s=st.floats(0.1, 15.0),
       timeout_s=st.floats(0.2, 6.0), seed=st.integers(0, 2**32 - 1))
def test_property_fast_model_equals_reference(kind: WaveKind, rate: float | None, burst: int, workers: int | None,
                                              service_s: float, queue: int | None, other_rate: float,
                                              other_queue: int | None, clients: int, lower_s: float, window_s: float,
                                              timeout_s: float, seed: int) -> None:
    """Random parameter sets (hypothesis, reproducible): the two simulators agree client by client."""
    serving = ServerModel(rate_per_s=rate, burst=burst, workers=workers, service_s=service_s, queue_limit=queue)
    other = ServerModel(rate_per_s=other_rate, service_s=service_s / 2, queue_limit=other_queue)
    wave = WaveSpec(clients=clients, kind=kind, lower_s=lower_s, upper_s=lower_s + window_s, soap_timeout_s=timeout_s)
    fast_and_reference(wave, serving, shuffled_waits(wave, replicas=2, seed=seed), other)


_DYADIC = st.sampled_from([0.0, 0.25, 0.5, 1.0])


@settings(max_examples=80, deadline=None, derandomize=True)
@given(kind=st.sampled_from(list(WaveKind)), rate=st.sampled_from([None, 1.0, 2.0, 4.0, 8.0]),
       burst=st.integers(1, 3), workers=st.sampled_from([None, 1, 2]), service_s=_DYADIC,
       queue=st.sampled_from([None, 0, 1, 3]), other_rate=st.sampled_from([1.0, 2.0, 4.0]),
       other_queue=st.sampled_from([None, 0, 2]), clients=st.integers(1, 30), lower_s=st.sampled_from([0.5, 1.0, 2.0]),
       timeout_s=st.sampled_from([0.25, 0.5, 1.0, 2.0]),
       round1=st.lists(_DYADIC, min_size=30, max_size=30), round2=st.lists(_DYADIC, min_size=30, max_size=30))
def test_property_ties_on_dyadic_times(kind: WaveKind, rate: float | None, burst: int, workers: int | None,
                                       service_s: float, queue: int | None, other_rate: float,
                                       other_queue: int | None, clients: int, lower_s: float, timeout_s: float,
                                       round1: list[float], round2: list[float]) -> None:
    """Waits, rates and times on a grid of binary fractions, so both simulators compute exactly and
    simultaneous events abound: arrivals together, starts on deadlines, answers on deadlines. The
    tie order (answers, give-ups, starts, arrivals; arrivals by round then client) must agree."""
    wave = WaveSpec(clients=clients, kind=kind, lower_s=lower_s, upper_s=lower_s + 1.0, soap_timeout_s=timeout_s)
    waits = Waits(round1_s=np.array([[lower_s + x for x in round1[:clients]]]),
                  round2_s=np.array([[lower_s + x for x in round2[:clients]]]))
    fast_and_reference(wave, ServerModel(rate_per_s=rate, burst=burst, workers=workers, service_s=service_s,
                                         queue_limit=queue),
                       waits, ServerModel(rate_per_s=other_rate, service_s=service_s, queue_limit=other_queue))
