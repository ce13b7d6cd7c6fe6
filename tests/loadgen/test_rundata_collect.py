"""The Locust collector writes the run-data schema: every record type, queued on the loop thread's
side, aggregated at ``summary`` detail, rotated and compressed, reads back field by field."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from types import SimpleNamespace

from jabberemu.loadgen.collect import QueueSink, RunCollector
from jabberemu.report.data import load_run
from jabberemu.rundata import CLIENT_EVENTS_FILE, DetailLevel, JsonlReader, RecordType, segment_paths

T0 = 1_700_000_000.0


def _emit_everything(sink: QueueSink, n: int) -> None:
    for i in range(n):
        ts = T0 + i * 0.05
        c = f"user{i % 40:05d}"
        sink.emit(RecordType.STATE, ts, client=c, **{"from": "XMPPCONNECTED", "to": "FAILOVER"}, node="imp1",
                  reason="stream-error:system-shutdown", round=1)
        sink.emit(RecordType.HA_EVENT, ts, client=c, node="imp1", cls="stream-error:system-shutdown")
        sink.emit(RecordType.WAIT, ts, client=c, wait_s=3.5, lower_s=1.0, upper_s=9.0, round=1)
        sink.emit(RecordType.REQUEST, ts, client=c, request_type="soap", name="session-login", node="imp2",
                  response_time_ms=12.5, ok=False, error="SoapFault: busy", cause="soap-fault:server-busy")
        sink.emit(RecordType.REQUEST, ts, client=c, request_type="xmpp", name="ping", node="imp2",
                  response_time_ms=1.0 + i % 7, ok=i % 5 != 0, error=None if i % 5 else "TimeoutError: ping",
                  cause=None if i % 5 else "timeout:ping")
        sink.emit(RecordType.CONNECTED, ts, client=c, node="imp2", relogin=True, recovery_s=4.25)
        sink.emit(RecordType.END, ts, client=c, state="LOGGED_OUT", reason="stop-requested", detail="bye")


def test_collector_path_round_trip_with_summaries_and_rotation(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    sink = QueueSink(DetailLevel.SUMMARY)
    collector = RunCollector(SimpleNamespace(runner=None), sink, run_dir, lambda: {"cpu_percent": 1.0},
                             rotate_bytes=20_000)
    loop_thread = threading.Thread(target=_emit_everything, args=(sink, 400))  # the clients' side
    loop_thread.start()
    loop_thread.join()
    collector.pump(final=True)
    collector.stop()
    (run_dir / "run.json").write_text(json.dumps({"run_id": "r", "started_ts": T0, "actions": []}))

    assert len(segment_paths(run_dir, CLIENT_EVENTS_FILE)) > 3
    warnings: list[str] = []
    raw = [obj for _p, _l, obj in JsonlReader(run_dir, CLIENT_EVENTS_FILE, warnings)]
    data = load_run(run_dir)
    read = [r.to_wire() for r in (*data.states, *data.ha_events, *data.waits, *data.requests,
                                  *data.request_summaries, *data.connected, *data.ends)]

    def key(o: dict[str, object]) -> str:
        return json.dumps(o, sort_keys=True)

    assert len(read) == len(raw) == collector.records_written
    for obj, back in zip(sorted(raw, key=key), sorted(read, key=key)):
        assert {k: v for k, v in back.items() if k in obj or v is not None} == obj
    assert len(data.states) == len(data.waits) == len(data.connected) == len(data.ends) == 400
    assert [r.name for r in data.requests] == ["session-login"] * 400  # re-login steps stay whole
    assert sum(s.count for s in data.request_summaries) == 400  # pings counted per second
    assert sum(s.failures.get("timeout:ping", 0) for s in data.request_summaries) == 80
    assert {s.ts for s in data.request_summaries} == {T0 + k for k in range(20)}
    assert all(s.round == 1 for s in data.states) and all(w.round == 1 for w in data.waits)
