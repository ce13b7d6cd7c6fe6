"""``report.html``: one self-contained page (inline CSS, plots as base64 PNG, no script).

A soak (a run of 20 minutes or more, or started as one) gets a "Soak at a glance" section after the
waves' table: its drift checks and one figure of the whole run per minute (``report.soakplots``),
with links to each wave's own figures.

Layout: verdict banner with reasons (and a PARTIAL RUN banner), then (1) timeline of logins and
sessions per node with admin actions and SRM state changes, (2) each re-login wave against the
predicted rate and the declared capacity, (3) what each wave did to the servers (demand vs served
vs capacity, the login queue, the login wait) and to its clients (refused busy, timed out, second
rounds, GAVE_UP, how they came back), (4) drawn waits vs U[lower, upper] with KS numbers and
the CDF of time to recover, (5) latency percentiles per request type per phase, (6) accounting
and generator health.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape

from jabberemu.report import plots
from jabberemu.report.analysis import NO_END_RECORD, Analysis
from jabberemu.report.prediction import WavePrediction
from jabberemu.report.storm import WaveStorm
from jabberemu.report.health import SATURATED_SHARE, STALL_MS
from jabberemu.report.records import RunData, RunInfo
from jabberemu.report.checks import CheckName
from jabberemu.report.soakplots import soak_png
from jabberemu.report.verdict import DEFAULT_MAX_LOGIN_WAIT_S, CheckStatus, Verdict, VerdictResult
from jabberemu.report.waves import Wave

__all__ = ["REPORT_FILE", "WaveFigures", "render_html", "wave_figures"]

REPORT_FILE = "report.html"

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1280px;
padding:0 16px 40px;color:#1b1b1b;background:#fff}
h1{font-size:1.5em;margin:18px 0 6px}h2{border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:34px}
.banner{padding:14px 18px;border-radius:6px;margin:12px 0;color:#fff}
.banner h1{margin:0 0 6px;font-size:2em}.PASS{background:#2b8a3e}.FAIL{background:#c92a2a}
.INCONCLUSIVE{background:#5c5f66}
.partial{background:#f59f00;color:#111;font-weight:bold;padding:10px 18px;border-radius:6px;margin:12px 0}
.banner ul{margin:4px 0 0 0;padding-left:20px}.banner li{margin:2px 0}
.warn{background:#fff3bf;border-left:5px solid #f59f00;padding:8px 14px;margin:10px 0}
table{border-collapse:collapse;margin:8px 0;font-size:.92em}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f1f3f5}
td.l,th.l{text-align:left}tr.fail td{background:#ffe3e3}tr.na td{color:#666}
img{max-width:100%;border:1px solid #eee;margin:6px 0}.muted{color:#666;font-size:.9em}
.kv td:first-child{text-align:left;font-weight:600}.wrap{overflow-x:auto}
"""


_L = ' class="l"'


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def _num(value: float | int | None, fmt: str = "{:.2f}") -> str:
    if value is None:
        return "–"
    return fmt.format(value) if isinstance(value, float) else str(value)


def _table(head: Sequence[str], rows: Iterable[Sequence[str]], *, left: int = 1,
           row_class: Sequence[str] | None = None) -> str:
    th = "".join(f'<th{_L if i < left else ""}>{escape(h)}</th>' for i, h in enumerate(head))
    body = []
    for k, row in enumerate(rows):
        cls = f' class="{row_class[k]}"' if row_class and row_class[k] else ""
        body.append(f"<tr{cls}>" + "".join(
            f'<td{_L if i < left else ""}>{cell}</td>' for i, cell in enumerate(row)) + "</tr>")
    return f"<div class='wrap'><table><tr>{th}</tr>{''.join(body)}</table></div>"


def _banner(data: RunData, result: VerdictResult) -> str:
    failed = [c for c in result.checks if c.status is CheckStatus.FAIL]
    untested = [c for c in result.checks if c.status is CheckStatus.INCONCLUSIVE]
    shown = [c.message for c in failed + untested] or list(result.reasons)
    items = "".join(f"<li>{escape(r)}</li>" for r in shown)
    head = result.verdict.value
    what = (f"{len(failed)} check(s) failed" if failed else
            f"not tested: {len(untested)} check(s) could not run as planned" if untested else
            "every applicable check passed")
    out = [f'<div class="banner {head}"><h1>{head}</h1><div>{escape(what)}:</div><ul>{items}</ul></div>']
    if data.info.partial:
        out.insert(0, '<div class="partial">PARTIAL RUN: the run was stopped before its end; '
                      "every number below covers only what was recorded.</div>")
    out += [f'<div class="warn">{escape(w)}</div>' for w in result.warnings]
    return "\n".join(out)


