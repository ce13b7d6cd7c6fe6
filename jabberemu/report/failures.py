"""Failed requests grouped by cause, with first and last seen (pure, one pass).

The cause words are the one vocabulary of ``jabberemu.core.vocabulary`` (docs/failure-causes.md):
``soap-fault:server-busy``, ``timeout:soap``, ``http-error:500:text/html``, ``dns-failure`` ...; a
failed request that carries none is grouped as ``unclassified:<exception class>``, taken from the
start of its ``error`` text (our choice: such a failure still shows, with what is known of it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from jabberemu.report.records import RequestRecord

__all__ = ["FailureRow", "UNCLASSIFIED", "failure_table"]

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


def failure_table(requests: Iterable[RequestRecord], *, started_ts: float) -> list[FailureRow]:
    """Group the failed requests by cause.

    Args:
        requests: request records in any order (only failed ones count).
        started_ts: the run's start (Unix seconds), the origin of ``first_s`` / ``last_s``.
    Returns:
        One row per cause, most failures first (then by cause).
    """
    acc: dict[str, _Acc] = {}
    for r in requests:
        if r.ok:
            continue
        cause = cause_of(r)
        a = acc.get(cause)
        if a is None:
            a = acc[cause] = _Acc(first=r.ts, example=r.error)
        a.add(r)
    rows = [FailureRow(cause=c, count=a.count, clients=len(a.clients),
                       requests=dict(sorted(a.requests.items(), key=lambda kv: (-kv[1], kv[0]))),
                       nodes=dict(sorted(a.nodes.items(), key=lambda kv: (-kv[1], kv[0]))),
                       first_s=a.first - started_ts, last_s=a.last - started_ts, example=a.example)
            for c, a in acc.items()]
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
        self.count += 1
        self.clients.add(r.client)
        label = f"{r.request_type}/{r.name}"
        self.requests[label] = self.requests.get(label, 0) + 1
        node = r.node or "?"
        self.nodes[node] = self.nodes.get(node, 0) + 1
        if r.ts < self.first:
            self.first, self.example = r.ts, r.error
        self.last = max(self.last, r.ts)
