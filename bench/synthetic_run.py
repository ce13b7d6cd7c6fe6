"""A synthetic soak run directory, and what ``jabberemu report`` needs to read it (time, peak memory).

Writes ``reports``-style run data for CLIENTS clients over HOURS hours through the real writer
(``jabberemu.rundata``: rotated gzip segments, ``request_summary`` records at ``--detail summary``):
a sign-in ramp, then a failover of node 1 every ``--drill-every`` seconds alternating with its
fallback, each moving node 1's half of the (Balanced) users with waits drawn in [lower, upper]
(Cisco's 120/537 s by default); activity on (one message and one presence change per client per
45 s, a ping every 60 s); the mock's per-second node metrics and SRM events, one generator sample a
second. Every record has the shape the emulator writes, so the run-data size per client-hour and the
report's cost are those of a real soak of that size. With ``--measure`` it then runs ``jabberemu
report`` under ``/usr/bin/time -v`` and records the wall time and peak RSS (also ``--old-loader``:
the in-memory loader, for the before figure).

    .venv/bin/python bench/synthetic_run.py --hours 8 --clients 15000 --out /tmp/soak8h --measure
    .venv/bin/python bench/synthetic_run.py --hours 1 --clients 2000 --detail full --out /tmp/soak1h \\
        --measure --old-loader
    .venv/bin/python bench/synthetic_run.py --smoke

Bounded: at most ``--hours`` of data (<= 48) and ``--clients`` (<= 100,000); loopback only (no I/O
but files).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchkit import ROOT, emit, machine_info  # noqa: E402

sys.path.insert(0, str(ROOT))
from jabberemu.rundata import (  # noqa: E402
    CLIENT_EVENTS_FILE,
    GENERATOR_FILE,
    SERVER_EVENTS_FILE,
    SERVER_METRICS_FILE,
    RotatingJsonlWriter,
    segment_paths,
)
from jabberemu.rundata.files import run_dir_problem  # noqa: E402
from jabberemu.rundata.histogram import GROWTH  # noqa: E402

NODES = ("imp1.example.test", "imp2.example.test")
STARTED_TS = 1_750_000_000.0
_LOG_G = math.log(GROWTH)


class _Writer:
    """Client records of one time chunk, sorted then written (records leave in time order)."""

    def __init__(self, run_dir: Path, rotate_bytes: int | None) -> None:
        self.events = RotatingJsonlWriter(run_dir, CLIENT_EVENTS_FILE, rotate_bytes=rotate_bytes)
        self.pending: list[tuple[float, int, dict[str, Any]]] = []
        self.seq = 0

    def add(self, ts: float, rec: dict[str, Any]) -> None:
        rec["ts"] = round(ts, 6)
        self.pending.append((rec["ts"], self.seq, rec))
        self.seq += 1

    def flush_until(self, ts: float) -> None:
        self.pending.sort(key=lambda p: (p[0], p[1]))
        k = 0
        for k, (t, _, rec) in enumerate(self.pending):  # noqa: B007
            if t >= ts:
                break
            self.events.write(rec)
        else:
            k = len(self.pending)
        self.pending = self.pending[k:]

    def close(self) -> None:
        self.flush_until(math.inf)
        self.events.close()


def _state(w: _Writer, ts: float, c: str, old: str, new: str, node: str, rnd: int, reason: str | None = None) -> None:
    w.add(ts, {"type": "state", "client": c, "from": old, "to": new, "node": node, "reason": reason, "round": rnd})


def _req(w: _Writer, ts: float, c: str, rtype: str, name: str, node: str, rt_ms: float, ok: bool = True,
         cause: str | None = None) -> None:
    w.add(ts, {"type": "request", "client": c, "request_type": rtype, "name": name, "node": node,
               "response_time_ms": round(rt_ms, 3), "ok": ok, "error": None if ok else f"SoapFault: {cause}",
               "cause": cause})


def _login(w: _Writer, rng: np.random.Generator, ts: float, c: str, node: str) -> float:
    """The records of one initial sign-in (CPA login, config, OTP, XMPP); returns when it ended."""
    soap, conf, otp, conn, auth, bind = (float(x) for x in rng.lognormal(1.6, 0.4, 6))
    _state(w, ts, c, "NEW", "SOAPCONNECT_P", node, 0)
    t = ts + soap / 1000
    _req(w, t, c, "soap", "login", node, soap)
    t += conf / 1000
    _req(w, t, c, "soap", "get-all-config", node, conf)
    _state(w, t, c, "SOAPCONNECT_P", "SOAPCONNECTED", node, 0)
    t += otp / 1000
    _req(w, t, c, "soap", "get-onetime-password", node, otp)
    _state(w, t, c, "SOAPCONNECTED", "XMPPCONNECT_P", node, 0)
    for name, ms in (("connect", conn), ("auth", auth), ("bind", bind)):
        t += ms / 1000
        _req(w, t, c, "xmpp", name, node, ms)
    _state(w, t, c, "XMPPCONNECT_P", "XMPPCONNECTED", node, 0)
    _req(w, t, c, "client", "login", node, (t - ts) * 1000)
    w.add(t, {"type": "connected", "client": c, "node": node, "relogin": False, "recovery_s": None})
    return t


def _relogin(w: _Writer, rng: np.random.Generator, ha: float, c: str, src: str, dst: str, failover: bool,
             lower: float, upper: float) -> None:
    """One client's part of a wave: HA event, wait, session login(s), XMPP, connected."""
    cls = "stream-error:system-shutdown"
    w.add(ha, {"type": "ha_event", "client": c, "node": src, "cls": cls})
    _state(w, ha, c, "XMPPCONNECTED", "FAILOVER", src, 1, cls)
    wait = float(rng.uniform(lower, upper))
    w.add(ha, {"type": "wait", "client": c, "wait_s": round(wait, 6), "lower_s": lower, "upper_s": upper, "round": 1})
    _req(w, ha, c, "ha", "wait", src, wait * 1000)
    t = ha + wait
    primary = src if failover else dst
    _state(w, t, c, "FAILOVER", "SOAPCONNECT_SESSION_P", primary, 1)
    if failover:  # the failed node's stopped services refuse the session login at once
        t += 0.004
        _req(w, t, c, "soap", "session-login", src, 4.0, ok=False, cause="soap-fault:services-stopped")
        _state(w, t, c, "SOAPCONNECT_SESSION_P", "SOAPCONNECT_SESSION_S", dst, 1, "soap-fault:services-stopped")
    soap, otp, conn, auth, bind = (float(x) for x in rng.lognormal(2.2, 0.5, 5))
    t += soap / 1000
    _req(w, t, c, "soap", "session-login", dst, soap)
    _state(w, t, c, "SOAPCONNECT_SESSION_S" if failover else "SOAPCONNECT_SESSION_P", "SOAPCONNECTED", dst, 1)
    t += otp / 1000
    _req(w, t, c, "soap", "get-onetime-password", dst, otp)
    _state(w, t, c, "SOAPCONNECTED", "XMPPCONNECT_P", dst, 1)
    for name, ms in (("connect", conn), ("auth", auth), ("bind", bind)):
        t += ms / 1000
        _req(w, t, c, "xmpp", name, dst, ms)
    _state(w, t, c, "XMPPCONNECT_P", "XMPPCONNECTED", dst, 0)
    _req(w, t, c, "ha", "relogin", dst, (t - ha) * 1000)
    w.add(t, {"type": "connected", "client": c, "node": dst, "relogin": True, "recovery_s": round(t - ha, 6)})


