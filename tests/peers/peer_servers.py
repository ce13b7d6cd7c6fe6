"""Real third-party XMPP servers started by the tests: Debian's Prosody and ejabberd.

Each runs as a child of the test (its own process group) on free loopback ports, with its own
config, data and log directories under the test's ``tmp_path``; the system daemons the Debian
packages start are never touched. Users and rosters are pre-seeded:

- Prosody: ``internal_plain`` account files and roster files written straight into its data dir
  (``<data>/<host encoded>/accounts|roster/<user>.dat``, Lua tables; what ``prosodyctl register``
  writes), as bench/prosody_runner.py does for accounts.
- ejabberd: ``register`` and ``add_rosteritem`` over its HTTP API (``mod_http_api`` on loopback),
  one HTTP call each instead of one Erlang VM per ``ejabberdctl`` call. The Erlang VM runs without
  distribution (node ``nonode@nohost``): no epmd, no cookie, nothing shared with other runs.

``stop()`` sends SIGTERM (both servers close their c2s streams with ``system-shutdown``), waits a
bounded time and kills the group after it; ``start()`` again reuses the same data: a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from prosody_runner import lua_string, prosody_config, write_accounts  # noqa: E402  (the Prosody set-up the bench uses)

__all__ = ["EJABBERD_ERL", "PROSODY", "EjabberdPeer", "PeerServer", "ProsodyPeer", "free_port"]

PROSODY = shutil.which("prosody") or "/usr/bin/prosody"
EJABBERD_ERL = "/usr/bin/erl"
EJABBERD_LIBS = "/usr/lib/x86_64-linux-gnu"
EJABBERDCTL = "/usr/sbin/ejabberdctl"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(kw_only=True, eq=False)
class PeerServer:
    """Common process handling. Subclasses write the config and seed the users.

    Args:
        workdir: the server's own directory (config, data, logs).
        domain: the XMPP domain.
        users: ``(user, password)``.
        contacts: pairs of users that are in each other's roster with subscription ``both``.
    """

    workdir: Path
    domain: str = "example.test"
    users: Sequence[tuple[str, str]] = ()
    contacts: Sequence[tuple[str, str]] = ()
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    log_name: str = "server.out"
    stop_s: list[float] = field(default_factory=list)
    start_s: list[float] = field(default_factory=list)

    def command(self) -> tuple[list[str], dict[str, str]]:
        raise NotImplementedError

    def prepare(self) -> None:
        """Write config and data before the first start."""
        raise NotImplementedError

    async def seed_after_start(self) -> None:
        """Create users that cannot be pre-seeded on disk (after the first start)."""

    async def start(self, timeout_s: float = 30.0) -> None:
        if self.starts == 0:
            self.workdir.mkdir(parents=True, exist_ok=True)
            self.port = self.port or free_port()
            self.prepare()
        cmd, env = self.command()
        t0 = time.monotonic()
        out = open(self.workdir / self.log_name, "ab")  # noqa: SIM115 - owned by the child
        try:
            self.proc = subprocess.Popen(cmd, cwd=self.workdir, env={**os.environ, **env}, stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        finally:
            out.close()
        await self._wait_listening(self.port, timeout_s)
        self.start_s.append(time.monotonic() - t0)
        if self.starts == 0:
            await self.seed_after_start()
        self.starts += 1

    async def _wait_listening(self, port: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"{type(self).__name__} exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                _r, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no listener on {port} after {timeout_s} s: {self.log_tail()}") from None
                await asyncio.sleep(0.05)

    async def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM to the process group, SIGKILL after ``timeout_s`` (idempotent)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        t0 = time.monotonic()
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout_s
            while proc.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # leftovers of the group (helpers), or a stuck server
        await asyncio.to_thread(proc.wait, 10)
        self.stop_s.append(time.monotonic() - t0)

    def log_tail(self, chars: int = 3000) -> str:
        text = ""
        for path in sorted(self.workdir.rglob("*.log")) + [self.workdir / self.log_name]:
            with contextlib.suppress(OSError):
                text += f"\n--- {path.name}\n" + path.read_text(errors="replace")[-chars:]
        return text


@dataclass(kw_only=True, eq=False)
class ProsodyPeer(PeerServer):
    """Debian's Prosody 0.12 in the foreground (``-F``), c2s only, plain TCP, PLAIN and SCRAM."""

    log_name: str = "prosody.out"

    def prepare(self) -> None:
        work, data = self.workdir, self.workdir / "data"
        host = write_accounts(data, self.domain, self.users)
        (host / "roster").mkdir(parents=True, exist_ok=True)
        rosters: dict[str, list[str]] = {}
        for a, b in self.contacts:
            rosters.setdefault(a, []).append(b)
            rosters.setdefault(b, []).append(a)
        for user, items in rosters.items():
            rows = "".join(f"\t[{lua_string(f'{c}@{self.domain}')}] = {{ [\"subscription\"] = \"both\"; "
                           f"[\"groups\"] = {{}}; }};\n" for c in items)
            (host / "roster" / f"{user}.dat").write_text(
                f"return {{\n\t[false] = {{ [\"version\"] = 1; [\"pending\"] = {{}}; }};\n{rows}}};\n",
                encoding="utf-8")
        (work / "prosody.cfg.lua").write_text(
            prosody_config(work=work, data=data, port=self.port, domain=self.domain,
                           log=f'info = "{work}/prosody.log"', writer="tests/peers/peer_servers.py"),
            encoding="utf-8")

    def command(self) -> tuple[list[str], dict[str, str]]:
        return [PROSODY, "--config", str(self.workdir / "prosody.cfg.lua"), "-F"], {}


