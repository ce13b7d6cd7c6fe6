"""Issue 17's figure: the failover and fallback of a whole node, Active-Standby, from one machine,
on the product path, with the generator's default settings (no tuning flag; ``--processes`` = the cores).

The drill's window is this script's (``--lower 30 --upper 180`` by default, not Cisco's 120/537 s): with
15,000 clients each wave is ~100 re-logins/s, the rate issue 17 asks of this bench, and both waves fit in
~10 minutes. The mock's login rate is unlimited, so that what is measured is the generator: with every
client moving, a throttled node would spread the wave by its own queue.

One ``jabberemu drill --assignment active-standby`` (the mock pair as a child process, the Locust
swarm over ``--processes`` = the cores, failover, fallback, report): every client is homed on node 1,
so each wave moves all of them. The mock's login rate is unlimited (``--login-rate 0``): this measures
the generator, not a throttled server. From the run directory it then reads:

- **timeliness**: for each first re-login attempt, the client's state record leaving ``FAILOVER``
  against the wait it drew (``client_events``: the ``wait`` record's ``ts + wait_s``): the share
  within +50 ms, late p50/p99/max, and any attempt early by more than 5 ms;
- **lost clients**: clients whose last state is not ``LOGGED_OUT`` after the fallback (every client
  signs out at the end), from ``summary.json`` ``end_states``;
- **loop lag** of every worker (``generator.jsonl``): p99 and max of the per-second ``loop_lag_ms``
  over the run, and until the drill's stop (the final sign-out of every client at once is no wave);
- **generator cost** (the drill's process tree, sampled once a second with psutil: the Locust swarm,
  master and workers, apart from the mock's processes and the drill's own): CPU per login over the
  ramp (first client start -> last client connected), CPU per re-login over each wave (the fault ->
  the wave's last re-login), raw and less the swarm's idle rate in the wave's settled tail (every client
  connected, until the next action); RSS per client (the slope of the swarm's RSS through the ramp's
  middle, per client added); the samples are kept in ``<out>/c<N>-tree.jsonl`` (``--analyse-only`` reads
  a finished run again);
- **the same sessions' XMPP-only login, ours and Tsung's, in the same run** (``--no-tsung`` skips both):
  after the drill, each against a fresh mock pair (same users, same mock defaults), the XMPP-only login
  (SASL PLAIN with the password, bind, session, roster, presence) of the same N sessions at the ramp's
  rate: ours on the product path (a headless Locust swarm with ``--xmpp-only`` over the drill's worker
  processes, sampled as the drill's tree), then Tsung's; CPU per login and RSS per client or session of
  each, and the ratios ours / Tsung: XMPP-only against XMPP-only (issue 17's ratio), and the drill's full
  login (CPA SOAP + XMPP with the one-time password) against Tsung's XMPP-only one. The arrivals differ:
  Locust's master hands each worker its share of a second's users in one message and the worker starts
  them back to back, where Tsung spaces its arrivals evenly (on this VM evenly spaced logins cost more
  each: BENCHMARKS.md section 2; ``bench/login_cost.py`` compares both at even spacing on the bench path);
  ``--comparison-only`` runs this part again beside a finished drill;
- the verdict and the wall time.

    .venv/bin/python bench/node_failover.py --clients 15000            # ~13 min on a 2-core box, Tsung's part included
    .venv/bin/python bench/node_failover.py --clients 2000 --upper 60  # a quick look

Not a test: a quiet box for its whole length. Figures go to BENCHMARKS.md; the JSON result to
``<out>/c<clients>-result.json`` and, on the default schedule (ramp, limits, margin), to
``bench/results/node_failover-<clients>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))

from jabberemu.rundata.files import CLIENT_EVENTS_FILE, GENERATOR_FILE  # noqa: E402
from jabberemu.rundata.segments import JsonlReader  # noqa: E402

LATE_MS = 50.0
ROLES = ("swarm", "mock", "drill")


def records(run: Path, name: str) -> Iterator[dict[str, Any]]:
    """Records of the JSONL file ``name`` of the run, every segment in write order (the report's reader:
    a closed segment once, even beside a plain leftover of it; a cut last line tolerated)."""
    for _path, _line, record in JsonlReader(run, name, []):
        yield record


def lateness_ms(run: Path) -> np.ndarray:
    """Per first re-login attempt: (leaving FAILOVER) - (wait record ts + wait_s), in ms."""
    waits: dict[str, list[tuple[float, float]]] = {}
    leaves: dict[str, list[float]] = {}
    for r in records(run, CLIENT_EVENTS_FILE):
        if r.get("type") == "wait":
            waits.setdefault(r["client"], []).append((r["ts"], r["wait_s"]))
        elif r.get("type") == "state" and r.get("from") == "FAILOVER":
            leaves.setdefault(r["client"], []).append(r["ts"])
    late = []
    for client, drawn in waits.items():
        left = sorted(leaves.get(client, []))
        for ts, wait_s in drawn:
            after = [t for t in left if t >= ts]
            if after:
                late.append((after[0] - (ts + wait_s)) * 1000.0)
    return np.asarray(late, dtype=float)


@dataclass
class Windows:
    """When the drill's phases ran (Unix seconds, from ``client_events``) and how many clients each moved."""

    ramp_start: float
    ramp_end: float
    logins: int
    waves: list[dict[str, Any]] = field(default_factory=list)  # kind, start, end, relogins, until


