"""Load a run directory (``reports/<run-id>/``) into typed records.

Files (docs/ARCHITECTURE.md, "Run data"): ``run.json`` (required), ``client_events.jsonl``,
``server_events.jsonl``, ``server_metrics.jsonl``, ``generator.jsonl`` (each optional: a missing
one is a warning) and Locust's ``*_stats.csv`` from ``--csv`` (optional, shown as-is).

Tolerated, with a warning: a truncated or unparsable *last* line of a JSONL file (the writer was
killed mid-line), an unknown client record ``type`` (a newer writer). Refused with
:class:`RunDataError` naming file and line: a bad line anywhere else, a record missing a field the
report needs, a value of the wrong type.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from jabberemu.report.errors import RunDataError
from jabberemu.report.records import (
    Action,
    ActionKind,
    ConnectedRecord,
    EndRecord,
    GeneratorSample,
    HaEventRecord,
    PlannedAction,
    RequestRecord,
    RunData,
    RunInfo,
    ServerEvent,
    ServerMetric,
    StateRecord,
    WaitRecord,
)

__all__ = [
    "CLIENT_EVENTS_FILE",
    "GENERATOR_FILE",
    "RUN_FILE",
    "SERVER_EVENTS_FILE",
    "SERVER_METRICS_FILE",
    "load_run",
]

logger = logging.getLogger(__name__)

RUN_FILE = "run.json"
CLIENT_EVENTS_FILE = "client_events.jsonl"
SERVER_EVENTS_FILE = "server_events.jsonl"
SERVER_METRICS_FILE = "server_metrics.jsonl"
GENERATOR_FILE = "generator.jsonl"

#: Default of ``run.json`` ``recovery_margin_s`` (s) when the run did not declare one.
DEFAULT_RECOVERY_MARGIN_S = 5.0

T = TypeVar("T")
_Obj = Mapping[str, Any]


class _Bad(ValueError):
    """Internal: a field problem, turned into RunDataError with file and line by the caller."""


def _num(obj: _Obj, key: str, *, optional: bool = False) -> float | None:
    value = obj.get(key)
    if value is None:
        if optional:
            return None
        raise _Bad(f"missing field {key!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Bad(f"field {key!r} must be a number, got {value!r}")
    if not math.isfinite(value):
        if optional:
            return None
        raise _Bad(f"field {key!r} must be finite, got {value!r}")
    return float(value)


def _req_num(obj: _Obj, key: str) -> float:
    value = _num(obj, key)
    assert value is not None
    return value


def _text(obj: _Obj, key: str, *, optional: bool = False) -> str | None:
    value = obj.get(key)
    if value is None:
        if optional:
            return None
        raise _Bad(f"missing field {key!r}")
    if isinstance(value, (dict, list)):
        raise _Bad(f"field {key!r} must be a string, got {value!r}")
    return str(value)


def _req_text(obj: _Obj, key: str) -> str:
    value = _text(obj, key)
    assert value is not None
    return value


def _flag(obj: _Obj, key: str, default: bool) -> bool:
    value = obj.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _Bad(f"field {key!r} must be true/false, got {value!r}")
    return value


def _load_run_info(path: Path) -> RunInfo:
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
    except (_Bad, ValueError) as exc:
        raise RunDataError(path, str(exc)) from exc


def _jsonl(path: Path, warnings: list[str]) -> Iterator[tuple[int, _Obj]]:
    """Yield (line number, object) of a JSONL file; tolerate a bad last line."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        warnings.append(f"{path.name} missing: its part of the report is empty")
        return
    except OSError as exc:
        raise RunDataError(path, f"unreadable: {exc}") from exc
    lines = text.split("\n")
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            if i == last:
                warnings.append(f"{path.name}:{i + 1}: truncated last line ignored (run cut short?)")
                logger.warning("%s:%s: truncated last line ignored", path, i + 1)
                return
            raise RunDataError(path, f"not JSON: {exc.msg}", line=i + 1) from exc
        if not isinstance(obj, dict):
            raise RunDataError(path, "each line must be a JSON object", line=i + 1)
        yield i + 1, obj


def _state(o: _Obj) -> StateRecord:
    return StateRecord(ts=_req_num(o, "ts"), client=_req_text(o, "client"), from_state=_text(o, "from", optional=True) or "",
                       to_state=_req_text(o, "to"), node=_text(o, "node", optional=True),
                       reason=_text(o, "reason", optional=True), round=_round(o))


def _round(o: _Obj) -> int | None:
    value = _num(o, "round", optional=True)
    return None if value is None else int(value)


def _ha(o: _Obj) -> HaEventRecord:
    return HaEventRecord(ts=_req_num(o, "ts"), client=_req_text(o, "client"), node=_text(o, "node", optional=True),
                         cls=_text(o, "cls", optional=True) or "unknown")


def _wait(o: _Obj) -> WaitRecord:
    return WaitRecord(ts=_req_num(o, "ts"), client=_req_text(o, "client"), wait_s=_req_num(o, "wait_s"),
                      lower_s=_req_num(o, "lower_s"), upper_s=_req_num(o, "upper_s"))


def _request(o: _Obj) -> RequestRecord:
    rt = _num(o, "response_time_ms", optional=True)
    return RequestRecord(ts=_req_num(o, "ts"), client=_req_text(o, "client"), request_type=_req_text(o, "request_type"),
                         name=_req_text(o, "name"), node=_text(o, "node", optional=True),
                         response_time_ms=rt if rt is None or rt >= 0 else None,
                         ok=_flag(o, "ok", True), error=_text(o, "error", optional=True),
                         cause=_text(o, "cause", optional=True))


