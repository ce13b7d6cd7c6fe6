"""Set-up for the Locust (gevent-patched) tests, run in a pytest process of their own.

``make test`` runs ``pytest tests/loadgen -p no:asyncio -p no:aiohttp``: with pytest-asyncio
blocked, its ini keys in pyproject.toml would be "unknown config options", which warnings-as-errors
turns into a failure; they are declared here (as inert) only when that plugin is blocked.

``--shard I/N`` keeps the test files whose index in name order is I modulo N (``make test`` runs two
such processes side by side: pytest-xdist's workers deadlock under gevent's patching).
"""

from __future__ import annotations

from typing import Any

import pytest

__all__: list[str] = []

_ASYNCIO_INI_KEYS = ("asyncio_mode", "asyncio_default_fixture_loop_scope")


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    parser.addoption("--shard", default=None, metavar="I/N",
                     help="run only the test files whose index (in name order) is I modulo N")
    if pluginmanager.is_blocked("asyncio"):
        for key in _ASYNCIO_INI_KEYS:
            parser.addini(key, "inert here: pytest-asyncio is disabled in the gevent-patched process")


def pytest_configure(config: Any) -> None:
    # Importing locust monkey-patches the process: do it once, before any test module imports
    # socket-using libraries, so every test sees one consistent (patched) world.
    import locust  # noqa: F401


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    shard = config.getoption("--shard")
    if not shard:
        return
    try:
        index, count = (int(part) for part in shard.split("/"))
        if not 0 <= index < count:
            raise ValueError(shard)
    except ValueError:
        raise pytest.UsageError(f"--shard wants I/N with 0 <= I < N, not {shard!r}") from None
    files = sorted({item.path for item in items})
    keep = {path for n, path in enumerate(files) if n % count == index}
    config.hook.pytest_deselected(items=[item for item in items if item.path not in keep])
    items[:] = [item for item in items if item.path in keep]


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Same rule as tests/conftest.py, on the class ``socket.socket`` is *now* (gevent's).

    The root fixture wraps the stdlib method captured before gevent patched ``socket``; calling it
    on a gevent socket raises TypeError, so this one wraps the patched class's own methods.
    """
    import ipaddress
    import socket

    def check(address: object) -> None:
        if isinstance(address, tuple) and address and isinstance(address[0], str) and address[0] != "localhost":
            if not ipaddress.ip_address(address[0].split("%")[0]).is_loopback:
                raise RuntimeError(f"tests may only reach loopback, not {address[0]}")

    cls = socket.socket
    real_connect, real_connect_ex = cls.connect, cls.connect_ex

    def connect(self: socket.socket, address: object) -> None:
        check(address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: object) -> int:
        check(address)
        return real_connect_ex(self, address)

    monkeypatch.setattr(cls, "connect", connect)
    monkeypatch.setattr(cls, "connect_ex", connect_ex)


# -- Locust scenarios as subprocesses against a mock pair in another subprocess (swarm tests) ------

import gzip  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from waiting import wait_until_sync  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
LOCUSTFILE = REPO / "locustfiles" / "jabber.py"
"""The locustfile users run: ``locust -f locustfiles/jabber.py``."""


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for a subprocess: no inherited ``JABBEREMU_*``/``LOCUST_*``, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JABBEREMU_", "LOCUST_"))}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def _kill_group(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


class MockPairProc:
    """A ``python -m mock_server`` subprocess (its own process group) and its topology file."""

    def __init__(self, proc: subprocess.Popen[bytes], topology: Path, log: Path) -> None:
        self.proc = proc
        self.topology = topology
        self.log = log
        self.data = json.loads(topology.read_text(encoding="utf-8"))
        self.admin_url: str = self.data["admin_url"]
        self.node_names = [n["name"] for n in self.data["nodes"]]

    def status(self) -> dict[str, object]:
        with urllib.request.urlopen(self.admin_url + "/api/status", timeout=10) as resp:
            return json.loads(resp.read())

    def states(self) -> list[str]:
        return [str(n["state"]) for n in self.status()["nodes"]]  # type: ignore[index]

    def stop(self) -> None:
        _kill_group(self.proc, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            _kill_group(self.proc)
            self.proc.wait(10)


@pytest.fixture
def mock_pair(tmp_path: Path) -> Iterator[Callable[..., MockPairProc]]:
    """Start the mock pair: ``mock_pair(users, assignment="balanced", lower_s=1, upper_s=3, extra=())``
    (re-login limits the pair hands out); stopped at the end."""
    started: list[MockPairProc] = []

    def start(users: int, assignment: str = "balanced", lower_s: float = 1.0, upper_s: float = 3.0,
              extra: tuple[str, ...] = ()) -> MockPairProc:
        topo = tmp_path / f"topology-{len(started)}.json"
        log = tmp_path / f"mock-{len(started)}.log"
        cmd = [sys.executable, "-m", "mock_server", "--users", str(users), "--assignment", assignment,
               "--topology-out", str(topo), "--param", f"relogin_lower_s={lower_s}", "--param", f"relogin_upper_s={upper_s}", *extra]
        with open(log, "wb") as out:
            proc = subprocess.Popen(cmd, cwd=REPO, env=clean_env(), stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        try:
            wait_until_sync(lambda: topo.exists() and topo.stat().st_size > 0 or proc.poll() is not None, 30,
                       "mock pair topology written")
            assert proc.poll() is None, log.read_text(errors="replace")
            time.sleep(0.2)  # the file is written in one go; let the writer close it
            pair = MockPairProc(proc, topo, log)
            started.append(pair)
            wait_until_sync(lambda: pair.states() == ["Normal", "Normal"], 60, "both mock nodes Normal")
        except BaseException:
            _kill_group(proc)
            raise
        return pair

    yield start
    for pair in started:
        pair.stop()


class LocustProc:
    """One ``python -m locust`` subprocess (own process group), its outputs and run directory."""

    def __init__(self, proc: subprocess.Popen[bytes], workdir: Path, run_dir: Path, csv_prefix: Path) -> None:
        self.proc = proc
        self.workdir = workdir
        self.run_dir = run_dir
        self.csv_prefix = csv_prefix
        self.stdout = workdir / "locust.out"
        self.stderr = workdir / "locust.err"

    def wait(self, timeout_s: float) -> int:
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(self.proc)
            self.proc.wait(10)
            raise AssertionError(f"locust did not exit within {timeout_s:.0f} s:\n{self.err_text()[-3000:]}") \
                from None

    def terminate(self, timeout_s: float = 120.0) -> int:
        """SIGTERM (what CI sends) to the main process, then wait for the graceful shut-down."""
        self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout_s)

    def err_text(self) -> str:
        return self.stderr.read_text(encoding="utf-8", errors="replace") if self.stderr.exists() else ""

    def out_text(self) -> str:
        return self.stdout.read_text(encoding="utf-8", errors="replace") if self.stdout.exists() else ""

    def _lines(self) -> list[str]:
        """Lines of every segment of ``client_events.jsonl`` (the live one, then compressed at the end)."""
        from jabberemu.rundata import CLIENT_EVENTS_FILE, segment_paths

        out: list[str] = []
        for path in segment_paths(self.run_dir, CLIENT_EVENTS_FILE):
            if path.name.endswith(".gz"):
                out += gzip.decompress(path.read_bytes()).decode("utf-8").splitlines()
            else:
                out += path.read_text(encoding="utf-8").splitlines()
        return out

    def records(self, kind: str | None = None) -> list[dict[str, object]]:
        """``client_events.jsonl`` records (of one ``type``), from every segment."""
        out = []
        for line in self._lines():
            if line.strip():
                try:
                    rec = json.loads(line)
                except ValueError:  # a line being written
                    continue
                if kind is None or rec.get("type") == kind:
                    out.append(rec)
        return out

    def count(self, *fragments: str) -> int:
        """Lines of ``client_events.jsonl`` holding every fragment (cheap: no JSON parsing while polling)."""
        return sum(1 for line in self._lines() if all(f in line for f in fragments))

    def stats(self) -> dict[tuple[str, str], dict[str, str]]:
        """Rows of Locust's ``--csv`` ``*_stats.csv`` by (type, name)."""
        import csv

        with open(f"{self.csv_prefix}_stats.csv", newline="", encoding="utf-8") as f:
            return {(r["Type"], r["Name"]): r for r in csv.DictReader(f)}


@pytest.fixture
def locust_run(tmp_path: Path) -> Iterator[Callable[..., LocustProc]]:
    """Start ``python -m locust -f locustfiles/jabber.py ARGS`` in ``tmp_path`` with ``--run-dir`` and
    ``--csv`` there: ``locust_run(*args, env={...}, locustfile=...)``; killed at the end if still running."""
    runs: list[LocustProc] = []

    def run(*args: str, env: dict[str, str] | None = None, locustfile: Path = LOCUSTFILE,
            run_dir: bool = True, csv: bool = True) -> LocustProc:
        workdir = tmp_path / f"locust-{len(runs)}"
        workdir.mkdir()
        rd, prefix = workdir / "run", workdir / "out"
        cmd = [sys.executable, "-m", "locust", "-f", str(locustfile), *args]
        if run_dir:
            cmd += ["--run-dir", str(rd)]
        if csv:
            cmd += ["--csv", str(prefix)]
        with open(workdir / "locust.out", "wb") as out, open(workdir / "locust.err", "wb") as err:
            proc = subprocess.Popen(cmd, cwd=workdir, env=clean_env(**(env or {})), stdout=out, stderr=err,
                                    start_new_session=True)
        lp = LocustProc(proc, workdir, rd, prefix)
        runs.append(lp)
        return lp

    yield run
    for lp in runs:
        if lp.proc.poll() is None:
            _kill_group(lp.proc)
            lp.proc.wait(10)
        _kill_group(lp.proc)  # --processes workers left behind, if any


def assert_clean_shutdown(err: str) -> None:
    """No traceback, no gevent hub complaint in a Locust run's stderr."""
    assert "Waiter.switch" not in err, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    assert "Task was destroyed but it is pending" not in err, err[-3000:]


class SwarmTools:
    """Helpers of the swarm tests, handed out by the ``swarm_tools`` fixture."""

    wait_until = staticmethod(wait_until_sync)
    clean_env = staticmethod(clean_env)
    assert_clean_shutdown = staticmethod(assert_clean_shutdown)
    repo = REPO
    locustfile = LOCUSTFILE


@pytest.fixture
def swarm_tools() -> type[SwarmTools]:
    return SwarmTools
