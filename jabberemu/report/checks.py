"""The verdict's vocabulary: verdicts, check names and statuses, one check, the exit codes.

Three verdicts (``--fail-on-verdict`` maps them to exit codes, one place: :func:`exit_code`):

- **PASS**: every check that applies ran, on the clients it names, and passed;
- **FAIL**: at least one check failed (what was observed is a failure, partial run or not);
- **INCONCLUSIVE**: nothing failed, but something that a PASS needs was not tested: no HA event
  happened, a planned action failed or was never injected, clients never reached a steady state
  before the drill, a wave was cut by the end of the run (clients still inside their window), the
  run was interrupted, or its run data is missing. Never green by accident.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "EXIT_FAIL",
    "EXIT_INCONCLUSIVE",
    "Check",
    "CheckName",
    "CheckStatus",
    "Verdict",
    "VerdictResult",
    "exit_code",
    "failed",
]

EXIT_FAIL = 1
"""Exit status of a FAIL verdict with ``--fail-on-verdict``."""
EXIT_INCONCLUSIVE = 3
"""Exit status of an INCONCLUSIVE verdict with ``--fail-on-verdict`` (2 is bad input)."""


class Verdict(enum.Enum):
    """Overall outcome."""

    PASS = "PASS"
    FAIL = "FAIL"
    INCONCLUSIVE = "INCONCLUSIVE"


class CheckStatus(enum.Enum):
    """Outcome of one check."""

    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"  # what the check needs was not tested
    NOT_APPLICABLE = "not applicable"  # the check does not apply to this run (said why)
    INFO = "info"  # a figure shown beside the checks, never a verdict on its own


class CheckName(enum.Enum):
    """The checks behind the verdict."""

    # run-wide: was the drill tested at all? (report.integrity)
    RUN_DATA = "the run's client records are there"
    RUN_COMPLETE = "the run ended as planned (not interrupted)"
    ACTIONS_DONE = "every planned drill action was injected and accepted"
    STEADY_STATE = "every client was signed in before the first HA action"
    HA_EVENT_SEEN = "an HA event was exercised"
    # per wave (report.verdict)
    PEAK_RATE_1S = "peak re-login demand (1 s window) against capacity"
    PEAK_RATE_10S = "peak re-login demand (10 s window) against capacity"
    MODEL_AGREEMENT = "measured as the model predicted"
    NO_BUSY = "no CPA login refused busy"
    NO_TIMEOUT = "no CPA login timed out"
    LOGIN_WAIT = "p99 CPA login wait <= bound"
    ALL_RECOVERED = "every client recovered"
    RECOVERY_TIME = "recovery within upper + margin"
    # soak (report.drift)
    DRIFT_LATENCY = "latency p99 does not creep up (slope per hour after warm-up)"
    DRIFT_GENERATOR_RSS = "generator RSS stays flat (slope per hour after warm-up)"
    DRIFT_MOCK_RSS = "mock node RSS stays flat (slope per hour after warm-up)"


@dataclass(frozen=True, kw_only=True, slots=True)
class Check:
    """One check of one wave (``wave`` None: run-wide).

    ``measured`` and ``limit`` are in the check's unit (logins/s, clients, s); ``excess`` =
    measured - limit when failed (for ALL_RECOVERED: clients not recovered). ``clients``: how many
    clients the check covered (None where it has no client count).
    """

    name: CheckName
    status: CheckStatus
    wave: int | None
    measured: float | None
    limit: float | None
    excess: float | None
    message: str
    clients: int | None = None


@dataclass(frozen=True, kw_only=True)
class VerdictResult:
    """Verdict with every check, human reasons (failed checks first, then inconclusive) and warnings."""

    verdict: Verdict
    checks: tuple[Check, ...]
    reasons: tuple[str, ...]
    warnings: tuple[str, ...]


def failed(checks: Sequence[Check]) -> list[Check]:
    """The failed checks of ``checks``."""
    return [c for c in checks if c.status is CheckStatus.FAIL]


def exit_code(verdict: Verdict, fail_on_verdict: bool) -> int:
    """The exit status for a verdict: 0, or with ``fail_on_verdict`` 1 (FAIL) / 3 (INCONCLUSIVE)."""
    if not fail_on_verdict or verdict is Verdict.PASS:
        return 0
    return EXIT_FAIL if verdict is Verdict.FAIL else EXIT_INCONCLUSIVE
