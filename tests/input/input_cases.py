"""Both users-CSV readers behind one interface, for the shared case files and the property tests.

jabberemu (``jabberemu.loadgen.options.load_users_csv``) and the mock (``mock_server.users.load_csv``)
share no code: these helpers run a file through both and give their answers in one shape.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from jabberemu.errors import ConfigError
from jabberemu.loadgen.options import Assignment, load_users_csv
from mock_server.users import AssignmentMode, UserDataError, load_csv

__all__ = ["CASES_DIR", "Outcome", "client_reads", "mock_reads"]

CASES_DIR = Path(__file__).resolve().parents[1] / "data" / "users_csv"

_CLIENT_LINE = re.compile(r"^--users-csv (?P<path>.+?), line (?P<line>\d+): (?P<problem>.+)$")
_MOCK_LINE = re.compile(r"^(?P<path>.+?):(?P<line>\d+): (?P<problem>.+)$")


@dataclass(frozen=True)
class Outcome:
    """A reader's answer: the users as (id, password, home) in order, or the refused line and problem."""

    users: tuple[tuple[str, str, str | None], ...] | None = None
    line: int | None = None
    problem: str | None = None


def client_reads(path: Path, nodes: tuple[str, ...], assignment: str = "balanced", *,
                 wanted: int | None = None, offset: int = 0) -> Outcome:
    """jabberemu's reader; a refusal must be one line naming the file (and the line when it has one)."""
    try:
        specs = load_users_csv(str(path), nodes, Assignment(assignment), wanted=wanted, offset=offset)
    except ConfigError as exc:
        text = str(exc)
        assert "\n" not in text and "\r" not in text, text
        m = _CLIENT_LINE.match(text)
        if m:
            assert m["path"] == str(path), text
            return Outcome(line=int(m["line"]), problem=m["problem"])
        prefix = f"--users-csv {path}: "
        if text.startswith(prefix):
            return Outcome(problem=text[len(prefix):])
        assert str(path) in text, text
        return Outcome(problem=text)
    assert [s.index for s in specs] == list(range(len(specs)))
    return Outcome(users=tuple((s.user_id, s.password, s.home) for s in specs))


def mock_reads(path: Path, nodes: tuple[str, ...], assignment: str = "balanced") -> Outcome:
    """The mock pair's reader, in the same shape."""
    try:
        directory = load_csv(path, nodes, mode=AssignmentMode(assignment), contacts=2)
    except UserDataError as exc:
        text = str(exc)
        assert "\n" not in text and "\r" not in text, text
        m = _MOCK_LINE.match(text) if exc.line is not None else None
        if m:
            assert m["path"] == str(path) and int(m["line"]) == exc.line, text
            return Outcome(line=exc.line, problem=m["problem"])
        assert text.startswith(f"{path}: "), text
        return Outcome(problem=text[len(f"{path}: "):])
    return Outcome(users=tuple((u.user_id, u.password, u.home_node) for u in directory))