def _wave_table(analysis: Analysis, capacity: float | None) -> str:
    rows = []
    for w in analysis.waves:
        rows.append([
            f"#{w.index + 1} {escape(w.kind.value)}", escape(w.node or "?"), escape(_moved(w)), _num(w.at_s, "{:.1f}"),
            f"{_num(w.lower_s, '{:g}')} / {_num(w.upper_s, '{:g}')}", str(w.clients), str(w.recovered),
            _num(w.predicted_peak_rate, "{:.1f}"), _num(w.measured_peak_rate_1s, "{:.1f}"),
            _num(w.measured_peak_rate_10s, "{:.1f}"), _num(capacity, "{:g}"),
            _num(w.recovery_p50_s), _num(w.recovery_p99_s), _num(w.recovery_max_s),
            _num(w.ks_statistic, "{:.3f}"), _num(w.ks_pvalue, "{:.3g}"),
        ])
    return _table(["wave", "node", "sessions moved", "at (s)", "lower / upper (s)", "clients", "recovered",
                   "predicted rate (/s)", "peak 1 s (/s)", "peak 10 s (/s)", "capacity (/s)",
                   "recovery p50 (s)", "p99 (s)", "max (s)", "KS D", "KS p"], rows, left=3)


def _storm_table(analysis: Analysis) -> str:
    waves = {w.index: w for w in analysis.waves}
    rows = []
    for s in analysis.storms:
        w = waves[s.wave]
        gave_up = "; ".join(f"{escape(k)}: {v}" for k, v in s.gave_up.items()) or "0"
        came_back = "; ".join(f"{escape(k)}: {v}" for k, v in s.recovered_by.items()) or "–"
        rows.append([f"#{w.index + 1} {escape(w.kind.value)}", escape(_short(s.busiest_node)),
                     _num(s.demand_peak_1s, "{:.1f}"), _num(s.served_peak_1s, "{:.1f}"), _num(s.queue_peak),
                     _num(s.login_wait_p50_s), _num(s.login_wait_p99_s), _num(s.login_wait_max_s),
                     str(s.busy), str(s.timeouts), str(s.otp_refused), _num(s.abandoned), str(s.second_rounds),
                     gave_up, came_back, f"{w.recovered}/{w.clients}"])
    return _table(["wave", "busiest node", "demand peak 1 s (/s)", "served peak 1 s (/s)", "queue peak",
                   "login wait p50 (s)", "p99 (s)", "max (s)", "refused busy", "SOAP timeouts", "OTP refused",
                   "abandoned (server)", "second rounds", "GAVE_UP", "came back by", "recovered"], rows, left=2)


def _prediction_table(analysis: Analysis) -> str:
    rows, classes = [], []
    waves = {w.index: w for w in analysis.waves}
    for p in analysis.predictions:
        if p is None:
            continue
        w = waves[p.wave]
        for c in p.comparisons:
            b = c.predicted
            rows.append([f"#{w.index + 1} {escape(w.kind.value)}", escape(c.name), f"{c.measured:.3g} {escape(c.unit)}",
                         f"{b.median:.3g}", f"{b.p5:.3g} – {b.p95:.3g}", "yes" if c.agrees else "<b>no</b>"])
            classes.append("" if c.agrees else "fail")
        rows.append([f"#{w.index + 1} {escape(w.kind.value)}", "P(clean wave: no refusal, no timeout)", "–",
                     f"{p.result.probability_clean:.0%}", "", ""])
        classes.append("")
        for side, evidence in p.suspects:
            rows.append([f"#{w.index + 1}", f"likely moved: {escape(side.value)}", escape(evidence), "", "", ""])
            classes.append("fail")
    if not rows:
        return "<p>No wave could be modelled (no CPA logins, or no re-login limits known).</p>"
    return _table(["wave", "figure", "measured", "model median", "model p5 – p95", "agrees"], rows, left=2,
                  row_class=classes)


def _short(node: str | None) -> str:
    return (node or "?").split(".")[0]


def _moved(w: Wave) -> str:
    targets = ", ".join(_short(n) for n in w.target_nodes) or "?"
    return f"{_short(w.from_node)} → {targets}"


