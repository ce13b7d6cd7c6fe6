"""Topology files: each broken shape refused in one line naming the file and what is missing."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from jabberemu.errors import ConfigError
from jabberemu.loadgen.options import load_topology, target_from_options

NODE1 = {"name": "imp1.example.test", "cpa_url": "http://127.0.0.1:2/EPASSoap/service/v80",
         "xmpp_host": "127.0.0.1", "xmpp_port": 3}
NODE2 = {"name": "imp2.example.test", "cpa_url": "http://127.0.0.1:4/EPASSoap/service/v80",
         "xmpp_host": "127.0.0.1", "xmpp_port": 5}
GOOD = {"presence_domain": "example.test", "admin_url": "http://127.0.0.1:1", "nodes": [NODE1, NODE2]}


def _without(d: dict[str, object], key: str) -> dict[str, object]:
    return {k: v for k, v in d.items() if k != key}


CASES: list[tuple[str, object, str]] = [
    ("list", [GOOD], 'the file holds a list, not an object with "presence_domain" and "nodes"'),
    ("string", "imp1", 'the file holds a string, not an object with "presence_domain" and "nodes"'),
    ("no-nodes", _without(GOOD, "nodes"), "no \"nodes\" (the pair's one or two nodes)"),
    ("nodes-object", {**GOOD, "nodes": NODE1}, '"nodes" is an object, not a list of one or two nodes'),
    ("no-node", {**GOOD, "nodes": []}, '"nodes" holds 0 nodes; a pair has one or two'),
    ("three", {**GOOD, "nodes": [NODE1, NODE2, NODE2]}, '"nodes" holds 3 nodes; a pair has one or two'),
    ("node-list", {**GOOD, "nodes": [NODE1, ["imp2"]]}, "node 2 is a list, not an object"),
    ("no-name", {**GOOD, "nodes": [NODE1, _without(NODE2, "name")]}, 'node 2 has no "name"'),
    ("no-host", {**GOOD, "nodes": [_without(NODE1, "xmpp_host"), NODE2]},
     'node 1 (imp1.example.test) has no "xmpp_host" (its XMPP address)'),
    ("no-port", {**GOOD, "nodes": [NODE1, _without(NODE2, "xmpp_port")]},
     'node 2 (imp2.example.test) has no "xmpp_port" (its XMPP address)'),
    ("bad-port", {**GOOD, "nodes": [NODE1, {**NODE2, "xmpp_port": 0}]},
     'node 2 (imp2.example.test): "xmpp_port" must be a port number 1 to 65535, not 0'),
    ("float-port", {**GOOD, "nodes": [NODE1, {**NODE2, "xmpp_port": 5222.5}]},
     'node 2 (imp2.example.test): "xmpp_port" must be a port number 1 to 65535, not 5222.5'),
    ("bad-cpa", {**GOOD, "nodes": [{**NODE1, "cpa_url": "imp1:8443"}, NODE2]},
     "node 1 (imp1.example.test): \"cpa_url\" must be an http(s):// URL, not 'imp1:8443'"),
    ("same-names", {**GOOD, "nodes": [NODE1, {**NODE2, "name": NODE1["name"]}]},
     "both nodes are named 'imp1.example.test'"),
    ("no-domain", _without(GOOD, "presence_domain"), 'no "presence_domain"'),
    ("bad-admin", {**GOOD, "admin_url": "127.0.0.1:1"}, "\"admin_url\" must be an http(s):// URL, not '127.0.0.1:1'"),
]


@pytest.mark.parametrize(("name", "doc", "problem"), CASES, ids=[c[0] for c in CASES])
def test_broken_topology_is_one_line(tmp_path: Path, name: str, doc: object, problem: str) -> None:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_topology(str(path))
    assert str(info.value) == f"--topology {path}: {problem}"


@pytest.mark.parametrize(("content", "problem"), [
    (b"", "the file is empty (write it with 'jabberemu mock --topology-out FILE')"),
    (b"presence_domain: example.test\n", "not JSON (Expecting value at line 1, column 1)"),
    (b'{"nodes": [', "not JSON (Expecting value at line 1, column 12)"),
    (b"\xff\xfe{}", "not UTF-8 text (byte 0xff at offset 0)"),
])
def test_unreadable_topology_is_one_line(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "topology.json"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as info:
        load_topology(str(path))
    assert str(info.value) == f"--topology {path}: {problem}"


def test_good_topology_with_a_bom(tmp_path: Path) -> None:
    path = tmp_path / "topology.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(GOOD).encode())
    pair, admin_url = load_topology(str(path))
    assert [(n.name, n.xmpp_port) for n in pair.nodes] == [("imp1.example.test", 3), ("imp2.example.test", 5)]
    assert (pair.domain, admin_url) == ("example.test", "http://127.0.0.1:1")


def _opts(**kw: object) -> SimpleNamespace:
    base = dict(topology="", cpa_url="", xmpp_host="", node_names="", domain="", xmpp_only=False)
    return SimpleNamespace(**{**base, **kw})


def test_target_needs_a_cpa_url_per_node_unless_xmpp_only(tmp_path: Path) -> None:
    path = tmp_path / "topology.json"
    path.write_text(json.dumps({**GOOD, "nodes": [NODE1, _without(NODE2, "cpa_url")]}), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        target_from_options(_opts(topology=str(path)))
    assert str(info.value) == (f'--topology {path}: node 2 (imp2.example.test) has no "cpa_url" '
                               "(needed unless --xmpp-only)")
    assert target_from_options(_opts(topology=str(path), xmpp_only=True)).pair.nodes[1].cpa_url is None


@pytest.mark.parametrize(("kw", "message"), [
    (dict(topology="t.json", xmpp_host="a:5222"),
     "give --topology FILE (the bundled mock) or --xmpp-host/--cpa-url (a real pair), not both"),
    (dict(xmpp_host="a,b,c", xmpp_only=True), "--xmpp-host gives 3 nodes; a pair has one or two"),
    (dict(xmpp_host="a:70000", xmpp_only=True), "--xmpp-host 'a:70000': port must be 1 to 65535, not 70000"),
    (dict(xmpp_host=":5222", xmpp_only=True), "--xmpp-host ':5222': no host before the port"),
    (dict(xmpp_host="a,b", cpa_url="http://a/c,imp2:8443"), "--cpa-url 'imp2:8443' is not an http(s):// URL"),
    (dict(xmpp_host="a", node_names="n1,n2", xmpp_only=True), "--node-names gives 2 names for 1 --xmpp-host node(s)"),
    (dict(xmpp_host="a:5222,a:5223", xmpp_only=True), "both nodes are named 'a': give --node-names"),
])
def test_real_pair_options_in_their_own_names(kw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        target_from_options(_opts(**kw))
    assert str(info.value) == message
