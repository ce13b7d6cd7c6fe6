"""Issue 15's figures: three ``jabberemu drill`` runs (safe, borderline, storm window) against the one
model, for one declared capacity, on the product path.

For ``--clients`` clients (Balanced: half of them move in each wave) and a node that starts
``--rate`` logins/s, ``jabberemu.report.planner.plan`` gives the safe upper limit; the borderline
window is 80 % of the time the node needs for the movers (``movers / rate``: demand 1.25 times the
capacity, a queue that builds for the whole wave); the storm window is a tenth of that time. The
initial sign-in runs at 80 % of the pair's capacity (``--ramp`` default) so it queues nothing. Each drill runs the whole chain (mock pair as a child process,
Locust swarm, failover, fallback, report) and this script prints, per wave, what the report measured
beside the model's median and p5-p95 band (``summary.json`` ``measured_vs_predicted``), and whether
each figure is within 5 % of the median or inside the band (the issue's criterion).

    .venv/bin/python bench/throttle_drills.py                      # 2,000 clients at 25/s
    .venv/bin/python bench/throttle_drills.py --clients 400 --rate 10 --only storm

Not a test: minutes of a quiet 2-core box per drill. Figures go to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from jabberemu.report.planner import plan

ROOT = Path(__file__).resolve().parents[1]


def windows(clients: int, rate: float, lower: float, soap_timeout: float) -> dict[str, float]:
    """Upper limits of the three drills."""
    movers = clients // 2
    safe = plan(movers, rate, lower=lower, critical_service_delay_s=0.0, soap_timeout_s=soap_timeout).upper_s
    drain = movers / rate
    return {"safe": round(safe, 1), "borderline": round(lower + 0.8 * drain, 1),
            "storm": round(lower + drain / 10, 1)}


def drill(name: str, upper: float, args: argparse.Namespace, out_root: Path) -> dict:
    out = out_root / name
    cmd = [str(ROOT / ".venv/bin/jabberemu"), "drill", "--clients", str(args.clients), "--ramp", str(args.ramp),
           "--lower", f"{args.lower:g}", "--upper", f"{upper:g}", "--login-rate", f"{args.rate:g}",
           "--soap-timeout", f"{args.soap_timeout:g}", "--seed", str(args.seed), "--out", str(out)]
    print("$", " ".join(cmd[1:]), flush=True)
    shutil.rmtree(out, ignore_errors=True)  # this bench's scratch: the drill refuses a directory holding a run
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with (out_root / f"{name}.log").open("wb") as log:
        subprocess.run(cmd, cwd=ROOT, check=False, stdout=log, stderr=subprocess.STDOUT, timeout=args.timeout)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    print(f"  {name}: upper {upper:g} s, verdict {summary['verdict']}, {time.monotonic() - t0:.0f} s wall")
    return summary


def show(name: str, summary: dict) -> int:
    """Print the comparisons of each wave; return how many disagree."""
    bad = 0
    for w in summary["ha_events"]:
        print(f"  {name} {w['kind']} {w['node']}: {w['clients']} clients, recovered {w['recovered']}, "
              f"busy {w['busy']}, timeouts {w['timeouts']}, queue peak {w['queue_peak']}")
        for c in w["measured_vs_predicted"]:
            ok = "ok " if c["agrees"] else "OFF"
            bad += not c["agrees"]
            print(f"    {ok} {c['name']:<32} measured {c['measured']!s:>9} {c['unit']:<10} model {c['median']:.4g} "
                  f"({c['p5']:.4g}-{c['p95']:.4g})")
        for s in w["suspects"]:
            print(f"    suspect {s['side']}: {s['evidence']}")
    return bad


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=2000)
    p.add_argument("--rate", type=float, default=25.0, help="logins/s per node the mock enforces (declared)")
    p.add_argument("--lower", type=float, default=1.0)
    p.add_argument("--ramp", type=float, default=None, help="sign-ins/s (default 80 %% of 2 x --rate)")
    p.add_argument("--soap-timeout", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--only", choices=("safe", "borderline", "storm"), action="append")
    p.add_argument("--out", type=Path, default=ROOT / "reports" / "throttle-drills")
    p.add_argument("--timeout", type=float, default=1200.0, help="seconds one drill may take")
    args = p.parse_args(argv)
    if args.ramp is None:
        args.ramp = round(1.6 * args.rate, 1)
    uppers = windows(args.clients, args.rate, args.lower, args.soap_timeout)
    print(f"{args.clients} clients, {args.rate:g} logins/s per node, lower {args.lower:g} s: uppers {uppers}")
    disagreements = 0
    for name, upper in uppers.items():
        if args.only and name not in args.only:
            continue
        disagreements += show(name, drill(name, upper, args, args.out))
    print(f"figures outside 5 % of the median and outside the band: {disagreements}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
