"""No password and no one-time password in any log, run-data record or report file (issue 9, "Secrets").

A small drill runs in this process against the real mock pair: 20 CPA clients (SOAP login with the
password, OTP, XMPP ``CISCO-VTG-TOKEN``) and 4 XMPP-only clients (SASL ``PLAIN`` with the password),
failover and fallback of node 1. Every logger is at DEBUG: the root logger and those of slixmpp
(which logs every stanza sent and received: ``SEND:``/``RECV:``), zeep, aiohttp, jabberemu and
mock_server, all captured here; the two node processes run with ``MOCK_LOG_LEVEL=DEBUG`` and their
stderr is captured too. The run data and the report are written to a run directory. The test then
searches all of it for every password, every OTP issued in the run and every session key, raw and
in the base64 forms the SASL ``<auth/>`` element carries.

The admin API's refusal of writes without the token beyond loopback is covered by
``tests/mock_server/pair/test_admin_api.py::test_writes_need_the_token_beyond_loopback``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from fault_support import N1, N2
from waiting import wait_until

from jabberemu.config import ClientSettings, ReloginLimits, SaslMechanism, ServerPair, Timeouts
from jabberemu.core.states import ClientState
from jabberemu.driver import EmulatedClient
from jabberemu.report.build import build_report
from jabberemu.runtime import RunDataSink, Runtime
from jabberemu.soap.cpa import CpaClient
from mock_server.pair import processes
from mock_server.pair.runner import MockPair
from mock_server.pair_config import PairConfig
from mock_server.users import provision

pytestmark = pytest.mark.slow

LOGGERS = ("", "slixmpp", "zeep", "aiohttp", "jabberemu", "mock_server", "asyncio")
PARAMS = ("heartbeat_interval_s=0.2", "heartbeat_timeout_s=1.5", "init_heartbeat_timeout_s=5",
          "critical_service_delay_s=0.3", "relogin_lower_s=0.2", "relogin_upper_s=0.8")


def forms(secret: str, *, user: str, domain: str) -> set[str]:
    """The secret as it could appear: raw, base64 alone, and base64 of the SASL payloads."""
    raw = secret.encode()
    payloads = (raw, b"\0" + user.encode() + b"\0" + raw, f"userid={user}@{domain}\0token={secret}".encode())
    return {secret} | {base64.b64encode(p).decode() for p in payloads}


@pytest.fixture
def fresh_debug_nodes(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Node processes with ``MOCK_LOG_LEVEL=DEBUG`` whose stderr is this test's captured stderr:
    the zygote reads its environment and stderr when it starts, so start a new one here and stop
    it afterwards (the next test gets one with its own stderr)."""
    monkeypatch.setenv("MOCK_LOG_LEVEL", "DEBUG")
    processes.Zygote.close()
    yield
    processes.Zygote.close()


