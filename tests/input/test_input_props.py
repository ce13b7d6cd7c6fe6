"""Property tests of input at the door: generated users CSVs and topology files.

For every generated file the answer is either a clean one-line refusal (``ConfigError`` naming the
file, and the line when a row is at fault; no other exception escapes) or every row accounted for
(the users equal the rows, in order, with the home each is given or assigned). jabberemu's reader and
the mock's agree on every file: same users and homes, or the same refused line and problem.

Pure: the readers on files in a temporary directory, no processes. Fixed seed (``derandomize``), no
example database.
"""

from __future__ import annotations

import json
import string
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from input_cases import Outcome, client_reads, mock_reads

from jabberemu.errors import ConfigError
from jabberemu.loadgen.options import load_topology

NODES = ("imp1.example.test", "imp2.example.test")
SETTINGS = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("input-props")


# -- users CSV: a model of the rows and how they are written -------------------------------------------

ID_CHARS = string.ascii_letters + string.digits + "._-+é"
HEADER_WORDS = {"user", "userid", "username", "password", "pass", "passwd", "pwd"}
# passwords and display names: anything XML carries except CR (a line break of its own for csv)
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",),
                             exclude_characters="\r\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c\x0e\x0f"
                             "\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f\ufffe\uffff"),
               max_size=8)
FAULTS = ("duplicate", "no-password", "no-id", "unknown-home", "bad-id", "five-values", "xml-char",
          "unclosed-quote", "after-quote")


@dataclass
class Row:
    user_id: str
    password: str
    display: str
    home: str  # "" = none: the pair assigns one


@dataclass
class Written:
    text: str
    rows: list[Row]
    fault: str | None
    fault_line: int | None


def _norm(value: str) -> str:
    return "".join(c for c in value if not (c.isspace() or c in "_-")).lower()


@st.composite
def rows(draw: st.DrawFn) -> list[Row]:
    n = draw(st.integers(1, 7))
    ids = draw(st.lists(st.text(ID_CHARS, min_size=1, max_size=8), min_size=n, max_size=n,
                        unique_by=str.casefold))
    out = []
    for user_id in ids:
        password = draw(TEXT.filter(bool))
        display = draw(st.one_of(st.just(""), TEXT))
        home = draw(st.sampled_from(["", "", *NODES, *(n.upper() for n in NODES), NODES[1].title()]))
        out.append(Row(user_id, password, display, home))
    assume(not (_norm(out[0].user_id) in HEADER_WORDS and _norm(out[0].password) in HEADER_WORDS))
    return out


def _value(draw: st.DrawFn, value: str) -> str:
    """``value`` written so that it reads back as itself: quoted when it must be, else maybe quoted,
    maybe with white space around."""
    must_quote = value != value.strip() or any(c in value for c in ',"\n')
    if must_quote or draw(st.booleans()):
        return draw(st.sampled_from(["", " ", "  "])) + '"' + value.replace('"', '""') + '"'
    return draw(st.sampled_from(["", " ", "\t", "  "])) + value + draw(st.sampled_from(["", " ", "\t "]))


def _record(draw: st.DrawFn, row: Row) -> str:
    values = [row.user_id, row.password, row.display, row.home]
    keep = 4 if row.home else (3 if row.display else draw(st.sampled_from([2, 3, 4])))
    cells = [_value(draw, v) for v in values[:keep]]
    if keep == 4 and draw(st.booleans()):
        cells += [""] * draw(st.integers(1, 2))  # a spreadsheet's empty columns
    return ",".join(cells)


