"""Login cost: client CPU per full login and logins/s per core, next to Tsung on the same servers.

Servers: the mock pair (``python -m mock_server`` in processes of its own, every user on node 1)
and Debian's Prosody (started here on a free loopback port, own config and data in a temp dir,
accounts in its ``internal_plain`` store). Waves, each N logins at ``--rate`` logins/s after a small
warm-up wave (one-time costs such as the first zeep call stay out):

1. ``cpa/mock``: jabberemu full login (CPA ``login`` + ``get-all-config`` + ``get-onetime-password``
   + XMPP CISCO-VTG-TOKEN + bind + roster + presence) -> client CPU per full login (goal <= 3 ms);
2. ``cpa-saturated/mock``: the same as fast as 200 logins in flight allow -> logins/s and the
   client's CPU percent while saturated;
3. ``xmpp-only/mock`` and ``tsung/mock``: jabberemu XMPP-only (PLAIN with the password) vs Tsung
   (SASL PLAIN, same scenario: bind, session, roster, presence) at the same arrival rate;
4. ``xmpp-only/prosody`` and ``tsung/prosody``: likewise against Prosody;
5. with ``--batched``, ``cpa-batched/mock`` and ``xmpp-only-batched/mock``: waves 1 and 3 again at the
   same rate, but with each second's logins started at once, once a second, which is how Locust's
   master hands users to its workers (the product path), where Tsung and waves 1 and 3 space them evenly.

Client CPU per login = this process's CPU time over the login phase (first start -> last client
connected) / logins. Tsung's = its Erlang VM's CPU over its login phase / logins (psutil).
Ratio = ours / Tsung's (goal <= 1.5 on XMPP-only login). Logins/s one core sustains =
1000 / CPU ms per login.

    .venv/bin/python bench/login_cost.py --clients 2000 --rate 50
    .venv/bin/python bench/login_cost.py --smoke
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchkit import (  # noqa: E402
    GcMonitor,
    LoopLagMonitor,
    MockProcess,
    emit,
    machine_info,
    raise_fd_limit,
    wait_for_low_load,
)
from emulated import make_runtime, mock_users, one_node_pair, run_wave, stop_all  # noqa: E402
from prosody_runner import ProsodyServer, prosody_available  # noqa: E402
from tsung_runner import run_tsung, tsung_available  # noqa: E402

from jabberemu import eventloop  # noqa: E402
from jabberemu.config import ServerPair  # noqa: E402

__all__ = ["main", "run"]

NAME = "login_cost"
GOAL_CPU_MS = 3.0
GOAL_RATIO = 1.5
WARMUP = 20


async def _ours(pair: ServerPair, users: list[tuple[str, str]], home: str | None, *, xmpp_only: bool,
                rate_per_s: float | None, concurrency: int = 200, batch: int = 1) -> dict[str, Any]:
    """One measured jabberemu wave (after a warm-up wave on the first users)."""
    with tempfile.TemporaryDirectory(prefix="bench-login-") as run_dir:
        warm_rt = await make_runtime(pair, xmpp_only=xmpp_only, run_dir=Path(run_dir) / "warm-up")
        try:
            warm = await run_wave(warm_rt, users[:WARMUP], home, rate_per_s=None, concurrency=WARMUP)
            await stop_all(warm.clients)
        finally:
            await warm_rt.aclose()
        login_ms: list[float] = []
        rt = await make_runtime(pair, xmpp_only=xmpp_only, run_dir=Path(run_dir), login_ms=login_ms)
        lag = LoopLagMonitor()
        gcm = GcMonitor()
        try:
            lag.start()
            gcm.start()
            wave = await run_wave(rt, users, home, rate_per_s=rate_per_s, concurrency=concurrency,
                                  login_ms=login_ms, batch=batch)
            await lag.stop()
            await stop_all(wave.clients)
        finally:
            gcm.stop()
            await lag.stop()
            await rt.aclose()
    cpu_ms = wave.cpu_per_login_ms()
    ordered = sorted(wave.login_ms)
    return {
        "logins": wave.connected, "states": dict(wave.states), "wall_s": round(wave.wall_s, 2),
        "cpu_per_login_ms": cpu_ms, "logins_per_s": round(wave.connected / wave.wall_s, 1) if wave.wall_s else None,
        "cpu_percent": round(wave.cpu_s / wave.wall_s * 100, 1) if wave.wall_s else None,
        "logins_per_s_per_core": round(1000.0 / cpu_ms, 1) if cpu_ms else None,
        "login_p50_ms": round(ordered[len(ordered) // 2], 1) if ordered else None,
        "login_p99_ms": round(ordered[int(len(ordered) * 0.99)], 1) if ordered else None,
        **lag.summary(wave.t0, wave.t1), **gcm.summary(wave.t0, wave.t1),
        "gc_ms_per_login": round(gcm.summary(wave.t0, wave.t1)["gc_total_ms"] / wave.connected, 3)
        if wave.connected else None,
    }


async def _tsung(host: str, port: int, domain: str, users: list[tuple[str, str]], rate: float) -> dict[str, Any]:
    if not tsung_available():
        return {"skipped": "tsung not installed"}
    # held until the last one is in: the login phase ends when all N are connected at once
    hold_s = len(users) / rate * 1.6 + 5.0
    result = await run_tsung(host=host, port=port, domain=domain, users=users, rate_per_s=rate, hold_s=hold_s,
                             idle_s=1.0)
    out = result.as_dict()
    out["logins"] = int(result.stats.get("tr_login", {}).get("count", 0))
    out["logins_per_s_per_core"] = round(1000.0 / result.cpu_per_login_ms, 1) if result.cpu_per_login_ms else None
    return out


async def _guard(label: str, runs: dict[str, Any], make: Callable[[], Awaitable[dict[str, Any]]]) -> None:
    """Run one wave; a failure is recorded under its label instead of ending the bench."""
    sys.stderr.write(f"login_cost: {label}...\n")
    try:
        runs[label] = await make()
    except Exception as exc:  # noqa: BLE001 - reported in the result
        runs[label] = {"error": f"{type(exc).__name__}: {exc}"[:500]}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    raise_fd_limit()
    n, rate = args.clients, args.rate
    users = mock_users(n)
    runs: dict[str, Any] = {}
    async with MockProcess(users=n, extra_args=["--contacts", str(args.contacts)]).running() as mock:
        pair = ServerPair.from_topology(mock.topology)
        home = pair.nodes[0].name
        node = mock.node(0)
        await _guard("cpa/mock", runs, lambda: _ours(pair, users, home, xmpp_only=False, rate_per_s=rate))
        if args.batched:
            batch = max(1, int(rate))
            await _guard("cpa-batched/mock", runs, lambda: _ours(pair, users, home, xmpp_only=False, rate_per_s=rate,
                                                                  batch=batch))
            await _guard("xmpp-only-batched/mock", runs, lambda: _ours(pair, users, home, xmpp_only=True,
                                                                        rate_per_s=rate, batch=batch))
        if not args.no_saturate:
            await _guard("cpa-saturated/mock", runs, lambda: _ours(pair, users, home, xmpp_only=False, rate_per_s=None))
        await _guard("xmpp-only/mock", runs, lambda: _ours(pair, users, home, xmpp_only=True, rate_per_s=rate))
        if not args.no_tsung:
            await _guard("tsung/mock", runs, lambda: _tsung(node["xmpp_host"], node["xmpp_port"], pair.domain,
                                                            users, rate))
    if args.no_prosody or not prosody_available():
        runs["xmpp-only/prosody"] = {"skipped": "disabled" if args.no_prosody else "prosody not installed"}
    else:
        async with ProsodyServer(domain="example.test", users=users).running() as prosody:
            ppair = one_node_pair("prosody", "127.0.0.1", prosody.port, prosody.domain)
            await _guard("xmpp-only/prosody", runs, lambda: _ours(ppair, users, None, xmpp_only=True, rate_per_s=rate))
            if not args.no_tsung:
                await _guard("tsung/prosody", runs, lambda: _tsung("127.0.0.1", prosody.port, prosody.domain,
                                                                   users, rate))
    ratios: dict[str, float | None] = {}
    for server in ("mock", "prosody"):
        ours = runs.get(f"xmpp-only/{server}", {}).get("cpu_per_login_ms")
        theirs = (runs.get(f"tsung/{server}") or {}).get("cpu_per_login_ms")
        ratios[server] = round(ours / theirs, 2) if ours and theirs else None
    full = runs.get("cpa/mock", {}).get("cpu_per_login_ms")
    met_ratio = [r <= GOAL_RATIO for r in ratios.values() if r is not None]
    return {
        "bench": NAME, "clients": n, "rate_per_s": rate, "runs": runs,
        "ratio_xmpp_only_ours_over_tsung": ratios,
        "goal": {"cpu_per_full_login_ms": GOAL_CPU_MS, "ratio": GOAL_RATIO,
                 "cpu_met": full is not None and full <= GOAL_CPU_MS,
                 "ratio_met": bool(met_ratio) and all(met_ratio)},
    }


def _rows(r: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    runs = r["runs"]

    def g(label: str, key: str) -> Any:
        return (runs.get(label) or {}).get(key)

    return [
        ("full CPA login: CPU/login (ms)", g("cpa/mock", "cpu_per_login_ms"), None),
        ("full CPA login: logins/s/core", g("cpa/mock", "logins_per_s_per_core"), None),
        ("full CPA login: p50 (ms)", g("cpa/mock", "login_p50_ms"), None),
        ("full CPA login: lag p99 (ms)", g("cpa/mock", "lag_p99_ms"), None),
        ("saturated CPA: logins/s", g("cpa-saturated/mock", "logins_per_s"), None),
        ("saturated CPA: client CPU (%)", g("cpa-saturated/mock", "cpu_percent"), None),
        ("saturated CPA: CPU/login (ms)", g("cpa-saturated/mock", "cpu_per_login_ms"), None),
        ("mock XMPP-only: CPU/login (ms)", g("xmpp-only/mock", "cpu_per_login_ms"), g("tsung/mock", "cpu_per_login_ms")),
        ("batched full CPA login: CPU/login (ms)", g("cpa-batched/mock", "cpu_per_login_ms"), None),
        ("batched XMPP-only: CPU/login (ms)", g("xmpp-only-batched/mock", "cpu_per_login_ms"), None),
        ("mock XMPP-only: logins", g("xmpp-only/mock", "logins"), g("tsung/mock", "logins")),
        ("mock XMPP-only: ratio ours/tsung", r["ratio_xmpp_only_ours_over_tsung"]["mock"], None),
        ("prosody: CPU/login (ms)", g("xmpp-only/prosody", "cpu_per_login_ms"),
         g("tsung/prosody", "cpu_per_login_ms")),
        ("prosody: logins", g("xmpp-only/prosody", "logins"), g("tsung/prosody", "logins")),
        ("prosody: ratio ours/tsung", r["ratio_xmpp_only_ours_over_tsung"]["prosody"], None),
        ("goal <= 3 ms full login met", r["goal"]["cpu_met"], None),
        ("goal ratio <= 1.5 met", r["goal"]["ratio_met"], None),
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=2000, help="logins per wave")
    p.add_argument("--rate", type=float, default=50.0,
                   help="arrival rate, logins/s (ours and Tsung's; low enough for Prosody and our client)")
    p.add_argument("--contacts", type=int, default=2, help="roster contacts per user (mock)")
    p.add_argument("--no-tsung", action="store_true")
    p.add_argument("--no-prosody", action="store_true")
    p.add_argument("--no-saturate", action="store_true", help="skip the saturated CPA wave")
    p.add_argument("--batched", action="store_true",
                   help="also both of ours with a second's logins started at once, once a second (the arrival "
                        "Locust's master gives its workers), beside the evenly spaced ones")
    p.add_argument("--max-load", type=float, default=None, help="wait until the 1-min load average is below")
    p.add_argument("--max-wait", type=float, default=600.0, help="bound of that wait, s")
    p.add_argument("--smoke", action="store_true", help="30 logins per wave: checks the script works")
    p.add_argument("--results-dir", type=Path, default=None)
    args = p.parse_args(argv)
    if args.smoke:
        args.clients, args.rate = min(args.clients, 30), 60.0
    load = wait_for_low_load(args.max_load, args.max_wait)
    result = {**eventloop.run(run(args)), **load, "smoke": args.smoke}
    result.update(machine=machine_info(), argv=sys.argv if argv is None else [__file__, *argv], ts=time.time())
    emit(NAME, _rows(result), result, results_dir=args.results_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
