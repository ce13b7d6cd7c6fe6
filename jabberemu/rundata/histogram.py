"""A log-spaced latency histogram: percentiles within 1 % from a bounded record (our choice).

Bucket ``k`` (an integer, any sign) holds the response times ``v`` (ms) with
``GROWTH ** (k - 1) < v <= GROWTH ** k``, ``GROWTH = 1.02``: each bucket is 2 % wide, so 1 µs to
10 hours span ~1,500 buckets, of which a steady request type fills a few dozen per second. Times of
0 ms (or less) have a bucket of their own (:data:`ZERO_BUCKET`, value 0).

**Error bound.** A percentile is read like numpy's default (linear interpolation between the order
statistics around the rank ``(n - 1) * q / 100``), with each order statistic replaced by the
geometric centre ``GROWTH ** (k - 0.5)`` of its bucket, and clamped to the exact min and max. The
centre is within a factor ``sqrt(GROWTH)`` of every value of its bucket, so the estimate differs
from ``numpy.percentile`` on the same samples by at most ``sqrt(1.02) - 1 = 0.995 %`` of the exact
value (:data:`RELATIVE_ERROR`), for any data. Chosen over fixed buckets (Prometheus-style) because a
soak mixes 1 ms pings with 30 s timed-out logins, and over t-digest because merging (workers, seconds,
minutes) is an exact sum of counts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

__all__ = ["GROWTH", "RELATIVE_ERROR", "ZERO_BUCKET", "LatencyHistogram", "bucket_of", "bucket_value"]

GROWTH = 1.02
"""Ratio of a bucket's upper edge to its lower edge."""
RELATIVE_ERROR = math.sqrt(GROWTH) - 1.0
"""Bound on a percentile's relative error against numpy's linear percentile of the same samples."""
ZERO_BUCKET = -1_000_000
"""The bucket of response times <= 0 ms (value 0)."""

_LOG_G = math.log(GROWTH)


def bucket_of(ms: float) -> int:
    """The bucket holding a response time of ``ms`` milliseconds."""
    if ms <= 0.0:
        return ZERO_BUCKET
    return math.ceil(math.log(ms) / _LOG_G - 1e-12)


def bucket_value(k: int) -> float:
    """The value a bucket stands for: its geometric centre (0 for :data:`ZERO_BUCKET`)."""
    if k == ZERO_BUCKET:
        return 0.0
    return float(GROWTH ** (k - 0.5))


class LatencyHistogram:
    """Counts per bucket, with the exact count, sum, min and max.

    Args:
        counts: bucket -> samples (e.g. read from a ``request_summary`` record).
    """

    __slots__ = ("counts", "count", "sum_ms", "min_ms", "max_ms")

    def __init__(self, counts: Mapping[int, int] | None = None, *, sum_ms: float = 0.0,
                 min_ms: float | None = None, max_ms: float | None = None) -> None:
        self.counts: dict[int, int] = dict(counts or {})
        self.count = sum(self.counts.values())
        self.sum_ms = sum_ms
        self.min_ms = min_ms
        self.max_ms = max_ms

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LatencyHistogram):
            return NotImplemented
        return (self.counts, self.count, self.min_ms, self.max_ms) == (other.counts, other.count, other.min_ms,
                                                                       other.max_ms) \
            and abs(self.sum_ms - other.sum_ms) <= 1e-6 * max(1.0, abs(self.sum_ms))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"LatencyHistogram(count={self.count}, buckets={len(self.counts)}, min={self.min_ms}, max={self.max_ms})"

    def add(self, ms: float) -> None:
        """Count one response time (ms)."""
        k = bucket_of(ms)
        self.counts[k] = self.counts.get(k, 0) + 1
        self.count += 1
        self.sum_ms += ms
        if self.min_ms is None or ms < self.min_ms:
            self.min_ms = ms
        if self.max_ms is None or ms > self.max_ms:
            self.max_ms = ms

    def extend(self, values: Iterable[float]) -> None:
        """Count every value."""
        for v in values:
            self.add(v)

    def merge(self, other: LatencyHistogram) -> None:
        """Add ``other``'s samples (exact: counts add)."""
        for k, n in other.counts.items():
            self.counts[k] = self.counts.get(k, 0) + n
        self.count += other.count
        self.sum_ms += other.sum_ms
        if other.min_ms is not None and (self.min_ms is None or other.min_ms < self.min_ms):
            self.min_ms = other.min_ms
        if other.max_ms is not None and (self.max_ms is None or other.max_ms > self.max_ms):
            self.max_ms = other.max_ms

    def percentile(self, q: float) -> float | None:
        """The ``q``-th percentile (0-100) as module docstring says; None without samples."""
        if self.count == 0:
            return None
        h = (self.count - 1) * q / 100.0
        lo, hi = math.floor(h), math.ceil(h)
        frac = h - lo
        x_lo = x_hi = None
        seen = 0
        for k in sorted(self.counts):
            seen += self.counts[k]
            if x_lo is None and seen > lo:
                x_lo = bucket_value(k)
            if seen > hi:
                x_hi = bucket_value(k)
                break
        assert x_lo is not None and x_hi is not None
        value = x_lo + frac * (x_hi - x_lo)
        if self.min_ms is not None:
            value = max(value, self.min_ms)
        if self.max_ms is not None:
            value = min(value, self.max_ms)
        return value

    def to_wire(self) -> dict[str, int]:
        """Buckets as JSON object keys (``{"-349": 3, "12": 40}``)."""
        return {str(k): n for k, n in sorted(self.counts.items())}

    @classmethod
    def from_wire(cls, hist: Mapping[str, int], *, sum_ms: float = 0.0, min_ms: float | None = None,
                  max_ms: float | None = None) -> LatencyHistogram:
        """Read :meth:`to_wire`'s form.

        Raises:
            ValueError: a key is not an integer or a count not a non-negative integer.
        """
        counts: dict[int, int] = {}
        for key, n in hist.items():
            if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                raise ValueError(f"histogram count of bucket {key!r} must be an integer >= 0, got {n!r}")
            counts[int(key)] = counts.get(int(key), 0) + n
        return cls(counts, sum_ms=sum_ms, min_ms=min_ms, max_ms=max_ms)
