"""Acceptance: master + 2 workers (``--processes 2``) on loopback; the master's totals are the sum of
what each worker did, and user ids are unique across workers (the master hands them out)."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

N = 300


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_master_totals_equal_the_sum_of_the_workers(mock_pair: Any, locust_run: Any, swarm_tools: Any) -> None:
    pair = mock_pair(N, "balanced")
    run = locust_run("--headless", "--processes", "2", "-u", str(N), "-r", "150", "-t", "240s",
                     "--topology", str(pair.topology), "--drill", "stop@ready+2",
                     "--default-lower", "1", "--default-upper", "3")
    assert run.wait(240) == 0, run.err_text()[-3000:]

    # what each worker says it did (its own file, written by the worker process)
    accounts = [json.loads(p.read_text(encoding="utf-8")) for p in sorted((run.run_dir / "workers").glob("*.json"))]
    assert len(accounts) == 2
    assert sorted(a["worker_index"] for a in accounts) == [0, 1]
    assert all(a["users_started"] > 0 for a in accounts)
    assert sum(a["users_started"] for a in accounts) == N
    indices = [i for a in accounts for i in a["user_indices"]]
    assert sorted(indices) == list(range(N))  # unique across workers, users 1..N

    # the master's totals (Locust's --csv on the master) = the sum over the workers, row by row
    worker_sum: Counter[tuple[str, str]] = Counter()
    worker_fail: Counter[tuple[str, str]] = Counter()
    for a in accounts:
        for key, row in a["requests"].items():
            rtype, name = key.split("/", 1)
            worker_sum[(rtype, name)] += row["ok"] + row["fail"]
            worker_fail[(rtype, name)] += row["fail"]
    stats = {k: v for k, v in run.stats().items() if k != ("", "Aggregated")}
    master = {k: int(v["Request Count"]) for k, v in stats.items()}
    assert master == dict(worker_sum)
    assert {k: int(v["Failure Count"]) for k, v in stats.items()} == {k: worker_fail[k] for k in master}
    assert master[("client", "login")] == N and worker_fail[("client", "login")] == 0
    assert master[("soap", "logout")] == N and worker_fail[("soap", "logout")] == 0
    # the master also received every worker's account
    on_master = json.loads((run.run_dir / "workers.json").read_text(encoding="utf-8"))
    assert sorted(a["user_indices"] == b["user_indices"] for a in on_master.values() for b in accounts).count(True) == 2

    # run data merged on the master: one sign-in and one end per user, ids 1..N, no duplicate
    users = {f"user{n:05d}" for n in range(1, N + 1)}
    connected = run.records("connected")
    ends = run.records("end")
    assert len(connected) == N and {r["client"] for r in connected} == users
    assert len(ends) == N and {r["client"] for r in ends} == users
    assert {(r["state"], r["reason"]) for r in ends} == {("LOGGED_OUT", "stop-requested")}
    homes = Counter(r["node"] for r in connected)
    assert homes == {"imp1.example.test": N // 2, "imp2.example.test": N // 2}  # balanced: odd/even users

    # generator health of both workers reached the master
    samples = [json.loads(line) for line in (run.run_dir / "generator.jsonl").read_text().splitlines() if line]
    assert len({s["worker"] for s in samples}) == 2
    assert all(s["cpu_percent"] >= 0 and (s["loop_lag_ms"] is None or s["loop_lag_ms"] >= 0) for s in samples)
    swarm_tools.assert_clean_shutdown(run.err_text())
    print("\nper worker: " + ", ".join(
        f"#{a['worker_index']}: {a['users_started']} users, client/login {a['requests']['client/login']['ok']}"
        for a in sorted(accounts, key=lambda a: a["worker_index"])))
