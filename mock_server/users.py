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
import itertools
import random
import re
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

# RFC 7622 localpart: no '@', '/', ':', quotes, '&', '<', '>' or white space; kept conservative.
_USER_ID = re.compile(r"^[A-Za-z0-9._\-+]{1,64}$")


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
        if not _USER_ID.match(self.user_id):
            raise ValueError(f"user id {self.user_id!r} is not a plain JID local part")
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


_HEADER_WORDS = {"user", "userid", "user_id", "user id", "user-id", "username"}


def load_csv(
    path: str | Path,
    nodes: Sequence[str],
    seed: int = 0,
    mode: AssignmentMode = AssignmentMode.BALANCED,
    contacts: int = DEFAULT_CONTACTS,
) -> UserDirectory:
    """Load users from a CSV file: ``user id, password[, display name[, home node]]``.

    An optional header row (first cell ``user_id``, ``user id``, ``userid`` or ``username``), blank
    lines and lines starting with ``#`` are skipped. A missing display name defaults to the user id;
    a missing home node is assigned by ``mode`` in row order.

    Args:
        path: the CSV file (UTF-8).
        nodes: node names of the group.
        seed: seed of the contacts.
        mode: assignment mode for rows without a home node.
        contacts: roster contacts per user.

    Returns:
        The directory.

    Raises:
        UserDataError: naming the file and line: too few or many columns, empty id or password, an
            invalid id, a duplicate id, an unknown home node; or an unreadable file.
    """
    _check_nodes(nodes)
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserDataError(f"cannot read user CSV: {exc}", source=source) from exc
    users: list[User] = []
    seen: set[str] = set()
    first_row = True
    for line_no, row in enumerate(csv.reader(text.splitlines()), start=1):
        cells = [cell.strip() for cell in row]
        if not cells or not any(cells) or cells[0].startswith("#"):
            continue
        if first_row:
            first_row = False
            if cells[0].lower() in _HEADER_WORDS:
                continue
        if not 2 <= len(cells) <= 4:
            raise UserDataError(f"expected 2 to 4 columns (user id, password, display name, home node), got {len(cells)}", source=source, line=line_no)
        user_id, password = cells[0], cells[1]
        if not user_id or not password:
            raise UserDataError("user id and password must not be empty", source=source, line=line_no)
        if user_id in seen:
            raise UserDataError(f"duplicate user id {user_id!r}", source=source, line=line_no)
        display = cells[2] if len(cells) > 2 and cells[2] else user_id
        home = cells[3] if len(cells) > 3 and cells[3] else _assign(len(users), nodes, mode)
        if home not in nodes:
            raise UserDataError(f"unknown home node {home!r} (nodes: {', '.join(nodes)})", source=source, line=line_no)
        try:
            users.append(User(user_id=user_id, password=password, display_name=display, home_node=home))
        except ValueError as exc:
            raise UserDataError(str(exc), source=source, line=line_no) from exc
        seen.add(user_id)
    return UserDirectory(users, nodes=nodes, seed=seed, contacts=contacts)
