"""HA drills on the load clock: a Locust ``LoadTestShape`` that keeps ``-u/-r/-t`` and fires actions.

The shape spawns like a plain run (``use_common_options``: ``-u``, ``-r`` and ``-t`` keep their
meaning) and, at the times of ``--drill``, calls the mock pair's admin API (failover, fallback,
service stop, node kill, partition ...) from a greenlet, so the load clock never waits on it. Each
action is recorded with its Unix time for ``run.json``; on a real pair (no ``admin_url``) the
action is only recorded: it marks when the operator pressed the button.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, cast

import gevent
import requests
from locust import LoadTestShape

from jabberemu.loadgen.schedule import ActionKind, DrillAction, admin_call, parse_schedule

__all__ = ["DrillShape", "DrillState", "DRILL"]

logger = logging.getLogger(__name__)


class DrillState:
    """The drill of this process (master or local runner): its actions and what was done."""

    def __init__(self) -> None:
        self.actions: tuple[DrillAction, ...] = ()
        self.admin_url: str = ""
        self.fired: set[int] = set()
        self.done: list[dict[str, Any]] = []
        self.stop_requested = False
        self.failure: str | None = None
        """Why a drill action was refused (the run then stops: what follows would test nothing)."""
        self.ready_probe: Callable[[], bool] = lambda: False
        self.ready_at_s: float | None = None
        self._session = requests.Session()

    def configure(self, schedule: str, admin_url: str) -> None:
        """Set the schedule (``--drill``) and the mock's admin URL ('' on a real pair).

        Raises:
            jabberemu.errors.ConfigError: the schedule is malformed.
        """
        self.actions = parse_schedule(schedule)
        self.admin_url = admin_url.rstrip("/")
        self.reset()

    def reset(self) -> None:
        """Forget what was done (a new test starts)."""
        self.fired.clear()
        self.done.clear()
        self.stop_requested = False
        self.failure = None
        self.ready_at_s = None

    def due(self, run_time_s: float) -> list[DrillAction]:
        """Actions whose time has come; each is returned once.

        ``ready+S`` actions count from the first call at which :attr:`ready_probe` (every client
        signed in) returned True; the probe is only asked while such an action is pending.
        """
        pending = [i for i in range(len(self.actions)) if i not in self.fired]
        if self.ready_at_s is None and any(self.actions[i].after_ready for i in pending) and self.ready_probe():
            self.ready_at_s = run_time_s
            logger.info("drill: every client signed in at %.1f s on the load clock", run_time_s)
        out = []
        for i in pending:
            action = self.actions[i]
            start = self.ready_at_s if action.after_ready else 0.0
            if start is not None and start + action.at_s <= run_time_s:
                self.fired.add(i)
                out.append(action)
        return out

    def fire(self, action: DrillAction) -> None:
        """Record ``action`` now and, on the mock pair, call its admin API in a greenlet."""
        entry: dict[str, Any] = {"ts": time.time(), "action": action.label, "node": action.node, "at_s": action.at_s,
                                 "after_ready": action.after_ready}
        self.done.append(entry)
        if action.kind is ActionKind.STOP:
            self.stop_requested = True
            return
        call = admin_call(action)
        if call is None or not self.admin_url:
            entry["called"] = False
            return
        gevent.spawn(self._call, entry, *call)

    def _call(self, entry: dict[str, Any], method: str, path: str, body: dict[str, object] | None) -> None:
        try:
            resp = self._session.request(method, self.admin_url + path, json=cast(Any, body), timeout=30)
            entry["status"] = resp.status_code
            if resp.status_code >= 400:
                entry["error"] = resp.text.strip()[:300]
                self._refused(entry, f"HTTP {resp.status_code}: {resp.text.strip()[:200]}")
            else:
                logger.info("drill: %s %s done", entry["action"], entry.get("node") or "")
        except requests.RequestException as exc:
            entry["error"] = str(exc)
            self._refused(entry, str(exc))

    def _refused(self, entry: dict[str, Any], why: str) -> None:
        """An admin action failed: the rest of the drill would test something else; stop the run."""
        self.failure = f"drill action {entry['action']} {entry.get('node') or ''}".rstrip() + f" refused: {why}"
        logger.error("%s; stopping the run (the verdict will be INCONCLUSIVE)", self.failure)
        self.stop_requested = True


DRILL = DrillState()
"""The process-wide drill (the shape and the locustfile's event handlers share it)."""


class DrillShape(LoadTestShape):
    """``-u``/``-r``/``-t`` as usual, plus the ``--drill`` actions at their times."""

    use_common_options = True

    def tick(self) -> tuple[int, float] | None:
        run_time = self.get_run_time()  # type: ignore[no-untyped-call]
        for action in DRILL.due(run_time):
            DRILL.fire(action)
        if DRILL.stop_requested:
            return None
        opts = self.runner.environment.parsed_options if self.runner is not None else None
        if opts is None:
            return None
        run_limit = getattr(opts, "run_time", None)
        if run_limit and run_time > run_limit:
            return None
        return int(opts.num_users or 0), float(opts.spawn_rate or 1)
