"""Shared plumbing of the ``bench/`` scripts: machine facts, results files, fd limits, loop lag,
the mock pair in its own processes, process-tree sampling and the table/JSON output.

Every bench script prints a table, then its result as ONE JSON object on the last line, and appends
``{"machine", "argv", "ts", ...result}`` to ``bench/results/<name>.json`` (a JSON list).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

__all__ = [
    "ROOT",
    "RESULTS_DIR",
    "GcMonitor",
    "LoopLagMonitor",
    "MockProcess",
    "TreeSample",
    "append_result",
    "count_established_to",
    "cpu_s",
    "emit",
    "machine_info",
    "percentile",
    "raise_fd_limit",
    "raise_fd_limit_in_child",
    "sample_tree",
    "wait_for_low_load",
]

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "bench" / "results"
FD_LIMIT = 1 << 17
#: SRM timers that reach Normal in about a second (Cisco's 15 s heartbeat makes start-up slow) with
#: timeouts long enough that a node busy with a login storm is not declared dead.
SRM_QUICK_START = ("heartbeat_interval_s=0.5", "heartbeat_timeout_s=15", "init_heartbeat_timeout_s=15")


def raise_fd_limit(wanted: int = FD_LIMIT) -> int:
    """Raise RLIMIT_NOFILE of this process (the hard limit too when allowed, e.g. as root).

    Returns:
        The soft limit now in force.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for new_hard in (max(hard, wanted), hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, new_hard), new_hard))
            break
        except (ValueError, OSError):
            continue
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def raise_fd_limit_in_child() -> None:
    """``preexec_fn`` for subprocesses (mock nodes inherit it from the supervisor, Tsung's VM, Prosody)."""
    raise_fd_limit()


def cpu_s() -> float:
    """User + system CPU seconds of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100, nearest-rank on the sorted values); None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(q / 100.0 * len(ordered) + 0.5)) - 1))
    return ordered[rank]


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    """Facts about the box a figure was taken on (load average at the moment of the call)."""
    load1, load5, load15 = os.getloadavg()
    return {
        "nproc": os.cpu_count(), "cpu_model": _cpu_model(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "load_avg": [round(load1, 2), round(load5, 2), round(load15, 2)],
        "python": platform.python_version(), "platform": platform.platform(),
        "slixmpp": _version("slixmpp"), "zeep": _version("zeep"), "aiohttp": _version("aiohttp"),
    }


def wait_for_low_load(max_load: float | None, max_wait_s: float) -> dict[str, Any]:
    """Wait (bounded) until the 1-minute load average is at most ``max_load``.

    Args:
        max_load: the threshold; None does not wait.
        max_wait_s: give up waiting after this many seconds (the run then goes on, flagged).

    Returns:
        ``{"load_before": [..], "waited_s": s, "load_ok": bool}``.
    """
    t0 = time.monotonic()
    while max_load is not None and os.getloadavg()[0] > max_load and time.monotonic() - t0 < max_wait_s:
        time.sleep(5.0)
    load = [round(v, 2) for v in os.getloadavg()]
    return {"load_before": load, "waited_s": round(time.monotonic() - t0, 1),
            "load_ok": max_load is None or load[0] <= max_load}


def append_result(name: str, result: dict[str, Any], results_dir: Path | None = None) -> Path:
    """Append ``result`` to ``<results_dir>/<name>.json`` (a JSON list); returns the path."""
    out = (results_dir or RESULTS_DIR) / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    history: list[Any] = []
    if out.exists():
        with contextlib.suppress(ValueError):
            history = json.loads(out.read_text(encoding="utf-8"))
    history.append(result)
    out.write_text(json.dumps(history, indent=1) + "\n", encoding="utf-8")
    return out


def emit(name: str, rows: Iterable[tuple[str, Any, Any]], result: dict[str, Any], *,
         results_dir: Path | None = None, save: bool = True) -> None:
    """Print the table (metric | ours | Tsung), save the result, print it as the last line.

    A ``--smoke`` result (``result["smoke"]``) is saved only into an explicit ``results_dir``: the
    figures in ``bench/results/`` are the ones BENCHMARKS.md quotes."""
    rows = list(rows)
    width = max([len(r[0]) for r in rows] + [10])
    sys.stdout.write(f"{'metric':<{width}}  {'jabberemu':>14}  {'tsung':>14}\n")
    for label, ours, theirs in rows:
        sys.stdout.write(f"{label:<{width}}  {_cell(ours):>14}  {_cell(theirs):>14}\n")
    if save and result.get("smoke") and results_dir is None:
        sys.stdout.write("(a smoke run: not appended to bench/results/; --results-dir DIR keeps it)\n")
    elif save:
        path = append_result(name, result, results_dir)
        sys.stdout.write(f"(appended to {path})\n")
    sys.stdout.write(json.dumps(result, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)


class LoopLagMonitor:
    """Event-loop lag: how late a ``sleep(interval_s)`` wakes up, sampled continuously.

    Args:
        interval_s: the sleep between samples.
    """

    def __init__(self, interval_s: float = 0.05) -> None:
        self.interval_s = interval_s
        self.samples_ms: list[tuple[float, float]] = []  # (monotonic, lag_ms)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start sampling on the running loop."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            t0 = time.monotonic()
            await asyncio.sleep(self.interval_s)
            t1 = time.monotonic()
            self.samples_ms.append((t1, max(0.0, (t1 - t0 - self.interval_s) * 1000.0)))

    async def stop(self) -> None:
        """Stop sampling."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def summary(self, since: float = 0.0, until: float = float("inf")) -> dict[str, float | None]:
        """p50/p99/max lag in ms of the samples taken in ``[since, until]`` (monotonic seconds)."""
        window = [(t, lag) for t, lag in self.samples_ms if since <= t <= until]
        lags = [lag for _, lag in window]
        worst = sorted(window, key=lambda s: -s[1])[:8]
        return {"lag_p50_ms": _r(percentile(lags, 50)), "lag_p99_ms": _r(percentile(lags, 99)),
                "lag_max_ms": _r(max(lags) if lags else None), "lag_samples": len(lags),
                "lag_over_50ms": sum(1 for v in lags if v > 50.0),
                "lag_worst": [[round(t - since, 2), round(v, 1)] for t, v in sorted(worst)] if since else []}


