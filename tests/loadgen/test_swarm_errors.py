"""Bad input ends a Locust run with one clear line and exit code 2; failed logins are counted, not lost."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

FAKE_TOPOLOGY = {
    "presence_domain": "example.test",
    "admin_url": "",
    "nodes": [
        {"name": "imp1.example.test", "cpa_url": "http://127.0.0.1:9/EPASSoap/service/v80", "xmpp_host": "127.0.0.1",
         "xmpp_port": 9},
        {"name": "imp2.example.test", "cpa_url": "http://127.0.0.1:9/EPASSoap/service/v80", "xmpp_host": "127.0.0.1",
         "xmpp_port": 9},
    ],
}

BASE = ("--headless", "-u", "1", "-r", "1", "-t", "30s")


@pytest.fixture
def fake_topology(tmp_path: Path) -> Path:
    path = tmp_path / "fake-topology.json"
    path.write_text(json.dumps(FAKE_TOPOLOGY), encoding="utf-8")
    return path


@pytest.mark.parametrize(("args", "message"), [
    (("--drill", "explode@5"), "jabberemu: error: drill item 'explode@5': unknown action 'explode'"),
    (("--drill", "failover:imp1.example.test@soon"), "'soon' is not a number of seconds"),
    (("--topology", "/nonexistent/topology.json"),
     "jabberemu: error: --topology /nonexistent/topology.json: No such file or directory"),
    ((), "jabberemu: error: no target: give --topology FILE"),
    (("--cpa-url", "http://a/c", "--xmpp-host", "a:5222,b:5222"),
     "jabberemu: error: --cpa-url needs one URL per --xmpp-host node"),
    (("--user-pattern", "user{x}"), "jabberemu: error: --user-pattern 'user{x}'"),
    (("--default-lower", "9", "--default-upper", "3"),
     "jabberemu: error: --default-upper (3 s) must be >= --default-lower (9 s)"),
])
def test_bad_option_is_one_clear_line(args: tuple[str, ...], message: str, fake_topology: Path,
                                      locust_run: Any) -> None:
    if "--topology" not in args and "--xmpp-host" not in args and args:
        args = ("--topology", str(fake_topology), *args)
    run = locust_run(*BASE, *args)
    assert run.wait(60) == 2
    err = run.err_text()
    assert message in err, err[-2000:]
    assert "Traceback" not in err, err[-2000:]


def test_users_csv_with_a_bad_row(tmp_path: Path, fake_topology: Path, locust_run: Any) -> None:
    users = tmp_path / "users.csv"
    users.write_text("user00001,pass-user00001\nuser00002,pass-user00002\nuser00003\n", encoding="utf-8")
    run = locust_run(*BASE, "--topology", str(fake_topology), "--users-csv", str(users))
    assert run.wait(60) == 2
    err = run.err_text()
    assert (f"jabberemu: error: --users-csv {users}, line 3: no password for user 'user00003' (a row holds user id, "
            "password[, display name[, home node]])") in err
    assert "Traceback" not in err


@pytest.mark.timeout(180)
def test_clients_that_cannot_log_in_end_in_a_named_state(tmp_path: Path, mock_pair: Any, locust_run: Any,
                                                         swarm_tools: Any) -> None:
    """Two good users, two wrong passwords: 4 users, 4 accounted for (a CSV shorter than -u is refused at
    start: tests/loadgen/test_swarm_input.py)."""
    pair = mock_pair(4, "active-standby")
    users = tmp_path / "users.csv"
    users.write_text("user id,password\nuser00001,pass-user00001\nuser00002,wrong\nuser00003,pass-user00003\n"
                     "user00004,wrong\n", encoding="utf-8")
    run = locust_run("--headless", "-u", "4", "-r", "4", "-t", "120s", "--topology", str(pair.topology),
                     "--users-csv", str(users), "--default-lower", "1", "--default-upper", "3")
    swarm_tools.wait_until(lambda: len(run.records("end")) >= 2 and len(run.records("connected")) >= 2, 90,
                           "2 clients signed in and 2 given up")
    assert run.terminate() == 143  # SIGTERM interrupted the run: 128 + 15
    ends = {r["client"]: (r["state"], r["reason"]) for r in run.records("end")}
    assert ends == {
        "user00001": ("LOGGED_OUT", "stop-requested"),
        "user00002": ("GAVE_UP", "bad-credentials"),
        "user00003": ("LOGGED_OUT", "stop-requested"),
        "user00004": ("GAVE_UP", "bad-credentials"),
    }
    stats = run.stats()
    login = stats[("client", "login")]
    assert (int(login["Request Count"]), int(login["Failure Count"])) == (4, 2)
    swarm_tools.assert_clean_shutdown(run.err_text())
