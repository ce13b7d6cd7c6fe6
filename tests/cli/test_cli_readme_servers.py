"""Every command in README.md's ```sh blocks runs: the README's pairs (``jabberemu mock``, ``python -m
mock_server``) and the Locust runs against them, in README order from the first pair on, then every
pair stopped cleanly by SIGINT. How each runs: ``readme_support.py``."""

from __future__ import annotations

import shlex
from collections.abc import Iterator

import pytest
from readme_support import COMMANDS, SPLIT, ReadmeSession, command_kind

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

LAST_SERVER = max(i for i, a in enumerate(COMMANDS) if command_kind(a) == "server")


@pytest.fixture(scope="module")
def readme(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReadmeSession]:
    session = ReadmeSession(tmp_path_factory.mktemp("readme-servers"), start=SPLIT)
    try:
        yield session
    finally:
        session.close()


@pytest.mark.parametrize("index", range(SPLIT, len(COMMANDS)),
                         ids=[f"{i}-{'-'.join(a[:2])}" for i, a in enumerate(COMMANDS) if i >= SPLIT])
def test_readme_command_runs(readme: ReadmeSession, index: int) -> None:
    if command_kind(COMMANDS[index]) == "skip":
        pytest.skip("CI runs make demo / make test themselves")
    outcome = readme.run_upto(index)
    if command_kind(COMMANDS[index]) == "server" and index == LAST_SERVER:
        readme.close()  # the last pair: stop it now to check its exit
    assert not outcome.problems, (f"README command {shlex.join(COMMANDS[index])}\nran as {shlex.join(outcome.argv)}\n"
                                  f"problems: {outcome.problems}\n{outcome.output[-3000:]}")


def test_readme_servers_stopped_cleanly(readme: ReadmeSession) -> None:
    readme.run_upto(len(COMMANDS) - 1)
    readme.close()
    servers = [o for i, o in readme.outcomes.items() if command_kind(COMMANDS[i]) == "server"]
    assert servers
    for outcome in servers:
        assert outcome.code == 0 and not outcome.problems, (outcome.argv, outcome.problems, outcome.output[-2000:])
