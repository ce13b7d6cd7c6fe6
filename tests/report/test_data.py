"""Loading run directories: contract fields, tolerated truncation, errors naming file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from synthetic_run import STARTED_TS, SimConfig, simulate

from jabberemu.report.data import load_run
from jabberemu.report.errors import ReportError, RunDataError
from jabberemu.report.records import ActionKind


def _small(tmp_path: Path, **kw: object):
    return simulate(tmp_path / "run", SimConfig(clients=20, ramp_per_s=50, lower_s=1, upper_s=3, **kw))


def test_loads_every_record_kind(tmp_path: Path) -> None:
    truth = _small(tmp_path, fallback_at_s=8)
    data = load_run(truth.run_dir)
    assert data.info.started_ts == STARTED_TS
    assert data.info.clients == 20
    assert (data.info.lower_s, data.info.upper_s) == (1, 3)
    assert data.info.recovery_margin_s == 5.0  # default when run.json declares none
    assert [a.kind for a in data.info.actions] == [ActionKind.FAILOVER, ActionKind.FALLBACK]
    assert len(data.ha_events) == 20  # 10 clients of imp1, out and back
    assert len(data.waits) == 20
    assert sum(1 for c in data.connected if c.relogin) == 20
    assert len(data.ends) == 20
    assert len(data.clients) == 20
    assert len(data.server_events) == 8
    assert len(data.server_metrics) > 0 and len(data.generator) > 0
    assert all(a.ts <= b.ts for a, b in zip(data.states, data.states[1:]))
    assert data.warnings == []


def test_truncated_last_line_is_tolerated_with_a_warning(tmp_path: Path) -> None:
    truth = _small(tmp_path)
    path = truth.run_dir / "client_events.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines) + lines[-1][:17])  # writer killed mid-line
    data = load_run(truth.run_dir)
    assert sum(1 for _ in data.states) + len(data.requests) + len(data.connected) + len(data.ends) \
        + len(data.waits) + len(data.ha_events) == len(lines)
    assert any("truncated last line" in w and f":{len(lines) + 1}" in w for w in data.warnings)


def test_bad_line_in_the_middle_names_file_and_line(tmp_path: Path) -> None:
    truth = _small(tmp_path)
    path = truth.run_dir / "client_events.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    lines[4] = "{not json\n"
    path.write_text("".join(lines))
    with pytest.raises(RunDataError) as info:
        load_run(truth.run_dir)
    assert info.value.path == path and info.value.line == 5
    assert "client_events.jsonl:5" in str(info.value)


def test_missing_field_names_the_field(tmp_path: Path) -> None:
    truth = _small(tmp_path)
    path = truth.run_dir / "client_events.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    record = json.loads(lines[2])
    del record["client"]
    lines[2] = json.dumps(record) + "\n"
    path.write_text("".join(lines))
    with pytest.raises(RunDataError, match=r"client_events.jsonl:3: missing field 'client'") as info:
        load_run(truth.run_dir)
    assert isinstance(info.value, ReportError)


def test_wrong_type_is_refused(tmp_path: Path) -> None:
    truth = _small(tmp_path)
    path = truth.run_dir / "generator.jsonl"
    path.write_text(json.dumps({"ts": STARTED_TS, "worker": "w", "cpu_percent": "high"}) + "\n"
                    + json.dumps({"ts": STARTED_TS + 1, "worker": "w", "cpu_percent": 3}) + "\n")
    with pytest.raises(RunDataError, match=r"generator.jsonl:1: field 'cpu_percent' must be a number"):
        load_run(truth.run_dir)


def test_missing_run_json_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RunDataError, match="run.json.*required"):
        load_run(tmp_path)


def test_missing_optional_files_and_unknown_types_are_warnings(tmp_path: Path) -> None:
    truth = _small(tmp_path)
    (truth.run_dir / "server_metrics.jsonl").unlink()
    with (truth.run_dir / "client_events.jsonl").open("a") as fh:
        fh.write(json.dumps({"ts": STARTED_TS + 1, "type": "future-thing", "client": "x"}) + "\n")
    data = load_run(truth.run_dir)
    assert data.server_metrics == []
    assert any("server_metrics.jsonl missing" in w for w in data.warnings)
    assert any("1 records of unknown type 'future-thing'" in w for w in data.warnings)


def test_partial_flag_and_nested_metrics(tmp_path: Path) -> None:
    truth = _small(tmp_path, stop_at_s=2.0)
    (truth.run_dir / "server_metrics.jsonl").write_text(json.dumps(
        {"ts": STARTED_TS, "nodes": {"imp1": {"active_sessions": 4, "state": "Normal"}, "imp2": {"active_sessions": 6}}}) + "\n")
    data = load_run(truth.run_dir)
    assert data.info.partial is True
    assert data.warnings[0].startswith("partial run")
    assert {(m.node, m.values["active_sessions"]) for m in data.server_metrics} == {("imp1", 4.0), ("imp2", 6.0)}
    assert "state" not in data.server_metrics[0].values


def test_action_verbs_are_normalised() -> None:
    assert ActionKind.parse("Node_Kill") is ActionKind.KILL
    assert ActionKind.parse("service-stop") is ActionKind.SERVICE_STOP
    assert ActionKind.parse("dance") is ActionKind.OTHER
    assert ActionKind.KILL.moves_sessions_away and not ActionKind.FALLBACK.moves_sessions_away