def _checks_table(result: VerdictResult) -> str:
    rows, classes = [], []
    for c in result.checks:
        rows.append([escape(c.status.value.upper()), escape(c.message)])
        classes.append({CheckStatus.FAIL: "fail", CheckStatus.INCONCLUSIVE: "fail",
                        CheckStatus.NOT_APPLICABLE: "na", CheckStatus.INFO: "na"}.get(c.status, ""))
    return _table(["status", "check"], rows, left=2, row_class=classes)


def _latency_table(analysis: Analysis) -> str:
    rows = [[escape(r.request_type), escape(r.name), escape(r.phase.value), str(r.samples),
             str(r.without_response_time), str(r.failures), _num(r.p50_ms, "{:.1f}"), _num(r.p95_ms, "{:.1f}"),
             _num(r.p99_ms, "{:.1f}"), _num(r.p999_ms, "{:.1f}"), _num(r.max_ms, "{:.1f}")]
            for r in analysis.latency]
    if not rows:
        return "<p>No request records.</p>"
    return _table(["type", "name", "phase", "samples", "no response time (excluded)", "failures",
                   "p50 (ms)", "p95 (ms)", "p99 (ms)", "p99.9 (ms)", "max (ms)"], rows, left=3)


def _accounting(analysis: Analysis) -> str:
    acc = analysis.accounting
    rows, classes = [], []
    for state, reasons in acc.end_reasons.items():
        for reason, count in reasons.items():
            rows.append([escape(state), escape(reason), str(count)])
            classes.append("fail" if state == "GAVE_UP" or reason == NO_END_RECORD else "")
    rows.append(["<b>total</b>", "", f"<b>{acc.clients_started}</b>"])
    classes.append("")
    planned = ("" if acc.clients_planned is None else
               f" of {acc.clients_planned} planned" + (" — <b>some planned clients never started</b>"
                                                        if acc.clients_started < acc.clients_planned else ""))
    return (f"<p>Clients started: <b>{acc.clients_started}</b>{planned}; sum over end states: "
            f"<b>{sum(acc.end_states.values())}</b>.</p>"
            + _table(["end state", "reason", "clients"], rows, left=2, row_class=classes))


def _failures(analysis: Analysis) -> str:
    if not analysis.failures:
        return "<p>Failures by cause: none, no request failed.</p>"
    rows = [[f"<code>{escape(f.cause)}</code>", str(f.count), str(f.clients),
             escape(", ".join(f"{k} {v}" for k, v in f.requests.items())),
             escape(", ".join(f"{k} {v}" for k, v in f.nodes.items())),
             f"{f.first_s:.1f}", f"{f.last_s:.1f}", escape((f.example or "")[:120])] for f in analysis.failures]
    return ("<h3>Failures by cause</h3><p class='muted'>Failed requests grouped by their cause "
            "(docs/failure-causes.md says what each word means); first and last seen in seconds since the "
            "start of the load.</p>"
            + _table(["cause", "failures", "clients", "requests", "nodes", "first seen (s)", "last seen (s)",
                      "first error"], rows, left=1))


def _generator(analysis: Analysis) -> str:
    g = analysis.generator
    status = ("<b>saturated: latencies not trustworthy</b>" if g.saturated else
              "no samples" if g.samples == 0 else "healthy")
    share = None if g.stall_share is None else 100 * g.stall_share
    wave = None if g.wave_stall_share is None else 100 * g.wave_stall_share
    rows = [["time stalled, whole run (%)", _num(share, "{:.2f}"), f"&ge; {100 * SATURATED_SHARE:g} = saturated"],
            ["time stalled, worst wave (%)", _num(wave, "{:.2f}"), f"&ge; {100 * SATURATED_SHARE:g} = saturated"],
            ["worst event-loop lateness (ms)", _num(g.loop_lag_max_ms, "{:.0f}"),
             f"a probe later than {STALL_MS:g} ms is a stall"],
            ["longest garbage collection (ms)", _num(g.gc_max_ms, "{:.0f}"), ""],
            ["CPU max (%)", _num(g.cpu_max, "{:.1f}"), "per process, of one core"],
            ["workers / samples", f"{g.workers} / {g.samples}", ""], ["status", status, ""]]
    out = _table(["generator", "value", "threshold"], rows, left=1)
    if g.worst:
        out += _table(["worst stall at (s)", "worker", "lateness (ms)", "likely cause"],
                      ([_num(s.t_s, "{:.1f}"), escape(s.worker), _num(s.lag_ms, "{:.0f}"), escape(s.cause.value)]
                       for s in g.worst), left=0)
    return out


