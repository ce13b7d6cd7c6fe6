"""Throttle verdict: did the re-login limits hold the servers during each HA event?

A re-login is a CPA login, the expensive step the limits throttle (docs/login-model.md). A node
with a login queue absorbs a short burst: what a server owner cares about is how long logins waited
and whether clients were refused or timed out, which is also what ``jabberemu plan`` plans for, so
the planner's window PASSes and a window the model predicts to make clients time out FAILs. For
every wave:

1. no CPA login was refused busy (``server-busy``) and none timed out at the client;
2. the wave's p99 CPA login wait is at or below ``max_login_wait_s`` (``run.json``; default
   :data:`DEFAULT_MAX_LOGIN_WAIT_S`, the planner's bound): the client-measured round trip of the
   login, queue wait included, less the node's declared service time;
3. every client recovered (clients still inside their window when the run ended: INCONCLUSIVE);
4. the slowest recovery finished within ``upper + recovery_margin_s``.

FAIL names each failed check and by how much, with what the server did (served rate, queue peak)
and what the model predicted for the wave (``report.prediction``). The peak re-login demand over
1 s and 10 s windows against the declared capacity (Cisco's rule: IM&P 12.5(1), "High Availability
Login Profiles") is shown beside it, with the model's band, as information: a uniform wave's busiest
second routinely holds 1.4x its mean, and a queue absorbs it. The run-wide checks
(``report.integrity``) make the verdict INCONCLUSIVE when something was not tested.

A soak (``report.drift``) adds its drift checks: latency p99 and RSS slopes per hour after warm-up
(FAIL above their limits, INCONCLUSIVE when a declared soak is too short to tell).

Warnings never change the verdict: a saturated generator ("latencies not trustworthy"), a
partial run, a wave the model and the measurement disagree on.
"""

from __future__ import annotations

from dataclasses import replace

from jabberemu.report.analysis import Analysis
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
from jabberemu.report.drift import applies, drift_checks
from jabberemu.report.integrity import integrity_checks
from jabberemu.report.prediction import WavePrediction
from jabberemu.report.records import RunInfo
from jabberemu.report.storm import WaveStorm
from jabberemu.report.waves import Wave
from jabberemu.throttle import DEFAULT_MAX_WAIT_P99_S, Band

__all__ = ["DEFAULT_MAX_LOGIN_WAIT_S", "EXIT_FAIL", "EXIT_INCONCLUSIVE", "Check", "CheckName", "CheckStatus",
           "Verdict", "VerdictResult", "exit_code", "failed", "judge"]

DEFAULT_MAX_LOGIN_WAIT_S = DEFAULT_MAX_WAIT_P99_S
"""Bound on a wave's p99 CPA login wait (s) when the run sets none: the planner's."""


def _label(w: Wave) -> str:
    return f"{w.kind.value} #{w.index + 1} ({w.node or 'unknown node'}, t={w.at_s:.1f} s)"


def _server_side(s: WaveStorm | None) -> str:
    """What the server did, for a message: demand and served peaks, queue peak, p99 wait."""
    if s is None or not s.nodes:
        return ""
    parts = [f"demand peaked at {s.demand_peak_1s:.0f}/s, served at most {s.served_peak_1s:.0f}/s"]
    if s.queue_peak is not None:
        parts.append(f"queue peaked at {s.queue_peak} logins")
    if s.login_wait_p99_s is not None:
        parts.append(f"p99 login wait {s.login_wait_p99_s:.2f} s")
    return " (" + ", ".join(parts) + ")"


def _model(p: WavePrediction | None, band: str, fmt: str = "{:.0f}", unit: str = "", shift: float = 0.0) -> str:
    """`` (model: median, p5-p95 lo-hi)`` for a band of the prediction, or ""."""
    if p is None:
        return ""
    b: Band = getattr(p.result.bands, band)
    return (f"; model: {fmt.format(b.median + shift)}{unit} (p5-p95 {fmt.format(b.p5 + shift)}-"
            f"{fmt.format(b.p95 + shift)}{unit})")


def _rate_info(w: Wave, s: WaveStorm | None, p: WavePrediction | None, name: CheckName,
               capacity: float | None) -> Check:
    window = "1 s" if name is CheckName.PEAK_RATE_1S else "10 s"
    cpa = s is not None and any(n.demand_total for n in s.nodes)
    if cpa:
        assert s is not None
        measured = s.demand_peak_1s if name is CheckName.PEAK_RATE_1S else s.demand_peak_10s
        what = "re-login demand"
    else:  # XMPP-only clients: no CPA login to count; the re-logins completed are the load
        measured = w.measured_peak_rate_1s if name is CheckName.PEAK_RATE_1S else w.measured_peak_rate_10s
        what = "re-login rate"
    against = f"against capacity {capacity:g}/s" if capacity is not None else "no capacity declared"
    band = _model(p, "demand_peak", unit="/s") if name is CheckName.PEAK_RATE_1S and cpa else ""
    return Check(name=name, status=CheckStatus.INFO, wave=w.index, measured=measured, limit=capacity, excess=None,
                 message=f"{_label(w)}: peak {what} over {window} = {measured:.1f}/s {against}{band}"
                 + (_server_side(s) if cpa and name is CheckName.PEAK_RATE_1S else ""))


