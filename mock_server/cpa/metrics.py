"""Counters of one node's CPA endpoint: totals and per-second rows (the node reads them for
``/api/metrics``, keys ``cpa_<counter>``). No I/O; the clock is injected."""

from __future__ import annotations

import enum
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = ["CpaCounter", "CpaMetrics", "CpaSecond"]


class CpaCounter(enum.Enum):
    """What :class:`CpaMetrics` counts. Every answered ``login`` lands in exactly one of the five
    login counters: sign-ins with the password that succeeded (``logins_ok``), session logins with
    the OTP that succeeded (``session_logins_ok``), OTPs refused (``session_logins_refused``), logins
    of either kind refused busy (``logins_busy``) and every other failed login of either kind
    (``logins_failed``: bad credentials, services stopped, not served here). A login whose client
    left before its answer is counted by the node's admission, not here."""

    LOGIN_OK = "logins_ok"
    LOGIN_FAILED = "logins_failed"
    LOGIN_BUSY = "logins_busy"
    SESSION_LOGIN_OK = "session_logins_ok"
    SESSION_LOGIN_REFUSED = "session_logins_refused"
    REQUESTS = "requests"
    FAULTS = "faults"


@dataclass(frozen=True, kw_only=True)
class CpaSecond:
    """Counts of one whole second ``[ts, ts + 1)`` (Unix epoch)."""

    ts: int
    counts: Mapping[CpaCounter, int]

    def to_dict(self) -> dict[str, int]:
        """JSON-ready row: ``ts`` plus one key per counter (``logins_ok``, ...)."""
        row = {"ts": self.ts}
        row.update({counter.value: self.counts.get(counter, 0) for counter in CpaCounter})
        return row


class CpaMetrics:
    """Per-second and total counters of one CPA endpoint; the node reads them.

    Args:
        clock: Unix-epoch seconds (injected in tests).
        keep_s: how many past seconds to keep.
    """

    def __init__(self, *, clock: Callable[[], float] = time.time, keep_s: int = 300) -> None:
        self._clock = clock
        self._seconds: deque[tuple[int, dict[CpaCounter, int]]] = deque(maxlen=keep_s)
        self.totals: dict[CpaCounter, int] = {counter: 0 for counter in CpaCounter}

    def count(self, counter: CpaCounter, n: int = 1) -> None:
        """Add ``n`` to ``counter`` in the current second and in the totals."""
        self.totals[counter] += n
        second = int(self._clock())
        if not self._seconds or self._seconds[-1][0] != second:
            self._seconds.append((second, {}))
        bucket = self._seconds[-1][1]
        bucket[counter] = bucket.get(counter, 0) + n

    def completed_seconds(self, after_ts: int | None = None) -> list[CpaSecond]:
        """Return the finished seconds with any count, oldest first.

        Args:
            after_ts: only seconds with ``ts > after_ts`` (the last one the caller already read).
        """
        now = int(self._clock())
        return [
            CpaSecond(ts=ts, counts=dict(counts))
            for ts, counts in self._seconds
            if ts < now and (after_ts is None or ts > after_ts)
        ]
