"""Load a run directory (``reports/<run-id>/``) into typed records, in memory.

Files (docs/ARCHITECTURE.md, "Run data"; names and record types: :mod:`jabberemu.rundata`):
``run.json`` (required), ``client_events.jsonl``, ``server_events.jsonl``, ``server_metrics.jsonl``,
``generator.jsonl`` (each optional: a missing one is a warning; each possibly in rotated, compressed
segments, read in order) and Locust's ``*_stats.csv`` from ``--csv`` (optional, shown as-is).

Tolerated, with a warning: a truncated or unparsable *last* line of a JSONL file (the writer was
killed mid-line), an unknown client record ``type`` (a newer writer). Refused with
:class:`RunDataError` naming file and line: a bad line anywhere else, a record missing a field the
report needs, a value of the wrong type.

This loader holds every record; ``jabberemu report`` streams instead (``report.stream``), and the
two give the same summary on the same run (a test).
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from jabberemu.report.errors import RunDataError
from jabberemu.report.records import (
    Action,
    ActionKind,
    PlannedAction,
    RunData,
    RunInfo,
)
from jabberemu.rundata.codec import Obj as _Obj
from jabberemu.rundata.codec import SchemaError
from jabberemu.rundata.codec import flag as _flag
from jabberemu.rundata.codec import num as _num
from jabberemu.rundata.codec import req_num as _req_num
from jabberemu.rundata.codec import req_text as _req_text
from jabberemu.rundata.codec import opt_text
from jabberemu.rundata.files import (
    CLIENT_EVENTS_FILE,
    GENERATOR_FILE,
    RUN_FILE,
    SERVER_EVENTS_FILE,
    SERVER_METRICS_FILE,
)
from jabberemu.rundata.records import (
    ConnectedRecord,
    EndRecord,
    GeneratorSample,
    HaEventRecord,
    RequestRecord,
    RequestSummaryRecord,
    ServerEvent,
    StateRecord,
    WaitRecord,
    decode_client_record,
    metric_rows,
)
from jabberemu.rundata.segments import BadLineError, JsonlReader

__all__ = [
    "CLIENT_EVENTS_FILE",
    "DEFAULT_RECOVERY_MARGIN_S",
    "GENERATOR_FILE",
    "RUN_FILE",
    "SERVER_EVENTS_FILE",
    "SERVER_METRICS_FILE",
    "load_run",
    "load_locust_stats",
    "load_run_info",
    "parse_record",
    "read_jsonl",
]

logger = logging.getLogger(__name__)

#: Default of ``run.json`` ``recovery_margin_s`` (s) when the run did not declare one.
DEFAULT_RECOVERY_MARGIN_S = 5.0

T = TypeVar("T")
_Bad = SchemaError


def _text(obj: _Obj, key: str, *, optional: bool = False) -> str | None:
    return opt_text(obj, key) if optional else _req_text(obj, key)


def load_run_info(path: Path) -> RunInfo:
    """Read ``run.json``.

    Raises:
        RunDataError: missing, unreadable, or a field of the wrong type.
    """
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunDataError(path, "missing: not a run directory (run.json is required)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunDataError(path, f"unreadable: {exc}") from exc
    if not isinstance(raw, dict):
        raise RunDataError(path, "must hold a JSON object")
    try:
        actions = []
        for i, item in enumerate(raw.get("actions") or []):
            if not isinstance(item, dict):
                raise _Bad(f"actions[{i}] must be an object")
            verb = _req_text(item, "action")
            status = _num(item, "status", optional=True)
            error = _text(item, "error", optional=True)
            if error is None and status is not None and status >= 400:
                error = f"HTTP {int(status)}"
            elif error is not None and status is not None:
                error = f"HTTP {int(status)}: {error}"
            actions.append(Action(ts=_req_num(item, "ts"), name=verb, node=_text(item, "node", optional=True),
                                  kind=ActionKind.parse(verb), error=error))
        planned = []
        for i, item in enumerate(raw.get("planned_actions") or []):
            if not isinstance(item, dict):
                raise _Bad(f"planned_actions[{i}] must be an object")
            verb = _req_text(item, "action")
            planned.append(PlannedAction(name=verb, node=_text(item, "node", optional=True),
                                         at_s=_req_num(item, "at_s"), after_ready=_flag(item, "after_ready", False),
                                         kind=ActionKind.parse(verb)))
        clients = _num(raw, "clients", optional=True)
        margin = _num(raw, "recovery_margin_s", optional=True)
        known = {"run_id", "started_ts", "clients", "lower_s", "upper_s", "server_login_rate",
                 "recovery_margin_s", "actions", "partial", "ended_ts", "max_login_wait_s", "planned_actions"}
        return RunInfo(
            run_id=_text(raw, "run_id", optional=True) or path.parent.name,
            started_ts=_req_num(raw, "started_ts"),
            clients=int(clients) if clients is not None else None,
            lower_s=_num(raw, "lower_s", optional=True),
            upper_s=_num(raw, "upper_s", optional=True),
            server_login_rate=_num(raw, "server_login_rate", optional=True),
            recovery_margin_s=DEFAULT_RECOVERY_MARGIN_S if margin is None else margin,
            actions=tuple(sorted(actions, key=lambda a: a.ts)),
            partial=_flag(raw, "partial", False),
            ended_ts=_num(raw, "ended_ts", optional=True),
            max_login_wait_s=_num(raw, "max_login_wait_s", optional=True),
            planned_actions=tuple(planned),
            extra={k: v for k, v in raw.items() if k not in known},
        )
    except ValueError as exc:
        raise RunDataError(path, str(exc)) from exc


def read_jsonl(run_dir: Path, name: str, warnings: list[str], *,
               prefilter: str | None = None) -> Iterator[tuple[Path, int, _Obj]]:
    """Yield (segment, line number, object) of every segment of ``name``; a missing file is a warning.

    Args:
        prefilter: parse only the lines holding this text (a cheap first cut).
    Raises:
        RunDataError: a bad line other than the last one of the last segment (file and line named).
    """
    reader = JsonlReader(run_dir, name, warnings, prefilter=prefilter)
    if not reader.exists:
        warnings.append(f"{name} missing: its part of the report is empty")
        return
    try:
        for path, line, obj in reader:
            yield path, line, obj
    except BadLineError as exc:
        raise RunDataError(exc.path, exc.message, line=exc.line) from exc


def parse_record(path: Path, line: int, parser: Callable[[_Obj], T], obj: _Obj) -> T:
    """``parser(obj)``, its schema errors raised as :class:`RunDataError` naming file and line."""
    try:
        return parser(obj)
    except (SchemaError, ValueError, TypeError) as exc:
        raise RunDataError(path, str(exc), line=line) from exc


_CLIENT_LISTS: dict[type[Any], str] = {
    StateRecord: "states", HaEventRecord: "ha_events", WaitRecord: "waits", RequestRecord: "requests",
    RequestSummaryRecord: "request_summaries", ConnectedRecord: "connected", EndRecord: "ends",
}


def _load_client_events(run_dir: Path, data: RunData) -> None:
    unknown: dict[str, int] = {}
    lists = {cls: getattr(data, attr) for cls, attr in _CLIENT_LISTS.items()}
    for path, line, obj in read_jsonl(run_dir, CLIENT_EVENTS_FILE, data.warnings):
        record = parse_record(path, line, decode_client_record, obj)
        if record is None:
            kind = str(obj.get("type"))
            unknown[kind] = unknown.get(kind, 0) + 1
            continue
        lists[type(record)].append(record)
    for kind, count in sorted(unknown.items()):
        data.warnings.append(f"{CLIENT_EVENTS_FILE}: {count} records of unknown type {kind!r} ignored")


def load_locust_stats(run_dir: Path, data: RunData) -> None:
    """Read Locust's ``*_stats.csv`` (the first one found) into ``data.locust_stats``."""
    for path in sorted(run_dir.glob("*_stats.csv")):
        try:
            with path.open(newline="", encoding="utf-8") as fh:
                data.locust_stats.extend(dict(row) for row in csv.DictReader(fh))
        except (OSError, csv.Error, UnicodeDecodeError) as exc:
            data.warnings.append(f"{path.name}: unreadable Locust CSV ignored ({exc})")
        break


