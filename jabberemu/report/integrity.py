"""Run-wide checks: was the drill tested at all? (they can make a verdict INCONCLUSIVE, never PASS).

A release gate must never be green when nothing was tested (``checks`` module docstring). These
checks look at the run as a whole: its client records, whether it ended as planned, whether every
planned drill action was injected and accepted by the admin API, whether every client was signed
in before the first action that moves sessions, and whether any client saw an HA event at all.
"""

from __future__ import annotations

from jabberemu.report.analysis import Analysis
from jabberemu.report.checks import Check, CheckName, CheckStatus
from jabberemu.report.records import ActionKind, RunInfo

__all__ = ["integrity_checks"]

#: Planned items that are no HA action (nothing to inject): an operator mark, the end of the drill.
_NOT_INJECTED = frozenset({"mark", "stop"})


def _check(name: CheckName, ok: bool, message: str, *, measured: float | None = None,
           limit: float | None = None, clients: int | None = None) -> Check:
    return Check(name=name, status=CheckStatus.PASS if ok else CheckStatus.INCONCLUSIVE, wave=None,
                 measured=measured, limit=limit, excess=None, message=message, clients=clients)


def _actions(info: RunInfo) -> Check:
    failed = [a for a in info.actions if a.error is not None]
    done = {(a.name.split(":")[0], a.node) for a in info.actions}
    missing = [p for p in info.planned_actions
               if p.name.split(":")[0] not in _NOT_INJECTED and (p.name.split(":")[0], p.node) not in done]
    if not failed and not missing:
        n = sum(1 for a in info.actions if a.name.split(":")[0] not in _NOT_INJECTED)
        return _check(CheckName.ACTIONS_DONE, True, f"all {n} planned drill actions were injected"
                      if info.planned_actions else f"{n} drill actions recorded (no plan in run.json to compare)",
                      measured=float(n))
    parts = [f"{a.name} {a.node or ''}".strip() + f" was refused: {a.error}" for a in failed]
    parts += [f"{p.name} {p.node or ''}".strip() + f" planned at {'ready+' if p.after_ready else ''}{p.at_s:g} s "
              "was never injected (the run ended first, or the clients never all signed in)" for p in missing]
    return _check(CheckName.ACTIONS_DONE, False, "; ".join(parts), measured=float(len(failed) + len(missing)),
                  limit=0.0)


def _steady(info: RunInfo, analysis: Analysis) -> Check:
    r = analysis.readiness
    planned = info.clients if info.clients is not None else analysis.accounting.clients_started
    when = (f"when {r.first_action} came at {r.first_action_s:.1f} s" if r.first_action is not None
            else "by the end of the run")
    if r.signed_in >= planned:
        return _check(CheckName.STEADY_STATE, True, f"all {planned} clients were signed in {when}",
                      measured=float(r.signed_in), limit=float(planned), clients=r.signed_in)
    why = "; ".join(f"{n} {reason}" for reason, n in r.end_reasons.items())
    return _check(CheckName.STEADY_STATE, False,
                  f"only {r.signed_in} of {planned} clients were signed in {when}"
                  + (f": {r.ended_before} had already ended ({why})" if r.ended_before else "")
                  + "; the drill tested fewer clients than planned", measured=float(r.signed_in),
                  limit=float(planned), clients=r.signed_in)


def integrity_checks(info: RunInfo, analysis: Analysis) -> list[Check]:
    """The run-wide checks, in the order the report lists them.

    Args:
        info: ``run.json``.
        analysis: ``analyze(data)``.
    Returns:
        Checks whose status is PASS or INCONCLUSIVE.
    """
    acc = analysis.accounting
    checks = [_check(CheckName.RUN_DATA, acc.clients_started > 0,
                     f"client records of {acc.clients_started} clients" if acc.clients_started
                     else "no client record at all (client_events.jsonl missing or empty): nothing was measured",
                     measured=float(acc.clients_started), clients=acc.clients_started)]
    checks.append(_check(CheckName.RUN_COMPLETE, not info.partial,
                         "the run ended as planned" if not info.partial else
                         "the run was interrupted (a signal, or -t shorter than its drill): partial data"))
    if info.planned_actions or info.actions:
        checks.append(_actions(info))
    if acc.clients_started:
        checks.append(_steady(info, analysis))
    moved = any(a.kind.moves_sessions_away or a.kind is ActionKind.FALLBACK for a in info.actions)
    if not analysis.waves:
        what = ("an HA action was injected but no client saw an HA event" if moved
                else "no client saw an HA event in this run")
        checks.append(_check(CheckName.HA_EVENT_SEEN, False, f"{what}: the re-login throttle was not exercised",
                             measured=0.0))
    else:
        n = sum(w.clients for w in analysis.waves)
        checks.append(_check(CheckName.HA_EVENT_SEEN, True, f"{len(analysis.waves)} re-login waves, "
                             f"{n} client HA events", measured=float(n), clients=n))
    return checks
