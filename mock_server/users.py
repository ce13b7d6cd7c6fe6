"""Users of the mock Presence Redundancy Group: provisioning, home-node assignment, roster contacts.

Each user is homed on one node of the group; the assignment mode is Balanced (users spread over both
nodes, Cisco's default) or Active-Standby (all users on the first node, the second stands by)
(Configuration and Administration of IM and Presence Service 12.5(1), "Configure Redundancy and High
Availability", user assignment modes). On failover users are not re-assigned; only their sessions
move (DOMAIN.md, "Topology").

Pure: no I/O except :func:`load_csv` reading its file. Display names come from Faker's en_US person
data drawn with a seeded :class:`random.Random` in one batch (Faker's own ``name()`` costs ~170 us a
call here, 4 s for 25,000 users). Roster contacts are symmetric and computed on demand from a seeded
permutation (a circulant graph), so 25,000 users cost no up-front roster build.
"""

from __future__ import annotations

import bisect
import csv
import enum
import io
import itertools
import random
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "AssignmentMode",
    "User",
    "UserDataError",
    "UserDirectory",
    "provision",
    "load_csv",
    "DEFAULT_PASSWORD_PATTERN",
    "DEFAULT_CONTACTS",
]

DEFAULT_PASSWORD_PATTERN = "pass-{user}"
DEFAULT_CONTACTS = 5

# RFC 7622 §3.3.1 local part, kept simple: none of these, no white space, no control or format
# character, at most 1023 bytes.
_NOT_IN_LOCALPART = frozenset("\"&'/:<>@")
_MAX_LOCALPART_BYTES = 1023


def _localpart_problem(user_id: str) -> str | None:
    """Why ``user_id`` is no JID local part, or None when it is one."""
    if not user_id:
        return "empty"
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


class AssignmentMode(enum.Enum):
    """How users are spread over the nodes (IM&P user assignment mode)."""

    BALANCED = "balanced"
    ACTIVE_STANDBY = "active-standby"


class UserDataError(ValueError):
    """Bad user data.

    Attributes:
        source: the CSV path or "provision".
        line: 1-based line number in the CSV, or None.
    """

    def __init__(self, message: str, *, source: str, line: int | None = None) -> None:
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {message}")
        self.source = source
        self.line = line


@dataclass(frozen=True, kw_only=True)
class User:
    """One provisioned user. ``user_id`` is the JID local part; the password is hidden from repr."""

    user_id: str
    password: str = field(repr=False)
    display_name: str
    home_node: str

    def __post_init__(self) -> None:
        why = _localpart_problem(self.user_id)
        if why:
            raise ValueError(f"user id {self.user_id!r} is not a JID local part ({why})")
        if not self.password:
            raise ValueError(f"user {self.user_id!r} has an empty password")
        if not self.home_node:
            raise ValueError(f"user {self.user_id!r} has no home node")