def _activity(w: _Writer, rng: np.random.Generator, lo_s: int, hi_s: int, connected: dict[str, int],
              detail: str, message_every_s: float, ping_every_s: float, clients: int) -> None:
    """Steady-state pings and message latencies of seconds [lo_s, hi_s): per-second summaries (or
    one record per request at full detail)."""
    for name, every, mu in (("ping", ping_every_s, 0.7), ("message-latency", message_every_s, 1.1)):
        for node, n in connected.items():
            if n <= 0 or every <= 0:
                continue
            counts = rng.poisson(n / every, hi_s - lo_s)
            values = rng.lognormal(mu, 0.35, int(counts.sum()))
            seconds = np.repeat(np.arange(lo_s, hi_s), counts)
            if detail == "full":
                offs = rng.uniform(0, 1, values.size)
                who = rng.integers(1, clients + 1, values.size)
                for s, off, v, c in zip(seconds.tolist(), offs.tolist(), values.tolist(), who.tolist()):
                    _req(w, STARTED_TS + s + off, f"user{c:05d}", "xmpp", name, node, v)
                continue
            buckets = np.ceil(np.log(values) / _LOG_G - 1e-12).astype(np.int64)
            keys = (seconds - lo_s) * 100_000 + (buckets + 50_000)
            uniq, per = np.unique(keys, return_counts=True)
            sec_of = uniq // 100_000
            starts = np.searchsorted(sec_of, np.arange(hi_s - lo_s))
            ends = np.searchsorted(sec_of, np.arange(hi_s - lo_s), side="right")
            val_starts = np.concatenate([[0], np.cumsum(counts)])
            for i in range(hi_s - lo_s):
                if counts[i] == 0:
                    continue
                sl = values[val_starts[i]:val_starts[i + 1]]
                hist = {str(int(k % 100_000 - 50_000)): int(c) for k, c in zip(uniq[starts[i]:ends[i]],
                                                                               per[starts[i]:ends[i]])}
                w.add(STARTED_TS + lo_s + i, {
                    "type": "request_summary", "request_type": "xmpp", "name": name, "node": node,
                    "count": int(counts[i]), "failures": {}, "no_rt": 0, "sum_ms": round(float(sl.sum()), 3),
                    "min_ms": float(sl.min()), "max_ms": float(sl.max()), "hist": hist})