def _connected(o: _Obj) -> ConnectedRecord:
    return ConnectedRecord(ts=_req_num(o, "ts"), client=_req_text(o, "client"), node=_text(o, "node", optional=True),
                           relogin=_flag(o, "relogin", False), recovery_s=_num(o, "recovery_s", optional=True))


def _end(o: _Obj) -> EndRecord:
    return EndRecord(ts=_req_num(o, "ts"), client=_req_text(o, "client"), state=_req_text(o, "state"),
                     reason=_text(o, "reason", optional=True))


_CLIENT_PARSERS: dict[str, tuple[str, Callable[[_Obj], Any]]] = {
    "state": ("states", _state), "ha_event": ("ha_events", _ha), "wait": ("waits", _wait),
    "request": ("requests", _request), "connected": ("connected", _connected), "end": ("ends", _end),
}


def _parse(path: Path, line: int, parser: Callable[[_Obj], T], obj: _Obj) -> T:
    try:
        return parser(obj)
    except (_Bad, ValueError, TypeError) as exc:
        raise RunDataError(path, str(exc), line=line) from exc


def _load_client_events(path: Path, data: RunData) -> None:
    unknown: dict[str, int] = {}
    for line, obj in _jsonl(path, data.warnings):
        kind = obj.get("type")
        entry = _CLIENT_PARSERS.get(kind) if isinstance(kind, str) else None
        if entry is None:
            if not isinstance(kind, str):
                raise RunDataError(path, f"missing or bad field 'type': {kind!r}", line=line)
            unknown[kind] = unknown.get(kind, 0) + 1
            continue
        attr, parser = entry
        getattr(data, attr).append(_parse(path, line, parser, obj))
    for kind, count in sorted(unknown.items()):
        data.warnings.append(f"{path.name}: {count} records of unknown type {kind!r} ignored")


def _server_event(o: _Obj) -> ServerEvent:
    return ServerEvent(ts=_req_num(o, "ts"), node=_text(o, "node", optional=True),
                       kind=_text(o, "kind", optional=True) or "transition",
                       from_state=_text(o, "from", optional=True), to_state=_text(o, "to", optional=True),
                       reason=_text(o, "reason", optional=True), action=_text(o, "action", optional=True),
                       service=_text(o, "service", optional=True))


def _metric_rows(o: _Obj) -> list[ServerMetric]:
    """Accept ``{"ts", "node", <numbers>}`` or ``{"ts", "nodes": {name: {<numbers>}} | [{"node"...}]}``."""
    ts = _req_num(o, "ts")
    nodes = o.get("nodes")
    if nodes is None:
        items = [(_req_text(o, "node"), o)]
    elif isinstance(nodes, dict):
        items = [(str(k), v) for k, v in nodes.items()]
    elif isinstance(nodes, list):
        items = [(_req_text(v, "node") if isinstance(v, dict) else "?", v) for v in nodes]
    else:
        raise _Bad(f"field 'nodes' must be an object or a list, got {nodes!r}")
    rows = []
    for name, values in items:
        if not isinstance(values, dict):
            raise _Bad(f"metrics of node {name!r} must be an object")
        numbers = {k: float(v) for k, v in values.items()
                   if k not in ("ts", "node") and isinstance(v, (int, float)) and not isinstance(v, bool)}
        rows.append(ServerMetric(ts=ts, node=name, values=numbers))
    return rows


def _generator(o: _Obj) -> GeneratorSample:
    return GeneratorSample(ts=_req_num(o, "ts"), worker=_text(o, "worker", optional=True) or "local",
                           cpu_percent=_num(o, "cpu_percent", optional=True),
                           loop_lag_ms=_num(o, "loop_lag_ms", optional=True),
                           stalled_ms=_num(o, "stalled_ms", optional=True), gc_ms=_num(o, "gc_ms", optional=True),
                           gc_max_ms=_num(o, "gc_max_ms", optional=True),
                           rss_bytes=_num(o, "rss_bytes", optional=True))


def _load_locust_stats(run_dir: Path, data: RunData) -> None:
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
    info = _load_run_info(run_dir / RUN_FILE)
    data = RunData(run_dir=run_dir, info=info)
    _load_client_events(run_dir / CLIENT_EVENTS_FILE, data)
    path = run_dir / SERVER_EVENTS_FILE
    for line, obj in _jsonl(path, data.warnings):
        data.server_events.append(_parse(path, line, _server_event, obj))
    path = run_dir / SERVER_METRICS_FILE
    for line, obj in _jsonl(path, data.warnings):
        data.server_metrics.extend(_parse(path, line, _metric_rows, obj))
    path = run_dir / GENERATOR_FILE
    for line, obj in _jsonl(path, data.warnings):
        data.generator.append(_parse(path, line, _generator, obj))
    _load_locust_stats(run_dir, data)
    for name in ("states", "ha_events", "waits", "requests", "connected", "ends", "server_events",
                 "server_metrics", "generator"):
        getattr(data, name).sort(key=lambda r: r.ts)
    if info.partial:
        data.warnings.insert(0, "partial run: the run was stopped before its end; numbers cover what was recorded")
    logger.debug("loaded %s: %s client records", run_dir, sum(len(getattr(data, n)) for n in _ATTRS))
    return data


_ATTRS = ("states", "ha_events", "waits", "requests", "connected", "ends")
