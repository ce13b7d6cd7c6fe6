"""Issue 18: one run-data schema. Every client record type, written by the real writer path with
every field set, read back by the report's loader, equals what was written, field by field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from rundata_support import STARTED_TS, wire_records, write_run_json

from jabberemu.config import ClientSettings, NodeAddress, ReloginLimits, ServerPair
from jabberemu.core import events as ev
from jabberemu.core.metrics import SOAP_SESSION_LOGIN, XMPP_MESSAGE_LATENCY, XMPP_PING, Measurement
from jabberemu.core.states import ClientState, EndReason
from jabberemu.driver import EmulatedClient
from jabberemu.errors import SoapFault
from jabberemu.report.data import load_run
from jabberemu.rundata import DetailLevel, RecordType, RunDataSink
from jabberemu.runtime import Clock, Runtime, make_ssl_context

N1, N2 = "imp1.example.test", "imp2.example.test"


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def mono(self) -> float:
        return self.now

    def wall(self) -> float:
        return STARTED_TS + self.now


def _runtime(sink: RunDataSink, clock: _Clock) -> Runtime:
    pair = ServerPair(nodes=(NodeAddress(name=N1, cpa_url=None, xmpp_host="127.0.0.1", xmpp_port=5222),
                             NodeAddress(name=N2, cpa_url=None, xmpp_host="127.0.0.1", xmpp_port=5223)),
                      domain="example.test")
    settings = ClientSettings(xmpp_only=True, verify_tls=False, default_limits=ReloginLimits(lower_s=10, upper_s=20))
    return Runtime(pair=pair, settings=settings, ssl_context=make_ssl_context(False), cpa=None, transport=None,
                   clock=Clock(monotonic=clock.mono, wall=clock.wall), sink=sink)


def _drive_one_client(rt: Runtime, clock: _Clock) -> None:
    """The driver's own record path (``EmulatedClient._do``) for every record it writes."""
    client = EmulatedClient("alice", "secret", N1, rt)
    client._do(ev.HaEventSeen(node=N1, cls="stream-error:system-shutdown"))
    client._do(ev.StateChanged(from_state=ClientState.XMPPCONNECTED, to_state=ClientState.FAILOVER, node=N1,
                               round=1, reason="stream-error:system-shutdown"))
    client._do(ev.WaitDrawn(wait_s=12.5, lower_s=10.0, upper_s=20.0, round=1, limits_node=N1))
    clock.now += 12.75
    rt.report("alice", Measurement.of(SOAP_SESSION_LOGIN, 31.25, node=N2,
                                      exception=SoapFault(node=N2, code="server-busy", reason="busy",
                                                          sender_fault=False),
                                      cause="soap-fault:server-busy"))
    client._do(ev.Connected(node=N2, relogin=True))
    client._do(ev.EnterEndState(state=ClientState.GAVE_UP, reason=EndReason.RELOGIN_FAILED, detail="no node left"))


def _assert_round_trip(run_dir: Path, expected_types: set[str]) -> list[dict[str, Any]]:
    write_run_json(run_dir)
    raw = wire_records(run_dir)
    data = load_run(run_dir)
    read = [r.to_wire() for r in (*data.states, *data.ha_events, *data.waits, *data.requests,
                                  *data.request_summaries, *data.connected, *data.ends)]

    def key(o: dict[str, Any]) -> tuple[float, str]:
        return o["ts"], json.dumps(o, sort_keys=True)

    assert len(read) == len(raw)
    assert {o["type"] for o in raw} == expected_types
    for obj, back in zip(sorted(raw, key=key), sorted(read, key=key)):
        # every written field read back with its value; the schema adds only the optional fields the
        # writer left out, as null
        assert {k: v for k, v in back.items() if k in obj or v is not None} == obj
    assert not [w for w in data.warnings if "client_events" in w]
    return raw


async def test_the_driver_and_runtime_records_survive_the_loader(tmp_path: Path) -> None:
    clock = _Clock()
    sink = RunDataSink(tmp_path)
    rt = _runtime(sink, clock)
    _drive_one_client(rt, clock)
    sink.emit(RecordType.END, clock.wall(), client="bob", state="GAVE_UP",  # loadgen/user.py's record
              reason="initial-login-failed", detail="never started", error="ConfigError: no user")
    sink.close()
    raw = _assert_round_trip(tmp_path, {"state", "ha_event", "wait", "request", "connected", "end"})
    for obj in raw:  # every field set: nothing passes the test by being null on both sides
        full = obj["type"] not in ("end", "request") or obj.get("client") == "bob" or obj.get("ok") is False
        if full:
            assert None not in obj.values(), obj
    (state,) = [o for o in raw if o["type"] == "state"]
    assert (state["from"], state["to"], state["round"]) == ("XMPPCONNECTED", "FAILOVER", 1)
    (wait,) = [o for o in raw if o["type"] == "wait"]
    assert wait["round"] == 1
    data = load_run(tmp_path)
    assert data.states[0].round == 1 and data.waits[0].round == 1
    assert data.connected[0].recovery_s == pytest.approx(12.75)
    assert [e.detail for e in data.ends] == ["no node left", "never started"]
    assert data.ends[1].error == "ConfigError: no user"
    (busy,) = [r for r in data.requests if r.name == "session-login"]
    assert (busy.ok, busy.cause, busy.node, busy.response_time_ms) == (False, "soap-fault:server-busy", N2, 31.25)


async def test_summary_records_survive_the_loader(tmp_path: Path) -> None:
    clock = _Clock()
    sink = RunDataSink(tmp_path, detail=DetailLevel.SUMMARY)
    rt = _runtime(sink, clock)
    for i in range(10):
        clock.now = 200.0 + i * 0.25  # seconds 200, 201, 202 (epoch + 200 ...)
        rt.report("alice", Measurement.of(XMPP_PING, 2.0 + i, node=N1))
        rt.report("alice", Measurement.of(XMPP_MESSAGE_LATENCY, 5.0 + i, node=N2,
                                          exception=None if i % 3 else TimeoutError("lost"),
                                          cause=None if i % 3 else "timeout:message"))
    rt.report("alice", Measurement.of(SOAP_SESSION_LOGIN, 40.0, node=N2))  # a re-login step: kept whole
    sink.close()
    raw = _assert_round_trip(tmp_path, {"request", "request_summary"})
    summaries = [o for o in raw if o["type"] == "request_summary"]
    assert sum(o["count"] for o in summaries) == 20
    assert sum(o["failures"].get("timeout:message", 0) for o in summaries) == 4
    assert [o["name"] for o in raw if o["type"] == "request"] == ["session-login"]
