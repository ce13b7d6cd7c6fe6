"""HA drill schedules: ``ACTION@SECONDS`` items on the load clock, and the admin call each one makes.

``ACTION@ready+SECONDS`` counts from the moment every client of the run is signed in
(XMPPCONNECTED): on a busy generator the ramp takes longer than ``N / spawn rate``, and a fault
injected while clients are still signing in tests something else than the re-login wave.

Pure: parsing and the mapping to the mock pair's admin API (``mock_server.admin_app``). On a real
IM&P pair nothing is called: the actions are recorded as the times the operator pressed the
button (``mark:TEXT``, or any action with ``--topology`` lacking an ``admin_url``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from jabberemu.errors import ConfigError
from jabberemu.rundata.actions import ActionKind

__all__ = ["ActionKind", "DrillAction", "parse_schedule", "admin_call", "check_plan", "soak_drill", "soak_schedule"]


@dataclass(frozen=True, kw_only=True)
class DrillAction:
    """One step of a drill.

    Attributes:
        kind: what to do.
        at_s: seconds on the load clock (0 = the test started).
        node: the node it applies to, or None.
        arg: the service (service-stop/start) or the text (mark), or None.
        after_ready: True when ``at_s`` counts from the moment every client is signed in.
    """

    kind: ActionKind
    at_s: float
    node: str | None = None
    arg: str | None = None
    after_ready: bool = False

    def __post_init__(self) -> None:
        if not math.isfinite(self.at_s) or self.at_s < 0:
            raise ConfigError(f"drill time must be >= 0 s, not {self.at_s!r}", field="drill")
        if self.kind.needs_node and not self.node:
            raise ConfigError(f"drill action {self.kind.value} needs a node: {self.kind.value}:NODE@T", field="drill")

    @property
    def label(self) -> str:
        """``failover`` / ``service-stop:presence-engine`` ..., as recorded in ``run.json``."""
        return f"{self.kind.value}:{self.arg}" if self.arg else self.kind.value


def _parse_when(raw: str, when: str) -> tuple[float, bool]:
    text = when.strip()
    after_ready = text.startswith("ready")
    if after_ready:
        text = text[len("ready"):].strip()
        if not text:
            return 0.0, True
        if not text.startswith("+"):
            raise ConfigError(f"drill item {raw!r}: write ready+SECONDS, not {when!r}", field="drill")
        text = text[1:]
    try:
        return float(text), after_ready
    except ValueError:
        raise ConfigError(f"drill item {raw!r}: {when!r} is not a number of seconds (or ready+SECONDS)",
                          field="drill") from None


def parse_schedule(text: str) -> tuple[DrillAction, ...]:
    """Parse ``--drill``: comma-separated ``ACTION[:NODE[:ARG]]@WHEN`` items.

    ``WHEN`` is seconds on the load clock (``failover:imp1@60``) or ``ready+SECONDS`` after every
    client is signed in (``failover:imp1@ready+5``).

    Returns:
        The actions: those on the load clock ordered by time, then those after ready, by time.

    Raises:
        ConfigError: an item is malformed (the message quotes it).
    """
    actions = []
    for raw in (t.strip() for t in text.split(",")):
        if not raw:
            continue
        what, sep, when = raw.rpartition("@")
        if not sep or not what:
            raise ConfigError(f"drill item {raw!r} is not ACTION@SECONDS", field="drill")
        at_s, after_ready = _parse_when(raw, when)
        parts = what.split(":")
        try:
            kind = ActionKind(parts[0])
            if kind is ActionKind.OTHER:
                raise ValueError(kind)
        except ValueError:
            known = ", ".join(k.value for k in ActionKind.schedulable())
            raise ConfigError(f"drill item {raw!r}: unknown action {parts[0]!r} (known: {known})", field="drill") \
                from None
        if kind is ActionKind.MARK:
            actions.append(DrillAction(kind=kind, at_s=at_s, arg=":".join(parts[1:]) or "operator",
                                       after_ready=after_ready))
            continue
        node = parts[1] if len(parts) > 1 and parts[1] else None
        arg = parts[2] if len(parts) > 2 else None
        if kind in (ActionKind.SERVICE_STOP, ActionKind.SERVICE_START) and not arg:
            raise ConfigError(f"drill item {raw!r} needs a service: {kind.value}:NODE:SERVICE@T", field="drill")
        actions.append(DrillAction(kind=kind, at_s=at_s, node=node, arg=arg, after_ready=after_ready))
    return tuple(sorted(actions, key=lambda a: (a.after_ready, a.at_s)))


_MOVES_SESSIONS = frozenset({ActionKind.FAILOVER, ActionKind.FALLBACK, ActionKind.SERVICE_STOP, ActionKind.KILL,
                             ActionKind.PARTITION, ActionKind.RECOVER, ActionKind.RESTART})


def check_plan(actions: tuple[DrillAction, ...], *, node_names: tuple[str, ...], run_time_s: float | None,
               settle_s: float, has_admin: bool) -> tuple[list[str], list[str]]:
    """Check a drill against its target and ``-t`` before the swarm starts.

    Args:
        actions: the parsed ``--drill``.
        node_names: the target pair's node names.
        run_time_s: Locust ``-t`` in seconds, None when the run has no time limit.
        settle_s: seconds a wave needs after its action (the upper re-login limit + the recovery margin).
        has_admin: the target has an admin API (the mock pair): actions are called, not only recorded.

    Returns:
        ``(errors, warnings)``: errors refuse the run (a node the pair lacks, an action after the end
        of the run); warnings say what the verdict will not be able to judge (a wave that the end of
        the run would cut). A ``ready+`` time counts from a moment known only during the run, so it
        is checked as if every client were signed in at once.
    """
    errors: list[str] = []
    warnings: list[str] = []
    known = ", ".join(node_names)
    for a in actions:
        spelled = ":".join(p for p in (a.kind.value, a.node, a.arg) if p) + \
            f"@{'ready+' if a.after_ready else ''}{a.at_s:g}"
        if a.node is not None and a.node not in node_names and (has_admin or a.kind is not ActionKind.MARK):
            errors.append(f"--drill {spelled}: node {a.node!r} is not in the pair ({known})")
        if run_time_s is None:
            continue
        if a.at_s >= run_time_s:  # ready+ counts later still: it cannot fit either
            errors.append(f"--drill {spelled}: at {'ready + ' if a.after_ready else ''}{a.at_s:g} s, after the end "
                          f"of the run (-t {run_time_s:g}s)")
        elif a.kind in _MOVES_SESSIONS and a.at_s + settle_s > run_time_s:
            warnings.append(f"--drill {spelled}: its re-login wave needs until {'ready + ' if a.after_ready else ''}"
                            f"{a.at_s + settle_s:g} s (upper limit + recovery margin), after the end of the run "
                            f"(-t {run_time_s:g}s): clients still waiting then make the verdict INCONCLUSIVE; give -t "
                            "at least that")
    return errors, warnings


def soak_schedule(*, every_s: float, node: str, run_time_s: float | None, ramp_s: float,
                  settle_s: float) -> tuple[list[str], list[str]]:
    """A soak's drill: a failover of ``node`` ``every_s`` seconds after every client is signed in,
    its fallback ``every_s`` later, and so on, alternating, while a wave still settles before the end
    of the run (``--drill-every``).

    Args:
        every_s: seconds between two actions (each wave gets this long).
        node: the node that fails over and falls back (node 1 by default).
        run_time_s: Locust ``-t`` (required: a soak without an end would drill forever).
        ramp_s: the sign-in ramp as planned (``-u / -r``): when ``ready`` is expected.
        settle_s: seconds a wave needs (the upper limit + the recovery margin).

    Returns:
        ``(--drill items, errors)``: ``failover:NODE@ready+T`` / ``fallback:NODE@ready+T`` items, an
        even number of them so that the pair ends Normal | Normal (our choice: a soak ends as it
        started); errors in the option's terms (no ``-t``, a period shorter than a wave, no room).
    """
    if every_s <= 0:
        return [], []
    if run_time_s is None:
        return [], [f"--drill-every {every_s:g}: a soak needs -t (its drills repeat until the run ends)"]
    if every_s < settle_s:
        return [], [f"--drill-every ({every_s:g} s) must give each wave its window: at least the upper limit + the "
                    f"recovery margin = {settle_s:g} s"]
    items: list[str] = []
    k = 1
    while ramp_s + k * every_s + settle_s <= run_time_s and k <= 100_000:
        items.append(f"{'failover' if k % 2 else 'fallback'}:{node}@ready+{k * every_s:g}")
        k += 1
    if len(items) % 2:
        items.pop()  # end on a fallback
    if not items:
        return [], [f"--drill-every {every_s:g}: no failover and fallback fit in -t {run_time_s:g}s after the "
                    f"ramp ({ramp_s:g} s) with {settle_s:g} s per wave; give -t at least "
                    f"{ramp_s + 2 * every_s + settle_s:g}s"]
    return items, []


def soak_drill(opts: Any, *, node: str, upper_s: float) -> str:
    """``--drill`` with the items of :func:`soak_schedule` for ``--drill-every`` appended.

    Args:
        opts: the parsed options (``drill``, ``drill_every``, ``run_time``, ``num_users``,
            ``spawn_rate``, ``recovery_margin``).
        node: the node that fails over.
        upper_s: the upper re-login limit the clients will draw from.

    Raises:
        ConfigError: the soak does not fit (no ``-t``, a period shorter than a wave, no room).
    """
    drill = [t for t in str(opts.drill or "").split(",") if t.strip()]
    every = float(opts.drill_every or 0.0)
    if every <= 0:
        return ",".join(drill)
    run_time = getattr(opts, "run_time", None)
    items, errors = soak_schedule(every_s=every, node=node, run_time_s=float(run_time) if run_time else None,
                                  ramp_s=float(opts.num_users or 0) / float(opts.spawn_rate or 1.0),
                                  settle_s=upper_s + float(opts.recovery_margin))
    if errors:
        raise ConfigError("; ".join(errors), field="drill_every")
    return ",".join(drill + items)


def admin_call(action: DrillAction) -> tuple[str, str, dict[str, object] | None] | None:
    """The mock admin API request for ``action``: (method, path, JSON body), or None (record only)."""
    k = action.kind
    if k in (ActionKind.FAILOVER, ActionKind.FALLBACK):
        return "POST", f"/api/{k.value}", {"node": action.node}
    if k is ActionKind.RECOVER:
        return "POST", "/api/recover", None
    if k in (ActionKind.SERVICE_STOP, ActionKind.SERVICE_START):
        verb = "stop" if k is ActionKind.SERVICE_STOP else "start"
        return "POST", f"/api/nodes/{action.node}/services/{action.arg}/{verb}", None
    if k in (ActionKind.KILL, ActionKind.RESTART):
        return "POST", f"/api/nodes/{action.node}/{k.value}", None
    if k in (ActionKind.PARTITION, ActionKind.HEAL):
        return "POST", f"/api/{k.value}", None
    if k in (ActionKind.HA_ON, ActionKind.HA_OFF):
        return "POST", "/api/ha", {"enabled": k is ActionKind.HA_ON}
    return None
