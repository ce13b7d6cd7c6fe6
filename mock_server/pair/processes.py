"""The node OS processes of the mock pair: the zygote that forks them and a watch over each.

Node processes are forked by a *zygote* (``python -m mock_server.node_main --zygote``, see
``pair.node_process``) that has imported the node's code once (aiohttp, lxml, Faker's data): a node
starts in tens of milliseconds instead of re-importing everything (~1 CPU-second per process, several
seconds on a busy 2-core machine). One :class:`Zygote` serves every supervisor of a Python process; it
exits when that process closes its standard input (at exit at the latest). Each node is then watched
through a pidfd (Linux, :class:`NodeProcess`), since the nodes are the zygote's children, not ours.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import signal
import subprocess
import sys
import threading
from typing import Any

from mock_server.pair.channel import ControlError, NodeGoneError, decode, encode

__all__ = ["NodeProcess", "Zygote"]


class Zygote:
    """The process-wide zygote (blocking pipe I/O; call :meth:`fork` from a worker thread)."""

    _lock = threading.Lock()
    _proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def fork(cls, args: list[Any]) -> int:
        """Fork one node process running ``pair.node_process.serve_forked(*args)``; returns its pid.

        Raises:
            NodeGoneError: the zygote is gone or refused the request.
        """
        with cls._lock:
            for attempt in (1, 2):
                proc = cls._running()
                assert proc.stdin is not None and proc.stdout is not None
                try:
                    proc.stdin.write(encode({"args": args}))
                    proc.stdin.flush()
                    answer = decode(proc.stdout.readline() or b"{}")
                except (OSError, ControlError):
                    answer = {}
                if "pid" in answer:
                    return int(answer["pid"])
                cls.close()
                if attempt == 2:
                    raise NodeGoneError(f"the node zygote failed: {answer.get('error', 'it exited')}")
        raise AssertionError("unreachable")

    @classmethod
    def _running(cls) -> subprocess.Popen[bytes]:
        if cls._proc is None or cls._proc.poll() is not None:
            cls._proc = subprocess.Popen(
                [sys.executable, "-m", "mock_server.node_main", "--zygote"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True,
            )
        return cls._proc

    @classmethod
    def close(cls) -> None:
        proc, cls._proc = cls._proc, None
        if proc is None:
            return
        with contextlib.suppress(OSError):
            assert proc.stdin is not None
            proc.stdin.close()
        try:
            proc.wait(2.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


atexit.register(Zygote.close)


class NodeProcess:
    """One node OS process (a child of the zygote), watched through a pidfd.

    ``returncode`` is -9 after :meth:`kill`, -15 after :meth:`terminate` and 0 otherwise once the
    process is gone (the zygote's kernel-reaped children leave no exit status to read).

    Args:
        pid: the node's process id.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._signalled = 0
        loop = asyncio.get_running_loop()
        self._exited: asyncio.Future[int] = loop.create_future()
        try:
            self._pidfd: int | None = os.pidfd_open(pid)
        except ProcessLookupError:  # already gone
            self._pidfd = None
            self._exited.set_result(0)
            return
        loop.add_reader(self._pidfd, self._gone)

    def _gone(self) -> None:
        self.close()
        if not self._exited.done():
            self._exited.set_result(-self._signalled)

    @property
    def returncode(self) -> int | None:
        """See the class docstring; None while the process runs."""
        return self._exited.result() if self._exited.done() else None

    async def wait(self) -> int:
        """Wait for the process to exit; returns :attr:`returncode`."""
        return await asyncio.shield(self._exited)

    def send_signal(self, sig: int) -> None:
        if self.returncode is None and self._pidfd is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, sig)
                self._signalled = sig

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def close(self) -> None:
        """Stop watching and release the pidfd."""
        if self._pidfd is not None:
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