@dataclass(frozen=True, kw_only=True)
class WaveFigures:
    """The PNGs of one wave (rendered while its arrays are at hand: the streaming report drops them)."""

    wave: bytes
    storm: bytes | None
    waits: bytes


def wave_figures(wave: Wave, storm: WaveStorm | None, prediction: WavePrediction | None, *, capacity: float | None,
                 margin_s: float, max_login_wait_s: float) -> WaveFigures:
    """Render one wave's three figures (re-logins per second, servers, waits and recovery)."""
    return WaveFigures(
        wave=plots.wave_png(wave, capacity),
        storm=plots.storm_png(wave, storm, capacity, max_login_wait_s, prediction)
        if storm is not None and storm.nodes else None,
        waits=plots.waits_png(wave, margin_s, prediction))


SOAK_VIEW_S = 1200.0
"""Runs at least this long (or started as a soak) get the soak section (our choice: 20 minutes)."""


def _soak_section(analysis: Analysis, result: VerdictResult) -> str:
    drift = [c for c in result.checks if c.name in (CheckName.DRIFT_LATENCY, CheckName.DRIFT_GENERATOR_RSS,
                                                    CheckName.DRIFT_MOCK_RSS)]
    rows, classes = [], []
    for c in drift:
        rows.append([escape(c.status.value.upper()), escape(c.message)])
        classes.append("fail" if c.status in (CheckStatus.FAIL, CheckStatus.INCONCLUSIVE) else "")
    table = _table(["drift", "check"], rows, left=2, row_class=classes) if rows else \
        "<p class='muted'>No drift check: the run is too short for one and was not started as a soak.</p>"
    links = " · ".join(f"<a href='#wave-{w.index + 1}'>#{w.index + 1} {escape(w.kind.value)} at "
                       f"{w.at_s / 3600:.2f} h</a>" for w in analysis.waves)
    return ("<h2>Soak at a glance</h2><p class='muted'>One point per minute over the whole run; each drill "
            "action is a red dashed line, each re-login wave shaded; the dash-dotted lines are the drift checks' "
            "robust (Theil-Sen) trends after warm-up (report.drift).</p>" + table
            + _img(soak_png(analysis), "soak at a glance")
            + (f"<p>Zoom into a wave: {links}</p>" if links else ""))


def _limits_label(analysis: Analysis, info: RunInfo) -> str:
    if analysis.limits is not None:
        return analysis.limits.label
    return f"{_num(info.lower_s, '{:g}')}–{_num(info.upper_s, '{:g}')} s (client defaults)"


