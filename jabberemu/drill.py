"""``jabberemu drill``: a whole HA drill on the bundled mock pair, start to finish.

1. start the mock pair (or use ``--topology`` of a pair already running) with short SRM timers and
   the re-login limits ``--lower``/``--upper``;
2. run the Locust swarm (``jabberemu run``, headless, in its own session) that logs ``--clients``
   emulated Jabber clients in at ``--ramp`` logins/s, holds ``--hold`` s once every client is signed in,
   injects the fault (``--fault``) on node 1 and later brings the pair back to Normal | Normal, each phase
   given time to settle (``drillplan.settle_time``: ``upper + margin``, or longer when the login model
   predicts that the node's queue keeps clients waiting past ``upper``), then stops; the swarm prints
   one progress line a second;
3. collect the mock's events and metrics beside the clients' run data in ``--out`` (the swarm polls
   the mock's admin API over the whole run: ``serverpoll``);
4. build ``report.html`` and ``summary.json`` and print the verdict and the report's path.

Ctrl-C (SIGINT, or SIGTERM) at any point stops the swarm (SIGTERM to its main process, which stops its
workers: the clients log out and the run data is flushed) and the pair (no orphan processes) and still
writes a report, marked partial; a second Ctrl-C kills the swarm at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from jabberemu.drillplan import (
    DEMO_LOGIN_RATE,
    FAULTS,
    MIN_SETTLE_S,
    WAVE_GAP_S,
    DrillPlan,
    Fault,
    plan_drill,
    predicted_last_recovery_s,
    validate,
)
from jabberemu.errors import ConfigError
from jabberemu.mockpair import MockPairProcess
from jabberemu.rundata.files import run_dir_problem
from jabberemu.serverpoll import ServerPoller

__all__ = ["LOCUSTFILE", "main", "build_parser", "default_processes", "topology_problems"]

logger = logging.getLogger(__name__)


LOCUSTFILE = str(Path(__file__).resolve().parent / "loadgen" / "locustfile.py")
"""The locustfile ``jabberemu run`` and the drill's swarm use."""


def topology_problems(path: str) -> list[str]:
    """What keeps ``--topology PATH`` from being a drill's target, one line each (empty: fine).

    The file must be a mock pair's topology (``jabberemu mock --topology-out``): readable JSON with both
    nodes, each with its XMPP address and CPA URL, and the admin URL the drill injects its fault through.
    """
    from jabberemu.loadgen.options import load_topology

    if not Path(path).is_file():
        return [f"--topology {path}: no such file"]
    try:
        pair, admin_url = load_topology(path)
    except ConfigError as exc:
        return [str(exc)]
    problems = []
    if len(pair.nodes) != 2:
        problems.append(f"--topology {path}: the drill fails node 1 over to node 2, but the file has one node")
    for i, node in enumerate(pair.nodes, start=1):
        if node.cpa_url is None:
            problems.append(f"--topology {path}: node {i} ({node.name}) has no \"cpa_url\"")
    if not admin_url:
        problems.append(f"--topology {path}: no \"admin_url\" (the drill injects its fault through the mock's "
                        "admin API)")
    return problems


