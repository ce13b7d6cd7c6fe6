"""Where the emulated client's CPU goes: a bench script run under py-spy, summarised by component.

Runs ``bench/login_cost.py`` (by default: CPA full login and XMPP-only waves against the mock, no
Tsung or Prosody) under ``py-spy record --format raw`` (sampling, this process only: the mock
runs in processes of its own and is not sampled), then folds the stacks into:

- inclusive share per component (a sample counts once for each component on its stack):
  slixmpp XML parsing, slixmpp stanza/handler machinery, zeep serialise/parse, aiohttp client,
  the jabberemu driver/machine, asyncio/selector, run-data records;
- the top functions by self time.

py-spy comes from PyPI (``.venv/bin/pip install py-spy``); it is not a dependency of the package.

    .venv/bin/python bench/profile_hotspots.py --clients 1000 --rate 100
    .venv/bin/python bench/profile_hotspots.py -- bench/sessions_per_process.py --clients 2000 --no-tsung
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchkit import ROOT, emit, machine_info, wait_for_low_load  # noqa: E402

__all__ = ["COMPONENTS", "fold", "main"]

NAME = "profile_hotspots"

#: component -> substrings of a frame ("function (file:line)") that put a sample in it; first match wins
#: per frame, but a sample counts once per component.
COMPONENTS: dict[str, tuple[str, ...]] = {
    "xml parsing (slixmpp XMLPullParser/expat)": ("xml/etree/ElementTree.py", "pyexpat", "read_events", "_feed"),
    "slixmpp stanza objects (ElementBase, plugins)": ("slixmpp/xmlstream/stanzabase.py", "slixmpp/stanza/",
                                                     "slixmpp/plugins/"),
    "slixmpp stream/handlers (xmlstream.py, matchers)": ("slixmpp/xmlstream/xmlstream.py",
                                                          "slixmpp/xmlstream/handler", "slixmpp/xmlstream/matcher"),
    "slixmpp client set-up (ClientXMPP/BaseXMPP init, plugin load)": ("slixmpp/clientxmpp.py", "slixmpp/basexmpp.py",
                                                                      "slixmpp/plugins/base.py"),
    "slixmpp serialise (tostring)": ("slixmpp/xmlstream/tostring.py",),
    "zeep (serialise + parse)": ("zeep/",),
    "lxml": ("lxml",),
    "aiohttp client": ("aiohttp/",),
    "jabberemu driver/machine/xmpp": ("jabberemu/",),
    "run-data records (json)": ("json/encoder.py", "jabberemu/runtime.py"),
    "asyncio loop + selectors": ("asyncio/base_events.py", "selectors.py", "asyncio/selector_events.py"),
    "ssl": ("ssl.py",),
    "logging": ("logging/__init__.py",),
}


def fold(raw_text: str) -> dict[str, Any]:
    """Fold py-spy ``raw`` (collapsed) stacks into component shares and top self functions.

    Args:
        raw_text: lines ``frame;frame;...;leaf count`` (root first).

    Returns:
        ``{"samples": n, "components": {name: percent}, "top_self": [{"frame", "percent"}]}``.
    """
    total = 0
    per_component: collections.Counter[str] = collections.Counter()
    self_time: collections.Counter[str] = collections.Counter()
    for line in raw_text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        self_time[frames[-1]] += count
        hit = {name for name, keys in COMPONENTS.items() for f in frames if any(k in f for k in keys)}
        for name in hit:
            per_component[name] += count
    if not total:
        return {"samples": 0, "components": {}, "top_self": []}
    return {
        "samples": total,
        "components": {k: round(v / total * 100, 1) for k, v in per_component.most_common()},
        "top_self": [{"frame": f[:160], "percent": round(c / total * 100, 1)} for f, c in self_time.most_common(25)],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--rate", type=float, default=100.0)
    p.add_argument("--sample-rate", type=int, default=250, help="py-spy samples per second")
    p.add_argument("--max-load", type=float, default=None)
    p.add_argument("--max-wait", type=float, default=600.0)
    p.add_argument("--results-dir", type=Path, default=None)
    p.add_argument("command", nargs="*", help="bench script and its options (after --)")
    args = p.parse_args(argv)
    py_spy = shutil.which("py-spy", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    if py_spy is None:
        p.error("py-spy not found: .venv/bin/pip install py-spy")
    command = args.command or ["bench/login_cost.py", "--clients", str(args.clients), "--rate", str(args.rate),
                               "--no-tsung", "--no-prosody", "--no-saturate"]
    load = wait_for_low_load(args.max_load, args.max_wait)
    with tempfile.TemporaryDirectory(prefix="bench-prof-") as tmp:
        out = Path(tmp) / "stacks.txt"
        cmd = [py_spy, "record", "--format", "raw", "--rate", str(args.sample_rate), "--nonblocking",
               "--output", str(out), "--", sys.executable, *command, "--results-dir", tmp]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=3600, check=False)
        if proc.returncode != 0 or not out.exists():
            sys.stderr.write(proc.stderr[-3000:])
            return 1
        profiled_result = proc.stdout.strip().splitlines()[-1]
        folded = fold(out.read_text(encoding="utf-8", errors="replace"))
    result = {"bench": NAME, "command": command, **folded, "profiled_result": profiled_result[:4000], **load,
              "machine": machine_info(), "argv": sys.argv if argv is None else [__file__, *argv], "ts": time.time()}
    rows = [(f"incl. {k}", v, None) for k, v in folded["components"].items()]
    rows += [(f"self {t['frame'][:70]}", t["percent"], None) for t in folded["top_self"][:12]]
    emit(NAME, rows, result, results_dir=args.results_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
