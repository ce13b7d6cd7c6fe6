"""The admin API on the real pair: 4xx JSON for bad requests (409 with the SRM's reason for an
action the state does not allow), the token beyond loopback, the Cisco tables, parameters, the
event log file, and ``python -m mock_server ha-status``."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestServer
from pair_support import N1, N2, cpa_url, fast_config, soap, started_pair

from mock_server.pair.admin_app import make_admin_app
from mock_server.pair.runner import AdminError, MockPair
from mock_server.pair.supervisor import Supervisor
from mock_server.pair_config import PairConfig
from mock_server.__main__ import format_ha_status
from mock_server.__main__ import main as cli_main

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def events_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("admin") / "events.jsonl"


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def pair(events_file: Path) -> AsyncIterator[MockPair]:
    async with started_pair(fast_config(users=10), events_out=str(events_file)) as p:
        yield p


async def raw(pair: MockPair, method: str, path: str, data: bytes | None = None,
              headers: dict[str, str] | None = None) -> tuple[int, str, Any]:
    async with aiohttp.ClientSession() as s:
        async with s.request(method, pair.admin_url + path, data=data, headers=headers) as resp:
            text = await resp.text()
            return resp.status, resp.content_type, json.loads(text) if resp.content_type == "application/json" else text


SVC = f"/api/nodes/{N1}/services"


@pytest.mark.parametrize(("method", "path", "body", "status", "message"), [
    ("POST", "/api/failover", b'{"node": "imp9.example.test"}', 400, "'node' must be one of"),
    ("POST", "/api/failover", b"{not json", 400, "body is not JSON"),
    ("POST", "/api/failover", b"[1, 2]", 400, "body must be a JSON object"),
    ("POST", "/api/failover", None, 400, "'node' must be one of"),
    ("POST", "/api/ha", b'{"enabled": "yes"}', 400, "'enabled' must be true or false"),
    ("POST", "/api/nodes/imp9.example.test/kill", None, 404, "unknown node 'imp9.example.test'"),
    ("POST", "/api/nodes/imp9.example.test/restart", None, 404, "unknown node"),
    ("POST", f"{SVC}/no-such-service/stop", None, 404, "unknown service 'no-such-service'"),
    ("POST", f"{SVC}/xcp-router/pause", None, 400, "action must be 'stop' or 'start'"),
    ("PUT", "/api/parameters", b'{"heartbeat_interval_s": -1}', 400, "heartbeat_interval_s"),
    ("PUT", "/api/parameters", b'{"no_such_parameter": 1}', 400, "no_such_parameter"),
    ("PUT", "/api/parameters", b"{}", 400, "give parameters"),
    ("GET", "/api/events?since=yesterday", None, 400, "'since' must be Unix seconds"),
    ("GET", "/api/no-such-route", None, 404, "Not Found"),
    ("DELETE", "/api/status", None, 405, "Method Not Allowed"),
    ("POST", "/api/fallback", b'{"node": "imp1.example.test"}', 409,
     "fallback is not allowed on imp1.example.test while Normal (Normal)"),
])
async def test_bad_requests_get_4xx_json_with_a_message(
    pair: MockPair, method: str, path: str, body: bytes | None, status: int, message: str
) -> None:
    got_status, content_type, data = await raw(pair, method, path, body, {"Content-Type": "application/json"})
    assert (got_status, content_type) == (status, "application/json"), data
    assert message in data["error"], data
    assert "Traceback" not in data["error"]
    after = await pair.admin("GET", "/api/status")
    assert [(n["state"], n["alive"]) for n in after["nodes"]] == [("Normal", True), ("Normal", True)]


async def test_illegal_action_in_this_state_is_409_with_the_srm_reason(pair: MockPair) -> None:
    await pair.admin("POST", "/api/failover", {"node": N1})
    await pair.wait_for_states({N1: "Idle", N2: "Running in Backup Mode"})
    with pytest.raises(AdminError) as err:
        await pair.admin("POST", "/api/failover", {"node": N2})
    assert err.value.status == 409
    assert err.value.body == {
        "error": f"failover is not allowed on {N2} while Running in Backup Mode (On Admin Request)"}
    with pytest.raises(AdminError) as err:
        await pair.admin("POST", "/api/fallback", {"node": N2})
    assert err.value.status == 409 and "Running in Backup Mode" in err.value.body["error"]
    # the tables follow the states (tkhaserverstate 2 = idle, 4 = backup)
    rows = (await pair.admin("GET", "/api/tables/enterprisenode"))["rows"]
    assert [(r["name"], r["tkhaserverstate"]) for r in rows] == [(N1, 2), (N2, 4)]
    await pair.admin("POST", "/api/fallback", {"node": N1})
    await pair.wait_for_states({N1: "Normal", N2: "Normal"})


async def test_tables_as_the_cisco_database_shows_them(pair: MockPair) -> None:
    nodes = (await pair.admin("GET", "/api/tables/enterprisenode"))["rows"]
    assert nodes == [
        {"id": 1, "subclusterid": 1, "name": N1, "isprimary": "t", "tkhaserverstate": 3},
        {"id": 2, "subclusterid": 1, "name": N2, "isprimary": "f", "tkhaserverstate": 3},
    ]
    sub = (await pair.admin("GET", "/api/tables/enterprisesubcluster"))["rows"]
    assert sub == [{"id": 1, "name": "DefaultCUPSubCluster", "description": "mock pair", "haenabled": "t"}]


async def ha_status_cli(url: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mock_server", "ha-status", "--admin-url", url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_ha_status_cli_prints_what_utils_ha_status_prints(pair: MockPair) -> None:
    code, out, err = await ha_status_cli(pair.admin_url)
    assert (code, err) == (0, "")
    assert out == (f"Subcluster Name: DefaultCUPSubCluster\n\nNode Name: {N1}\n  State: Normal\n  Reason: Normal\n\n"
                   f"Node Name: {N2}\n  State: Normal\n  Reason: Normal\n")
    await pair.admin("POST", "/api/ha", {"enabled": False})
    try:
        await pair.wait_for_states({N1: "Unknown", N2: "Unknown"})
        out = format_ha_status(await pair.admin("GET", "/api/status"))
        assert out.count("  State: Unknown\n  Reason: High Availability Not Enabled\n") == 2, out
        sub = (await pair.admin("GET", "/api/tables/enterprisesubcluster"))["rows"]
        assert sub[0]["haenabled"] == "f"
    finally:
        await pair.admin("POST", "/api/ha", {"enabled": True})
        await pair.wait_for_states({N1: "Normal", N2: "Normal"})


async def test_ha_status_cli_reports_an_unreachable_api(capsys: pytest.CaptureFixture[str]) -> None:
    code = await asyncio.to_thread(cli_main, ["ha-status", "--admin-url", "http://127.0.0.1:9"])  # nobody on 9
    out, err = capsys.readouterr()
    assert (code, out) == (1, "") and err.startswith("ha-status: cannot read http://127.0.0.1:9/api/status")


async def test_parameters_per_node_reach_the_cpa_limits(pair: MockPair) -> None:
    before = await pair.admin("GET", "/api/parameters")
    assert before[N1]["heartbeat_interval_s"] == 0.1 and before[N2]["relogin_lower_s"] == 1.0
    try:
        out = await pair.admin("PUT", "/api/parameters", {N2: {"relogin_lower_s": 3, "relogin_upper_s": 9.5}})
        assert (out[N1]["relogin_lower_s"], out[N2]["relogin_lower_s"], out[N2]["relogin_upper_s"]) == (1.0, 3.0, 9.5)
        async with aiohttp.ClientSession() as s:
            login = await soap(s, cpa_url(pair, N2), "login", user="user00002")
            config = await soap(s, cpa_url(pair, N2), "get-all-config", key=login.value)
        assert '"Presence.Relogin.LowerLimit">3<' in config.body and '"Presence.Relogin.UpperLimit">9.5<' in config.body
    finally:
        await pair.admin("PUT", "/api/parameters", {"relogin_lower_s": 1, "relogin_upper_s": 2})
    assert await pair.admin("GET", "/api/parameters") == before


async def test_events_are_written_as_jsonl_too(pair: MockPair, events_file: Path) -> None:
    api = (await pair.admin("GET", "/api/events"))["events"]
    lines = [json.loads(line) for line in events_file.read_text(encoding="utf-8").splitlines()]
    assert lines == api
    assert {e["kind"] for e in lines} >= {"process", "transition"}
    assert all(isinstance(e["ts"], float) and abs(e["ts"] - time.time()) < 600 for e in lines)


async def test_writes_need_the_token_beyond_loopback() -> None:
    with pytest.raises(ValueError, match="--admin-token"):
        make_admin_app(Supervisor(PairConfig(bind="192.0.2.10")))
    # an app configured for a non-loopback bind, served here on loopback (no node started)
    app = make_admin_app(Supervisor(PairConfig(bind="192.0.2.10")), admin_token="s3cret")
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as s:
            url = f"http://127.0.0.1:{server.port}"
            body = {"node": N1}
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
                async with s.post(url + "/api/failover", json=body, headers=headers) as resp:
                    assert resp.status == 401 and "Authorization: Bearer" in (await resp.json())["error"]
            async with s.post(url + "/api/failover", json=body, headers={"Authorization": "Bearer s3cret"}) as resp:
                assert resp.status == 409 and "not running" in (await resp.json())["error"]  # past the token check
            async with s.get(url + "/api/status") as resp:  # reads need no token
                assert resp.status == 200 and [n["alive"] for n in (await resp.json())["nodes"]] == [False, False]
    finally:
        await server.close()


async def test_cli_refuses_a_public_bind_without_a_token(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli_main(["--bind", "0.0.0.0", "--users", "2"])  # refused before anything is bound or run
    assert exit_.value.code == 2
    assert "--bind 0.0.0.0 is beyond loopback: give --admin-token" in capsys.readouterr().err
