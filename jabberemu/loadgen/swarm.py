"""The jabberemu side of one Locust process: target, runtime, user ids, run data, report.

Locust's events drive it (wired by :func:`install`): ``init`` builds the per-process objects (the
asyncio bridge is already running by then), ``test_start`` stamps the load clock and loads the
drill, ``test_stop`` writes ``run.json``, ``quitting`` closes the runtime, writes a worker's own
account (``workers/<worker>.json``) and, with ``--report``, builds the report and sets the exit code
from the verdict.

User ids are unique across workers because the master hands them out, and the master's report is
whole because it waits for its workers' last records (:mod:`jabberemu.loadgen.workers`).

Bad options end the process with a one-line error and exit code 2 (no traceback).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import gevent
import gevent.event
import psutil

from jabberemu.config import ClientSettings
from jabberemu.errors import ConfigError, JabberEmuError
from jabberemu.gcpolicy import active_policy
from jabberemu.loadgen.bridge import AsyncioBridge
from jabberemu.loadgen.collect import HEALTH_MSG, QueueSink, RunCollector
from jabberemu.loadgen.options import (
    Assignment, Target, UserSpec, check_options, home_node, load_users_csv, settings_from_options,
    target_from_options,
)
from jabberemu.loadgen.pairinfo import detect_assignment, mock_login_model, mock_upper_limit
from jabberemu.loadgen.progress import progress_line, sum_progress
from jabberemu.loadgen.prometheus import PrometheusExporter
from jabberemu.loadgen.schedule import check_plan, soak_drill
from jabberemu.loadgen.serverdata import ServerDataCollector
from jabberemu.loadgen.signout import SignOuts
from jabberemu.report.health import STALL_MS
from jabberemu.loadgen.shape import DRILL
from jabberemu.loadgen.traps import (
    cache_locust_default_args,
    count_locust_users,
    guard_csv_writer,
    keep_locust_stats_trimmed,
    start_bridge,
    use_threaded_resolver,
)
from jabberemu.loadgen.workers import Workers
from jabberemu.preflight import HostLimits, connect_search_warning, host_limits, raise_fd_limit
from jabberemu.preflight import problems as preflight_problems
from jabberemu.rundata import DetailLevel
from jabberemu.rundata.files import run_dir_problem
from jabberemu.runtime import Runtime
from jabberemu.serverpoll import mock_parameters
from jabberemu.xmpp.source import SourceAddressConnector, loopback_sources, parse_source_addresses

__all__ = ["Swarm", "SWARM", "UserSpec", "install", "PROGRESS_MSG"]

logger = logging.getLogger(__name__)

PROGRESS_MSG = HEALTH_MSG + "_progress"


INIT_WAIT_S = 60.0
"""Seconds a user that arrived during ``events.init`` waits for it to finish."""

class Swarm:
    """Per-process state shared by every :class:`~jabberemu.loadgen.user.JabberUser`."""

    def __init__(self) -> None:
        self.bridge = AsyncioBridge()
        self.environment: Any = None
        self.ready = gevent.event.Event()
        """Set once ``events.init`` is done: a worker's runner may receive users before that."""
        self.runtime: Runtime | None = None
        self.source_addresses: tuple[str, ...] = ()
        """``--source-addresses``: where the XMPP connections come from, in turn (empty: the kernel chooses)."""
        self.settings: ClientSettings | None = None
        self.target: Target | None = None
        self.assignment = Assignment.BALANCED
        self.sink = QueueSink()
        self.collector: RunCollector | None = None
        self.server_data: ServerDataCollector | None = None
        self.server_parameters: dict[str, Any] | None = None
        """The mock's SRM parameters per node (``/api/parameters``): the re-login limits it hands out."""
        self.run_dir = Path("reports")
        self.run_id = time.strftime("run-%Y%m%d-%H%M%S")
        """Named when the locustfile is imported: before ``--processes`` forks its workers, so the master and
        its workers agree on the default ``reports/<run-id>`` (each named it at its own ``init`` before, and
        a worker starting in the next second wrote its account into another directory)."""
        self.started_ts: float | None = None
        self.csv_users: list[UserSpec] = []
        self.progress: dict[str, dict[str, Any]] = {}
        self.is_mock = False
        self.interrupted: int | None = None
        """The signal that interrupted the run (SIGTERM, SIGINT), None while it ends as planned."""
        self.stall_ms = STALL_MS
        """A probe of the loop later than this (ms) is a stall (``--loop-lag-warn-ms``)."""
        self.sign_outs = SignOuts(self.bridge)
        """The users' sign-outs: started by ``JabberUser.on_stop``, awaited at ``test_stop``."""
        self.workers = Workers(f"{os.uname().nodename}-{os.getpid()}")
        self.prometheus = PrometheusExporter(self)

    # -- Locust events -------------------------------------------------------------------------

    def on_init(self, environment: Any, **_kw: Any) -> None:
        """``events.init``: build this process's objects; bad options end the process (exit 2)."""
        self.environment = environment
        opts = environment.parsed_options
        try:
            count_locust_users(getattr(environment, "runner", None))
            if opts is not None:  # None: a library Environment without our options (tests)
                self._init(environment, opts)
        except JabberEmuError as exc:
            sys.stderr.write(f"jabberemu: error: {exc}\n")
            sys.stderr.flush()
            _end_forked_workers(environment)
            sys.exit(2)
        finally:
            self.ready.set()

    def _init(self, environment: Any, opts: Any) -> None:
        from locust.runners import MasterRunner, WorkerRunner

        logging.getLogger("slixmpp").setLevel(logging.WARNING)  # "JID set to ..." per login is noise
        use_threaded_resolver()
        self.bridge.cpu_percent()  # reset its CPU mark: set at import, before Locust's --processes fork
        check_options(opts)  # every option in its own name and unit, -u included (Locust takes -u -5)
        self.run_dir = Path(opts.run_dir or os.path.join("reports", self.run_id))
        if not isinstance(environment.runner, WorkerRunner) and (
                problem := run_dir_problem(self.run_dir, "--run-dir" if opts.run_dir else "the run directory")):
            # workers skip it: they start beside a master that may already be writing there
            raise ConfigError(problem, field="run_dir")
        self.target = target_from_options(opts)
        self.is_mock = self.target.is_mock
        self.settings = settings_from_options(opts, self.is_mock)
        self.stall_ms = float(opts.loop_lag_warn_ms)
        DRILL.configure(self._drill_text(opts), self.target.admin_url)
        self._check_drill(opts)
        self.source_addresses = parse_source_addresses(opts.source_addresses) if opts.source_addresses else ()
        clients, limits = int(opts.num_users or 0), host_limits()  # once: spread, pre-flight, warning
        spread = False
        if not self.source_addresses:  # a large pool towards a pair on loopback: spread before connect() slows
            self.source_addresses = loopback_sources(clients, (n.xmpp_host for n in self.target.pair.nodes),
                                                     limits.ephemeral_ports)
            spread = bool(self.source_addresses)
        raise_fd_limit()  # one socket per client: the soft limit (often 1,024) up to the hard one
        if not isinstance(environment.runner, WorkerRunner):
            self._preflight(environment, opts, limits)
            if spread:
                logger.info("XMPP connections come from %d loopback addresses in turn (%s): %d clients from one "
                            "would come near half its ephemeral ports towards one node, past which each "
                            "connect() costs ~30 times as much (--source-addresses chooses them; a worker started "
                            "without -u spreads nothing)", len(self.source_addresses),
                            ", ".join(self.source_addresses), clients)
            elif warning := connect_search_warning(clients, len(self.source_addresses) or 1, limits):
                logger.warning(warning)
        assignment = Assignment(opts.assignment)
        self.assignment = detect_assignment(self.target.admin_url) if assignment is Assignment.AUTO else assignment
        if opts.users_csv:  # the target's nodes are known now: homes are checked, missing ones assigned
            self.csv_users = load_users_csv(opts.users_csv, tuple(n.name for n in self.target.pair.nodes),
                                            self.assignment, wanted=opts.num_users, offset=int(opts.user_offset))
        runner = environment.runner
        self.sink.detail = DetailLevel(opts.record_detail)
        self.collector = RunCollector(environment, self.sink, self.run_dir, self.health,
                                      cpu_warn=opts.cpu_warn, loop_lag_warn_ms=opts.loop_lag_warn_ms,
                                      rotate_bytes=int(opts.record_rotate_mb * (1 << 20)) or None)
        self.collector.start()
        self.server_data = ServerDataCollector(self.target.admin_url, self.run_dir,
                                               rotate_bytes=self.collector.rotate_bytes)
        self.server_data.start(environment)
        if not isinstance(runner, WorkerRunner):
            self.server_parameters = mock_parameters(self.target.admin_url)
        self.workers.worker_id = self.collector.worker_id  # after a --processes fork: this pid
        self.workers.register(environment, self.run_dir, int(opts.user_offset or 0))
        self.prometheus.configure(environment, opts)
        if environment.web_ui is not None:
            from jabberemu.loadgen.webui import install_tab

            install_tab(environment, self)
        DRILL.ready_probe = self.all_signed_in
        keep_locust_stats_trimmed(environment)
        if not isinstance(runner, WorkerRunner):
            gevent.signal_handler(signal.SIGTERM, self._on_sigterm)
            self._note_sigint()
        if isinstance(runner, MasterRunner):
            runner.register_message(PROGRESS_MSG, self._on_progress)
            if opts.progress:
                gevent.spawn(self._print_progress)
            return
        self.runtime = self.bridge.submit(self._make_runtime, self.target.pair, self.settings, int(opts.run_seed),
                                          timeout_s=60)
        gevent.spawn(self._share_progress)
        if opts.progress and not isinstance(runner, WorkerRunner):
            gevent.spawn(self._print_progress)

    def _on_sigterm(self) -> None:
        """SIGTERM during a shape run: end the drill, so Locust shuts down gracefully.

        Headless Locust installs its own SIGTERM handler only after a ``LoadTestShape`` finished; until
        then SIGTERM killed the process outright (no statistics, no ``--csv``, no sign-outs).
        """
        logger.info("SIGTERM: ending the drill; clients sign out")
        self.interrupted = signal.SIGTERM
        DRILL.stop_requested = True

    def _note_sigint(self) -> None:
        """Remember a Ctrl-C (SIGINT), then let it do what it did before (Locust's KeyboardInterrupt)."""
        previous = signal.getsignal(signal.SIGINT)

        def on_sigint(signum: int, frame: Any) -> None:
            if self.interrupted is None:
                self.interrupted = signal.SIGINT
            if callable(previous):
                previous(signum, frame)
            else:
                raise KeyboardInterrupt

        try:
            signal.signal(signal.SIGINT, on_sigint)
        except ValueError:  # not the main thread (an embedding program): the runner's state tells
            logger.debug("SIGINT handler not installed outside the main thread")

    async def _make_runtime(self, pair: Any, settings: ClientSettings, seed: int) -> Runtime:
        # the one road of a measurement: Runtime.report -> Locust (the bridge's queue) and the run data (sink)
        connector = SourceAddressConnector(self.source_addresses)  # the bridge loop's socket class (not gevent's)
        return await Runtime.create(pair, settings, run_seed=seed, measure=self.bridge.record_measurement,
                                    sink=self.sink, xmpp_connector=connector)

    def _preflight(self, environment: Any, opts: Any, limits: HostLimits) -> None:
        """Refuse a run that would outgrow this host's fds, ephemeral ports or memory (``preflight``).

        Raises:
            ConfigError: every limit it would run out of, with the shortfall, in one line.
        """
        from locust.runners import MasterRunner

        processes = 1
        if isinstance(environment.runner, MasterRunner):
            forked = int(getattr(opts, "processes", 0) or 0)
            processes = (os.cpu_count() or 1) if forked < 0 else forked or int(getattr(opts, "expect_workers", 1) or 1)
        found = preflight_problems(clients=int(opts.num_users or 0), processes=processes,
                                   source_addresses=len(self.source_addresses) or 1, limits=limits)
        if found:
            raise ConfigError("this host cannot hold the run: " + "; ".join(found))

    def on_test_start(self, environment: Any, **_kw: Any) -> None:
        _collector(pause=False)  # a stop whose test_stop never came (Locust failed in between)
        self.started_ts = time.time()
        if not self._is_worker():
            self.workers.new_test()  # a new test in the web UI starts again at user 1
        self._write_run_info(partial=True)

    def on_test_stopping(self, environment: Any, **_kw: Any) -> None:
        """``events.test_stopping`` (before the users stop): the collector pauses until the sign-outs
        are over and the last records sent (``on_test_stop``; :meth:`GcPolicy.pause
        <jabberemu.gcpolicy.GcPolicy.pause>`): their garbage is freed by reference counting, without
        passes over the objects they make."""
        _collector(pause=True)

    def on_test_stop(self, environment: Any, **_kw: Any) -> None:
        """``events.test_stop``: a worker sends its last records and its account; the master waits for them.

        Locust's master, when a headless run ends, stops without telling its workers and then gives
        them 0.5 s to quit: the sign-outs of ``on_stop`` and the ``end`` records would be lost. So the
        master stops the workers itself here and waits (``DRAIN_TIMEOUT_S`` at most) until each has
        reported ``jabberemu_done``, after its final statistics and records.
        """
        from locust.runners import MasterRunner

        runner = environment.runner
        try:
            self.sign_outs.wait()
            if self._is_worker():
                collector = self.collector
                self.bridge.flush()  # measurements still queued go into the statistics sent next
                self.workers.finish_worker((lambda: collector.pump(final=True)) if collector else lambda: None)
                return
            if isinstance(runner, MasterRunner):
                self.workers.drain(runner)
            # partial: interrupted by a signal, or -t ended the run before its drill did
            cut = any(i not in DRILL.fired for i in range(len(DRILL.actions)))
            self._write_run_info(partial=self.interrupted is not None or cut)
            DRILL.reset()  # the next test in the web UI runs the drill again
        finally:
            _collector(pause=False)  # paused at test_stopping; the last records are sent

    def on_quitting(self, environment: Any, **_kw: Any) -> None:
        """``events.quitting``: sign every client out, close the loop, write what this process did.

        On SIGTERM Locust fires ``quitting`` *before* it stops the users; the users are stopped
        here first so that every client signs out (and writes its ``end`` record) while the loop runs.
        """
        from locust.runners import STATE_SPAWNING, STATE_RUNNING, MasterRunner

        runner = environment.runner
        if runner is not None and runner.state in (STATE_SPAWNING, STATE_RUNNING) and self.interrupted is None:
            self.interrupted = signal.SIGINT  # quitting while the test still ran: Ctrl-C (KeyboardInterrupt)
        if runner is not None and not isinstance(runner, MasterRunner) and runner.state in (STATE_SPAWNING,
                                                                                               STATE_RUNNING):
            runner.stop()
        self.sign_outs.wait()  # users stopped outside a test_stop; or a wait of test_stop still running
        if self.runtime is not None:
            try:
                self.bridge.submit(self.runtime.aclose, timeout_s=10)
            except Exception:  # the bridge may already be stopped
                logger.debug("runtime close skipped", exc_info=True)
        self.bridge.stop(5.0)  # fires the last measurements into Locust's statistics
        if self.collector is not None:
            self.collector.stop()
        if self.server_data is not None:
            self.server_data.stop()
        opts = environment.parsed_options
        if opts is not None and getattr(opts, "csv_prefix", None) and not self._is_worker():
            from locust.stats import CSV_STATS_INTERVAL_SEC

            gevent.sleep(CSV_STATS_INTERVAL_SEC + 0.2)  # one more pass of Locust's --csv writer: whole totals
        if opts is None or self.collector is None:
            return
        if self._is_worker():
            self.workers.write_account()  # again: anything after test_stop is counted too
            return
        from jabberemu.report.checks import EXIT_INCONCLUSIVE, exit_code

        if DRILL.failure is not None:  # the run stopped early: never exit 0 on a drill not carried out
            sys.stderr.write(f"jabberemu: error: {DRILL.failure}; the run stopped there\n")
            environment.process_exit_code = EXIT_INCONCLUSIVE
        if self.interrupted is not None:  # an interrupted run exits as interrupted, whatever its verdict
            sys.stderr.write(f"jabberemu: interrupted by {signal.Signals(self.interrupted).name}: partial run\n")
            environment.process_exit_code = 128 + int(self.interrupted)
        if not opts.report:
            return
        from jabberemu.report.build import build_report

        try:
            summary = build_report(self.run_dir)
        except Exception as exc:
            logger.error("report not built: %s", exc)
            return
        sys.stderr.write(f"jabberemu verdict: {summary.verdict.value}; report: {self.run_dir / 'report.html'}\n")
        if DRILL.failure is None and self.interrupted is None:
            # a judged run: the verdict decides the exit status, not Locust's "any failed request"
            # (a session login refused by the failed node is the client's normal path, and the
            # verdict judges every failure that matters: docs/login-model.md §2)
            environment.process_exit_code = exit_code(summary.verdict, opts.fail_on_verdict)

    def _server_model(self, opts: Any) -> dict[str, Any] | None:
        """The serving node's login model for the prediction: the mock's own settings (when their rate
        is the declared capacity, or none is declared), else the declared rate alone (None: neither)."""
        mock = mock_login_model(self.target.admin_url) if self.target is not None else None
        declared = opts.server_login_rate or None
        if mock is not None and (declared is None or mock.get("rate_per_s") == declared):
            return mock
        return {"rate_per_s": declared} if declared is not None else mock

    def _drill_text(self, opts: Any) -> str:
        """``--drill`` plus the soak's failovers and fallbacks (``--drill-every``: ``schedule.soak_drill``)."""
        assert self.target is not None and self.settings is not None
        upper = mock_upper_limit(self.target.admin_url) if opts.drill_every and not self._is_worker() else None
        return soak_drill(opts, node=opts.drill_node or self.target.pair.nodes[0].name,
                          upper_s=upper if upper is not None else self.settings.default_limits.upper_s)

    def _check_drill(self, opts: Any) -> None:
        """Refuse a drill the target cannot run (unknown node, action after ``-t``); warn about waves
        the end of the run would cut (their verdict would be INCONCLUSIVE).

        Raises:
            ConfigError: the first problem, in the option's terms.
        """
        assert self.target is not None and self.settings is not None
        run_time = getattr(opts, "run_time", None)
        upper = None
        if DRILL.actions and run_time and not self._is_worker():
            upper = mock_upper_limit(self.target.admin_url)  # the limits the mock hands out
        if upper is None:
            upper = self.settings.default_limits.upper_s
        errors, warnings = check_plan(
            DRILL.actions, node_names=tuple(n.name for n in self.target.pair.nodes),
            run_time_s=float(run_time) if run_time else None,
            settle_s=upper + float(opts.recovery_margin), has_admin=bool(self.target.admin_url))
        if errors:
            raise ConfigError("; ".join(errors), field="drill")
        if not self._is_worker():
            for w in warnings:
                sys.stderr.write(f"jabberemu: warning: {w}\n")

    # -- users ---------------------------------------------------------------------------------

    def next_user(self) -> UserSpec:
        """The next user: unique across workers (the master hands out the indices).

        Raises:
            ConfigError: ``--users-csv`` has fewer users than asked for.
            gevent.Timeout: a worker's master did not answer in time.
        """
        if not self.ready.wait(INIT_WAIT_S):
            raise ConfigError(f"jabberemu did not finish starting within {INIT_WAIT_S:.0f} s")
        index = self.workers.take_index()
        if self.csv_users:
            if index >= len(self.csv_users):  # -u unknown at start (web UI): refused per client
                path = self.environment.parsed_options.users_csv
                raise ConfigError(f"--users-csv: {len(self.csv_users)} users in {path}, user #{index + 1} asked for",
                                  field="users_csv")
            return self.csv_users[index]
        opts = self.environment.parsed_options
        user_id = opts.user_pattern.format(n=index + 1)
        password = opts.password_pattern.format(user=user_id)
        assert self.target is not None
        names = tuple(n.name for n in self.target.pair.nodes)
        return UserSpec(index=index, user_id=user_id, password=password,
                        home=home_node(index, names, self.assignment))

    # -- health and progress -------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """This process's generator health over the last second (``report.health``)."""
        lag, stalled, gc_ms, gc_max = self.bridge.health_interval(self.stall_ms)
        return {"cpu_percent": round(self.bridge.cpu_percent(), 1),
                "loop_lag_ms": None if lag is None else round(lag, 3), "stalled_ms": round(stalled, 3),
                "gc_ms": round(gc_ms, 3), "gc_max_ms": round(gc_max, 3)}

    def _is_worker(self) -> bool:
        from locust.runners import WorkerRunner

        return isinstance(getattr(self.environment, "runner", None), WorkerRunner)

    async def _snapshot(self) -> dict[str, Any]:
        assert self.runtime is not None
        snap = self.runtime.registry.snapshot()
        return {
            "started": snap.started,
            "states": {s.value: c for s, c in snap.by_state.items() if c},
            "connected": dict(snap.connected_by_node),
            "nodes": dict(snap.by_node),
        }

    def _share_progress(self) -> None:
        key = f"{os.uname().nodename}-{os.getpid()}"
        while True:
            gevent.sleep(1.0)
            if self.runtime is None:
                continue
            try:
                snap = self.bridge.submit(self._snapshot, timeout_s=5)
            except Exception:
                continue
            if self._is_worker():
                self.environment.runner.send_message(PROGRESS_MSG, {"worker": key, **snap})
            else:
                self.progress[key] = snap

    def _on_progress(self, msg: Any, **_kw: Any) -> None:
        self.progress[str(msg.data.get("worker"))] = msg.data

    def all_signed_in(self) -> bool:
        """True when every user of the run (``-u``) has a client in XMPPCONNECTED (from the progress)."""
        want = int(getattr(self.environment.parsed_options, "num_users", 0) or 0)
        return want > 0 and int(self.totals()["states"].get("XMPPCONNECTED", 0)) >= want

    def totals(self) -> dict[str, Any]:
        """Clients per state, connected clients per node and clients per node (any live state), summed
        over processes."""
        return sum_progress(list(self.progress.values()))

    def _print_progress(self) -> None:
        t0 = time.time()
        while True:
            gevent.sleep(1.0)
            tot = self.totals()
            if tot["started"]:
                sys.stdout.write(progress_line(tot, time.time() - t0) + "\n")
                sys.stdout.flush()

    # -- run.json ------------------------------------------------

    def _write_run_info(self, *, partial: bool) -> None:
        if self.collector is None or self.environment is None:
            return
        opts = self.environment.parsed_options
        settings = self.settings or settings_from_options(opts, self.is_mock)
        info = {
            "run_id": self.run_id,
            "started_ts": self.started_ts or time.time(),
            "ended_ts": None if partial else time.time(),
            "clients": int(opts.num_users or 0),
            "lower_s": settings.default_limits.lower_s,
            "upper_s": settings.default_limits.upper_s,
            "server_login_rate": opts.server_login_rate or None,
            "server_model": self._server_model(opts),
            "max_login_wait_s": opts.max_login_wait,
            "soap_timeout_s": settings.timeouts.soap_s,
            "recovery_margin_s": opts.recovery_margin,
            "record_detail": opts.record_detail,
            "soak": bool(opts.drill_every),
            "drill_every_s": opts.drill_every or None,
            "server_parameters": self.server_parameters,
            "actions": [
                {k: a[k] for k in ("ts", "action", "node", "status", "error") if a.get(k) is not None}
                for a in DRILL.done
            ],
            "planned_actions": [
                {"action": a.label, "node": a.node, "at_s": a.at_s, "after_ready": a.after_ready}
                for a in DRILL.actions
            ],
            "partial": partial,
        }
        self.collector.write_run_info(info)

