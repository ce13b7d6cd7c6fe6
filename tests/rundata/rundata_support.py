"""Helpers of the run-data tests: a run directory, and the records a writer put on the wire."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jabberemu.rundata import CLIENT_EVENTS_FILE, JsonlReader

STARTED_TS = 1_700_000_000.0


def write_run_json(run_dir: Path, **extra: Any) -> None:
    """A minimal ``run.json`` (the loader requires one)."""
    run = {"run_id": run_dir.name, "started_ts": STARTED_TS, "clients": 1, "lower_s": 10.0, "upper_s": 20.0,
           "actions": [], "partial": False, **extra}
    (run_dir / "run.json").write_text(json.dumps(run), encoding="utf-8")


def wire_records(run_dir: Path) -> list[dict[str, Any]]:
    """Every object of every segment of ``client_events.jsonl``, as written."""
    warnings: list[str] = []
    out = [obj for _path, _line, obj in JsonlReader(run_dir, CLIENT_EVENTS_FILE, warnings)]
    assert warnings == []
    return out
