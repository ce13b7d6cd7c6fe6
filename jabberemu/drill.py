"""``jabberemu drill``: a whole HA drill on the bundled mock pair, start to finish.

1. start the mock pair (or use ``--topology`` of a pair already running) with short SRM timers and
   the re-login limits ``--lower``/``--upper``;
2. run the Locust swarm (``jabberemu run``, headless) that logs ``--clients`` emulated Jabber clients
   in at ``--ramp`` logins/s, holds, and at set times on the load clock injects the fault
   (``--fault``) on node 1 and later falls back, each phase given ``upper + margin`` seconds to settle;
3. collect the mock's events and metrics beside the clients' run data in ``--out``;
4. build ``report.html`` and ``summary.json`` and print the verdict and the report's path.

Ctrl-C at any point stops the swarm and the pair (no orphan processes) and still writes a report,
marked partial.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["main", "build_parser", "DrillPlan", "plan_drill", "FAULTS"]

logger = logging.getLogger(__name__)

FAULTS = ("failover", "service-down", "node-kill", "partition")
"""Faults the drill can inject on node 1."""

CRITICAL_SERVICE = "presence-engine"


@dataclass(frozen=True, kw_only=True)
class DrillPlan:
    """When each phase happens, in seconds on the load clock (0 = Locust starts spawning).

    Attributes:
        actions: ``ACTION@T`` items for the locustfile's ``--drill`` option.
        run_time_s: Locust ``-t``: the end of the last settle window.
    """

    actions: tuple[str, ...]
    run_time_s: float


def plan_drill(
    *,
    clients: int,
    ramp: float,
    lower_s: float,
    upper_s: float,
    fault: str,
    node: str,
    hold_s: float,
    margin_s: float,
    critical_service_delay_s: float,
    heartbeat_timeout_s: float,
) -> DrillPlan:
    """Lay the drill's phases on the load clock.

    Args:
        clients: emulated clients; ramp: logins/s while spawning; hold_s: steady state before the fault.
        lower_s, upper_s: the re-login limits the pair hands out.
        fault: one of :data:`FAULTS`; node: the node that fails (node 1).
        margin_s: extra seconds after ``upper`` for a wave to settle.
        critical_service_delay_s, heartbeat_timeout_s: the pair's SRM timers (detection delays).

    Raises:
        ValueError: unknown fault or non-positive numbers.
    """
    if fault not in FAULTS:
        raise ValueError(f"--fault must be one of {', '.join(FAULTS)}, not {fault!r}")
    if clients < 1 or ramp <= 0 or upper_s < lower_s or lower_s < 0:
        raise ValueError("need clients >= 1, ramp > 0 and 0 <= lower <= upper")
    settle = upper_s + margin_s
    t = clients / ramp + hold_s
    acts: list[str] = []
    if fault == "failover":
        acts += [f"failover:{node}@{t:.1f}", f"fallback:{node}@{t + settle:.1f}"]
        end = t + 2 * settle
    elif fault == "service-down":
        t_up = t + critical_service_delay_s + 1.0
        acts += [
            f"service-stop:{node}:{CRITICAL_SERVICE}@{t:.1f}",
            f"service-start:{node}:{CRITICAL_SERVICE}@{t_up:.1f}",
            f"fallback:{node}@{t + critical_service_delay_s + settle:.1f}",
        ]
        end = t + critical_service_delay_s + 2 * settle
    elif fault == "node-kill":
        t_back = t + heartbeat_timeout_s + settle
        acts += [f"kill:{node}@{t:.1f}", f"restart:{node}@{t_back:.1f}", f"fallback:{node}@{t_back + 5:.1f}"]
        end = t_back + 5 + settle
    else:  # partition: both nodes take over (split ownership), heal, Recover
        t_heal = t + heartbeat_timeout_s + settle
        acts += [f"partition@{t:.1f}", f"heal@{t_heal:.1f}", f"recover@{t_heal + 2:.1f}"]
        end = t_heal + 2 + settle
    return DrillPlan(actions=tuple(acts), run_time_s=round(end + 2.0, 1))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="jabberemu drill",
        description="Run a whole HA drill on the bundled mock IM&P pair: log clients in, inject a fault on "
        "node 1, let the re-login wave settle, fall back, and judge the re-login limits. "
        "Defaults are the demo's (make demo).",
    )
    p.add_argument("--clients", type=int, default=2000, help="emulated Jabber clients (default %(default)s)")
    p.add_argument("--ramp", type=float, default=100.0, help="initial logins per second (default %(default)s)")
    p.add_argument("--lower", type=float, default=5.0, help="Client Re-Login Lower Limit, s (default %(default)s)")
    p.add_argument("--upper", type=float, default=25.0, help="Client Re-Login Upper Limit, s (default %(default)s)")
    p.add_argument("--fault", choices=FAULTS, default="failover", help="what happens to node 1 (default %(default)s)")
    p.add_argument("--login-rate", type=float, default=None,
                   help="mock login capacity per node, logins/s (default: unlimited; the verdict then "
                   "judges against --server-login-rate)")
    p.add_argument("--server-login-rate", type=float, default=None,
                   help="declared server capacity for the verdict, logins/s (default: --login-rate, else 100)")
    p.add_argument("--seed", type=int, default=1, help="run seed: users, waits (default %(default)s)")
    p.add_argument("--out", help="run directory (default reports/<run-id>)")
    p.add_argument("--topology", help="topology JSON of a mock pair already running (skip starting one)")
    p.add_argument("--hold", type=float, default=5.0, help="steady state before the fault, s")
    p.add_argument("--margin", type=float, default=5.0, help="seconds after upper for a wave to settle")
    p.add_argument("--processes", type=int, default=1, help="Locust worker processes (default %(default)s)")
    p.add_argument("--fail-on-verdict", action="store_true", help="exit 1 when the verdict is FAIL")
    t = p.add_argument_group("SRM timers of the bundled pair (seconds; Cisco's defaults are 15/60/120/90)")
    t.add_argument("--heartbeat-interval", type=float, default=0.2)
    t.add_argument("--heartbeat-timeout", type=float, default=1.0)
    t.add_argument("--init-heartbeat-timeout", type=float, default=3.0)
    t.add_argument("--critical-service-delay", type=float, default=1.0)
    return p


def _run_id() -> str:
    return time.strftime("drill-%Y%m%d-%H%M%S")


async def _collect_server_data(pair: Any, out: Path) -> None:
    with contextlib.suppress(Exception):
        metrics = await asyncio.wait_for(pair.admin("GET", "/api/metrics"), 10.0)
        with open(out / "server_metrics.jsonl", "w", encoding="utf-8") as f:
            for row in metrics.get("metrics", []):
                f.write(json.dumps(row) + "\n")


async def _drill(args: argparse.Namespace, out: Path) -> int:
    from mock_server.pair_config import LoginCostConfig, PairConfig
    from mock_server.runner import MockPair

    pair: MockPair | None = None
    topology_path = out / "topology.json"
    node = "imp1.example.test"
    if args.topology:
        topology = json.loads(Path(args.topology).read_text(encoding="utf-8"))
        node = topology["nodes"][0]["name"]
        topology_path.write_text(json.dumps(topology, indent=2), encoding="utf-8")
    else:
        params = (
            f"heartbeat_interval_s={args.heartbeat_interval}",
            f"heartbeat_timeout_s={args.heartbeat_timeout}",
            f"init_heartbeat_timeout_s={args.init_heartbeat_timeout}",
            f"critical_service_delay_s={args.critical_service_delay}",
            f"relogin_lower_s={args.lower}",
            f"relogin_upper_s={args.upper}",
        )
        cost = LoginCostConfig(rate_per_s=args.login_rate) if args.login_rate else LoginCostConfig()
        config = PairConfig(users=args.clients, seed=args.seed, params=params, login_cost=(cost, cost))
        pair = MockPair(config, events_out=str(out / "server_events.jsonl"))
        sys.stdout.write(f"starting the mock pair ({args.clients} users)...\n")
        topology = await pair.start()
        node = topology["nodes"][0]["name"]
        topology_path.write_text(json.dumps(topology, indent=2), encoding="utf-8")
        await pair.wait_for_states({n["name"]: "Normal" for n in topology["nodes"]}, timeout_s=30)
    plan = plan_drill(
        clients=args.clients, ramp=args.ramp, lower_s=args.lower, upper_s=args.upper, fault=args.fault,
        node=node, hold_s=args.hold, margin_s=args.margin, critical_service_delay_s=args.critical_service_delay,
        heartbeat_timeout_s=args.heartbeat_timeout,
    )
    capacity = args.server_login_rate or args.login_rate or 100.0
    cmd = [
        sys.executable, "-m", "locust", "-f", _locustfile(), "--headless", "--only-summary",
        "-u", str(args.clients), "-r", str(args.ramp), "-t", f"{int(plan.run_time_s + 0.999)}s",
        "--stop-timeout", "10", "--topology", str(topology_path), "--run-dir", str(out),
        "--run-seed", str(args.seed), "--drill", ",".join(plan.actions),
        "--default-lower", str(args.lower), "--default-upper", str(args.upper),
        "--server-login-rate", str(capacity), "--recovery-margin", str(args.margin),
        "--csv", str(out / "locust"), "--html", str(out / "locust.html"), "--progress",
    ]
    if args.processes > 1:
        cmd += ["--processes", str(args.processes)]
    sys.stdout.write(
        f"drill: {args.clients} clients at {args.ramp:g}/s, limits {args.lower:g}/{args.upper:g} s, fault "
        f"{args.fault} on {node}; phases {', '.join(plan.actions)}; about {plan.run_time_s:.0f} s\n"
    )
    sys.stdout.flush()
    interrupted = False
    proc = await asyncio.create_subprocess_exec(*cmd, start_new_session=True)
    try:
        await proc.wait()
    except asyncio.CancelledError:
        interrupted = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
        try:
            await asyncio.wait_for(proc.wait(), 20.0)
        except asyncio.TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
    finally:
        if pair is not None:
            await _collect_server_data(pair, out)
            await pair.stop()
    if interrupted:
        _mark_partial(out)
    return 130 if interrupted else (proc.returncode or 0)


def _mark_partial(out: Path) -> None:
    run_file = out / "run.json"
    with contextlib.suppress(OSError, ValueError):
        info = json.loads(run_file.read_text(encoding="utf-8"))
        info["partial"] = True
        run_file.write_text(json.dumps(info, indent=2), encoding="utf-8")


def _locustfile() -> str:
    from jabberemu.cli import LOCUSTFILE

    return LOCUSTFILE


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``jabberemu drill``.

    Returns:
        0 (PASS, or FAIL without ``--fail-on-verdict``), 1 (FAIL with it), 2 (bad options or no report),
        130 (interrupted; a partial report is still written).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        plan_drill(clients=args.clients, ramp=args.ramp, lower_s=args.lower, upper_s=args.upper, fault=args.fault,
                   node="n", hold_s=args.hold, margin_s=args.margin,
                   critical_service_delay_s=args.critical_service_delay, heartbeat_timeout_s=args.heartbeat_timeout)
    except ValueError as exc:
        parser.error(str(exc))
    out = Path(args.out or os.path.join("reports", _run_id()))
    out.mkdir(parents=True, exist_ok=True)
    code = 0
    try:
        code = asyncio.run(_drill(args, out))
    except KeyboardInterrupt:
        code = 130
        _mark_partial(out)
    return _finish(out, code, args.fail_on_verdict)


def _finish(out: Path, code: int, fail_on_verdict: bool) -> int:
    from jabberemu.report.build import build_report

    if not (out / "run.json").exists():
        sys.stderr.write(f"no run data in {out}: the swarm did not start (exit code {code})\n")
        return code or 2
    summary = build_report(out)
    report = out / "report.html"
    sys.stdout.write(f"\nverdict: {summary.verdict.value}\n")
    for reason in summary.reasons:
        sys.stdout.write(f"  - {reason}\n")
    partial = " (partial run)" if code == 130 else ""
    sys.stdout.write(f"report{partial}: {report}\n")
    if code == 130:
        return 130
    if fail_on_verdict and summary.verdict.value == "FAIL":
        return 1
    return 0