class GcMonitor:
    """Durations of the garbage collector's passes (``gc.callbacks``), to tell GC pauses from load."""

    def __init__(self) -> None:
        self.passes: list[tuple[float, int, float]] = []  # (monotonic start, generation, ms)
        self._t0 = 0.0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._t0 = time.monotonic()
        else:
            self.passes.append((self._t0, int(info.get("generation", -1)), (time.monotonic() - self._t0) * 1000.0))

    def start(self) -> None:
        import gc

        gc.callbacks.append(self._callback)

    def stop(self) -> None:
        import gc

        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._callback)

    def summary(self, since: float = 0.0, until: float = float("inf")) -> dict[str, Any]:
        """Passes per generation, total and longest pause (ms) in ``[since, until]``."""
        window = [p for p in self.passes if since <= p[0] <= until]
        gen2 = [ms for _, g, ms in window if g == 2]
        return {"gc_passes": len(window), "gc_total_ms": round(sum(ms for *_, ms in window), 1),
                "gc_gen2_passes": len(gen2), "gc_max_ms": round(max((ms for *_, ms in window), default=0.0), 1)}


def _r(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


@dataclass(frozen=True, kw_only=True)
class TreeSample:
    """One look at a process tree: wall time, summed RSS and CPU, established connections."""

    t: float
    rss_bytes: int
    cpu_s: float
    connections: int


def _socket_inodes(pids: Iterable[int]) -> set[str]:
    inodes: set[str] = set()
    for pid in pids:
        fd_dir = f"/proc/{pid}/fd"
        with contextlib.suppress(OSError):
            for fd in os.listdir(fd_dir):
                with contextlib.suppress(OSError):
                    target = os.readlink(f"{fd_dir}/{fd}")
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
    return inodes


def count_established_to(port: int, pids: Iterable[int] | None = None) -> int:
    """Established TCP (IPv4) client sockets whose remote port is ``port``.

    Reads ``/proc/net/tcp`` once; with ``pids`` only sockets those processes hold are counted
    (other engineers' connections on the same box are not ours to count).
    """
    want = f":{port:04X}"
    inodes = _socket_inodes(pids) if pids is not None else None
    count = 0
    with contextlib.suppress(OSError), open("/proc/net/tcp", encoding="ascii") as f:
        next(f, None)
        for line in f:
            parts = line.split()
            if len(parts) > 9 and parts[3] == "01" and parts[2].endswith(want) \
                    and (inodes is None or parts[9] in inodes):
                count += 1
    return count


def sample_tree(root: psutil.Process, remote_port: int | None = None) -> TreeSample:
    """RSS and CPU summed over ``root`` and its descendants; connections to ``remote_port``
    (counted box-wide with :func:`count_established_to`, 0 when None)."""
    procs = [root]
    with contextlib.suppress(psutil.Error):
        procs += root.children(recursive=True)
    rss = 0
    cpu = 0.0
    for p in procs:
        try:
            rss += p.memory_info().rss
            times = p.cpu_times()
            cpu += times.user + times.system
        except psutil.Error:
            continue
    conns = count_established_to(remote_port, [p.pid for p in procs]) if remote_port is not None else 0
    return TreeSample(t=time.monotonic(), rss_bytes=rss, cpu_s=cpu, connections=conns)


@dataclass(kw_only=True)
class MockProcess:
    """``python -m mock_server`` in processes of its own (supervisor + two nodes), on free ports.

    Args:
        users: users to provision (``user00001``... with password ``pass-<user>``).
        extra_args: more ``python -m mock_server`` options (``--param``, ``--contacts``...).
        assignment: ``active-standby`` puts every user on node 1.
    """

    users: int
    extra_args: Sequence[str] = ()
    assignment: str = "active-standby"
    topology: dict[str, Any] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    _dir: tempfile.TemporaryDirectory[str] | None = None

    @contextlib.asynccontextmanager
    async def running(self, start_timeout_s: float = 90.0) -> AsyncIterator[MockProcess]:
        """Start the pair, wait for its topology and both nodes Normal; stop it on exit."""
        self._dir = tempfile.TemporaryDirectory(prefix="bench-mock-")
        topo = Path(self._dir.name) / "topology.json"
        params = [a for p in SRM_QUICK_START for a in ("--param", p)]
        cmd = [sys.executable, "-m", "mock_server", "--users", str(self.users), "--assignment", self.assignment,
               "--topology-out", str(topo), "--log-level", "WARNING", *params, *self.extra_args]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL,
                                     stderr=open(Path(self._dir.name) / "mock.err", "wb"),  # noqa: SIM115
                                     preexec_fn=raise_fd_limit_in_child)
        try:
            deadline = time.monotonic() + start_timeout_s
            while not (topo.exists() and topo.stat().st_size > 0):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"mock pair did not start: {self.stderr_tail()}")
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.05)
            self.topology = json.loads(topo.read_text(encoding="utf-8"))
            await self.wait_normal(deadline)
            yield self
        finally:
            await self.stop()

    async def admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Call the mock's admin API; returns decoded JSON."""
        import aiohttp

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            async with session.request(method, self.topology["admin_url"] + path, json=body) as resp:
                data = await resp.json(content_type=None)
                if resp.status >= 400:
                    raise RuntimeError(f"admin {method} {path} answered {resp.status}: {data}")
                return data

    async def wait_normal(self, deadline: float) -> None:
        while True:
            status = await self.admin("GET", "/api/status")
            if all(n.get("state") == "Normal" for n in status["nodes"]):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"mock nodes not Normal: {status}")
            await asyncio.sleep(0.2)

    def node(self, index: int = 0) -> dict[str, Any]:
        """The topology entry of node ``index``."""
        return self.topology["nodes"][index]  # type: ignore[no-any-return]

    def sample(self) -> TreeSample:
        """RSS/CPU of the whole mock (supervisor + nodes)."""
        assert self.proc is not None
        return sample_tree(psutil.Process(self.proc.pid))

    def stderr_tail(self, chars: int = 2000) -> str:
        if self._dir is None:
            return ""
        with contextlib.suppress(OSError):
            return (Path(self._dir.name) / "mock.err").read_text(errors="replace")[-chars:]
        return ""

    async def stop(self) -> None:
        """SIGINT the supervisor (it stops its nodes), kill after 20 s (idempotent)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            deadline = time.monotonic() + 20.0
            while self.proc.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            if self.proc.poll() is None:
                for child in psutil.Process(self.proc.pid).children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        child.kill()
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None


def mean(values: Sequence[float]) -> float | None:
    """Arithmetic mean, None when empty."""
    return statistics.fmean(values) if values else None
