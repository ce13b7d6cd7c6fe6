"""User provisioning, assignment modes, roster contacts and the CSV loader."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mock_server.users import AssignmentMode, User, UserDataError, load_csv, provision

NODES = ["imp1.example.test", "imp2.example.test"]


def test_provision_ids_passwords_and_balanced_homes() -> None:
    users = provision(5, NODES, seed=1)
    assert [u.user_id for u in users] == [f"user0000{i}" for i in range(1, 6)]
    assert [u.home_node for u in users] == [NODES[0], NODES[1], NODES[0], NODES[1], NODES[0]]
    assert users.get("user00003") is not None and users.get("user00003").password == "pass-user00003"  # type: ignore[union-attr]
    assert users.check_password("user00002", "pass-user00002")
    assert not users.check_password("user00002", "pass-user00001")
    assert not users.check_password("nobody", "pass-nobody")
    assert [u.user_id for u in users.users_on(NODES[1])] == ["user00002", "user00004"]
    assert "pass-" not in repr(users.get("user00001"))


def test_active_standby_and_password_pattern() -> None:
    users = provision(4, NODES, seed=1, password_pattern="{user}!x", mode=AssignmentMode.ACTIVE_STANDBY)
    assert {u.home_node for u in users} == {NODES[0]}
    assert users.check_password("user00004", "user00004!x")
    with pytest.raises(UserDataError):
        provision(1, NODES, password_pattern="{nope}")


def test_display_names_are_seeded() -> None:
    names = [u.display_name for u in provision(20, NODES, seed=42)]
    assert names == [u.display_name for u in provision(20, NODES, seed=42)]
    assert names != [u.display_name for u in provision(20, NODES, seed=43)]
    assert all(len(n.split(" ")) >= 2 for n in names)
    assert len(set(names)) > 15


def test_contacts_are_symmetric_deterministic_and_exclude_self() -> None:
    users = provision(101, NODES, seed=5, contacts=5)
    degrees = set()
    for user in users:
        contacts = users.contacts_of(user.user_id)
        assert user.user_id not in contacts
        assert len(set(contacts)) == len(contacts)
        degrees.add(len(contacts))
        for other in contacts:
            assert user.user_id in users.contacts_of(other)
    assert degrees == {4}  # 101 users and 5 contacts are both odd: one fewer
    even = provision(100, NODES, seed=5, contacts=5)
    assert {len(even.contacts_of(u.user_id)) for u in even} == {5}
    assert even.contacts_of("user00001") == provision(100, NODES, seed=5).contacts_of("user00001")
    assert even.contacts_of("user00001") != provision(100, NODES, seed=6).contacts_of("user00001")


@pytest.mark.parametrize(("n", "k", "expected"), [(0, 5, None), (1, 5, 0), (2, 5, 1), (3, 5, 2), (6, 0, 0)])
def test_contacts_on_tiny_groups(n: int, k: int, expected: int | None) -> None:
    users = provision(n, NODES, seed=1, contacts=k)
    assert len(users) == n
    assert {len(users.contacts_of(u.user_id)) for u in users} == (set() if expected is None else {expected})


def test_twenty_five_thousand_users_are_cheap() -> None:
    start = time.perf_counter()
    users = provision(25_000, NODES, seed=9)
    elapsed_s = time.perf_counter() - start
    assert len(users) == 25_000
    assert users.get("user25000") is not None
    assert len(users.users_on(NODES[0])) == 12_500
    assert elapsed_s < 5.0, f"provisioning 25,000 users took {elapsed_s:.2f} s"


def test_load_csv(tmp_path: Path) -> None:
    path = tmp_path / "users.csv"
    path.write_text(
        "user_id,password,display_name,home_node\n"
        "# a comment\n"
        "alice,pw-a,Alice Liddell,imp2.example.test\n"
        "\n"
        "bob,pw-b\n"
        "carol,pw-c,,\n"
        "dave,pw-d,Dave,\n",
        encoding="utf-8",
    )
    users = load_csv(path, NODES, seed=1, contacts=2)
    assert [(u.user_id, u.display_name, u.home_node) for u in users] == [
        ("alice", "Alice Liddell", NODES[1]),
        ("bob", "bob", NODES[1]),
        ("carol", "carol", NODES[0]),
        ("dave", "Dave", NODES[1]),
    ]
    assert users.check_password("bob", "pw-b")
    assert {len(users.contacts_of(u.user_id)) for u in users} == {2}


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("alice,pw\nbob\n", 2, "no password for user 'bob'"),
        ("alice,pw\nbob,pw,B,imp1.example.test,extra\n", 2, "5 values; a row holds user id, password"),
        ("alice,\n", 1, "no password for user 'alice'"),
        ("alice,pw\n\nalice,pw2\n", 3, "duplicate user id 'alice', first on line 1"),
        ("alice,pw,A,imp9.example.test\n", 1, "unknown home node 'imp9.example.test'"),
        ("al ice,pw\n", 1, "is not a JID local part (white space)"),
        ("user id,password\nbad@id,pw\n", 2, "is not a JID local part (@)"),
    ],
)
def test_bad_csv_rows_name_the_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UserDataError) as info:
        load_csv(path, NODES)
    assert info.value.line == line
    assert str(info.value).startswith(f"{path}:{line}: ")
    assert words in str(info.value)


def test_missing_csv_is_a_user_data_error(tmp_path: Path) -> None:
    with pytest.raises(UserDataError) as info:
        load_csv(tmp_path / "none.csv", NODES)
    assert info.value.line is None and "cannot read" in str(info.value)


def test_user_checks() -> None:
    with pytest.raises(ValueError):
        User(user_id="a/b", password="x", display_name="A", home_node="n")
    with pytest.raises(ValueError):
        User(user_id="a", password="", display_name="A", home_node="n")
    with pytest.raises(UserDataError):
        provision(2, ["same", "same"])
    with pytest.raises(UserDataError):
        provision(-1, NODES)
