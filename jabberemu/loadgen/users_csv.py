"""The users of a run: ``--users-csv`` rows, pattern users, and the home node each is assigned.

Pure: no I/O except :func:`load_users_csv` reading its file. The mock pair reads the same files with
its own reader (``mock_server.users.load_csv``; the two packages share no code): both follow the
rules below, held to them by the shared case files ``tests/data/users_csv`` and by generated files
(``tests/input/test_input_users_csv.py``, ``tests/input/test_input_props.py``).

The file (README, "Against a real IM&P pair"):

- UTF-8, with or without a BOM (Excel's "CSV UTF-8"); anything else is refused naming the line.
- One user per row: ``user id, password[, display name[, home node]]``; comma-separated, values in
  double quotes may hold commas, quotes (doubled: ``""``) and line breaks (Python's ``csv`` module with
  ``skipinitialspace`` and ``strict``).
- White space around an **unquoted** value is not part of it (``alice, secret`` is the password
  ``secret``); a **quoted** value is exactly what stands between its quotes (``alice," secret "``
  keeps both spaces). A quoted value ends at its closing quote: only a comma or the end of the line
  may follow it.
- An optional header row: the first row, when its first value reads ``user id`` (or ``user``,
  ``userid``, ``username``) and its second ``password`` (or ``pass``, ``passwd``, ``pwd``); case,
  spaces, ``_`` and ``-`` do not matter.
- Blank rows (every value empty, as spreadsheets write them) and rows whose first value starts with
  ``#`` are skipped. Empty values after the fourth are ignored; a fifth value is refused.
- Refused, naming the file and line: a row without a user id or password, a user id that is no JID
  local part (white space, control or format characters, ``"&'/:<>@``, longer than 1023 bytes), a
  duplicate user id (ids ignore case: ``Alice`` and ``alice`` are one JID), a character XML cannot
  carry (every value travels in SOAP or XMPP), a home node the pair does not have, a file without
  users.
- Home nodes match the pair's node names ignoring case. A row without one gets the home the pair
  assigns, as pattern users do (:func:`home_node`): its 0-based position among the file's users, the
  assignment mode of ``--assignment`` (``auto`` asks the mock).
"""

from __future__ import annotations

import csv
import enum
import io
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from jabberemu.errors import ConfigError

__all__ = [
    "Assignment",
    "UserSpec",
    "home_node",
    "load_users_csv",
    "localpart_problem",
]


class Assignment(enum.Enum):
    """How the users are homed on the pair (the mock's ``--assignment``).

    Source: Configuration and Administration of IM and Presence Service 12.5(1), "Configure
    Redundancy and High Availability": Balanced spreads users over both nodes, Active-Standby homes
    every user on the first node.
    """

    AUTO = "auto"
    BALANCED = "balanced"
    ACTIVE_STANDBY = "active-standby"


@dataclass(frozen=True, kw_only=True)
class UserSpec:
    """Who one emulated client is.

    Attributes:
        index: 0-based position in the run's user list (unique across workers).
        user_id: the user id; password: its password (never logged).
        home: name of its home node, or None for the pair's first node.
    """

    index: int
    user_id: str
    password: str
    home: str | None

    def __post_init__(self) -> None:
        if self.index < 0 or not self.user_id:
            raise ConfigError(f"bad user #{self.index}: {self.user_id!r}", field="users")

    def __repr__(self) -> str:  # never show the password
        return f"UserSpec(index={self.index}, user_id={self.user_id!r}, home={self.home!r})"


def home_node(index: int, nodes: tuple[str, ...], assignment: Assignment) -> str:
    """The home of user ``index`` (0-based), as the mock provisions it.

    Args:
        index: 0-based user index (pattern users: user id number - 1; CSV rows: position in the file).
        nodes: node names of the pair, first = the Active-Standby active node.
        assignment: BALANCED or ACTIVE_STANDBY (AUTO is treated as BALANCED: resolve it first).
    """
    if assignment is Assignment.ACTIVE_STANDBY:
        return nodes[0]
    return nodes[index % len(nodes)]


# -- the reader (kept in step with mock_server/users.py by the shared tests) ----------------------

_COLUMNS = "user id, password[, display name[, home node]]"
_HEADER_IDS = frozenset({"user", "userid", "username"})
_HEADER_PASSWORDS = frozenset({"password", "pass", "passwd", "pwd"})
_NOT_IN_LOCALPART = frozenset("\"&'/:<>@")  # RFC 7622 §3.3.1
_MAX_LOCALPART_BYTES = 1023  # RFC 7622 §3.3.1
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")  # XML 1.0 §2.2 Char
_VALUE_NAMES = ("user id", "password", "display name", "home node")


class _BadQuoting(Exception):
    """A record the csv module refuses; ``args`` = (first line number, problem)."""


class _Lines:
    """The file's lines for ``csv.reader``, keeping those of the record being read."""

    def __init__(self, text: str) -> None:
        self._lines = iter(io.StringIO(text, newline=""))
        self.taken: list[str] = []

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self.taken.append(line)
        return line


def _quoted(raw: str, values: list[str]) -> list[bool]:
    """Which of a record's values were quoted, from its raw text (csv: skipinitialspace, strict)."""
    flags: list[bool] = []
    i = 0
    for value in values:
        while raw.startswith(" ", i):
            i += 1
        quoted = raw.startswith('"', i)
        flags.append(quoted)
        i += (2 + len(value) + value.count('"') if quoted else len(value)) + 1
    return flags


def _norm(value: str) -> str:
    return re.sub(r"[\s_\-]", "", value).lower()


