"""``jabberemu report RUN_DIR``: rebuild ``summary.json`` and ``report.html`` from the raw files.

The run data is streamed (``report.stream``: bounded memory for any run length); each wave's figures
are rendered as the wave is measured. ``stream=False`` loads everything first (``report.data``), as
before; both give the same summary.

Exit codes of :func:`main`: 0 report written (PASS, or any verdict without ``--fail-on-verdict``);
1 FAIL and 3 INCONCLUSIVE with ``--fail-on-verdict`` (``report.checks.exit_code``); 2 bad run data
or arguments.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from jabberemu.report.analysis import analyze
from jabberemu.report.data import load_run, load_run_info
from jabberemu.report.errors import ReportError
from jabberemu.report.html import REPORT_FILE, WaveFigures, render_html, wave_figures
from jabberemu.report.stream import analyze_run
from jabberemu.report.wavestream import MeasuredWave
from jabberemu.rundata.files import RUN_FILE
from jabberemu.report.summary import SUMMARY_FILE, Summary, make_summary
from jabberemu.report.verdict import DEFAULT_MAX_LOGIN_WAIT_S, exit_code, judge
from jabberemu.report.waves import DEFAULT_GAP_S

__all__ = ["build_parser", "build_report", "main", "run"]

logger = logging.getLogger(__name__)


def build_report(run_dir: Path | str, *, out_dir: Path | str | None = None,
                 server_login_rate: float | None = None, recovery_margin_s: float | None = None,
                 max_login_wait_s: float | None = None, gap_s: float = DEFAULT_GAP_S, html: bool = True,
                 stream: bool = True) -> Summary:
    """Load a run directory, judge it, write ``summary.json`` and ``report.html``.

    Args:
        run_dir: ``reports/<run-id>/``.
        out_dir: where to write (default ``run_dir``).
        server_login_rate: declared capacity (logins/s per node) overriding ``run.json``.
        recovery_margin_s: margin (s) after ``upper`` overriding ``run.json``.
        max_login_wait_s: bound (s) on a wave's p99 CPA login wait overriding ``run.json``.
        gap_s: HA events further apart than this belong to different waves.
        html: also write ``report.html`` (False: summary only, faster).
        stream: stream the run data (bounded memory); False loads it all first.
    Returns:
        The summary (verdict, reasons, the JSON content).
    Raises:
        RunDataError: the run data is missing or bad (file and line named).
    """
    info = load_run_info(Path(run_dir) / RUN_FILE)
    target = Path(out_dir) if out_dir is not None else Path(run_dir)
    margin = recovery_margin_s if recovery_margin_s is not None else info.recovery_margin_s
    capacity = server_login_rate if server_login_rate is not None else info.server_login_rate
    max_wait = (max_login_wait_s if max_login_wait_s is not None
                else info.max_login_wait_s if info.max_login_wait_s is not None
                else DEFAULT_MAX_LOGIN_WAIT_S)
    figures: dict[int, WaveFigures] = {}

    def render_wave(m: MeasuredWave) -> None:
        figures[m.wave.index] = wave_figures(m.wave, m.storm, m.prediction, capacity=capacity, margin_s=margin,
                                             max_login_wait_s=max_wait)

    if stream:
        data, analysis, _stats = analyze_run(run_dir, gap_s=gap_s, recovery_margin_s=margin,
                                             on_wave=render_wave if html else None)
    else:
        data = load_run(run_dir)
        analysis = analyze(data, gap_s=gap_s, recovery_margin_s=margin)
    target.mkdir(parents=True, exist_ok=True)
    result = judge(data.info, analysis, server_login_rate=capacity, recovery_margin_s=margin,
                   max_login_wait_s=max_wait)
    summary = make_summary(data, analysis, result, capacity=capacity, margin_s=margin, max_login_wait_s=max_wait)
    summary.write(target / SUMMARY_FILE)
    if html:
        page = render_html(data, analysis, result, capacity=capacity, margin_s=margin, max_login_wait_s=max_wait,
                           figures=figures)
        (target / REPORT_FILE).write_text(page, encoding="utf-8")
    logger.info("report of %s: %s", data.info.run_id, summary.verdict.value)
    return summary


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """Add the ``report`` arguments to ``parser`` (or a new one) for the console script."""
    p = parser or argparse.ArgumentParser(prog="jabberemu report",
                                          description="Rebuild summary.json and report.html of a run.")
    p.add_argument("run_dir", metavar="RUN_DIR", type=Path, help="reports/<run-id>/ directory")
    p.add_argument("--out", type=Path, default=None, help="write into this directory (default RUN_DIR)")
    p.add_argument("--server-login-rate", type=float, default=None, metavar="R",
                   help="declared server capacity in logins/s per node (overrides run.json)")
    p.add_argument("--recovery-margin", type=float, default=None, metavar="S",
                   help="seconds after the upper limit a re-login may still finish (default run.json or 5)")
    p.add_argument("--max-login-wait", type=float, default=None, metavar="S",
                   help="bound on a wave's p99 CPA login wait in seconds (default run.json or "
                   f"{DEFAULT_MAX_LOGIN_WAIT_S:g})")
    p.add_argument("--wave-gap", type=float, default=DEFAULT_GAP_S, metavar="S",
                   help=f"HA events further apart start a new wave (default {DEFAULT_GAP_S:g} s)")
    p.add_argument("--no-html", action="store_true", help="write summary.json only")
    p.add_argument("--fail-on-verdict", action="store_true",
                   help="exit 1 when the verdict is FAIL, 3 when it is INCONCLUSIVE")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry: ``jabberemu report RUN_DIR [--fail-on-verdict] ...``.

    Args:
        argv: arguments after ``report`` (default ``sys.argv[1:]``).
    Returns:
        The exit code (0; with ``--fail-on-verdict`` 1 on FAIL, 3 on INCONCLUSIVE; 2 on bad data).
    """
    return run(build_parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Run ``jabberemu report`` from arguments parsed by :func:`build_parser` (for a CLI subcommand).

    Returns:
        The exit code, as :func:`main`.
    """
    try:
        summary = build_report(args.run_dir, out_dir=args.out, server_login_rate=args.server_login_rate,
                               recovery_margin_s=args.recovery_margin, max_login_wait_s=args.max_login_wait,
                               gap_s=args.wave_gap, html=not args.no_html)
    except ReportError as exc:
        print(f"jabberemu report: {exc}", file=sys.stderr)
        return 2
    out = args.out or args.run_dir
    print(f"{summary.verdict.value}  {out / (SUMMARY_FILE if args.no_html else REPORT_FILE)}")
    for reason in summary.reasons:
        print(f"  - {reason}")
    for warning in summary.data.get("warnings", []):
        print(f"  ! {warning}")
    return exit_code(summary.verdict, args.fail_on_verdict)


if __name__ == "__main__":
    sys.exit(main())
