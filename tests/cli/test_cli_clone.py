"""A fresh ``git clone`` has everything ``make test`` needs: no file the suite relies on is untracked or
ignored, and the suite collects (every test module and helper imports) and a data-reading subset passes
from the clone's own code. CI (``.ci/run``) runs the whole ``make test`` and ``make demo-smoke`` on a clone."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cli_support import REPO

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SOURCE_DIRS = ("tests", "jabberemu", "mock_server", "locustfiles", ".ci", "docs")
TOP_FILES = ("Makefile", "pyproject.toml", "README.md")
CACHE_PARTS = ("__pycache__", ".mypy_cache", ".pytest_cache", ".hypothesis", ".ruff_cache")
# modules that read files of the repository (tests/data, the WSDL, static pages)
DATA_SUBSET = ("tests/mock_server/cpa/test_cpa_golden.py", "tests/mock_server/xmpp/test_xmpp_golden.py")


def _git(*args: str, cwd: Path = REPO) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


def _is_cache(path: str) -> bool:
    parts = path.split("/")
    return any(p in CACHE_PARTS or p.endswith(".egg-info") for p in parts) or path.endswith((".pyc", ".pyo"))


@pytest.fixture(scope="module")
def git_checkout() -> None:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")


def test_nothing_the_suite_needs_is_untracked_or_ignored(git_checkout: None) -> None:
    untracked = _git("ls-files", "--others", "--exclude-standard", "--", *SOURCE_DIRS, *TOP_FILES).split("\n")
    ignored = _git("ls-files", "--others", "--ignored", "--exclude-standard", "--", *SOURCE_DIRS).split("\n")
    missing = sorted(p for p in untracked + ignored if p and not _is_cache(p))
    assert missing == [], f"a fresh clone would lack these files (git add them, or fix .gitignore): {missing}"
    tracked = set(_git("ls-files").split("\n"))
    for name in (*TOP_FILES, ".ci/run", "locustfiles/jabber.py", "jabberemu/loadgen/locustfile.py"):
        assert name in tracked, name
    assert os.access(REPO / ".ci/run", os.X_OK)
    mode = _git("ls-files", "-s", ".ci/run").split()[0]
    assert mode == "100755", f".ci/run is committed with mode {mode}: CI cannot execute it"


def _clone_env(clone: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(clone)  # the clone's packages, not the checkout's editable install
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def test_fresh_clone_collects_and_runs_a_subset(git_checkout: None, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(REPO), str(clone)], check=True, timeout=120)
    env = _clone_env(clone)
    where = subprocess.run([sys.executable, "-c", "import jabberemu, mock_server; print(jabberemu.__file__, mock_server.__file__)"],
                           cwd=clone, env=env, capture_output=True, text=True, check=True).stdout.split()
    assert all(Path(p).is_relative_to(clone) for p in where), where
    base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    collect = subprocess.run([*base, "--collect-only", "tests", "--ignore=tests/loadgen"], cwd=clone, env=env,
                             capture_output=True, text=True, timeout=240)
    assert collect.returncode == 0, collect.stdout[-3000:] + collect.stderr[-2000:]
    assert " tests collected" in collect.stdout or "tests collected" in collect.stdout
    assert "error" not in collect.stdout.splitlines()[-1].lower(), collect.stdout[-2000:]
    # the Locust tests run in a pytest process of their own (Makefile: gevent must not leak)
    collect = subprocess.run([*base, "--collect-only", "tests/loadgen", "-p", "no:asyncio", "-p", "no:aiohttp"],
                             cwd=clone, env=env, capture_output=True, text=True, timeout=240)
    assert collect.returncode in (0, 5), collect.stdout[-3000:] + collect.stderr[-2000:]  # 5: none collected
    run = subprocess.run([*base, *DATA_SUBSET], cwd=clone, env=env, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert " passed" in run.stdout.splitlines()[-1]
