"""Matplotlib figures of a run, returned as PNG bytes (object API + Agg: no pyplot, no display).

Each figure says what it shows in its title, axis labels carry units, legends name every line.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from jabberemu.report.analysis import Analysis
from jabberemu.report.prediction import WavePrediction
from jabberemu.report.records import RunInfo
from jabberemu.report.series import MarkerKind, Series
from jabberemu.report.storm import WaveStorm
from jabberemu.report.waves import HaKind, Wave

__all__ = ["generator_png", "states_png", "storm_png", "timeline_png", "wave_png", "waits_png"]

_DPI = 100
_WAVE_COLOURS = {HaKind.FAILOVER: "#f4a261", HaKind.FALLBACK: "#8ecae6"}
_CAPACITY: dict[str, Any] = dict(color="#d62828", linewidth=2.0, linestyle="-")
_PREDICTED: dict[str, Any] = dict(color="#2a9d8f", linewidth=2.0, linestyle="--")
_MODEL_COLOUR = "#f4a261"


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, bbox_inches="tight")
    return buf.getvalue()


def _node_colours(nodes: Sequence[str]) -> dict[str, str]:
    palette = ["#1d3557", "#e76f51", "#6a4c93", "#2a9d8f", "#8d99ae"]
    return {n: palette[i % len(palette)] for i, n in enumerate(sorted(nodes))}


def _short(node: str | None) -> str:
    return (node or "?").split(".")[0]


def _shade_waves(ax: Axes, waves: Sequence[Wave], label: bool) -> None:
    for w in waves:
        ax.axvspan(w.at_s, w.end_s, color=_WAVE_COLOURS[w.kind], alpha=0.18, linewidth=0, zorder=0,
                   label=f"{w.kind.value} wave" if label else None)


def _markers(ax: Axes, series: Series, *, labels: bool) -> None:
    top = ax.get_ylim()[1]
    seen: set[str] = set()
    for m in series.markers:
        if m.kind is MarkerKind.ADMIN_ACTION:
            ax.axvline(m.t_s, color="#d62828", linewidth=1.6, linestyle="--",
                       label="admin action" if "a" not in seen else None)
            seen.add("a")
            if labels:
                ax.text(m.t_s, top * 0.98, m.label.split('.')[0], rotation=90, va="top", ha="right",
                        fontsize=8, color="#d62828", fontweight="bold",
                        bbox=dict(facecolor="white", edgecolor="none", alpha=0.8, pad=1.0))
        else:
            ax.axvline(m.t_s, color="#555555", linewidth=0.8, linestyle=":",
                       label="SRM state change" if "s" not in seen else None)
            seen.add("s")


def timeline_png(analysis: Analysis, info: RunInfo, capacity: float | None) -> bytes:
    """Login rate per node and sessions per node over the run, HA events marked.

    Args:
        analysis: the run's analysis.
        info: ``run.json`` (for the title).
        capacity: declared server capacity (logins/s per node) or None.
    Returns:
        PNG bytes.
    """
    s = analysis.series
    nodes = sorted(set(s.logins) | set(s.connected))
    colours = _node_colours(nodes)
    fig = Figure(figsize=(13, 7.5))
    ax1, ax2 = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [1, 1]})
    x = s.seconds
    for rank, node in enumerate(nodes):
        c = colours[node]
        width = 3.2 if rank == 0 and len(nodes) > 1 else 1.8
        if node in s.logins and s.logins[node].any():
            ax1.step(x, s.logins[node], where="post", color=c, linewidth=1.2, linestyle=":",
                     label=f"first logins/s on {_short(node)}")
        if node in s.relogins and s.relogins[node].any():
            ax1.step(x, s.relogins[node], where="post", color=c, linewidth=1.6,
                     label=f"re-logins/s on {_short(node)}")
        if node in s.connected:
            ax2.step(x, s.connected[node], where="post", color=c, linewidth=width,
                     label=f"connected on {_short(node)}")
    if capacity is not None:
        ax1.axhline(capacity, **_CAPACITY, label=f"declared capacity {capacity:g}/s per node")
    for ax, first in ((ax1, True), (ax2, False)):
        _shade_waves(ax, analysis.waves, label=first)
        ax.set_ylim(bottom=0)
        _markers(ax, s, labels=first)
        ax.grid(True, alpha=0.3)
    ax1.set_ylabel("logins completed per second")
    ax1.set_title("Logins per second per node (1 s bins)")
    ax2.set_ylabel("clients in XMPPCONNECTED")
    ax2.set_title("Sessions per node")
    ax2.set_xlabel("time since start of load (s)")
    ax1.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, framealpha=0.9)
    ax2.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, framealpha=0.9)
    fig.suptitle(f"Run {info.run_id}: timeline" + (" (PARTIAL RUN)" if info.partial else ""), fontweight="bold")
    return _png(fig)


def states_png(analysis: Analysis) -> bytes:
    """Clients per Jabber client state over the run (stacked).

    Args:
        analysis: the run's analysis.
    Returns:
        PNG bytes.
    """
    s = analysis.series
    fig = Figure(figsize=(12, 3.6))
    ax = fig.subplots()
    names = [k for k, v in s.states.items() if v.any()]
    names.sort(key=lambda k: (k != "XMPPCONNECTED", k))
    if names:
        ax.stackplot(s.seconds, *[s.states[k] for k in names], labels=names, step="post", alpha=0.85)
    _shade_waves(ax, analysis.waves, label=False)
    ax.set_xlabel("time since start of load (s)")
    ax.set_ylabel("clients")
    ax.set_title("Clients per client state (end of each second); FAILOVER = waiting out the drawn re-login delay")
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    ax.grid(True, alpha=0.3)
    return _png(fig)


def wave_png(wave: Wave, capacity: float | None) -> bytes:
    """One wave: re-logins completed per second against the predicted rate and the capacity.

    Args:
        wave: the wave.
        capacity: declared server capacity (logins/s per node) or None.
    Returns:
        PNG bytes.
    """
    fig = Figure(figsize=(13, 4.2))
    ax = fig.subplots()
    rel = wave.relogin_t - wave.at_s
    horizon = max(float(rel.max()) if rel.size else 0.0, (wave.upper_s or 0.0)) + 3.0
    edges = np.arange(0.0, np.ceil(horizon) + 1.0)
    counts, _ = np.histogram(rel, bins=edges)
    ax.bar(edges[:-1], counts, width=1.0, align="edge", color="#457b9d", alpha=0.75,
           label="re-logins completed per 1 s")
    if counts.size >= 10:
        rolling = np.convolve(counts, np.ones(10) / 10.0, mode="valid")
        ax.plot(edges[: rolling.size] + 5.0, rolling, color="#1d3557", linewidth=2.0,
                label="10 s moving average (centred), re-logins/s")
    ax.axhline(wave.measured_peak_rate_1s, color="#6a4c93", linewidth=1.2, linestyle=":",
               label=f"measured peak, sliding 1 s window: {wave.measured_peak_rate_1s:.0f}/s\n"
               "(any 1 s interval, so it can top the fixed bins)")
    ax.axhline(wave.measured_peak_rate_10s, color="#1d3557", linewidth=1.2, linestyle=":",
               label=f"measured peak, sliding 10 s window: {wave.measured_peak_rate_10s:.1f}/s")
    if wave.predicted_peak_rate is not None and wave.lower_s is not None and wave.upper_s is not None:
        ax.axvspan(wave.lower_s, wave.upper_s, color="#2a9d8f", alpha=0.08,
                   label=f"re-login window [{wave.lower_s:g}, {wave.upper_s:g}] s")
        ax.hlines(wave.predicted_peak_rate, wave.lower_s, wave.upper_s, **_PREDICTED,
                  label=f"predicted N/(upper-lower) = {wave.clients}/{wave.upper_s - wave.lower_s:g} s "
                  f"= {wave.predicted_peak_rate:.1f}/s")
    if capacity is not None:
        ax.axhline(capacity, **_CAPACITY, label=f"declared capacity {capacity:g}/s")
    ax.set_xlim(0, horizon)
    ax.set_ylim(0, max([1.0, float(counts.max()) if counts.size else 0.0, capacity or 0.0,
                        wave.predicted_peak_rate or 0.0]) * 1.25)
    ax.set_xlabel(f"time since the {wave.kind.value} started (s)")
    ax.set_ylabel("re-logins completed per second")
    target = ", ".join(_short(n) for n in wave.target_nodes) or "?"
    action = f" ({wave.anchor} {_short(wave.node)})" if wave.anchor else ""
    ax.set_title(f"{wave.kind.value.capitalize()} wave #{wave.index + 1}{action} at t={wave.at_s:.1f} s: "
                 f"{wave.clients} clients moved {_short(wave.from_node)} -> {target}; "
                 f"{wave.recovered}/{wave.clients} back")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, framealpha=0.9)
    ax.grid(True, alpha=0.3)
    return _png(fig)


def waits_png(wave: Wave, margin_s: float, prediction: WavePrediction | None = None) -> bytes:
    """Drawn waits against U[lower, upper] (KS numbers) and the CDF of time to recover, with the
    model's band of the recovered fraction.

    Args:
        wave: the wave.
        margin_s: recovery margin (s) drawn after ``upper``.
        prediction: the model's prediction of the wave, or None.
    Returns:
        PNG bytes.
    """
    fig = Figure(figsize=(12, 4.0))
    ax1, ax2 = fig.subplots(1, 2)
    lo, up = wave.lower_s, wave.upper_s
    if wave.waits_s.size and lo is not None and up is not None and up > lo:
        bins = np.linspace(lo, up, 21)
        ax1.hist(wave.waits_s, bins=bins, color="#457b9d", alpha=0.8, label=f"drawn waits (n={wave.waits_s.size})")
        expected = wave.waits_s.size / 20
        ax1.hlines(expected, lo, up, **_PREDICTED, label=f"uniform U[{lo:g}, {up:g}]: {expected:.1f} per bin")
        ks = (f"KS D = {wave.ks_statistic:.3f}, p = {wave.ks_pvalue:.3g}"
              if wave.ks_statistic is not None and wave.ks_pvalue is not None else "KS n/a")
        ax1.set_title(f"Drawn re-login waits vs uniform ({ks})")
        ax1.legend(loc="lower center", fontsize=8, framealpha=0.9)
    else:
        ax1.text(0.5, 0.5, "no wait records", ha="center", va="center", transform=ax1.transAxes)
        ax1.set_title("Drawn re-login waits")
    ax1.set_xlabel("drawn wait (s)")
    ax1.set_ylabel("clients per bin")
    ax1.grid(True, alpha=0.3)
    rec = np.sort(wave.recovery_s)
    if prediction is not None:
        r = prediction.result
        band = r.recovered_fraction
        edges = r.time_s + r.bin_s
        ax2.fill_between(edges, band.p5 * 100, band.p95 * 100, color=_MODEL_COLOUR, alpha=0.25, step="post",
                         linewidth=0, label=f"model: p5-p95 ({r.replicas} replicas, {r.bin_s:g} s bins)")
        ax2.step(edges, band.mean * 100, where="post", color=_MODEL_COLOUR, linewidth=1.4, linestyle="--",
                 label="model: mean")
    if rec.size:
        frac = np.arange(1, rec.size + 1) / wave.clients
        ax2.step(rec, frac * 100, where="post", color="#1d3557", linewidth=2,
                 label=f"recovered {wave.recovered}/{wave.clients}")
        for q, style in ((50, ":"), (95, "-."), (99, "--")):
            v = float(np.percentile(rec, q))
            ax2.axvline(v, color="#6a4c93", linestyle=style, linewidth=1.2, label=f"p{q} = {v:.2f} s")
        ax2.axvline(float(rec[-1]), color="#6a4c93", linewidth=1.6, label=f"max = {rec[-1]:.2f} s")
    if up is not None:
        ax2.axvline(up + margin_s, **_CAPACITY, label=f"deadline upper + margin = {up + margin_s:g} s")
    ax2.set_ylim(0, 102)
    right = max(float(rec[-1]) if rec.size else 0.0, (up or 0.0) + margin_s)
    if prediction is not None and not np.isnan(prediction.result.bands.recovery_max_s.p95):
        right = max(right, prediction.result.bands.recovery_max_s.p95)
    ax2.set_xlim(0, right * 1.1)
    ax2.set_xlabel("time to recover: HA event -> XMPPCONNECTED (s)")
    ax2.set_ylabel("clients recovered (% of wave)")
    ax2.set_title("Time to recover (CDF)")
    ax2.legend(loc="upper left", fontsize=8, framealpha=0.9)
    ax2.grid(True, alpha=0.3)
    return _png(fig)


def generator_png(analysis: Analysis, cpu_limit: float, lag_limit_ms: float,
                  samples: Sequence[tuple[float, str, float | None, float | None]]) -> bytes:
    """Generator CPU and event-loop lag per worker over the run.

    Args:
        analysis: the run's analysis (wave shading).
        cpu_limit: saturation threshold (%).
        lag_limit_ms: saturation threshold (ms).
        samples: (t s, worker, cpu %, lag ms).
    Returns:
        PNG bytes.
    """
    fig = Figure(figsize=(12, 3.2))
    ax1, ax2 = fig.subplots(1, 2)
    for worker in sorted({w for _, w, _, _ in samples}):
        mine = [s for s in samples if s[1] == worker]
        ax1.plot([s[0] for s in mine if s[2] is not None], [s[2] for s in mine if s[2] is not None],
                 linewidth=1, label=f"worker {worker}")
        ax2.plot([s[0] for s in mine if s[3] is not None], [s[3] for s in mine if s[3] is not None],
                 linewidth=1, label=f"worker {worker}")
    ax1.axhline(cpu_limit, **_CAPACITY, label=f"saturation {cpu_limit:g}%")
    ax2.axhline(lag_limit_ms, **_CAPACITY, label=f"saturation {lag_limit_ms:g} ms")
    for ax, title, unit, floor in ((ax1, "Generator CPU per worker", "CPU (%)", 105.0),
                                   (ax2, "Event-loop lag per worker", "lag (ms)", lag_limit_ms * 1.3)):
        _shade_waves(ax, analysis.waves, label=False)
        ax.set_title(title)
        ax.set_ylabel(unit)
        ax.set_xlabel("time since start of load (s)")
        ax.set_ylim(0, max(floor, ax.get_ylim()[1]))
        ax.legend(loc="upper right", fontsize=8)
        ax.grid(True, alpha=0.3)
    return _png(fig)


def _model_band(ax: Axes, p: WavePrediction | None, series: str, label: str) -> None:
    """Shade the model's p5-p95 band of one of the serving node's series, with its mean."""
    if p is None:
        return
    r = p.result
    band = getattr(r.serving, series)
    t = r.time_s + r.bin_s / 2
    ax.fill_between(t, band.p5, band.p95, color=_MODEL_COLOUR, alpha=0.22, step="mid", linewidth=0,
                    label=f"model: {label} p5-p95 ({r.replicas} replicas)")
    ax.plot(t, band.mean, color=_MODEL_COLOUR, linewidth=1.2, linestyle="--", label=f"model: {label} mean")


def storm_png(wave: Wave, storm: WaveStorm, capacity: float | None, max_wait_s: float,
              prediction: WavePrediction | None = None) -> bytes:
    """What one wave did to the servers: demand vs served vs capacity, queue depth, login wait, with
    the model's bands for the serving node.

    Args:
        wave: the wave.
        storm: its server-side measurements (``storm.storms``).
        capacity: declared server capacity (logins/s per node) or None.
        max_wait_s: the verdict's bound on the p99 login wait (s).
        prediction: the model's prediction of the wave, or None.
    Returns:
        PNG bytes.
    """
    fig = Figure(figsize=(13, 9.0))
    ax1, ax2, ax3 = fig.subplots(3, 1, sharex=True)
    colours = _node_colours([n.node for n in storm.nodes])
    width = 0.9 / max(1, len(storm.nodes))
    for i, n in enumerate(storm.nodes):
        c = colours[n.node]
        ax1.bar(n.t_s + i * width, n.demand, width=width, align="edge", color=c, alpha=0.3,
                label=f"{_short(n.node)}: demand (CPA logins arriving), {n.demand_total} in all")
        ax1.plot(n.t_s + 0.5, n.served, color=c, linewidth=2.4, marker="o", markersize=3.5,
                 label=f"{_short(n.node)}: served (answered) per second, {n.served_total} in all")
    _model_band(ax1, prediction, "served", "served")
    if capacity is not None:
        ax1.axhline(capacity, color=_CAPACITY["color"], linewidth=1.6, linestyle="--",
                    label=f"declared capacity {capacity:g}/s per node")
    if wave.lower_s is not None and wave.upper_s is not None:
        ax1.axvspan(wave.lower_s, wave.upper_s, color="#2a9d8f", alpha=0.08,
                    label=f"re-login window [{wave.lower_s:g}, {wave.upper_s:g}] s")
    ax1.set_ylabel("logins per second")
    ax1.set_title(f"{wave.kind.value.capitalize()} wave #{wave.index + 1}: demand {storm.demand_peak_1s:.0f}/s "
                  f"peak (1 s) against {'capacity ' + format(capacity, 'g') + '/s' if capacity else 'no declared capacity'}"
                  f"; served at most {storm.served_peak_1s:.0f}/s")
    has_queue = False
    for n in storm.nodes:
        if n.queue_depth is not None:
            has_queue = True
            ax2.step(n.t_s, np.nan_to_num(n.queue_depth), where="post", color=colours[n.node], linewidth=2,
                     label=f"{_short(n.node)}: logins waiting (peak {np.nanmax(n.queue_depth):.0f})")
        if n.in_service is not None:
            ax2.step(n.t_s, np.nan_to_num(n.in_service), where="post", color=colours[n.node], linewidth=1,
                     linestyle=":", label=f"{_short(n.node)}: logins in service")
    _model_band(ax2, prediction, "queue_depth", "logins waiting")
    if not has_queue:
        ax2.text(0.5, 0.5, "no server counters in this run (a real pair, or not collected)", ha="center",
                 va="center", transform=ax2.transAxes, color="#666666")
    ax2.set_ylabel("logins")
    ax2.set_title("The node's login queue (its own counters, per second)")
    for n in storm.nodes:
        c = colours[n.node]
        ax3.plot(n.t_s, n.wait_p99_ms / 1000.0, color=c, linewidth=2, marker=".",
                 label=f"{_short(n.node)}: p99 CPA login wait (client-measured)")
        ax3.plot(n.t_s, n.wait_p50_ms / 1000.0, color=c, linewidth=1, linestyle="--",
                 label=f"{_short(n.node)}: p50")
        if n.server_wait_p99_ms is not None:
            ax3.plot(n.t_s, n.server_wait_p99_ms / 1000.0, color=c, linewidth=1, linestyle=":",
                     label=f"{_short(n.node)}: p99 queue wait (server)")
    ax3.axhline(max_wait_s, **_CAPACITY, label=f"bound on the p99 wait {max_wait_s:g} s")
    ax3.set_ylabel("seconds")
    ax3.set_xlabel(f"time since the {wave.kind.value} started (s)")
    ax3.set_title(f"Login wait: p99 {storm.login_wait_p99_s or 0.0:.2f} s over the wave; {storm.busy} refused busy, "
                  f"{storm.timeouts} timed out, {storm.second_rounds} second rounds, "
                  f"{sum(storm.gave_up.values())} gave up")
    right = max((float(n.t_s[-1]) + 1.0 for n in storm.nodes if n.t_s.size), default=1.0)
    for ax in (ax1, ax2, ax3):
        ax.set_xlim(0, right)
        ax.grid(True, alpha=0.3)
        ax.set_ylim(bottom=0)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, framealpha=0.9)
    return _png(fig)