def build_parser() -> argparse.ArgumentParser:
    """The options of ``jabberemu drill`` (defaults: the demo's)."""
    p = argparse.ArgumentParser(
        prog="jabberemu drill",
        description="Run a whole HA drill on the bundled mock IM&P pair: log clients in, inject a fault on "
        "node 1, let the re-login wave settle, bring the pair back, let it settle, and judge the re-login "
        "limits. Defaults are the demo's (make demo). Ctrl-C stops everything and writes a partial report.",
    )
    p.add_argument("--clients", type=int, default=2000, help="emulated Jabber clients (default %(default)s)")
    p.add_argument("--ramp", type=float, default=100.0, help="initial logins per second (default %(default)s)")
    p.add_argument("--lower", type=float, default=5.0, help="Client Re-Login Lower Limit, s (default %(default)s)")
    p.add_argument("--upper", type=float, default=25.0, help="Client Re-Login Upper Limit, s (default %(default)s)")
    p.add_argument("--fault", choices=FAULTS, default=Fault.FAILOVER.value,
                   help="what happens to node 1 (default %(default)s)")
    p.add_argument("--assignment", choices=("balanced", "active-standby"), default="balanced",
                   help="users' home nodes: balanced over the two nodes (half of them move in each wave), or "
                   "active-standby (all on node 1: every client moves; Cisco's two modes) (default %(default)s; with "
                   "--topology the running pair's own assignment holds)")
    c = p.add_argument_group(
        "login cost of each node of the bundled pair (docs/login-model.md): every CPA login, with the "
        "password or the one-time password, waits for a token and a worker; the queue beyond the last "
        "waiting login answers server-busy")
    c.add_argument("--login-rate", type=float, default=DEMO_LOGIN_RATE,
                   help="logins started per second per node: the capacity the mock enforces and the verdict "
                   "judges (default %(default)s; 0 = unlimited)")
    c.add_argument("--login-burst", type=int, default=1, help="logins that may start back to back (default 1)")
    c.add_argument("--login-workers", type=int, default=None,
                   help="logins in service at once per node (default: unlimited)")
    c.add_argument("--login-service-ms", type=float, default=0.0,
                   help="milliseconds one login holds its worker (default 0)")
    c.add_argument("--login-queue", type=int, default=None,
                   help="logins that may wait per node; beyond it server-busy (default: unbounded)")
    p.add_argument("--server-login-rate", type=float, default=None,
                   help="declared server capacity for the verdict, logins/s (default: --login-rate; with an "
                   "unlimited mock, 100)")
    p.add_argument("--soap-timeout", type=float, default=30.0,
                   help="seconds a client's CPA call may take, queue included, before it gives up on that node "
                   "(default %(default)s)")
    from jabberemu.throttle.planner import DEFAULT_MAX_WAIT_P99_S

    p.add_argument("--max-login-wait", type=float, default=DEFAULT_MAX_WAIT_P99_S,
                   help="a wave whose p99 CPA login wait exceeds this many seconds fails (default %(default)s)")
    p.add_argument("--seed", type=int, default=1, help="run seed: users, waits (default %(default)s)")
    p.add_argument("--out", help="run directory (default reports/<run-id>)")
    p.add_argument("--topology", help="topology JSON of a mock pair already running (skip starting one)")
    p.add_argument("--hold", type=float, default=5.0, help="steady state before the fault, s (default %(default)s)")
    p.add_argument("--margin", type=float, default=5.0,
                   help=f"seconds after upper for a wave to settle (default %(default)s; each phase gets at "
                   f"least {MIN_SETTLE_S:g} s so that the report tells the waves apart)")
    p.add_argument("--processes", type=int, default=default_processes(),
                   help="Locust worker processes the clients are spread over (default: the cores this machine "
                   "has, %(default)s); the users, their homes and their drawn waits do not depend on it")
    p.add_argument("--fail-on-verdict", action="store_true",
                   help="exit 1 when the verdict is FAIL, 3 when it is INCONCLUSIVE (nothing failed, but not "
                   "everything was tested)")
    # Short, but not so short that a node busy dropping 1,000 sessions misses its heartbeats: with a 1 s
    # timeout the demo's Failover raced a Peer Down on a loaded 2-core box and the pair needed Recover.
    t = p.add_argument_group("SRM timers of the bundled pair (seconds; Cisco's defaults are 15/60/120/90)")
    t.add_argument("--heartbeat-interval", type=float, default=0.5, help="default %(default)s")
    t.add_argument("--heartbeat-timeout", type=float, default=5.0, help="default %(default)s")
    t.add_argument("--init-heartbeat-timeout", type=float, default=10.0, help="default %(default)s")
    t.add_argument("--critical-service-delay", type=float, default=1.0, help="default %(default)s")
    return p


def default_processes() -> int:
    """Worker processes of a drill by default: one per core (``os.cpu_count()``), at least one (our choice:
    one asyncio loop per core; the master process itself generates no load)."""
    return max(1, os.cpu_count() or 1)


def _run_id() -> str:
    return time.strftime("drill-%Y%m%d-%H%M%S")


CLAIM_FILE = "drill.json"
"""The drill's first file in its run directory, created exclusively: two drills never share one."""


