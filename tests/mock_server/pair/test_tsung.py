"""Tsung (Debian package, a third-party XMPP load tool) logs 200 users in with SASL PLAIN against one
node of the real pair: its log must show 200 successful logins and no error. The scenario and the log
parser are bench/tsung_runner.py's, as in tests/peers/test_peer_tsung.py (2,000 users)."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from pair_support import DOMAIN, N1, fast_config, started_pair, xmpp_port

from mock_server.pair.runner import MockPair

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))
from tsung_runner import parse_tsung_log, tsung_config  # noqa: E402

TSUNG = shutil.which("tsung") or "/usr/bin/tsung"
USERS = 200

pytestmark = [
    pytest.mark.thirdparty,
    pytest.mark.skipif(not Path(TSUNG).exists(), reason="needs Debian tsung (apt-get install tsung)"),
    pytest.mark.asyncio(loop_scope="module"),
]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def pair() -> AsyncIterator[MockPair]:
    async with started_pair(fast_config(users=USERS, assignment="active-standby")) as p:  # all homed on imp1
        yield p


async def test_tsung_200_plain_logins_without_error(pair: MockPair, tmp_path: Path) -> None:
    csv = tmp_path / "users.csv"
    csv.write_text("".join(f"user{i:05d},pass-user{i:05d}\n" for i in range(1, USERS + 1)), encoding="utf-8")
    config = tmp_path / "tsung.xml"
    config.write_text(tsung_config(host="127.0.0.1", port=xmpp_port(pair, N1), domain=DOMAIN, users_csv=csv,
                                   clients=USERS, rate_per_s=100.0, hold_s=1.0), encoding="utf-8")
    logdir = tmp_path / "log"
    proc = await asyncio.create_subprocess_exec(
        TSUNG, "-f", str(config), "-l", str(logdir), "-i", f"pair{os.getpid()}", "-n", "start",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=tmp_path)
    out, _ = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode == 0, out.decode(errors="replace")
    logs = list(logdir.glob("*/tsung.log"))
    assert len(logs) == 1, out.decode(errors="replace")
    stats = parse_tsung_log(logs[0].read_text(encoding="utf-8"))
    assert {k: v for k, v in stats.items() if k.startswith("error")} == {}
    assert stats["tr_login"]["count"] == USERS  # 'login' transactions completed
    assert stats["session"]["count"] == USERS
    assert stats["connect"]["count"] == USERS
    assert stats["finish_users_count"]["count"] == USERS
    # the mock counted the same 200 PLAIN logins (per-second rows: wait for the last one)
    auths = 0
    for _ in range(40):
        metrics = (await pair.admin("GET", "/api/metrics"))["metrics"]
        auths = sum(r.get("xmpp_auths_ok", 0) for r in metrics if r["node"] == N1)
        if auths >= USERS:
            break
        await asyncio.sleep(0.1)
    assert auths == USERS
