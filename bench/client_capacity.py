"""Emulated-client cost in one process: RSS per connected client and client CPU per full login.

Starts the real mock pair (``python -m mock_server`` in a child process: supervisor + two node
processes on loopback, so none of the server's CPU is counted here), then
logs N emulated clients in on ONE asyncio loop in this process (CPA login + get-all-config + OTP +
XMPP CISCO-VTG-TOKEN + bind + roster + presence), keeps them idle, and reports:

- RSS growth of this process / N (KiB per connected client);
- this process's CPU time during the login phase / N (ms per full login);
- wall time and logins/s, and client/login p50/p99.

Usage: ``.venv/bin/python bench/client_capacity.py --clients 2000 [--concurrency 200]``.
Prints a table and, on its last line, one JSON object; appends it to
``bench/results/client_capacity.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jabberemu.config import ClientSettings, ServerPair, Timeouts  # noqa: E402
from jabberemu.core.states import ClientState  # noqa: E402
from jabberemu.driver import EmulatedClient  # noqa: E402
from jabberemu.runtime import Runtime, RunDataSink  # noqa: E402
from mock_server.users import provision  # noqa: E402

NODE_NAMES = ("imp1.example.test", "imp2.example.test")


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run(clients: int, concurrency: int, xmpp_only: bool = False) -> dict[str, object]:
    homes = {u.user_id: u.home_node for u in provision(clients, NODE_NAMES, seed=1, contacts=0)}
    proc = psutil.Process()
    with tempfile.TemporaryDirectory() as tmp:
        topo_file = Path(tmp) / "topology.json"
        server = subprocess.Popen(
            [sys.executable, "-m", "mock_server", "--users", str(clients), "--seed", "1", "--contacts", "2",
             "--topology-out", str(topo_file), "--log-level", "WARNING"],
            cwd=ROOT, stdout=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while not (topo_file.exists() and topo_file.stat().st_size):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("mock pair did not start")
                await asyncio.sleep(0.1)
            await _wait_normal(str(json.loads(topo_file.read_text())["admin_url"]))
            return await _measure(json.loads(topo_file.read_text()), homes, proc, clients, concurrency,
                                  xmpp_only, Path(tmp))
        finally:
            server.terminate()
            server.wait(timeout=30)


async def _wait_normal(admin_url: str, timeout_s: float = 60.0) -> None:
    """Wait until both nodes report the SRM state Normal (admin API ``/api/status``)."""
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            async with http.get(f"{admin_url}/api/status") as resp:
                text = await resp.text()
            if text.count('"Normal"') >= 2:
                return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"pair not Normal: {text[:300]}")


async def _measure(topology: dict[str, object], homes: dict[str, str], proc: psutil.Process, clients: int,
                   concurrency: int, xmpp_only: bool, out_dir: Path) -> dict[str, object]:
    pairspec = ServerPair.from_topology(topology)
    settings = ClientSettings(verify_tls=False, xmpp_only=xmpp_only, timeouts=Timeouts(ping_interval_s=3600))
    login_ms: list[float] = []

    def measure(_client: str, m: object) -> None:
        if getattr(m, "label", "") == "client/login" and getattr(m, "ok", False):
            login_ms.append(m.response_time_ms)  # type: ignore[attr-defined]

    rt = await Runtime.create(pairspec, settings, measure=measure, sink=RunDataSink(out_dir))
    gc.collect()
    rss0 = proc.memory_info().rss
    cpu0, t0 = _cpu_s(), time.perf_counter()
    gate = asyncio.Semaphore(concurrency)
    emulated = [EmulatedClient(u, f"pass-{u}", homes[u], rt) for u in sorted(homes)]

    async def one(c: EmulatedClient) -> ClientState:
        async with gate:
            return await c.start()

    states = await asyncio.gather(*(one(c) for c in emulated))
    cpu1, t1 = _cpu_s(), time.perf_counter()
    gc.collect()
    await asyncio.sleep(1.0)
    rss1 = proc.memory_info().rss
    ok = sum(s is ClientState.XMPPCONNECTED for s in states)
    failed = Counter(c.machine.end_detail for c in emulated if c.state is not ClientState.XMPPCONNECTED)
    idle_cpu0 = _cpu_s()
    await asyncio.sleep(3.0)
    idle_cpu_pct = (_cpu_s() - idle_cpu0) / 3.0 * 100
    await asyncio.gather(*(c.stop(timeout_s=5) for c in emulated))
    await rt.aclose()
    return {
        "bench": "client_capacity", "mode": "xmpp-only" if xmpp_only else "cpa", "clients": clients, "connected": ok, "concurrency": concurrency,
        "rss_per_client_kib": round((rss1 - rss0) / max(ok, 1) / 1024, 1),
        "cpu_per_login_ms": round((cpu1 - cpu0) / max(ok, 1) * 1000, 3),
        "login_wall_s": round(t1 - t0, 2), "logins_per_s": round(ok / (t1 - t0), 1),
        "client_login_p50_ms": round(statistics.median(login_ms), 1) if login_ms else None,
        "client_login_p99_ms": round(statistics.quantiles(login_ms, n=100)[98], 1) if len(login_ms) > 1 else None,
        "idle_cpu_percent": round(idle_cpu_pct, 2), "failed": dict(failed),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "argv": sys.argv, "ts": time.time(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=200, help="logins in flight at once")
    parser.add_argument("--xmpp-only", action="store_true", help="SASL PLAIN with the password, no CPA")
    args = parser.parse_args()
    result = asyncio.run(run(args.clients, args.concurrency, args.xmpp_only))
    for key in ("mode", "clients", "connected", "rss_per_client_kib", "cpu_per_login_ms", "logins_per_s",
                "client_login_p50_ms", "client_login_p99_ms", "idle_cpu_percent"):
        print(f"{key:24} {result[key]}")
    out = ROOT / "bench" / "results" / "client_capacity.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    history = json.loads(out.read_text()) if out.exists() else []
    history.append(result)
    out.write_text(json.dumps(history, indent=1) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