def _claim_out(out: Path | None) -> Path:
    """Create (or take) the run directory and claim it with :data:`CLAIM_FILE` (``O_EXCL``).

    ``out`` None: ``reports/drill-<time>``, with ``-2``, ``-3``... when a drill started in the same second
    has it (our choice). An explicit ``out`` that another drill claimed raises ``FileExistsError``.
    """
    if out is None:
        base = Path("reports") / _run_id()
        out = base
        for n in range(2, 1000):
            try:
                out.mkdir(parents=True)
                break
            except FileExistsError:
                out = base.with_name(f"{base.name}-{n}")
        else:
            raise FileExistsError(f"{base} and 998 more names are taken")
    out.mkdir(parents=True, exist_ok=True)
    with (out / CLAIM_FILE).open("x", encoding="utf-8") as f:
        json.dump({"pid": os.getpid(), "started_ts": time.time()}, f)
    return out


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _locust_command(args: argparse.Namespace, plan: DrillPlan, topology_path: Path, out: Path) -> list[str]:
    capacity = args.server_login_rate or args.login_rate or 100.0
    extra = ["--soap-timeout", str(args.soap_timeout), "--max-login-wait", str(args.max_login_wait)]
    cmd = [
        sys.executable, "-m", "locust", "-f", LOCUSTFILE, "--headless", "--only-summary",
        "-u", str(args.clients), "-r", str(args.ramp), "-t", f"{int(plan.run_time_s)}s",
        "--stop-timeout", "10", "--topology", str(topology_path), "--run-dir", str(out),
        "--run-seed", str(args.seed), "--drill", ",".join(plan.actions),
        "--default-lower", str(args.lower), "--default-upper", str(args.upper),
        "--server-login-rate", str(capacity), "--recovery-margin", str(args.margin),
        "--csv", str(out / "locust"), "--html", str(out / "locust.html"), "--progress", *extra,
        # failed requests are part of a drill (the failed node refuses logins): the verdict judges them
        "--exit-code-on-error", "0",
    ]
    if args.processes > 1:
        port = str(_free_port())  # Locust's master binds * :5557 by default: loopback and a free port
        cmd += ["--processes", str(args.processes), "--master-bind-host", "127.0.0.1",
                "--master-bind-port", port, "--master-port", port]
    return cmd


def _settle_why(plan: DrillPlan, upper_s: float) -> str:
    last = plan.predicted_last_s
    if last is None or last <= upper_s:
        return ""
    return f" (the login model expects the last client back {last:.0f} s after the HA event)"


def _mock_args(args: argparse.Namespace, out: Path) -> list[str]:
    """The options of ``python -m mock_server`` for the drill's pair."""
    params = {"heartbeat_interval_s": args.heartbeat_interval, "heartbeat_timeout_s": args.heartbeat_timeout,
              "init_heartbeat_timeout_s": args.init_heartbeat_timeout,
              "critical_service_delay_s": args.critical_service_delay, "relogin_lower_s": args.lower,
              "relogin_upper_s": args.upper}
    cmd = ["--users", str(args.clients), "--seed", str(args.seed), "--log-level", "WARNING",
           "--assignment", args.assignment]
    for name, value in params.items():
        cmd += ["--param", f"{name}={value:g}"]
    if args.login_rate:
        cmd += ["--login-rate", f"{args.login_rate:g}"]
    cmd += ["--login-burst", str(args.login_burst), "--login-service-ms", f"{args.login_service_ms:g}"]
    if args.login_workers is not None:
        cmd += ["--login-workers", str(args.login_workers)]
    if args.login_queue is not None:
        cmd += ["--login-queue", str(args.login_queue)]
    return cmd


async def _collect_server_data(pair: MockPairProcess, out: Path) -> dict[str, str]:
    """The last of the mock's events and metrics (the swarm's poller collected the run's: this poll
    resumes where it stopped, e.g. when the swarm was killed); returns the nodes' final SRM states
    ({} if unknown)."""
    states: dict[str, str] = {}
    with contextlib.suppress(Exception):
        states = await pair.states()
    admin_url = pair.topology.get("admin_url") if isinstance(pair.topology, dict) else None
    if admin_url:
        poller = ServerPoller(str(admin_url), out).resume()

        def final_poll() -> None:
            try:
                poller.poll()
            finally:
                poller.close(compress=True)

        with contextlib.suppress(Exception):
            await asyncio.to_thread(final_poll)
    return states