@st.composite
def users_csv(draw: st.DrawFn) -> Written:
    data = draw(rows())
    fault = draw(st.one_of(st.none(), st.sampled_from(FAULTS)))
    at = draw(st.integers(0, len(data) - 1))
    if fault == "duplicate":
        assume(at > 0)
        other = data[draw(st.integers(0, at - 1))].user_id
        data[at].user_id = draw(st.sampled_from([other, other.upper(), other.lower()]))
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    lines: list[str] = []
    if draw(st.booleans()):
        lines.append(draw(st.sampled_from(["# exported users", ""])))
    if draw(st.booleans()):
        lines.append(draw(st.sampled_from(["user id,password", "User ID, Password, Display Name, Home Node",
                                           '"user_id","pwd"', "USERNAME , PASSWD ,,"])))
    fault_line = None
    for i, row in enumerate(data):
        if draw(st.integers(0, 4)) == 0:
            lines.append(draw(st.sampled_from(["", ",,,", "   ", "# a comment", " #x, y"])))
        record = _record(draw, row)
        if i == at and fault is not None:
            fault_line = sum(line.count("\n") + 1 for line in lines) + 1
            record = {
                "duplicate": record,
                "no-password": _value(draw, row.user_id) + draw(st.sampled_from(["", ",", ", ", ',""'])),
                "no-id": draw(st.sampled_from(["", " ", '""'])) + "," + _value(draw, "pw"),
                "unknown-home": ",".join([_value(draw, row.user_id), _value(draw, "pw"), "", "imp9.example.test"]),
                "bad-id": '"' + row.user_id + draw(st.sampled_from([" x", "@x", "/x", ":x"])) + '",pw',
                "five-values": _value(draw, row.user_id) + ",pw,D,imp1.example.test,extra",
                "xml-char": _value(draw, row.user_id) + ",p\x01w",
                "unclosed-quote": _value(draw, row.user_id) + ',"pw',
                "after-quote": _value(draw, row.user_id) + ',"pw" x',
            }[fault]
            if fault == "unclosed-quote":
                lines.append(record)
                break  # the rest of the file is inside the quote
        lines.append(record)
    text = eol.join(lines) + draw(st.sampled_from([eol, ""]))
    if draw(st.booleans()):
        text = "\ufeff" + text
    return Written(text=text, rows=data, fault=fault, fault_line=fault_line)


def _assigned(rows: list[Row], assignment: str) -> tuple[tuple[str, str, str], ...]:
    out = []
    for i, row in enumerate(rows):
        home = next((n for n in NODES if n.casefold() == row.home.casefold()), None) if row.home else None
        if home is None:
            home = NODES[0] if assignment == "active-standby" else NODES[i % 2]
        out.append((row.user_id, row.password, home))
    return tuple(out)


PROBLEM_START = {
    "duplicate": "duplicate user id ", "no-password": "no password for user ", "no-id": "no user id",
    "unknown-home": "unknown home node 'imp9.example.test'", "bad-id": "user id ", "five-values": "5 values",
    "xml-char": "the password of user ", "unclosed-quote": "a quote opened here is never closed",
    "after-quote": "text after a closing quote",
}


@SETTINGS
@given(written=users_csv(), assignment=st.sampled_from(["balanced", "active-standby"]),
       wanted=st.integers(1, 9), offset=st.integers(0, 2))
def test_users_csv_is_refused_in_one_line_or_read_row_for_row(workdir: Path, written: Written, assignment: str,
                                                              wanted: int, offset: int) -> None:
    path = workdir / "users.csv"
    path.write_bytes(written.text.encode("utf-8"))
    client = client_reads(path, NODES, assignment)
    mock = mock_reads(path, NODES, assignment)
    event(f"fault={written.fault} users={client.users is not None}")
    assert client == mock  # the two readers agree: same users and homes, or the same line and problem
    if written.fault is None:
        assert client == Outcome(users=_assigned(written.rows, assignment)), written.text
        counted = client_reads(path, NODES, assignment, wanted=wanted, offset=offset)
        if offset + wanted > len(written.rows):
            n = len(written.rows)
            assert counted.problem is not None and counted.problem.startswith(
                f"--users-csv: {n} user{'' if n == 1 else 's'} in {path}, {wanted} asked for with -u")
        else:
            assert counted == client
    else:
        assert client.users is None and client.line == written.fault_line, (written.fault, written.text, client)
        assert client.problem is not None and client.problem.startswith(PROBLEM_START[written.fault]), client


@SETTINGS
@given(data=st.binary(max_size=200) | st.text(",\"' \t\n\r#@abcUSERidpw\ufeffé\x00\x01", max_size=120).map(
    lambda t: t.encode("utf-8")))
def test_any_bytes_are_refused_in_one_line_or_read_by_both_alike(workdir: Path, data: bytes) -> None:
    path = workdir / "fuzz.csv"
    path.write_bytes(data)
    client = client_reads(path, NODES)
    assert client == mock_reads(path, NODES)
    if client.users is not None:
        assert client.users and len({u[0].casefold() for u in client.users}) == len(client.users)
        assert all(u[1] and u[2] in NODES for u in client.users)


# -- topology files ---------------------------------------------------------------------------------------

