"""The mock pair's events and metrics on the Locust path: :class:`~jabberemu.serverpoll.ServerPoller`
in a greenlet of the master (or local runner), for the whole run.

Workers never poll (the master's run directory is the run's). On a real pair (no ``admin_url`` in
the target) nothing is polled. The last poll happens when Locust quits, after the clients signed
out; the metrics file is then compressed into its last segment.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import gevent

from jabberemu.serverpoll import POLL_INTERVAL_S, ServerPoller

__all__ = ["ServerDataCollector"]

logger = logging.getLogger(__name__)


class ServerDataCollector:
    """Polls the mock's admin API every ``interval_s`` while Locust runs.

    Args:
        admin_url: the mock's admin API ('' on a real pair: :meth:`start` does nothing).
        run_dir: the run directory.
        rotate_bytes: rotation size of ``server_metrics.jsonl`` (None: never).
        interval_s: seconds between polls.
    """

    def __init__(self, admin_url: str, run_dir: Path, *, rotate_bytes: int | None,
                 interval_s: float = POLL_INTERVAL_S) -> None:
        self.poller = ServerPoller(admin_url, run_dir, rotate_bytes=rotate_bytes).resume() if admin_url else None
        self.interval_s = interval_s
        self._greenlet: gevent.Greenlet | None = None

    def start(self, environment: Any) -> None:
        """Start polling (master or local runner only)."""
        from locust.runners import WorkerRunner

        if self.poller is None or isinstance(environment.runner, WorkerRunner) or self._greenlet is not None:
            return
        self._greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        assert self.poller is not None
        while True:
            try:
                self.poller.poll()
            except Exception:  # the poller must keep going
                logger.exception("mock admin API poll failed")
            gevent.sleep(self.interval_s)

    def stop(self) -> None:
        """The last poll, then close (and compress) the files (idempotent)."""
        if self._greenlet is None or self.poller is None:
            return
        self._greenlet.kill(block=True)
        self._greenlet = None
        try:
            self.poller.poll()
        finally:
            self.poller.close(compress=True)
        logger.info("mock admin API: %d events and %d metric rows collected in %d polls",
                    self.poller.events_written, self.poller.rows_written, self.poller.polls)
