"""``python -m mock_server``: run the mock IM&P pair on loopback; ``ha-status`` prints SRM status.

The only place that configures logging for the mock.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import Sequence
from typing import Any

from mock_server.pair_config import DEFAULT_DOMAIN, DEFAULT_NODE_NAMES, LoginCostConfig, NodePorts, PairConfig

__all__ = ["main", "build_parser", "config_from_args", "format_ha_status"]

logger = logging.getLogger("mock_server")


def _pair(text: str, kind: type = int) -> tuple[Any, Any]:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"give one value or two separated by a comma, not {text!r}")
    try:
        return kind(parts[0]), kind(parts[1])
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None


def _ports(text: str) -> tuple[int, int]:
    return _pair(text, int)


def _names(text: str) -> tuple[str, str]:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2 or not all(parts):
        raise argparse.ArgumentTypeError("give two node names separated by a comma")
    return parts[0], parts[1]


def add_pair_options(p: argparse.ArgumentParser) -> None:
    """Options of the mock pair (shared with ``jabberemu mock`` and ``jabberemu drill``)."""
    g = p.add_argument_group("topology")
    g.add_argument("--bind", default="127.0.0.1", help="address every listener binds (default 127.0.0.1)")
    g.add_argument("--node-names", type=_names, default=DEFAULT_NODE_NAMES, metavar="N1,N2")
    g.add_argument("--domain", default=DEFAULT_DOMAIN, help="presence domain (default %(default)s)")
    g.add_argument("--admin-port", type=int, default=0, help="admin API port; 0 = free port")
    g.add_argument("--cpa-ports", type=_ports, default=(0, 0), metavar="P1,P2", help="CPA HTTP ports; 0 = free")
    g.add_argument("--xmpp-ports", type=_ports, default=(0, 0), metavar="P1,P2", help="XMPP c2s ports; 0 = free")
    g.add_argument("--peer-ports", type=_ports, default=(0, 0), metavar="P1,P2", help="node-to-node ports")
    g.add_argument("--topology-out", metavar="FILE", help="write the topology JSON here once every listener is up")
    g.add_argument("--events-out", metavar="FILE", help="append every SRM/admin event here as JSONL")
    g.add_argument("--admin-token", help="bearer token for admin writes (required when --bind is not loopback)")
    u = p.add_argument_group("users")
    u.add_argument("--users", type=int, default=100, help="provision user00001... (default %(default)s)")
    u.add_argument("--users-csv", metavar="FILE", help="CSV: user id, password[, display name[, home node]]")
    u.add_argument("--seed", type=int, default=1, help="seed of display names and contacts")
    u.add_argument("--password-pattern", default="pass-{user}", help="default %(default)s")
    u.add_argument("--assignment", choices=("balanced", "active-standby"), default="balanced")
    u.add_argument("--contacts", type=int, default=5, help="roster contacts per user")
    s = p.add_argument_group("SRM and HA")
    s.add_argument("--param", action="append", default=[], metavar="[NODE:]NAME=VALUE",
                   help="SRM parameter, e.g. heartbeat_interval_s=0.2 or imp1.example.test:relogin_lower_s=5")
    s.add_argument("--no-ha", action="store_true", help="start with High Availability disabled")
    s.add_argument("--lower-property", default="Presence.Relogin.LowerLimit", help="CPA property of the lower limit")
    s.add_argument("--upper-property", default="Presence.Relogin.UpperLimit", help="CPA property of the upper limit")
    s.add_argument("--no-otp-replication", action="store_true", help="do not replicate the Login Datastore (fault)")
    c = p.add_argument_group(
        "login cost (docs/login-model.md; per node: one value or two separated by a comma; "
        "the defaults, our choice, make a login free)")
    c.add_argument("--login-rate", type=lambda t: _pair(t, float), metavar="R",
                   help="logins started per second, sustained (token bucket); default unlimited")
    c.add_argument("--login-profile", help="a Cisco HA login profile name instead of --login-rate")
    c.add_argument("--login-burst", type=_ports, default=(1, 1), metavar="B",
                   help="logins that may start back to back (default 1)")
    c.add_argument("--login-workers", type=_ports, default=(None, None), metavar="C",
                   help="logins in service at once; default unlimited")
    c.add_argument("--login-service-ms", type=lambda t: _pair(t, float), default=(0.0, 0.0), metavar="MS",
                   help="time one started login holds its worker before it answers (default 0)")
    c.add_argument("--login-queue", type=_ports, default=(None, None), metavar="Q",
                   help="logins that may wait, beyond it server-busy; 0 = no waiting; default unbounded")
    x = p.add_argument_group("XMPP")
    x.add_argument("--starttls", action="store_true", help="offer STARTTLS (self-signed certificate)")
    x.add_argument("--server-ping-interval", type=float, default=0.0, metavar="S", help="XEP-0199 ping of idle clients")
    x.add_argument("--stanza-limit", type=int, default=65536, metavar="BYTES")


def build_parser(prog: str = "python -m mock_server") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Run a mock Cisco IM&P Presence Redundancy Group (two nodes, CPA SOAP, XMPP, SRM) "
        "on loopback. Subcommand: 'ha-status --admin-url URL' prints what 'utils ha status' prints.",
    )
    add_pair_options(p)
    p.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    return p


def _login_rates(args: argparse.Namespace) -> tuple[float | None, float | None]:
    if args.login_profile:
        from mock_server.params import login_profile

        rate = login_profile(args.login_profile).users_per_s
        return rate, rate
    if args.login_rate:
        return args.login_rate  # type: ignore[no-any-return]
    return None, None


def config_from_args(args: argparse.Namespace) -> PairConfig:
    """Build the pair's settings from parsed options.

    Raises:
        ValueError: an option is out of range (message names it), or the users CSV cannot be used
            (``UserDataError``: file and line named).
    """
    rates = _login_rates(args)
    cost = tuple(
        LoginCostConfig(
            rate_per_s=rates[i],
            burst=args.login_burst[i],
            workers=args.login_workers[i],
            service_ms=args.login_service_ms[i],
            queue_limit=args.login_queue[i],
        )
        for i in range(2)
    )
    ports = tuple(NodePorts(cpa=args.cpa_ports[i], xmpp=args.xmpp_ports[i], peer=args.peer_ports[i]) for i in range(2))
    if args.users_csv:  # read it here, so a bad file is one line before any node starts
        from mock_server.users import AssignmentMode, load_csv

        load_csv(args.users_csv, tuple(args.node_names), seed=args.seed, mode=AssignmentMode(args.assignment),
                 contacts=args.contacts)
    if args.param:
        from mock_server.params import parse_param

        for text in args.param:
            parse_param(text)  # fail early with a clear message
    return PairConfig(
        node_names=tuple(args.node_names),
        domain=args.domain,
        bind=args.bind,
        ports=(ports[0], ports[1]),
        users=args.users,
        users_csv=args.users_csv,
        seed=args.seed,
        password_pattern=args.password_pattern,
        assignment=args.assignment,
        contacts=args.contacts,
        params=tuple(args.param),
        ha_enabled=not args.no_ha,
        login_cost=(cost[0], cost[1]),
        lower_property=args.lower_property,
        upper_property=args.upper_property,
        starttls=args.starttls,
        server_ping_interval_s=args.server_ping_interval,
        stanza_limit_bytes=args.stanza_limit,
        replicate_otp=not args.no_otp_replication,
    )


async def _serve(args: argparse.Namespace) -> int:
    from mock_server.pair.runner import MockPair

    config = config_from_args(args)
    pair = MockPair(config, admin_port=args.admin_port, admin_token=args.admin_token, events_out=args.events_out)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        topology = await pair.start()
        await _initialized(pair, stop)
        text = json.dumps(topology, indent=2)
        if args.topology_out:
            with open(args.topology_out, "w", encoding="utf-8") as f:
                f.write(text + "\n")
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
        logger.info("mock pair up; admin page %s/ ; Ctrl-C stops it", pair.admin_url)
        await stop.wait()
        logger.info("stopping the mock pair")
    finally:
        await pair.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):  # before asyncio.run closes the wake-up fd
            loop.remove_signal_handler(sig)
    return 0


INIT_WAIT_S = 300.0
"""Seconds to wait for both nodes to leave Initializing before the topology is written anyway."""


async def _initialized(pair: Any, stop: asyncio.Event) -> None:
    """Wait until no node is Initializing (SRM heartbeats exchanged), so that clients reading the
    topology file find their users served; bounded by ``INIT_WAIT_S`` and by a stop request."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + INIT_WAIT_S
    logged = False
    while not stop.is_set() and loop.time() < deadline:
        status = await pair.admin("GET", "/api/status")
        if all(n.get("state") != "Initializing" for n in status["nodes"]):
            return
        if not logged:
            logger.info("waiting for the SRM of both nodes to finish initializing (first heartbeats)")
            logged = True
        await asyncio.sleep(0.1)
    if not stop.is_set():
        logger.warning("nodes still Initializing after %.0f s; writing the topology anyway", INIT_WAIT_S)