class _Swarm:
    """The Locust child, in its own session so that only the drill decides when it stops."""

    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)

    async def reap(self, grace_s: float = 5.0) -> None:
        """After the main process ended: SIGTERM to what is left of its group (worker processes a
        master that ended on its ``-t`` did not stop: Locust's workers wait 60 s for a heartbeat
        before they give up), SIGKILL to the rest after ``grace_s``."""
        if self.proc is None:
            return
        pgid = self.proc.pid
        try:
            os.killpg(pgid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            return  # nothing left of the group
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except (ProcessLookupError, PermissionError):
                return
            await asyncio.sleep(0.1)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)

    async def stop(self, *, started: bool, grace_s: float = 30.0) -> None:
        """SIGTERM to the swarm's main process, which ends the drill (clients log out, run data flushed)
        and, with ``--processes``, stops its workers the way a finished run does; SIGKILL to the group
        after ``grace_s``.

        Args:
            started: the swarm's test has started (``run.json`` exists); before that, Locust is still
                importing: SIGTERM to the whole group. (A SIGINT to the group would reach every worker
                too, each printing a KeyboardInterrupt traceback.)
        """
        if self.proc is None:
            return
        if started:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
        else:
            self.signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), grace_s)
        except asyncio.TimeoutError:
            self.signal(signal.SIGKILL)
            await self.proc.wait()
        self.signal(signal.SIGKILL)  # forked workers left behind by a dead master


async def _drill(args: argparse.Namespace, out: Path) -> int:
    loop = asyncio.get_running_loop()
    body = asyncio.current_task()
    assert body is not None
    swarm = _Swarm()
    signals: list[int] = []

    def on_signal(sig: int) -> None:
        signals.append(sig)
        if len(signals) == 1:
            sys.stdout.write(f"\n{signal.Signals(sig).name}: stopping the swarm and the pair, then a partial "
                             "report (again to kill the swarm at once)\n")
            sys.stdout.flush()
            body.cancel()
        else:
            swarm.signal(signal.SIGKILL)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    pair: MockPairProcess | None = None
    final_states: dict[str, str] = {}
    topology_path = out / "topology.json"
    try:
        if args.topology:
            topology = json.loads(Path(args.topology).read_text(encoding="utf-8"))
        else:
            pair = MockPairProcess(_mock_args(args, out), topology_path, out / "mock.log")
            sys.stdout.write(f"starting the mock pair ({args.clients} users)...\n")
            sys.stdout.flush()
            topology = await pair.start()
        topology_path.write_text(json.dumps(topology, indent=2), encoding="utf-8")
        node = topology["nodes"][0]["name"]
        plan = plan_drill(
            clients=args.clients, ramp=args.ramp, lower_s=args.lower, upper_s=args.upper, fault=Fault(args.fault),
            node=node, hold_s=args.hold, margin_s=args.margin, critical_service_delay_s=args.critical_service_delay,
            heartbeat_timeout_s=args.heartbeat_timeout, init_heartbeat_timeout_s=args.init_heartbeat_timeout,
            predicted_last_s=None if args.topology else predicted_last_recovery_s(
                clients=args.clients, lower_s=args.lower, upper_s=args.upper, soap_timeout_s=args.soap_timeout,
                rate_per_s=args.login_rate or None, burst=args.login_burst, workers=args.login_workers,
                service_ms=args.login_service_ms, queue=args.login_queue,
                active_standby=args.assignment == "active-standby"),
        )
        if args.fault == Fault.NODE_KILL.value and 2 * args.lower < args.heartbeat_timeout:
            sys.stdout.write(
                f"warning: the peer takes a killed node's users over after the heartbeat timeout "
                f"({args.heartbeat_timeout:g} s), but its clients try both nodes twice, each after a wait of at "
                f"least --lower ({args.lower:g} s): some may give up first\n")
        sys.stdout.write(
            f"drill: {args.clients} clients at {args.ramp:g}/s, limits {args.lower:g}/{args.upper:g} s, fault "
            f"{args.fault} on {node} {plan.fault_at_s:g} s after every client is signed in, {plan.settle_s:g} s "
            f"per wave{_settle_why(plan, args.upper)}; phases {', '.join(plan.actions)}; about {args.clients / args.ramp + plan.end_s:.0f} s\n"
        )
        sys.stdout.flush()
        swarm.proc = await asyncio.create_subprocess_exec(
            *_locust_command(args, plan, topology_path, out), start_new_session=True)
        code = await swarm.proc.wait()
        await swarm.reap()
        if pair is not None:
            final_states = await _collect_server_data(pair, out)
            if final_states and set(final_states.values()) != {"Normal"}:
                sys.stdout.write(f"warning: the pair ended in {final_states}, not Normal | Normal: a phase of the "
                                 f"drill did not happen (see {out / 'server_events.jsonl'})\n")
        return code
    except ConfigError as exc:  # the pair did not come up: say why in one line
        sys.stderr.write(f"jabberemu drill: {exc}\n")
        return 2
    except asyncio.CancelledError:
        if not signals:
            raise
        await swarm.stop(started=(out / "run.json").exists())
        return 128 + signals[0]
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if pair is not None:
            if not final_states:
                await _collect_server_data(pair, out)
            await pair.stop()


