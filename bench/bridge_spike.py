"""Spike: how should Locust (gevent) drive asyncio clients? Two designs, measured on loopback.

A  one real OS thread per Locust process runs one asyncio loop (``jabberemu.loadgen.bridge``);
   greenlets submit coroutine functions, one ref'd hub async watcher + deques wake them.
B  the asyncio engine runs in a child process per Locust process; requests, results and
   measurements cross a socketpair in pickled batches (one frame per loop iteration / hub turn).

Each design runs in a subprocess of its own (``--design A|B``) against a stand-in asyncio server
(``--server``, another process): a "client" is one asyncio TCP connection plus a small object; a
"login" is connect + 3 request/response round trips + close. Measurements reach a real Locust
``Environment``'s ``events.request`` with a local runner, so ``environment.stats`` counts them.

Run: ``.venv/bin/python bench/bridge_spike.py [--quick]``. Prints a table, then one JSON object on
the last line, and appends that object to ``bench/results/bridge_spike.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import pickle
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

__all__ = ["main"]

RESULTS = Path(__file__).resolve().parent / "results" / "bridge_spike.json"
PHASE_TIMEOUT_S = 60.0
_HDR = struct.Struct("!I")
_REPLY = b"ok " + b"x" * 120 + b"\n"

# --------------------------------------------------------------------------------------------
# the engine side: identical coroutines for both designs; `record` is the measurement sink
# --------------------------------------------------------------------------------------------
CLIENTS: dict[int, Any] = {}
RECORD: Callable[..., None] = lambda *a, **k: None  # noqa: E731 - replaced by each design
SERVER_PORT = 0


class Client:
    """Stand-in emulated client: one TCP connection and a little state."""

    __slots__ = ("user_id", "reader", "writer", "state", "roster")

    def __init__(self, user_id: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.user_id, self.reader, self.writer = user_id, reader, writer
        self.state = "connected"
        self.roster = {f"user{user_id + k}": "available" for k in range(3)}


async def op_noop() -> int:
    return 1


async def op_tick() -> int:
    await asyncio.sleep(0)
    return 1


async def op_sleep(delay_s: float) -> float:
    t0 = time.perf_counter()
    await asyncio.sleep(delay_s)
    return time.perf_counter() - t0


async def op_emit(count: int) -> int:
    for i in range(count):
        RECORD("bench", "emit", 1.0 + (i % 7), 0, None, {}, time.time())
        if i % 1000 == 999:
            await asyncio.sleep(0)
    return count


async def _round_trip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, payload: bytes) -> None:
    writer.write(payload)
    line = await reader.readline()
    if not line:
        raise ConnectionError("server closed")


async def op_connect(user_id: int) -> int:
    start_ts, t0 = time.time(), time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", SERVER_PORT)
    await _round_trip(reader, writer, b"hello\n")
    CLIENTS[user_id] = Client(user_id, reader, writer)
    RECORD("xmpp", "connect", (time.perf_counter() - t0) * 1000.0, 0, None, {}, start_ts)
    return user_id


async def op_ping(user_id: int) -> float:
    c = CLIENTS[user_id]
    start_ts, t0 = time.time(), time.perf_counter()
    await _round_trip(c.reader, c.writer, b"ping\n")
    ms = (time.perf_counter() - t0) * 1000.0
    RECORD("xmpp", "ping", ms, len(_REPLY), None, {}, start_ts)
    return ms


async def op_login(user_id: int) -> float:
    start_ts, t0 = time.time(), time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", SERVER_PORT)
    try:
        for step in (b"auth\n", b"bind\n", b"presence\n"):
            await _round_trip(reader, writer, step)
    finally:
        writer.close()
    ms = (time.perf_counter() - t0) * 1000.0
    RECORD("client", "login", ms, 0, None, {}, start_ts)
    return ms


async def op_close_all() -> int:
    n = len(CLIENTS)
    for c in CLIENTS.values():
        c.writer.close()
    CLIENTS.clear()
    await asyncio.sleep(0.05)
    return n


async def op_stats() -> tuple[int, float]:
    return _rss(), time.process_time()


OPS: dict[str, Callable[..., Any]] = {f.__name__[3:]: f for f in (
    op_noop, op_tick, op_sleep, op_emit, op_connect, op_ping, op_login, op_close_all, op_stats)}


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# --------------------------------------------------------------------------------------------
# stand-in server and design B's child engine (plain asyncio, no gevent)
# --------------------------------------------------------------------------------------------
async def _serve() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.readline():
                writer.write(_REPLY)
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the parent closes


async def _child_engine(fd: int) -> None:
    """Design B child: read request batches, run them, send results and samples in batches."""
    global RECORD
    import socket

    reader, writer = await asyncio.open_connection(sock=socket.socket(fileno=fd))
    loop = asyncio.get_running_loop()
    out: list[tuple[Any, ...]] = []
    running: set[asyncio.Task[Any]] = set()

    def flush() -> None:
        data = pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL)
        out.clear()
        writer.write(_HDR.pack(len(data)) + data)

    def push(item: tuple[Any, ...]) -> None:
        if not out:
            loop.call_soon(flush)
        out.append(item)

    RECORD = lambda *s: push(("m", s))  # noqa: E731

    def done(job_id: int, task: asyncio.Task[Any]) -> None:
        exc = None if task.cancelled() else task.exception()
        push(("r", job_id, exc is None and not task.cancelled(), task.result() if exc is None and not task.cancelled()
              else repr(exc)))

    while True:
        try:
            (size,) = _HDR.unpack(await reader.readexactly(_HDR.size))
            batch = pickle.loads(await reader.readexactly(size))
        except asyncio.IncompleteReadError:
            return
        for job_id, op, args in batch:
            task = asyncio.ensure_future(OPS[op](*args))
            running.add(task)  # the loop keeps only weak references to tasks
            task.add_done_callback(running.discard)
            task.add_done_callback(lambda t, j=job_id: done(j, t))


# --------------------------------------------------------------------------------------------
# design B, gevent side
# --------------------------------------------------------------------------------------------
class PipeBridge:
    """Design B: submit() from greenlets, batched frames over a socketpair to a child engine."""

    def __init__(self, fire: Callable[..., Any]) -> None:
        import socket

        import gevent
        import gevent.event

        self._gevent, self._AsyncResult = gevent, gevent.event.AsyncResult
        self.fire = fire
        parent, child = socket.socketpair()
        self.sock = parent
        self.proc = subprocess.Popen([sys.executable, __file__, "--child", str(child.fileno()),
                                      "--port", str(SERVER_PORT)], pass_fds=(child.fileno(),))
        child.close()
        self._pending: dict[int, Any] = {}
        self._out: list[tuple[Any, ...]] = []
        self._next = 0
        self._wake = gevent.event.Event()
        self.samples_fired = 0
        self._greenlets = [gevent.spawn(self._reader), gevent.spawn(self._writer)]

    def submit(self, op: str, *args: Any, timeout_s: float = 30.0) -> Any:
        self._next += 1
        result = self._AsyncResult()
        self._pending[self._next] = result
        self._out.append((self._next, op, args))
        self._wake.set()
        return result.get(timeout=timeout_s)

    def _writer(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            batch, self._out = self._out, []
            data = pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)
            self.sock.sendall(_HDR.pack(len(data)) + data)

    def _recv_exactly(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(min(n - len(buf), 1 << 20))
            if not chunk:
                raise EOFError
            buf += chunk
        return bytes(buf)

    def _reader(self) -> None:
        fire = self.fire
        while True:
            (size,) = _HDR.unpack(self._recv_exactly(_HDR.size))
            for item in pickle.loads(self._recv_exactly(size)):
                if item[0] == "m":
                    rt, name, ms, length, exc, ctx, ts = item[1]
                    fire(request_type=rt, name=name, response_time=ms, response_length=length,
                         exception=exc, context=ctx, start_time=ts)
                    self.samples_fired += 1
                else:
                    _, job_id, ok, value = item
                    result = self._pending.pop(job_id)
                    result.set(value) if ok else result.set_exception(RuntimeError(value))

    def stop(self) -> None:
        for g in self._greenlets:
            g.kill(block=False)
        self.sock.close()
        self.proc.wait(timeout=10)


# --------------------------------------------------------------------------------------------
# one design, measured in a Locust process of its own
# --------------------------------------------------------------------------------------------
def _run_design(design: str, quick: bool) -> dict[str, Any]:
    global RECORD
    import gevent
    from locust.env import Environment

    from jabberemu.loadgen.bridge import AsyncioBridge, LocustSample

    env = Environment(user_classes=[])
    env.create_local_runner()
    fire = env.events.request.fire
    n_clients = 1000 if quick else 2000
    scale = 0.25 if quick else 1.0
    res: dict[str, Any] = {"design": design}
    rss0 = _rss()

    if design == "A":
        bridge: Any = AsyncioBridge(fire)
        bridge.start()
        RECORD = lambda *s: bridge.record_sample(LocustSample(*s))  # noqa: E731
        submit = lambda op, *a, timeout_s=30.0: bridge.submit(OPS[op], *a, timeout_s=timeout_s)  # noqa: E731
        engine_stats = lambda: (0, 0.0)  # noqa: E731 - same process
        # idle hub: only the main greenlet waits, the loop has one timer pending
        t0 = time.perf_counter()
        slept = submit("sleep", 0.3)
        res["idle_hub_wait_s"] = round(time.perf_counter() - t0, 3)
    else:
        bridge = PipeBridge(fire)
        submit = lambda op, *a, timeout_s=30.0: bridge.submit(op, *a, timeout_s=timeout_s)  # noqa: E731
        engine_stats = lambda: submit("stats")  # noqa: E731
        t0 = time.perf_counter()
        slept = submit("sleep", 0.3)
        res["idle_hub_wait_s"] = round(time.perf_counter() - t0, 3)
    del slept
    child_rss0 = engine_stats()[0]
    res["engine_process_rss_mb"] = round(child_rss0 / 2**20, 1)

    def cpu_now() -> float:
        return time.process_time() + engine_stats()[1]

    # 1. hand-off from one greenlet, sequential
    n = int(3000 * scale)
    submit("noop")
    t0 = time.perf_counter()
    for _ in range(n):
        submit("noop")
    res["handoff_us"] = round((time.perf_counter() - t0) / n * 1e6, 1)

    # 2. measurements delivered to events.request (CPU of every process involved)
    m = int(40000 * scale)
    before, c0, t0 = bridge.samples_fired, cpu_now(), time.perf_counter()
    submit("emit", m)
    deadline = time.monotonic() + PHASE_TIMEOUT_S
    while bridge.samples_fired - before < m and time.monotonic() < deadline:
        gevent.sleep(0.005)
    res["measurement_wall_us"] = round((time.perf_counter() - t0) / m * 1e6, 2)
    res["measurement_cpu_us"] = round((cpu_now() - c0) / m * 1e6, 2)
    res["measurements_lost"] = m - (bridge.samples_fired - before)

    # 3. throughput with many greenlets
    errors: list[str] = []

    def guarded(fn: Callable[..., None]) -> Callable[..., None]:
        def run(*a: Any) -> None:
            try:
                fn(*a)
            except Exception as exc:  # counted and reported, not printed per greenlet
                errors.append(repr(exc)[:160])
        return run

    @guarded
    def worker(k: int) -> None:
        for _ in range(k):
            submit("tick")

    for g_count in (1000, 2000):
        k = max(2, int(10 * scale))
        n_err, c0, t0 = len(errors), cpu_now(), time.perf_counter()
        gs = [gevent.spawn(worker, k) for _ in range(g_count)]
        gevent.joinall(gs, timeout=PHASE_TIMEOUT_S)
        ok = all(g.ready() for g in gs) and len(errors) == n_err
        res[f"handoffs_per_s_{g_count}"] = round(g_count * k / (time.perf_counter() - t0)) if ok else None
        res[f"handoff_cpu_us_{g_count}"] = round((cpu_now() - c0) / (g_count * k) * 1e6, 1)

    # 4+6. n_clients connected clients, each pinging 5 times; RSS per client; nothing lost
    gc.collect()
    rss_a, rss_child_a = _rss(), engine_stats()[0]
    pings = 5

    @guarded
    def client(uid: int) -> None:
        submit("connect", uid)
        for _ in range(pings):
            submit("ping", uid)

    n_err, c0, t0 = len(errors), cpu_now(), time.perf_counter()
    gs = [gevent.spawn(client, uid) for uid in range(n_clients)]
    gevent.joinall(gs, timeout=PHASE_TIMEOUT_S)
    res["clients_wall_s"] = round(time.perf_counter() - t0, 2)
    res["clients_cpu_s"] = round(cpu_now() - c0, 2)
    gc.collect()
    rss_b, rss_child_b = _rss(), engine_stats()[0]
    res["rss_per_client_kib"] = round(((rss_b - rss_a) + (rss_child_b - rss_child_a)) / n_clients / 1024, 1)
    gevent.sleep(0.2)
    entries = env.stats.entries
    got_connect = entries[("connect", "xmpp")].num_requests if ("connect", "xmpp") in entries else 0
    got_ping = entries[("ping", "xmpp")].num_requests if ("ping", "xmpp") in entries else 0
    res["clients"] = n_clients
    res["clients_hung"] = sum(1 for g in gs if not g.ready())
    res["clients_failed"] = len(errors) - n_err
    res["samples_lost"] = (n_clients - got_connect) + (n_clients * pings - got_ping)
    submit("close_all")

    # 5. logins per CPU-second (client side), 200 greenlets in parallel
    n_logins, par = int(3000 * scale), 200

    @guarded
    def login_worker(ids: range) -> None:
        for uid in ids:
            submit("login", uid)

    n_err, c0, t0 = len(errors), cpu_now(), time.perf_counter()
    gs = [gevent.spawn(login_worker, range(i, n_logins, par)) for i in range(par)]
    gevent.joinall(gs, timeout=PHASE_TIMEOUT_S)
    wall, cpu = time.perf_counter() - t0, cpu_now() - c0
    res["logins_per_s_wall"] = round(n_logins / wall)
    res["logins_per_cpu_s"] = round(n_logins / cpu)
    res["login_failures"] = len(errors) - n_err + sum(1 for g in gs if not g.ready())
    if design == "A":
        res["loop_lag_p99_ms"] = round(bridge.loop_lag_ms(99.0, 60.0) or 0.0, 1)
        t0 = time.perf_counter()
        res["stopped_cleanly"] = bridge.stop(5.0)
        res["stop_s"] = round(time.perf_counter() - t0, 3)
    else:
        bridge.stop()
    res["base_rss_mb"] = round(rss0 / 2**20, 1)
    res["loop_exit"] = False  # a LoopExit would have raised out of this function
    res["errors"] = len(errors)
    res["error_examples"] = sorted(set(errors))[:3]
    return res


# --------------------------------------------------------------------------------------------
# orchestration
# --------------------------------------------------------------------------------------------
ROWS = [("idle hub: submit(sleep 0.3 s) took (s)", "idle_hub_wait_s"),
        ("hand-off, 1 greenlet sequential (us)", "handoff_us"),
        ("measurement delivered, CPU all procs (us)", "measurement_cpu_us"),
        ("measurement delivered, wall (us)", "measurement_wall_us"),
        ("hand-offs/s, 1,000 greenlets", "handoffs_per_s_1000"),
        ("hand-offs/s, 2,000 greenlets", "handoffs_per_s_2000"),
        ("hand-off CPU, 1,000 greenlets (us)", "handoff_cpu_us_1000"),
        ("hand-off CPU, 2,000 greenlets (us)", "handoff_cpu_us_2000"),
        ("RSS per connected client (KiB)", "rss_per_client_kib"),
        ("engine process extra RSS (MB)", "engine_process_rss_mb"),
        ("logins/s per CPU-second (client side)", "logins_per_cpu_s"),
        ("logins/s wall (200 greenlets)", "logins_per_s_wall"),
        ("clients connected + 5 pings each", "clients"),
        ("  that phase: wall s / CPU s", None),
        ("  hung / failed / samples lost", None),
        ("loop lag p99 (ms), A only", "loop_lag_p99_ms")]


def _table(a: dict[str, Any], b: dict[str, Any]) -> str:
    lines = [f"{'measure':44s} {'A: thread+loop':>16s} {'B: child+pipe':>16s}"]
    for label, key in ROWS:
        if key is None:
            keys = ("clients_wall_s", "clients_cpu_s") if "wall" in label else (
                "clients_hung", "clients_failed", "samples_lost")
            va, vb = ("/".join(str(d.get(k)) for k in keys) for d in (a, b))
        else:
            va, vb = str(a.get(key, "-")), str(b.get(key, "-"))
        lines.append(f"{label:44s} {va:>16s} {vb:>16s}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts (about a quarter)")
    parser.add_argument("--design", choices=("A", "B"))
    parser.add_argument("--server", action="store_true")
    parser.add_argument("--child", type=int, metavar="FD")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    global SERVER_PORT
    SERVER_PORT = args.port
    if args.server:
        asyncio.run(_serve())
        return
    if args.child is not None:
        asyncio.run(_child_engine(args.child))
        return
    if args.design:
        print(json.dumps(_run_design(args.design, args.quick)), flush=True)
        return

    server = subprocess.Popen([sys.executable, __file__, "--server"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        results = {}
        for design in ("A", "B"):
            out = subprocess.run([sys.executable, __file__, "--design", design, "--port", str(port)]
                                 + (["--quick"] if args.quick else []),
                                 capture_output=True, text=True, timeout=240, check=False)
            if out.returncode != 0:
                sys.stderr.write(out.stderr)
                raise SystemExit(f"design {design} failed (exit {out.returncode})")
            results[design] = json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        server.communicate(timeout=10)
    print(_table(results["A"], results["B"]))
    record = {"ts": time.time(), "quick": args.quick, "cpus": os.cpu_count(), "python": sys.version.split()[0],
              "A": results["A"], "B": results["B"]}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    existing = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    RESULTS.write_text(json.dumps(existing + [record], indent=1) + "\n")
    print(json.dumps(record))


if __name__ == "__main__":
    main()