def load_run(run_dir: Path | str) -> RunData:
    """Load one run directory.

    Args:
        run_dir: the ``reports/<run-id>/`` directory.
    Returns:
        The run's records, each list sorted by ``ts``; ``warnings`` says what was tolerated.
    Raises:
        RunDataError: ``run.json`` missing or bad, or a bad record (file and line named).
    """
    run_dir = Path(run_dir)
    info = load_run_info(run_dir / RUN_FILE)
    data = RunData(run_dir=run_dir, info=info)
    _load_client_events(run_dir, data)
    for path, line, obj in read_jsonl(run_dir, SERVER_EVENTS_FILE, data.warnings):
        data.server_events.append(parse_record(path, line, ServerEvent.from_wire, obj))
    for path, line, obj in read_jsonl(run_dir, SERVER_METRICS_FILE, data.warnings):
        data.server_metrics.extend(parse_record(path, line, metric_rows, obj))
    for path, line, obj in read_jsonl(run_dir, GENERATOR_FILE, data.warnings):
        data.generator.append(parse_record(path, line, GeneratorSample.from_wire, obj))
    load_locust_stats(run_dir, data)
    for name in ("states", "ha_events", "waits", "requests", "request_summaries", "connected", "ends",
                 "server_events", "server_metrics", "generator"):
        getattr(data, name).sort(key=lambda r: r.ts)
    if info.partial:
        data.warnings.insert(0, "partial run: the run was stopped before its end; numbers cover what was recorded")
    logger.debug("loaded %s: %s client records", run_dir, sum(len(getattr(data, n)) for n in _ATTRS))
    return data


_ATTRS = ("states", "ha_events", "waits", "requests", "request_summaries", "connected", "ends")
