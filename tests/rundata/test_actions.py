"""The one vocabulary of HA actions: what a drill step says is what run.json records and the report reads."""

from __future__ import annotations

import pytest

from jabberemu.errors import ConfigError
from jabberemu.loadgen.schedule import parse_schedule
from jabberemu.rundata import ActionKind


@pytest.mark.parametrize("kind", ActionKind.schedulable())
def test_every_recorded_label_reads_back_as_its_kind(kind: ActionKind) -> None:
    node = "imp1:presence-engine" if kind in (ActionKind.SERVICE_STOP, ActionKind.SERVICE_START) else "imp1"
    step = f"{kind.value}:{node}@5" if kind.needs_node else (f"{kind.value}:text@5" if kind is ActionKind.MARK
                                                              else f"{kind.value}@5")
    (action,) = parse_schedule(step)
    assert action.kind is kind
    assert ActionKind.parse(action.label) is kind  # run.json's "action" maps back to the same kind


@pytest.mark.parametrize(("verb", "kind"), [
    ("node-kill", ActionKind.KILL), ("NODE_RESTART", ActionKind.RESTART),
    ("service-down", ActionKind.SERVICE_STOP), ("service-up:presence-engine", ActionKind.SERVICE_START),
    ("ha-enable", ActionKind.HA_ON), ("disable-ha", ActionKind.HA_OFF), ("reboot", ActionKind.OTHER),
])
def test_older_and_admin_spellings_read_as_one_kind(verb: str, kind: ActionKind) -> None:
    assert ActionKind.parse(verb) is kind


def test_other_is_never_a_drill_step() -> None:
    with pytest.raises(ConfigError, match="unknown action 'other'"):
        parse_schedule("other@5")


def test_what_starts_a_wave() -> None:
    assert {k for k in ActionKind if k.moves_sessions_away} == {
        ActionKind.FAILOVER, ActionKind.KILL, ActionKind.SERVICE_STOP, ActionKind.PARTITION}
    assert {k for k in ActionKind if k.starts_waves} == {
        ActionKind.FAILOVER, ActionKind.KILL, ActionKind.SERVICE_STOP, ActionKind.PARTITION,
        ActionKind.FALLBACK, ActionKind.RECOVER, ActionKind.HA_ON, ActionKind.MARK}
