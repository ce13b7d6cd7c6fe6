"""Distributed runs: user indices handed out by the master, and each worker's own account of its work.

**User indices.** A worker's user asks the master for the next index with a custom message
(``jabberemu_uid_req``) and waits for the answer (``jabberemu_uid``): one loopback round trip per
spawned user. Every distributed run thus uses users 1..N, unique across workers, whatever the
number of workers (``--processes N`` or remote ``--worker`` machines) and however Locust dispatches
users over them. A local runner counts by itself.

**Accounts.** Each process counts what it fed to Locust (``events.request``) and which users it
started. When a test stops a worker pumps its last records, sends Locust its final statistics,
writes ``<run-dir>/workers/<worker>.json`` and reports ``jabberemu_done`` with the same account.
Locust's headless master stops without telling its workers and gives them 0.5 s to quit, so the
sign-outs of ``on_stop`` and the clients' ``end`` records would be lost: the master stops the
workers itself and waits (``DRAIN_TIMEOUT_S`` at most) for every ``jabberemu_done``, then writes
``workers.json``. The master's totals then equal the sum of the workers' accounts (a test).
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

import gevent
import gevent.event

__all__ = [
    "Workers",
    "DONE_MSG",
    "UID_MSG",
    "UID_REQ_MSG",
    "DRAIN_TIMEOUT_S",
    "UID_TIMEOUT_S",
    "WORKERS_DIR",
    "WORKERS_FILE",
]

logger = logging.getLogger(__name__)

UID_REQ_MSG = "jabberemu_uid_req"
UID_MSG = "jabberemu_uid"
DONE_MSG = "jabberemu_done"
UID_TIMEOUT_S = 30.0
"""Bound on a worker's wait for a user index from the master."""
DRAIN_TIMEOUT_S = 90.0
"""Bound on the master's wait for its workers' last records when a test stops."""
WORKERS_DIR = "workers"
WORKERS_FILE = "workers.json"


