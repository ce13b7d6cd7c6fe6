"""Throttle verdict: did the re-login limits hold the servers during each HA event?

A re-login is a CPA login, the expensive step the limits throttle (docs/login-model.md). PASS when,
for every wave:

1. the peak re-login **demand** (CPA logins arriving at a node's login admission, over sliding
   1 s and 10 s windows; ``storm.WaveStorm``) is at or below the declared server capacity
   (``run.json`` ``server_login_rate``; none declared: *not applicable*, and it says so). Demand,
   not the logins served: a throttled node never serves more than its capacity, the window decides
   how much arrives. A wave with no CPA login (XMPP-only clients) is measured on its re-logins
   completed instead;
2. no CPA login was refused busy (``server-busy``) and none timed out at the client;
3. the p99 CPA login wait of the wave (client-measured round trip, queue wait included) is at or
   below ``max_login_wait_s`` (``run.json``; default :data:`DEFAULT_MAX_LOGIN_WAIT_S`);
4. every client recovered, and the slowest recovery finished within ``upper + recovery_margin_s``.

Otherwise FAIL, naming each failed check and by how much, with what the server did (served rate,
queue peak). The capacity rule is Cisco's (IM&P config guide 12.5(1), "High Availability Login
Profiles": the re-login window must spread the users so that the login rate stays within the
node's sustainable rate).

Warnings never change the verdict: a saturated generator ("latencies not trustworthy"), a
partial run, a window whose predicted rate ``N / (upper - lower)`` already exceeds the capacity.
"""

from __future__ import annotations

from dataclasses import replace

from jabberemu.report.analysis import CPU_SATURATED_PERCENT, LOOP_LAG_SATURATED_MS, Analysis
from jabberemu.report.checks import (
    EXIT_FAIL,
    EXIT_INCONCLUSIVE,
    Check,
    CheckName,
    CheckStatus,
    Verdict,
    VerdictResult,
    exit_code,
    failed,
)
from jabberemu.report.integrity import integrity_checks
from jabberemu.report.records import RunInfo
from jabberemu.report.storm import WaveStorm
from jabberemu.report.waves import Wave

__all__ = ["DEFAULT_MAX_LOGIN_WAIT_S", "EXIT_FAIL", "EXIT_INCONCLUSIVE", "Check", "CheckName", "CheckStatus",
           "Verdict", "VerdictResult", "exit_code", "failed", "judge"]

DEFAULT_MAX_LOGIN_WAIT_S = 5.0
"""Bound on a wave's p99 CPA login wait (s) when the run sets none (our choice: a sign-in that takes
longer than a few seconds is what users call slow; Cisco publishes no figure)."""


def _label(w: Wave) -> str:
    return f"{w.kind.value} #{w.index + 1} ({w.node or 'unknown node'}, t={w.at_s:.1f} s)"


def _server_side(s: WaveStorm | None) -> str:
    """What the server did, for a message: served peak, queue peak, p99 wait."""
    if s is None or not s.nodes:
        return ""
    parts = [f"served at most {s.served_peak_1s:.0f}/s"]
    if s.queue_peak is not None:
        parts.append(f"queue peaked at {s.queue_peak} logins")
    if s.login_wait_p99_s is not None:
        parts.append(f"p99 login wait {s.login_wait_p99_s:.2f} s")
    return " (" + ", ".join(parts) + ")"


def _rate_check(w: Wave, s: WaveStorm | None, name: CheckName, capacity: float | None) -> Check:
    window = "1 s" if name is CheckName.PEAK_RATE_1S else "10 s"
    cpa = s is not None and any(n.demand_total for n in s.nodes)
    if cpa:
        assert s is not None
        measured = s.demand_peak_1s if name is CheckName.PEAK_RATE_1S else s.demand_peak_10s
        what, where = "re-login demand", s.busiest_node
    else:  # XMPP-only clients: no CPA login to count; the re-logins completed are the load
        measured = w.measured_peak_rate_1s if name is CheckName.PEAK_RATE_1S else w.measured_peak_rate_10s
        what, where = "re-login rate", w.peak_node
    head = f"{_label(w)}: peak {what} over {window} = {measured:.1f}/s"
    if capacity is None:
        return Check(name=name, status=CheckStatus.NOT_APPLICABLE, wave=w.index, measured=measured, limit=None,
                     excess=None, message=f"{head}; no server capacity declared (run.json server_login_rate): "
                     "check not applicable")
    if measured <= capacity:
        return Check(name=name, status=CheckStatus.PASS, wave=w.index, measured=measured, limit=capacity, excess=None,
                     message=f"{head} <= capacity {capacity:g}/s")
    excess = measured - capacity
    return Check(name=name, status=CheckStatus.FAIL, wave=w.index, measured=measured, limit=capacity, excess=excess,
                 message=f"{head} exceeds capacity {capacity:g}/s by {excess:.1f}/s (+{100 * excess / capacity:.0f}%)"
                 + (f" on {where}" if where else "") + _server_side(s if cpa else None))