def windows(run: Path) -> Windows:
    """The ramp (first client record -> last first-login ``connected``) and each wave (its fault action in
    ``run.json`` -> the last re-login ``connected`` before the next action, ``until``) with their client
    counts."""
    actions = json.loads((run / "run.json").read_text(encoding="utf-8")).get("actions", [])
    marks = sorted((float(a["ts"]), str(a["action"])) for a in actions if a.get("action") in ("failover", "fallback"))
    stop = min((float(a["ts"]) for a in actions if a.get("action") == "stop"), default=float("inf"))
    first = float("inf")
    ramp_end, logins = 0.0, 0
    untils = [ts for ts, _kind in marks[1:]] + [stop]  # a wave lasts until the next action
    waves: list[dict[str, Any]] = [{"kind": kind, "start": ts, "end": ts, "relogins": 0, "until": until}
                                   for (ts, kind), until in zip(marks, untils)]
    for r in records(run, CLIENT_EVENTS_FILE):
        first = min(first, float(r["ts"]))
        if r.get("type") != "connected":
            continue
        ts = float(r["ts"])
        if not r.get("relogin"):
            logins += 1
            ramp_end = max(ramp_end, ts)
            continue
        for wave in waves:
            if wave["start"] <= ts < wave["until"]:
                wave["relogins"] += 1
                wave["end"] = max(wave["end"], ts)
    return Windows(ramp_start=first, ramp_end=ramp_end, logins=logins, waves=waves)


class TreeSampler:
    """CPU seconds and RSS of a process tree once a second, summed per role: ``swarm`` (``python -m locust``:
    the master and its forked workers), ``mock`` (``python -m mock_server...``: the supervisor, its zygote
    and the nodes forked from it) and ``drill`` (the rest: the drill's own process)."""

    def __init__(self, pid: int, period_s: float = 1.0) -> None:
        self.root = psutil.Process(pid)
        self.period_s = period_s
        self.samples: list[tuple[float, dict[str, float], dict[str, int]]] = []  # (ts, cpu_s, rss_bytes) per role
        self._roles: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-sampler", daemon=True)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(5.0)

    def _role(self, proc: psutil.Process) -> str:
        """By the module a process runs (forked children keep their parent's command line); ``drill`` is
        not remembered: a child caught between fork and exec still shows the drill's command line."""
        if proc.pid in self._roles:
            return self._roles[proc.pid]
        args = proc.cmdline()[1:3]
        role = "drill"
        if len(args) == 2 and args[0] == "-m":
            if args[1] == "locust" or args[1].startswith("locust."):
                role = "swarm"
            elif args[1] == "mock_server" or args[1].startswith("mock_server."):
                role = "mock"
        if role != "drill":
            self._roles[proc.pid] = role
        return role

    def _run(self) -> None:
        while not self._stop.is_set():
            cpu = dict.fromkeys(ROLES, 0.0)
            rss = dict.fromkeys(ROLES, 0)
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:
                return
            for proc in procs:
                try:
                    role = self._role(proc)
                    times = proc.cpu_times()
                    cpu[role] += times.user + times.system
                    rss[role] += proc.memory_info().rss
                except psutil.Error:
                    continue
            self.samples.append((time.time(), cpu, rss))
            self._stop.wait(self.period_s)


