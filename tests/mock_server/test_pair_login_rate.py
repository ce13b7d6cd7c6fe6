"""The login cost model on the real pair: ``--login-rate 50`` and 500 SOAP logins at once. The
accepted logins come out at 50/s (within 10%), the rest get the "server busy" fault, and the
per-second rows of ``/api/metrics`` add up to the attempts."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import aiohttp
from pair_support import FAST_PARAMS, N1, cpa_url, soap, started_pair

from mock_server.__main__ import build_parser, config_from_args

ATTEMPTS = 500
RATE_PER_S = 50.0


async def test_login_rate_50_with_500_logins_at_once() -> None:
    args = build_parser().parse_args([
        "--users", str(ATTEMPTS), "--assignment", "active-standby",  # every user homed on imp1
        "--login-rate", "50", "--login-queue", "100",
    ])
    config = dataclasses.replace(config_from_args(args), params=FAST_PARAMS)
    assert config.login_cost[0].rate_per_s == RATE_PER_S and config.login_cost[0].queue_limit == 100
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

        def totals() -> dict[str, int]:
            rows = [r for r in metrics if r["node"] == N1]
            keys = ("admission_attempts", "admission_started", "admission_queued", "admission_busy",
                    "cpa_logins_ok", "cpa_logins_busy")
            return {k: sum(r.get(k, 0) for r in rows) for k in keys}

        metrics: list[dict[str, object]] = []

        async def refresh() -> None:
            metrics[:] = (await pair.admin("GET", "/api/metrics"))["metrics"]

        deadline = time.monotonic() + 5
        while True:  # rows are per second: wait for the row holding the last logins
            await refresh()
            t = totals()
            if t["cpa_logins_ok"] + t["cpa_logins_busy"] == ATTEMPTS or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        t = totals()
        assert t["admission_attempts"] == ATTEMPTS
        assert t["admission_started"] + t["admission_queued"] == len(ok) == t["cpa_logins_ok"]
        assert t["admission_busy"] == len(busy) == t["cpa_logins_busy"]
        assert t["admission_attempts"] == t["admission_started"] + t["admission_queued"] + t["admission_busy"]
        peak_queue = max(int(r.get("login_queue_depth", 0)) for r in metrics)  # type: ignore[call-overload]
        assert 0 < peak_queue <= 100  # sampled once a second while the queue drains for ~2 s
