"""``summary.json``: the run's numbers for pipelines (issue 6).

Top-level fields (all always present; ``null`` where not measurable):

- ``schema`` (int), ``run_id``, ``partial`` (bool), ``duration_s``
- ``clients_planned``, ``clients_started``, ``end_states`` (state -> clients), ``end_reasons``
  (state -> reason -> clients), ``clients_without_end_record``
- ``declared_capacity_per_s`` (``run.json`` ``server_login_rate``), ``recovery_margin_s``,
  ``max_login_wait_s``
- ``relogin_limits``: the limits the run used (``report.limits``): ``lower_s``, ``upper_s``,
  ``source`` (``waits``: what the clients cached; ``server_parameters``: the mock's; ``client_defaults``),
  ``waits``, ``by_limits`` (``lower_s``, ``upper_s``, ``count`` per pair seen)
- ``ha_events``: one object per wave with ``kind`` (failover|fallback), ``node`` (named by the
  admin action), ``from_node`` (the node that dropped the sessions), ``at_s``,
  ``lower_s``, ``upper_s``, ``clients``, ``recovered``, ``predicted_peak_rate`` (clients/s),
  ``measured_peak_rate_1s``, ``measured_peak_rate_10s`` (re-logins/s), ``peak_node``,
  ``recovery_p50_s``, ``recovery_p95_s``, ``recovery_p99_s``, ``recovery_max_s``,
  ``ks_statistic``, ``ks_pvalue``, ``anchor`` (the admin action, if any), ``ha_classes``,
  ``target_nodes``, ``pending``, ``end_s``; what the wave did to the servers and to its clients
  (``jabberemu.report.storm``): ``demand_peak_1s``, ``demand_peak_10s`` (CPA logins arriving at a
  node's admission, /s), ``served_peak_1s``, ``busiest_node``, ``login_wait_p50_s``,
  ``login_wait_p99_s``, ``login_wait_max_s``, ``queue_peak``, ``busy``, ``timeouts``,
  ``otp_refused``, ``abandoned``, ``second_rounds``, ``gave_up`` (reason -> clients),
  ``recovered_by`` (round -> clients), ``nodes`` (per node: ``node``, ``demand``, ``served``,
  ``demand_peak_1s``, ``demand_peak_10s``, ``served_peak_1s``, ``server_busy``,
  ``server_abandoned``, ``server_completed``); what the model predicted for the wave
  (``report.prediction``): ``predicted`` (``server_model``, ``soap_timeout_s``, ``replicas``,
  ``probability_clean``, and ``median``/``p5``/``p95`` of each figure: ``demand_peak``,
  ``served_peak``, ``queue_peak``, ``wait_p99_s``, ``recovery_p50_s``, ``recovery_p99_s``,
  ``recovery_max_s``, ``refused_busy``, ``timed_out``, ``second_rounds``, ``gave_up``,
  ``clients_at_risk``), ``measured_vs_predicted`` (one row per figure measured: ``name``, ``unit``,
  ``measured``, ``median``, ``p5``, ``p95``, ``agrees``) and ``suspects`` (``side``, ``evidence``)
  when they disagree; ``predicted`` is null when the wave could not be modelled
- ``soak``: ``declared`` (``run.json`` ``soak``), ``minutes``, ``warmup_end_s`` (memory's),
  ``latency_warmup_end_s``, ``drift_judged``
  (whether the drift checks of ``report.drift`` apply; their numbers are in ``checks``)
- ``latency``: rows of ``request_type``, ``name``, ``phase``, ``samples``,
  ``without_response_time``, ``failures``, ``p50_ms``, ``p95_ms``, ``p99_ms``, ``p999_ms``, ``max_ms``
- ``generator`` (``report.health``): ``stall_share``, ``wave_stall_share`` (0-1), ``stalled_s``,
  ``worst`` (``t_s``, ``worker``, ``lag_ms``, ``cause``), ``description``, ``cpu_max`` (%),
  ``loop_lag_max_ms``, ``gc_max_ms``, ``rss_max_bytes``, ``workers``,
  ``samples``, ``saturated``
- ``verdict`` ("PASS"/"FAIL"/"INCONCLUSIVE", ``report.checks``), ``reasons`` (failed checks first,
  then inconclusive ones), ``warnings``, ``checks`` (``name``, ``status``, ``wave``, ``measured``,
  ``limit``, ``excess``, ``message``, ``clients``: how many clients the check covered)
- ``data_warnings``: what the loader tolerated.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jabberemu.report.analysis import Analysis
from jabberemu.report.drift import applies, warmup_end_s
from jabberemu.report.prediction import WavePrediction
from jabberemu.report.records import RunData
from jabberemu.report.storm import WaveStorm
from jabberemu.report.verdict import Verdict, VerdictResult
from jabberemu.rundata.files import SUMMARY_FILE

__all__ = ["SCHEMA_VERSION", "SUMMARY_FILE", "Summary", "make_summary"]

SCHEMA_VERSION = 2  # 2: INCONCLUSIVE, per-wave server side and client outcomes, checks name clients


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf -> None, floats rounded to 6 decimals, containers recursed."""
    if isinstance(value, float):
        return None if not math.isfinite(value) else round(value, 6)
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


