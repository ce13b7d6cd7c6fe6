"""Shared test set-up: refuse any socket that is not on loopback; the one failover drill the end-to-end
tests share (``failover_drill``)."""

from __future__ import annotations

import fcntl
import gc
import ipaddress
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest



def _check(address: object) -> None:
    if isinstance(address, tuple) and address:
        host = address[0]
        if isinstance(host, str) and host not in ("localhost",):
            try:
                ip = ipaddress.ip_address(host.split("%")[0])
            except ValueError:
                raise RuntimeError(f"tests connect to IP literals on loopback only, not {host!r}") from None
            if not ip.is_loopback:
                raise RuntimeError(f"tests may only reach loopback, not {host}")


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Wrap ``connect``/``connect_ex`` of whatever ``socket.socket`` is at test time (gevent's
    after ``import locust``) and, under gevent, of the original class too (the bridge's loop connects with
    it), so that a test can only reach loopback addresses."""
    classes = [socket.socket]
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None:  # the bridge's loop connects with the class gevent did not patch
        original = monkey.get_original("socket", "socket")
        if original is not socket.socket:
            classes.append(original)
    for cls in classes:
        real_connect, real_connect_ex = cls.connect, cls.connect_ex

        def guarded_connect(self: socket.socket, address: object, _real: Any = real_connect) -> None:
            _check(address)
            return _real(self, address)  # type: ignore[no-any-return]

        def guarded_connect_ex(self: socket.socket, address: object, _real: Any = real_connect_ex) -> int:
            _check(address)
            return _real(self, address)  # type: ignore[no-any-return]

        monkeypatch.setattr(cls, "connect", guarded_connect)
        monkeypatch.setattr(cls, "connect_ex", guarded_connect_ex)


@pytest.fixture(scope="session")
def failover_drill(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Any:
    """One ``jabberemu drill`` (the default failover fault, ``cli_support.FAILOVER_DRILL``) for every
    test that reads a finished failover drill: the CLI's run files and progress, the report against
    the raw events. Under ``make test`` the files that read it land on different xdist workers
    (``--dist loadfile``); the first worker to ask runs it, under a lock in the session's shared
    temporary directory, and saves what the tests read (pytest-xdist's recipe for a session fixture
    run once); the others wait for the lock and load it."""
    from cli_support import FAILOVER_DRILL, Drill, run_drill  # not at import: the Locust tests patch first

    if worker_id == "master":  # no xdist
        return run_drill(tmp_path_factory.mktemp("failover-drill") / "run", *FAILOVER_DRILL.args())
    shared = tmp_path_factory.getbasetemp().parent / "failover-drill"
    shared.mkdir(exist_ok=True)
    record = shared / "drill.json"
    with open(shared / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if record.is_file():
            return Drill.load(record)
        # a directory per attempt: a drill that failed on another worker left its run files behind
        drill = run_drill(Path(tempfile.mkdtemp(prefix="run-", dir=shared)) / "run", *FAILOVER_DRILL.args())
        drill.save(record)
        return drill


@pytest.fixture
def collector_off() -> Iterator[None]:
    """The garbage collector off for one test (what it would free is then visible); back on after."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