class UserDirectory:
    """All users of the group, with symmetric roster contacts.

    Args:
        users: the users, in provisioning order (ids unique).
        nodes: node names of the group, first = the Active-Standby active node.
        seed: seed of the contact permutation.
        contacts: wanted contacts per user (capped at ``len(users) - 1``). Every user gets this many
            except when both the count and the number of users are odd: then ``contacts - 1``.

    Raises:
        UserDataError: duplicate user ids or a home node not in ``nodes``.
    """

    def __init__(self, users: Sequence[User], *, nodes: Sequence[str], seed: int = 0, contacts: int = DEFAULT_CONTACTS) -> None:
        if contacts < 0:
            raise UserDataError(f"contacts must be >= 0, not {contacts}", source="provision")
        self.nodes: tuple[str, ...] = tuple(nodes)
        self._users: dict[str, User] = {}
        for user in users:
            if user.user_id in self._users:
                raise UserDataError(f"duplicate user id {user.user_id!r}", source="provision")
            if user.home_node not in self.nodes:
                raise UserDataError(f"user {user.user_id!r} homed on unknown node {user.home_node!r}", source="provision")
            self._users[user.user_id] = user
        order = list(self._users)
        random.Random(seed).shuffle(order)
        self._ring: list[str] = order
        self._position = {user_id: i for i, user_id in enumerate(order)}
        n = len(order)
        wanted = min(contacts, max(n - 1, 0))
        offsets = list(itertools.chain.from_iterable((d, -d) for d in range(1, wanted // 2 + 1)))
        if wanted % 2 == 1 and n % 2 == 0:
            offsets.append(n // 2)
        self._offsets = offsets

    def __len__(self) -> int:
        return len(self._users)

    def __iter__(self) -> Iterator[User]:
        return iter(self._users.values())

    def __contains__(self, user_id: object) -> bool:
        return user_id in self._users

    def get(self, user_id: str) -> User | None:
        """Return the user or None."""
        return self._users.get(user_id)

    def check_password(self, user_id: str, password: str) -> bool:
        """Return True when the user exists and the password matches."""
        user = self._users.get(user_id)
        return user is not None and user.password == password

    def home_node(self, user_id: str) -> str | None:
        """Return the user's home node, or None for an unknown user."""
        user = self._users.get(user_id)
        return None if user is None else user.home_node

    def users_on(self, node: str) -> list[User]:
        """Return the users homed on ``node`` (provisioning order)."""
        return [user for user in self._users.values() if user.home_node == node]

    def contacts_of(self, user_id: str) -> list[str]:
        """Return the user's roster contacts: deterministic from the seed and symmetric.

        Raises:
            KeyError: unknown user.
        """
        pos = self._position[user_id]
        n = len(self._ring)
        seen: dict[str, None] = {}
        for offset in self._offsets:
            other = self._ring[(pos + offset) % n]
            if other != user_id:
                seen[other] = None
        return list(seen)


def _assign(index: int, nodes: Sequence[str], mode: AssignmentMode) -> str:
    if mode is AssignmentMode.ACTIVE_STANDBY:
        return nodes[0]
    return nodes[index % len(nodes)]


class _NameSource:
    """Seeded display names from Faker's en_US person data, weighted as Faker weights them."""

    def __init__(self, seed: int) -> None:
        from faker import Faker  # imported lazily: ~50 ms, only needed when names are generated

        provider = next(p for p in Faker("en_US").get_providers() if hasattr(p, "first_names"))
        self._first, self._first_cum = self._table(provider.first_names)
        self._last, self._last_cum = self._table(provider.last_names)
        self._rng = random.Random(seed)

    @staticmethod
    def _table(source: object) -> tuple[list[str], list[float] | None]:
        if isinstance(source, dict):
            return list(source), list(itertools.accumulate(float(w) for w in source.values()))
        return list(source), None  # type: ignore[call-overload]

    def _pick(self, names: list[str], cum: list[float] | None) -> str:
        if cum is None:
            return self._rng.choice(names)
        return names[bisect.bisect_right(cum, self._rng.random() * cum[-1])]

    def name(self) -> str:
        return f"{self._pick(self._first, self._first_cum)} {self._pick(self._last, self._last_cum)}"


def _check_nodes(nodes: Sequence[str]) -> None:
    if not nodes or len(set(nodes)) != len(nodes) or not all(nodes):
        raise UserDataError(f"need one or more distinct node names, got {list(nodes)!r}", source="provision")


def provision(
    n: int,
    nodes: Sequence[str],
    seed: int = 0,
    password_pattern: str = DEFAULT_PASSWORD_PATTERN,
    mode: AssignmentMode = AssignmentMode.BALANCED,
    contacts: int = DEFAULT_CONTACTS,
) -> UserDirectory:
    """Provision ``user00001`` .. ``userNNNNN`` with seeded Faker display names.

    Args:
        n: number of users (>= 0).
        nodes: node names; Balanced alternates over them, Active-Standby homes all on ``nodes[0]``.
        seed: seed of display names and contacts (same seed, same users).
        password_pattern: ``str.format`` pattern with ``{user}`` (default ``pass-{user}``).
        mode: assignment mode.
        contacts: roster contacts per user.

    Returns:
        The directory.

    Raises:
        UserDataError: n < 0, bad nodes, or a pattern that does not format.
    """
    if n < 0:
        raise UserDataError(f"user count must be >= 0, not {n}", source="provision")
    _check_nodes(nodes)
    width = max(5, len(str(n)))
    names = _NameSource(seed) if n else None
    users = []
    for i in range(n):
        user_id = f"user{i + 1:0{width}d}"
        try:
            password = password_pattern.format(user=user_id)
        except (KeyError, IndexError, ValueError) as exc:
            raise UserDataError(f"password pattern {password_pattern!r} does not format: {exc!r}", source="provision") from exc
        assert names is not None
        users.append(User(user_id=user_id, password=password, display_name=names.name(), home_node=_assign(i, nodes, mode)))
    return UserDirectory(users, nodes=nodes, seed=seed, contacts=contacts)


# -- the CSV reader: the same rules as jabberemu's (jabberemu/loadgen/users_csv.py); the packages share
# no code: tests/data/users_csv and tests/input/test_input_props.py hold both readers to the same answers

_CSV_COLUMNS = "user id, password[, display name[, home node]]"
_HEADER_IDS = frozenset({"user", "userid", "username"})
_HEADER_PASSWORDS = frozenset({"password", "pass", "passwd", "pwd"})
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


def _records(text: str) -> Iterator[tuple[int, list[str]]]:
    """(first line number, values) of each record; unquoted values stripped of white space.

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


def _norm(value: str) -> str:
    return re.sub(r"[\s_\-]", "", value).lower()


def _row_problem(values: list[str], seen: dict[str, tuple[str, int]]) -> str | None:
    """The problem of one user row (values already trimmed of empty ones beyond the fourth)."""
    if len(values) > 4:
        return f"{len(values)} values; a row holds {_CSV_COLUMNS}"
    user_id = values[0]
    if not user_id:
        return f"no user id (a row holds {_CSV_COLUMNS})"
    for name, value in zip(_VALUE_NAMES, values):
        bad = _NOT_XML.search(value)
        if bad:
            whose = f"user id {user_id!r}" if name == "user id" else f"the {name} of user {user_id!r}"
            return f"{whose} holds {bad.group()!r}, a character XML cannot carry"
    if len(values) < 2 or not values[1]:
        return f"no password for user {user_id!r} (a row holds {_CSV_COLUMNS})"
    why = _localpart_problem(user_id)
    if why:
        return f"user id {user_id!r} is not a JID local part ({why})"
    first = seen.get(user_id.casefold())
    if first is not None:
        other, line = first
        same = "" if other == user_id else f" ({other!r}: user ids ignore case)"
        return f"duplicate user id {user_id!r}, first on line {line}{same}"
    return None


def load_csv(
    path: str | Path,
    nodes: Sequence[str],
    seed: int = 0,
    mode: AssignmentMode = AssignmentMode.BALANCED,
    contacts: int = DEFAULT_CONTACTS,
) -> UserDirectory:
    """Load users from a CSV file: ``user id, password[, display name[, home node]]``.

    The rules (README, "Against a real IM&P pair"; the same as jabberemu's ``--users-csv``):

    - UTF-8, with or without a BOM (Excel's "CSV UTF-8"); comma-separated; values in double quotes
      may hold commas, quotes (doubled) and line breaks (``csv`` with ``skipinitialspace``, ``strict``).
    - White space around an unquoted value is not part of it; a quoted value is exactly what stands
      between its quotes, and only a comma or the end of the line may follow its closing quote.
    - An optional header: the first row, when its first value reads ``user id`` (``user``,
      ``userid``, ``username``) and its second ``password`` (``pass``, ``passwd``, ``pwd``); case,
      spaces, ``_`` and ``-`` ignored. Blank rows and rows whose first value starts with ``#`` are
      skipped; empty values after the fourth are ignored.
    - A missing display name defaults to the user id; a missing home node is assigned by ``mode``
      from the user's position in the file; a home node matches the node names ignoring case.

    Args:
        path: the CSV file.
        nodes: node names of the group.
        seed: seed of the contacts.
        mode: assignment mode for rows without a home node.
        contacts: roster contacts per user.

    Returns:
        The directory (users in file order).

    Raises:
        UserDataError: naming the file and line: a fifth value, no user id or password, an id that is
            no JID local part, a duplicate id (ids ignore case), a character XML cannot carry, an
            unknown home node, bad quoting, not UTF-8; or naming the file: unreadable, no users.
    """
    _check_nodes(nodes)
    source = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UserDataError(f"cannot read user CSV: {exc.strerror or exc}", source=source) from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise UserDataError(f"not UTF-8 (byte {data[exc.start]:#04x}); save the file as \"CSV UTF-8\"",
                            source=source, line=line) from None
    by_name = {n.casefold(): n for n in nodes}
    users: list[User] = []
    seen: dict[str, tuple[str, int]] = {}
    first_row = True
    try:
        for line_no, values in _records(text):
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
            if problem is None and home is not None:
                home = by_name.get(home.casefold())
                if home is None:
                    problem = (f"unknown home node {values[3]!r} for user {values[0]!r}; the pair's nodes are "
                               f"{', '.join(nodes)}")
            if problem is not None:
                raise UserDataError(problem, source=source, line=line_no)
            user_id, password = values[0], values[1]
            display = values[2] if len(values) > 2 and values[2] else user_id
            seen[user_id.casefold()] = (user_id, line_no)
            users.append(User(user_id=user_id, password=password, display_name=display,
                              home_node=home or _assign(len(users), nodes, mode)))
    except _BadQuoting as exc:
        line_no, why = exc.args
        raise UserDataError(why, source=source, line=line_no) from None
    if not users:
        raise UserDataError("no users (only a header, comments or blank rows)", source=source)
    return UserDirectory(users, nodes=nodes, seed=seed, contacts=contacts)