def _mark_partial(out: Path) -> None:
    run_file = out / "run.json"
    with contextlib.suppress(OSError, ValueError):
        info = json.loads(run_file.read_text(encoding="utf-8"))
        info["partial"] = True
        run_file.write_text(json.dumps(info, indent=2), encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``jabberemu drill``.

    Returns:
        0 (PASS, or any verdict without ``--fail-on-verdict``), 1 (FAIL with it), 3 (INCONCLUSIVE with
        it), 2 (bad options or no report),
        130 (Ctrl-C; 143 for SIGTERM): a partial report is still written when the swarm had started.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    timers = {"heartbeat-interval": args.heartbeat_interval, "heartbeat-timeout": args.heartbeat_timeout,
              "init-heartbeat-timeout": args.init_heartbeat_timeout,
              "critical-service-delay": args.critical_service_delay}
    problems = validate(clients=args.clients, ramp=args.ramp, lower_s=args.lower, upper_s=args.upper,
                        hold_s=args.hold, margin_s=args.margin, processes=args.processes,
                        login_rate=args.login_rate, timers=timers)
    for name, value, low in (("--login-burst", args.login_burst, 1), ("--login-workers", args.login_workers, 1),
                             ("--login-queue", args.login_queue, 0)):
        if value is not None and value < low:
            problems.append(f"{name} must be at least {low}, not {value}")
    for name, value in (("--soap-timeout", args.soap_timeout), ("--max-login-wait", args.max_login_wait)):
        if not value > 0:
            problems.append(f"{name} must be > 0 s, not {value:g}")
    if not args.login_service_ms >= 0:
        problems.append(f"--login-service-ms must be >= 0 ms, not {args.login_service_ms:g}")
    if args.topology:
        problems += topology_problems(args.topology)
    if args.out and (problem := run_dir_problem(Path(args.out), "--out", claims=(CLAIM_FILE,))):
        problems.append(problem)
    if problems:
        parser.error("; ".join(problems))
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        out = _claim_out(Path(args.out) if args.out else None)
    except FileExistsError:
        parser.error(f"--out {args.out}: another drill claimed it a moment ago; give a new or empty directory")
    except OSError as exc:
        parser.error(f"--out {args.out or 'reports/'}: {exc.strerror or exc}")
    try:
        code = asyncio.run(_drill(args, out))
    except KeyboardInterrupt:  # Ctrl-C before the drill's own handler was in place
        code = 130
    if code >= 128:
        _mark_partial(out)
    try:
        return _finish(out, code, args.fail_on_verdict)
    except KeyboardInterrupt:
        sys.stderr.write(f"interrupted while building the report; rebuild it with 'jabberemu report {out}'\n")
        return 130


def _finish(out: Path, code: int, fail_on_verdict: bool) -> int:
    from jabberemu.report.build import build_report
    from jabberemu.report.errors import ReportError

    interrupted = code >= 128
    if not (out / "run.json").exists():
        sys.stderr.write(f"no run data in {out}: the swarm did not start (exit code {code})\n")
        return code or 2
    try:
        summary = build_report(out)
    except ReportError as exc:
        sys.stderr.write(f"jabberemu drill: no report: {exc}\n")
        return code if interrupted else 2
    sys.stdout.write(f"\nverdict{' (partial run)' if interrupted else ''}: {summary.verdict.value}\n")
    for reason in summary.reasons:
        sys.stdout.write(f"  - {reason}\n")
    sys.stdout.write(f"{summary.data['generator']['description']}\n")  # the report's own figure
    sys.stdout.write(f"report{' (partial run)' if interrupted else ''}: {out / 'report.html'}\n")
    if interrupted:
        return code
    if code != 0:
        sys.stderr.write(f"the swarm exited with code {code}\n")
    from jabberemu.report.checks import exit_code

    return exit_code(summary.verdict, fail_on_verdict)
