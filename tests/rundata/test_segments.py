"""Rotated, compressed segments: read back in write order, a cut last line or segment tolerated."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from rundata_support import wire_records, write_run_json

from jabberemu.report.data import load_run
from jabberemu.report.errors import RunDataError
from jabberemu.rundata import CLIENT_EVENTS_FILE, JsonlReader, RotatingJsonlWriter, segment_paths
from jabberemu.rundata.segments import BadLineError


def _write(run_dir: Path, n: int, rotate_bytes: int) -> RotatingJsonlWriter:
    w = RotatingJsonlWriter(run_dir, CLIENT_EVENTS_FILE, rotate_bytes=rotate_bytes, buffer_bytes=256)
    for i in range(n):
        w.write({"type": "end", "ts": 1_700_000_000.0 + i, "client": f"u{i:04d}", "state": "LOGGED_OUT",
                 "reason": "stop-requested"})
    w.close()
    return w


def test_rotation_compresses_segments_and_reads_back_in_order(tmp_path: Path) -> None:
    w = _write(tmp_path, 1000, rotate_bytes=10_000)
    paths = segment_paths(tmp_path, CLIENT_EVENTS_FILE)
    assert w.segments_closed == len(paths) - 1 >= 9
    assert [p.name for p in paths[:3]] == [f"client_events.000{i}.jsonl.gz" for i in (1, 2, 3)]
    assert paths[-1].name == CLIENT_EVENTS_FILE
    assert all(p.suffix == ".gz" for p in paths[:-1])
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob("client_events.0*.jsonl"))
    raw = wire_records(tmp_path)
    assert [r["client"] for r in raw] == [f"u{i:04d}" for i in range(1000)]
    on_disk = sum(p.stat().st_size for p in paths)
    assert on_disk < w.bytes_written / 3  # gzip of JSON lines


def test_a_writer_reopened_continues_the_numbering(tmp_path: Path) -> None:
    _write(tmp_path, 300, rotate_bytes=10_000)
    before = segment_paths(tmp_path, CLIENT_EVENTS_FILE)
    w = RotatingJsonlWriter(tmp_path, CLIENT_EVENTS_FILE, rotate_bytes=10_000)
    w.write({"type": "end", "ts": 1.0, "client": "late", "state": "GAVE_UP", "reason": None})
    w.rotate()
    after = segment_paths(tmp_path, CLIENT_EVENTS_FILE)
    assert [p.name for p in after] == [p.name for p in before[:-1]] + [f"client_events.{len(before):04d}.jsonl.gz"]
    assert wire_records(tmp_path)[-1]["client"] == "late"


def test_a_truncated_last_line_is_tolerated_with_a_warning(tmp_path: Path) -> None:
    _write(tmp_path, 400, rotate_bytes=10_000)
    live = tmp_path / CLIENT_EVENTS_FILE
    live.write_text(live.read_text() + '{"type":"end","ts":1700000999.0,"cli')  # killed mid-line
    lines = live.read_text().count("\n")
    warnings: list[str] = []
    records = [obj for _p, _l, obj in JsonlReader(tmp_path, CLIENT_EVENTS_FILE, warnings)]
    assert len(records) == 400
    assert warnings == [f"client_events.jsonl:{lines + 1}: truncated last line ignored (run cut short?)"]
    write_run_json(tmp_path)
    assert len(load_run(tmp_path).ends) == 400


def test_a_cut_last_compressed_segment_keeps_its_readable_lines(tmp_path: Path) -> None:
    _write(tmp_path, 400, rotate_bytes=10_000)
    (tmp_path / CLIENT_EVENTS_FILE).unlink()  # the process died while compressing its last segment
    *whole, last = segment_paths(tmp_path, CLIENT_EVENTS_FILE)
    before = sum(gzip.decompress(p.read_bytes()).count(b"\n") for p in whole)
    data = last.read_bytes()
    in_last = gzip.decompress(data).count(b"\n")
    last.write_bytes(data[: len(data) * 2 // 3])
    warnings: list[str] = []
    records = [obj for _p, _l, obj in JsonlReader(tmp_path, CLIENT_EVENTS_FILE, warnings)]
    assert before < len(records) < before + in_last
    assert [r["client"] for r in records] == [f"u{i:04d}" for i in range(len(records))]
    assert any("cut short" in w for w in warnings)


def test_a_bad_line_inside_a_segment_is_refused_with_file_and_line(tmp_path: Path) -> None:
    _write(tmp_path, 300, rotate_bytes=10_000)
    first = segment_paths(tmp_path, CLIENT_EVENTS_FILE)[0]
    lines = gzip.decompress(first.read_bytes()).decode().splitlines(keepends=True)
    lines[-1] = "{broken\n"  # the last line of a closed segment is no excuse
    first.write_bytes(gzip.compress("".join(lines).encode()))
    with pytest.raises(BadLineError) as info:
        list(JsonlReader(tmp_path, CLIENT_EVENTS_FILE, []))
    assert (info.value.path, info.value.line) == (first, len(lines))
    write_run_json(tmp_path)
    with pytest.raises(RunDataError, match=rf"{first.name}:{len(lines)}: not JSON"):
        load_run(tmp_path)


def test_a_leftover_plain_segment_is_read_and_a_whole_gz_wins(tmp_path: Path) -> None:
    _write(tmp_path, 300, rotate_bytes=10_000)
    gz = segment_paths(tmp_path, CLIENT_EVENTS_FILE)[0]
    plain = gz.with_name(gz.name[: -len(".gz")])
    plain.write_bytes(gzip.decompress(gz.read_bytes()))  # compression done, plain copy not yet removed
    assert segment_paths(tmp_path, CLIENT_EVENTS_FILE)[0] == gz
    gz.unlink()  # killed while compressing: only the plain segment is whole
    assert segment_paths(tmp_path, CLIENT_EVENTS_FILE)[0] == plain
    assert [r["client"] for r in wire_records(tmp_path)] == [f"u{i:04d}" for i in range(300)]


def test_old_runs_without_segments_read_as_before(tmp_path: Path) -> None:
    (tmp_path / CLIENT_EVENTS_FILE).write_text("".join(json.dumps(
        {"type": "end", "ts": 1.0 + i, "client": f"c{i}", "state": "LOGGED_OUT", "reason": None}) + "\n"
        for i in range(5)))
    assert [r["client"] for r in wire_records(tmp_path)] == [f"c{i}" for i in range(5)]
