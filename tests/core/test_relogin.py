"""Re-login draws: reproducible per (run seed, user), uniform over [lower, upper]; target order."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest
from core_helpers import NODE_A, NODE_B
from scipy import stats

from jabberemu.config import ReloginLimits
from jabberemu.core.relogin import draw_wait_s, order_targets, rng_for, seed_for


def test_seed_for_is_stable_across_processes() -> None:
    here = seed_for(42, "user00001")
    code = "from jabberemu.core.relogin import seed_for; print(seed_for(42, 'user00001'))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": "123"})
    assert int(other.stdout) == here
    assert 0 <= here < 2**64
    assert seed_for(42, "user00002") != here and seed_for(43, "user00001") != here


def test_same_seed_and_user_same_waits() -> None:
    limits = ReloginLimits(lower_s=5, upper_s=25)
    a = [draw_wait_s(rng_for(7, "user00009"), limits) for _ in range(3)]
    r1, r2 = rng_for(7, "user00009"), rng_for(7, "user00009")
    assert [draw_wait_s(r1, limits) for _ in range(50)] == [draw_wait_s(r2, limits) for _ in range(50)]
    assert len(set(a)) == 1  # a fresh rng per call: the first draw each time


def test_10000_draws_are_uniform_over_the_window() -> None:
    limits = ReloginLimits(lower_s=120, upper_s=537)
    rng = random.Random(2024)
    draws = [draw_wait_s(rng, limits) for _ in range(10_000)]
    assert min(draws) >= 120 and max(draws) <= 537
    assert min(draws) < 120 + 417 * 0.01 and max(draws) > 537 - 417 * 0.01  # spans the window
    buckets = [0] * 10
    for d in draws:
        buckets[min(int((d - 120) / 41.7), 9)] += 1
    # expected 1000 each; binomial sd ~30, so 850..1150 is a 5-sigma band
    assert all(850 <= b <= 1150 for b in buckets), buckets
    ks = stats.kstest(draws, stats.uniform(loc=120, scale=417).cdf)
    assert ks.pvalue > 0.01, ks


def test_waits_across_clients_are_uniform_too() -> None:
    limits = ReloginLimits(lower_s=5, upper_s=25)
    draws = [draw_wait_s(rng_for(1, f"user{i:05d}"), limits) for i in range(2000)]
    assert stats.kstest(draws, stats.uniform(loc=5, scale=20).cdf).pvalue > 0.01


def test_empty_window_and_bounds() -> None:
    assert draw_wait_s(random.Random(1), ReloginLimits(lower_s=3, upper_s=3)) == 3.0

    class Edge(random.Random):
        def uniform(self, a: float, b: float) -> float:
            return b + 1e-9  # what float rounding may do

    assert draw_wait_s(Edge(), ReloginLimits(lower_s=1, upper_s=2)) == 2.0


@pytest.mark.parametrize(
    ("secondary", "preferred", "expected"),
    [
        (NODE_B, None, (NODE_A, NODE_B)),
        (NODE_B, NODE_B.name, (NODE_B, NODE_A)),
        (NODE_B, NODE_A.name, (NODE_A, NODE_B)),
        (NODE_B, "elsewhere", (NODE_A, NODE_B)),
        (None, NODE_B.name, (NODE_A, NODE_A)),
    ],
)
def test_order_targets(secondary, preferred, expected) -> None:  # type: ignore[no-untyped-def]
    assert order_targets(NODE_A, secondary, preferred) == expected