class Workers:
    """User indices and work accounts of one Locust process (master, worker or local runner).

    Args:
        worker_id: this process's name in accounts and health samples (``host-pid``).
    """

    def __init__(self, worker_id: str) -> None:
        self.worker_id = worker_id
        self.environment: Any = None
        self.run_dir = Path("reports")
        self.offset = 0
        self.requests_fired: Counter[tuple[str, str, bool]] = Counter()
        self.user_indices: list[int] = []
        self.accounts: dict[str, dict[str, Any]] = {}  # master: worker client id -> its account
        self._next_index = 0
        self._req_ids = itertools.count(1)
        self._pending: dict[int, gevent.event.AsyncResult] = {}

    def register(self, environment: Any, run_dir: Path, offset: int) -> None:
        """Register the custom messages of this process's role (call from ``events.init``)."""
        from locust.runners import MasterRunner, WorkerRunner

        self.environment = environment
        self.run_dir = run_dir
        self.offset = offset
        runner = environment.runner
        if isinstance(runner, WorkerRunner):
            runner.register_message(UID_MSG, self._on_uid)
            return
        runner.register_message(UID_REQ_MSG, self._on_uid_request)
        if isinstance(runner, MasterRunner):
            runner.register_message(DONE_MSG, self._on_done)

    @property
    def is_worker(self) -> bool:
        from locust.runners import WorkerRunner

        return isinstance(getattr(self.environment, "runner", None), WorkerRunner)

    def new_test(self) -> None:
        """A test starts (master or local runner): users count from the first again."""
        self._next_index = 0
        self.accounts.clear()

    # -- user indices --------------------------------------------------------------------------

    def take_index(self) -> int:
        """The next 0-based user index of the run, unique across workers.

        Raises:
            gevent.Timeout: a worker's master did not answer within ``UID_TIMEOUT_S``.
        """
        index = self._take_remote() if self.is_worker else self._take_local()
        self.user_indices.append(index)
        return index

    def _take_local(self) -> int:
        index = self.offset + self._next_index
        self._next_index += 1
        return index

    def _take_remote(self) -> int:
        req = next(self._req_ids)
        result: gevent.event.AsyncResult = gevent.event.AsyncResult()
        self._pending[req] = result
        try:
            self.environment.runner.send_message(UID_REQ_MSG, {"req": req})
            return int(result.get(timeout=UID_TIMEOUT_S))
        finally:
            self._pending.pop(req, None)

    def _on_uid_request(self, environment: Any, msg: Any, **_kw: Any) -> None:
        index = self._take_local()
        environment.runner.send_message(UID_MSG, {"req": msg.data["req"], "index": index}, client_id=msg.node_id)

    def _on_uid(self, environment: Any, msg: Any, **_kw: Any) -> None:
        result = self._pending.get(int(msg.data["req"]))
        if result is not None:
            result.set(int(msg.data["index"]))

    # -- accounts ------------------------------------------------------------------------------

    def count_request(self, request_type: str, name: str, exception: Any = None, **_kw: Any) -> None:
        """``events.request`` listener: what this process fed to Locust."""
        self.requests_fired[(request_type, name, exception is None)] += 1

    def account(self) -> dict[str, Any]:
        """What this process did: the users it started and the measurements it fed to Locust.

        Returns:
            ``{"worker", "worker_index", "users_started", "user_indices", "requests": {"type/name":
            {"ok", "fail"}}}``.
        """
        reqs: dict[str, dict[str, int]] = {}
        for (rtype, name, ok), n in sorted(self.requests_fired.items()):
            row = reqs.setdefault(f"{rtype}/{name}", {"ok": 0, "fail": 0})
            row["ok" if ok else "fail"] += n
        return {
            "worker": self.worker_id,
            "worker_index": int(getattr(self.environment.runner, "worker_index", -1)),
            "users_started": len(self.user_indices),
            "user_indices": sorted(self.user_indices),
            "requests": reqs,
        }

    def write_account(self) -> dict[str, Any]:
        """Write ``workers/<worker>.json`` in the run directory and log a one-line summary."""
        account = self.account()
        out = self.run_dir / WORKERS_DIR
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{account['worker']}.json").write_text(json.dumps(account, indent=1), encoding="utf-8")
        login = account["requests"].get("client/login", {"ok": 0, "fail": 0})
        logger.info("worker %s: %d users started, client/login %d ok %d failed", account["worker_index"],
                    account["users_started"], login["ok"], login["fail"])
        return account

    def finish_worker(self, pump: Any) -> None:
        """Worker, ``test_stop``: last records (``pump()``), final statistics, account, ``done``."""
        runner = self.environment.runner
        pump()
        send_stats = getattr(runner, "_send_stats", None)
        if send_stats is not None:
            send_stats()  # Locust's statistics first: the master's totals are whole at "done"
        runner.send_message(DONE_MSG, self.write_account())

    def _on_done(self, msg: Any, **_kw: Any) -> None:
        self.accounts[str(msg.node_id)] = msg.data

    def drain(self, runner: Any) -> None:
        """Master, ``test_stop``: stop the workers still running and wait for every account."""
        from locust.rpc import Message
        from locust.runners import STATE_RUNNING, STATE_SPAWNING

        workers = {c.id: c for c in runner.clients.all}
        for wid, client in workers.items():
            if wid not in self.accounts and client.state in (STATE_RUNNING, STATE_SPAWNING):
                runner.server.send_to_client(Message("stop", None, wid))  # type: ignore[no-untyped-call]
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while not set(workers) <= set(self.accounts) and time.monotonic() < deadline:
            gevent.sleep(0.1)
        missing = sorted(set(workers) - set(self.accounts))
        if missing:
            logger.warning("workers %s sent no final account within %.0f s: run data may miss their last records",
                           ", ".join(missing), DRAIN_TIMEOUT_S)
        if self.accounts:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / WORKERS_FILE).write_text(json.dumps(self.accounts, indent=1), encoding="utf-8")