@dataclass(kw_only=True, eq=False)
class EjabberdPeer(PeerServer):
    """Debian's ejabberd 23.01 on its own Erlang VM (no distribution), internal auth, plain storage
    (so SCRAM-SHA-1 and PLAIN both work), HTTP API on a second loopback port for seeding."""

    log_name: str = "erl.out"
    http_port: int = 0

    def prepare(self) -> None:
        self.http_port = self.http_port or free_port()
        (self.workdir / "spool").mkdir(exist_ok=True)
        (self.workdir / "logs").mkdir(exist_ok=True)
        (self.workdir / "ejabberd.yml").write_text(f"""# written by tests/peers/peer_servers.py
hosts:
  - "{self.domain}"
loglevel: info
certfiles: []
listen:
  -
    port: {self.port}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    shaper: none
    access: all
    max_stanza_size: 262144
  -
    port: {self.http_port}
    ip: "127.0.0.1"
    module: ejabberd_http
    request_handlers:
      /api: mod_http_api
auth_method: internal
auth_password_format: plain
shaper_rules:
  c2s_shaper: none
  max_user_sessions: 10
api_permissions:
  "loopback api":
    from:
      - mod_http_api
    who:
      ip: 127.0.0.0/8
    what: "*"
modules:
  mod_roster: {{}}
  mod_ping: {{}}
  mod_disco: {{}}
  mod_admin_extra: {{}}
""", encoding="utf-8")

    def command(self) -> tuple[list[str], dict[str, str]]:
        work = self.workdir
        env = {"EJABBERD_CONFIG_PATH": str(work / "ejabberd.yml"), "EJABBERD_LOG_PATH": str(work / "logs/ejabberd.log"),
               "ERL_LIBS": EJABBERD_LIBS, "HOME": str(work), "ERL_CRASH_DUMP": str(work / "logs/erl_crash.dump")}
        return [EJABBERD_ERL, "-noinput", "+K", "true", "-mnesia", "dir", f'"{work / "spool"}"',
                "-s", "ejabberd"], env

    async def seed_after_start(self) -> None:
        await self._wait_listening(self.http_port, 10)
        for user, password in self.users:
            await self.api("register", user=user, host=self.domain, password=password)
        for a, b in self.contacts:
            for local, other in ((a, b), (b, a)):
                await self.api("add_rosteritem", localuser=local, localhost=self.domain, user=other,
                               host=self.domain, nick=other, group="jabberemu", subs="both")

    async def api(self, command: str, **args: str) -> object:
        """POST one ``mod_http_api`` command (loopback only)."""
        url = f"http://127.0.0.1:{self.http_port}/api/{command}"

        def call() -> object:
            req = urllib.request.Request(url, data=json.dumps(args).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback URL built here
                return json.loads(resp.read() or b"null")

        return await asyncio.to_thread(call)
