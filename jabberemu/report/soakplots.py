"""The soak figure: the whole run at a glance, one minute per point (matplotlib object API, PNG).

Six panels on one clock (hours since the start of the load), each drill (admin action) drawn as a
red dashed line and each re-login wave shaded: sessions per node; logins and re-logins per minute;
message latency and ping percentiles per minute; failed requests per minute by cause; generator RSS
and CPU per worker; mock RSS and CPU per node. The warm-up is greyed and the drift checks' fitted
lines (``report.drift``) are drawn over the series they judge. Each wave is zoomed in its own
figures further down the report.
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from jabberemu.report.analysis import Analysis
from jabberemu.report.drift import latency_points, rss_points, trend, warmup_end_s
from jabberemu.report.plots import _node_colours, _png, _short
from jabberemu.report.series import MarkerKind
from jabberemu.report.soak import MINUTE_S
from jabberemu.report.waves import HaKind

__all__ = ["soak_png"]

_WAVE = {HaKind.FAILOVER: "#f4a261", HaKind.FALLBACK: "#8ecae6"}


def _decorate(ax: Axes, analysis: Analysis, warm_h: float, *, labels: bool) -> None:
    for w in analysis.waves:
        ax.axvspan(w.at_s / 3600, max(w.end_s, w.at_s + 1) / 3600, color=_WAVE[w.kind], alpha=0.25, linewidth=0,
                   zorder=0, label=f"{w.kind.value} wave" if labels and w.index < 2 else None)
    first = True
    for m in analysis.series.markers:
        if m.kind is MarkerKind.ADMIN_ACTION:
            ax.axvline(m.t_s / 3600, color="#d62828", linewidth=0.8, linestyle="--",
                       label="drill action" if labels and first else None)
            first = False
    ax.axvspan(0, warm_h, color="#adb5bd", alpha=0.15, linewidth=0, zorder=0, label="warm-up" if labels else None)
    ax.grid(True, alpha=0.3)


def _fit(ax: Axes, t_s: np.ndarray, y: np.ndarray, colour: str, label: str) -> None:
    """The drift check's line through the points it judges (``drift.rss_points`` / ``latency_points``)."""
    fit = trend(t_s, y)
    if fit is None:
        return
    t0 = float(t_s[np.isfinite(y)].min())
    xs = np.array([t0, float(t_s.max())])
    ax.plot(xs / 3600, fit.start_value + fit.slope_per_h * (xs - t0) / 3600, color=colour, linewidth=2.2,
            linestyle="-.", label=f"{label}: {fit.slope_per_h:+.2f}/h")


