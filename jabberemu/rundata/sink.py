"""Where the emulated clients hand their run-data records (the writer side of the schema).

:class:`RunDataSink` receives the client records ``state``, ``ha_event``, ``wait``, ``request``,
``connected``, ``end`` (``records``), each stamped with ``ts`` (Unix epoch seconds), and writes
``client_events.jsonl`` in rotated, compressed segments (``segments``), or keeps them in memory
(tests). At ``summary`` detail the steady-state requests go to a :class:`RequestAggregator` and come
out once per second as ``request_summary`` records (``aggregate``). Records never carry passwords,
session keys or one-time passwords.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from jabberemu.rundata.aggregate import STEADY_REQUESTS, DetailLevel, RequestAggregator
from jabberemu.rundata.files import CLIENT_EVENTS_FILE
from jabberemu.rundata.records import RecordType
from jabberemu.rundata.segments import ROTATE_BYTES, RotatingJsonlWriter

__all__ = ["RunDataSink"]


class RunDataSink:
    """Receives the client records of a run.

    Args:
        directory: where ``client_events.jsonl`` is written (created if needed); None keeps the
            records in :attr:`records` (tests).
        buffer_bytes: write buffer size; the file is flushed when it fills and on :meth:`close`.
        detail: how much of each request is kept (``--record-detail``; in-process default: full).
        rotate_bytes: rotate the live segment at this size (None: never).
        lock: the aggregator's lock (``RequestAggregator``).
    """

    def __init__(self, directory: Path | str | None = None, *, buffer_bytes: int = 1 << 20,
                 detail: DetailLevel = DetailLevel.FULL, rotate_bytes: int | None = ROTATE_BYTES,
                 lock: Any = None) -> None:
        self.records: list[dict[str, Any]] = []
        self.path: Path | None = None
        self.detail = detail
        self.aggregator = RequestAggregator(lock=lock)
        self.written = 0
        self._writer: RotatingJsonlWriter | None = None
        self._next_take = -math.inf
        if directory is not None:
            self._writer = RotatingJsonlWriter(directory, CLIENT_EVENTS_FILE, rotate_bytes=rotate_bytes,
                                               buffer_bytes=buffer_bytes)
            self.path = self._writer.path

    def emit(self, kind: RecordType, ts: float, **fields: Any) -> None:
        """Record one event.

        Args:
            kind: the record type.
            ts: Unix epoch seconds.
            fields: the record's other fields under their wire names (``records``; never secrets).
        """
        if kind is RecordType.REQUEST and self.detail is DetailLevel.SUMMARY \
                and (fields.get("request_type"), fields.get("name")) in STEADY_REQUESTS:
            self.aggregator.add(ts, fields["request_type"], fields["name"], fields.get("node"),
                                fields.get("response_time_ms"), bool(fields.get("ok", True)), fields.get("cause"))
        else:
            self.written += 1
            self._put({"type": kind.value, "ts": ts, **fields})
        if ts >= self._next_take:  # at most once a second: close the seconds that ended
            self._next_take = math.floor(ts) + 1
            self.take_summaries(ts - 1.0)

    def take_summaries(self, before_ts: float | None = None) -> int:
        """Move the aggregated seconds that ended by ``before_ts`` (all when None) to the output.

        Returns:
            The ``request_summary`` records moved.
        """
        summaries = self.aggregator.take(before_ts)
        for s in summaries:
            self.written += 1
            self._put(s.to_wire())
        return len(summaries)

    def _put(self, record: dict[str, Any]) -> None:
        if self._writer is not None:
            self._writer.write(record)
        else:
            self.records.append(record)

    def of_type(self, kind: RecordType) -> list[dict[str, Any]]:
        """In-memory records of one type (empty when writing to a file)."""
        return [r for r in self.records if r["type"] == kind.value]

    def flush(self) -> None:
        """Push buffered records to the file."""
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        """Write the open aggregated seconds, flush and close the file (idempotent)."""
        self.take_summaries(None)
        if self._writer is not None:
            self._writer.close()
