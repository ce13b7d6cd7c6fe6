"""The run-data schema: one definition below the writers and the readers of ``reports/<run-id>/``.

What lives here (docs/ARCHITECTURE.md, "Run data"):

- ``actions``: :class:`ActionKind`, the one vocabulary of HA actions (``--drill`` steps, ``run.json``
  ``actions``, the report's reading of them);
- ``files``: the file names of a run directory and the order of rotated segments;
- ``records``: :class:`RecordType` and the typed records with their wire field names (a
  ``state`` record's ``from_state`` is ``"from"`` on the wire), each with ``to_wire`` / ``from_wire``;
- ``codec``: field checks shared by every ``from_wire`` (the reader's error messages);
- ``histogram``: the log-spaced latency histogram of aggregated requests;
- ``aggregate``: per-second aggregation of steady-state requests (``--record-detail summary``);
- ``segments``: the rotating, compressing JSONL writer and the reader of every segment in order;
- ``sink``: :class:`RunDataSink`, where the emulated clients hand their records.

Imports: the standard library and ``jabberemu.core`` (the measurement vocabulary) only. The runtime (writer), the Locust collector (writer) and the
report (reader) all import this package; it imports none of them.
"""

from __future__ import annotations

from jabberemu.rundata.actions import ActionKind
from jabberemu.rundata.aggregate import STEADY_REQUESTS, DetailLevel, RequestAggregator
from jabberemu.rundata.codec import SchemaError
from jabberemu.rundata.files import (
    CLIENT_EVENTS_FILE,
    GENERATOR_FILE,
    RUN_FILE,
    SERVER_EVENTS_FILE,
    SERVER_METRICS_FILE,
    segment_paths,
)
from jabberemu.rundata.histogram import LatencyHistogram
from jabberemu.rundata.records import (
    ClientRecord,
    ConnectedRecord,
    EndRecord,
    GeneratorSample,
    HaEventRecord,
    RecordType,
    RequestRecord,
    RequestSummaryRecord,
    ServerEvent,
    ServerMetric,
    StateRecord,
    WaitRecord,
    decode_client_record,
)
from jabberemu.rundata.segments import JsonlReader, RotatingJsonlWriter
from jabberemu.rundata.sink import RunDataSink

__all__ = [
    "ActionKind",
    "CLIENT_EVENTS_FILE",
    "GENERATOR_FILE",
    "RUN_FILE",
    "SERVER_EVENTS_FILE",
    "SERVER_METRICS_FILE",
    "STEADY_REQUESTS",
    "ClientRecord",
    "ConnectedRecord",
    "DetailLevel",
    "EndRecord",
    "GeneratorSample",
    "HaEventRecord",
    "JsonlReader",
    "LatencyHistogram",
    "RecordType",
    "RequestAggregator",
    "RequestRecord",
    "RequestSummaryRecord",
    "RotatingJsonlWriter",
    "RunDataSink",
    "SchemaError",
    "ServerEvent",
    "ServerMetric",
    "StateRecord",
    "WaitRecord",
    "decode_client_record",
    "segment_paths",
]