def _count_check(w: Wave, s: WaveStorm | None, name: CheckName) -> Check:
    if s is None or not any(n.demand_total for n in s.nodes):
        return Check(name=name, status=CheckStatus.NOT_APPLICABLE, wave=w.index, measured=None, limit=0.0,
                     excess=None, message=f"{_label(w)}: no CPA login in this wave: {name.value} not applicable")
    n = s.busy if name is CheckName.NO_BUSY else s.timeouts
    what = "refused busy (server-busy)" if name is CheckName.NO_BUSY else "timed out at the client (timeout:soap)"
    if n == 0:
        return Check(name=name, status=CheckStatus.PASS, wave=w.index, measured=0.0, limit=0.0, excess=None,
                     message=f"{_label(w)}: no CPA login {what}")
    return Check(name=name, status=CheckStatus.FAIL, wave=w.index, measured=float(n), limit=0.0, excess=float(n),
                 message=f"{_label(w)}: {n} CPA login attempts {what}; {s.second_rounds} clients needed a second "
                 f"round, {sum(s.gave_up.values())} gave up" + _server_side(s))


def _wait_check(w: Wave, s: WaveStorm | None, bound_s: float) -> Check:
    if s is None or s.login_wait_p99_s is None:
        return Check(name=CheckName.LOGIN_WAIT, status=CheckStatus.NOT_APPLICABLE, wave=w.index, measured=None,
                     limit=bound_s, excess=None, message=f"{_label(w)}: no CPA login wait measured: not applicable")
    p99 = s.login_wait_p99_s
    if p99 <= bound_s:
        return Check(name=CheckName.LOGIN_WAIT, status=CheckStatus.PASS, wave=w.index, measured=p99, limit=bound_s,
                     excess=None, message=f"{_label(w)}: p99 CPA login wait {p99:.2f} s <= {bound_s:g} s")
    return Check(name=CheckName.LOGIN_WAIT, status=CheckStatus.FAIL, wave=w.index, measured=p99, limit=bound_s,
                 excess=p99 - bound_s, message=f"{_label(w)}: p99 CPA login wait {p99:.2f} s exceeds {bound_s:g} s "
                 f"by {p99 - bound_s:.2f} s (max {s.login_wait_max_s or 0.0:.2f} s)" + _server_side(s))


def _wave_checks(w: Wave, s: WaveStorm | None, capacity: float | None, margin_s: float,
                 max_wait_s: float) -> list[Check]:
    checks = [_rate_check(w, s, CheckName.PEAK_RATE_1S, capacity),
              _rate_check(w, s, CheckName.PEAK_RATE_10S, capacity),
              _count_check(w, s, CheckName.NO_BUSY), _count_check(w, s, CheckName.NO_TIMEOUT),
              _wait_check(w, s, max_wait_s)]
    lost = w.clients - w.recovered
    if lost == 0:
        checks.append(Check(name=CheckName.ALL_RECOVERED, status=CheckStatus.PASS, wave=w.index,
                            measured=float(w.recovered), limit=float(w.clients), excess=None,
                            message=f"{_label(w)}: all {w.clients} clients recovered"))
    elif lost > w.pending:
        pending = f" ({w.pending} more still inside their window when the run ended)" if w.pending else ""
        sample = ", ".join(w.not_recovered_sample[:5])
        checks.append(Check(name=CheckName.ALL_RECOVERED, status=CheckStatus.FAIL, wave=w.index,
                            measured=float(w.recovered), limit=float(w.clients), excess=float(lost - w.pending),
                            message=f"{_label(w)}: {lost - w.pending} of {w.clients} clients did not recover "
                            f"({100 * (lost - w.pending) / w.clients:.1f}%){pending}; e.g. {sample}"))
    else:  # the run ended while they were still inside their re-login window: not tested
        checks.append(Check(name=CheckName.ALL_RECOVERED, status=CheckStatus.INCONCLUSIVE, wave=w.index,
                            measured=float(w.recovered), limit=float(w.clients), excess=None,
                            message=f"{_label(w)}: wave cut by the end of the run: {w.pending} of {w.clients} clients "
                            f"were still inside their re-login window (upper {w.upper_s or 0:g} s + margin "
                            f"{margin_s:g} s) when it ended; run longer than the last action + upper + margin"))
    if w.upper_s is None or w.recovery_max_s is None:
        checks.append(Check(name=CheckName.RECOVERY_TIME, status=CheckStatus.NOT_APPLICABLE, wave=w.index,
                            measured=w.recovery_max_s, limit=None, excess=None,
                            message=f"{_label(w)}: recovery time not applicable "
                            + ("(no re-login limits known)" if w.upper_s is None else "(no client recovered)")))
    else:
        limit = w.upper_s + margin_s
        ok = w.recovery_max_s <= limit
        checks.append(Check(
            name=CheckName.RECOVERY_TIME, status=CheckStatus.PASS if ok else CheckStatus.FAIL, wave=w.index,
            measured=w.recovery_max_s, limit=limit, excess=None if ok else w.recovery_max_s - limit,
            message=f"{_label(w)}: slowest recovery {w.recovery_max_s:.2f} s "
            + (f"<= upper {w.upper_s:g} s + margin {margin_s:g} s" if ok else
               f"exceeds upper {w.upper_s:g} s + margin {margin_s:g} s = {limit:g} s by "
               f"{w.recovery_max_s - limit:.2f} s")))
    demand = sum(n.demand_total for n in s.nodes) if s is not None else None
    rates = (CheckName.PEAK_RATE_1S, CheckName.PEAK_RATE_10S)
    return [replace(c, clients=w.clients if c.name not in rates or not demand else demand) for c in checks]


