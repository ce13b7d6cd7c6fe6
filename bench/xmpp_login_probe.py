"""Hand-run probe: XMPP PLAIN logins per second one ``XmppListener`` serves.

The listener runs in a child process (one core), raw-socket clients in this one: each of
``--clients`` concurrent clients loops connect, header, SASL PLAIN, restart, bind, close. Prints
logins/s and the server's CPU seconds per login. Not a test.

    .venv/bin/python bench/xmpp_login_probe.py --clients 200 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import resource
import subprocess
import sys
import time

__all__ = ["main"]

DOMAIN = "example.test"
HEADER = (f"<?xml version='1.0'?><stream:stream to='{DOMAIN}' xmlns='jabber:client' "
          "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>").encode()


async def serve(users: int) -> None:
    from mock_server.xmpp.backend import LocalBackend
    from mock_server.xmpp.listener import XmppListener

    backend = LocalBackend.with_users(domain=DOMAIN, node_name="imp1", users=[f"u{i}" for i in range(users)],
                                      contacts_each=2)
    listener = XmppListener(backend)
    port = await listener.start("127.0.0.1", 0)
    before = resource.getrusage(resource.RUSAGE_SELF)
    print(port, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    print(json.dumps({"cpu_s": cpu_s, **listener.metrics}), flush=True)
    await listener.stop()


async def one_login(port: int, user: str) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(HEADER)
        await reader.readuntil(b"</stream:features>")
        payload = base64.b64encode(f"\0{user}\0pass-{user}".encode())
        writer.write(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + payload + b"</auth>")
        got = await reader.readuntil(b"/>")
        if b"<success" not in got:
            raise RuntimeError(got)
        writer.write(HEADER)
        await reader.readuntil(b"</stream:features>")
        writer.write(b"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>"
                     b"<presence/></stream:stream>")
        await reader.readuntil(b"</iq>")
        await reader.read()
    finally:
        writer.close()


async def drive(port: int, clients: int, seconds: float, users: int) -> tuple[int, int, float]:
    done = errors = 0
    stop_at = time.monotonic() + seconds

    async def worker(k: int) -> None:
        nonlocal done, errors
        i = k
        while time.monotonic() < stop_at:
            try:
                await one_login(port, f"u{i % users}")
                done += 1
            except (OSError, RuntimeError, asyncio.IncompleteReadError):
                errors += 1
            i += clients

    start = time.monotonic()
    await asyncio.gather(*(worker(k) for k in range(clients)))
    return done, errors, time.monotonic() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        asyncio.run(serve(args.users))
        return
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    child = subprocess.Popen([sys.executable, __file__, "--serve", "--users", str(args.users)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    assert child.stdin is not None and child.stdout is not None
    try:
        port = int(child.stdout.readline())
        done, errors, elapsed_s = asyncio.run(drive(port, args.clients, args.seconds, args.users))
        child.stdin.write("\n")
        child.stdin.flush()
        server = json.loads(child.stdout.readline())
    finally:
        child.wait(timeout=10)
    print(f"clients={args.clients} logins={done} errors={errors} elapsed_s={elapsed_s:.1f} "
          f"logins_per_s={done / elapsed_s:.0f} server_cpu_ms_per_login={1000 * server['cpu_s'] / max(done, 1):.2f} "
          f"server_logins_per_cpu_s={done / max(server['cpu_s'], 1e-9):.0f}")
    print(json.dumps(server))


if __name__ == "__main__":
    main()
