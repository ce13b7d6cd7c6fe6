"""The login model on the real pair (docs/login-model.md §1).

``--login-rate 50 --login-queue 100`` and 500 SOAP logins at once: the accepted logins come out at
50/s (within 10%), the rest get the "server busy" fault, and the rows of ``/api/metrics`` add up to
the attempts. ``--login-rate 1``: a client whose SOAP call times out while its login waits abandons
it (the node cancels the handler), and the login behind it takes its slot."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import aiohttp
import pytest
from pair_support import FAST_PARAMS, N1, cpa_url, fast_config, home_users, soap, started_pair

from mock_server.login.cost import LoginCostSettings
from mock_server.pair.runner import MockPair
from mock_server.pair_config import LoginCostConfig, PairConfig
from mock_server.__main__ import build_parser, config_from_args

ATTEMPTS = 500
RATE_PER_S = 50.0
LOGIN_KEYS = {
    "login_attempts", "login_started", "login_completed", "login_busy", "login_abandoned",
    "login_abandoned_in_service", "login_queue_depth", "login_queue_max", "login_in_service", "login_oldest_wait_ms",
    "login_wait_p50_ms", "login_wait_p99_ms", "login_wait_max_ms", "login_latency_p50_ms", "login_latency_p99_ms",
}
COUNTS = ("login_attempts", "login_started", "login_completed", "login_busy", "login_abandoned",
          "login_abandoned_in_service", "cpa_logins_ok", "cpa_logins_busy", "cpa_logins_failed")


async def rows_of(pair: MockPair, node: str) -> list[dict[str, Any]]:
    return [r for r in (await pair.admin("GET", "/api/metrics"))["metrics"] if r["node"] == node]


def totals(rows: list[dict[str, Any]]) -> dict[str, int]:
    return {k: sum(int(r.get(k, 0)) for r in rows) for k in COUNTS}


async def settled_rows(pair: MockPair, node: str, done: Any, timeout_s: float = 5.0) -> list[dict[str, Any]]:
    """The node's rows once ``done(totals)`` holds (rows come once a second)."""
    deadline = time.monotonic() + timeout_s
    while True:
        rows = await rows_of(pair, node)
        if done(totals(rows)):
            return rows
        assert time.monotonic() < deadline, totals(rows)
        await asyncio.sleep(0.2)


async def test_login_rate_50_with_500_logins_at_once() -> None:
    args = build_parser().parse_args([
        "--users", str(ATTEMPTS), "--assignment", "active-standby",  # every user homed on imp1
        "--login-rate", "50", "--login-queue", "100",
    ])
    config = dataclasses.replace(config_from_args(args), params=FAST_PARAMS)
    assert config.login_cost[0] == LoginCostConfig(rate_per_s=RATE_PER_S, queue_limit=100)
    async with started_pair(config) as pair:
        url = cpa_url(pair, N1)
        done: list[tuple[float, str | None]] = []

        async def one(session: aiohttp.ClientSession, i: int) -> None:
            result = await soap(session, url, "login", user=f"user{i:05d}")
            done.append((time.monotonic(), result.fault if result.fault else ("ok" if result.value else result.body)))

        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            await asyncio.wait_for(asyncio.gather(*(one(session, i) for i in range(1, ATTEMPTS + 1))), 40)

        ok = sorted(t for t, what in done if what == "ok")
        busy = [t for t, what in done if what == "server-busy"]
        assert len(ok) + len(busy) == ATTEMPTS, {what for _, what in done}
        assert len(ok) >= 101 and len(busy) >= 250  # 1 at once + a queue of 100 (+ those that left it meanwhile)
        # the rate over the second half of the accepted logins, when this client has long sent
        # its 500 requests (while it sends, its own loop delays the first answers it reads)
        half = len(ok) // 2
        rate = (len(ok) - 1 - half) / (ok[-1] - ok[half])
        assert abs(rate - RATE_PER_S) <= 0.1 * RATE_PER_S, f"accepted {rate:.1f} logins/s"
        assert ok[-1] - ok[0] >= (len(ok) - 1) / RATE_PER_S * 0.9  # and never faster overall

        rows = await settled_rows(pair, N1, lambda t: t["login_completed"] + t["login_busy"] == ATTEMPTS)
        t = totals(rows)
        assert t["login_attempts"] == ATTEMPTS
        assert t["login_started"] == t["login_completed"] == len(ok) == t["cpa_logins_ok"]
        assert t["login_busy"] == len(busy) == t["cpa_logins_busy"]
        assert (t["login_abandoned"], t["login_abandoned_in_service"], t["cpa_logins_failed"]) == (0, 0, 0)
        assert all(LOGIN_KEYS <= set(r) and not {k for k in r if k.startswith("admission_")} for r in rows)
        # refused busy only when the queue was full: it held exactly 100 at some point
        assert max(r["login_queue_max"] for r in rows) == 100
        # nobody waited longer than 100 starts at 50/s
        waits = [r["login_wait_max_ms"] for r in rows if r["login_wait_max_ms"] is not None]
        assert 0 < max(waits) <= 100 / RATE_PER_S * 1000 + 50
        assert rows[-1]["login_queue_depth"] == rows[-1]["login_in_service"] == 0


