"""Failed requests grouped by cause, with first and last seen (pure, one pass).

The cause words are the one vocabulary of ``jabberemu.core.vocabulary`` (docs/failure-causes.md):
``soap-fault:server-busy``, ``timeout:soap``, ``http-error:500:text/html``, ``dns-failure`` ...; a
failed request that carries none is grouped as ``unclassified:<exception class>``, taken from the
start of its ``error`` text (our choice: such a failure still shows, with what is known of it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from jabberemu.report.records import RequestRecord, RequestSummaryRecord

__all__ = ["FailureRow", "FailureTable", "UNCLASSIFIED", "failure_table"]

UNCLASSIFIED = "unclassified"


@dataclass(frozen=True, kw_only=True, slots=True)
class FailureRow:
    """Failed requests of one cause.

    Attributes:
        cause: the cause word (``<kind>`` or ``<kind>:<detail>``).
        count: failed requests.
        clients: distinct clients that had one.
        requests: request names (``soap/session-login`` ...) -> failures.
        nodes: node -> failures (``?`` when the record names none).
        first_s, last_s: first and last seen, seconds since the start of the load.
        example: the error text of the first one (secret-free, as recorded).
    """

    cause: str
    count: int
    clients: int
    requests: dict[str, int]
    nodes: dict[str, int]
    first_s: float
    last_s: float
    example: str | None


def cause_of(record: RequestRecord) -> str:
    """The cause word of a failed request."""
    if record.cause:
        return record.cause
    error = (record.error or "").split(":", 1)[0].strip()
    return f"{UNCLASSIFIED}:{error}" if error else UNCLASSIFIED


def failure_table(requests: Iterable[RequestRecord], *, started_ts: float,
                  summaries: Iterable[RequestSummaryRecord] = ()) -> list[FailureRow]:
    """Group the failed requests by cause.

    Args:
        requests: request records in any order (only failed ones count).
        started_ts: the run's start (Unix seconds), the origin of ``first_s`` / ``last_s``.
        summaries: per-second ``request_summary`` records (their failures by cause).
    Returns:
        One row per cause, most failures first (then by cause).
    """
    table = FailureTable(started_ts)
    for r in requests:
        table.add(r)
    for summary in summaries:
        table.add_summary(summary)
    return table.rows()


class FailureTable:
    """The failures-by-cause table fed one record at a time (the streaming report's road).

    A per-second ``request_summary`` (``--record-detail summary``) carries its failures by cause but
    not by client: they count in ``count``, ``requests``, ``nodes`` and the first/last second, and
    ``clients`` counts only the clients named by whole request records (our choice: a lower bound
    rather than a guess).

    Args:
        started_ts: the run's start (Unix seconds).
    """

    def __init__(self, started_ts: float) -> None:
        self.started_ts = started_ts
        self._acc: dict[str, _Acc] = {}

    def _slot(self, cause: str, ts: float, example: str | None) -> _Acc:
        a = self._acc.get(cause)
        if a is None:
            a = self._acc[cause] = _Acc(first=ts, example=example)
        return a

    def add(self, r: RequestRecord) -> None:
        """Count one whole request record (a successful one is ignored)."""
        if r.ok:
            return
        self._slot(cause_of(r), r.ts, r.error).add(r)

    def add_summary(self, s: RequestSummaryRecord) -> None:
        """Count the failures of one per-second summary."""
        for cause, n in s.failures.items():
            if n > 0:
                self._slot(cause, s.ts, None).add_many(s.request_type, s.name, s.node, s.ts, n)

    def rows(self) -> list[FailureRow]:
        """One row per cause, most failures first (then by cause)."""
        t0 = self.started_ts
        rows = [FailureRow(cause=c, count=a.count, clients=len(a.clients),
                           requests=dict(sorted(a.requests.items(), key=lambda kv: (-kv[1], kv[0]))),
                           nodes=dict(sorted(a.nodes.items(), key=lambda kv: (-kv[1], kv[0]))),
                           first_s=a.first - t0, last_s=a.last - t0, example=a.example)
                for c, a in self._acc.items()]
        return sorted(rows, key=lambda row: (-row.count, row.cause))


class _Acc:
    __slots__ = ("clients", "count", "example", "first", "last", "nodes", "requests")

    def __init__(self, *, first: float, example: str | None) -> None:
        self.count = 0
        self.clients: set[str] = set()
        self.requests: dict[str, int] = {}
        self.nodes: dict[str, int] = {}
        self.first = first
        self.last = first
        self.example = example

    def add(self, r: RequestRecord) -> None:
        if r.ts < self.first or self.example is None:
            self.example = r.error
        self.clients.add(r.client)
        self.add_many(r.request_type, r.name, r.node, r.ts, 1)

    def add_many(self, request_type: str, name: str, node: str | None, ts: float, n: int) -> None:
        self.count += n
        label = f"{request_type}/{name}"
        self.requests[label] = self.requests.get(label, 0) + n
        key = node or "?"
        self.nodes[key] = self.nodes.get(key, 0) + n
        self.first = min(self.first, ts)
        self.last = max(self.last, ts)
