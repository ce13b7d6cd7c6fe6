"""Capacity of one mock IM&P node: CPA SOAP logins/s and XMPP SASL PLAIN logins/s per core.

Starts the real mock pair (``mock_server.pair.runner.MockPair``: each node is its own OS process), all
users homed on node 1 (Active-Standby), no login rate limit. The client load runs in this process,
separate from the node: ``--clients`` concurrent raw asyncio clients (hand-written HTTP/1.1
keep-alive for SOAP, raw sockets for XMPP) so the client side stays cheap. Each phase runs for
``--seconds``; the node's CPU time (``psutil``, user + system) over the phase gives logins per
CPU-second, i.e. per core (one node = one asyncio loop = at most one core).

- SOAP login = one CPA ``login`` round trip (HTTP 200 with a session key).
- XMPP login = TCP connect, stream header, SASL PLAIN, stream restart, resource bind, close.

Bounded (loopback only, a few seconds per phase). Prints a table, appends machine info, the
command line and the results to ``bench/results/mock_capacity.json`` (``benchkit``), and prints the
results as one JSON object on its last line. Goal (issue 2): >= 1,000 logins/s per core each.

    .venv/bin/python bench/mock_capacity.py --clients 200 --seconds 5
    .venv/bin/python bench/mock_capacity.py --smoke        # 20 clients, 1 s per phase
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchkit import emit, machine_info  # noqa: E402

from mock_server.pair.runner import MockPair  # noqa: E402
from mock_server.pair_config import PairConfig  # noqa: E402

__all__ = ["main"]

DOMAIN = "example.test"
NAME = "mock_capacity"
HEADER = (f"<?xml version='1.0'?><stream:stream to='{DOMAIN}' xmlns='jabber:client' "
          "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>").encode()
GOAL_PER_CORE = 1000.0


class Tally:
    """Counts of one phase."""

    def __init__(self) -> None:
        self.ok = 0
        self.failed = 0
        self.errors: dict[str, int] = {}

    def error(self, what: str) -> None:
        self.failed += 1
        self.errors[what] = self.errors.get(what, 0) + 1


def soap_request(host: str, port: int, path: str, user: str) -> bytes:
    body = (f"<?xml version='1.0' encoding='utf-8'?><env:Envelope xmlns:env='http://www.w3.org/2003/05/soap-envelope'"
            f" xmlns:epas='urn:cisco:epas:soap'><env:Body><epas:login client-type='CUPC' client-version='14.1'"
            f" force='true'><epas:username>{user}</epas:username><epas:password>pass-{user}</epas:password>"
            f"</epas:login></env:Body></env:Envelope>").encode()
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/soap+xml; charset=utf-8;"
            f' action="urn:cisco:epas:soap/login"\r\nContent-Length: {len(body)}\r\n\r\n').encode()
    return head + body


async def soap_worker(host: str, port: int, path: str, users: list[str], stop_at: float, tally: Tally) -> None:
    """One keep-alive HTTP/1.1 connection posting CPA logins until ``stop_at``."""
    reader, writer = await asyncio.open_connection(host, port)
    i = 0
    try:
        while time.monotonic() < stop_at:
            writer.write(soap_request(host, port, path, users[i % len(users)]))
            i += 1
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length)
            if head.startswith(b"HTTP/1.1 200") and b"session-key>" in body:
                tally.ok += 1
            else:
                tally.error(head.split(b"\r\n", 1)[0].decode(errors="replace"))
    except (OSError, asyncio.IncompleteReadError) as exc:
        tally.error(type(exc).__name__)
    finally:
        writer.close()


async def xmpp_login(host: str, port: int, user: str, resource: str) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(HEADER)
        await reader.readuntil(b"</stream:features>")
        token = base64.b64encode(f"\0{user}\0pass-{user}".encode())
        writer.write(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + token + b"</auth>")
        got = await reader.readuntil(b">")
        if not got.startswith(b"<success"):
            raise ConnectionError(f"auth: {got[:60]!r}")
        writer.write(HEADER)
        await reader.readuntil(b"</stream:features>")
        writer.write(f"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>{resource}"
                     "</resource></bind></iq>".encode())
        got = await reader.readuntil(b"</iq>")
        if b"type='result'" not in got and b'type="result"' not in got:
            raise ConnectionError(f"bind: {got[:60]!r}")
        writer.write(b"</stream:stream>")
    finally:
        writer.close()


async def xmpp_worker(host: str, port: int, users: list[str], stop_at: float, tally: Tally, n: int) -> None:
    i = 0
    while time.monotonic() < stop_at:
        try:
            await xmpp_login(host, port, users[i % len(users)], f"w{n}")
            tally.ok += 1
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            tally.error(f"{type(exc).__name__}: {str(exc)[:60]}")
        i += 1


async def phase(name: str, node_pid: int, make_workers: Any, seconds: float) -> dict[str, Any]:
    """Run the workers for ``seconds``; logins, wall rate and the node's CPU seconds."""
    node = psutil.Process(node_pid)
    tally = Tally()
    cpu0, client0, t0 = node.cpu_times(), time.process_time(), time.monotonic()
    stop_at = t0 + seconds
    await asyncio.wait_for(asyncio.gather(*make_workers(stop_at, tally)), seconds + 30)
    wall_s = time.monotonic() - t0
    cpu1, client1 = node.cpu_times(), time.process_time()
    node_cpu_s = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    return {
        "phase": name,
        "logins": tally.ok,
        "failed": tally.failed,
        "errors": tally.errors,
        "wall_s": round(wall_s, 3),
        "logins_per_s": round(tally.ok / wall_s, 1),
        "node_cpu_s": round(node_cpu_s, 3),
        "logins_per_core_s": round(tally.ok / node_cpu_s, 1) if node_cpu_s > 0 else None,
        "node_cpu_percent": round(100 * node_cpu_s / wall_s, 1),
        "client_cpu_s": round(client1 - client0, 3),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    config = PairConfig(users=args.users, assignment="active-standby", contacts=2,
                        params=("heartbeat_interval_s=0.5", "heartbeat_timeout_s=5"))
    async with MockPair(config) as pair:
        await pair.wait_for_states({config.node_names[0]: "Normal", config.node_names[1]: "Normal"}, timeout_s=30)
        node = pair.topology["nodes"][0]
        pid = pair.supervisor.node(node["name"]).proc.pid  # type: ignore[union-attr]
        users = [f"user{i:05d}" for i in range(1, args.users + 1)]
        host, cpa_port = "127.0.0.1", pair.supervisor.node(node["name"]).ports.cpa
        path = "/EPASSoap/service/v80"
        c = args.clients
        slices = [users[k::c] for k in range(c)]

        def soap_workers(stop_at: float, tally: Tally) -> list[Any]:
            return [soap_worker(host, cpa_port, path, slices[k], stop_at, tally) for k in range(c)]

        def xmpp_workers(stop_at: float, tally: Tally) -> list[Any]:
            return [xmpp_worker(host, node["xmpp_port"], slices[k], stop_at, tally, k) for k in range(c)]

        await phase("warm-up", pid, soap_workers, min(1.0, args.seconds))
        soap = await phase("soap-login", pid, soap_workers, args.seconds)
        xmpp = await phase("xmpp-plain-login", pid, xmpp_workers, args.seconds)
    return {"soap": soap, "xmpp": xmpp}


def _rows(result: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    rows: list[tuple[str, Any, Any]] = []
    for key, label in (("soap", "SOAP login"), ("xmpp", "XMPP PLAIN login")):
        r = result[key]
        rows += [
            (f"{label}: logins/s per node core", r["logins_per_core_s"], None),
            (f"{label}: logins/s wall", r["logins_per_s"], None),
            (f"{label}: node CPU %", r["node_cpu_percent"], None),
            (f"{label}: logins / failed", f"{r['logins']} / {r['failed']}", None),
            (f"{label}: goal {GOAL_PER_CORE:.0f}/s per core met", r["goal_met"], None),
        ]
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=200, help="concurrent clients (default %(default)s)")
    p.add_argument("--seconds", type=float, default=5.0, help="seconds per phase (default %(default)s)")
    p.add_argument("--users", type=int, default=2000, help="provisioned users (default %(default)s)")
    p.add_argument("--smoke", action="store_true", help="20 clients, 1 s per phase: checks the script works")
    p.add_argument("--results-dir", type=Path, default=None, help="where mock_capacity.json is appended")
    p.add_argument("--no-save", action="store_true", help="do not append to the results file")
    args = p.parse_args(argv)
    if args.smoke:
        args.clients, args.seconds, args.users = 20, 1.0, 40
    if not (1 <= args.clients <= 5000 and 0.5 <= args.seconds <= 120 and args.users >= args.clients):
        p.error("need 1 <= --clients <= 5000, 0.5 <= --seconds <= 120 and --users >= --clients")
    results = asyncio.run(run(args))
    for r in results.values():
        r["goal_met"] = (r["logins_per_core_s"] or 0.0) >= GOAL_PER_CORE
    result = {"clients": args.clients, "seconds": args.seconds, "goal_per_core": GOAL_PER_CORE,
              "smoke": args.smoke, **results, "machine": machine_info(),
              "argv": sys.argv if argv is None else [__file__, *argv], "ts": time.time()}
    emit(NAME, _rows(result), result, results_dir=args.results_dir, save=not args.no_save)
    return 0


if __name__ == "__main__":
    sys.exit(main())
