"""Failures by cause: one row per cause word, with counts, clients, first and last seen."""

from __future__ import annotations

from jabberemu.report.failures import failure_table
from jabberemu.report.records import RequestRecord

T0 = 1_700_000_000.0


def _req(ts: float, client: str, name: str, *, ok: bool = False, cause: str | None = None,
         error: str | None = None, node: str | None = "imp2", rtype: str = "soap") -> RequestRecord:
    return RequestRecord(ts=T0 + ts, client=client, request_type=rtype, name=name, node=node,
                         response_time_ms=5.0, ok=ok, error=error, cause=cause)


def test_failed_requests_group_by_cause_with_first_and_last_seen() -> None:
    records = [
        _req(12.0, "u2", "session-login", cause="soap-fault:server-busy", error="SoapFault: busy 2"),
        _req(10.0, "u1", "session-login", cause="soap-fault:server-busy", error="SoapFault: busy 1"),
        _req(30.5, "u1", "session-login", cause="soap-fault:server-busy", error="SoapFault: busy 3", node="imp1"),
        _req(11.0, "u3", "session-login", cause="timeout:soap", error="TimeoutError: soap"),
        _req(11.5, "u3", "session-login", ok=True),
        _req(40.0, "u4", "message-latency", rtype="xmpp", error="RuntimeError: not connected", node=None),
        _req(41.0, "u5", "message-latency", rtype="xmpp", error=None, node=None),
    ]
    rows = failure_table(records, started_ts=T0)
    assert [(r.cause, r.count, r.clients) for r in rows] == [
        ("soap-fault:server-busy", 3, 2),
        ("timeout:soap", 1, 1),
        ("unclassified", 1, 1),
        ("unclassified:RuntimeError", 1, 1),
    ]
    busy = rows[0]
    assert (busy.first_s, busy.last_s, busy.example) == (10.0, 30.5, "SoapFault: busy 1")
    assert busy.requests == {"soap/session-login": 3}
    assert busy.nodes == {"imp2": 2, "imp1": 1}
    assert rows[3].nodes == {"?": 1} and rows[3].requests == {"xmpp/message-latency": 1}


def test_no_failure_no_row() -> None:
    assert failure_table([_req(1.0, "u1", "login", ok=True)], started_ts=T0) == []
