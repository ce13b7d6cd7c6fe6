"""The ``jabberemu`` console script.

Subcommands:

``jabberemu mock ...``      the mock IM&P pair (the options of ``python -m mock_server``)
``jabberemu run ...``       a Locust swarm with jabberemu's locustfile; stock Locust flags pass through
``jabberemu drill ...``     the whole HA drill on the bundled pair, start to finish, with a verdict
``jabberemu report DIR``    rebuild ``report.html`` and ``summary.json`` from a run's raw files
``jabberemu plan ...``      re-login limits from Cisco's rule, the expected wave, the risk of the current limits
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence

from jabberemu.drill import LOCUSTFILE

__all__ = ["main", "LOCUSTFILE"]
"""The locustfile ``jabberemu run`` hands to Locust (``locustfiles/jabber.py`` re-exports it)."""

_USAGE = """jabberemu COMMAND [options]

Commands:
  mock     run the mock IM&P pair (two nodes, CPA SOAP, XMPP, SRM) on loopback
  run      run a Locust swarm of emulated Jabber clients (stock Locust flags pass through)
  drill    run a whole HA drill on the bundled mock pair and print the verdict
  report   rebuild a run's report.html and summary.json from its raw files
  plan     plan re-login limits for a user count and a login rate

'jabberemu COMMAND --help' shows each command's options.
"""


def _own_options_help() -> str:
    """jabberemu's own Locust options (Locust's ``--help`` does not load the locustfile, so never shows them)."""
    import configargparse

    from jabberemu.loadgen.options import add_options

    parser = configargparse.ArgumentParser(prog="jabberemu run", add_help=False, usage=configargparse.SUPPRESS)
    add_options(parser)
    return str(parser.format_help())


def _run_locust(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        sys.stdout.write(
            "usage: jabberemu run [LOCUST OPTIONS] [JABBEREMU OPTIONS]\n\n"
            "Runs 'locust -f <jabberemu locustfile> [OPTIONS]'. Every stock Locust option works\n"
            "(--headless, -u, -r, -t, --csv, --html, --processes, --master/--worker ...: see them with\n"
            "'jabberemu run --help-locust'), plus jabberemu's own, each also an environment variable and a\n"
            "locust.conf key:\n\n" + _own_options_help()
        )
        return 0
    if argv and argv[0] == "--help-locust":
        sys.stdout.flush()
        code = subprocess.call([sys.executable, "-m", "locust", "-f", LOCUSTFILE, "--help"])
        sys.stdout.write("\njabberemu's own options:\n\n" + _own_options_help())
        return code
    cmd = [sys.executable, "-m", "locust", "-f", LOCUSTFILE, *argv]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, cmd)
    return 0  # not reached


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script.

    Returns:
        Exit code: 0 on success, 1 for a FAIL verdict with ``--fail-on-verdict``, 2 on bad usage.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        sys.stdout.write(_USAGE)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "mock":  # the bundled pair, as its own program: jabberemu shares no code with it
        # exec, not a child: Ctrl-C / SIGTERM sent to this pid reach the pair's supervisor itself, which
        # stops its nodes and the zygote (a waiting parent got the KeyboardInterrupt instead)
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, [sys.executable, "-m", "mock_server", *rest])
    if command == "run":
        return _run_locust(rest)
    if command == "report":
        from jabberemu.report.build import main as report_main

        return report_main(rest)
    if command == "plan":
        from jabberemu.report.planner import main as plan_main

        return plan_main(rest)
    if command == "drill":
        from jabberemu.drill import main as drill_main

        return drill_main(rest)
    sys.stderr.write(f"jabberemu: unknown command {command!r}\n\n{_USAGE}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
