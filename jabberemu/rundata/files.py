"""File names of a run directory and the order of their rotated segments.

A JSONL file ``NAME.jsonl`` may be written in segments (``segments.RotatingJsonlWriter``): closed
segments ``NAME.0001.jsonl.gz``, ``NAME.0002.jsonl.gz`` ... (gzip), then the live segment
``NAME.jsonl``. A closed segment whose compression was cut short by the end of the process stays
as plain ``NAME.NNNN.jsonl``; when both forms of one number exist, the ``.gz`` one is whole (it is
renamed into place only once written) and the plain one is a leftover. Runs written before rotation
existed hold the live file only, and read the same way.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = [
    "CLIENT_EVENTS_FILE",
    "GENERATOR_FILE",
    "RUN_FILE",
    "SERVER_EVENTS_FILE",
    "SERVER_METRICS_FILE",
    "WORKERS_DIR",
    "WORKERS_FILE",
    "RUN_DATA_FILES",
    "SUMMARY_FILE",
    "run_data_in",
    "run_dir_problem",
    "segment_name",
    "segment_paths",
]

RUN_FILE = "run.json"
CLIENT_EVENTS_FILE = "client_events.jsonl"
SERVER_EVENTS_FILE = "server_events.jsonl"
SERVER_METRICS_FILE = "server_metrics.jsonl"
GENERATOR_FILE = "generator.jsonl"
WORKERS_DIR = "workers"
WORKERS_FILE = "workers.json"
SUMMARY_FILE = "summary.json"

_SEGMENT = re.compile(r"^(?P<stem>.+)\.(?P<number>\d{4,})\.jsonl(?P<gz>\.gz)?$")


def _stem(name: str) -> str:
    if not name.endswith(".jsonl"):
        raise ValueError(f"not a JSONL file name: {name!r}")
    return name[: -len(".jsonl")]


def segment_name(name: str, number: int, *, compressed: bool = True) -> str:
    """The name of closed segment ``number`` of ``name`` (``client_events.0003.jsonl.gz``)."""
    return f"{_stem(name)}.{number:04d}.jsonl" + (".gz" if compressed else "")


def segment_paths(run_dir: Path, name: str) -> list[Path]:
    """Every existing segment of ``name`` in ``run_dir``, in write order: closed segments by number
    (the ``.gz`` form when both exist), then the live file.

    Args:
        run_dir: the run directory.
        name: the live file's name, e.g. ``client_events.jsonl``.
    Returns:
        Paths that exist (empty when none does).
    """
    stem = _stem(name)
    closed: dict[int, Path] = {}
    if run_dir.is_dir():
        for path in run_dir.iterdir():
            m = _SEGMENT.match(path.name)
            if m is None or m.group("stem") != stem:
                continue
            number = int(m.group("number"))
            if m.group("gz") or number not in closed:
                closed[number] = path
    out = [closed[n] for n in sorted(closed)]
    live = run_dir / name
    if live.exists():
        out.append(live)
    return out


#: Files that mark a run (a JSONL name stands for all its segments): the swarm's own records and the
#: report's summary. The mock's files (``server_events``, ``server_metrics``) are not among them: the
#: drill writes its topology and log into ``--out`` before the swarm starts there.
RUN_DATA_FILES = (RUN_FILE, CLIENT_EVENTS_FILE, GENERATOR_FILE, SUMMARY_FILE)


def run_data_in(run_dir: Path) -> list[str]:
    """The run data ``run_dir`` already holds: names from :data:`RUN_DATA_FILES` (segments included).

    A second run written into the same directory would add its records to the first one's (segments
    are appended, and the report reads every segment): both doors, ``jabberemu drill --out`` and the
    swarm's ``--run-dir``, refuse such a directory (our choice: refuse rather than delete a run).

    Args:
        run_dir: the directory (missing is fine: nothing in it).
    Returns:
        The file names found, sorted; [] when the directory holds no run.
    """
    found: set[str] = set()
    for name in RUN_DATA_FILES:
        if name.endswith(".jsonl"):
            found.update(p.name for p in segment_paths(run_dir, name))
        elif (run_dir / name).exists():
            found.add(name)
    return sorted(found)


def run_dir_problem(run_dir: Path, option: str, *, claims: tuple[str, ...] = ()) -> str | None:
    """Why ``run_dir`` cannot take a new run, in one line in the option's own name; None when it can.

    It cannot when it (or the nearest part of its path that exists) is not a directory, cannot be read,
    or holds a run (:func:`run_data_in`, or one of ``claims``: files a run's owner creates first, such as
    the drill's ``drill.json``).

    Args:
        run_dir: the directory asked for (it need not exist).
        option: the option that named it (``--out``, ``--run-dir``).
        claims: more file names that mark a run.
    """
    try:
        existing = next((p for p in (run_dir, *run_dir.parents) if p.exists()), None)
        if existing is not None and not existing.is_dir():
            if existing == run_dir:
                return f"{option} {run_dir} is a file, not a directory"
            return f"{option} {run_dir}: {existing} is a file, not a directory"
        found = sorted({*run_data_in(run_dir), *(c for c in claims if (run_dir / c).exists())})
    except OSError as exc:
        return f"{option} {run_dir}: cannot read it ({exc.strerror or exc})"
    if found:
        return (f"{option} {run_dir} already holds a run ({', '.join(found)}): a second run there would mix its "
                "records with that one's; give a new or empty directory")
    return None
