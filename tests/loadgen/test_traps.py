"""Locust's statistics stay bounded over a long run: per-second counts and chart history trimmed,
totals, current rates and response times untouched."""

from __future__ import annotations

from typing import Any

import pytest
from locust.stats import RequestStats
from waiting import wait_until_sync

from jabberemu.loadgen import traps

T0 = 1_796_586_839.0


def test_trim_keeps_the_recent_seconds_and_every_total(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [T0]
    monkeypatch.setattr("locust.stats.time.time", lambda: now[0])
    stats = RequestStats()
    for s in range(600):  # ten minutes, three names, one failure every 10 s
        now[0] = T0 + s
        for name in ("ping", "message-latency", "session-login"):
            stats.log_request("xmpp", name, 5 + s % 7, 0)
        if s % 10 == 0:
            stats.log_error("soap", "session-login", RuntimeError("services-stopped"))
    for _ in range(900):
        stats.history.append({"time": "t"})
    before: dict[str, Any] = {"total": stats.total.num_requests, "rps": stats.total.current_rps,
                              "p99": stats.total.get_current_response_time_percentile(0.99),
                              "fails": stats.get("session-login", "soap").num_failures}
    dropped = traps.trim_locust_stats(stats, now=now[0])
    kept = traps.STATS_SECONDS_KEPT
    old_seconds = 599 - kept  # seconds 0..478 are older than now (599) - kept
    # requests: three names + the total; failures: the soap entry + the total, one second in ten
    assert dropped == 4 * old_seconds + 2 * len(range(0, old_seconds, 10)) == 2012
    for entry in [*stats.entries.values(), stats.total]:
        assert all(t >= int(now[0]) - kept for t in entry.num_reqs_per_sec)
        assert all(t >= int(now[0]) - kept for t in entry.num_fail_per_sec)
    assert len(stats.total.num_reqs_per_sec) == kept + 1  # seconds 479..599
    assert len(stats.history) == traps.STATS_HISTORY_KEPT
    assert {"total": stats.total.num_requests, "rps": stats.total.current_rps,
            "p99": stats.total.get_current_response_time_percentile(0.99),
            "fails": stats.get("session-login", "soap").num_failures} == before == {
        "total": 1800, "rps": before["rps"], "p99": before["p99"], "fails": 60}
    assert before["rps"] == pytest.approx(3.0)
    assert traps.trim_locust_stats(stats, now=now[0]) == 0


def test_locust_default_options_are_computed_once_and_handed_out_as_copies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Locust's worker called default_args_dict() once per option of every spawn message (each call
    builds its whole parser): the trap computes it once."""
    from locust import argument_parser

    real = argument_parser.default_args_dict()
    calls: list[int] = []

    def counting() -> dict[str, Any]:
        calls.append(1)
        return dict(real)

    monkeypatch.setattr(argument_parser, "default_args_dict", counting)
    traps.cache_locust_default_args()
    traps.cache_locust_default_args()  # idempotent: no second wrapper
    options = {k: None for k in real} | {"topology": "x.json", "drill": "failover:imp1@ready+5"}
    # Locust's comprehension (runners.py, WorkerRunner.handle_message "spawn"), verbatim in shape
    custom = {k: v for k, v in options.items() if k not in argument_parser.default_args_dict()}
    assert custom == {"topology": "x.json", "drill": "failover:imp1@ready+5"}
    assert len(calls) == 1 and len(options) > 50
    first = argument_parser.default_args_dict()
    first["users"] = -1  # a caller's change does not reach the next caller
    assert argument_parser.default_args_dict() == real


def test_locust_users_are_counted_as_they_come_and_go_without_a_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Locust's worker walked every user greenlet ~8 times per spawn message: the trap keeps counts."""
    import gevent
    from locust import User, constant, task
    from locust.env import Environment
    from locust.exception import StopUser

    class Idle(User):
        weight = 3
        wait_time = constant(3600)

        @task
        def idle(self) -> None:
            gevent.sleep(0)

    class Quitter(User):
        weight = 1
        wait_time = constant(0)

        @task
        def quit(self) -> None:
            if getattr(self.environment, "quit_now", False):
                raise StopUser()
            gevent.sleep(0.01)

    from locust.runners import Runner

    monkeypatch.setattr(Runner, "user_classes_count", Runner.__dict__["user_classes_count"])  # put back after
    env = Environment(user_classes=[Idle, Quitter])
    runner = env.create_local_runner()
    traps.count_locust_users(runner)
    traps.count_locust_users(runner)  # idempotent
    group = runner.user_greenlets
    assert isinstance(group, traps.UserCountingGroup)
    walks: list[int] = []
    real_iter = traps.UserCountingGroup.__iter__
    monkeypatch.setattr(traps.UserCountingGroup, "__iter__", lambda self: walks.append(1) or real_iter(self))

    def walked() -> dict[str, int]:  # Locust's own count, by its walk
        return dict(traps._LOCUST_USER_CLASSES_COUNT(runner))

    def settle(cond: Any) -> None:
        wait_until_sync(cond, 5, "user count settled", interval_s=0.01)  # time.sleep is gevent's here

    try:
        runner.start(40, spawn_rate=10_000)
        settle(lambda: runner.user_count == 40)
        walks.clear()
        assert [runner.user_classes_count for _ in range(100)][-1] == {"Idle": 30, "Quitter": 10}
        assert walks == []  # a lookup, not a walk
        assert walked() == {"Idle": 30, "Quitter": 10}
        runner.start(20, spawn_rate=10_000)  # ramp down: Locust stops users of each class
        settle(lambda: runner.user_count == 20)
        assert runner.user_classes_count == walked() == {"Idle": 15, "Quitter": 5}
        env.quit_now = True  # type: ignore[attr-defined]  # users that end themselves leave the group
        settle(lambda: runner.user_count == 15)
        assert runner.user_classes_count == walked() == {"Idle": 15, "Quitter": 0}
    finally:
        runner.quit()
    assert runner.user_classes_count == {"Idle": 0, "Quitter": 0} and group.counts.total() == 0


def test_the_swarm_turns_gevents_greenlet_tree_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """gevent's spawning stack and tree per greenlet cost 0.37 KiB per Locust user; nothing reads them."""
    import gevent
    from locust.event import Events

    from jabberemu.loadgen import swarm

    monkeypatch.setattr(gevent.config, "track_greenlet_tree", True)
    monkeypatch.setattr(swarm.SWARM.bridge, "fire", swarm.SWARM.bridge.fire)  # install() rewires it: put back
    monkeypatch.setattr(swarm.SWARM, "prometheus", type("NoExporter", (), {"install": lambda self, events: None})())
    assert gevent.spawn(lambda: None).spawn_tree_locals is not None
    swarm.install(Events())
    g = gevent.spawn(lambda: None)
    assert (g.spawning_stack, g.spawn_tree_locals, g.spawning_greenlet) == (None, None, None)
    g.join()
