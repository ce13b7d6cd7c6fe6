"""Issue 17's figure: the failover and fallback of a whole node, Active-Standby, from one machine,
on the product path, with the generator's default settings (no tuning flag; ``--processes`` = the cores).

The drill's window is this script's (``--lower 30 --upper 330`` by default, not Cisco's 120/537 s, so
that both waves fit in ~15 minutes) and the mock's login rate is unlimited, so that what is measured
is the generator: with every client moving, a throttled node would spread the wave by its own queue.

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
- the verdict and the wall time.

    .venv/bin/python bench/node_failover.py --clients 15000            # ~15 min on a 2-core box
    .venv/bin/python bench/node_failover.py --clients 2000 --upper 60  # a quick look

Not a test: a quiet box for its whole length. Figures go to BENCHMARKS.md; the JSON result to
``<out>/c<clients>-result.json`` and, on the default schedule (ramp, limits, margin), to
``bench/results/node_failover-<clients>.json``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LATE_MS = 50.0


def records(run: Path, pattern: str) -> Iterator[dict[str, Any]]:
    """Records of the rotated JSONL files ``pattern`` (compressed segments first, then the open one)."""
    files = sorted(run.glob(pattern), key=lambda p: (p.suffix != ".gz", p.name))
    for path in files:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as f:
            for line in f:
                yield json.loads(line)


def lateness_ms(run: Path) -> np.ndarray:
    """Per first re-login attempt: (leaving FAILOVER) - (wait record ts + wait_s), in ms."""
    waits: dict[str, list[tuple[float, float]]] = {}
    leaves: dict[str, list[float]] = {}
    for r in records(run, "client_events*.jsonl*"):
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


def loop_lag(run: Path) -> dict[str, dict[str, float | int | None]]:
    """Per worker: p99 and max of the per-second loop lag (ms), over the whole run and until the drill's
    ``stop`` action (``run.json``): the final sign-out of every client at once is no part of the waves."""
    actions = json.loads((run / "run.json").read_text(encoding="utf-8")).get("actions", [])
    stop = min((a["ts"] for a in actions if a.get("action") == "stop"), default=float("inf"))
    by_worker: dict[str, list[tuple[float, float]]] = {}
    for r in records(run, "generator*.jsonl*"):
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=15000)
    p.add_argument("--ramp", type=float, default=100.0, help="initial logins/s (default %(default)s)")
    p.add_argument("--lower", type=float, default=30.0, help="Client Re-Login Lower Limit, s (default %(default)s)")
    p.add_argument("--upper", type=float, default=330.0, help="Client Re-Login Upper Limit, s (default %(default)s)")
    p.add_argument("--margin", type=float, default=15.0,
                   help="seconds after upper for a wave to settle (default %(default)s: a worker of 7,500 clients "
                        "takes ~5 s to handle a node's stream errors, so the last waits start up to 6 s after the "
                        "first; with the drill's 5 s a client drawing ~upper re-logged in as the fallback came)")
    p.add_argument("--out", type=Path, default=Path("/tmp/node_failover"))
    p.add_argument("--timeout", type=float, default=3600.0, help="give up after this many seconds")
    args = p.parse_args(argv)
    out = args.out / f"c{args.clients}"
    cmd = [str(ROOT / ".venv/bin/jabberemu"), "drill", "--clients", str(args.clients), "--ramp", f"{args.ramp:g}",
           "--lower", f"{args.lower:g}", "--upper", f"{args.upper:g}", "--assignment", "active-standby",
           "--login-rate", "0", "--margin", f"{args.margin:g}", "--out", str(out)]
    print("$", " ".join(["jabberemu", *cmd[1:]]), flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with (args.out / f"c{args.clients}.log").open("wb") as log:
        rc = subprocess.run(cmd, cwd=ROOT, check=False, stdout=log, stderr=subprocess.STDOUT,
                            timeout=args.timeout).returncode
    wall_s = time.monotonic() - t0
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    late = lateness_ms(out)
    lags = loop_lag(out)
    end_states = summary.get("end_states", {})
    result = {
        "clients": args.clients, "lower_s": args.lower, "upper_s": args.upper, "ramp": args.ramp,
        "verdict": summary.get("verdict"), "exit_code": rc, "wall_s": round(wall_s, 1),
        "end_states": end_states, "lost": args.clients - int(end_states.get("LOGGED_OUT", 0)),
        "waves": [{k: w.get(k) for k in ("kind", "clients", "recovered", "pending")} for w in summary["ha_events"]],
        "attempts": int(late.size),
        "within_50ms_pct": float(np.mean(late <= LATE_MS) * 100) if late.size else None,
        "late_p50_ms": float(np.percentile(late, 50)) if late.size else None,
        "late_p99_ms": float(np.percentile(late, 99)) if late.size else None,
        "late_max_ms": float(late.max()) if late.size else None,
        "early_over_5ms": int(np.sum(late < -5.0)),
        "loop_lag": lags,
        "generator": {k: summary.get("generator", {}).get(k) for k in ("description", "stall_share", "saturated")},
    }
    (args.out / f"c{args.clients}-result.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
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