NODE = st.fixed_dictionaries({
    "name": st.sampled_from(["imp1.example.test", "imp2.example.test", "cups-a"]),
    "cpa_url": st.sampled_from(["http://127.0.0.1:8080/EPASSoap/service/v80", "https://imp:8443/x", None]),
    "xmpp_host": st.sampled_from(["127.0.0.1", "imp1.corp", "::1"]),
    "xmpp_port": st.integers(1, 65535),
})
TOPOLOGY = st.fixed_dictionaries({
    "presence_domain": st.sampled_from(["example.test", "corp.example"]),
    "admin_url": st.sampled_from(["http://127.0.0.1:9000", "", None]),
    "nodes": st.lists(NODE, min_size=1, max_size=2, unique_by=lambda n: n["name"]),
})
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                    max_leaves=8)


def _breakages(topo: dict[str, object]) -> Iterator[tuple[str, object]]:
    """(what is broken, the broken document) for a valid topology."""
    nodes = topo["nodes"]
    assert isinstance(nodes, list)
    yield "list", [topo]
    yield "no-nodes", {k: v for k, v in topo.items() if k != "nodes"}
    yield "nodes-object", {**topo, "nodes": {"a": nodes[0]}}
    yield "nodes-empty", {**topo, "nodes": []}
    yield "three-nodes", {**topo, "nodes": [*nodes, *nodes, *nodes][:3]}
    yield "no-domain", {k: v for k, v in topo.items() if k != "presence_domain"}
    for key in ("name", "xmpp_host", "xmpp_port"):
        yield f"node-without-{key}", {**topo, "nodes": [{k: v for k, v in nodes[0].items() if k != key}, *nodes[1:]]}
    yield "port-text", {**topo, "nodes": [{**nodes[0], "xmpp_port": "x5222"}, *nodes[1:]]}
    yield "port-range", {**topo, "nodes": [{**nodes[0], "xmpp_port": 70000}, *nodes[1:]]}
    yield "cpa-ftp", {**topo, "nodes": [{**nodes[0], "cpa_url": "ftp://x"}, *nodes[1:]]}
    yield "node-string", {**topo, "nodes": ["imp1"]}
    yield "admin-url", {**topo, "admin_url": 5}


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(topo=TOPOLOGY)
def test_topology_is_read_node_for_node_or_refused_naming_what_is_missing(workdir: Path,
                                                                           topo: dict[str, object]) -> None:
    path = workdir / "topology.json"
    path.write_text(json.dumps(topo), encoding="utf-8")
    pair, admin_url = load_topology(str(path))
    nodes = topo["nodes"]
    assert isinstance(nodes, list)
    assert [(n.name, n.cpa_url, n.xmpp_host, n.xmpp_port) for n in pair.nodes] == [
        (n["name"], n["cpa_url"], n["xmpp_host"], n["xmpp_port"]) for n in nodes]
    assert pair.domain == topo["presence_domain"] and admin_url == (topo["admin_url"] or "")
    for what, broken in _breakages(topo):
        path.write_text(json.dumps(broken), encoding="utf-8")
        with pytest.raises(ConfigError) as info:
            load_topology(str(path))
        text = str(info.value)
        assert text.startswith(f"--topology {path}: ") and "\n" not in text, (what, text)
    text = json.dumps(topo)
    path.write_text(text[: len(text) // 2], encoding="utf-8")  # cut short: not JSON
    with pytest.raises(ConfigError, match=r"^--topology .*: not JSON \(.* at line 1, column \d+\)$"):
        load_topology(str(path))


@SETTINGS
@given(doc=JSON | TOPOLOGY.flatmap(lambda t: st.sampled_from([b for _, b in _breakages(t)])))
def test_any_json_is_a_pair_or_one_clean_line(workdir: Path, doc: object) -> None:
    path = workdir / "any.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    try:
        pair, _ = load_topology(str(path))
    except ConfigError as exc:
        assert str(exc).startswith(f"--topology {path}: ") and "\n" not in str(exc)
    else:
        assert isinstance(doc, dict) and len(pair.nodes) == len(doc["nodes"])


@SETTINGS
@given(data=st.binary(max_size=100))
def test_any_bytes_as_topology_are_refused_in_one_line(workdir: Path, data: bytes) -> None:
    path = workdir / "bytes.json"
    path.write_bytes(data)
    try:
        load_topology(str(path))
    except ConfigError as exc:
        assert str(exc).startswith(f"--topology {path}: ") and "\n" not in str(exc)
