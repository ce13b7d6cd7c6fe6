"""The bundled mock pair as a child process, driven over its admin API (``python -m mock_server``).

``jabberemu`` shares no code with ``mock_server``: the drill starts the pair the way a user does
(``python -m mock_server --topology-out FILE ...``), waits for its topology file and for both nodes
to be *Normal*, talks to it over the HTTP admin API the topology names (``admin_url``), and stops it
with SIGINT (the supervisor stops its node processes). The pair runs in its own session, so a
terminal's Ctrl-C reaches the drill alone, which stops the swarm first (the clients sign out) and
the pair after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jabberemu.errors import ConfigError

__all__ = ["MockPairProcess", "admin_request"]

#: Seconds the pair may take to write its topology and to reach Normal | Normal.
START_TIMEOUT_S = 60.0


def admin_request(admin_url: str, method: str, path: str, body: object = None, *, timeout_s: float = 10.0) -> Any:
    """One admin API call (blocking); returns the decoded JSON answer.

    Raises:
        OSError: the call failed (``urllib.error.HTTPError`` for an HTTP error status).
    """
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(admin_url.rstrip("/") + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"} if data is not None else {})
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310 - the mock's loopback URL
        return json.loads(resp.read() or b"null")


class MockPairProcess:
    """``python -m mock_server`` as a child process.

    Args:
        args: the mock's options after ``python -m mock_server`` (without ``--topology-out``).
        topology_path: where the mock writes its topology.
        log_path: where the mock's stdout and stderr go.
    """

    def __init__(self, args: Sequence[str], topology_path: Path, log_path: Path) -> None:
        self.args = list(args)
        self.topology_path = topology_path
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None
        self.topology: dict[str, Any] = {}

    @property
    def admin_url(self) -> str:
        return str(self.topology["admin_url"])

    async def start(self, timeout_s: float = START_TIMEOUT_S) -> dict[str, Any]:
        """Start the pair and wait until both nodes are Normal.

        Returns:
            The topology (``nodes``, ``presence_domain``, ``admin_url``).

        Raises:
            ConfigError: the pair exited, or did not come up within ``timeout_s`` (its log's tail said).
        """
        self.topology_path.unlink(missing_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "mock_server", *self.args, "--topology-out", str(self.topology_path),
                stdout=log, stderr=asyncio.subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while not self.topology:
            if self.proc.returncode is not None:
                raise ConfigError(f"the mock pair exited with code {self.proc.returncode}: {self._tail()}")
            if time.monotonic() > deadline:
                raise ConfigError(f"the mock pair wrote no topology within {timeout_s:g} s: {self._tail()}")
            with contextlib.suppress(OSError, ValueError):
                self.topology = json.loads(self.topology_path.read_text(encoding="utf-8"))
            if not self.topology:
                await asyncio.sleep(0.1)
        states: dict[str, str] = {}
        while time.monotonic() <= deadline:
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                states = await self.states()
                if states and set(states.values()) == {"Normal"}:
                    return self.topology
            await asyncio.sleep(0.2)
        raise ConfigError(f"the mock pair did not reach Normal | Normal within {timeout_s:g} s: {states}")

    async def admin(self, method: str, path: str, body: object = None, timeout_s: float = 10.0) -> Any:
        """One admin API call, off the loop."""
        return await asyncio.to_thread(admin_request, self.admin_url, method, path, body, timeout_s=timeout_s)

    async def states(self) -> dict[str, str]:
        """Node name -> SRM state, from ``/api/status``."""
        status = await self.admin("GET", "/api/status")
        return {str(n["name"]): str(n.get("state")) for n in status["nodes"]}

    async def stop(self, grace_s: float = 15.0) -> int | None:
        """SIGINT (the supervisor stops its nodes), SIGKILL to the group after ``grace_s``.

        Returns:
            The pair's exit code, or None when it never started.
        """
        proc = self.proc
        if proc is None:
            return None
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(proc.wait(), grace_s)
            except asyncio.TimeoutError:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        return proc.returncode

    def _tail(self, chars: int = 800) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return text[-chars:].strip() or "(empty log)"
