"""Shared helpers of the throttle tests: unsorted waits, and a client-by-client comparison of two
simulations of the same waits (fast model vs reference)."""

from __future__ import annotations

import numpy as np

from jabberemu.throttle import (
    ClientOutcomes,
    ServerModel,
    WaveSpec,
    Waits,
    draw_waits,
    reference_clients,
    simulate_clients,
)

#: Times of the two simulators may differ by float rounding (token level vs theoretical arrival
#: time); nothing else may differ.
TIME_TOLERANCE_S = 1e-9


def shuffled_waits(wave: WaveSpec, *, replicas: int, seed: int) -> Waits:
    """Waits as :func:`draw_waits` draws them, with each replica's round-1 waits in random client
    order (the fast model must not rely on them arriving sorted)."""
    waits = draw_waits(wave, replicas=replicas, seed=seed)
    rng = np.random.default_rng(seed + 1_000_003)
    order = np.argsort(rng.random(waits.round1_s.shape), axis=1)
    return Waits(round1_s=np.take_along_axis(waits.round1_s, order, axis=1), round2_s=waits.round2_s)


def reference_of(wave: WaveSpec, serving: ServerModel, waits: Waits, replica: int,
                 other: ServerModel | None = None) -> ClientOutcomes:
    return reference_clients(wave, serving, waits.round1_s[replica].tolist(), waits.round2_s[replica].tolist(),
                             other=other)


def assert_same_clients(fast: ClientOutcomes, replica: int, ref: ClientOutcomes) -> None:
    """Every attempt, outcome, start, recovery, fate and queue peak of one replica agree."""
    pairs = [("serving", fast.serving, ref.serving)]
    if fast.other is not None or ref.other is not None:
        assert fast.other is not None and ref.other is not None
        pairs.append(("other", fast.other, ref.other))
    for name, f, g in pairs:
        np.testing.assert_array_equal(f.outcome[:, replica], g.outcome[:, 0], err_msg=f"{name} outcome")
        for field in ("arrival_s", "start_s"):
            a, b = getattr(f, field)[:, replica], getattr(g, field)[:, 0]
            np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=f"{name} {field} presence")
            np.testing.assert_allclose(a, b, rtol=0, atol=TIME_TOLERANCE_S, err_msg=f"{name} {field}")
        assert f.queue_peak[replica] == g.queue_peak[0], name
    np.testing.assert_array_equal(fast.fate[replica], ref.fate[0], err_msg="fate")
    np.testing.assert_allclose(fast.recovery_s[replica], ref.recovery_s[0], rtol=0, atol=TIME_TOLERANCE_S)


def fast_and_reference(wave: WaveSpec, serving: ServerModel, waits: Waits,
                       other: ServerModel | None = None) -> ClientOutcomes:
    """Run the fast model on ``waits``, check every replica against the reference, return it."""
    fast = simulate_clients(wave, serving, waits, other=other)
    for replica in range(waits.replicas):
        assert_same_clients(fast, replica, reference_of(wave, serving, waits, replica, other))
    return fast