async def test_no_password_or_otp_in_logs_run_data_or_report(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str], fresh_debug_nodes: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    issued: dict[str, set[str]] = {"otp": set(), "key": set()}
    original_otp, original_login = CpaClient.get_onetime_password, CpaClient.login
    original_session = CpaClient.session_login

    async def get_onetime_password(self: CpaClient, *args: Any, **kw: Any) -> str:
        otp = await original_otp(self, *args, **kw)
        issued["otp"].add(otp)
        return otp

    async def login(self: CpaClient, *args: Any, **kw: Any) -> str:
        key = await original_login(self, *args, **kw)
        issued["key"].add(key)
        return key

    async def session_login(self: CpaClient, *args: Any, **kw: Any) -> str:
        key = await original_session(self, *args, **kw)
        issued["key"].add(key)
        return key

    monkeypatch.setattr(CpaClient, "get_onetime_password", get_onetime_password)
    monkeypatch.setattr(CpaClient, "login", login)
    monkeypatch.setattr(CpaClient, "session_login", session_login)

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config = PairConfig(users=24, params=PARAMS, contacts=2)
    directory = provision(config.users, config.node_names, seed=config.seed, contacts=0)
    homes = {u.user_id: u.home_node for u in directory}
    users = sorted(homes)
    started_ts = time.time()
    actions: list[dict[str, Any]] = []
    async with MockPair(config, events_out=str(run_dir / "server_events.jsonl")) as pair:
        await pair.wait_for_states({N1: "Normal", N2: "Normal"}, timeout_s=20)
        timeouts = Timeouts(soap_s=10, connect_s=5, auth_s=10, bind_s=10)
        sink = RunDataSink(run_dir)
        rt = await Runtime.create(ServerPair.from_topology(pair.topology),
                                  ClientSettings(verify_tls=False, timeouts=timeouts), run_seed=3, sink=sink)
        xo = await Runtime.create(ServerPair.from_topology(pair.topology),
                                  ClientSettings(verify_tls=False, timeouts=timeouts, xmpp_only=True,  # no CPA: limits set here
                                                 password_mechanism=SaslMechanism.PLAIN,
                                                 default_limits=ReloginLimits(lower_s=0.2, upper_s=0.8)),
                                  run_seed=3, sink=sink, registry=rt.registry)
        try:
            clients = [EmulatedClient(u, f"pass-{u}", homes[u], rt if i < 20 else xo) for i, u in enumerate(users)]
            states = await asyncio.wait_for(asyncio.gather(*(c.start() for c in clients)), 60)
            assert states == [ClientState.XMPPCONNECTED] * 24

            def on(node: str) -> int:
                return rt.registry.snapshot().connected_by_node.get(node, 0)

            actions.append({"ts": time.time(), "action": "failover", "node": N1})
            await pair.admin("POST", "/api/failover", {"node": N1})
            await wait_until(lambda: on(N2) == 24, 30, "every client on imp2")
            await pair.wait_for_states({N1: "Idle", N2: "Running in Backup Mode"}, timeout_s=10)
            actions.append({"ts": time.time(), "action": "fallback", "node": N1})
            await pair.admin("POST", "/api/fallback", {"node": N1})
            await wait_until(lambda: all(c.state is ClientState.XMPPCONNECTED and c.machine.node == homes[c.user_id]
                                         for c in clients), 30, "every client home")
            await asyncio.wait_for(asyncio.gather(*(c.stop(timeout_s=3) for c in clients)), 30)
        finally:
            await rt.aclose()
            await xo.aclose()
        metrics = await pair.admin("GET", "/api/metrics")
        (run_dir / "server_metrics.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in metrics["metrics"]), encoding="utf-8")
    run_info = {"run_id": "secrets", "started_ts": started_ts, "ended_ts": time.time(), "clients": 24,
                "lower_s": 0.2, "upper_s": 0.8, "server_login_rate": None, "actions": actions, "partial": False}
    (run_dir / "run.json").write_text(json.dumps(run_info), encoding="utf-8")
    build_report(run_dir)

    # what was captured
    node_stderr = capfd.readouterr().err
    log_text = "\n".join(
        [caplog.text]
        + [r.getMessage() for r in caplog.records]
        + [str(r.exc_text or "") for r in caplog.records]
    )
    files = {p.name: p.read_text(encoding="utf-8", errors="replace") for p in sorted(run_dir.iterdir()) if p.is_file()}
    assert {"client_events.jsonl", "server_events.jsonl", "summary.json", "report.html", "run.json"} <= set(files)

    # the DEBUG paths did run: stanzas (with the SASL <auth/> elements) logged by slixmpp, the
    # nodes' DEBUG lines on their stderr
    assert "SEND: " in log_text and "CISCO-VTG-TOKEN" in log_text and "mechanism=\"PLAIN\"" in log_text.replace("'", '"')
    assert f" DEBUG {N1} " in node_stderr and f" DEBUG {N2} " in node_stderr
    # one sign-in each of the 20 CPA clients, then a session login (new key, fresh OTP) for each of the
    # 10 homed on imp1, on failover and on fallback
    assert len(issued["otp"]) == len(issued["key"]) == 20 + 2 * 10

    secrets: dict[str, str] = {}
    for u in users:
        for f in forms(f"pass-{u}", user=u, domain=config.domain):
            secrets[f] = f"password of {u}"
    for kind, values in issued.items():
        for v in values:
            for f in forms(v, user="", domain=""):
                secrets[f] = kind
            for u in users:  # the CISCO-VTG-TOKEN payload names the user
                secrets[base64.b64encode(f"userid={u}@{config.domain}\0token={v}".encode()).decode()] = kind
    leaks = []
    for where, text in [("captured logs", log_text), ("node stderr", node_stderr), *files.items()]:
        for secret, what in secrets.items():
            if secret in text:
                i = text.index(secret)
                leaks.append(f"{what} in {where}: ...{text[max(0, i - 80):i + 40]!r}")
    assert not leaks, f"{len(leaks)} leaks, e.g.:\n" + "\n".join(leaks[:10])
