"""Issue 19 on the Locust path: ``--record-detail summary`` (the default) reports the same sign-ins,
re-logins and waves as ``full``; the master polls the mock's admin API over the run (events, metric
rows, the node processes' RSS and CPU); the run data ends compressed; the header's limits are the
ones the server handed out."""

from __future__ import annotations

import json
from typing import Any

import pytest

from jabberemu.rundata import CLIENT_EVENTS_FILE, SERVER_EVENTS_FILE, SERVER_METRICS_FILE, JsonlReader, segment_paths

N = 40
NODE1, NODE2 = "imp1.example.test", "imp2.example.test"
FAST_SRM = ("--param", "heartbeat_interval_s=0.5", "--param", "heartbeat_timeout_s=5",
            "--param", "init_heartbeat_timeout_s=10")


def _run(mock_pair: Any, locust_run: Any, detail: str) -> tuple[Any, dict[str, Any]]:
    pair = mock_pair(N, "balanced", lower_s=1, upper_s=3, extra=FAST_SRM)
    run = locust_run("--headless", "-u", str(N), "-r", "40", "-t", "90s", "--topology", str(pair.topology),
                     "--drill", f"failover:{NODE1}@ready+2,fallback:{NODE1}@ready+11,stop@ready+20",
                     "--default-lower", "30", "--default-upper", "60",  # not what the mock hands out (1/3 s)
                     "--ping-interval", "1", "--message-rate", "0.5", "--record-detail", detail, "--report")
    code = run.wait(240)
    assert code == 0, run.err_text()[-3000:]
    return run, json.loads((run.run_dir / "summary.json").read_text(encoding="utf-8"))


def _rows(summary: dict[str, Any], rtype: str, name: str) -> int:
    return sum(r["samples"] for r in summary["latency"] if (r["request_type"], r["name"]) == (rtype, name))


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_summary_detail_reports_what_full_detail_reports(mock_pair: Any, locust_run: Any, swarm_tools: Any) -> None:
    runs = {detail: _run(mock_pair, locust_run, detail) for detail in ("summary", "full")}
    (summary_run, summary), (full_run, full) = runs["summary"], runs["full"]
    for s in (summary, full):
        assert s["verdict"] == "PASS", s["reasons"]
        assert s["clients_started"] == N and s["end_states"] == {"LOGGED_OUT": N}
        assert [(w["kind"], w["clients"], w["recovered"]) for w in s["ha_events"]] == \
            [("failover", N // 2, N // 2), ("fallback", N // 2, N // 2)]
        assert _rows(s, "client", "login") == N and _rows(s, "ha", "relogin") == N
        assert _rows(s, "soap", "session-login") == 2 * (N // 2) + N // 2  # refused once by the failed node
        assert _rows(s, "xmpp", "ping") > 5 * N  # a ping a second while signed in
        assert s["relogin_limits"]["source"] == "waits"
        assert (s["relogin_limits"]["lower_s"], s["relogin_limits"]["upper_s"]) == (1.0, 3.0)
    for key in ("clients_started", "end_states", "end_reasons", "clients_without_end_record"):
        assert summary[key] == full[key], key

    def records(run: Any) -> list[dict[str, Any]]:
        return [o for _p, _l, o in JsonlReader(run.run_dir, CLIENT_EVENTS_FILE, [])]

    by_type = {d: [r["type"] for r in records(run)] for d, (run, _) in runs.items()}
    assert "request_summary" in by_type["summary"] and "request_summary" not in by_type["full"]
    pings = {d: sum(1 for r in records(run) if r["type"] == "request" and r["name"] == "ping")
             for d, (run, _) in runs.items()}
    assert pings["summary"] == 0 and pings["full"] > 5 * N
    for d in ("summary", "full"):  # every sign-in and re-login step stays whole at either detail
        assert sum(1 for r in records(runs[d][0]) if r["type"] == "connected") == 2 * N
    assert len(by_type["summary"]) < len(by_type["full"])

    for run in (summary_run, full_run):
        segments = segment_paths(run.run_dir, CLIENT_EVENTS_FILE)
        assert segments and all(p.name.endswith(".gz") for p in segments)  # compressed at the end
        events = [o for _p, _l, o in JsonlReader(run.run_dir, SERVER_EVENTS_FILE, [])]
        assert {"admin", "transition", "process"} <= {e["kind"] for e in events}
        assert [e["action"] for e in events if e["kind"] == "admin"][:2] == ["failover", "fallback"]
        rows = [o for _p, _l, o in JsonlReader(run.run_dir, SERVER_METRICS_FILE, [])]
        counters = [r for r in rows if "active_sessions" in r]
        assert {r["node"] for r in counters} == {NODE1, NODE2}
        per_node = {n: sorted(r["ts"] for r in counters if r["node"] == n) for n in (NODE1, NODE2)}
        for ts in per_node.values():
            assert len(ts) == len(set(ts)) >= 20  # every second of the run, none twice
        processes = [r for r in rows if "rss_bytes" in r]
        assert {r["node"] for r in processes} == {NODE1, NODE2} and all(r["rss_bytes"] > 10 * 2**20 for r in processes)
        info = json.loads((run.run_dir / "run.json").read_text(encoding="utf-8"))
        assert {p["relogin_upper_s"] for p in info["server_parameters"].values()} == {3.0}
        page = (run.run_dir / "report.html").read_text(encoding="utf-8")
        assert "re-login limits 1–3 s (from the clients&#x27; waits" in page
        swarm_tools.assert_clean_shutdown(run.err_text())