def localpart_problem(user_id: str) -> str | None:
    """Why ``user_id`` is no JID local part (RFC 7622 §3.3.1, kept simple), or None when it is one."""
    if any(c.isspace() for c in user_id):
        return "white space"
    bad = sorted({c for c in user_id if c in _NOT_IN_LOCALPART})
    if bad:
        return "".join(bad)
    if any(unicodedata.category(c).startswith("C") for c in user_id):
        return "a control or format character"
    if len(user_id.encode("utf-8", "surrogatepass")) > _MAX_LOCALPART_BYTES:
        return f"more than {_MAX_LOCALPART_BYTES} bytes"
    return None


def _records(text: str) -> Iterator[tuple[int, list[str]]]:
    """(first line number, values) of each record; unquoted values stripped.

    Raises:
        _BadQuoting: a record the csv module refuses.
    """
    lines = _Lines(text)
    reader = csv.reader(lines, skipinitialspace=True, strict=True)
    while True:
        start = reader.line_num + 1
        lines.taken.clear()
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            why = str(exc)
            if "expected after" in why:
                why = "text after a closing quote (a quoted value must be followed by a comma or the end of the line)"
            elif "end of data" in why:
                why = "a quote opened here is never closed"
            raise _BadQuoting(start, why) from None
        flags = _quoted("".join(lines.taken), row)
        yield start, [v if q else v.strip() for v, q in zip(row, flags)]


def _row_problem(values: list[str], seen: dict[str, tuple[str, int]]) -> str | None:
    """The problem of one user row (values already trimmed of empty ones beyond the fourth)."""
    if len(values) > 4:
        return f"{len(values)} values; a row holds {_COLUMNS}"
    user_id = values[0]
    if not user_id:
        return f"no user id (a row holds {_COLUMNS})"
    for name, value in zip(_VALUE_NAMES, values):
        bad = _NOT_XML.search(value)
        if bad:
            whose = f"user id {user_id!r}" if name == "user id" else f"the {name} of user {user_id!r}"
            return f"{whose} holds {bad.group()!r}, a character XML cannot carry"
    if len(values) < 2 or not values[1]:
        return f"no password for user {user_id!r} (a row holds {_COLUMNS})"
    why = localpart_problem(user_id)
    if why:
        return f"user id {user_id!r} is not a JID local part ({why})"
    first = seen.get(user_id.casefold())
    if first is not None:
        other, line = first
        same = "" if other == user_id else f" ({other!r}: user ids ignore case)"
        return f"duplicate user id {user_id!r}, first on line {line}{same}"
    return None


def load_users_csv(path: str, nodes: Sequence[str] = (), assignment: Assignment = Assignment.BALANCED, *,
                   wanted: int | None = None, offset: int = 0) -> list[UserSpec]:
    """Read ``--users-csv``: rows of ``user id, password[, display name[, home node]]`` (module docstring).

    Args:
        path: the file.
        nodes: the pair's node names (first = node 1); empty: homes are not checked nor assigned.
        assignment: how rows without a home node are homed (AUTO counts as BALANCED).
        wanted: users the run asks for (``-u``), or None (not known yet).
        offset: users skipped first (``--user-offset``).

    Returns:
        The users in file order, ``index`` = position among them; ``home`` = the node's own name.

    Raises:
        ConfigError: one line naming the file, the line and the problem (see the module docstring),
            or the file and a count: fewer users than ``offset + wanted``.
    """
    where = f"--users-csv {path}"
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ConfigError(f"{where}: {exc.strerror or exc}", field="users_csv") from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{where}, line {line}: not UTF-8 (byte {data[exc.start]:#04x}); save the file as "
                          "\"CSV UTF-8\"", field="users_csv") from None
    by_name = {n.casefold(): n for n in nodes}
    out: list[UserSpec] = []
    seen: dict[str, tuple[str, int]] = {}
    first_row = True
    try:
        for line, values in _records(text):
            if not any(values) or values[0].startswith("#"):
                continue
            if first_row:
                first_row = False
                if len(values) > 1 and _norm(values[0]) in _HEADER_IDS and _norm(values[1]) in _HEADER_PASSWORDS:
                    continue
            while len(values) > 4 and not values[-1]:
                values.pop()
            problem = _row_problem(values, seen)
            home: str | None = values[3] if len(values) > 3 and values[3] else None
            if problem is None and home is not None and nodes:
                home = by_name.get(home.casefold())
                if home is None:
                    problem = (f"unknown home node {values[3]!r} for user {values[0]!r}; the pair's nodes are "
                               f"{', '.join(nodes)}")
            if problem is not None:
                raise ConfigError(f"{where}, line {line}: {problem}", field="users_csv")
            if home is None and nodes:
                home = home_node(len(out), tuple(nodes), assignment)
            seen[values[0].casefold()] = (values[0], line)
            out.append(UserSpec(index=len(out), user_id=values[0], password=values[1], home=home))
    except _BadQuoting as exc:
        line, why = exc.args
        raise ConfigError(f"{where}, line {line}: {why}", field="users_csv") from None
    if not out:
        raise ConfigError(f"{where}: no users (only a header, comments or blank rows)", field="users_csv")
    if wanted is not None and offset + wanted > len(out):
        skipped = f" after the {offset} skipped with --user-offset" if offset else ""
        have = f"{len(out)} user{'' if len(out) == 1 else 's'}"
        raise ConfigError(f"--users-csv: {have} in {path}, {wanted} asked for with -u{skipped}", field="users_csv")
    return out
