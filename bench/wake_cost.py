"""Wake cost: the same Python work, CPU per call, back to back vs. after the process slept.

Why login CPU per login doubles at a low login rate (BENCHMARKS.md, section 2): every function costs
about twice as much per call at 50 logins/s as at 400/s, with no hot spot growing. This bench takes
our code out of the question: one fixed piece of work (parse a bind result with ElementTree and
lxml, JSON-encode a record, 20 times: ~0.3 ms) is timed with the thread's CPU clock, in three modes
shuffled over rounds:

- ``back-to-back``: the calls follow each other (what a busy process does);
- ``after-sleep``: each call follows a 20 ms ``time.sleep`` (what a process at 50 events/s does);
- ``after-spin``: each call follows 20 ms of a busy loop (the core kept awake, no sleep).

Only the work is timed (``time.thread_time``), never the gap. Prints the median CPU per call per
mode and its ratio to back-to-back; the result is appended to ``bench/results/wake_cost.json``.

    .venv/bin/python bench/wake_cost.py
    .venv/bin/python bench/wake_cost.py --smoke
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from lxml import etree

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchkit import emit, machine_info  # noqa: E402

NAME = "wake_cost"
DOC = (b"<iq xmlns='jabber:client' type='result' id='abc'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
       b"<jid>user1@example.com/r</jid></bind></iq>")
GAP_S = 0.02
MODES = ("back-to-back", "after-sleep", "after-spin")


def work() -> None:
    for _ in range(20):
        element = ET.fromstring(DOC)
        json.dumps({"a": [1, 2, 3], "b": element.tag, "c": {"d": "x" * 10}})
        etree.fromstring(DOC)


def one_round(mode: str, calls: int) -> float:
    """Mean CPU per call (µs) over ``calls`` calls in ``mode``."""
    total = 0.0
    for _ in range(calls):
        if mode == "after-sleep":
            time.sleep(GAP_S)
        elif mode == "after-spin":
            end = time.perf_counter() + GAP_S
            while time.perf_counter() < end:
                pass
        t0 = time.thread_time()
        work()
        total += time.thread_time() - t0
    return total / calls * 1e6


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--calls", type=int, default=150, help="calls per mode per round")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--smoke", action="store_true", help="2 rounds of 5 calls: checks the script works")
    p.add_argument("--results-dir", type=Path, default=None)
    args = p.parse_args(argv)
    if args.smoke:
        args.rounds, args.calls = 2, 5
    rng = random.Random(args.seed)
    per_mode: dict[str, list[float]] = {m: [] for m in MODES}
    for _ in range(args.rounds):
        order = list(MODES)
        rng.shuffle(order)
        for mode in order:
            per_mode[mode].append(one_round(mode, args.calls))
    medians = {m: round(statistics.median(v), 1) for m, v in per_mode.items()}
    ratios = {m: round(medians[m] / medians["back-to-back"], 2) for m in MODES}
    result = {"gap_ms": GAP_S * 1000, "calls": args.calls, "rounds": args.rounds, "median_us": medians,
              "ratio_to_back_to_back": ratios, "rounds_us": {m: [round(x, 1) for x in v] for m, v in per_mode.items()},
              "smoke": args.smoke, "machine": machine_info(),
              "argv": sys.argv if argv is None else [__file__, *argv], "ts": time.time()}
    rows = [(f"CPU per call, {m} (µs)", medians[m], None) for m in MODES]
    rows += [(f"ratio {m} / back-to-back", ratios[m], None) for m in MODES[1:]]
    emit(NAME, rows, result, results_dir=args.results_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
