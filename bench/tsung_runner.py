"""Tsung (Debian ``tsung``, the Erlang XMPP load tool) driven from the bench scripts.

One scenario, the same login our emulated client does in XMPP-only mode: connect, SASL PLAIN,
stream restart, bind, session, roster get, initial presence; then the session stays idle for
``hold_s`` and closes. Users come from a CSV (``user,password``) read in order, so each session
logs in a distinct user. Tsung runs in its controller VM on this box (``use_controller_vm``) with
a unique controller id (so runs by several engineers do not collide) and a raised fd limit.

The Erlang VM tree is sampled with psutil every ``sample_s``: RSS, CPU seconds and the number of
established connections to the server port. From the samples:

- login phase = last sample with no connection -> first sample with all N connected (``hold_s`` must
  outlast the arrivals: N / rate and some); Tsung CPU per login = CPU over that phase / N (the VM's
  start-up is outside the phase); sessions that failed to log in are left out of N;
- RSS per session = (RSS once all are connected and settled - RSS before the first connection) / N;
- idle CPU = CPU percent over the held, idle part.

Tsung's own counters (``tsung.log``: transactions, errors) are parsed and returned as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from benchkit import TreeSample, raise_fd_limit_in_child, sample_tree

__all__ = ["TSUNG", "TsungResult", "parse_tsung_log", "run_tsung", "tsung_available", "tsung_config"]

TSUNG = shutil.which("tsung") or "/usr/bin/tsung"


def tsung_available() -> bool:
    """True when the ``tsung`` command exists."""
    return shutil.which("tsung") is not None


def tsung_config(*, host: str, port: int, domain: str, users_csv: Path, clients: int, rate_per_s: float,
                 hold_s: float) -> str:
    """The Tsung XML of the login-and-idle scenario.

    Args:
        host, port: the XMPP c2s listener.
        domain: the XMPP domain (stream ``to``).
        users_csv: ``user,password`` lines, one per session.
        clients: sessions to start (``maxnumber``).
        rate_per_s: arrival rate, sessions started per second.
        hold_s: idle time after the initial presence before closing.
    """
    # Tsung's arrivals are a Poisson process: give the phase room, maxnumber stops it at `clients`
    phase_s = max(2, math.ceil(clients / rate_per_s * 1.5) + 2)
    return f"""<?xml version="1.0"?>
<!DOCTYPE tsung SYSTEM "/usr/share/tsung/tsung-1.0.dtd">
<tsung loglevel="warning" dumptraffic="false" version="1.0">
  <clients><client host="localhost" use_controller_vm="true" maxusers="{clients + 100}"/></clients>
  <servers><server host="{host}" port="{port}" type="tcp"/></servers>
  <load><arrivalphase phase="1" duration="{phase_s}" unit="second">
    <users maxnumber="{clients}" arrivalrate="{rate_per_s:g}" unit="second"/>
  </arrivalphase></load>
  <options>
    <option type="ts_jabber" name="domain" value="{domain}"/>
    <option type="ts_jabber" name="userid_max" value="0"/>
    <option name="file_server" id="userdb" value="{users_csv}"/>
  </options>
  <sessions>
    <session probability="100" name="login" type="ts_jabber">
      <setdynvars sourcetype="file" fileid="userdb" delimiter="," order="iter">
        <var name="username"/><var name="password"/>
      </setdynvars>
      <request subst="true"><jabber type="connect" ack="local"><xmpp_authenticate username="%%_username%%" passwd="%%_password%%"/></jabber></request>
      <transaction name="login">
        <request><jabber type="auth_sasl" ack="local"/></request>
        <request><jabber type="connect" ack="local"/></request>
        <request><jabber type="auth_sasl_bind" ack="local"/></request>
        <request><jabber type="auth_sasl_session" ack="local"/></request>
        <request><jabber type="iq:roster:get" ack="local"/></request>
        <request><jabber type="presence:initial" ack="no_ack"/></request>
      </transaction>
      <thinktime value="{hold_s:g}" random="false"/>
      <request><jabber type="close" ack="no_ack"/></request>
    </session>
  </sessions>
