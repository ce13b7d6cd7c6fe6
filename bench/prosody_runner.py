"""Debian's Prosody started for a bench run: free loopback port, own config and data dir in a temp dir.

Users are written straight into Prosody's ``internal_plain`` account store
(``<data>/<host encoded>/accounts/<user>.dat``, a Lua table with the password), which is what
``prosodyctl register`` writes, without a process per user. Only c2s on 127.0.0.1 is enabled (no
s2s, no HTTP, no TLS: the bench compares plain-TCP SASL PLAIN logins), plus roster, presence and
ping. Prosody runs in the foreground (``-F``) as a child of the bench, with a raised fd limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from benchkit import TreeSample, raise_fd_limit_in_child, sample_tree

__all__ = ["PROSODY", "ProsodyServer", "prosody_available"]

PROSODY = shutil.which("prosody") or "/usr/bin/prosody"


def prosody_available() -> bool:
    """True when the ``prosody`` command exists."""
    return shutil.which("prosody") is not None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def encode_host(host: str) -> str:
    """Prosody's data-path encoding of a host name (``.`` -> ``%2e``, ``-`` -> ``%2d``)."""
    return "".join(c if c.isalnum() else f"%{ord(c):02x}" for c in host)


def lua_string(text: str) -> str:
    """``text`` as a Lua string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_accounts(data: Path, domain: str, users: Sequence[tuple[str, str]]) -> Path:
    """``internal_plain`` account files straight into Prosody's data dir (what ``prosodyctl register``
    writes); returns the host's data directory."""
    host = data / encode_host(domain)
    (host / "accounts").mkdir(parents=True, exist_ok=True)
    for user, password in users:
        (host / "accounts" / f"{user}.dat").write_text(f"return {{\n\t[\"password\"] = {lua_string(password)};\n}};\n",
                                                       encoding="utf-8")
    return host


def prosody_config(*, work: Path, data: Path, port: int, domain: str, log: str, writer: str) -> str:
    """A Prosody 0.12 config: c2s only on 127.0.0.1:``port``, plain TCP, PLAIN and SCRAM, internal
    storage in ``data``, roster, ping and disco; ``log`` is a Lua log table body (``error = "..."``);
    ``writer`` names who wrote it (the first line). Shared by this bench and tests/peers."""
    return f"""-- written by {writer}
pidfile = "{work}/prosody.pid"
data_path = "{data}"
interfaces = {{ "127.0.0.1" }}
c2s_interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {port} }}
s2s_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "internal_plain"
storage = "internal"
modules_enabled = {{ "roster", "saslauth", "ping", "disco" }}
modules_disabled = {{ "s2s", "tls", "offline", "c2s_timeout" }}
log = {{ {log} }}
run_as_root = true
VirtualHost "{domain}"
"""


@dataclass(kw_only=True)
class ProsodyServer:
    """One Prosody on loopback.

    Args:
        domain: the VirtualHost.
        users: ``(user, password)`` accounts to create.
    """

    domain: str = "example.test"
    users: Sequence[tuple[str, str]] = ()
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    workdir: Path | None = field(default=None)

    def _config(self, work: Path) -> str:
        return prosody_config(work=work, data=work / "data", port=self.port, domain=self.domain,
                              log=f'error = "{work}/prosody.err"', writer="bench/prosody_runner.py")

    def _write_users(self, data: Path) -> None:
        write_accounts(data, self.domain, self.users)

    @contextlib.asynccontextmanager
    async def running(self, start_timeout_s: float = 30.0) -> AsyncIterator[ProsodyServer]:
        """Start Prosody, wait until its port accepts; stop it on exit."""
        if not prosody_available():
            raise RuntimeError("prosody is not installed (Debian package prosody)")
        with tempfile.TemporaryDirectory(prefix="bench-prosody-") as tmp:
            work = Path(tmp)
            self.workdir = work
            self.port = self.port or _free_port()
            (work / "data").mkdir()
            self._write_users(work / "data")
            conf = work / "prosody.cfg.lua"
            conf.write_text(self._config(work), encoding="utf-8")
            self.proc = subprocess.Popen([PROSODY, "--config", str(conf), "-F"], cwd=work,
                                         stdout=open(work / "prosody.out", "wb"),  # noqa: SIM115
                                         stderr=subprocess.STDOUT, preexec_fn=raise_fd_limit_in_child)
            try:
                await self._wait_port(start_timeout_s)
                yield self
            finally:
                await self.stop()

    async def _wait_port(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"prosody exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"prosody did not listen on {self.port}: {self.log_tail()}") from None
                await asyncio.sleep(0.1)

    def sample(self) -> TreeSample:
        """RSS/CPU of the Prosody process."""
        assert self.proc is not None
        return sample_tree(psutil.Process(self.proc.pid))

    def log_tail(self, chars: int = 2000) -> str:
        if self.workdir is None:
            return ""
        text = ""
        for name in ("prosody.out", "prosody.err"):
            with contextlib.suppress(OSError):
                text += (self.workdir / name).read_text(errors="replace")[-chars:]
        return text

    async def stop(self) -> None:
        """SIGTERM, kill after 10 s (idempotent)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 10.0
            while self.proc.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
