"""The README's commands as a test runs them (``test_cli_readme.py``, ``test_cli_readme_servers.py``).

Every command in README.md's ```sh blocks runs, so the README cannot rot.

The commands run in README order, in a scratch directory that links the repository's top-level files
(``locustfiles/jabber.py`` resolves; outputs stay out of the checkout). Small overrides are appended
(argparse keeps the last value of a repeated option): drills get few clients and short limits; a
Locust run with a ``--drill`` and a ``-t`` of at most two minutes runs as written (its own run
directory aside) and, with ``--report``, must PASS; other Locust runs get ``--headless -u 10 -r 10
-t 8s``, their drill items moved to 2 s (a soak's ``--drill-every`` off), and their own run directory; ``--processes`` runs a loopback
master on a free port, ``--prometheus-port`` gets a free port. The real-pair example gets the hosts, URLs, names and domain of the mock pair
the README started before it, and a users CSV of that pair's users. ``jabberemu mock`` and
``python -m mock_server`` run until their topology file appears and the pair is Normal, stay up for
the commands after them, and stop on SIGINT. ``make demo`` and ``make test`` are skipped: CI runs them.
Anything else runs as written and must exit 0.

The chain is cut in two at the first server command (:data:`SPLIT`): the drills, the planner and the
report of a drill's directory before it, the pairs and the Locust runs against them after it; each
part runs in its own test module (two xdist workers), in README order.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from cli_support import REPO, VENV_BIN, env_with_venv, orphans_of, read_jsonl


README = REPO / "README.md"
SKIPPED = (["make", "demo"], ["make", "test"])
LOCUST_USERS = 10
LOCUST_OVERRIDES = ["--headless", "-u", str(LOCUST_USERS), "-r", "10", "-t", "8s"]
AS_WRITTEN_MAX_S = 120  # a README example with a drill at most this long runs as written
DRILL_OVERRIDES = ["--clients", "30", "--ramp", "30", "--lower", "1", "--upper", "2", "--hold", "0.5", "--margin", "1"]


def readme_commands(text: str) -> list[list[str]]:
    """The commands of the ```sh blocks: continuation lines joined, comments dropped, split like a shell."""
    commands = []
    for block in re.findall(r"^```sh\n(.*?)^```", text, re.S | re.M):
        for line in block.replace("\\\n", " ").splitlines():
            argv = shlex.split(line, comments=True)
            if argv:
                commands.append(argv)
    return commands


def command_kind(argv: list[str]) -> str:
    if argv[:2] in SKIPPED:
        return "skip"
    if argv[:2] == ["jabberemu", "mock"] or (argv[:3] == ["python", "-m", "mock_server"] and
                                             (len(argv) == 3 or argv[3].startswith("-"))):
        return "server"
    if argv[:2] == ["jabberemu", "drill"]:
        return "drill"
    if argv[0] == "locust" or argv[:2] == ["jabberemu", "run"]:
        return "locust"
    return "plain"


def _option(argv: list[str], name: str) -> str | None:
    value = None
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith(name + "="):
            value = arg.split("=", 1)[1]
    return value


def _seconds(text: str | None) -> float | None:
    """Locust's ``-t`` (``60s``, ``5m``, ``1h30m``) in seconds, None when absent."""
    if not text:
        return None
    units = {"h": 3600, "m": 60, "s": 1}
    return float(sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([hms])", text)))


def _as_written(argv: list[str]) -> bool:
    t = _seconds(_option(argv, "-t"))
    return _option(argv, "--drill") is not None and t is not None and t <= AS_WRITTEN_MAX_S


def _short_drill(drill: str) -> str:
    """Every item of a ``--drill`` moved to 2 s (``ready+2`` for a ready-relative one)."""
    items = []
    for item in drill.split(","):
        what, _, when = item.strip().rpartition("@")
        items.append(f"{what}@{'ready+2' if when.startswith('ready') else '2'}")
    return ",".join(items)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    argv: list[str]
    proc: subprocess.Popen[str]
    topology: dict[str, Any]
    log: Path
    descendants: dict[int, str] = field(default_factory=dict)

    def stop(self) -> int:
        for child in psutil.Process(self.proc.pid).children(recursive=True):
            self.descendants[child.pid] = " ".join(child.cmdline()[:4])
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            for pid in [self.proc.pid, *self.descendants]:
                try:
                    psutil.Process(pid).kill()
                except psutil.Error:
                    continue
            self.proc.wait(10)
            raise


@dataclass
class Outcome:
    argv: list[str]
    code: int | None = None
    output: str = ""
    problems: list[str] = field(default_factory=list)


class ReadmeSession:
    """Runs the README's commands in order, each once; keeps the latest mock pair up for those after it."""

    def __init__(self, workdir: Path, text: str | None = None, *, start: int = 0) -> None:
        self.workdir = workdir
        self.start = start  # the first command this session runs (run_upto runs from here)
        self.commands = readme_commands(README.read_text(encoding="utf-8") if text is None else text)
        self.outcomes: dict[int, Outcome] = {}
        self.server: Server | None = None
        self.env = env_with_venv()
        for entry in subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True,
                                    check=True).stdout.split():
            top = entry.split("/")[0]
            link = workdir / top
            if top != "reports" and not link.exists():
                link.symlink_to(REPO / top)

    # -- preparing a command -------------------------------------------------------------------

    def _report_dir(self) -> str:
        for argv in self.commands:
            if argv[:2] == ["jabberemu", "report"] and len(argv) > 2:
                return argv[2]
        return "reports/readme-drill"

    def _real_pair(self, argv: list[str]) -> list[str]:
        """Point the real-pair example at the mock pair that is up, with a CSV of its users."""
        assert self.server is not None, f"no mock pair is up for the real-pair example {shlex.join(argv)}"
        topo = self.server.topology
        nodes = topo["nodes"]
        values = {
            "--cpa-url": ",".join(n["cpa_url"] for n in nodes),
            "--xmpp-host": ",".join(f"{n['xmpp_host']}:{n['xmpp_port']}" for n in nodes),
            "--node-names": ",".join(n["name"] for n in nodes),
            "--domain": topo["presence_domain"],
        }
        out = list(argv)
        for i, arg in enumerate(out[:-1]):
            if arg in values:
                out[i + 1] = values[arg]
        csv_name = _option(argv, "--users-csv")
        if csv_name:
            rows = [f"user{n:05d},pass-user{n:05d},User {n},{nodes[(n - 1) % len(nodes)]['name']}"
                    for n in range(1, LOCUST_USERS + 1)]  # the mock's users, balanced over its nodes
            (self.workdir / csv_name).write_text("\n".join(rows) + "\n", encoding="utf-8")
        return out

    def prepared(self, index: int) -> list[str]:
        argv = list(self.commands[index])
        kind = command_kind(argv)
        if kind == "drill":
            argv += [*DRILL_OVERRIDES, "--out", self._report_dir()]
        elif kind == "locust":
            if _option(argv, "--cpa-url") or _option(argv, "--xmpp-host"):
                argv = self._real_pair(argv)
            if not _as_written(argv):
                argv += LOCUST_OVERRIDES
                drill = _option(argv, "--drill")
                if drill:
                    argv += ["--drill", _short_drill(drill)]
                if _option(argv, "--drill-every"):  # a soak's drill needs hours: off in 8 s
                    argv += ["--drill-every", "0"]
            argv += ["--run-dir", f"runs/cmd{index}"]
            if _option(argv, "--prometheus-port"):
                argv += ["--prometheus-port", str(_free_port())]
            if _option(argv, "--processes"):
                port = str(_free_port())
                argv += ["--processes", "2", "--master-bind-host", "127.0.0.1", "--master-bind-port", port,
                         "--master-port", port]
        if argv[0] in ("python", "python3"):
            argv[0] = sys.executable
        elif (VENV_BIN / argv[0]).exists():
            argv[0] = str(VENV_BIN / argv[0])
        return argv

    # -- running -------------------------------------------------------------------------------

    def run_upto(self, index: int) -> Outcome:
        for i in range(self.start, index + 1):
            if i not in self.outcomes:
                self.outcomes[i] = self._run(i)
        return self.outcomes[index]

    def _run(self, index: int) -> Outcome:  # noqa: C901 - one branch per kind of command
        argv = self.prepared(index)
        outcome = Outcome(argv=argv)
        kind = command_kind(self.commands[index])
        if kind == "skip":
            return outcome
        if kind == "drill":  # the README's drills share the report directory here: one run in it at a time
            shutil.rmtree(self.workdir / self._report_dir(), ignore_errors=True)
        if kind == "server":
            self._start_server(argv, outcome)
            return outcome
        try:
            res = subprocess.run(argv, cwd=self.workdir, env=self.env, capture_output=True, text=True,
                                 timeout=240 if kind == "drill" else 150)
        except subprocess.TimeoutExpired as exc:
            outcome.problems.append(f"timed out after {exc.timeout} s")
            return outcome
        outcome.code, outcome.output = res.returncode, res.stdout + res.stderr
        if res.returncode != 0:
            outcome.problems.append(f"exit code {res.returncode}")
        if "Traceback" in outcome.output:
            outcome.problems.append("a traceback in the output")
        if kind == "locust":
            self._check_locust_run(index, outcome)
            if _as_written(self.commands[index]) and _option(self.commands[index], "--report") is not None:
                self._check_verdict(self.workdir / f"runs/cmd{index}", outcome)
        if kind == "drill":
            out = self.workdir / self._report_dir()
            for name in ("report.html", "summary.json"):
                if not (out / name).exists():
                    outcome.problems.append(f"no {name} in {out}")
        return outcome

    def _check_locust_run(self, index: int, outcome: Outcome) -> None:
        """Every Locust user signed in once and ended, as the run data says."""
        run_dir = self.workdir / f"runs/cmd{index}"
        events = read_jsonl(run_dir / "client_events.jsonl")
        if not events:
            outcome.problems.append(f"no client_events.jsonl in {run_dir}")
            return
        connected = {e["client"] for e in events if e["type"] == "connected"}
        ended = {e["client"] for e in events if e["type"] == "end"}
        users = int(_option(self.commands[index], "-u") or 0) if _as_written(self.commands[index]) else LOCUST_USERS
        if len(connected) != users or ended != connected:
            outcome.problems.append(f"{len(connected)} of {users} clients signed in, {len(ended)} ended")

    def _check_verdict(self, run_dir: Path, outcome: Outcome) -> None:
        """An example run as written must PASS as written."""
        try:
            summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            outcome.problems.append(f"no summary.json in {run_dir}: {exc}")
            return
        if summary["verdict"] != "PASS":
            outcome.problems.append(f"verdict {summary['verdict']}: {summary['reasons'][:3]}")

    def _start_server(self, argv: list[str], outcome: Outcome) -> None:
        if self.server is not None:
            self._stop_server()
        topo_name = _option(argv, "--topology-out")
        assert topo_name, f"a mock command without --topology-out: {shlex.join(argv)}"
        topo_file = self.workdir / topo_name
        topo_file.unlink(missing_ok=True)
        log = self.workdir / f"server{len(self.outcomes)}.log"
        with open(log, "w", encoding="utf-8") as f:
            proc = subprocess.Popen(argv, cwd=self.workdir, env=self.env, stdout=f, stderr=subprocess.STDOUT,
                                    text=True, start_new_session=True)
        deadline = time.monotonic() + 60
        topology = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                topology = json.loads(topo_file.read_text(encoding="utf-8"))
                break
            except (OSError, ValueError):
                time.sleep(0.2)
        if topology is None:
            proc.kill()
            proc.wait(10)
            outcome.problems.append(f"no topology file within 60 s; log:\n{log.read_text()[-2000:]}")
            return
        self.server = Server(argv=argv, proc=proc, topology=topology, log=log)
        # the pair serves nobody while Initializing: up to one heartbeat interval (15 s by default)
        deadline = time.monotonic() + 60
        states: list[str] = []
        while time.monotonic() < deadline:
            with urllib.request.urlopen(topology["admin_url"] + "/api/status", timeout=10) as resp:
                states = [n["state"] for n in json.load(resp)["nodes"]]
            if states == ["Normal", "Normal"]:
                break
            time.sleep(0.5)
        else:
            outcome.problems.append(f"the pair did not reach Normal | Normal within 60 s: {states}")
        outcome.code = 0

    def _stop_server(self) -> None:
        server, self.server = self.server, None
        if server is None:
            return
        code = server.stop()
        outcome = next(o for o in self.outcomes.values() if o.argv == server.argv)
        outcome.code = code
        outcome.output = server.log.read_text(encoding="utf-8")
        if code != 0:
            outcome.problems.append(f"exit code {code} after SIGINT")
        if "Traceback" in outcome.output:
            outcome.problems.append("a traceback in the output")
        left = orphans_of(server.descendants)
        if left:
            outcome.problems.append(f"processes left after SIGINT: {left}")

    def close(self) -> None:
        self._stop_server()


COMMANDS = readme_commands(README.read_text(encoding="utf-8"))
SPLIT = min(i for i, argv in enumerate(COMMANDS) if command_kind(argv) == "server")
"""Index of the README's first server command: the commands before it need no pair of the README's."""