def generator_cost(samples: list[tuple[float, dict[str, float], dict[str, int]]], win: Windows) -> dict[str, Any]:
    """CPU per login and re-login and RSS per client of the swarm (see the module docstring)."""
    if len(samples) < 2 or not win.logins:
        return {}
    t = np.array([s[0] for s in samples])
    cpu_s = np.array([s[1]["swarm"] for s in samples])
    rss_bytes = np.array([float(s[2]["swarm"]) for s in samples])

    def cpu(ts: float) -> float:  # the swarm's cumulative CPU seconds at ts, between samples
        return float(np.interp(ts, t, cpu_s))

    out: dict[str, Any] = {
        "ramp_s": round(win.ramp_end - win.ramp_start, 1), "logins": win.logins,
        "cpu_per_login_ms": round((cpu(win.ramp_end) - cpu(win.ramp_start)) / win.logins * 1000.0, 3),
        "rss_swarm_mib": round(float(np.interp(win.ramp_end, t, rss_bytes)) / 2**20, 1),
    }
    # RSS per client: the slope of the swarm's RSS through the ramp's middle (least squares) per client added
    # there; not (end - start) / N, which takes in the processes' own start (imports, first buffers) still
    # going on when the first clients start
    span = win.ramp_end - win.ramp_start
    mid = (t >= win.ramp_start + 0.15 * span) & (t <= win.ramp_end - 0.05 * span)
    if mid.sum() >= 3:
        slope = np.polyfit(t[mid], rss_bytes[mid], 1)[0]  # bytes per second
        out["rss_per_client_kib"] = round(float(slope) / (win.logins / span) / 1024.0, 1)
    out["waves"] = []
    for w in win.waves:
        n, start, end = w["relogins"], w["start"], w["end"]
        if not n:
            continue
        used = cpu(end) - cpu(start)
        # idle: the wave's settled tail, every client connected and none moving (1 s after its last re-login
        # -> 0.5 s before the next action); None when shorter than 2 s
        tail = (end + 1.0, min(w["until"], t[-1]) - 0.5)
        idle_rate = (cpu(tail[1]) - cpu(tail[0])) / (tail[1] - tail[0]) if tail[1] - tail[0] >= 2.0 else None
        out["waves"].append({
            "kind": w["kind"], "relogins": n, "window_s": round(end - start, 1),
            "cpu_per_relogin_ms": round(used / n * 1000.0, 3),
            "idle_cpu_percent": round(idle_rate * 100.0, 1) if idle_rate is not None else None,
            "cpu_per_relogin_less_idle_ms": round((used - idle_rate * (end - start)) / n * 1000.0, 3)
            if idle_rate is not None else None})
    return out


async def tsung_same_sessions(clients: int, rate: float) -> dict[str, Any]:
    """Tsung's XMPP-only login of ``clients`` sessions at ``rate`` against a fresh mock pair (its defaults)."""
    from benchkit import MockProcess, raise_fd_limit
    from emulated import mock_users
    from tsung_runner import run_tsung, tsung_available

    if not tsung_available():
        return {"skipped": "tsung not installed"}
    raise_fd_limit()
    async with MockProcess(users=clients).running() as mock:
        node = mock.node(0)
        result = await run_tsung(host=node["xmpp_host"], port=node["xmpp_port"], domain=mock.topology["presence_domain"],
                                 users=mock_users(clients), rate_per_s=rate, hold_s=clients / rate + 30.0)
    out = result.as_dict()
    out.pop("stats", None)
    out["logins"] = int(result.stats.get("tr_login", {}).get("count", 0))
    return out


async def ours_xmpp_only_same_sessions(clients: int, rate: float, out: Path) -> dict[str, Any]:
    """Our XMPP-only login (``--xmpp-only``: SASL PLAIN with the password, bind, session, roster, presence) of
    ``clients`` sessions at ``rate`` on the product path, against a fresh mock pair like Tsung's: a headless
    Locust swarm over the drill's worker processes, held ~20 s after its ramp, its process tree sampled as
    the drill's; CPU per login over the ramp and RSS per client as :func:`generator_cost` computes them."""
    from benchkit import MockProcess, raise_fd_limit

    from jabberemu.drill import LOCUSTFILE, default_processes

    raise_fd_limit()
    run_dir = out / "xmpp-only"
    shutil.rmtree(run_dir, ignore_errors=True)  # this bench's scratch (the swarm refuses a directory holding a run)
    run_dir.mkdir(parents=True)
    async with MockProcess(users=clients).running() as mock:
        topology = out / "xmpp-only-topology.json"
        topology.write_text(json.dumps(mock.topology), encoding="utf-8")
        processes = default_processes()
        cmd = [str(ROOT / ".venv/bin/python"), "-m", "locust", "-f", LOCUSTFILE, "--headless", "--only-summary",
               "-u", str(clients), "-r", f"{rate:g}", "-t", f"{int(clients / rate + 20)}s", "--stop-timeout", "10",
               "--topology", str(topology), "--run-dir", str(run_dir), "--xmpp-only", "--exit-code-on-error", "0"]
        if processes > 1:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = str(s.getsockname()[1])
            cmd += ["--processes", str(processes), "--master-bind-host", "127.0.0.1", "--master-bind-port", port,
                    "--master-port", port]
        with (out / "xmpp-only.log").open("wb") as log:
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
            with TreeSampler(proc.pid) as tree:
                try:
                    rc = await asyncio.to_thread(proc.wait, clients / rate + 300.0)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    rc = proc.wait()
    cost = generator_cost(tree.samples, windows(run_dir))
    cost.pop("waves", None)
    return {"exit_code": rc, "processes": processes, **cost}


