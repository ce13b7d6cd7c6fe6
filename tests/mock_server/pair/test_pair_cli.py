"""``python -m mock_server --users 10 --topology-out F``: the topology document once every listener
is up (file and stdout), a working pair behind it, and a clean stop on SIGINT or SIGTERM that leaves
no node process behind; even a SIGKILL of the supervisor leaves none for long."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

START_TIMEOUT_S = 30.0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["SIGINT", "SIGTERM", "SIGKILL"])
def test_cli_writes_topology_and_stops_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    out = tmp_path / "topology.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mock_server", "--users", "10", "--topology-out", str(out), "--log-level", "WARNING",
         "--param", "heartbeat_interval_s=0.1", "--param", "init_heartbeat_timeout_s=1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not out.exists() or not out.read_text(encoding="utf-8").endswith("\n"):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "no topology file in time"
            time.sleep(0.05)
        topology = json.loads(out.read_text(encoding="utf-8"))
        assert topology["presence_domain"] == "example.test"
        assert topology["admin_url"].startswith("http://127.0.0.1:")
        names = [n["name"] for n in topology["nodes"]]
        assert names == ["imp1.example.test", "imp2.example.test"]
        for node in topology["nodes"]:
            assert node["cpa_url"].startswith("http://127.0.0.1:") and node["cpa_url"].endswith("/EPASSoap/service/v80")
            assert node["wsdl_url"] == node["cpa_url"] + "?wsdl"
            assert node["xmpp_host"] == "127.0.0.1" and 0 < node["xmpp_port"] < 65536
            with urllib.request.urlopen(node["wsdl_url"], timeout=10) as resp:  # a listener is up behind it
                assert b"urn:cisco:epas:soap" in resp.read()
        with urllib.request.urlopen(topology["admin_url"] + "/api/status", timeout=10) as resp:
            status = json.load(resp)
        assert [n["assigned_users"] for n in status["nodes"]] == [5, 5]
        # written only once the SRM left Initializing: clients reading it find their users served
        assert [n["state"] for n in status["nodes"]] == ["Normal", "Normal"]
        with urllib.request.urlopen(topology["admin_url"] + "/api/events", timeout=10) as resp:
            started = [e["pid"] for e in json.load(resp)["events"] if e.get("action") == "started"]
        children = psutil.Process(proc.pid).children(recursive=True)  # the zygote and the two nodes
        assert len(started) == 2 and set(started) <= {c.pid for c in children}, [c.cmdline() for c in children]

        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if sig == signal.SIGKILL:  # no clean-up code ran: the nodes and the zygote see their input end
        assert proc.returncode == -signal.SIGKILL
    else:
        assert proc.returncode == 0, stderr.decode()
        assert json.loads(stdout) == topology  # the same document on stdout
        assert b"Traceback" not in stderr and b"Exception" not in stderr, stderr.decode()
    deadline = time.monotonic() + 5  # every descendant is gone, none left as an orphan
    while any(c.is_running() for c in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [c for c in children if c.is_running()] == []


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("alice,pw,Alice,nowhere\n", "bad.csv:1: unknown home node 'nowhere' for user 'alice'"),
        ("alice,pw\nalice,pw2\n", "bad.csv:2: "),
        (None, "bad.csv: cannot read user CSV: No such file or directory"),
    ],
)
def test_a_bad_users_csv_is_one_line_before_any_node_starts(tmp_path: Path, content: str | None, words: str) -> None:
    """The mock's ``--users-csv`` is read before the pair starts: a bad file is a usage error
    (exit 2, one line naming file and line), not a node that dies at start-up with a traceback."""
    path = tmp_path / "bad.csv"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "mock_server", "--users-csv", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("python -m mock_server: error: ") and words in last, proc.stderr
