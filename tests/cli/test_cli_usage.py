"""The console script's usage: help everywhere, unknown commands and bad drill options refused cleanly;
the drill's phase plan (pure)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cli_support import jabberemu

from jabberemu import cli, drill
from jabberemu.drillplan import MIN_SETTLE_S, WAVE_GAP_S, Fault, plan_drill, validate
from jabberemu.rundata import files
from jabberemu.rundata.files import run_data_in

COMMANDS = ("mock", "run", "drill", "report", "plan")


def test_top_level_help_lists_every_command() -> None:
    for flag in ("--help", "-h", "help"):
        res = jabberemu(flag)
        assert res.returncode == 0, res.stderr
        for command in COMMANDS:
            assert f"\n  {command} " in res.stdout, (flag, res.stdout)


@pytest.mark.parametrize("command", COMMANDS)
def test_command_help_shows_usage(command: str) -> None:
    res = jabberemu(command, "--help")
    assert res.returncode == 0, res.stderr
    assert "usage:" in res.stdout.lower()
    assert "Traceback" not in res.stdout + res.stderr


def test_run_help_lists_jabberemus_own_locust_options() -> None:
    res = jabberemu("run", "--help")
    assert res.returncode == 0
    for option in ("--topology", "--cpa-url", "--users-csv", "--verify-tls", "--drill", "--lower-property"):
        assert option in res.stdout, option
    full = jabberemu("run", "--help-locust", timeout_s=90)
    assert full.returncode == 0, full.stderr
    assert "--headless" in full.stdout and "--drill" in full.stdout and "--processes" in full.stdout


def test_no_command_prints_usage_and_exits_2() -> None:
    res = jabberemu()
    assert res.returncode == 2
    assert "Commands:" in res.stdout


def test_unknown_command_exits_2_with_a_message() -> None:
    res = jabberemu("fly")
    assert res.returncode == 2
    assert "unknown command 'fly'" in res.stderr
    assert "Traceback" not in res.stderr


BAD_DRILL_OPTIONS = [
    (("--upper", "1", "--lower", "5"), "--upper (1 s) must be >= --lower (5 s)"),
    (("--clients", "0"), "--clients must be at least 1, not 0"),
    (("--ramp", "0"), "--ramp must be > 0 logins/s, not 0"),
    (("--lower", "-1", "--upper", "3"), "--lower must be >= 0 s, not -1"),
    (("--hold", "-2"), "--hold must be >= 0 s, not -2"),
    (("--processes", "0"), "--processes must be at least 1, not 0"),
    (("--login-rate", "-1"), "--login-rate must be >= 0 logins/s (0 = unlimited), not -1"),
    (("--login-queue", "-1"), "--login-queue must be at least 0, not -1"),
    (("--soap-timeout", "0"), "--soap-timeout must be > 0 s, not 0"),
    (("--heartbeat-timeout", "0"), "--heartbeat-timeout must be > 0 s, not 0"),
    (("--fault", "meteor"), "invalid choice: 'meteor'"),
    (("--clients", "many"), "invalid int value: 'many'"),
    (("--topology", "/nonexistent/topology.json"), "--topology /nonexistent/topology.json: no such file"),
]


@pytest.mark.parametrize(("args", "message"), BAD_DRILL_OPTIONS[:2])
def test_bad_drill_options_exit_2_without_traceback(args: tuple[str, ...], message: str, tmp_path: Path) -> None:
    res = jabberemu("drill", *args, "--out", str(tmp_path / "out"))
    assert res.returncode == 2, res.stdout + res.stderr
    assert message in res.stderr
    assert "usage: jabberemu drill" in res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "out").exists()  # refused before anything started


@pytest.mark.parametrize(("args", "message"), BAD_DRILL_OPTIONS)
def test_bad_drill_options_in_process(args: tuple[str, ...], message: str, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["drill", *args, "--out", str(tmp_path / "out")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "usage: jabberemu drill" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("left", ["run.json", "client_events.0002.jsonl.gz", "generator.jsonl"])
def test_a_drill_into_a_directory_holding_a_run_is_refused(left: str, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """The records of a second run would be appended to the first one's and judged with them."""
    old = tmp_path / "old"
    old.mkdir()
    (old / left).write_bytes(b"kept")
    (old / "mock.log").write_text("not run data\n", encoding="utf-8")
    with pytest.raises(SystemExit) as exc:
        cli.main(["drill", "--clients", "10", "--out", str(old)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"--out {old} already holds a run ({left}): a second run there would mix its records" in err
    assert sorted(p.name for p in old.iterdir()) == sorted([left, "mock.log"])  # nothing written, nothing removed
    assert (old / left).read_bytes() == b"kept"


def test_a_drill_refuses_an_out_another_drill_claimed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A drill whose swarm has not written anything yet has still claimed its directory."""
    (tmp_path / "drill.json").write_text('{"pid": 1}', encoding="utf-8")
    (tmp_path / "topology.json").write_text("{}", encoding="utf-8")
    with pytest.raises(SystemExit) as exc:
        cli.main(["drill", "--clients", "10", "--out", str(tmp_path)])
    assert exc.value.code == 2
    assert f"--out {tmp_path} already holds a run (drill.json): a second run" in capsys.readouterr().err


@pytest.mark.parametrize(("out", "line"), [("plain", "--out {d}/plain is a file, not a directory"),
                                           ("plain/sub", "--out {d}/plain/sub: {d}/plain is a file, not a directory")])
def test_a_drill_refuses_an_out_that_is_a_file(out: str, line: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "plain").write_text("x", encoding="utf-8")
    with pytest.raises(SystemExit) as exc:
        cli.main(["drill", "--clients", "10", "--out", str(tmp_path / out)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert line.format(d=tmp_path) in err and "Traceback" not in err


def test_a_run_directory_that_cannot_be_read_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(_run_dir: Path) -> list[str]:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(files, "run_data_in", denied)
    assert files.run_dir_problem(tmp_path, "--run-dir") == f"--run-dir {tmp_path}: cannot read it (Permission denied)"


def test_drills_started_in_the_same_second_claim_directories_of_their_own(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(drill, "_run_id", lambda: "drill-20261207-110125")
    first, second = drill._claim_out(None), drill._claim_out(None)
    assert (first, second) == (Path("reports/drill-20261207-110125"), Path("reports/drill-20261207-110125-2"))
    assert json.loads((second / "drill.json").read_text(encoding="utf-8"))["pid"] == os.getpid()
    with pytest.raises(FileExistsError):  # an explicit --out a drill has claimed since the check
        drill._claim_out(first)


def test_only_run_data_makes_a_directory_hold_a_run(tmp_path: Path) -> None:
    """Other files (the drill's topology, a log) do not: the check names run data only."""
    (tmp_path / "topology.json").write_text("{}", encoding="utf-8")
    assert run_data_in(tmp_path) == [] and run_data_in(tmp_path / "missing") == []
    (tmp_path / "client_events.jsonl").write_text("", encoding="utf-8")
    (tmp_path / "summary.json").write_text("{}", encoding="utf-8")
    assert run_data_in(tmp_path) == ["client_events.jsonl", "summary.json"]


def _plan(fault: Fault, **kw: float) -> list[tuple[str, float]]:
    args = dict(clients=100, ramp=50.0, lower_s=1.0, upper_s=3.0, hold_s=2.0, margin_s=2.0,
                critical_service_delay_s=1.0, heartbeat_timeout_s=1.0, init_heartbeat_timeout_s=3.0)
    args.update(kw)
    plan = plan_drill(fault=fault, node="imp1", **args)  # type: ignore[arg-type]
    assert all("@ready+" in a for a in plan.actions)  # every phase counts from all clients signed in
    acts = [(a.split("@ready+")[0], float(a.split("@ready+")[1])) for a in plan.actions]
    assert acts[-1] == ("stop", plan.end_s)
    assert plan.end_s >= acts[-2][1] + plan.settle_s  # the last wave settles before the stop
    assert plan.run_time_s >= plan.end_s + 3 * 100 / 50 + 30  # Locust -t: only a bound
    assert plan.fault_at_s == args["hold_s"] == acts[0][1]
    return acts[:-1]


def test_wave_gap_matches_the_report() -> None:
    from jabberemu.report.waves import DEFAULT_GAP_S

    assert WAVE_GAP_S == DEFAULT_GAP_S
    assert MIN_SETTLE_S > WAVE_GAP_S + 1.0  # a node drops its sessions within a second


def test_failover_plan_keeps_the_waves_apart() -> None:
    acts = _plan(Fault.FAILOVER)
    assert [a for a, _ in acts] == ["failover:imp1", "fallback:imp1"]
    assert acts[0][1] == 2.0
    assert acts[1][1] - acts[0][1] == MIN_SETTLE_S  # upper + margin = 5 s < 7 s: widened
    wide = _plan(Fault.FAILOVER, upper_s=25.0, lower_s=5.0, margin_s=5.0)
    assert wide[1][1] - wide[0][1] == 30.0


def test_a_storm_wave_gets_the_time_the_model_says_its_queue_needs() -> None:
    """200 clients (100 move), limits 1/2 s, 10 logins/s: the node needs ~10 s for the movers, so the
    fallback waits for the model's last recovery, not for upper + margin."""
    from jabberemu.drillplan import predicted_last_recovery_s, settle_time

    last = predicted_last_recovery_s(clients=200, lower_s=1.0, upper_s=2.0, soap_timeout_s=30.0, rate_per_s=10.0)
    assert last is not None and 1.0 + 100 / 10 - 0.5 <= last <= 1.0 + 100 / 10 + 0.5
    acts = _plan(Fault.FAILOVER, predicted_last_s=last)
    gap = acts[1][1] - acts[0][1]
    assert gap == settle_time(upper_s=3.0, margin_s=2.0, predicted_last_s=last) == round(last + 2.0, 1)
    # a node that keeps up changes nothing; an unlimited node predicts nothing
    assert settle_time(upper_s=25.0, margin_s=5.0, predicted_last_s=24.9) == 30.0
    assert predicted_last_recovery_s(clients=200, lower_s=1.0, upper_s=2.0, soap_timeout_s=30.0, rate_per_s=None) is None


def test_an_active_standby_drill_moves_every_client_and_asks_the_mock_for_it(tmp_path: Path) -> None:
    """Active-Standby: all 200 users homed on node 1, so all 200 move (the node needs ~20 s at 10/s)."""
    from jabberemu.drill import _mock_args, build_parser
    from jabberemu.drillplan import predicted_last_recovery_s

    last = predicted_last_recovery_s(clients=200, lower_s=1.0, upper_s=2.0, soap_timeout_s=30.0, rate_per_s=10.0,
                                     active_standby=True)
    assert last is not None and 1.0 + 200 / 10 - 0.5 <= last <= 1.0 + 200 / 10 + 0.5
    args = build_parser().parse_args(["--clients", "200", "--assignment", "active-standby"])
    mock = _mock_args(args, tmp_path)
    assert mock[mock.index("--assignment") + 1] == "active-standby"
    default = _mock_args(build_parser().parse_args([]), tmp_path)
    assert default[default.index("--assignment") + 1] == "balanced"


def test_service_down_plan_restarts_the_service_then_falls_back() -> None:
    acts = _plan(Fault.SERVICE_DOWN)
    names = [a for a, _ in acts]
    assert names == ["service-stop:imp1:presence-engine", "service-start:imp1:presence-engine", "fallback:imp1"]
    stop, start, fallback = (t for _, t in acts)
    assert start > stop + 1.0  # past the Critical Service Delay: the automatic failover happened
    assert fallback >= stop + 1.0 + MIN_SETTLE_S


def test_node_kill_plan_restarts_then_falls_back_after_initialization() -> None:
    acts = _plan(Fault.NODE_KILL)
    assert [a for a, _ in acts] == ["kill:imp1", "restart:imp1", "fallback:imp1"]
    kill, restart, fallback = (t for _, t in acts)
    assert restart >= kill + 1.0 + MIN_SETTLE_S  # heartbeat timeout, then the wave settles
    assert fallback - restart >= 5.0  # the restarted node comes up Failed Over: Fallback needs it up
    slow_init = _plan(Fault.NODE_KILL, init_heartbeat_timeout_s=10.0)
    assert slow_init[2][1] - slow_init[1][1] >= 12.0


def test_partition_plan_heals_then_recovers() -> None:
    acts = _plan(Fault.PARTITION)
    assert [a for a, _ in acts] == ["partition", "heal", "recover"]
    part, heal, recover = (t for _, t in acts)
    assert heal > part + 1.0  # both sides saw the heartbeat timeout (split ownership)
    assert recover > heal


def test_validate_names_each_bad_option() -> None:
    assert validate(clients=1, ramp=1.0, lower_s=0.0, upper_s=0.0) == []
    problems = validate(clients=0, ramp=-1.0, lower_s=5.0, upper_s=1.0, margin_s=-1.0, timers={"heartbeat-interval": 0.0})
    assert problems == [
        "--clients must be at least 1, not 0",
        "--ramp must be > 0 logins/s, not -1",
        "--upper (1 s) must be >= --lower (5 s)",
        "--margin must be >= 0 s, not -1",
        "--heartbeat-interval must be > 0 s, not 0",
    ]
    with pytest.raises(ValueError, match="--upper"):
        plan_drill(clients=1, ramp=1.0, lower_s=5.0, upper_s=1.0, fault=Fault.FAILOVER, node="n", hold_s=0.0,
                   margin_s=0.0, critical_service_delay_s=1.0, heartbeat_timeout_s=1.0)
