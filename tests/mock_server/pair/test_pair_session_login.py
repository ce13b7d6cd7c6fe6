"""The session login (CPA ``login`` with the one-time password) on the real pair: the peer knows an
OTP through Login Datastore replication, unless replication is cut (``replicate_otp=False``); a node
with stopped services answers at once and queues nothing."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest
from pair_support import N1, N2, cpa_url, fast_config, home_users, soap, soap_login_otp, started_pair

from mock_server.pair.runner import MockPair
from mock_server.pair_config import LoginCostConfig


async def totals(pair: MockPair, node: str, keys: tuple[str, ...]) -> dict[str, int]:
    rows = [r for r in (await pair.admin("GET", "/api/metrics"))["metrics"] if r["node"] == node]
    return {k: sum(int(r.get(k, 0)) for r in rows) for k in keys}


async def settled(pair: MockPair, node: str, want: dict[str, int], timeout_s: float = 5.0) -> None:
    """Wait until the node's metrics rows add up to ``want`` (rows come once a second)."""
    deadline = time.monotonic() + timeout_s
    while (got := await totals(pair, node, tuple(want))) != want:
        assert time.monotonic() < deadline, got
        await asyncio.sleep(0.2)


@pytest.mark.parametrize("replicate", [True, False], ids=["replicated", "replication-cut"])
async def test_session_login_on_either_node(replicate: bool) -> None:
    config = fast_config(replicate_otp=replicate)
    user = home_users(config)[N1][0]
    async with started_pair(config) as pair, aiohttp.ClientSession() as http:
        otp = await soap_login_otp(http, cpa_url(pair, N1), user)
        home = await soap(http, cpa_url(pair, N1), "login", user=user, otp=otp)
        assert home.status == 200 and home.value, home.body
        assert (await soap(http, cpa_url(pair, N1), "login", user=user, otp=otp + "x")).fault == "bad-onetime-password"
        if replicate:  # imp2 knows the OTP but does not serve the user while imp1 does
            await wait_for_fault(http, cpa_url(pair, N2), user, otp, "not-served-here")
        else:
            assert (await soap(http, cpa_url(pair, N2), "login", user=user, otp=otp)).fault == "bad-onetime-password"
        await settled(pair, N1, {"cpa_logins_ok": 1, "cpa_session_logins_ok": 1, "cpa_session_logins_refused": 1,
                                 "login_attempts": 3, "login_completed": 3})
        await settled(pair, N2, {"cpa_logins_failed": 1 if replicate else 0, "login_attempts": 1,
                                 "cpa_session_logins_refused": 0 if replicate else 1})


async def wait_for_fault(http: aiohttp.ClientSession, url: str, user: str, otp: str, fault: str) -> None:
    """The first answer may come before the replication frame did; then the one asked for."""
    deadline = time.monotonic() + 5
    while (got := (await soap(http, url, "login", user=user, otp=otp)).fault) != fault:
        assert got == "bad-onetime-password" and time.monotonic() < deadline, got


async def test_stopped_services_answer_before_admission() -> None:
    cost = LoginCostConfig(rate_per_s=1.0, queue_limit=0)
    config = fast_config(login_cost=(cost, cost), params=("critical_service_delay_s=60",))
    user = home_users(config)[N1][0]
    async with started_pair(config) as pair, aiohttp.ClientSession() as http:
        otp = await soap_login_otp(http, cpa_url(pair, N1), user)  # takes imp1's token
        await pair.admin("POST", f"/api/nodes/{N1}/services/xcp-router/stop")
        results: list[Any] = [await soap(http, cpa_url(pair, N1), "login", user=user, otp=otp) for _ in range(3)]
        assert [r.fault for r in results] == ["services-stopped"] * 3  # not server-busy: never admitted
        await settled(pair, N1, {"login_attempts": 1, "login_busy": 0, "cpa_logins_failed": 3})