def loop_lag(run: Path) -> dict[str, dict[str, float | int | None]]:
    """Per worker: p99 and max of the per-second loop lag (ms), over the whole run and until the drill's
    ``stop`` action (``run.json``): the final sign-out of every client at once is no part of the waves."""
    actions = json.loads((run / "run.json").read_text(encoding="utf-8")).get("actions", [])
    stop = min((a["ts"] for a in actions if a.get("action") == "stop"), default=float("inf"))
    by_worker: dict[str, list[tuple[float, float]]] = {}
    for r in records(run, GENERATOR_FILE):
        if r.get("loop_lag_ms") is not None:
            by_worker.setdefault(r["worker"], []).append((float(r["ts"]), float(r["loop_lag_ms"])))
    out: dict[str, dict[str, float | int | None]] = {}
    for w, pairs in sorted(by_worker.items()):
        v = np.array([lag for _ts, lag in pairs])
        before = np.array([lag for ts, lag in pairs if ts < stop])
        out[w] = {"p99_ms": float(np.percentile(v, 99)), "max_ms": float(v.max()), "samples": len(v),
                  "until_stop_p99_ms": float(np.percentile(before, 99)) if before.size else None,
                  "until_stop_max_ms": float(before.max()) if before.size else None}
    return out


def _read_tree(path: Path) -> list[tuple[float, dict[str, float], dict[str, int]]]:
    with path.open(encoding="utf-8") as f:
        return [(r["ts"], r["cpu_s"], r["rss_bytes"]) for r in map(json.loads, f)]


