"""Input at the door, through Locust: bad input ends the run at start with one line and exit code 2;
the good users-CSV variants sign every user in against the real mock pair.

Each bad input runs ``locust -f locustfiles/jabber.py`` with a ``-t`` far longer than the test waits:
the run must end at start (``events.init``), not after ``-t``, with exactly one ``jabberemu: error:``
line, no traceback, and no client started.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import psutil
import pytest

NODES = ("imp1.example.test", "imp2.example.test")
FAKE_TOPOLOGY = {
    "presence_domain": "example.test",
    "admin_url": "",
    "nodes": [{"name": n, "cpa_url": "http://127.0.0.1:9/EPASSoap/service/v80", "xmpp_host": "127.0.0.1",
               "xmpp_port": 9} for n in NODES],
}
COLUMNS = "user id, password[, display name[, home node]]"

# (name, extra args, {file name: content}, the error line after "jabberemu: error: "); {dir} = the test's
# directory, where the files are written.
BAD_INPUTS: list[tuple[str, tuple[str, ...], dict[str, str | bytes], str]] = [
    ("u-negative", ("-u", "-5"), {}, "-u must be at least 1, not -5"),
    ("limits-swapped", ("--default-lower", "30", "--default-upper", "10"), {},
     "--default-upper (10 s) must be >= --default-lower (30 s)"),
    ("message-rate", ("--message-rate", "-1"), {}, "--message-rate must be >= 0 messages/s per client, not -1"),
    ("topology-list", ("--topology", "{dir}/list.json"), {"list.json": json.dumps([FAKE_TOPOLOGY])},
     '--topology {dir}/list.json: the file holds a list, not an object with "presence_domain" and "nodes"'),
    ("topology-not-json", ("--topology", "{dir}/t.json"), {"t.json": "nodes: imp1\n"},
     "--topology {dir}/t.json: not JSON (Expecting value at line 1, column 1)"),
    ("topology-no-nodes", ("--topology", "{dir}/t.json"), {"t.json": json.dumps({"presence_domain": "example.test"})},
     "--topology {dir}/t.json: no \"nodes\" (the pair's one or two nodes)"),
    ("topology-no-address", ("--topology", "{dir}/t.json"),
     {"t.json": json.dumps({**FAKE_TOPOLOGY, "nodes": [FAKE_TOPOLOGY["nodes"][0],  # type: ignore[index]
                                                       {"name": NODES[1], "cpa_url": "http://127.0.0.1:9/c"}]})},
     '--topology {dir}/t.json: node 2 (imp2.example.test) has no "xmpp_host" (its XMPP address)'),
    ("csv-duplicate", ("--users-csv", "{dir}/u.csv"), {"u.csv": "\ufeffuser id,password\nalice,pw\nbob,pw\nAlice,pw\n"},
     "--users-csv {dir}/u.csv, line 4: duplicate user id 'Alice', first on line 2 ('alice': user ids ignore case)"),
    ("csv-unknown-home", ("--users-csv", "{dir}/u.csv"), {"u.csv": "alice,pw,Alice,imp1.example.test\nbob,pw,Bob,imp3\n"},
     f"--users-csv {{dir}}/u.csv, line 2: unknown home node 'imp3' for user 'bob'; the pair's nodes are "
     f"{NODES[0]}, {NODES[1]}"),
    ("csv-no-password", ("--users-csv", "{dir}/u.csv"), {"u.csv": "alice,pw\nbob, \n"},
     f"--users-csv {{dir}}/u.csv, line 2: no password for user 'bob' (a row holds {COLUMNS})"),
    ("csv-too-short", ("-u", "3", "--users-csv", "{dir}/u.csv"), {"u.csv": "alice,pw\nbob,pw\n"},
     "--users-csv: 2 users in {dir}/u.csv, 3 asked for with -u"),
    ("source-address-not-ip", ("--source-addresses", "127.0.0.2,imp1.corp"), {},
     "--source-addresses: 'imp1.corp' is not an IP address"),
    ("soak-shorter-than-a-wave", ("--drill-every", "300"), {},
     "--drill-every (300 s) must give each wave its window: at least the upper limit + the recovery margin = 542 s"),
    ("soak-does-not-fit", ("--drill-every", "600", "-t", "1000s"), {},
     "--drill-every 600: no failover and fallback fit in -t 1000s after the ramp (1 s) with 542 s per wave; give "
     "-t at least 1743s"),
]


def test_a_run_dir_holding_a_run_is_refused_and_left_as_it_was(tmp_path: Path, locust_run: Any) -> None:
    """A second run's records would be appended to the first one's segments and judged with them."""
    (tmp_path / "fake-topology.json").write_text(json.dumps(FAKE_TOPOLOGY), encoding="utf-8")
    old = tmp_path / "old-run"
    old.mkdir()
    (old / "run.json").write_text('{"run_id": "old"}', encoding="utf-8")
    (old / "client_events.0001.jsonl.gz").write_bytes(b"old records")
    run = locust_run("--headless", "-u", "2", "-r", "2", "-t", "120s", "--topology", str(tmp_path / "fake-topology.json"),
                     "--run-dir", str(old), run_dir=False)
    assert run.wait(60) == 2
    err = run.err_text()
    errors = [x for x in err.splitlines() if x.startswith("jabberemu: error:")]
    assert errors == [f"jabberemu: error: --run-dir {old} already holds a run (client_events.0001.jsonl.gz, run.json): "
                      "a second run there would mix its records with that one's; give a new or empty directory"], err
    assert sorted(p.name for p in old.iterdir()) == ["client_events.0001.jsonl.gz", "run.json"]
    assert (old / "run.json").read_text(encoding="utf-8") == '{"run_id": "old"}'


def test_a_refused_run_leaves_no_forked_worker_behind(tmp_path: Path, locust_run: Any) -> None:
    """With --processes the workers pass their own checks; the master that refuses ends them (they waited
    for it until their heartbeat timed out, then joined the next run on the same port)."""
    (tmp_path / "fake-topology.json").write_text(json.dumps(FAKE_TOPOLOGY), encoding="utf-8")
    old = tmp_path / "old-run"
    old.mkdir()
    (old / "run.json").write_text("{}", encoding="utf-8")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    run = locust_run("--headless", "-u", "2", "-r", "2", "-t", "120s", "--topology", str(tmp_path / "fake-topology.json"),
                     "--run-dir", str(old), "--processes", "2", "--master-bind-host", "127.0.0.1",
                     "--master-bind-port", port, "--master-port", port, run_dir=False)
    assert run.wait(60) == 2
    assert "already holds a run (run.json)" in run.err_text()
    left = [p.pid for p in psutil.process_iter(["cmdline"]) if str(old) in " ".join(p.info["cmdline"] or ())]
    assert left == [], left


def test_a_run_dir_that_is_a_file_is_one_line(tmp_path: Path, locust_run: Any) -> None:
    (tmp_path / "fake-topology.json").write_text(json.dumps(FAKE_TOPOLOGY), encoding="utf-8")
    (tmp_path / "plain").write_text("x", encoding="utf-8")
    run = locust_run("--headless", "-u", "2", "-r", "2", "-t", "120s", "--topology", str(tmp_path / "fake-topology.json"),
                     "--run-dir", str(tmp_path / "plain"), run_dir=False)
    assert run.wait(60) == 2
    err = run.err_text()
    assert [x for x in err.splitlines() if x.startswith("jabberemu: error:")] == [
        f"jabberemu: error: --run-dir {tmp_path / 'plain'} is a file, not a directory"], err
    assert "Traceback" not in err, err


@pytest.mark.parametrize(("name", "args", "files", "line"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_ends_the_run_at_start_in_one_line(name: str, args: tuple[str, ...], files: dict[str, str | bytes],
                                                     line: str, tmp_path: Path, locust_run: Any) -> None:
    (tmp_path / "fake-topology.json").write_text(json.dumps(FAKE_TOPOLOGY), encoding="utf-8")
    for file_name, content in files.items():
        data = content.encode("utf-8") if isinstance(content, str) else content
        (tmp_path / file_name).write_bytes(data)
    argv = [a.replace("{dir}", str(tmp_path)) for a in args]
    if "--topology" not in argv:
        argv += ["--topology", str(tmp_path / "fake-topology.json")]
    if "-u" not in argv:
        argv += ["-u", "2"]
    if "-t" not in argv:
        argv += ["-t", "120s"]
    run = locust_run("--headless", "-r", "2", *argv)
    assert run.wait(60) == 2  # at start: not after -t
    err = run.err_text()
    errors = [x for x in err.splitlines() if x.startswith("jabberemu: error:")]
    assert errors == [f"jabberemu: error: {line.replace('{dir}', str(tmp_path))}"], err[-2000:]
    assert "Traceback" not in err, err[-2000:]
    assert run.records() == []  # no client started


def test_a_run_this_host_cannot_hold_is_refused_before_it_starts(tmp_path: Path, locust_run: Any) -> None:
    """The pre-flight check through Locust: 60,000 clients in one process outgrow this host's descriptors
    and, towards a pair off loopback, one source address's ephemeral ports towards one node; both said at
    start, in one line. Towards a loopback pair the swarm spreads them over 127.0.0.x itself: the
    descriptors alone are refused, and the spread is not announced for a run that does not start."""
    from jabberemu.preflight import host_limits, problems
    from jabberemu.xmpp.source import loopback_sources

    limits = host_limits()
    remote = {**FAKE_TOPOLOGY, "nodes": [{**n, "cpa_url": "http://192.0.2.1:9/EPASSoap/service/v80",
                                           "xmpp_host": "192.0.2.1"} for n in FAKE_TOPOLOGY["nodes"]]}
    spread = loopback_sources(60_000, ["127.0.0.1"], limits.ephemeral_ports)
    cases = [(remote, problems(clients=60_000, processes=1, source_addresses=1, limits=limits)),
             (FAKE_TOPOLOGY, problems(clients=60_000, processes=1, source_addresses=len(spread), limits=limits))]
    assert any(p.startswith("ephemeral ports:") for p in cases[0][1])  # 60,000 > any stock port range
    assert len(spread) > 2 and not [p for p in cases[1][1] if p.startswith("ephemeral ports:")]
    if not cases[1][1]:  # a host with descriptors for 60,000 (ulimit -Hn): that run would start
        cases.pop()
    for i, (topology, expected) in enumerate(cases):
        (tmp_path / f"topology-{i}.json").write_text(json.dumps(topology), encoding="utf-8")
        run = locust_run("--headless", "-r", "2", "-u", "60000", "-t", "120s",
                         "--topology", str(tmp_path / f"topology-{i}.json"))
        assert run.wait(60) == 2
        err = run.err_text()
        errors = [x for x in err.splitlines() if x.startswith("jabberemu: error:")]
        assert errors == ["jabberemu: error: this host cannot hold the run: " + "; ".join(expected)], err[-2000:]
        assert "Traceback" not in err and "loopback addresses" not in err, err[-2000:]
        assert run.records() == []


def _expect_all_signed_in(run: Any, users: list[str], swarm_tools: Any) -> None:
    assert run.wait(90) == 0, run.err_text()[-3000:]  # Locust's 0: no request failed
    connected = sorted({str(r["client"]) for r in run.records("connected")})
    assert connected == sorted(users)
    ends = {r["client"]: (r["state"], r["reason"]) for r in run.records("end")}
    assert ends == {u: ("LOGGED_OUT", "stop-requested") for u in users}
    assert run.count("not-served-here") == 0
    stats = run.stats()
    assert sum(int(r["Failure Count"]) for r in stats.values()) == 0, stats
    login = stats[("client", "login")]
    assert int(login["Request Count"]) == len(users)
    swarm_tools.assert_clean_shutdown(run.err_text())


@pytest.mark.timeout(180)
def test_excel_csv_without_home_column_signs_everyone_in_on_a_balanced_pair(
        tmp_path: Path, mock_pair: Any, locust_run: Any, swarm_tools: Any) -> None:
    """Excel's "CSV UTF-8" (BOM, CRLF), a header, values written as the README shows them
    (``user id, password``) and no home column, against a pattern-provisioned balanced pair: every row
    gets the home the pair gave it, so no login meets ``not-served-here``, and the run exits 0."""
    pair = mock_pair(6, "balanced")
    users = [f"user{n:05d}" for n in range(1, 7)]
    rows = ["User ID, Password"] + [f"{u}, pass-{u}" for u in users]
    csv_path = tmp_path / "users.csv"
    csv_path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(rows).encode("utf-8") + b"\r\n")
    run = locust_run("--headless", "-u", "6", "-r", "6", "-t", "12s", "--topology", str(pair.topology),
                     "--users-csv", str(csv_path), "--default-lower", "1", "--default-upper", "3")
    _expect_all_signed_in(run, users, swarm_tools)


@pytest.mark.timeout(180)
def test_quoted_csv_without_header_read_alike_by_the_pair_and_the_clients(
        tmp_path: Path, mock_pair: Any, locust_run: Any, swarm_tools: Any) -> None:
    """The mock pair and the clients read one file: quoted passwords with commas, quotes and spaces,
    spaces around unquoted values, no header, homes given in another case or not at all."""
    csv_path = tmp_path / "users.csv"
    csv_path.write_text(
        'alice,"p,w ""1""",Alice Liddell,IMP2.example.test\n'
        ' "bob",  " two spaces ", "Bob, Jr."\n'
        "  carol , pw3 , Carol ,\n"
        "dave,pw4,,imp1.example.test\n",
        encoding="utf-8")
    pair = mock_pair(0, "balanced", extra=("--users-csv", str(csv_path)))
    run = locust_run("--headless", "-u", "4", "-r", "4", "-t", "12s", "--topology", str(pair.topology),
                     "--users-csv", str(csv_path), "--default-lower", "1", "--default-upper", "3")
    _expect_all_signed_in(run, ["alice", "bob", "carol", "dave"], swarm_tools)
