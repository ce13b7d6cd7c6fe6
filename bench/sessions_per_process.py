"""Sessions per process: N emulated clients logged in and idle in ONE process, next to Tsung.

The mock pair runs in processes of its own (``python -m mock_server``, every user on node 1).
This process logs N jabberemu clients in (full CPA login by default, ``--xmpp-only`` for PLAIN
with the password) at ``--rate`` logins/s, keeps them idle and measures:

- RSS per client = (RSS once all are connected - RSS before the first client was built) / N;
- CPU percent of this process while idle (``--idle-s`` seconds), and event-loop lag p50/p99/max
  while idle and during the login phase;
- then it signs everyone out and runs Tsung (XMPP-only, SASL PLAIN, same N, same rate) against
  the same node: RSS per session of Tsung's Erlang VM (psutil), its idle CPU, and the ratio.

Goal (issue 8): >= 10,000 clients per process at <= 40 KiB each.

    .venv/bin/python bench/sessions_per_process.py --clients 10000 --rate 100
    .venv/bin/python bench/sessions_per_process.py --smoke        # 20 clients, a few seconds
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchkit import (  # noqa: E402
    LoopLagMonitor,
    MockProcess,
    cpu_s,
    emit,
    machine_info,
    raise_fd_limit,
    wait_for_low_load,
)
from emulated import make_runtime, mock_users, run_wave, stop_all  # noqa: E402
from tsung_runner import run_tsung, tsung_available  # noqa: E402

from jabberemu import eventloop  # noqa: E402
from jabberemu.config import ServerPair  # noqa: E402

__all__ = ["main", "run"]

NAME = "sessions_per_process"
GOAL_CLIENTS = 10_000
GOAL_KIB = 40.0


def _heap_top(limit: int = 12) -> list[dict[str, Any]]:
    import tracemalloc

    snap = tracemalloc.take_snapshot()
    stats = snap.statistics("filename")
    return [{"file": str(s.traceback[0].filename).split("site-packages/")[-1].split("/work/main/")[-1],
             "kib": round(s.size / 1024, 1), "blocks": s.count} for s in stats[:limit]]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    fd_limit = raise_fd_limit()
    proc = psutil.Process()
    n = args.clients
    result: dict[str, Any] = {"bench": NAME, "clients": n, "rate_per_s": args.rate,
                              "mode": "xmpp-only" if args.xmpp_only else "cpa", "ping_interval_s": args.ping_interval,
                              "fd_limit": fd_limit}
    extra = ["--contacts", str(args.contacts)]
    async with MockProcess(users=n, extra_args=extra).running() as mock:
        pair = ServerPair.from_topology(mock.topology)
        node = mock.node(0)
        home = pair.nodes[0].name
        with tempfile.TemporaryDirectory(prefix="bench-spp-") as run_dir:
            rt = await make_runtime(pair, xmpp_only=args.xmpp_only, run_dir=Path(run_dir),
                                    ping_interval_s=args.ping_interval)
            lag = LoopLagMonitor()
            lag.start()
            await asyncio.sleep(0.2)
            if args.tracemalloc:
                import tracemalloc

                tracemalloc.start()
            gc.collect()
            rss0 = proc.memory_info().rss
            wave = await run_wave(rt, mock_users(n), home, rate_per_s=args.rate)
            gc.collect()
            await asyncio.sleep(3.0)  # let the last logins' follow-ups (presence, pool clean-up) pass
            rss1 = proc.memory_info().rss
            idle_c0, idle_t0 = cpu_s(), time.monotonic()
            await asyncio.sleep(args.idle_s)
            idle_c1, idle_t1 = cpu_s(), time.monotonic()
            rss2 = proc.memory_info().rss
            connected = wave.connected
            ours: dict[str, Any] = {
                "connected": connected, "states": dict(wave.states),
                "rss_base_mib": round(rss0 / 2**20, 1), "rss_total_mib": round(rss2 / 2**20, 1),
                "rss_per_client_kib": round((rss2 - rss0) / max(connected, 1) / 1024, 1),
                "rss_per_client_kib_at_login_end": round((rss1 - rss0) / max(connected, 1) / 1024, 1),
                "idle_cpu_percent": round((idle_c1 - idle_c0) / (idle_t1 - idle_t0) * 100, 2),
                "login_wall_s": round(wave.wall_s, 1), "cpu_per_login_ms": wave.cpu_per_login_ms(),
                "idle": lag.summary(idle_t0, idle_t1), "login_phase": lag.summary(wave.t0, wave.t1),
                "server_rss_mib": round(mock.sample().rss_bytes / 2**20, 1),
            }
            if args.tracemalloc:
                ours["heap_top"] = _heap_top()
            await lag.stop()
            await stop_all(wave.clients)
            del wave
            await rt.aclose()
        result["jabberemu"] = ours
        if args.no_tsung or not tsung_available():
            result["tsung"] = None if args.no_tsung else {"skipped": "tsung not installed"}
        else:
            await asyncio.sleep(1.0)
            # every session must still be connected when the last one logs in (Poisson arrivals)
            hold_s = n / args.rate * 1.6 + args.idle_s + 8.0
            ts = await run_tsung(host=node["xmpp_host"], port=node["xmpp_port"], domain=pair.domain,
                                 users=mock_users(n), rate_per_s=args.rate, hold_s=hold_s, idle_s=args.idle_s)
            result["tsung"] = ts.as_dict()
    t = result.get("tsung") or {}
    ratio = (ours["rss_per_client_kib"] / t["rss_per_session_kib"]) if t.get("rss_per_session_kib") else None
    result["ratio_rss_ours_over_tsung"] = round(ratio, 2) if ratio else None
    result["goal"] = {"clients_per_process": GOAL_CLIENTS, "kib_per_client": GOAL_KIB,
                      "met": ours["connected"] >= GOAL_CLIENTS and ours["rss_per_client_kib"] <= GOAL_KIB}
    return result


def _rows(r: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    o, t = r["jabberemu"], r.get("tsung") or {}
    return [
        ("clients connected", o["connected"], t.get("connected_max")),
        ("RSS per client (KiB)", o["rss_per_client_kib"], t.get("rss_per_session_kib")),
        ("RSS base (MiB)", o["rss_base_mib"], t.get("rss_base_mib")),
        ("idle CPU (%)", o["idle_cpu_percent"], t.get("idle_cpu_percent")),
        ("idle loop lag p99 (ms)", o["idle"]["lag_p99_ms"], None),
        ("login loop lag p99 (ms)", o["login_phase"]["lag_p99_ms"], None),
        ("CPU per login (ms)", o["cpu_per_login_ms"], t.get("cpu_per_login_ms")),
        ("errors", sum(v for k, v in o["states"].items() if k != "XMPPCONNECTED"), t.get("errors")),
        ("ratio RSS ours/tsung", r["ratio_rss_ours_over_tsung"], None),
        ("goal met (>=10k, <=40 KiB)", r["goal"]["met"], None),
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=GOAL_CLIENTS)
    p.add_argument("--rate", type=float, default=100.0, help="login arrival rate, logins/s (ours and Tsung's)")
    p.add_argument("--idle-s", type=float, default=10.0, help="seconds of idle measurement")
    p.add_argument("--contacts", type=int, default=2, help="roster contacts per user")
    p.add_argument("--ping-interval", type=float, default=60.0, help="client XEP-0199 keepalive, s")
    p.add_argument("--xmpp-only", action="store_true", help="log in with PLAIN + password (no CPA)")
    p.add_argument("--no-tsung", action="store_true")
    p.add_argument("--tracemalloc", action="store_true", help="top heap allocations by file (slows logins)")
    p.add_argument("--max-load", type=float, default=None, help="wait until the 1-min load average is below")
    p.add_argument("--max-wait", type=float, default=600.0, help="bound of that wait, s")
    p.add_argument("--smoke", action="store_true", help="20 clients, 1 s idle: checks the script works")
    p.add_argument("--results-dir", type=Path, default=None)
    args = p.parse_args(argv)
    if args.smoke:
        args.clients, args.rate, args.idle_s = min(args.clients, 20), 50.0, 1.0
    load = wait_for_low_load(args.max_load, args.max_wait)
    result = {**eventloop.run(run(args)), **load, "smoke": args.smoke}
    result.update(machine=machine_info(), argv=sys.argv if argv is None else [__file__, *argv], ts=time.time())
    emit(NAME, _rows(result), result, results_dir=args.results_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
