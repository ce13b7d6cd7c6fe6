"""Throttle model speed: one predicted re-login wave of 25,000 clients x 200 replicas, timed.

Scenarios (all with the 25k OVA's login profile, 8.5 logins/s, and a 30 s SOAP timeout):

1. ``failover-storm``: Cisco's default limits 120 / 537 s: far too narrow for 25,000 users, so
   most clients time out, go to a second round, and many give up (the slowest case for the
   model: about two arrivals per client on the serving node);
2. ``failover-planned``: 120 / 3061 s (Cisco's rule ``lower + users / rate``): one arrival per
   client, a few stragglers;
3. ``fallback-storm``: 120 / 537 s on a node with 4 workers x 0.3 s and a queue of 500, the other
   node the same: refusals, timeouts in the queue and in service, attempts on the other node (about
   four arrivals per client over the two nodes);
4. ``plan``: the smallest upper limit for 25,000 users at 8.5 logins/s (bisection, round 1 only).

Each is run ``--repeat`` times; the table gives the fastest wall-clock time and the process CPU
time of that run, split into drawing the waits, simulating every client, and summarising. The CPU
(``lscpu``) and load average are part of the output: the box is shared.

    .venv/bin/python bench/throttle_model.py
    .venv/bin/python bench/throttle_model.py --smoke
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchkit import emit, machine_info, wait_for_low_load  # noqa: E402

from jabberemu.throttle import (  # noqa: E402
    ServerModel,
    WaveKind,
    WaveSpec,
    draw_waits,
    plan_upper,
    simulate_clients,
    summarise,
)

NAME = "throttle_model"
RATE_PER_S = 8.5  # Cisco "High Availability Login Profiles": the 25k OVA, ~8-9 users/s


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def lscpu() -> dict[str, str]:
    """The lines of ``lscpu`` that identify the CPU (empty when lscpu is missing)."""
    keep = ("Model name", "CPU(s)", "Thread(s) per core", "Core(s) per socket", "CPU max MHz", "BogoMIPS",
            "Hypervisor vendor", "L2 cache", "L3 cache")
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in keep and key.strip() not in out:
            out[key.strip()] = value.strip()
    return out


def _scenarios(clients: int) -> list[tuple[str, WaveSpec, ServerModel]]:
    rule_upper = 120.0 + round(clients / RATE_PER_S)
    return [
        ("failover-storm", WaveSpec(clients=clients, kind=WaveKind.FAILOVER, lower_s=120, upper_s=537),
         ServerModel(rate_per_s=RATE_PER_S)),
        ("failover-planned", WaveSpec(clients=clients, kind=WaveKind.FAILOVER, lower_s=120, upper_s=rule_upper),
         ServerModel(rate_per_s=RATE_PER_S)),
        ("fallback-storm", WaveSpec(clients=clients, kind=WaveKind.FALLBACK, lower_s=120, upper_s=537),
         ServerModel(rate_per_s=RATE_PER_S, workers=4, service_s=0.3, queue_limit=500)),
    ]


def _time_wave(wave: WaveSpec, server: ServerModel, replicas: int, seed: int) -> dict[str, Any]:
    t0, c0 = time.perf_counter(), _cpu_s()
    waits = draw_waits(wave, replicas=replicas, seed=seed)
    t1 = time.perf_counter()
    outcomes = simulate_clients(wave, server, waits)
    t2 = time.perf_counter()
    result = summarise(outcomes, seed=seed)
    t3, c3 = time.perf_counter(), _cpu_s()
    arrivals = int((outcomes.serving.arrival_s >= 0).sum())
    if outcomes.other is not None:
        arrivals += int((outcomes.other.arrival_s >= 0).sum())
    b = result.bands
    return {"wall_s": round(t3 - t0, 3), "cpu_s": round(c3 - c0, 3), "draw_s": round(t1 - t0, 3),
            "simulate_s": round(t2 - t1, 3), "summarise_s": round(t3 - t2, 3),
            "arrivals_per_replica": round(arrivals / replicas, 1),
            "gave_up_median": b.gave_up.median, "recovery_max_median_s": round(b.recovery_max_s.median, 1),
            "probability_clean": result.probability_clean}


def run(args: argparse.Namespace) -> dict[str, Any]:
    waves: dict[str, Any] = {}
    for name, wave, server in _scenarios(args.clients):
        runs = [_time_wave(wave, server, args.replicas, seed) for seed in range(args.repeat)]
        best = min(runs, key=lambda r: r["wall_s"])
        waves[name] = {**best, "wall_s_all": [r["wall_s"] for r in runs], "lower_s": wave.lower_s,
                       "upper_s": wave.upper_s}
    plan: dict[str, Any] | None = None
    if not args.no_plan:
        t0, c0 = time.perf_counter(), _cpu_s()
        p = plan_upper(args.clients, 120.0, ServerModel(rate_per_s=RATE_PER_S), replicas=args.replicas)
        plan = {"wall_s": round(time.perf_counter() - t0, 3), "cpu_s": round(_cpu_s() - c0, 3),
                "upper_s": p.upper_s, "cisco_rule_upper_s": round(p.cisco_rule_upper_s or 0.0, 1),
                "probability_pass": p.probability_pass, "evaluations": p.evaluations}
    return {"clients": args.clients, "replicas": args.replicas, "repeat": args.repeat, "waves": waves,
            "plan": plan, "lscpu": lscpu()}


def _rows(result: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    rows: list[tuple[str, Any, Any]] = [("CPU (lscpu)", result["lscpu"].get("Model name", "?"), None),
                                        ("CPUs", result["lscpu"].get("CPU(s)", "?"), None),
                                        ("clients x replicas", f"{result['clients']} x {result['replicas']}", None)]
    for name, w in result["waves"].items():
        rows += [(f"{name} {w['lower_s']:g}/{w['upper_s']:g}: wall s (best of {result['repeat']})", w["wall_s"], None),
                 (f"{name}: cpu s", w["cpu_s"], None),
                 (f"{name}: draw / simulate / summarise s", f"{w['draw_s']}/{w['simulate_s']}/{w['summarise_s']}",
                  None),
                 (f"{name}: arrivals per replica (both nodes)", w["arrivals_per_replica"], None),
                 (f"{name}: GAVE_UP median, P(clean)", f"{w['gave_up_median']:g}, {w['probability_clean']:g}", None)]
    if result["plan"] is not None:
        p = result["plan"]
        rows += [("plan: wall s", p["wall_s"], None), ("plan: evaluations", p["evaluations"], None),
                 ("plan: upper s (Cisco's rule)", f"{p['upper_s']:g} ({p['cisco_rule_upper_s']:g})", None)]
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=25_000)
    p.add_argument("--replicas", type=int, default=200)
    p.add_argument("--repeat", type=int, default=3, help="runs per scenario (seeds 0..); the fastest is reported")
    p.add_argument("--no-plan", action="store_true", help="skip the planner timing")
    p.add_argument("--max-load", type=float, default=None, help="wait until the 1-min load average is below")
    p.add_argument("--max-wait", type=float, default=600.0, help="bound of that wait, s")
    p.add_argument("--smoke", action="store_true", help="500 clients x 20 replicas, one run: checks the script")
    p.add_argument("--results-dir", type=Path, default=None)
    args = p.parse_args(argv)
    if args.smoke:
        args.clients, args.replicas, args.repeat = min(args.clients, 500), min(args.replicas, 20), 1
    load = wait_for_low_load(args.max_load, args.max_wait)
    result = {**run(args), **load, "smoke": args.smoke}
    result.update(machine=machine_info(), argv=sys.argv if argv is None else [__file__, *argv], ts=time.time())
    emit(NAME, _rows(result), result, results_dir=args.results_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
