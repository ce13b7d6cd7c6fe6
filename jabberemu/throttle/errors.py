"""Exceptions of the throttle model.

Tree (under ``jabberemu.errors.JabberEmuError``)::

    ThrottleError                anything the throttle model refuses
    ├── ModelInputError          an impossible input (names the argument); also a ValueError
    └── InfeasiblePlan           no upper limit up to the search cap meets the criteria

``jabberemu.errors`` does not list this family; the lead may add it to that module's tree.
"""

from __future__ import annotations

from jabberemu.errors import JabberEmuError

__all__ = ["InfeasiblePlan", "ModelInputError", "ThrottleError"]


class ThrottleError(JabberEmuError):
    """Root of every error raised by ``jabberemu.throttle``."""


class ModelInputError(ThrottleError, ValueError):
    """An input the model cannot simulate (negative rate, upper below lower, bad array shape ...).

    Attributes:
        argument: name of the offending argument or field.
        value: the value given (arrays are summarised by their shape).
    """

    def __init__(self, argument: str, value: object, detail: str) -> None:
        self.argument = argument
        self.value = value
        super().__init__(f"{argument}={value!r}: {detail}")


class InfeasiblePlan(ThrottleError):
    """The planner found no upper limit up to ``max_upper_s`` that meets its criteria.

    Attributes:
        max_upper_s: the largest upper limit tried (s).
        probability_clean: estimated probability of a clean wave at ``max_upper_s``.
        detail: why, in words (e.g. the SOAP timeout is shorter than one login's service time).
    """

    def __init__(self, *, max_upper_s: float, probability_clean: float, detail: str) -> None:
        self.max_upper_s = max_upper_s
        self.probability_clean = probability_clean
        self.detail = detail
        super().__init__(f"no upper limit <= {max_upper_s:g} s meets the criteria "
                         f"(P(clean) there {probability_clean:.3f}): {detail}")
