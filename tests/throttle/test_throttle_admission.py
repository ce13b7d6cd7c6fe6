"""One node's admission (docs/login-model.md §1): the consequences the spec pins, on NodeQueue."""

from __future__ import annotations

import math

import numpy as np
import pytest

from jabberemu.throttle import AttemptOutcome, ModelInputError, NodeQueue, ServerModel

A = AttemptOutcome


def _burst(n: int, at_s: float = 1.0, replicas: int = 2) -> np.ndarray:
    return np.full((n, replicas), at_s)


def test_burst_starts_k_over_r() -> None:
    """The k-th login of a burst of N at once (B = 1, C unbounded) starts at k / R."""
    adm = NodeQueue(ServerModel(rate_per_s=8.0), replicas=2, soap_timeout_s=1e6).admit(_burst(50))
    np.testing.assert_allclose(adm.start_s[:, 0], 1.0 + np.arange(50) / 8.0, rtol=0, atol=1e-12)
    assert (adm.outcome == A.ANSWERED).all()


def test_burst_tokens_start_back_to_back() -> None:
    """B tokens: the first B start at once, then one every 1/R."""
    adm = NodeQueue(ServerModel(rate_per_s=4.0, burst=5), replicas=1, soap_timeout_s=1e6).admit(_burst(12, 3.0, 1))
    expected = [3.0] * 5 + [3.0 + k / 4.0 for k in range(1, 8)]
    np.testing.assert_allclose(adm.start_s[:, 0], expected, rtol=0, atol=1e-12)


def _random_stream(seed: int, n: int = 400, replicas: int = 3, span_s: float = 20.0) -> np.ndarray:
    return np.sort(np.random.default_rng(seed).random((n, replicas)) * span_s, axis=0)


@pytest.mark.parametrize("server", [ServerModel(rate_per_s=7.0, burst=3),
                                    ServerModel(rate_per_s=30.0, burst=2, workers=2, service_s=0.25),
                                    ServerModel(workers=3, service_s=0.5, queue_limit=4)])
def test_started_in_any_window_within_bounds(server: ServerModel) -> None:
    """Starts in any window of length w never exceed B + R w, nor C ceil(w / S) + C."""
    adm = NodeQueue(server, replicas=3, soap_timeout_s=2.0).admit(_random_stream(7))
    for r in range(3):
        starts = np.sort(adm.start_s[:, r][~np.isnan(adm.start_s[:, r])])
        assert starts.size > 50
        for w in (0.1, 0.5, 1.0, 3.0):
            most = int((np.searchsorted(starts, starts + w, side="right") - np.arange(starts.size)).max())
            if server.rate_per_s is not None:
                assert most <= server.burst + server.rate_per_s * w + 1e-9
            if server.workers is not None:
                assert most <= server.workers * math.ceil(w / server.service_s) + server.workers


def test_starts_are_fifo_and_in_service_bounded() -> None:
    server = ServerModel(rate_per_s=25.0, workers=2, service_s=0.2)
    adm = NodeQueue(server, replicas=3, soap_timeout_s=1.5).admit(_random_stream(3))
    for r in range(3):
        s = adm.start_s[:, r]
        started = s[~np.isnan(s)]
        assert (np.diff(started) >= 0).all()  # nobody overtakes: starts in arrival order
        ends = started + server.service_s
        busy = (started[:, None] <= started[None, :]) & (started[None, :] < ends[:, None])
        assert busy.sum(axis=0).max() <= 2  # at most C in service at every start instant


def test_unbounded_queue_without_timeout_serves_everyone() -> None:
    adm = NodeQueue(ServerModel(rate_per_s=3.0, workers=1, service_s=0.1), replicas=3,
                    soap_timeout_s=1e9).admit(_random_stream(5))
    assert (adm.outcome == A.ANSWERED).all()


def test_queue_limit_refuses_at_arrival_and_zero_limit_never_queues() -> None:
    a = _burst(10, 2.0, 1)
    adm = NodeQueue(ServerModel(rate_per_s=1.0, queue_limit=3), replicas=1, soap_timeout_s=100.0).admit(a)
    assert adm.outcome[:, 0].tolist() == [A.ANSWERED] * 4 + [A.REFUSED_BUSY] * 6  # 1 starts, 3 wait
    np.testing.assert_array_equal(adm.start_s[:4, 0], [2.0, 3.0, 4.0, 5.0])
    adm0 = NodeQueue(ServerModel(rate_per_s=1.0, queue_limit=0), replicas=1, soap_timeout_s=100.0).admit(a)
    assert adm0.outcome[:, 0].tolist() == [A.ANSWERED] + [A.REFUSED_BUSY] * 9


