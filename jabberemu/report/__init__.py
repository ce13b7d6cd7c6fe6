"""Report layer: run data -> summary.json, report.html, throttle verdict, re-login planner.

No I/O to servers: everything works from the files of a run directory (docs/ARCHITECTURE.md,
"Run data"). Entry points: :func:`build_report` / :func:`main` (``jabberemu report``),
:func:`plan` / ``planner.main`` (``jabberemu plan``).

May import: ``jabberemu.throttle`` (the model it compares with), ``config``, ``errors``, numpy,
scipy, matplotlib. Never the clients, Locust or the mock.
"""

from __future__ import annotations

from jabberemu.report.analysis import Analysis, analyze
from jabberemu.report.build import build_report, main
from jabberemu.report.data import load_run
from jabberemu.report.errors import PlannerError, ReportError, RunDataError
from jabberemu.report.planner import PROFILES, Plan, plan
from jabberemu.report.records import RunData, RunInfo
from jabberemu.report.summary import Summary
from jabberemu.report.verdict import Verdict, VerdictResult, judge
from jabberemu.report.waves import HaKind, Wave

__all__ = [
    "PROFILES",
    "Analysis",
    "HaKind",
    "Plan",
    "PlannerError",
    "ReportError",
    "RunData",
    "RunDataError",
    "RunInfo",
    "Summary",
    "Verdict",
    "VerdictResult",
    "Wave",
    "analyze",
    "build_report",
    "judge",
    "load_run",
    "main",
    "plan",
]