def _ratios(result: dict[str, Any]) -> None:
    ours, tsung, xmpp_only = result.get("cost") or {}, result.get("tsung") or {}, result.get("xmpp_only") or {}
    if tsung.get("cpu_per_login_ms") and xmpp_only.get("cpu_per_login_ms"):
        result["ratio_cpu_xmpp_only_over_tsung"] = round(xmpp_only["cpu_per_login_ms"] / tsung["cpu_per_login_ms"], 2)
    if tsung.get("rss_per_session_kib") and xmpp_only.get("rss_per_client_kib"):
        result["ratio_rss_xmpp_only_over_tsung"] = round(xmpp_only["rss_per_client_kib"] / tsung["rss_per_session_kib"],
                                                         2)
    if tsung.get("cpu_per_login_ms") and ours.get("cpu_per_login_ms"):
        result["ratio_cpu_full_login_over_tsung_xmpp_only"] = round(ours["cpu_per_login_ms"] / tsung["cpu_per_login_ms"], 2)
    if tsung.get("rss_per_session_kib") and ours.get("rss_per_client_kib"):
        result["ratio_rss_per_client_over_tsung"] = round(ours["rss_per_client_kib"] / tsung["rss_per_session_kib"], 2)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=15000)
    p.add_argument("--ramp", type=float, default=100.0, help="initial logins/s (default %(default)s)")
    p.add_argument("--lower", type=float, default=30.0, help="Client Re-Login Lower Limit, s (default %(default)s)")
    p.add_argument("--upper", type=float, default=180.0, help="Client Re-Login Upper Limit, s (default %(default)s)")
    p.add_argument("--margin", type=float, default=15.0,
                   help="seconds after upper for a wave to settle (default %(default)s: a worker of 7,500 clients "
                        "takes ~5 s to handle a node's stream errors, so the last waits start up to 6 s after the "
                        "first; with the drill's 5 s a client drawing ~upper re-logged in as the fallback came)")
    p.add_argument("--out", type=Path, default=Path("/tmp/node_failover"))
    p.add_argument("--timeout", type=float, default=3600.0, help="give up after this many seconds")
    p.add_argument("--no-tsung", action="store_true", help="skip the same sessions' XMPP-only logins (ours and Tsung's) after the drill")
    p.add_argument("--comparison-only", action="store_true",
                   help="as --analyse-only, then the same sessions' XMPP-only logins (ours and Tsung's) again")
    p.add_argument("--analyse-only", action="store_true",
                   help="no run: read the run directory, tree samples and result a previous run left in --out "
                        "again (Tsung's figures are kept from that result)")
    args = p.parse_args(argv)
    out = args.out / f"c{args.clients}"
    tree_file, result_file = args.out / f"c{args.clients}-tree.jsonl", args.out / f"c{args.clients}-result.json"
    if args.comparison_only:
        args.analyse_only = True
    if args.analyse_only:
        if not (result_file.exists() and tree_file.exists()):
            p.error(f"--analyse-only: no {result_file.name} and {tree_file.name} in {args.out} (a full run with "
                    "this --out and --clients leaves them)")
        before = json.loads(result_file.read_text(encoding="utf-8"))
        rc, wall_s, samples = before["exit_code"], before["wall_s"], _read_tree(tree_file)
    else:
        cmd = [str(ROOT / ".venv/bin/jabberemu"), "drill", "--clients", str(args.clients), "--ramp",
               f"{args.ramp:g}", "--lower", f"{args.lower:g}", "--upper", f"{args.upper:g}", "--assignment",
               "active-standby", "--login-rate", "0", "--margin", f"{args.margin:g}", "--out", str(out)]
        print("$", " ".join(["jabberemu", *cmd[1:]]), flush=True)
        shutil.rmtree(out, ignore_errors=True)  # this bench's scratch: the drill refuses a directory holding a run
        out.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        with (args.out / f"c{args.clients}.log").open("wb") as log:
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
            with TreeSampler(proc.pid) as tree:
                try:
                    rc = proc.wait(args.timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    rc = proc.wait()
        wall_s = round(time.monotonic() - t0, 1)
        samples = tree.samples
        with tree_file.open("w", encoding="utf-8") as f:
            for ts, cpu, rss in samples:
                f.write(json.dumps({"ts": ts, "cpu_s": cpu, "rss_bytes": rss}) + "\n")
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    late = lateness_ms(out)
    end_states = summary.get("end_states", {})
    result = {
        "clients": args.clients, "lower_s": args.lower, "upper_s": args.upper, "ramp": args.ramp,
        "verdict": summary.get("verdict"), "exit_code": rc, "wall_s": wall_s,
        "end_states": end_states, "lost": args.clients - int(end_states.get("LOGGED_OUT", 0)),
        "waves": [{k: w.get(k) for k in ("kind", "clients", "recovered", "pending")} for w in summary["ha_events"]],
        "attempts": int(late.size),
        "within_50ms_pct": float(np.mean(late <= LATE_MS) * 100) if late.size else None,
        "late_p50_ms": float(np.percentile(late, 50)) if late.size else None,
        "late_p99_ms": float(np.percentile(late, 99)) if late.size else None,
        "late_max_ms": float(late.max()) if late.size else None,
        "early_over_5ms": int(np.sum(late < -5.0)),
        "loop_lag": loop_lag(out),
        "generator": {k: summary.get("generator", {}).get(k) for k in ("description", "stall_share", "saturated")},
        "cost": generator_cost(samples, windows(out)),
    }
    if args.analyse_only and not args.comparison_only:
        for key in ("xmpp_only", "tsung"):
            if key in before:
                result[key] = before[key]
    elif not args.no_tsung:
        print(f"Ours: {args.clients} XMPP-only logins at {args.ramp:g}/s (Locust swarm) against a fresh mock pair",
              flush=True)
        result["xmpp_only"] = asyncio.run(ours_xmpp_only_same_sessions(args.clients, args.ramp, args.out))
        print(f"Tsung: {args.clients} XMPP-only logins at {args.ramp:g}/s against a fresh mock pair", flush=True)
        result["tsung"] = asyncio.run(tsung_same_sessions(args.clients, args.ramp))
    _ratios(result)
    result_file.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    if (args.ramp, args.lower, args.upper, args.margin) == (p.get_default("ramp"), p.get_default("lower"),
                                                           p.get_default("upper"), p.get_default("margin")):
        results = ROOT / "bench" / "results"  # the figures BENCHMARKS.md quotes: the default schedule only
        results.mkdir(exist_ok=True)
        (results / f"node_failover-{args.clients}.json").write_text(json.dumps(result, indent=1) + "\n",
                                                                    encoding="utf-8")
    print(json.dumps(result, indent=1))
    return 0 if result["lost"] == 0 and result["within_50ms_pct"] == 100.0 else 1


if __name__ == "__main__":
    sys.exit(main())