def test_abandoned_logins_consume_nothing_and_in_service_ones_hold_the_worker() -> None:
    # one worker, S = 1, T = 1.5: 0 starts at 0 (answered at 1); 1 starts at 1, would answer at 2 >
    # 0.1 + 1.5: times out in service but holds the worker until 2; 2 (deadline 1.7) gives up
    # waiting; 3 arrives at 1.9 and starts at 2 when the worker is free, answered at 3 <= 3.4.
    a = np.array([[0.0], [0.1], [0.2], [1.9]])
    adm = NodeQueue(ServerModel(workers=1, service_s=1.0), replicas=1, soap_timeout_s=1.5).admit(a)
    assert adm.outcome[:, 0].tolist() == [A.ANSWERED, A.TIMED_OUT_IN_SERVICE, A.TIMED_OUT_WAITING, A.ANSWERED]
    np.testing.assert_array_equal(adm.start_s[:, 0], [0.0, 1.0, np.nan, 2.0])
    np.testing.assert_array_equal(adm.leave_s[:, 0], [0.0, 1.0, 1.7, 2.0])


def test_batches_continue_the_same_queue() -> None:
    """Feeding the stream in pieces gives exactly what feeding it at once gives."""
    server = ServerModel(rate_per_s=9.0, burst=2, workers=3, service_s=0.3, queue_limit=6)
    a = _random_stream(11)
    whole = NodeQueue(server, replicas=3, soap_timeout_s=1.2)
    one = whole.admit(a)
    pieces = NodeQueue(server, replicas=3, soap_timeout_s=1.2)
    cut = [0, 37, 38, 200, 400]
    parts = [pieces.admit(a[lo:hi]) for lo, hi in zip(cut, cut[1:])]
    np.testing.assert_array_equal(np.concatenate([p.outcome for p in parts]), one.outcome)
    np.testing.assert_array_equal(np.concatenate([p.start_s for p in parts]), one.start_s)
    np.testing.assert_array_equal(pieces.queue_peak, whole.queue_peak)
    assert (whole.queue_peak <= 6).all() and (whole.queue_peak == 6).any()


def test_queue_peak_is_the_most_waiting_at_once() -> None:
    a = _random_stream(13, n=300, replicas=4, span_s=10.0)
    q = NodeQueue(ServerModel(rate_per_s=20.0), replicas=4, soap_timeout_s=3.0)
    adm = q.admit(a)
    for r in range(4):
        acc = ~np.isnan(adm.leave_s[:, r])
        arr, leave = a[acc, r], adm.leave_s[acc, r]
        depth = [int(((arr[: k + 1] <= arr[k]) & (leave[: k + 1] > arr[k])).sum()) for k in range(arr.size)]
        assert q.queue_peak[r] == max(depth)


def test_padding_rows_are_ignored() -> None:
    a = np.array([[1.0, 1.0], [2.0, np.inf], [np.inf, np.inf]])
    adm = NodeQueue(ServerModel(rate_per_s=1.0), replicas=2, soap_timeout_s=10.0).admit(a)
    assert adm.outcome.tolist() == [[A.ANSWERED, A.ANSWERED], [A.ANSWERED, A.NONE], [A.NONE, A.NONE]]


@pytest.mark.parametrize("bad", [np.array([[2.0], [1.0]]), np.array([[np.nan]]), np.array([[np.inf], [1.0]]),
                                 np.ones((2, 3))])
def test_bad_batches_are_refused(bad: np.ndarray) -> None:
    with pytest.raises(ModelInputError):
        NodeQueue(ServerModel(), replicas=1, soap_timeout_s=1.0).admit(bad)


def test_a_later_batch_may_not_go_back_in_time() -> None:
    q = NodeQueue(ServerModel(), replicas=1, soap_timeout_s=1.0)
    q.admit(np.array([[5.0]]))
    with pytest.raises(ModelInputError):
        q.admit(np.array([[4.0]]))
