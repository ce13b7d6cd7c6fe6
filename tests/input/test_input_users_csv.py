"""The shared users-CSV case files (tests/data/users_csv): both readers give the expected answer.

Each file's expected users (id, password, home node, in order) or refusal (line, problem) is in
``expected.json``; jabberemu's reader and the mock's must both match it word for word.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from input_cases import CASES_DIR, Outcome, client_reads, mock_reads

from jabberemu.errors import ConfigError
from jabberemu.loadgen.options import load_users_csv

EXPECTED = json.loads((CASES_DIR / "expected.json").read_text(encoding="utf-8"))
NODES = tuple(EXPECTED["nodes"])


def _expected(name: str) -> Outcome:
    case = EXPECTED["cases"][name]
    if "users" in case:
        return Outcome(users=tuple((u[0], u[1], u[2]) for u in case["users"]))
    line, problem = case["error"]
    return Outcome(line=line, problem=problem)


def test_every_case_file_has_an_expectation() -> None:
    files = {p.name for p in CASES_DIR.glob("*.csv")}
    assert files == set(EXPECTED["cases"])
    assert len(files) == 23


@pytest.mark.parametrize("name", sorted(EXPECTED["cases"]))
def test_client_reader_matches_the_case(name: str) -> None:
    assert client_reads(CASES_DIR / name, NODES) == _expected(name)


@pytest.mark.parametrize("name", sorted(EXPECTED["cases"]))
def test_mock_reader_matches_the_case(name: str) -> None:
    assert mock_reads(CASES_DIR / name, NODES) == _expected(name)


def test_active_standby_homes_rows_without_one_on_node_1() -> None:
    path = CASES_DIR / "no_header.csv"
    want = Outcome(users=(("alice", "pw1", NODES[0]), ("bob", "pw2", NODES[0]), ("carol", "pw3", NODES[0])))
    assert client_reads(path, NODES, "active-standby") == want
    assert mock_reads(path, NODES, "active-standby") == want


def test_a_file_shorter_than_u_is_refused_in_users(tmp_path: Path) -> None:
    path = CASES_DIR / "no_header.csv"
    with pytest.raises(ConfigError) as info:
        load_users_csv(str(path), NODES, wanted=4)
    assert str(info.value) == f"--users-csv: 3 users in {path}, 4 asked for with -u"
    with pytest.raises(ConfigError) as info:
        load_users_csv(str(path), NODES, wanted=2, offset=2)
    assert str(info.value) == f"--users-csv: 3 users in {path}, 2 asked for with -u after the 2 skipped with --user-offset"
    assert len(load_users_csv(str(path), NODES, wanted=3)) == 3
    assert len(load_users_csv(str(path), NODES, wanted=1, offset=2)) == 3
    one = tmp_path / "one.csv"
    one.write_text("alice,pw\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^--users-csv: 1 user in .*one.csv, 2 asked for with -u$"):
        load_users_csv(str(one), NODES, wanted=2)


def test_without_nodes_homes_stay_as_written() -> None:
    """Before the target is known (no nodes) the reader neither checks nor assigns homes."""
    specs = load_users_csv(str(CASES_DIR / "readme_spaces.csv"))
    assert [(s.user_id, s.password, s.home) for s in specs] == [
        ("user00001", "pass-user00001", "imp2.example.test"), ("user00002", "pass-user00002", None)]
    assert "pass-user00001" not in repr(specs[0])


def test_unreadable_file_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "missing.csv"
    with pytest.raises(ConfigError) as info:
        load_users_csv(str(missing), NODES)
    assert str(info.value) == f"--users-csv {missing}: No such file or directory"
    assert mock_reads(missing, NODES) == Outcome(problem="cannot read user CSV: No such file or directory")