def soak_png(analysis: Analysis) -> bytes:
    """The soak figure of a run (needs ``analysis.soak``)."""
    soak = analysis.soak
    assert soak is not None
    s = analysis.series
    waves = [(w.at_s, w.end_s) for w in analysis.waves]
    warm_s = warmup_end_s(analysis.ready_s, waves)
    latency_warm_s = warmup_end_s(analysis.ready_s)  # latency's warm-up has no first-cycle wait
    warm_h = warm_s / 3600
    fig = Figure(figsize=(14, 19))
    axes = fig.subplots(6, 1, sharex=True)
    n_min = soak.minutes_s.size
    x_min = (soak.minutes_s + MINUTE_S / 2) / 3600
    nodes = sorted(set(s.connected) | set(s.logins))
    colours = _node_colours(nodes)

    ax = axes[0]
    ends = np.minimum(((np.arange(n_min) + 1) * MINUTE_S).astype(int) - 1, s.seconds.size - 1)
    for node in nodes:
        if node in s.connected:
            ax.step(x_min, s.connected[node][ends], where="mid", color=colours[node], linewidth=1.6,
                    label=f"connected on {_short(node)}")
    ax.set_ylabel("clients")
    ax.set_title("Sessions per node (end of each minute)")

    ax = axes[1]
    for node in nodes:
        per_min = np.add.reduceat(s.logins.get(node, np.zeros(s.seconds.size)), np.arange(0, s.seconds.size, 60))
        re_min = np.add.reduceat(s.relogins.get(node, np.zeros(s.seconds.size)), np.arange(0, s.seconds.size, 60))
        k = min(per_min.size, n_min)
        ax.step(x_min[:k], per_min[:k], where="mid", color=colours[node], linewidth=1.0, linestyle=":",
                label=f"first logins on {_short(node)}")
        ax.step(x_min[:k], re_min[:k], where="mid", color=colours[node], linewidth=1.6,
                label=f"re-logins on {_short(node)}")
    ax.set_ylabel("per minute")
    ax.set_title("Logins and re-logins completed per minute")

    ax = axes[2]
    styles = {"p50": ":", "p95": "--", "p99": "-"}
    for key, colour in (("xmpp/message-latency", "#1d3557"), ("xmpp/ping", "#6a4c93")):
        if key not in soak.latency:
            continue
        for q, style in styles.items():
            ax.plot(x_min, soak.latency[key][q], color=colour, linestyle=style, linewidth=1.2, label=f"{key} {q}")
        t_fit, p99_fit, _which = latency_points(soak, key, warm_s=latency_warm_s, end_s=analysis.duration_s,
                                                waves=waves)
        _fit(ax, t_fit, p99_fit, colour, f"{key} p99 trend (ms)")
    ax.set_yscale("log")
    ax.set_ylabel("ms (log)")
    ax.set_title("Latency percentiles per minute (steady-state requests; within 1 % at summary detail)")

    ax = axes[3]
    bottom = np.zeros(n_min)
    for cause, counts in sorted(soak.failures.items(), key=lambda kv: -kv[1].sum())[:8]:
        ax.bar(x_min, counts, width=MINUTE_S / 3600, bottom=bottom, label=cause, alpha=0.8)
        bottom += counts
    if not soak.failures:
        ax.text(0.5, 0.5, "no failed request", ha="center", va="center", transform=ax.transAxes, color="#666666")
    ax.set_ylabel("failed per minute")
    ax.set_title("Failed requests per minute, by cause (a failed node refusing session logins is a client's normal path)")

    for ax, rss, cpu, title, who in (
            (axes[4], soak.generator_rss_mib, soak.generator_cpu, "Load generator RSS and CPU per process", "generator"),
            (axes[5], {k: v for k, v in soak.mock_rss_mib.items()}, soak.mock_cpu, "Mock node processes: RSS and CPU",
             "mock")):
        twin = ax.twinx()
        for i, (name, series) in enumerate(sorted(rss.items())):
            colour = ["#1d3557", "#e76f51", "#2a9d8f", "#6a4c93"][i % 4]
            if isinstance(series, tuple):
                t_s, mib = series
            else:
                t_s, mib = soak.minutes_s + MINUTE_S / 2, series
            ax.plot(t_s / 3600, mib, color=colour, linewidth=1.6, label=f"RSS {_short(name)} (MiB)")
            t_fit, mib_fit, _which = rss_points(t_s, mib, warm_s=warm_s, end_s=analysis.duration_s,
                                                per_minute=not isinstance(series, tuple),
                                                waves=waves)
            _fit(ax, t_fit, mib_fit, colour, f"RSS {_short(name)} trend (MiB)")
            c = cpu.get(name)
            if c is not None:
                ct, cv = c if isinstance(c, tuple) else (soak.minutes_s + MINUTE_S / 2, c)
                twin.plot(ct / 3600, cv, color=colour, linewidth=0.8, linestyle=":", alpha=0.8,
                          label=f"CPU {_short(name)} (%)")
        if not rss:
            ax.text(0.5, 0.5, f"no {who} RSS samples (a real pair has none)", ha="center", va="center",
                    transform=ax.transAxes, color="#666666")
        ax.set_ylabel("RSS (MiB)")
        twin.set_ylabel("CPU (% of one core)")
        twin.set_ylim(bottom=0)
        ax.set_title(title)
        handles, labels = ax.get_legend_handles_labels()
        h2, l2 = twin.get_legend_handles_labels()
        if handles or h2:
            ax.legend(handles + h2, labels + l2, loc="upper left", bbox_to_anchor=(1.06, 1.0), fontsize=8)
    latency_warm_h = latency_warm_s / 3600
    for i, ax in enumerate(axes):
        _decorate(ax, analysis, latency_warm_h if i == 2 else warm_h, labels=i == 0)
        if i < 4:
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, framealpha=0.9)
    axes[-1].set_xlabel("hours since the start of the load")
    axes[-1].set_xlim(0, max(analysis.duration_s, 60.0) / 3600)
    fig.subplots_adjust(top=0.955, hspace=0.28)
    fig.suptitle(f"Soak at a glance: {analysis.duration_s / 3600:.2f} h, {len(analysis.waves)} waves "
                 f"(warm-up until {warm_h:.2f} h, latency's until {latency_warm_h:.2f} h, greyed)", fontweight="bold")
    return _png(fig)