def _count_check(w: Wave, s: WaveStorm | None, p: WavePrediction | None, name: CheckName) -> Check:
    if s is None or not any(n.demand_total for n in s.nodes):
        return Check(name=name, status=CheckStatus.NOT_APPLICABLE, wave=w.index, measured=None, limit=0.0,
                     excess=None, message=f"{_label(w)}: no CPA login in this wave: {name.value} not applicable")
    busy = name is CheckName.NO_BUSY
    n = s.busy if busy else s.timeouts
    what = "refused busy (server-busy)" if busy else "timed out at the client (timeout:soap)"
    model = _model(p, "refused_busy" if busy else "timed_out")
    if n == 0:
        return Check(name=name, status=CheckStatus.PASS, wave=w.index, measured=0.0, limit=0.0, excess=None,
                     message=f"{_label(w)}: no CPA login {what}{model}")
    return Check(name=name, status=CheckStatus.FAIL, wave=w.index, measured=float(n), limit=0.0, excess=float(n),
                 message=f"{_label(w)}: {n} CPA login attempts {what}{model}; {s.second_rounds} clients needed a "
                 f"second round, {sum(s.gave_up.values())} gave up" + _server_side(s))


def _wait_check(w: Wave, s: WaveStorm | None, p: WavePrediction | None, bound_s: float) -> Check:
    if s is None or s.login_wait_p99_s is None:
        return Check(name=CheckName.LOGIN_WAIT, status=CheckStatus.NOT_APPLICABLE, wave=w.index, measured=None,
                     limit=bound_s, excess=None, message=f"{_label(w)}: no CPA login wait measured: not applicable")
    service_s = p.model.service_s if p is not None else 0.0
    p99 = max(0.0, s.login_wait_p99_s - service_s)
    model = _model(p, "wait_p99_s", "{:.2f}", " s")
    head = f"{_label(w)}: p99 CPA login wait {p99:.2f} s"
    if p99 <= bound_s:
        return Check(name=CheckName.LOGIN_WAIT, status=CheckStatus.PASS, wave=w.index, measured=p99, limit=bound_s,
                     excess=None, message=f"{head} <= {bound_s:g} s{model}")
    return Check(name=CheckName.LOGIN_WAIT, status=CheckStatus.FAIL, wave=w.index, measured=p99, limit=bound_s,
                 excess=p99 - bound_s, message=f"{head} exceeds {bound_s:g} s by {p99 - bound_s:.2f} s (max "
                 f"{s.login_wait_max_s or 0.0:.2f} s){model}" + _server_side(s))


def _recovered(w: Wave, p: WavePrediction | None, margin_s: float) -> Check:
    lost = w.clients - w.recovered
    if lost == 0:
        return Check(name=CheckName.ALL_RECOVERED, status=CheckStatus.PASS, wave=w.index, measured=float(w.recovered),
                     limit=float(w.clients), excess=None, message=f"{_label(w)}: all {w.clients} clients recovered")
    if lost > w.pending:
        pending = f" ({w.pending} more still inside their window when the run ended)" if w.pending else ""
        sample = ", ".join(w.not_recovered_sample[:5])
        return Check(name=CheckName.ALL_RECOVERED, status=CheckStatus.FAIL, wave=w.index, measured=float(w.recovered),
                     limit=float(w.clients), excess=float(lost - w.pending),
                     message=f"{_label(w)}: {lost - w.pending} of {w.clients} clients did not recover "
                     f"({100 * (lost - w.pending) / w.clients:.1f}%){pending}{_model(p, 'gave_up')} gave up; "
                     f"e.g. {sample}")
    # the run ended while they were still inside their re-login window: not tested
    return Check(name=CheckName.ALL_RECOVERED, status=CheckStatus.INCONCLUSIVE, wave=w.index,
                 measured=float(w.recovered), limit=float(w.clients), excess=None,
                 message=f"{_label(w)}: wave cut by the end of the run: {w.pending} of {w.clients} clients were still "
                 f"inside their re-login window (upper {w.upper_s or 0:g} s + margin {margin_s:g} s) when it ended; "
                 "run longer than the last action + upper + margin")


def _recovery_time(w: Wave, p: WavePrediction | None, margin_s: float) -> Check:
    if w.upper_s is None or w.recovery_max_s is None:
        return Check(name=CheckName.RECOVERY_TIME, status=CheckStatus.NOT_APPLICABLE, wave=w.index,
                     measured=w.recovery_max_s, limit=None, excess=None,
                     message=f"{_label(w)}: recovery time not applicable "
                     + ("(no re-login limits known)" if w.upper_s is None else "(no client recovered)"))
    limit = w.upper_s + margin_s
    ok = w.recovery_max_s <= limit
    model = _model(p, "recovery_max_s", "{:.1f}", " s")
    return Check(name=CheckName.RECOVERY_TIME, status=CheckStatus.PASS if ok else CheckStatus.FAIL, wave=w.index,
                 measured=w.recovery_max_s, limit=limit, excess=None if ok else w.recovery_max_s - limit,
                 message=f"{_label(w)}: slowest recovery {w.recovery_max_s:.2f} s "
                 + (f"<= upper {w.upper_s:g} s + margin {margin_s:g} s" if ok else
                    f"exceeds upper {w.upper_s:g} s + margin {margin_s:g} s = {limit:g} s by "
                    f"{w.recovery_max_s - limit:.2f} s") + model)