def render_html(data: RunData, analysis: Analysis, result: VerdictResult, *, capacity: float | None,
                margin_s: float, max_login_wait_s: float = DEFAULT_MAX_LOGIN_WAIT_S,
                figures: Mapping[int, WaveFigures] | None = None) -> str:
    """Render the report page.

    Args:
        data: the loaded run.
        analysis: ``analyze(data)``.
        result: ``judge(...)``.
        capacity: declared capacity used by the verdict (logins/s per node) or None.
        margin_s: recovery margin used by the verdict (s).
        max_login_wait_s: bound on a wave's p99 CPA login wait used by the verdict (s).
        figures: each wave's figures already rendered (``report.stream``); the others are rendered
            here from the analysis.
    Returns:
        The HTML document (UTF-8 text, no external resource).
    """
    storms_by_wave = {s.wave: s for s in analysis.storms}
    predictions_by_wave = dict(zip((w.index for w in analysis.waves), analysis.predictions))
    rendered: dict[int, WaveFigures] = dict(figures or {})
    for w in analysis.waves:
        if w.index not in rendered:
            rendered[w.index] = wave_figures(w, storms_by_wave.get(w.index), predictions_by_wave.get(w.index),
                                             capacity=capacity, margin_s=margin_s, max_login_wait_s=max_login_wait_s)
    info = data.info
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
             f"<title>jabberemu report {escape(info.run_id)}: {result.verdict.value}</title>"
             f"<style>{_CSS}</style></head><body>",
             f"<h1>jabberemu HA drill report — run {escape(info.run_id)}</h1>",
             f"<p class='muted'>{info.clients if info.clients is not None else '?'} clients planned · "
             f"re-login limits {escape(_limits_label(analysis, info))} · declared capacity "
             f"{_num(capacity, '{:g}') + ' logins/s per node' if capacity is not None else 'none'} · "
             f"recovery margin {margin_s:g} s · duration {analysis.duration_s:.1f} s · "
             f"times are seconds since the start of the load</p>",
             _banner(data, result)]
    parts.append("<h2>HA events at a glance</h2>")
    parts.append(_wave_table(analysis, capacity) if analysis.waves else "<p>No HA event in this run.</p>")
    if analysis.soak is not None and (analysis.duration_s >= SOAK_VIEW_S or info.extra.get("soak")):
        parts.append(_soak_section(analysis, result))
    parts.append("<h2>1. Timeline</h2><p class='muted'>Red dashed lines: admin actions; dotted grey lines: "
                 "SRM state changes; shaded: re-login waves (orange failover, blue fallback).</p>")
    parts.append(_img(plots.timeline_png(analysis, info, capacity), "timeline"))
    if analysis.series.states:
        parts.append(_img(plots.states_png(analysis), "clients per state"))
    for e in data.server_events:
        if e.to_state:
            break
    else:
        parts.append("<p class='muted'>No SRM state changes recorded (server_events.jsonl empty).</p>")
    parts.append("<h2>2. Re-login waves</h2><p class='muted'>Bars: re-logins completed per second; the green "
                 "dashed line is the rate the limits predict, N / (upper − lower); the red line is the declared "
                 "server capacity. Bars above the red line are a login storm.</p>")
    for w in analysis.waves:
        parts.append(f"<a id='wave-{w.index + 1}'></a>" + _img(rendered[w.index].wave, f"wave {w.index + 1}"))
    parts.append("<h2>3. What each wave did to the servers and to its clients</h2><p class='muted'>A re-login "
                 "is a CPA login: the expensive step the limits throttle. Demand: CPA logins of the wave's clients "
                 "arriving at a node's login admission per second (attempts refused before it, by a node whose "
                 "services are stopped or that is down, cost nothing and are left out); served: those answered; "
                 "the queue: the node's own counters; the login wait: the CPA login round trip as the client "
                 "measured it, queue wait included.</p>")
    if analysis.storms:
        parts.append(_storm_table(analysis))
    parts.append("<h3>Predicted and measured</h3><p class='muted'>The one model of a re-login wave "
                 "(docs/login-model.md; <code>jabberemu plan</code> uses it too), run on each wave's clients, limits, "
                 "the node's login model and the clients' SOAP timeout, over 200 seeded replicas (fewer, at least "
                 "50, for a wave of more than 2,000 clients). A figure agrees "
                 "when it lies in the model's p5–p95 band or within 5% of its median; the shaded bands in the "
                 "figures below are the model's.</p>")
    parts.append(_prediction_table(analysis))
    for s in analysis.storms:
        png = rendered[s.wave].storm
        if png is not None:
            parts.append(_img(png, f"servers during wave {s.wave + 1}"))
    parts.append("<h2>4. Drawn waits and time to recover</h2>")
    for w in analysis.waves:
        parts.append(f"<h3>{escape(w.kind.value)} #{w.index + 1}: {escape(_moved(w))}, {w.clients} clients</h3>")
        parts.append(_img(rendered[w.index].waits, f"waits {w.index + 1}"))
    parts.append("<h2>5. Latency percentiles per request type and phase</h2><p class='muted'>Computed only "
                 "from samples that have a response time (locustio/locust#3472); samples without one are "
                 "counted, not averaged in.</p>")
    parts.append(_latency_table(analysis))
    parts.append("<h2>6. Accounting, failures and generator health</h2>")
    parts.append(_accounting(analysis))
    parts.append(_failures(analysis))
    parts.append(_generator(analysis))
    if data.generator:
        samples = [(g.ts - info.started_ts, g.worker, g.cpu_percent, g.loop_lag_ms) for g in data.generator]
        parts.append(_img(plots.generator_png(analysis, 90.0, STALL_MS, samples),
                          "generator health"))
    parts.append("<h2>Checks behind the verdict</h2>")
    parts.append(_checks_table(result))
    if data.locust_stats:
        keys = [k for k in ("Type", "Name", "Request Count", "Failure Count", "50%", "95%", "99%", "99.9%")
                if k in data.locust_stats[0]]
        parts.append("<h2>Locust's own statistics (--csv)</h2>")
        parts.append(_table(keys, ([escape(row.get(k) or "") for k in keys] for row in data.locust_stats), left=2))
    if data.warnings:
        parts.append("<h2>Data notes</h2><ul>" + "".join(f"<li>{escape(w)}</li>" for w in data.warnings) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)