def write_run(out: Path, *, hours: float, clients: int, drill_every_s: float, lower_s: float, upper_s: float,
              ramp_per_s: float, detail: str, seed: int, rotate_bytes: int | None, rss_growth_per_h: float = 0.0,
              message_every_s: float = 45.0, ping_every_s: float = 60.0) -> dict[str, Any]:
    """Write the run directory; returns what was written (records, bytes, waves)."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    duration = int(hours * 3600)
    w = _Writer(out, rotate_bytes)
    users = [f"user{i + 1:05d}" for i in range(clients)]
    home = {u: NODES[i % 2] for i, u in enumerate(users)}
    ramp_end = 0.0
    for i, u in enumerate(users):
        ramp_end = _login(w, rng, STARTED_TS + i / ramp_per_s, u, home[u]) - STARTED_TS
    first_drill = math.ceil(ramp_end) + 60
    drills = []
    t = float(first_drill)
    while t + upper_s + 30 < duration:
        drills.append(t)
        t += drill_every_s
    moved = [u for u in users if home[u] == NODES[0]]
    actions, server_events = [], []
    connected = {NODES[0]: len(moved), NODES[1]: clients - len(moved)}
    chunk_lo = 0
    for k, at in enumerate(drills + [float(duration)]):
        _activity(w, rng, chunk_lo, int(at), dict(connected), detail, message_every_s, ping_every_s, clients)
        chunk_lo = int(at)
        w.flush_until(STARTED_TS + at - upper_s - 60)
        if at >= duration:
            break
        failover = k % 2 == 0
        src, dst = (NODES[0], NODES[1]) if failover else (NODES[1], NODES[0])
        ts = STARTED_TS + at
        actions.append({"ts": ts, "action": "failover" if failover else "fallback", "node": NODES[0], "status": 200})
        a, b = (("Failing Over", "Taking Over"), ("Idle", "Running in Backup Mode")) if failover else \
            (("Taking Back", "Falling Back"), ("Normal", "Normal"))
        server_events += [
            {"ts": ts, "node": NODES[0], "kind": "admin", "action": "failover" if failover else "fallback"},
            {"ts": ts + 0.01, "node": NODES[0], "kind": "transition", "from": "Normal" if failover else "Idle",
             "to": a[0], "reason": "On Admin Request"},
            {"ts": ts + 0.01, "node": NODES[1], "kind": "transition", "from": "Normal" if failover else
             "Running in Backup Mode", "to": a[1], "reason": "On Admin Request"},
            {"ts": ts + 0.5, "node": NODES[0], "kind": "transition", "from": a[0], "to": b[0],
             "reason": "On Admin Request"},
            {"ts": ts + 0.5, "node": NODES[1], "kind": "transition", "from": a[1], "to": b[1],
             "reason": "On Admin Request"}]
        for u in moved:
            _relogin(w, rng, ts + float(rng.uniform(0.02, 0.6)), u, src, dst, failover, lower_s, upper_s)
        connected[src] -= len(moved)
        connected[dst] += len(moved)
    end_ts = STARTED_TS + duration
    for u in users:
        w.add(end_ts - 1.0 + float(rng.uniform(0, 0.9)), {"type": "end", "client": u, "state": "LOGGED_OUT",
                                                         "reason": "stop-requested", "detail": None})
    w.close()
    _server_files(out, rng, duration, drills, clients, rss_growth_per_h, rotate_bytes)
    with open(out / SERVER_EVENTS_FILE, "w", encoding="utf-8") as f:
        for e in sorted(server_events, key=lambda e: e["ts"]):
            f.write(json.dumps(e) + "\n")
    run = {"run_id": out.name, "started_ts": STARTED_TS, "ended_ts": end_ts, "clients": clients,
           "lower_s": lower_s, "upper_s": upper_s, "server_login_rate": None, "recovery_margin_s": 5.0,
           "actions": actions, "planned_actions": [], "partial": False, "record_detail": detail,
           "relogin_limits": {"lower_s": lower_s, "upper_s": upper_s, "source": "mock /api/parameters"}}
    (out / "run.json").write_text(json.dumps(run, indent=1), encoding="utf-8")
    sizes = {p.name: p.stat().st_size for p in out.iterdir() if p.is_file()}
    return {"records": w.events.lines, "bytes_uncompressed": w.events.bytes_written,
            "bytes_on_disk": sum(sizes.values()), "client_events_on_disk": sum(
                p.stat().st_size for p in segment_paths(out, CLIENT_EVENTS_FILE)),
            "segments": len(segment_paths(out, CLIENT_EVENTS_FILE)), "waves": len(drills)}


def _server_files(out: Path, rng: np.random.Generator, duration: int, drills: list[float], clients: int,
                  rss_growth_per_h: float, rotate_bytes: int | None) -> None:
    """The mock's node metrics (one row per node and second, its ~40 keys) and generator samples."""
    metrics = RotatingJsonlWriter(out, SERVER_METRICS_FILE, rotate_bytes=rotate_bytes)
    gen = RotatingJsonlWriter(out, GENERATOR_FILE, rotate_bytes=rotate_bytes)
    xmpp_keys = ["xmpp_connections", "xmpp_streams", "xmpp_auth_ok", "xmpp_auth_failed", "xmpp_stanzas_in",
                 "xmpp_stanzas_out", "xmpp_messages", "xmpp_presences", "xmpp_pings", "xmpp_bytes_in",
                 "xmpp_bytes_out", "xmpp_stream_errors", "xmpp_connections_active", "xmpp_tls_active"]
    cpa_keys = ["cpa_logins_ok", "cpa_logins_failed", "cpa_logins_busy", "cpa_session_logins_ok",
                "cpa_session_logins_refused", "cpa_requests", "cpa_faults"]
    login_keys = ["login_attempts", "login_started", "login_completed", "login_busy", "login_abandoned",
                  "login_abandoned_in_service", "login_queue_depth", "login_in_service", "login_oldest_wait_ms",
                  "login_queue_max"]
    rss0 = 220 * 2**20
    for s in range(duration):
        ts = STARTED_TS + s + 1
        for node in NODES:
            row: dict[str, Any] = {"ts": ts, "node": node}
            row.update({k: int(rng.poisson(3)) for k in xmpp_keys})
            row.update({k: 0 for k in cpa_keys + login_keys})
            row.update({"login_wait_p50_ms": None, "login_wait_p99_ms": None, "login_wait_max_ms": None,
                        "login_latency_p50_ms": None, "login_latency_p99_ms": None,
                        "active_sessions": clients // 2, "state": "Normal"})
            metrics.write(row)
        gen.write({"ts": ts, "worker": "host-1", "cpu_percent": round(float(rng.uniform(20, 40)), 1),
                   "loop_lag_ms": round(float(rng.uniform(1, 8)), 3), "stalled_ms": 0.0, "gc_ms": 0.5,
                   "gc_max_ms": 0.5, "rss_bytes": int(rss0 * (1 + rss_growth_per_h * s / 3600)
                                                      + rng.normal(0, 2**20))})
    metrics.close()
    gen.close()


def _measure(run_dir: Path, old_loader: bool) -> dict[str, Any]:
    """``jabberemu report`` (or the in-memory loader) under ``/usr/bin/time -v``: wall s, peak RSS MiB."""
    code = ("import sys; from jabberemu.report.build import build_report; "
            f"s = build_report(sys.argv[1], stream={not old_loader}); print(s.verdict.value)")
    cmd = ["/usr/bin/time", "-v", sys.executable, "-c", code, str(run_dir)]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=7200, check=False)
    wall = time.monotonic() - t0
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    return {"loader": "in-memory (report.data)" if old_loader else "streaming (report.stream)",
            "exit": proc.returncode, "verdict": proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else None,
            "wall_s": round(wall, 1), "peak_rss_mib": round(int(rss.group(1)) / 1024, 1) if rss else None,
            "command": " ".join(cmd[:3] + ["-c", "'build_report(RUN_DIR)'", str(run_dir)]),
            "stderr_tail": proc.stderr[-400:] if proc.returncode else None}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hours", type=float, default=8.0)
    p.add_argument("--clients", type=int, default=15000)
    p.add_argument("--drill-every", type=float, default=600.0, help="seconds between failover and fallback")
    p.add_argument("--lower", type=float, default=120.0)
    p.add_argument("--upper", type=float, default=537.0)
    p.add_argument("--ramp", type=float, default=50.0, help="sign-ins per second")
    p.add_argument("--detail", choices=("summary", "full"), default="summary")
    p.add_argument("--rotate-mb", type=float, default=32.0, help="0 = one plain file (readable by older loaders)")
    p.add_argument("--rss-growth", type=float, default=0.0, help="generator RSS growth per hour (0.03 = 3 %%/h)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", type=Path, default=None, help="run directory (default: a temporary one, removed)")
    p.add_argument("--measure", action="store_true", help="build the report under /usr/bin/time -v")
    p.add_argument("--old-loader", action="store_true", help="with --measure: also the in-memory loader")
    p.add_argument("--smoke", action="store_true", help="30 clients, 40 minutes, limits 5/20 s: checks the script")
    p.add_argument("--results-dir", type=Path, default=None)
    args = p.parse_args(argv)
    if args.smoke:
        args.hours, args.clients, args.lower, args.upper, args.drill_every = 40 / 60, 30, 5.0, 20.0, 300.0
        args.measure = True
    if not 0 < args.hours <= 48 or not 0 < args.clients <= 100_000:
        p.error("--hours must be in (0, 48] and --clients in (0, 100000]")
    if args.out is not None and (problem := run_dir_problem(args.out, "--out")):
        p.error(problem)
    tmp = None
    out = args.out
    if out is None:
        tmp = tempfile.mkdtemp(prefix="jabberemu-synthetic-")
        out = Path(tmp) / "run"
    t0 = time.monotonic()
    written = write_run(out, hours=args.hours, clients=args.clients, drill_every_s=args.drill_every,
                        lower_s=args.lower, upper_s=args.upper, ramp_per_s=args.ramp, detail=args.detail,
                        seed=args.seed, rotate_bytes=int(args.rotate_mb * 2**20) or None,
                        rss_growth_per_h=args.rss_growth)
    written["write_s"] = round(time.monotonic() - t0, 1)
    client_hours = args.clients * args.hours
    result: dict[str, Any] = {
        "machine": machine_info(), "argv": sys.argv[1:] if argv is None else argv, "ts": time.time(),
        "hours": args.hours, "clients": args.clients, "detail": args.detail, "drill_every_s": args.drill_every,
        **written, "kib_per_client_hour": round(written["bytes_on_disk"] / 1024 / client_hours, 3),
        "client_events_kib_per_client_hour": round(written["client_events_on_disk"] / 1024 / client_hours, 3),
    }
    if args.measure:
        result["report"] = _measure(out, old_loader=False)
        if args.old_loader:
            result["report_old_loader"] = _measure(out, old_loader=True)
    rows = [("records written", result["records"], None), ("waves", result["waves"], None),
            ("run data on disk (MiB)", round(result["bytes_on_disk"] / 2**20, 1), None),
            ("KiB per client-hour (all files)", result["kib_per_client_hour"], None)]
    for key in ("report", "report_old_loader"):
        if key in result:
            rows += [(f"{key}: wall (s)", result[key]["wall_s"], None),
                     (f"{key}: peak RSS (MiB)", result[key]["peak_rss_mib"], None)]
    emit("synthetic_run", rows, result, results_dir=args.results_dir)
    if tmp is not None:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if all(result[k]["exit"] == 0 for k in ("report", "report_old_loader") if k in result) else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
