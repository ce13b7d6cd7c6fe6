"""Helpers of the CLI tests: run the console script as a real process and watch its process tree."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

__all__ = [
    "REPO",
    "VENV_BIN",
    "PROGRESS_RE",
    "DrillProcess",
    "env_with_venv",
    "jabberemu",
    "read_jsonl",
    "run_file_exists",
    "state_sequence",
    "assert_accounted",
    "orphans_of",
    "Drill",
    "RecordedProcess",
    "FAILOVER_DRILL",
    "FailoverDrillSpec",
    "run_drill",
]

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
PROGRESS_RE = re.compile(
    r"^\[\s*(?P<t>[0-9.]+)s\] clients (?P<clients>\d+): connected (?P<connected>.*?) \| "
    r"waiting to re-login (?P<waiting>\d+) \| logging in (?P<logging_in>\d+) \| ended (?P<ended>\d+)"
)


def env_with_venv(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment with the venv's bin first on PATH (``jabberemu``, ``locust``, ``python``)."""
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def jabberemu(*args: str, timeout_s: float = 60.0, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the console script to completion; stdout and stderr captured."""
    return subprocess.run([str(VENV_BIN / "jabberemu"), *args], capture_output=True, text=True, timeout=timeout_s,
                          cwd=cwd or REPO, env=env_with_venv())


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every JSON line of ``path``: of every segment of it (rotated, compressed at the end of a run)."""
    from jabberemu.rundata import JsonlReader

    warnings: list[str] = []
    return [obj for _p, _l, obj in JsonlReader(path.parent, path.name, warnings)]


def run_file_exists(run_dir: Path, name: str) -> bool:
    """True when ``name`` of ``run_dir`` exists and is not empty (a JSONL one in any segment)."""
    from jabberemu.rundata import segment_paths

    paths = segment_paths(run_dir, name) if name.endswith(".jsonl") else [run_dir / name]
    return any(p.exists() and p.stat().st_size > 0 for p in paths)


def state_sequence(server_events: Iterable[dict[str, Any]], node: str) -> list[str]:
    """The SRM states ``node`` went through, from the mock's ``transition`` events."""
    seq: list[str] = []
    for ev in server_events:
        if ev.get("kind") == "transition" and ev.get("node") == node:
            if not seq or ev["from"] != seq[-1]:  # a restarted process starts over from Initializing
                seq.append(ev["from"])
            seq.append(ev["to"])
    return seq


def assert_accounted(summary: dict[str, Any], clients: int) -> None:
    """Clients started = planned = the sum of clients by end state, each end state with named reasons."""
    assert summary["clients_planned"] == clients
    assert summary["clients_started"] == clients
    assert sum(summary["end_states"].values()) == clients, summary["end_states"]
    assert summary["clients_without_end_record"] == 0
    for state, n in summary["end_states"].items():
        reasons = summary["end_reasons"][state]
        assert sum(reasons.values()) == n and all(reasons), (state, reasons)


def orphans_of(pids: Iterable[int] | Mapping[int, str]) -> list[str]:
    """The processes of ``pids`` still running (zombies excluded), as ``pid cmdline`` strings.

    Given a mapping ``pid -> command`` (``DrillProcess.descendants``), a pid counts only while it still
    runs that command: under a parallel suite a freed pid is soon reused (a kernel worker thread has
    an empty command line, another test's process another command)."""
    seen = pids if isinstance(pids, Mapping) else None
    alive = []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            cmd = " ".join(proc.cmdline()[:4])
        except psutil.Error:
            continue
        if not cmd or (seen is not None and seen[pid] and cmd != seen[pid]):
            continue  # a kernel thread, a process tearing down, or the pid reused by someone else
        alive.append(f"{pid} {cmd}")
    return alive


@dataclass
class DrillProcess:
    """``jabberemu drill ...`` in a session of its own; stdout read by a thread, its process tree sampled.

    ``descendants`` holds every process seen under the drill (the mock nodes, Locust and its workers),
    so a test can check that none outlives it. :meth:`close` kills whatever is left (test clean-up).
    """

    args: Sequence[str]
    cwd: Path = REPO
    lines: list[tuple[float, str]] = field(default_factory=list)
    descendants: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "jabberemu"), "drill", *self.args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, cwd=self.cwd, env=env_with_venv(), start_new_session=True,
        )
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._sample_tree()
            with self._cond:
                self.lines.append((time.monotonic() - self.started, line.rstrip("\n")))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def _sample_tree(self) -> None:
        try:
            for child in psutil.Process(self.proc.pid).children(recursive=True):
                if child.pid not in self.descendants:
                    try:
                        self.descendants[child.pid] = " ".join(child.cmdline()[:4])
                    except psutil.Error:
                        continue
        except psutil.Error:
            pass

    @property
    def output(self) -> str:
        with self._cond:
            return "\n".join(line for _, line in self.lines)

    def progress(self) -> list[tuple[float, re.Match[str]]]:
        """The progress lines seen so far, with the wall time (s since start) each was read."""
        with self._cond:
            return [(t, m) for t, line in self.lines if (m := PROGRESS_RE.match(line))]

    def wait_for_line(self, predicate: Any, timeout_s: float) -> str:
        """Block until a line satisfies ``predicate`` (a callable on the line); returns it.

        Raises:
            AssertionError: the drill ended or the time ran out first (the output is shown).
        """
        deadline = time.monotonic() + timeout_s
        seen = 0
        with self._cond:
            while True:
                for _, line in self.lines[seen:]:
                    if predicate(line):
                        return line
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(f"no such line within {timeout_s} s; output:\n{self.output[-4000:]}")
                self._cond.wait(min(left, 0.5))

    def wait(self, timeout_s: float) -> int:
        """Exit code of the drill (its output fully read)."""
        code = self.proc.wait(timeout_s)
        self._reader.join(10)
        return code

    def interrupt(self) -> None:
        """SIGINT to the drill process only (what ``kill -INT`` does)."""
        self._sample_tree()
        os.kill(self.proc.pid, signal.SIGINT)

    def interrupt_group(self) -> None:
        """SIGINT to the drill's whole process group (what Ctrl-C in a terminal does)."""
        self._sample_tree()
        os.killpg(self.proc.pid, signal.SIGINT)

    def close(self) -> None:
        """Kill the drill and everything it started, if still running."""
        self._sample_tree()
        pids = [self.proc.pid, *self.descendants]
        for pid in pids:
            try:
                proc = psutil.Process(pid)
                if pid == self.proc.pid or " ".join(proc.cmdline()[:4]) == self.descendants.get(pid):
                    proc.kill()  # still the process we saw, not a reused pid
            except psutil.Error:
                continue
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@dataclass
class RecordedProcess:
    """What the tests read of a finished :class:`DrillProcess` (its lines and the processes it had
    started), read back from :meth:`Drill.save`'s file: a drill run by another xdist worker."""

    lines: list[tuple[float, str]]
    descendants: dict[int, str]

    @property
    def output(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def progress(self) -> list[tuple[float, re.Match[str]]]:
        return [(t, m) for t, line in self.lines if (m := PROGRESS_RE.match(line))]


class Drill:
    """A finished drill: its exit code, output, run directory and the processes it had started."""

    def __init__(self, proc: DrillProcess | RecordedProcess, code: int, out: Path) -> None:
        self.proc, self.code, self.out = proc, code, out
        self.summary: dict[str, Any] = json.loads((out / "summary.json").read_text(encoding="utf-8"))
        self.server_events = read_jsonl(out / "server_events.jsonl")

    def waves(self) -> list[tuple[str, int, int]]:
        return [(w["kind"], w["clients"], w["recovered"]) for w in self.summary["ha_events"]]

    def save(self, path: Path) -> None:
        """Write what :meth:`load` needs (exit code, run directory, lines, descendants) as JSON."""
        path.write_text(json.dumps({"code": self.code, "out": str(self.out), "lines": self.proc.lines,
                                    "descendants": {str(pid): cmd for pid, cmd in self.proc.descendants.items()}}),
                        encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Drill:
        data = json.loads(path.read_text(encoding="utf-8"))
        proc = RecordedProcess(lines=[(float(t), str(line)) for t, line in data["lines"]],
                               descendants={int(pid): cmd for pid, cmd in data["descendants"].items()})
        return cls(proc, int(data["code"]), Path(data["out"]))


def run_drill(out: Path, *args: str, timeout_s: float = 240.0) -> Drill:
    """``jabberemu drill --out OUT --seed 7 ARGS`` to its end; fails the test unless it exits 0."""
    proc = DrillProcess(["--out", str(out), "--seed", "7", *args])
    try:
        code = proc.wait(timeout_s)
    finally:
        proc.close()
    assert code == 0, proc.output[-4000:]
    return Drill(proc, code, out)


@dataclass(frozen=True)
class FailoverDrillSpec:
    """The one failover drill the end-to-end tests share (``tests/conftest.py`` ``failover_drill``):
    run once per test session, whichever xdist worker asks first."""

    clients: int = 120
    ramp: float = 60.0
    lower_s: float = 1.0
    upper_s: float = 3.0
    hold_s: float = 3.0
    margin_s: float = 3.0

    def args(self) -> list[str]:
        return ["--clients", str(self.clients), "--ramp", f"{self.ramp:g}", "--lower", f"{self.lower_s:g}",
                "--upper", f"{self.upper_s:g}", "--hold", f"{self.hold_s:g}", "--margin", f"{self.margin_s:g}"]


FAILOVER_DRILL = FailoverDrillSpec()