def format_ha_status(status: dict[str, Any]) -> str:
    """Render ``/api/status`` the way the IM&P CLI ``utils ha status`` shows it."""
    lines = [f"Subcluster Name: {status.get('subcluster', '')}", ""]
    for node in status["nodes"]:
        lines.append(f"Node Name: {node['name']}")
        lines.append(f"  State: {node.get('state') or 'Unknown'}")
        lines.append(f"  Reason: {node.get('reason') or 'Unknown'}")
        if not node.get("ha_enabled", True):
            lines[-1] = "  Reason: High Availability Not Enabled"
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


async def _ha_status(admin_url: str) -> int:
    import aiohttp

    url = admin_url.rstrip("/") + "/api/status"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            async with session.get(url) as resp:
                if resp.status != 200:
                    sys.stderr.write(f"ha-status: {url} answered {resp.status}: {(await resp.text())[:200]}\n")
                    return 1
                status = await resp.json()
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
        sys.stderr.write(f"ha-status: cannot read {url}: {exc or type(exc).__name__}\n")
        return 1
    sys.stdout.write(format_ha_status(status))
    return 0


def main(argv: Sequence[str] | None = None, *, prog: str = "python -m mock_server") -> int:
    """Entry point.

    Returns:
        Process exit code: 0 on a clean stop, 2 on bad options.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "ha-status":
        hp = argparse.ArgumentParser(prog="python -m mock_server ha-status")
        hp.add_argument("--admin-url", required=True)
        hargs = hp.parse_args(argv[1:])
        return asyncio.run(_ha_status(hargs.admin_url))
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    from mock_server.pair.admin_app import is_loopback

    if not is_loopback(config.bind) and not args.admin_token:
        parser.error(f"--bind {config.bind} is beyond loopback: give --admin-token for the admin API")
    logging.basicConfig(level=args.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