def _agreement(w: Wave, p: WavePrediction | None) -> Check | None:
    if p is None:
        return None
    off = [c for c in p.comparisons if not c.agrees]
    if not off:
        text = f"all {len(p.comparisons)} measured figures inside the model's p5-p95 band (or within 5% of its median)"
    else:
        why = "; ".join(f"likely the {side.value}: {evidence}" for side, evidence in p.suspects) or \
            "no side stands out (a run is one draw: a figure outside p5-p95 happens one run in ten)"
        text = (f"{len(off)} of {len(p.comparisons)} measured figures outside the model's band: "
                + "; ".join(c.describe() for c in off) + f". {why}")
    return Check(name=CheckName.MODEL_AGREEMENT, status=CheckStatus.INFO, wave=w.index,
                 measured=float(len(p.comparisons) - len(off)), limit=float(len(p.comparisons)), excess=None,
                 message=f"{_label(w)}: {text}")


def _wave_checks(w: Wave, s: WaveStorm | None, p: WavePrediction | None, capacity: float | None, margin_s: float,
                 max_wait_s: float) -> list[Check]:
    checks = [_count_check(w, s, p, CheckName.NO_BUSY), _count_check(w, s, p, CheckName.NO_TIMEOUT),
              _wait_check(w, s, p, max_wait_s), _recovered(w, p, margin_s), _recovery_time(w, p, margin_s),
              _rate_info(w, s, p, CheckName.PEAK_RATE_1S, capacity),
              _rate_info(w, s, p, CheckName.PEAK_RATE_10S, capacity)]
    agreement = _agreement(w, p)
    if agreement is not None:
        checks.append(agreement)
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
        (``report.integrity``, a wave cut by the end of the run); else PASS. INFO checks never count.
    """
    capacity = server_login_rate if server_login_rate is not None else info.server_login_rate
    margin = recovery_margin_s if recovery_margin_s is not None else info.recovery_margin_s
    max_wait = (max_login_wait_s if max_login_wait_s is not None
                else info.max_login_wait_s if info.max_login_wait_s is not None else DEFAULT_MAX_LOGIN_WAIT_S)
    storms = {s.wave: s for s in analysis.storms}
    predictions = {p.wave: p for p in analysis.predictions if p is not None}
    checks = integrity_checks(info, analysis)
    for w in analysis.waves:
        checks.extend(_wave_checks(w, storms.get(w.index), predictions.get(w.index), capacity, margin, max_wait))
    declared = bool(info.extra.get("soak"))
    waves = [(w.at_s, w.end_s) for w in analysis.waves]
    if analysis.soak is not None and applies(ready_s=analysis.ready_s, duration_s=analysis.duration_s,
                                             declared_soak=declared, waves=waves):
        checks.extend(drift_checks(analysis.soak, ready_s=analysis.ready_s, duration_s=analysis.duration_s,
                                   waves=waves, declared_soak=declared))
    statuses = {c.status for c in checks}
    verdict = (Verdict.FAIL if CheckStatus.FAIL in statuses
               else Verdict.INCONCLUSIVE if CheckStatus.INCONCLUSIVE in statuses else Verdict.PASS)
    order = {CheckStatus.FAIL: 0, CheckStatus.INCONCLUSIVE: 1, CheckStatus.INFO: 2, CheckStatus.NOT_APPLICABLE: 3,
             CheckStatus.PASS: 4}
    reasons = tuple(c.message for c in sorted(checks, key=lambda c: order[c.status]))
    return VerdictResult(verdict=verdict, checks=tuple(checks), reasons=reasons,
                         warnings=tuple(_warnings(info, analysis)))


def _warnings(info: RunInfo, analysis: Analysis) -> list[str]:
    out: list[str] = []
    if info.partial:
        out.append("partial run: stopped before its end; the verdict covers what was recorded")
    g = analysis.generator
    if g.saturated or g.samples == 0:
        out.append(g.describe())
    predictions = {p.wave: p for p in analysis.predictions if p is not None}
    for w in analysis.waves:
        p = predictions.get(w.index)
        if p is not None and p.result.probability_clean < 0.99:
            out.append(f"{_label(w)}: the model gives this window a {p.result.probability_clean:.0%} chance of a "
                       "clean wave (no client refused or timed out): too narrow for the node's login model")
        if p is not None and not p.agrees:
            out.append(f"{_label(w)}: measurement and model disagree (see the check 'measured as the model "
                       "predicted')")
        if w.limits_mixed:
            out.append(f"{_label(w)}: clients used different re-login limits (mismatched nodes?)")
    return out