SWARM = Swarm()
"""The one swarm of this process."""


def _end_forked_workers(environment: Any) -> None:
    """A master of ``--processes`` that refuses the run ends the workers it forked: they passed their own
    checks (the run directory is the master's to check) and would wait for it until their heartbeat timed
    out, then join the next run on the same port. Its children that run this same command line are those
    forks; they have no client yet, so they are killed outright."""
    from locust.runners import MasterRunner

    opts = getattr(environment, "parsed_options", None)
    if not isinstance(getattr(environment, "runner", None), MasterRunner) or not getattr(opts, "processes", 0):
        return
    me = psutil.Process()
    for child in me.children():
        with contextlib.suppress(psutil.Error):
            if child.cmdline() == me.cmdline():
                child.kill()


def _collector(*, pause: bool) -> None:
    """Pause or resume the process's collector (:class:`~jabberemu.gcpolicy.GcPolicy`); nothing in a
    process without clients (the policy comes with the runtime)."""
    policy = active_policy()
    if policy is None:
        return
    if pause:
        policy.pause()
    else:
        policy.resume()


def install(events: Any) -> Swarm:
    """Wire :data:`SWARM` and its bridge to Locust's events (call once, from the locustfile)."""
    from jabberemu.loadgen.options import add_options

    bridge = SWARM.bridge
    bridge.fire = events.request.fire
    guard_csv_writer()
    cache_locust_default_args()
    # gevent records each greenlet's spawning stack and tree (debugging aids nothing here reads):
    # 0.37 KiB per Locust user (11.73 -> 11.36 KiB, 20,000 parked users; our choice, BENCHMARKS.md)
    gevent.config.track_greenlet_tree = False
    events.init_command_line_parser.add_listener(add_options)
    # One loop for the process's whole life: the runtime (HTTP pool, TLS context) lives on it, so
    # it is not stopped between tests in the web UI, only when Locust quits.
    events.init.add_listener(lambda **_kw: start_bridge(bridge))
    events.init.add_listener(SWARM.on_init)
    events.request.add_listener(SWARM.workers.count_request)
    events.test_start.add_listener(SWARM.on_test_start)
    events.test_stopping.add_listener(SWARM.on_test_stopping)
    events.test_stop.add_listener(SWARM.on_test_stop)
    events.quitting.add_listener(SWARM.on_quitting)
    SWARM.prometheus.install(events)  # after on_quitting: the endpoint stops last
    return SWARM
