"""Login cost model: token bucket + bounded queue, on an explicit clock."""

from __future__ import annotations

import asyncio

import pytest

from mock_server.login_cost import AdmissionKind, LoginCostModel, LoginCostSettings
from mock_server.params import ParameterError


def test_storm_of_500_at_50_per_s_is_spaced_and_counted() -> None:
    model = LoginCostModel(LoginCostSettings(rate_per_s=50, burst=1, service_ms=20, queue_limit=200))
    now = 1000.0
    results = [model.admit(now) for _ in range(500)]
    accepted = [a for a in results if a.kind is not AdmissionKind.BUSY]
    assert [a.kind for a in results[:1]] == [AdmissionKind.STARTED]
    assert len(accepted) == 201 and sum(a.kind is AdmissionKind.QUEUED for a in results) == 200
    starts = [a.start_s for a in accepted]
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert gaps == pytest.approx([1 / 50] * 200, abs=1e-9)
    assert starts[-1] - now == pytest.approx(200 / 50)
    assert all(a.service_s == pytest.approx(0.020) for a in accepted)
    c = model.counters(now)
    assert (c.attempts, c.started, c.queued, c.busy, c.queue_depth) == (500, 1, 200, 299, 200)
    assert c.started + c.queued + c.busy == c.attempts and c.accepted == 201
    # half-way through the wave the queue has drained by half
    assert model.counters(now + 2.0).queue_depth == 100
    assert model.counters(now + 4.0).queue_depth == 0


def test_burst_starts_at_once_then_the_rate_applies() -> None:
    model = LoginCostModel(LoginCostSettings(rate_per_s=10, burst=5))
    results = [model.admit(0.0) for _ in range(8)]
    assert [r.kind for r in results] == [AdmissionKind.STARTED] * 5 + [AdmissionKind.QUEUED] * 3
    assert [r.start_s for r in results[5:]] == pytest.approx([0.1, 0.2, 0.3])
    # after a quiet second the bucket is full again
    assert all(model.admit(10.0).kind is AdmissionKind.STARTED for _ in range(5))
    assert model.admit(10.0).kind is AdmissionKind.QUEUED


def test_sustained_arrivals_below_the_rate_never_wait() -> None:
    model = LoginCostModel(LoginCostSettings(rate_per_s=50, queue_limit=0))
    assert all(model.admit(i * 0.021).kind is AdmissionKind.STARTED for i in range(100))
    assert model.counters(3.0).busy == 0


def test_zero_queue_rejects_anything_over_the_rate() -> None:
    model = LoginCostModel(LoginCostSettings(rate_per_s=1, queue_limit=0))
    assert [model.admit(0.0).kind for _ in range(3)] == [AdmissionKind.STARTED, AdmissionKind.BUSY, AdmissionKind.BUSY]
    assert model.admit(1.0).kind is AdmissionKind.STARTED


def test_unlimited_by_default() -> None:
    model = LoginCostModel()
    results = [model.admit(5.0) for _ in range(1000)]
    assert {r.kind for r in results} == {AdmissionKind.STARTED} and {r.wait_s for r in results} == {0.0}
    assert model.counters(5.0).started == 1000


def test_profile_rate() -> None:
    assert LoginCostSettings.from_profile("15k-active-standby").rate_per_s == 6.0
    with pytest.raises(ParameterError):
        LoginCostSettings.from_profile("huge")


@pytest.mark.parametrize("kwargs", [{"rate_per_s": 0}, {"rate_per_s": -1}, {"burst": 0}, {"burst": 1.5},
                                    {"service_ms": -1}, {"queue_limit": -1}, {"queue_limit": True}])
def test_settings_checked(kwargs: dict[str, object]) -> None:
    with pytest.raises(ParameterError):
        LoginCostSettings(**kwargs)  # type: ignore[arg-type]


async def test_asyncio_caller_waits_for_its_slot() -> None:
    loop = asyncio.get_running_loop()
    model = LoginCostModel(LoginCostSettings(rate_per_s=100, queue_limit=10))
    started: list[float] = []

    async def login() -> None:
        admission = model.admit(loop.time())
        await asyncio.sleep(admission.wait_s)
        started.append(loop.time())

    t0 = loop.time()
    await asyncio.wait_for(asyncio.gather(*(login() for _ in range(10))), timeout=5)
    assert len(started) == 10
    assert max(started) - t0 >= 0.09 - 0.005  # the 10th login started ~9/100 s later
