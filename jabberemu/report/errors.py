"""Exceptions of the report layer.

Tree (under ``jabberemu.errors.JabberEmuError``)::

    ReportError                  anything the report layer refuses
    ├── RunDataError             bad or missing run data (names the file and line)
    └── PlannerError             impossible planner input (names the argument)

``jabberemu.errors`` does not list this family; the lead may add it to that module's tree.
"""

from __future__ import annotations

from pathlib import Path

from jabberemu.errors import JabberEmuError

__all__ = ["PlannerError", "ReportError", "RunDataError"]


class ReportError(JabberEmuError):
    """Root of every error raised by ``jabberemu.report``."""


class RunDataError(ReportError):
    """A run-data file is missing, unreadable or holds a record we cannot use.

    Attributes:
        path: the offending file.
        line: 1-based line number in ``path`` (``None`` for whole-file problems).
        detail: what is wrong, in words.
    """

    def __init__(self, path: Path | str, detail: str, *, line: int | None = None) -> None:
        self.path = Path(path)
        self.line = line
        self.detail = detail
        where = f"{self.path}:{line}" if line is not None else str(self.path)
        super().__init__(f"{where}: {detail}")


class PlannerError(ReportError):
    """The planner cannot honour its input (e.g. ``rate <= 0`` or ``lower`` below the Critical
    Service Delay).

    Attributes:
        argument: name of the offending argument.
        value: the value given.
    """

    def __init__(self, argument: str, value: object, detail: str) -> None:
        self.argument = argument
        self.value = value
        super().__init__(f"{argument}={value!r}: {detail}")