@dataclass(frozen=True, kw_only=True)
class Summary:
    """The verdict plus ``summary.json``'s content (``data``, JSON-ready)."""

    verdict: Verdict
    reasons: tuple[str, ...]
    data: dict[str, Any]

    def write(self, path: Path) -> None:
        """Write ``data`` as indented JSON to ``path``."""
        path.write_text(json.dumps(self.data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    @classmethod
    def read(cls, path: Path) -> Summary:
        """Read a ``summary.json`` written by :meth:`write`."""
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(verdict=Verdict(data["verdict"]), reasons=tuple(data["reasons"]), data=data)


def _storm(s: WaveStorm | None) -> dict[str, Any]:
    if s is None:
        return {}
    return {
        "demand_peak_1s": s.demand_peak_1s, "demand_peak_10s": s.demand_peak_10s,
        "served_peak_1s": s.served_peak_1s, "busiest_node": s.busiest_node,
        "login_wait_p50_s": s.login_wait_p50_s, "login_wait_p99_s": s.login_wait_p99_s,
        "login_wait_max_s": s.login_wait_max_s, "queue_peak": s.queue_peak, "busy": s.busy,
        "timeouts": s.timeouts, "otp_refused": s.otp_refused, "abandoned": s.abandoned,
        "second_rounds": s.second_rounds, "gave_up": s.gave_up, "recovered_by": s.recovered_by,
        "nodes": [{
            "node": n.node, "demand": n.demand_total, "served": n.served_total,
            "demand_peak_1s": n.demand_peak_1s, "demand_peak_10s": n.demand_peak_10s,
            "served_peak_1s": n.served_peak_1s, "server_busy": n.server_busy,
            "server_abandoned": n.server_abandoned, "server_completed": n.server_completed,
        } for n in s.nodes],
    }


_PREDICTED = ("demand_peak", "served_peak", "queue_peak", "wait_p99_s", "recovery_p50_s", "recovery_p99_s",
              "recovery_max_s", "refused_busy", "timed_out", "second_rounds", "gave_up", "clients_at_risk")


def _prediction(p: WavePrediction | None) -> dict[str, Any]:
    if p is None:
        return {"predicted": None, "measured_vs_predicted": [], "suspects": []}
    bands = p.result.bands
    m = p.model
    return {
        "predicted": {
            "server_model": {"rate_per_s": m.rate_per_s, "burst": m.burst, "workers": m.workers,
                             "service_s": m.service_s, "queue_limit": m.queue_limit},
            "soap_timeout_s": p.soap_timeout_s, "replicas": p.result.replicas,
            "probability_clean": p.result.probability_clean,
            **{name: {"median": getattr(bands, name).median, "p5": getattr(bands, name).p5,
                      "p95": getattr(bands, name).p95} for name in _PREDICTED},
        },
        "measured_vs_predicted": [{
            "name": c.name, "unit": c.unit, "measured": c.measured, "median": c.predicted.median,
            "p5": c.predicted.p5, "p95": c.predicted.p95, "agrees": c.agrees,
        } for c in p.comparisons],
        "suspects": [{"side": side.value, "evidence": text} for side, text in p.suspects],
    }


def _limits(analysis: Analysis) -> dict[str, Any] | None:
    lim = analysis.limits
    if lim is None:
        return None
    return {"lower_s": lim.lower_s, "upper_s": lim.upper_s, "source": lim.source.name.lower(), "waits": lim.waits,
            "by_limits": [{"lower_s": lo, "upper_s": up, "count": n} for (lo, up), n in lim.by_limits.items()]}


def _soak(analysis: Analysis, data: RunData) -> dict[str, Any] | None:
    soak = analysis.soak
    if soak is None:
        return None
    declared = bool(data.info.extra.get("soak"))
    waves = [(w.at_s, w.end_s) for w in analysis.waves]
    return {"declared": declared, "minutes": int(soak.minutes_s.size),
            "warmup_end_s": warmup_end_s(analysis.ready_s, waves),
            "latency_warmup_end_s": warmup_end_s(analysis.ready_s),
            "drift_judged": applies(ready_s=analysis.ready_s, duration_s=analysis.duration_s, declared_soak=declared,
                                    waves=waves)}


def make_summary(data: RunData, analysis: Analysis, result: VerdictResult, *,
                 capacity: float | None, margin_s: float, max_login_wait_s: float | None = None) -> Summary:
    """Assemble the summary.

    Args:
        data: the loaded run.
        analysis: ``analyze(data)``.
        result: ``judge(...)``.
        capacity: the capacity the verdict used (logins/s per node) or None.
        margin_s: the recovery margin the verdict used (s).
        max_login_wait_s: the bound on a wave's p99 CPA login wait the verdict used (s).
    Returns:
        The summary.
    """
    acc = analysis.accounting
    gen = analysis.generator
    storms = {s.wave: s for s in analysis.storms}
    predictions = dict(zip((w.index for w in analysis.waves), analysis.predictions))
    waves = [{
        "kind": w.kind.value, "node": w.node, "from_node": w.from_node, "at_s": w.at_s, "lower_s": w.lower_s, "upper_s": w.upper_s,
        "clients": w.clients, "recovered": w.recovered, "predicted_peak_rate": w.predicted_peak_rate,
        "measured_peak_rate_1s": w.measured_peak_rate_1s, "measured_peak_rate_10s": w.measured_peak_rate_10s,
        "peak_node": w.peak_node, "recovery_p50_s": w.recovery_p50_s, "recovery_p95_s": w.recovery_p95_s,
        "recovery_p99_s": w.recovery_p99_s, "recovery_max_s": w.recovery_max_s,
        "ks_statistic": w.ks_statistic, "ks_pvalue": w.ks_pvalue, "anchor": w.anchor,
        "ha_classes": w.ha_classes, "target_nodes": w.target_nodes, "pending": w.pending,
        "limits_mixed": w.limits_mixed, "end_s": w.end_s, **_storm(storms.get(w.index)),
        **_prediction(predictions.get(w.index)),
    } for w in analysis.waves]
    latency = [{
        "request_type": r.request_type, "name": r.name, "phase": r.phase.value, "samples": r.samples,
        "without_response_time": r.without_response_time, "failures": r.failures, "p50_ms": r.p50_ms,
        "p95_ms": r.p95_ms, "p99_ms": r.p99_ms, "p999_ms": r.p999_ms, "max_ms": r.max_ms,
    } for r in analysis.latency]
    checks = [{
        "name": c.name.value, "status": c.status.value, "wave": c.wave, "measured": c.measured,
        "limit": c.limit, "excess": c.excess, "message": c.message, "clients": c.clients,
    } for c in result.checks]
    content = {
        "schema": SCHEMA_VERSION, "run_id": data.info.run_id, "partial": data.info.partial,
        "duration_s": analysis.duration_s,
        "clients_planned": acc.clients_planned, "clients_started": acc.clients_started,
        "end_states": acc.end_states, "end_reasons": acc.end_reasons,
        "clients_without_end_record": acc.without_end_record,
        "declared_capacity_per_s": capacity, "recovery_margin_s": margin_s,
        "max_login_wait_s": max_login_wait_s,
        "relogin_limits": _limits(analysis),
        "soak": _soak(analysis, data),
        "ha_events": waves, "latency": latency,
        "failures_by_cause": [{
            "cause": f.cause, "count": f.count, "clients": f.clients, "requests": f.requests, "nodes": f.nodes,
            "first_s": f.first_s, "last_s": f.last_s, "example": f.example,
        } for f in analysis.failures],
        "generator": {"stall_share": gen.stall_share, "wave_stall_share": gen.wave_stall_share,
                      "stalled_s": gen.stalled_s, "description": gen.describe(),
                      "worst": [{"t_s": s.t_s, "worker": s.worker, "lag_ms": s.lag_ms, "cause": s.cause.value}
                                for s in gen.worst],
                      "cpu_max": gen.cpu_max, "loop_lag_max_ms": gen.loop_lag_max_ms, "gc_max_ms": gen.gc_max_ms,
                      "rss_max_bytes": gen.rss_max_bytes, "workers": gen.workers,
                      "samples": gen.samples, "saturated": gen.saturated},
        "verdict": result.verdict.value, "reasons": list(result.reasons), "warnings": list(result.warnings),
        "checks": checks, "data_warnings": list(data.warnings),
    }
    return Summary(verdict=result.verdict, reasons=result.reasons, data=_clean(content))
