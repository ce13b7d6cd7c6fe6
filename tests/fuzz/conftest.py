"""Fuzz corpus set-up: print the inputs tried per target at the end of the session, and write
them as JSON to ``$JABBEREMU_FUZZ_REPORT`` when that is set."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from fuzz_support import COUNTS, ENV_EXAMPLES, total_budget

__all__: list[str] = []

_STARTED = time.monotonic()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not COUNTS:
        return
    elapsed_s = time.monotonic() - _STARTED
    terminalreporter.section("fuzz corpus")
    terminalreporter.write_line(f"{ENV_EXAMPLES}={total_budget()}")
    for target, n in sorted(COUNTS.items()):
        terminalreporter.write_line(f"{target:24s} {n:7d} inputs")
    terminalreporter.write_line(f"{'total':24s} {sum(COUNTS.values()):7d} inputs in {elapsed_s:.1f} s")
    out = os.environ.get("JABBEREMU_FUZZ_REPORT")
    if out:
        Path(out).write_text(json.dumps({"budget": total_budget(), "counts": dict(COUNTS),
                                         "total": sum(COUNTS.values()), "elapsed_s": round(elapsed_s, 1)},
                                        indent=2) + "\n", encoding="utf-8")
