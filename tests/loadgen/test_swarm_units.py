"""Pure parts of the swarm: drill schedules, generator health, the web-UI rows, user homes, options."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from jabberemu.errors import ConfigError
from jabberemu.loadgen.collect import HealthWatch
from jabberemu.loadgen.options import OPTION_NAMES, Assignment, home_node, load_users_csv
from jabberemu.loadgen.schedule import ActionKind, check_plan, parse_schedule, soak_schedule
from jabberemu.loadgen.shape import DrillState
from jabberemu.loadgen.webui import client_rows


def test_schedule_absolute_and_ready_relative() -> None:
    acts = parse_schedule("stop@ready+30, failover:imp1@ready+5,mark:pressed@2, fallback:imp1@ready")
    assert [(a.kind, a.at_s, a.after_ready, a.node, a.arg) for a in acts] == [
        (ActionKind.MARK, 2.0, False, None, "pressed"),
        (ActionKind.FALLBACK, 0.0, True, "imp1", None),
        (ActionKind.FAILOVER, 5.0, True, "imp1", None),
        (ActionKind.STOP, 30.0, True, None, None),
    ]


@pytest.mark.parametrize(("text", "message"), [
    ("explode@5", "unknown action 'explode'"),
    ("failover@5", "needs a node"),
    ("failover:imp1", "is not ACTION@SECONDS"),
    ("failover:imp1@soon", "'soon' is not a number of seconds"),
    ("failover:imp1@ready-5", r"write ready\+SECONDS"),
    ("failover:imp1@-1", "must be >= 0"),
    ("service-stop:imp1@3", "needs a service"),
])
def test_schedule_errors_name_the_item(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        parse_schedule(text)
    assert info.value.field == "drill"


NODES = ("imp1.example.test", "imp2.example.test")


def test_plan_refuses_unknown_nodes_and_actions_after_the_end() -> None:
    plan = parse_schedule("failover:imp1.example.tst@30,fallback:imp1.example.test@70,mark:pressed@5")
    errors, warnings = check_plan(plan, node_names=NODES, run_time_s=60.0, settle_s=20.0, has_admin=True)
    assert errors == [
        "--drill failover:imp1.example.tst@30: node 'imp1.example.tst' is not in the pair "
        "(imp1.example.test, imp2.example.test)",
        "--drill fallback:imp1.example.test@70: at 70 s, after the end of the run (-t 60s)",
    ]
    # the failover at 30 s needs until 50 s: fits in 60 s
    assert warnings == []


def test_plan_warns_when_the_end_of_the_run_cuts_a_wave() -> None:
    plan = parse_schedule("failover:imp1.example.test@600,fallback:imp1.example.test@840")
    errors, warnings = check_plan(plan, node_names=NODES, run_time_s=1200.0, settle_s=537.0 + 5.0, has_admin=True)
    assert errors == []
    # the failover's wave ends by 1142 s; the fallback's would need until 1382 s
    assert len(warnings) == 1 and warnings[0].startswith(
        "--drill fallback:imp1.example.test@840: its re-login wave needs until 1382 s")
    assert "INCONCLUSIVE" in warnings[0]
    assert check_plan(plan, node_names=NODES, run_time_s=None, settle_s=542.0, has_admin=True) == ([], [])


def test_a_soak_drills_failover_then_fallback_until_the_end_of_the_run() -> None:
    items, errors = soak_schedule(every_s=600.0, node="imp1.example.test", run_time_s=3600.0, ramp_s=40.0,
                                  settle_s=542.0)
    assert errors == []
    # ready + 3000 s + 542 s still fits (3,582 s <= 3,600 s) but would end on a failover: dropped
    assert items == ["failover:imp1.example.test@ready+600", "fallback:imp1.example.test@ready+1200",
                     "failover:imp1.example.test@ready+1800", "fallback:imp1.example.test@ready+2400"]
    plan = parse_schedule(",".join(items))
    assert check_plan(plan, node_names=NODES, run_time_s=3600.0, settle_s=542.0, has_admin=True) == ([], [])
    eight_hours, _ = soak_schedule(every_s=600.0, node="n", run_time_s=8 * 3600.0, ramp_s=300.0, settle_s=542.0)
    assert len(eight_hours) == 46 and eight_hours[-1] == "fallback:n@ready+27600"
    assert soak_schedule(every_s=0.0, node="n", run_time_s=None, ramp_s=1.0, settle_s=1.0) == ([], [])
    assert soak_schedule(every_s=600.0, node="n", run_time_s=None, ramp_s=1.0, settle_s=1.0)[1] == [
        "--drill-every 600: a soak needs -t (its drills repeat until the run ends)"]


def test_a_refused_admin_action_stops_the_drill() -> None:
    drill = DrillState()
    drill.configure("fallback:imp1.example.test@0", "")
    entry = {"action": "fallback", "node": "imp1.example.test"}
    drill._refused(entry, "HTTP 409: fallback is not allowed on imp1.example.test while Normal (Normal)")
    assert drill.stop_requested
    assert drill.failure == ("drill action fallback imp1.example.test refused: HTTP 409: fallback is not allowed "
                             "on imp1.example.test while Normal (Normal)")


def test_drill_state_fires_ready_actions_after_the_probe() -> None:
    drill = DrillState()
    drill.configure("mark:a@1,mark:b@ready+2,stop@ready+4", "")
    ready = {"now": False}
    drill.ready_probe = lambda: ready["now"]
    assert [a.arg for a in drill.due(0.5)] == []
    assert [a.arg for a in drill.due(1.0)] == ["a"]
    assert drill.due(50.0) == []  # not ready: relative actions wait
    ready["now"] = True
    assert drill.due(60.0) == [] and drill.ready_at_s == 60.0
    assert [a.arg for a in drill.due(62.0)] == ["b"]
    assert [a.kind for a in drill.due(64.0)] == [ActionKind.STOP]
    assert drill.due(99.0) == []
    drill.fire(parse_schedule("stop@0")[0])
    assert drill.stop_requested and [d["action"] for d in drill.done] == ["stop"]


def test_health_watch_warns_at_most_once_per_ten_seconds_per_worker() -> None:
    watch = HealthWatch(cpu_warn=80.0, loop_lag_warn_ms=50.0)
    hot = {"worker": "w1", "cpu_percent": 95.0, "loop_lag_ms": 3.0, "stalled_ms": 0.0}
    laggy = {"worker": "w2", "cpu_percent": 10.0, "loop_lag_ms": 120.0, "stalled_ms": 120.0}
    fine = {"worker": "w1", "cpu_percent": 50.0, "loop_lag_ms": 49.9, "stalled_ms": 0.0}
    text = watch.check(hot, 100.0)
    assert text is not None and "w1" in text and "CPU 95% > 80%" in text and "not trustworthy meanwhile" in text
    assert watch.check(hot, 105.0) is None  # same worker within 10 s
    lag_text = watch.check(laggy, 105.0)  # stalled 120 ms of its one second so far: 12 % >= 5 %
    assert lag_text is not None and "its event loop stalled 12% of the last 1 s (worst 120 ms)" in lag_text
    assert watch.check(fine, 111.0) is None  # below both thresholds: nothing
    assert watch.check(hot, 109.9) is None
    assert watch.check(hot, 110.0) is not None
    assert (watch.warnings, watch.saturated_samples) == (3, 5)
    with pytest.raises(ConfigError):
        HealthWatch(cpu_warn=-1.0, loop_lag_warn_ms=50.0)


def test_client_rows_list_every_node_state_rate_and_generator() -> None:
    rows = client_rows(
        nodes=["imp1", "imp2"],
        totals={"started": 5, "states": {"XMPPCONNECTED": 3, "FAILOVER": 1, "GAVE_UP": 1, "NEW": 0},
                "connected": {"imp2": 3}},
        relogin_rate_per_s=1.234, relogins_total=7,
        health_by_worker={"w1": {"cpu_percent": 12.4, "loop_lag_ms": 3.25}},
    )
    assert [(r["group"], r["name"], r["value"]) for r in rows] == [
        ("clients", "started", 5),
        ("connected per node", "imp1", 0),
        ("connected per node", "imp2", 3),
        ("per state", "FAILOVER", 1),
        ("per state", "XMPPCONNECTED", 3),
        ("per state", "GAVE_UP", 1),
        ("re-login", "ha/relogin per s (last 10 s)", 1.23),
        ("re-login", "ha/relogin total", 7),
        ("generator", "w1", "CPU 12%, loop lag p99 3.2 ms"),
    ]


def test_home_node_follows_the_mock_assignment() -> None:
    nodes = ("imp1", "imp2")
    assert [home_node(i, nodes, Assignment.BALANCED) for i in range(4)] == ["imp1", "imp2", "imp1", "imp2"]
    assert {home_node(i, nodes, Assignment.ACTIVE_STANDBY) for i in range(4)} == {"imp1"}


def test_users_csv_bad_row_is_named(tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_text("user id,password\nalice,pw1,Alice,imp2\n\nbob,pw2\n", encoding="utf-8")
    users = load_users_csv(str(good))
    assert [(u.index, u.user_id, u.home) for u in users] == [(0, "alice", "imp2"), (1, "bob", None)]
    assert "pw1" not in repr(users[0])
    bad = tmp_path / "bad.csv"
    bad.write_text("alice,pw1\nbob,pw2\ncarol\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad.csv, line 3: no password for user 'carol'"):
        load_users_csv(str(bad))
    with pytest.raises(ConfigError, match="No such file"):
        load_users_csv(str(tmp_path / "missing.csv"))


# -- every option from its environment variable and from locust.conf ----------------------------

VALUES: dict[str, tuple[str, object]] = {
    # option: (text in env/conf, parsed value)
    "topology": ("/srv/topo.json", "/srv/topo.json"),
    "cpa_url": ("https://a:8443/c,https://b:8443/c", "https://a:8443/c,https://b:8443/c"),
    "xmpp_host": ("a:5222,b:5222", "a:5222,b:5222"),
    "node_names": ("n1,n2", "n1,n2"),
    "domain": ("d.test", "d.test"),
    "users_csv": ("/srv/users.csv", "/srv/users.csv"),
    "user_pattern": ("u{n}", "u{n}"),
    "password_pattern": ("p-{user}", "p-{user}"),
    "user_offset": ("7", 7),
    "xmpp_only": ("true", True),
    "verify_tls": ("on", "on"),
    "lower_property": ("X.Lower", "X.Lower"),
    "upper_property": ("X.Upper", "X.Upper"),
    "default_lower": ("3.5", 3.5),
    "default_upper": ("9.5", 9.5),
    "message_rate": ("0.25", 0.25),
    "presence_rate": ("0.5", 0.5),
    "ping_interval": ("11", 11.0),
    "soap_timeout": ("12", 12.0),
    "max_login_wait": ("2.5", 2.5),
    "ping_timeout": ("7", 7.0),
    "run_seed": ("42", 42),
    "drill": ("failover:n1@ready+3", "failover:n1@ready+3"),
    "run_dir": ("/srv/run", "/srv/run"),
    "server_login_rate": ("55", 55.0),
    "recovery_margin": ("4", 4.0),
    "progress": ("true", True),
    "loop_lag_warn_ms": ("20", 20.0),
    "cpu_warn": ("70", 70.0),
    "fail_on_verdict": ("true", True),
    "report": ("true", True),
    "assignment": ("active-standby", "active-standby"),
    "prometheus_port": ("9464", 9464),
    "prometheus_host": ("127.0.0.2", "127.0.0.2"),
    "record_detail": ("full", "full"),
    "record_rotate_mb": ("8", 8.0),
    "drill_every": ("600", 600.0),
    "drill_node": ("imp2.example.test", "imp2.example.test"),
    "source_addresses": ("127.0.0.2,127.0.0.3", "127.0.0.2,127.0.0.3"),
}

_PARSE = """
import json, sys
from locust import events
from locust.argument_parser import parse_options
from jabberemu.loadgen.options import OPTION_NAMES, add_options
events.init_command_line_parser.add_listener(add_options)
opts = parse_options(args=sys.argv[1:])
print(json.dumps({name: getattr(opts, name) for name in OPTION_NAMES}))
"""


def _parse_in_subprocess(args: list[str], env: dict[str, str], cwd: Path, swarm_tools: object) -> dict[str, object]:
    proc = subprocess.run([sys.executable, "-c", _PARSE, "-f", "x.py", *args], cwd=cwd, capture_output=True,
                          env=swarm_tools.clean_env(**env), timeout=60, check=False)  # type: ignore[attr-defined]
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return json.loads(proc.stdout.decode().strip().splitlines()[-1])


def test_values_cover_every_option() -> None:
    assert set(VALUES) == set(OPTION_NAMES)


def test_every_option_from_env_and_from_conf(tmp_path: Path, swarm_tools: object) -> None:
    defaults = _parse_in_subprocess([], {}, tmp_path, swarm_tools)
    want = {name: parsed for name, (_, parsed) in VALUES.items()}
    assert all(defaults[n] != want[n] for n in OPTION_NAMES), "each test value must differ from the default"
    env = {"JABBEREMU_" + name.upper(): text for name, (text, _) in VALUES.items()}
    assert _parse_in_subprocess([], env, tmp_path, swarm_tools) == want
    conf = tmp_path / "locust.conf"
    conf.write_text("".join(f"{name.replace('_', '-')} = {text}\n" for name, (text, _) in VALUES.items()),
                    encoding="utf-8")
    assert _parse_in_subprocess([], {}, tmp_path, swarm_tools) == want  # ./locust.conf is read by default
    other = tmp_path / "sub"
    other.mkdir()
    assert _parse_in_subprocess(["--config", str(conf)], {}, other, swarm_tools) == want


def test_the_csv_writer_ends_quietly_once_its_files_are_closed(tmp_path: Path) -> None:
    from locust.env import Environment
    from locust.stats import PERCENTILES_TO_REPORT, StatsCSVFileWriter

    from jabberemu.loadgen.traps import guard_csv_writer

    guard_csv_writer()
    guard_csv_writer()  # idempotent: wrapped once
    writer = StatsCSVFileWriter(Environment(), PERCENTILES_TO_REPORT, str(tmp_path / "out"))
    writer.close_files()
    assert writer.stats_writer() is None  # Locust's own writer raised "I/O operation on closed file" here
    assert (tmp_path / "out_stats.csv").exists()
