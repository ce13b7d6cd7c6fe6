"""``jabberemu drill --topology FILE``: a file that is no mock pair's topology is refused before anything
starts (no run directory), in one line naming the file and what is missing, exit status 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_support import jabberemu

from jabberemu import cli

NODE1 = {"name": "imp1.example.test", "cpa_url": "http://127.0.0.1:2/EPASSoap/service/v80",
         "xmpp_host": "127.0.0.1", "xmpp_port": 3}
NODE2 = {**NODE1, "name": "imp2.example.test", "xmpp_port": 5}
GOOD = {"presence_domain": "example.test", "admin_url": "http://127.0.0.1:1", "nodes": [NODE1, NODE2]}

CASES: list[tuple[str, str, str]] = [
    ("not-json", "imp1.example.test,imp2.example.test\n", "not JSON (Expecting value at line 1, column 1)"),
    ("list", json.dumps([GOOD]), 'the file holds a list, not an object with "presence_domain" and "nodes"'),
    ("no-nodes", json.dumps({"presence_domain": "example.test", "admin_url": "http://127.0.0.1:1"}),
     "no \"nodes\" (the pair's one or two nodes)"),
    ("no-address", json.dumps({**GOOD, "nodes": [NODE1, {"name": "imp2.example.test"}]}),
     'node 2 (imp2.example.test) has no "xmpp_host" (its XMPP address)'),
    ("one-node", json.dumps({**GOOD, "nodes": [NODE1]}),
     "the drill fails node 1 over to node 2, but the file has one node"),
    ("no-admin", json.dumps({k: v for k, v in GOOD.items() if k != "admin_url"}),
     "no \"admin_url\" (the drill injects its fault through the mock's admin API)"),
]


@pytest.mark.parametrize(("name", "content", "problem"), CASES, ids=[c[0] for c in CASES])
def test_drill_refuses_a_broken_topology(name: str, content: str, problem: str, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "topology.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(SystemExit) as exc:
        cli.main(["drill", "--topology", str(path), "--out", str(tmp_path / "out")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == f"jabberemu drill: error: --topology {path}: {problem}"
    assert not (tmp_path / "out").exists()


def test_drill_with_a_list_topology_prints_no_traceback(tmp_path: Path) -> None:
    path = tmp_path / "topology.json"
    path.write_text("[]", encoding="utf-8")
    res = jabberemu("drill", "--topology", str(path), "--out", str(tmp_path / "out"))
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert res.stderr.splitlines()[-1] == (f"jabberemu drill: error: --topology {path}: the file holds a list, "
                                           'not an object with "presence_domain" and "nodes"')
