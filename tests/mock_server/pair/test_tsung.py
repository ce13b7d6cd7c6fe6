"""Tsung (Debian package, a third-party XMPP load tool) logs 200 users in with SASL PLAIN against one
node of the real pair: its log must show 200 successful logins and no error."""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from pair_support import DOMAIN, N1, fast_config, started_pair, xmpp_port

from mock_server.pair.runner import MockPair

TSUNG = shutil.which("tsung") or "/usr/bin/tsung"
USERS = 200

pytestmark = [
    pytest.mark.thirdparty,
    pytest.mark.skipif(not Path(TSUNG).exists(), reason="needs Debian tsung (apt-get install tsung)"),
    pytest.mark.asyncio(loop_scope="module"),
]

CONFIG = """<?xml version="1.0"?>
<!DOCTYPE tsung SYSTEM "/usr/share/tsung/tsung-1.0.dtd">
<tsung loglevel="notice" dumptraffic="false" version="1.0">
  <clients><client host="localhost" use_controller_vm="true" maxusers="{users}"/></clients>
  <servers><server host="127.0.0.1" port="{port}" type="tcp"/></servers>
  <load>
    <arrivalphase phase="1" duration="30" unit="second">
      <users maxnumber="{users}" arrivalrate="100" unit="second"/>
    </arrivalphase>
  </load>
  <options>
    <option type="ts_jabber" name="domain" value="{domain}"/>
    <option type="ts_jabber" name="userid_max" value="0"/>
    <option name="file_server" id="userdb" value="{csv}"/>
  </options>
  <sessions>
    <session probability="100" name="plain-login" type="ts_jabber">
      <setdynvars sourcetype="file" fileid="userdb" delimiter="," order="iter">
        <var name="username"/>
        <var name="password"/>
      </setdynvars>
      <request subst="true"><jabber type="connect" ack="local"><xmpp_authenticate username="%%_username%%" passwd="%%_password%%"/></jabber></request>
      <transaction name="login">
        <request><jabber type="auth_sasl" ack="local"/></request>
        <request><jabber type="connect" ack="local"/></request>
        <request><jabber type="auth_sasl_bind" ack="local"/></request>
        <request><jabber type="auth_sasl_session" ack="local"/></request>
      </transaction>
      <request><jabber type="presence:initial" ack="no_ack"/></request>
      <thinktime value="1"/>
      <request><jabber type="close" ack="local"/></request>
    </session>
  </sessions>
</tsung>
"""


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def pair() -> AsyncIterator[MockPair]:
    async with started_pair(fast_config(users=USERS, assignment="active-standby")) as p:  # all homed on imp1
        yield p


def tsung_stats(log: str) -> dict[str, list[list[float]]]:
    """Every ``stats: NAME v1 v2 ...`` line of tsung.log, per name, in order. Sample stats are
    ``count mean stddev max min ...`` per dump interval; counters are ``value total``."""
    out: dict[str, list[list[float]]] = {}
    for m in re.finditer(r"^stats: (\S+) (.*)$", log, re.M):
        out.setdefault(m.group(1), []).append([float(v) for v in m.group(2).split()])
    return out


async def test_tsung_200_plain_logins_without_error(pair: MockPair, tmp_path: Path) -> None:
    csv = tmp_path / "users.csv"
    csv.write_text("".join(f"user{i:05d},pass-user{i:05d}\n" for i in range(1, USERS + 1)), encoding="utf-8")
    config = tmp_path / "tsung.xml"
    config.write_text(CONFIG.format(users=USERS, port=xmpp_port(pair, N1), domain=DOMAIN, csv=csv), encoding="utf-8")
    logdir = tmp_path / "log"
    proc = await asyncio.create_subprocess_exec(
        TSUNG, "-f", str(config), "-l", str(logdir), "-n", "start",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=tmp_path)
    out, _ = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode == 0, out.decode(errors="replace")
    logs = list(logdir.glob("*/tsung.log"))
    assert len(logs) == 1, out.decode(errors="replace")
    stats = tsung_stats(logs[0].read_text(encoding="utf-8"))
    errors = {k: v for k, v in stats.items() if k.startswith("error")}
    assert errors == {}, errors
    assert sum(row[0] for row in stats["tr_login"]) == USERS  # 'login' transactions completed
    assert sum(row[0] for row in stats["session"]) == USERS
    assert sum(row[0] for row in stats["connect"]) == USERS
    assert stats["finish_users_count"][-1][1] == USERS
    # the mock counted the same 200 PLAIN logins (per-second rows: wait for the last one)
    auths = 0
    for _ in range(40):
        metrics = (await pair.admin("GET", "/api/metrics"))["metrics"]
        auths = sum(r.get("xmpp_auths_ok", 0) for r in metrics if r["node"] == N1)
        if auths >= USERS:
            break
        await asyncio.sleep(0.1)
    assert auths == USERS
