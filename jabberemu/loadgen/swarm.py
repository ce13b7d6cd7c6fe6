"""The jabberemu side of one Locust process: target, runtime, user ids, run data, report.

Locust's events drive it (wired by :func:`install`): ``init`` builds the per-process objects (the
asyncio bridge is already running by then), ``test_start`` stamps the load clock and loads the
drill, ``test_stop`` writes ``run.json``, ``quitting`` closes the runtime and, with ``--report``,
builds the report and sets the exit code from the verdict.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import gevent

from jabberemu.config import ActivityRates, ClientSettings, NodeAddress, ReloginLimits, ServerPair, Timeouts
from jabberemu.core.metrics import Measurement
from jabberemu.errors import ConfigError
from jabberemu.loadgen.bridge import AsyncioBridge
from jabberemu.loadgen.collect import HEALTH_MSG, QueueSink, RunCollector
from jabberemu.loadgen.shape import DRILL
from jabberemu.runtime import Runtime

__all__ = ["Swarm", "SWARM", "UserSpec", "install"]

logger = logging.getLogger(__name__)


class UserSpec:
    """Who one emulated client is."""

    __slots__ = ("user_id", "password", "home")

    def __init__(self, user_id: str, password: str, home: str | None) -> None:
        self.user_id = user_id
        self.password = password
        self.home = home


def _target(opts: Any) -> tuple[ServerPair, str, bool]:
    """(pair, admin_url, is_mock) from ``--topology`` or ``--cpa-url``/``--xmpp-host``."""
    if opts.topology:
        try:
            data = json.loads(Path(opts.topology).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"--topology {opts.topology}: {exc}", field="topology") from exc
        return ServerPair.from_topology(data), str(data.get("admin_url") or ""), True
    hosts = [h.strip() for h in opts.xmpp_host.split(",") if h.strip()]
    if not hosts:
        raise ConfigError("give --topology FILE, or --xmpp-host (and --cpa-url) of the pair", field="topology")
    cpas = [u.strip() for u in opts.cpa_url.split(",") if u.strip()]
    names = [n.strip() for n in opts.node_names.split(",") if n.strip()]
    if not opts.xmpp_only and len(cpas) != len(hosts):
        raise ConfigError("--cpa-url needs one URL per --xmpp-host node (or use --xmpp-only)", field="cpa_url")
    nodes = []
    for i, hp in enumerate(hosts):
        host, _, port = hp.rpartition(":") if ":" in hp else (hp, "", "5222")
        nodes.append(NodeAddress(name=names[i] if i < len(names) else host, cpa_url=cpas[i] if i < len(cpas) else None,
                                 xmpp_host=host, xmpp_port=int(port or 5222)))
    domain = opts.domain or nodes[0].xmpp_host
    return ServerPair(nodes=tuple(nodes), domain=domain), "", False


def _settings(opts: Any, is_mock: bool) -> ClientSettings:
    verify = {"on": True, "off": False}.get(opts.verify_tls, not is_mock)
    return ClientSettings(
        xmpp_only=bool(opts.xmpp_only),
        verify_tls=verify,
        lower_limit_property=opts.lower_property,
        upper_limit_property=opts.upper_property,
        default_limits=ReloginLimits(lower_s=opts.default_lower, upper_s=opts.default_upper),
        timeouts=replace(Timeouts(), ping_interval_s=opts.ping_interval, ping_timeout_s=opts.ping_timeout)
        if opts.ping_interval > 0 else Timeouts(),
        activity=ActivityRates(presence_per_min=opts.presence_rate * 60.0, messages_per_min=opts.message_rate * 60.0),
    )


class Swarm:
    """Per-process state shared by every :class:`~jabberemu.loadgen.user.JabberUser`."""

    def __init__(self) -> None:
        self.bridge = AsyncioBridge()
        self.environment: Any = None
        self.runtime: Runtime | None = None
        self.settings: ClientSettings | None = None
        self.sink = QueueSink()
        self.collector: RunCollector | None = None
        self.run_dir = Path("reports")
        self.run_id = ""
        self.started_ts: float | None = None
        self.csv_users: list[UserSpec] = []
        self._next = 0
        self._stride = 1
        self._offset = 0
        self.progress: dict[str, dict[str, Any]] = {}
        self.is_mock = False
        self.ended: Counter[str] = Counter()

    # -- Locust events -------------------------------------------------------------------------

    def on_init(self, environment: Any, **_kw: Any) -> None:
        from locust.runners import MasterRunner, WorkerRunner

        self.environment = environment
        logging.getLogger("slixmpp").setLevel(logging.WARNING)  # "JID set to ..." per login is noise
        opts = environment.parsed_options
        if opts is None:  # a library Environment without our options (tests build their own)
            return
        self.run_id = time.strftime("run-%Y%m%d-%H%M%S")
        self.run_dir = Path(opts.run_dir or os.path.join("reports", self.run_id))
        pair, admin_url, self.is_mock = _target(opts)
        DRILL.configure(opts.drill or "", admin_url)
        runner = environment.runner
        self.collector = RunCollector(environment, self.sink, self.run_dir, self.health)
        self.collector.start()
        if isinstance(runner, MasterRunner):
            runner.register_message(HEALTH_MSG + "_progress", self._on_progress)
            if opts.progress:
                gevent.spawn(self._print_progress)
            return
        self.settings = _settings(opts, self.is_mock)
        if opts.users_csv:
            self.csv_users = _load_users_csv(opts.users_csv)
        self._offset = int(opts.user_offset or 0)
        if isinstance(runner, WorkerRunner):
            self._stride = max(1, int(getattr(opts, "processes", 0) or getattr(opts, "expect_workers", 1) or 1))
            self._next = int(getattr(runner, "worker_index", 0) or 0)
        self.runtime = self.bridge.submit(self._make_runtime, pair, self.settings, int(opts.run_seed), timeout_s=60)
        gevent.spawn(self._share_progress)
        if opts.progress and not isinstance(runner, WorkerRunner):
            gevent.spawn(self._print_progress)

    async def _make_runtime(self, pair: ServerPair, settings: ClientSettings, seed: int) -> Runtime:
        return await Runtime.create(pair, settings, run_seed=seed, measure=self._measure, sink=self.sink)

    def _measure(self, client_id: str, m: Measurement) -> None:
        self.bridge.record(m.request_type.value, m.name, m.response_time_ms, response_length=m.response_length,
                           exception=m.exception, context={"node": m.node})

    def on_test_start(self, environment: Any, **_kw: Any) -> None:
        self.started_ts = time.time()
        self._write_run_info(partial=True)

    def on_test_stop(self, environment: Any, **_kw: Any) -> None:
        self._write_run_info(partial=False)

    def on_quitting(self, environment: Any, **_kw: Any) -> None:
        if self.runtime is not None:
            try:
                self.bridge.submit(self.runtime.aclose, timeout_s=10)
            except Exception:  # the bridge may already be stopped
                logger.debug("runtime close skipped", exc_info=True)
        self.bridge.stop(5.0)
        if self.collector is not None:
            self.collector.stop()
        opts = environment.parsed_options
        if opts is None or not opts.report or self._is_worker():
            return
        from jabberemu.report.build import build_report

        try:
            summary = build_report(self.run_dir)
        except Exception as exc:
            logger.error("report not built: %s", exc)
            return
        sys.stderr.write(f"jabberemu verdict: {summary.verdict.value}; report: {self.run_dir / 'report.html'}\n")
        if opts.fail_on_verdict and summary.verdict.value == "FAIL":
            environment.process_exit_code = 1

    # -- users ---------------------------------------------------------------------------------

    def next_user(self) -> UserSpec:
        """The next user of this process: unique across workers (index = worker + k * workers)."""
        n = self._offset + self._next
        self._next += self._stride
        if self.csv_users:
            if n >= len(self.csv_users):
                raise ConfigError(f"--users-csv has {len(self.csv_users)} users; user #{n + 1} was asked for")
            return self.csv_users[n]
        opts = self.environment.parsed_options
        user_id = opts.user_pattern.format(n=n + 1)
        password = opts.password_pattern.format(user=user_id)
        assert self.runtime is not None
        nodes = self.runtime.pair.nodes
        return UserSpec(user_id, password, nodes[n % len(nodes)].name)

    # -- health and progress -------------------------------------------------------------------

    def health(self) -> tuple[float, float | None]:
        return self.bridge.cpu_percent(), self.bridge.loop_lag_ms()

    def _is_worker(self) -> bool:
        from locust.runners import WorkerRunner

        return isinstance(self.environment.runner, WorkerRunner)

    async def _snapshot(self) -> dict[str, Any]:
        assert self.runtime is not None
        snap = self.runtime.registry.snapshot()
        return {
            "started": snap.started,
            "states": {s.value: c for s, c in snap.by_state.items() if c},
            "connected": dict(snap.connected_by_node),
        }

    def _share_progress(self) -> None:
        while True:
            gevent.sleep(1.0)
            if self.runtime is None:
                continue
            try:
                snap = self.bridge.submit(self._snapshot, timeout_s=5)
            except Exception:
                continue
            key = f"{os.getpid()}"
            if self._is_worker():
                self.environment.runner.send_message(HEALTH_MSG + "_progress", {"worker": key, **snap})
            else:
                self.progress[key] = snap

    def _on_progress(self, msg: Any, **_kw: Any) -> None:
        self.progress[str(msg.data.get("worker"))] = msg.data

    def totals(self) -> dict[str, Any]:
        """Clients per state and connected clients per node, summed over processes."""
        states: Counter[str] = Counter()
        connected: Counter[str] = Counter()
        started = 0
        for snap in list(self.progress.values()):
            started += int(snap.get("started", 0))
            states.update(snap.get("states", {}))
            connected.update(snap.get("connected", {}))
        return {"started": started, "states": dict(states), "connected": dict(connected)}

    def _print_progress(self) -> None:
        t0 = time.time()
        while True:
            gevent.sleep(1.0)
            tot = self.totals()
            if not tot["started"]:
                continue
            waiting = sum(v for k, v in tot["states"].items() if k == "FAILOVER")
            busy = sum(v for k, v in tot["states"].items() if k.startswith(("SOAP", "XMPPCONNECT_")))
            nodes = " ".join(f"{n.split('.')[0]}={c}" for n, c in sorted(tot["connected"].items()))
            ended = sum(v for k, v in tot["states"].items() if k in ("GAVE_UP", "LOGGED_OUT"))
            sys.stdout.write(
                f"[{time.time() - t0:6.1f}s] clients {tot['started']}: connected {nodes or '-'} | "
                f"waiting to re-login {waiting} | logging in {busy} | ended {ended}\n"
            )
            sys.stdout.flush()

    # -- run.json ------------------------------------------------------------------------------

    def _write_run_info(self, *, partial: bool) -> None:
        if self.collector is None or self.environment is None:
            return
        opts = self.environment.parsed_options
        settings = self.settings or _settings(opts, self.is_mock)
        info = {
            "run_id": self.run_id,
            "started_ts": self.started_ts or time.time(),
            "ended_ts": None if partial else time.time(),
            "clients": int(opts.num_users or 0),
            "lower_s": settings.default_limits.lower_s,
            "upper_s": settings.default_limits.upper_s,
            "server_login_rate": opts.server_login_rate or None,
            "recovery_margin_s": opts.recovery_margin,
            "actions": [
                {"ts": a["ts"], "action": a["action"], "node": a.get("node")} for a in DRILL.done
            ],
            "partial": partial,
        }
        self.collector.write_run_info(info)


def _load_users_csv(path: str) -> list[UserSpec]:
    """Rows of user id, password[, display name[, home node]]; a header row is skipped.

    Raises:
        ConfigError: unreadable file or a row without a password (the line is named).
    """
    out: list[UserSpec] = []
    try:
        with open(path, newline="", encoding="utf-8") as f:
            for line_no, row in enumerate(csv.reader(f), start=1):
                if not row or row[0].strip().lower() in ("user", "userid", "user_id", "user id", "username"):
                    continue
                if len(row) < 2 or not row[0].strip() or not row[1]:
                    raise ConfigError(f"{path}:{line_no}: need user id and password", field="users_csv")
                home = row[3].strip() if len(row) > 3 and row[3].strip() else None
                out.append(UserSpec(row[0].strip(), row[1], home))
    except OSError as exc:
        raise ConfigError(f"--users-csv {path}: {exc}", field="users_csv") from exc
    return out


SWARM = Swarm()
"""The one swarm of this process."""


def install(events: Any) -> Swarm:
    """Wire :data:`SWARM` and its bridge to Locust's events (call once, from the locustfile)."""
    from jabberemu.loadgen.options import add_options

    bridge = SWARM.bridge
    bridge.fire = events.request.fire
    events.init_command_line_parser.add_listener(add_options)
    # One loop for the process's whole life: the runtime (HTTP pool, TLS context) lives on it, so
    # it is not stopped between tests in the web UI, only when Locust quits.
    events.init.add_listener(lambda **_kw: bridge.start())
    events.init.add_listener(SWARM.on_init)
    events.test_start.add_listener(SWARM.on_test_start)
    events.test_stop.add_listener(SWARM.on_test_stop)
    events.quitting.add_listener(SWARM.on_quitting)
    return SWARM
