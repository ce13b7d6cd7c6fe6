"""Option errors in the option's own name and unit (``option_problems``), from jabberemu's real parser.

Pure: the options are parsed by configargparse with jabberemu's ``add_options`` (what Locust's parser
holds), ``-u``/``-r`` set as Locust would; no Locust import (no gevent patching here).
"""

from __future__ import annotations

import argparse

import configargparse
import pytest

from jabberemu.errors import ConfigError
from jabberemu.loadgen.options import add_options, check_options, option_problems


def parse(*args: str, users: int | None = 10, rate: float | None = 1.0) -> argparse.Namespace:
    parser = configargparse.ArgumentParser()
    add_options(parser)
    opts = parser.parse_args(list(args), env_vars={})
    opts.num_users, opts.spawn_rate = users, rate
    return opts


def test_defaults_are_fine() -> None:
    assert option_problems(parse()) == []
    assert option_problems(parse(users=None, rate=None)) == []  # web UI: -u and -r come later


@pytest.mark.parametrize(("args", "users", "message"), [
    ((), -5, "-u must be at least 1, not -5"),
    ((), 0, "-u must be at least 1, not 0"),
    (("--default-lower", "30", "--default-upper", "10"), 10,
     "--default-upper (10 s) must be >= --default-lower (30 s)"),
    (("--default-lower", "-1"), 10, "--default-lower must be >= 0 s, not -1"),
    (("--default-upper", "nan"), 10, "--default-upper must be a finite number (s), not nan"),
    (("--message-rate", "-1"), 10, "--message-rate must be >= 0 messages/s per client, not -1"),
    (("--presence-rate", "-0.5"), 10, "--presence-rate must be >= 0 presence changes/s per client, not -0.5"),
    (("--ping-interval", "-1"), 10, "--ping-interval must be >= 0 s (0 = off), not -1"),
    (("--ping-timeout", "0"), 10, "--ping-timeout must be > 0 s, not 0"),
    (("--soap-timeout", "-3"), 10, "--soap-timeout must be > 0 s, not -3"),
    (("--server-login-rate", "-6"), 10, "--server-login-rate must be >= 0 logins/s (0 = not declared), not -6"),
    (("--max-login-wait", "0"), 10, "--max-login-wait must be > 0 s, not 0"),
    (("--recovery-margin", "-1"), 10, "--recovery-margin must be >= 0 s, not -1"),
    (("--loop-lag-warn-ms", "-1"), 10, "--loop-lag-warn-ms must be >= 0 ms (0 = warn always), not -1"),
    (("--cpu-warn", "-5"), 10, "--cpu-warn must be >= 0 % CPU (0 = warn always), not -5"),
    (("--user-offset", "-1"), 10, "--user-offset must be >= 0, not -1"),
    (("--lower-property", " "), 10, "--lower-property must name a CPA get-all-config property, not ' '"),
    (("--user-pattern", "alice"), 10,
     "--user-pattern 'alice' gives every user the id 'alice'; put {n} in it, e.g. user{n:05d}"),
    (("--user-pattern", "user {n}"), 10,
     "--user-pattern 'user {n}' gives the user id 'user 1', not a JID local part (white space)"),
    (("--user-pattern", "user{x}"), 10,
     "--user-pattern 'user{x}' does not format (KeyError: 'x'); write {n} for the user number, e.g. user{n:05d}"),
    (("--password-pattern", "p-{usr}"), 10,
     "--password-pattern does not format (KeyError: 'usr'); write {user} for the user id, e.g. pass-{user}"),
    (("--fail-on-verdict",), 10, "--fail-on-verdict needs --report (the verdict is the report's)"),
])
def test_each_bad_option_is_named_with_its_unit(args: tuple[str, ...], users: int, message: str) -> None:
    assert option_problems(parse(*args, users=users)) == [message]


def test_rate_as_locust_would_pass_it() -> None:
    assert option_problems(parse(rate=float("inf"))) == ["-r must be a finite number (users/s), not inf"]


def test_a_users_csv_replaces_the_patterns() -> None:
    assert option_problems(parse("--users-csv", "u.csv", "--user-pattern", "alice")) == []


def test_every_problem_in_one_line() -> None:
    with pytest.raises(ConfigError) as info:
        check_options(parse("--default-lower", "30", "--default-upper", "10", "--message-rate", "-1", users=-5))
    assert str(info.value) == ("-u must be at least 1, not -5; --message-rate must be >= 0 messages/s per client, "
                               "not -1; --default-upper (10 s) must be >= --default-lower (30 s)")