</tsung>
"""


_STAT = re.compile(r"^stats: (\S+) (.*)$")


def parse_tsung_log(text: str) -> dict[str, dict[str, float]]:
    """Sum Tsung's ``tsung.log`` dumps.

    Sample lines (``name count mean stddev max min ...``) give ``count`` (summed over dumps),
    ``mean_ms`` (count-weighted) and ``max_ms``; counter lines (``name count total``) give
    ``count`` = the largest total seen.
    """
    out: dict[str, dict[str, float]] = {}
    for line in text.splitlines():
        m = _STAT.match(line.strip())
        if not m or m.group(1).startswith("{"):
            continue
        name = m.group(1)
        try:
            nums = [float(v) for v in m.group(2).split()]
        except ValueError:
            continue
        entry = out.setdefault(name, {"count": 0.0})
        if len(nums) >= 5:
            count = nums[0]
            if count > 0:
                total = entry.get("_sum", 0.0) + nums[1] * count
                entry["count"] += count
                entry["_sum"] = total
                entry["mean_ms"] = total / entry["count"]
                entry["max_ms"] = max(entry.get("max_ms", 0.0), nums[3])
        elif len(nums) == 2:
            entry["count"] = max(entry["count"], nums[1])
    for entry in out.values():
        entry.pop("_sum", None)
    return out


@dataclass(kw_only=True)
class TsungResult:
    """What one Tsung run measured (see the module docstring for the definitions)."""

    clients: int
    connected_max: int
    login_phase_s: float | None
    cpu_per_login_ms: float | None
    logins_per_s: float | None
    rss_base_mib: float | None
    rss_per_session_kib: float | None
    idle_cpu_percent: float | None
    stats: dict[str, dict[str, float]] = field(default_factory=dict)
    errors: int = 0
    exit_code: int | None = None
    log_tail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "log_tail" or self.errors or self.exit_code}


async def run_tsung(*, host: str, port: int, domain: str, users: list[tuple[str, str]], rate_per_s: float,
                    hold_s: float, idle_s: float = 5.0, sample_s: float = 0.25, timeout_s: float | None = None,
                    count_port: int | None = None) -> TsungResult:
    """Run the login-and-idle scenario for ``len(users)`` sessions and sample the VM.

    Args:
        host, port, domain: the XMPP server.
        users: ``(user, password)`` pairs, one per session.
        rate_per_s: arrival rate.
        hold_s: idle seconds after login (must exceed the time needed to measure idle CPU and RSS).
        idle_s: seconds of the hold over which idle CPU is measured.
        sample_s: sampling period of the VM tree.
        timeout_s: hard bound of the whole run (Tsung is killed after it); default from the others.
        count_port: port whose established connections are counted (default ``port``).

    Raises:
        RuntimeError: the ``tsung`` command is missing.
    """
    if not tsung_available():
        raise RuntimeError("tsung is not installed (Debian package tsung)")
    clients = len(users)
    timeout_s = timeout_s or (clients / rate_per_s + hold_s + 60.0)
    with tempfile.TemporaryDirectory(prefix="bench-tsung-") as tmp:
        work = Path(tmp)
        csv = work / "users.csv"
        csv.write_text("".join(f"{u},{p}\n" for u, p in users), encoding="utf-8")
        conf = work / "tsung.xml"
        conf.write_text(tsung_config(host=host, port=port, domain=domain, users_csv=csv, clients=clients,
                                     rate_per_s=rate_per_s, hold_s=hold_s), encoding="utf-8")
        logs = work / "log"
        cmd = [TSUNG, "-f", str(conf), "-l", str(logs), "-i", f"bench{os.getpid()}x{int(time.time() * 1000) % 100000}",
               "-n", "start"]
        proc = subprocess.Popen(cmd, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                preexec_fn=raise_fd_limit_in_child, start_new_session=True)
        samples: list[TreeSample] = []
        root = psutil.Process(proc.pid)
        deadline = time.monotonic() + timeout_s
        try:
            while proc.poll() is None and time.monotonic() < deadline:
                samples.append(await asyncio.to_thread(sample_tree, root, count_port or port))
                await asyncio.sleep(sample_s)
        finally:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, 9)
            proc.wait(10)
        stats: dict[str, dict[str, float]] = {}
        tail = ""
        for log in logs.glob("*/tsung.log"):
            stats = parse_tsung_log(log.read_text(encoding="utf-8", errors="replace"))
        for log in logs.glob("*/tsung_controller*.log"):
            tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
    return _summarise(samples, clients, idle_s, stats, proc.returncode, tail)


def _summarise(samples: list[TreeSample], clients: int, idle_s: float, stats: dict[str, dict[str, float]],
               exit_code: int | None, tail: str) -> TsungResult:
    connected_max = max((s.connections for s in samples), default=0)
    # sessions whose login transaction completed (a session that failed never holds a connection)
    logged_in = int(stats.get("tr_login", {}).get("count", clients))
    want = min(clients, logged_in) or clients
    first = next((i for i, s in enumerate(samples) if s.connections > 0), None)
    full = next((i for i, s in enumerate(samples) if s.connections >= want), None)
    errors = int(sum(v["count"] for k, v in stats.items() if k.startswith("error")))
    result = TsungResult(clients=clients, connected_max=connected_max, login_phase_s=None, cpu_per_login_ms=None,
                         logins_per_s=None, rss_base_mib=None, rss_per_session_kib=None, idle_cpu_percent=None,
                         stats=stats, errors=errors, exit_code=exit_code, log_tail=tail)
    if first is None or full is None:
        # the logged-in sessions were never all connected at once (hold too short): no per-login figures
        return result
    clients = want
    base = samples[max(0, first - 1)]
    top = samples[full]
    phase_s = top.t - base.t
    result.login_phase_s = round(phase_s, 2)
    result.cpu_per_login_ms = round((top.cpu_s - base.cpu_s) / clients * 1000.0, 3)
    result.logins_per_s = round(clients / phase_s, 1) if phase_s > 0 else None
    result.rss_base_mib = round(base.rss_bytes / 2**20, 1)
    # idle: from 1 s after all connected, for idle_s, while all are still connected
    t_idle0 = top.t + 1.0
    idle = [s for s in samples[full:] if t_idle0 <= s.t <= t_idle0 + idle_s and s.connections >= clients]
    if len(idle) >= 2:
        result.idle_cpu_percent = round((idle[-1].cpu_s - idle[0].cpu_s) / (idle[-1].t - idle[0].t) * 100.0, 2)
        result.rss_per_session_kib = round((idle[-1].rss_bytes - base.rss_bytes) / clients / 1024.0, 1)
    else:
        result.rss_per_session_kib = round((top.rss_bytes - base.rss_bytes) / clients / 1024.0, 1)
    return result