async def queue_depth(pair: MockPair, node: str) -> int:
    status = await pair.admin("GET", "/api/status")
    return int(next(n for n in status["nodes"] if n["name"] == node)["login_queue_depth"])


async def test_a_soap_timeout_abandons_the_queued_login() -> None:
    cost = LoginCostConfig(rate_per_s=1.0)  # a start every second
    config = fast_config(login_cost=(cost, cost))
    first, gone, patient_user = home_users(config)[N1][:3]
    async with started_pair(config) as pair, aiohttp.ClientSession() as http:
        url = cpa_url(pair, N1)
        t0 = time.monotonic()
        assert (await soap(http, url, "login", user=first)).value  # takes the token
        gives_up = asyncio.create_task(soap(http, url, "login", user=gone, timeout_s=0.4))
        await wait_for_async(lambda: queue_depth(pair, N1), 1)
        patient = asyncio.create_task(soap(http, url, "login", user=patient_user))
        await wait_for_async(lambda: queue_depth(pair, N1), 2)
        with pytest.raises(asyncio.TimeoutError):
            await gives_up
        result = await asyncio.wait_for(patient, 10)
        answered_s = time.monotonic() - t0
        assert result.value, result.body
        assert answered_s < 1.8  # the abandoned login's slot at ~1 s, not 2 s
        rows = await settled_rows(pair, N1, lambda t: t["login_completed"] == 2 and t["login_abandoned"] == 1)
        t = totals(rows)
        assert (t["login_attempts"], t["login_started"], t["login_busy"], t["cpa_logins_ok"]) == (3, 2, 0, 2)
        assert t["login_abandoned_in_service"] == 0


async def wait_for_async(read: Any, want: int, timeout_s: float = 5.0) -> None:
    """Poll the awaitable reading ``read()`` until it equals ``want``."""
    deadline = time.monotonic() + timeout_s
    while (got := await read()) != want:
        assert time.monotonic() < deadline, f"read {got}, want {want}"
        await asyncio.sleep(0.01)


def test_login_options() -> None:
    parse = build_parser().parse_args
    config = config_from_args(parse(["--login-workers", "4,2", "--login-service-ms", "250", "--login-burst", "5",
                                     "--login-profile", "25k"]))
    assert config.login_cost == (LoginCostConfig(rate_per_s=8.5, burst=5, workers=4, service_ms=250.0),
                                 LoginCostConfig(rate_per_s=8.5, burst=5, workers=2, service_ms=250.0))
    assert PairConfig.from_dict(config.to_dict()) == config  # what the node processes receive
    assert config.login_cost[1].settings() == LoginCostSettings(rate_per_s=8.5, burst=5, workers=2, service_ms=250.0)
    free = config_from_args(parse([])).login_cost
    assert free == (LoginCostConfig(), LoginCostConfig())
    assert (free[0].rate_per_s, free[0].workers, free[0].service_ms, free[0].queue_limit) == (None, None, 0.0, None)
    assert config_from_args(parse(["--login-queue", "0"])).login_cost[0].queue_limit == 0
    for bad in (["--login-workers", "0"], ["--login-queue", "-1"], ["--login-burst", "0"]):
        with pytest.raises(ValueError):
            config_from_args(parse(bad))
