"""Tsung (Debian package, Erlang) against the mock's XMPP: 2,000 users log in with SASL PLAIN on one
node of a real MockPair (2,000 users provisioned, all homed there), stay connected together, and
close. Tsung's log must show 2,000 logins and no error; the mock must count 2,000 SASL successes and
2,000 sessions at once.

The Tsung scenario (connect, PLAIN, stream restart, bind, session, roster, initial presence, hold,
close) and the log parser are bench/tsung_runner.py's (``tsung_config``, ``parse_tsung_log``).
Tsung runs with a unique controller id (``-i``) so concurrent runs do not collide, in its own
process group, killed after a bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest

from mock_server.pair.runner import MockPair
from mock_server.pair_config import PairConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from tsung_runner import parse_tsung_log, tsung_config  # noqa: E402

logger = logging.getLogger(__name__)

TSUNG = shutil.which("tsung") or "/usr/bin/tsung"
USERS = 2000
RATE_PER_S = 250.0
HOLD_S = 16.0  # longer than the arrival phase (8-11 s on a busy box): all 2,000 are connected at once
TSUNG_BOUND_S = 100.0

pytestmark = [
    pytest.mark.slow,
    pytest.mark.thirdparty,
    pytest.mark.skipif(not Path(TSUNG).exists(), reason="needs Debian tsung (apt-get install tsung)"),
]


async def _run_tsung(work: Path, port: int, domain: str) -> tuple[int, str, float]:
    """Run the scenario; returns (exit code, tsung.log text, seconds)."""
    csv = work / "users.csv"
    csv.write_text("".join(f"user{i:05d},pass-user{i:05d}\n" for i in range(1, USERS + 1)), encoding="utf-8")
    conf = work / "tsung.xml"
    conf.write_text(tsung_config(host="127.0.0.1", port=port, domain=domain, users_csv=csv, clients=USERS,
                                 rate_per_s=RATE_PER_S, hold_s=HOLD_S), encoding="utf-8")
    logs = work / "log"
    t0 = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        TSUNG, "-f", str(conf), "-l", str(logs), "-i", f"peer{os.getpid()}", "-n", "start",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=work, start_new_session=True)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), TSUNG_BOUND_S)
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await asyncio.wait_for(proc.wait(), 10)
    elapsed = time.monotonic() - t0
    found = list(logs.glob("*/tsung.log"))
    assert len(found) == 1, out.decode(errors="replace")
    return int(proc.returncode or 0), found[0].read_text(encoding="utf-8", errors="replace"), elapsed


@pytest.mark.timeout(150)
async def test_tsung_2000_plain_logins_against_the_mock_without_error(tmp_path: Path) -> None:
    config = PairConfig(users=USERS, assignment="active-standby", contacts=1)  # every user homed on node 1
    t0 = time.monotonic()
    async with MockPair(config) as pair:
        node1 = config.node_names[0]
        await pair.wait_for_states({n: "Normal" for n in config.node_names}, timeout_s=20)
        pair_s = time.monotonic() - t0
        port = next(int(n["xmpp_port"]) for n in pair.topology["nodes"] if n["name"] == node1)
        code, log, tsung_s = await _run_tsung(tmp_path, port, config.domain)
        assert code == 0, log[-3000:]
        stats = parse_tsung_log(log)
        assert {k: v for k, v in stats.items() if k.startswith("error")} == {}
        assert stats["tr_login"]["count"] == USERS  # the whole login transaction, per user
        assert stats["connect"]["count"] == USERS
        assert stats["session"]["count"] == USERS
        assert stats["finish_users_count"]["count"] == USERS
        rows: list[dict] = []
        for _ in range(50):  # the mock's per-second metric rows: wait for the last one (bounded)
            rows = [r for r in (await pair.admin("GET", "/api/metrics"))["metrics"] if r["node"] == node1]
            if sum(r.get("xmpp_auths_ok", 0) for r in rows) >= USERS:
                break
            await asyncio.sleep(0.1)
        assert sum(r.get("xmpp_auths_ok", 0) for r in rows) == USERS
        assert max(r["active_sessions"] for r in rows) == USERS  # all held at once
    logger.info("tsung %d users: login mean %.1f ms max %.1f ms; pair up %.1f s, tsung %.1f s, total %.1f s",
                USERS, stats["tr_login"]["mean_ms"], stats["tr_login"]["max_ms"], pair_s, tsung_s,
                time.monotonic() - t0)
