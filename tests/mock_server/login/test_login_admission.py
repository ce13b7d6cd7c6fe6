"""The asyncio shell of the login model: waiting, service time, busy, and real abandonment, first on
the loop alone, then through the CPA app served like a node serves it, with a real aiohttp client
whose SOAP call times out."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from waiting import wait_until

from mock_server.cpa.app import CPA_METRICS, StaticCpaBackend, make_cpa_app, make_cpa_runner
from mock_server.cpa.metrics import CpaCounter
from mock_server.cpa.properties import NodeContact
from mock_server.login.admission import LoginAdmission
from mock_server.login.cost import LoginCostSettings as S
from mock_server.users import provision

TOL_S = 0.005  # loop timers may fire a clock tick early


async def timed_admit(admission: LoginAdmission, t0: float) -> tuple[bool, float]:
    ok = await admission.admit()
    return ok, asyncio.get_running_loop().time() - t0


async def test_free_by_default_answers_at_once() -> None:
    admission = LoginAdmission()
    results = await asyncio.gather(*(admission.admit() for _ in range(200)))
    assert results == [True] * 200
    c = admission.model.counters()
    assert (c.attempts, c.started, c.completed, c.queue_depth, c.in_service) == (200, 200, 200, 0, 0)
    assert admission._start_timer is None and admission._services == {}  # noqa: SLF001 (no timer left)


async def test_rate_spaces_the_answers() -> None:
    admission = LoginAdmission(S(rate_per_s=20))
    t0 = asyncio.get_running_loop().time()
    results = await asyncio.wait_for(asyncio.gather(*(timed_admit(admission, t0) for _ in range(5))), 5)
    times = [t for ok, t in results]
    assert all(ok for ok, _ in results)
    for k, t in enumerate(times):
        assert t >= k / 20 - TOL_S, times
    interval = admission.take_interval()
    assert (interval.started, interval.completed, interval.queue_max) == (5, 5, 4)
    assert interval.wait_max_ms == pytest.approx(200.0, abs=1.0)  # model time: the 5th started 4/20 s late


async def test_workers_hold_for_the_service_time() -> None:
    admission = LoginAdmission(S(workers=2, service_ms=100))
    t0 = asyncio.get_running_loop().time()
    tasks = [asyncio.create_task(timed_admit(admission, t0)) for _ in range(5)]
    await wait_until(lambda: admission.model.counters().attempts == 5)
    assert (admission.model.in_service, admission.queue_depth) == (2, 3)
    results = await asyncio.wait_for(asyncio.gather(*tasks), 5)
    for t, least in zip((t for _, t in results), (0.1, 0.1, 0.2, 0.2, 0.3)):
        assert t >= least - TOL_S, results
    assert admission.model.counters().completed == 5


async def test_refused_busy_at_once() -> None:
    admission = LoginAdmission(S(rate_per_s=1, queue_limit=0))
    t0 = asyncio.get_running_loop().time()
    assert await admission.admit() is True
    assert await admission.admit() is False
    assert asyncio.get_running_loop().time() - t0 < 0.5  # nobody waited for the next token
    c = admission.model.counters()
    assert (c.attempts, c.started, c.busy) == (2, 1, 1)


async def test_a_cancelled_waiter_leaves_the_queue_and_the_next_starts_earlier() -> None:
    admission = LoginAdmission(S(rate_per_s=2))  # a start every 0.5 s
    t0 = asyncio.get_running_loop().time()
    assert await admission.admit()
    b = asyncio.create_task(timed_admit(admission, t0))
    await wait_until(lambda: admission.queue_depth == 1)
    c = asyncio.create_task(timed_admit(admission, t0))
    await wait_until(lambda: admission.queue_depth == 2)
    b.cancel()
    with pytest.raises(asyncio.CancelledError):
        await b
    assert admission.queue_depth == 1 and admission.model.counters().abandoned == 1
    ok, answered_s = await asyncio.wait_for(c, 5)
    assert ok and 0.5 - TOL_S <= answered_s < 0.9  # B's slot at 0.5 s, not 1.0 s
    counters = admission.model.counters()
    assert (counters.attempts, counters.started, counters.abandoned, counters.completed) == (3, 2, 1, 2)


async def test_a_cancelled_login_in_service_keeps_its_worker() -> None:
    admission = LoginAdmission(S(workers=1, service_ms=300))
    t0 = asyncio.get_running_loop().time()
    a = asyncio.create_task(timed_admit(admission, t0))
    await wait_until(lambda: admission.model.in_service == 1)
    b = asyncio.create_task(timed_admit(admission, t0))
    await wait_until(lambda: admission.queue_depth == 1)
    a.cancel()
    with pytest.raises(asyncio.CancelledError):
        await a
    assert (admission.model.in_service, admission.model.counters().abandoned_in_service) == (1, 1)
    ok, answered_s = await asyncio.wait_for(b, 5)
    assert ok and answered_s >= 0.6 - TOL_S  # B started when A's service ended, at 0.3 s
    interval = admission.take_interval()
    assert (interval.completed, interval.abandoned_in_service, interval.abandoned) == (2, 1, 0)
    assert interval.latency_p50_ms == interval.latency_p99_ms and interval.latency_p50_ms is not None  # B only
    assert interval.wait_max_ms is not None and interval.wait_max_ms >= 250  # B waited for A's worker
    assert interval.latency_p50_ms == pytest.approx(interval.wait_max_ms + 300, abs=20)  # then served 300 ms


@contextlib.asynccontextmanager
async def served(app: web.Application) -> AsyncIterator[str]:
    """``app`` behind the runner a node uses, on 127.0.0.1 port 0; yields the CPA URL."""
    runner = make_cpa_runner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/EPASSoap/service/v80"
    finally:
        await runner.cleanup()


NODES = ["imp1.example.test", "imp2.example.test"]


def make_backend(admission: LoginAdmission) -> StaticCpaBackend:
    contacts = {name: NodeContact(name=name, xmpp_host="127.0.0.1", xmpp_port=5222 + i,
                                  cpa_url=f"http://127.0.0.1:{8081 + i}/EPASSoap/service/v80")
                for i, name in enumerate(NODES)}
    return StaticCpaBackend(node_name=NODES[0], domain="example.test", directory=provision(4, NODES, seed=7),
                            contacts=contacts, admission=admission)


def login_body(user: str) -> bytes:
    return (f'<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" xmlns:epas="urn:cisco:epas:soap">'
            f'<env:Body><epas:login><epas:username>{user}</epas:username><epas:password>pass-{user}'
            f'</epas:password></epas:login></env:Body></env:Envelope>').encode()


async def cpa_login(session: aiohttp.ClientSession, url: str, user: str, timeout_s: float = 10.0) -> tuple[int, bytes]:
    headers = {"Content-Type": 'application/soap+xml; charset=utf-8; action="urn:cisco:epas:soap/login"'}
    async with session.post(url, data=login_body(user), headers=headers,
                            timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
        return resp.status, await resp.read()


async def test_a_client_timeout_abandons_its_queued_cpa_login() -> None:
    admission = LoginAdmission(S(rate_per_s=1))  # a start every second
    app = make_cpa_app(make_backend(admission))
    loop = asyncio.get_running_loop()
    async with served(app) as url, aiohttp.ClientSession() as session:
        t0 = loop.time()
        assert (await cpa_login(session, url, "user00001"))[0] == 200  # takes the token
        timed_out = asyncio.create_task(cpa_login(session, url, "user00003", timeout_s=0.2))
        await wait_until(lambda: admission.queue_depth == 1, what="the first login queued")
        patient = asyncio.create_task(cpa_login(session, url, "user00001"))
        await wait_until(lambda: admission.queue_depth == 2, what="the second login queued")
        with pytest.raises(asyncio.TimeoutError):
            await timed_out
        await wait_until(lambda: admission.model.counters().abandoned == 1, what="the server saw the client go")
        assert admission.queue_depth == 1
        status, data = await asyncio.wait_for(patient, 5)
        answered_s = loop.time() - t0
    assert status == 200 and data.count(b"session-key") == 2, data
    assert 1.0 - TOL_S <= answered_s < 1.8  # the abandoned login's slot at 1 s, not 2 s
    c = admission.model.counters()
    assert (c.attempts, c.started, c.completed, c.abandoned, c.busy, c.queue_depth) == (3, 2, 2, 1, 0, 0)
    interval = admission.take_interval()
    assert interval.wait_max_ms is not None and 800.0 <= interval.wait_max_ms < 1000.0 + 1e3 * TOL_S  # not ~2 s
    totals = app[CPA_METRICS].totals
    assert (totals[CpaCounter.LOGIN_OK], totals[CpaCounter.LOGIN_FAILED], totals[CpaCounter.REQUESTS]) == (2, 0, 3)

