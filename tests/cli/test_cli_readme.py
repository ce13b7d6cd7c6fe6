"""Every command in README.md's ```sh blocks runs, so the README cannot rot: the parser, and the
commands before the README's first pair (drills, the planner, the report of a drill's directory).
How each runs: ``readme_support.py``; the pairs and the Locust runs: ``test_cli_readme_servers.py``."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
from readme_support import COMMANDS, SPLIT, ReadmeSession, command_kind, readme_commands

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def readme(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReadmeSession]:
    session = ReadmeSession(tmp_path_factory.mktemp("readme"))
    try:
        yield session
    finally:
        session.close()


def test_readme_has_the_commands_it_promises() -> None:
    kinds = [command_kind(argv) for argv in COMMANDS]
    assert ["make", "demo"] in COMMANDS and ["make", "test"] in COMMANDS
    for kind in ("drill", "server", "locust", "plain"):
        assert kind in kinds, kind
    for argv in COMMANDS:
        if argv[0] == "jabberemu":
            assert argv[1] in ("mock", "run", "drill", "report", "plan"), argv
    # the commands before the first pair need none: no Locust run, no real-pair example among them
    assert all(command_kind(argv) in ("skip", "drill", "plain") for argv in COMMANDS[:SPLIT]), COMMANDS[:SPLIT]


def test_readme_parsing() -> None:
    text = "x\n```sh\nlocust -f a.py \\\n   --headless  # comment\n\nmake test    # all\n```\n```python\nno\n```\n"
    assert readme_commands(text) == [["locust", "-f", "a.py", "--headless"], ["make", "test"]]


def test_a_broken_readme_command_is_caught(tmp_path: Path) -> None:
    session = ReadmeSession(tmp_path, "```sh\njabberemu plan --users 10 --rate 3 --no-such-option\n"
                                      "jabberemu plan --users 10 --rate 3 --lower 120\n```\n")
    broken, fine = session.run_upto(0), session.run_upto(1)
    assert broken.code == 2 and broken.problems == ["exit code 2"]
    assert fine.code == 0 and fine.problems == [], fine.output


@pytest.mark.parametrize("index", range(SPLIT), ids=[f"{i}-{'-'.join(a[:2])}" for i, a in enumerate(COMMANDS[:SPLIT])])
def test_readme_command_runs(readme: ReadmeSession, index: int) -> None:
    if command_kind(COMMANDS[index]) == "skip":
        pytest.skip("CI runs make demo / make test themselves")
    outcome = readme.run_upto(index)
    assert not outcome.problems, (f"README command {shlex.join(COMMANDS[index])}\nran as {shlex.join(outcome.argv)}\n"
                                  f"problems: {outcome.problems}\n{outcome.output[-3000:]}")