def judge(info: RunInfo, analysis: Analysis, *, server_login_rate: float | None = None,
          recovery_margin_s: float | None = None, max_login_wait_s: float | None = None) -> VerdictResult:
    """Judge a run.

    Args:
        info: ``run.json``.
        analysis: ``analyze(data)``.
        server_login_rate: override of the declared capacity (logins/s per node).
        recovery_margin_s: override of ``run.json`` ``recovery_margin_s`` (s).
        max_login_wait_s: override of ``run.json`` ``max_login_wait_s`` (s).
    Returns:
        The verdict: FAIL when a check failed; else INCONCLUSIVE when a check could not be tested
        (``report.integrity``, a wave cut by the end of the run); else PASS.
    """
    capacity = server_login_rate if server_login_rate is not None else info.server_login_rate
    margin = recovery_margin_s if recovery_margin_s is not None else info.recovery_margin_s
    max_wait = (max_login_wait_s if max_login_wait_s is not None
                else info.max_login_wait_s if info.max_login_wait_s is not None else DEFAULT_MAX_LOGIN_WAIT_S)
    storms = {s.wave: s for s in analysis.storms}
    checks = integrity_checks(info, analysis)
    for w in analysis.waves:
        checks.extend(_wave_checks(w, storms.get(w.index), capacity, margin, max_wait))
    statuses = {c.status for c in checks}
    verdict = (Verdict.FAIL if CheckStatus.FAIL in statuses
               else Verdict.INCONCLUSIVE if CheckStatus.INCONCLUSIVE in statuses else Verdict.PASS)
    order = {CheckStatus.FAIL: 0, CheckStatus.INCONCLUSIVE: 1, CheckStatus.NOT_APPLICABLE: 2, CheckStatus.PASS: 3}
    reasons = tuple(c.message for c in sorted(checks, key=lambda c: order[c.status]))
    return VerdictResult(verdict=verdict, checks=tuple(checks), reasons=reasons,
                         warnings=tuple(_warnings(info, analysis, capacity)))


def _warnings(info: RunInfo, analysis: Analysis, capacity: float | None) -> list[str]:
    out: list[str] = []
    if info.partial:
        out.append("partial run: stopped before its end; the verdict covers what was recorded")
    g = analysis.generator
    if g.saturated:
        out.append(f"load generator saturated (CPU max {_fmt(g.cpu_max, '%')}, event-loop lag p99 "
                   f"{_fmt(g.loop_lag_p99_ms, ' ms')}; limits {CPU_SATURATED_PERCENT:g}% / "
                   f"{LOOP_LAG_SATURATED_MS:g} ms): latencies not trustworthy")
    elif g.samples == 0:
        out.append("no generator health samples: cannot tell whether latencies are trustworthy")
    for w in analysis.waves:
        if capacity is not None and w.predicted_peak_rate is not None and w.predicted_peak_rate > capacity:
            out.append(f"{_label(w)}: window too narrow: predicted rate {w.clients} / ({w.upper_s:g} - "
                       f"{w.lower_s:g}) s = {w.predicted_peak_rate:.1f}/s > capacity {capacity:g}/s")
        if w.limits_mixed:
            out.append(f"{_label(w)}: clients used different re-login limits (mismatched nodes?)")
        if w.upper_s is not None and w.lower_s is not None and w.upper_s - w.lower_s < 10:
            out.append(f"{_label(w)}: window {w.upper_s - w.lower_s:g} s < 10 s: the 10 s peak rate averages "
                       "over quiet time; read the 1 s rate")
    return out


def _fmt(value: float | None, unit: str) -> str:
    return "n/a" if value is None else f"{value:.1f}{unit}"
