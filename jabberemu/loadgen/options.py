"""jabberemu's extra Locust command-line options.

Each works on the command line, from an environment variable (``JABBEREMU_*``) and from
``locust.conf`` (Locust's config file uses the long option names without dashes). Registered through
``events.init_command_line_parser`` by the locustfile.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from typing import Any

from jabberemu.config import ActivityRates, ClientSettings, NodeAddress, ReloginLimits, ServerPair, Timeouts
from jabberemu.errors import ConfigError
from jabberemu.loadgen.users_csv import Assignment, UserSpec, home_node, load_users_csv, localpart_problem
from jabberemu.throttle.planner import DEFAULT_MAX_WAIT_P99_S
from jabberemu.xmpp.source import parse_source_addresses

__all__ = [
    "OPTION_NAMES",
    "Assignment",
    "Target",
    "UserSpec",
    "add_options",
    "check_options",
    "home_node",
    "load_topology",
    "load_users_csv",
    "option_problems",
    "settings_from_options",
    "target_from_options",
]


OPTION_NAMES = (
    "topology", "cpa_url", "xmpp_host", "node_names", "domain", "users_csv", "user_pattern", "password_pattern",
    "user_offset", "xmpp_only", "verify_tls", "lower_property", "upper_property", "default_lower",
    "default_upper", "message_rate", "presence_rate", "ping_interval", "ping_timeout", "soap_timeout", "run_seed",
    "drill",
    "run_dir", "server_login_rate", "max_login_wait", "recovery_margin", "progress", "loop_lag_warn_ms", "cpu_warn",
    "fail_on_verdict", "report", "assignment", "prometheus_port", "prometheus_host", "record_detail",
    "record_rotate_mb", "drill_every", "drill_node", "source_addresses",
)


def add_options(parser: Any) -> None:
    """Add jabberemu's options to Locust's (configargparse) parser."""
    g = parser.add_argument_group("jabberemu target")
    g.add_argument("--topology", env_var="JABBEREMU_TOPOLOGY", default="",
                   help="topology JSON of the IM&P pair (as written by 'jabberemu mock --topology-out')")
    g.add_argument("--cpa-url", env_var="JABBEREMU_CPA_URL", default="",
                   help="real pair: CPA URLs of node 1 and node 2, comma separated "
                   "(https://imp1:8443/EPASSoap/service/v80,...)")
    g.add_argument("--xmpp-host", env_var="JABBEREMU_XMPP_HOST", default="",
                   help="real pair: XMPP host:port of node 1 and node 2, comma separated")
    g.add_argument("--node-names", env_var="JABBEREMU_NODE_NAMES", default="",
                   help="real pair: node names, comma separated (default: the XMPP hosts)")
    g.add_argument("--domain", env_var="JABBEREMU_DOMAIN", default="", help="presence domain (real pair)")
    g.add_argument("--verify-tls", env_var="JABBEREMU_VERIFY_TLS", default="auto", choices=("auto", "on", "off"),
                   help="verify server certificates: auto = on for real targets, off for the bundled mock")
    g.add_argument("--xmpp-only", env_var="JABBEREMU_XMPP_ONLY", action="store_true", default=False,
                   help="no CPA: XMPP SASL with the password (Prosody, ejabberd); limits from --default-lower/upper")
    u = parser.add_argument_group("jabberemu users")
    u.add_argument("--users-csv", env_var="JABBEREMU_USERS_CSV", default="",
                   help="CSV of user id, password[, display name[, home node]] (UTF-8, BOM and header row "
                   "optional; spaces around unquoted values are dropped, quoted values kept as written; rows "
                   "without a home node are homed as --assignment says)")
    u.add_argument("--user-pattern", env_var="JABBEREMU_USER_PATTERN", default="user{n:05d}",
                   help="user ids when no CSV is given; {n} counts from 1 (default %(default)s)")
    u.add_argument("--password-pattern", env_var="JABBEREMU_PASSWORD_PATTERN", default="pass-{user}",
                   help="password of each user; {user} is the user id (default %(default)s)")
    u.add_argument("--assignment", env_var="JABBEREMU_ASSIGNMENT", default="auto",
                   choices=[a.value for a in Assignment],
                   help="home node of pattern users and of --users-csv rows without one: balanced (user n on "
                   "node (n-1) mod 2), active-standby (all on node 1), auto = ask the mock's admin API, else "
                   "balanced (default %(default)s)")
    u.add_argument("--user-offset", env_var="JABBEREMU_USER_OFFSET", type=int, default=0,
                   help="skip this many users (several generators on one user base)")
    c = parser.add_argument_group("jabberemu client behaviour")
    c.add_argument("--lower-property", env_var="JABBEREMU_LOWER_PROPERTY", default="Presence.Relogin.LowerLimit",
                   help="CPA get-all-config property of Client Re-Login Lower Limit")
    c.add_argument("--upper-property", env_var="JABBEREMU_UPPER_PROPERTY", default="Presence.Relogin.UpperLimit",
                   help="CPA get-all-config property of Client Re-Login Upper Limit")
    c.add_argument("--default-lower", env_var="JABBEREMU_DEFAULT_LOWER", type=float, default=120.0,
                   help="lower limit (s) when the server sends none, and in XMPP-only mode")
    c.add_argument("--default-upper", env_var="JABBEREMU_DEFAULT_UPPER", type=float, default=537.0,
                   help="upper limit (s) when the server sends none, and in XMPP-only mode")
    c.add_argument("--message-rate", env_var="JABBEREMU_MESSAGE_RATE", type=float, default=0.0,
                   help="1:1 messages per second per client to roster contacts (default 0)")
    c.add_argument("--presence-rate", env_var="JABBEREMU_PRESENCE_RATE", type=float, default=0.0,
                   help="presence changes per second per client (default 0)")
    c.add_argument("--ping-interval", env_var="JABBEREMU_PING_INTERVAL", type=float, default=60.0,
                   help="XEP-0199 ping of the server S seconds after the last answer (rounded up to a "
                   "0.25 s grid a process's clients share); 0 = off")
    c.add_argument("--ping-timeout", env_var="JABBEREMU_PING_TIMEOUT", type=float, default=30.0,
                   help="a ping unanswered this long is an HA event (ping-timeout)")
    c.add_argument("--soap-timeout", env_var="JABBEREMU_SOAP_TIMEOUT", type=float, default=Timeouts().soap_s,
                   help="seconds a CPA SOAP call may take before the client gives up on that node and moves on "
                   "(a login waiting in a busy node's queue answers late; default %(default)s)")
    c.add_argument("--run-seed", env_var="JABBEREMU_RUN_SEED", type=int, default=1,
                   help="seed of every client's random waits (reproducible runs)")
    d = parser.add_argument_group("jabberemu HA drill and report")
    d.add_argument("--drill", env_var="JABBEREMU_DRILL", default="",
                   help="actions on the load clock, comma separated ACTION@SECONDS: failover:NODE, fallback:NODE, "
                   "service-stop:NODE:SERVICE, service-start:NODE:SERVICE, kill:NODE, restart:NODE, partition, "
                   "heal, recover, mark:TEXT (record only: an operator action on a real pair), stop")
    d.add_argument("--drill-every", env_var="JABBEREMU_DRILL_EVERY", type=float, default=0.0,
                   help="soak: fail node 1 (--drill-node) over every S seconds after every client is signed in, "
                   "fall it back S seconds later, and so on until -t (needs -t; each wave gets S seconds; the run "
                   "is judged as a soak: drift checks). Default 0 = off")
    d.add_argument("--drill-node", env_var="JABBEREMU_DRILL_NODE", default="",
                   help="the node --drill-every fails over (default: the pair's first node)")
    d.add_argument("--source-addresses", env_var="JABBEREMU_SOURCE_ADDRESSES", default="",
                   help="local IP addresses the XMPP connections come from, in turn (e.g. 127.0.0.1,127.0.0.2): "
                        "more clients per node than one address has ephemeral ports (default: the kernel's choice)")
    d.add_argument("--run-dir", env_var="JABBEREMU_RUN_DIR", default="",
                   help="where run data and the report go (default reports/<run-id>)")
    d.add_argument("--server-login-rate", env_var="JABBEREMU_SERVER_LOGIN_RATE", type=float, default=0.0,
                   help="declared server re-login capacity per node (logins/s) for the verdict")
    d.add_argument("--max-login-wait", env_var="JABBEREMU_MAX_LOGIN_WAIT", type=float, default=DEFAULT_MAX_WAIT_P99_S,
                   help="a wave whose p99 CPA login wait (queue included, as the clients measure it) exceeds "
                   "this many seconds fails the verdict (default %(default)s)")
    d.add_argument("--recovery-margin", env_var="JABBEREMU_RECOVERY_MARGIN", type=float, default=5.0,
                   help="recovery must finish within upper + this many seconds")
    d.add_argument("--progress", env_var="JABBEREMU_PROGRESS", action="store_true", default=False,
                   help="print one line per second: clients per state and node")
    d.add_argument("--loop-lag-warn-ms", env_var="JABBEREMU_LOOP_LAG_WARN_MS", type=float, default=50.0,
                   help="a probe of the event loop later than this (ms) is a stall (default %(default)s): the live "
                   "saturation warning and the report (report.health) judge the share of time stalled")
    d.add_argument("--cpu-warn", env_var="JABBEREMU_CPU_WARN", type=float, default=85.0,
                   help="warn above this generator CPU percent (per process)")
    d.add_argument("--report", env_var="JABBEREMU_REPORT", action="store_true", default=False,
                   help="build report.html and summary.json in the run directory at the end; the run is then "
                   "judged: its exit status is the verdict's (0, or with --fail-on-verdict 1 FAIL / 3 "
                   "INCONCLUSIVE), not Locust's 1 for any failed request")
    d.add_argument("--fail-on-verdict", env_var="JABBEREMU_FAIL_ON_VERDICT", action="store_true", default=False,
                   help="with --report: exit code 1 when the verdict is FAIL, 3 when it is INCONCLUSIVE")
    r = parser.add_argument_group("jabberemu run data")
    r.add_argument("--record-detail", env_var="JABBEREMU_RECORD_DETAIL", default="summary", choices=("full", "summary"),
                   help="summary (default): steady-state requests (pings, message latency) counted per second, "
                   "type, name and node with a latency histogram (percentiles within 1%%); logins, re-logins, "
                   "waits, states and HA events always whole. full: one record per request")
    r.add_argument("--record-rotate-mb", env_var="JABBEREMU_RECORD_ROTATE_MB", type=float, default=32.0,
                   help="rotate each run-data file at this many MiB into a gzip segment (default %(default)s; "
                   "0 = never)")
    m = parser.add_argument_group("jabberemu live metrics")
    m.add_argument("--prometheus-port", env_var="JABBEREMU_PROMETHEUS_PORT", type=int, default=None,
                   help="serve Prometheus metrics on this port of the master (or local runner); 0 = a free port "
                   "(logged); default off")
    m.add_argument("--prometheus-host", env_var="JABBEREMU_PROMETHEUS_HOST", default="127.0.0.1",
                   help="address the Prometheus endpoint binds (default %(default)s)")


# -- from parsed options to the target, the client settings and the users ----------------------------


@dataclass(frozen=True, kw_only=True)
class Target:
    """The pair under test, as the options describe it.

    Attributes:
        pair: the nodes and the presence domain.
        admin_url: the mock's admin API ('' on a real pair).
        is_mock: True when it came from a ``--topology`` file of the bundled mock.
    """

    pair: ServerPair
    admin_url: str
    is_mock: bool

    def __post_init__(self) -> None:
        if not isinstance(self.pair, ServerPair):
            raise ConfigError("a target needs a ServerPair", field="topology")
        if self.admin_url and not self.admin_url.startswith(("http://", "https://")):
            raise ConfigError(f"admin_url {self.admin_url!r} is not an http(s) URL", field="topology")


def load_topology(path: str) -> tuple[ServerPair, str]:
    """Read a ``--topology`` file (as ``jabberemu mock --topology-out`` writes it).

    Returns:
        The pair and the mock's admin URL ('' when the file has none).

    Raises:
        ConfigError: one line naming the file and what is wrong: unreadable, not UTF-8, empty, not
            JSON, not an object, no nodes, a node without its name or XMPP address, a bad URL ...
    """
    where = f"--topology {path}"
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise ConfigError(f"{where}: {exc.strerror or exc}", field="topology") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{where}: not UTF-8 text (byte {raw[exc.start]:#04x} at offset {exc.start})",
                          field="topology") from None
    if not text.strip():
        raise ConfigError(f"{where}: the file is empty (write it with 'jabberemu mock --topology-out FILE')",
                          field="topology")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where}: not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})",
                          field="topology") from None
    except RecursionError:
        raise ConfigError(f"{where}: not a topology (JSON nested too deeply)", field="topology") from None
    try:
        pair = ServerPair.from_topology(data)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}", field=exc.field) from None
    admin_url = data.get("admin_url")
    if admin_url is None or admin_url == "":
        return pair, ""
    if not isinstance(admin_url, str) or not admin_url.startswith(("http://", "https://")) or \
            not admin_url.isprintable() or " " in admin_url:
        shown = repr(admin_url) if len(repr(admin_url)) <= 60 else repr(admin_url)[:57] + "..."
        raise ConfigError(f"{where}: \"admin_url\" must be an http(s):// URL, not {shown}", field="topology")
    return pair, admin_url


def target_from_options(opts: Any) -> Target:
    """The target from ``--topology`` or ``--cpa-url``/``--xmpp-host``.

    Raises:
        ConfigError: no target given, both kinds given, an unreadable or malformed topology (see
            :func:`load_topology`), nodes without a CPA URL in CPA mode, or mismatched lists; in the
            options' own names.
    """
    if opts.topology:
        if opts.xmpp_host or opts.cpa_url:
            raise ConfigError("give --topology FILE (the bundled mock) or --xmpp-host/--cpa-url (a real pair), "
                              "not both", field="topology")
        pair, admin_url = load_topology(opts.topology)
        if not opts.xmpp_only:
            for i, node in enumerate(pair.nodes, start=1):
                if node.cpa_url is None:
                    raise ConfigError(f"--topology {opts.topology}: node {i} ({node.name}) has no \"cpa_url\" "
                                      "(needed unless --xmpp-only)", field="cpa_url")
        return Target(pair=pair, admin_url=admin_url, is_mock=True)
    hosts = [h.strip() for h in opts.xmpp_host.split(",") if h.strip()]
    if not hosts:
        raise ConfigError("no target: give --topology FILE (the bundled mock), or --xmpp-host (and --cpa-url) "
                          "of a real pair", field="topology")
    if len(hosts) > 2:
        raise ConfigError(f"--xmpp-host gives {len(hosts)} nodes; a pair has one or two", field="xmpp_host")
    cpas = [u.strip() for u in opts.cpa_url.split(",") if u.strip()]
    names = [n.strip() for n in opts.node_names.split(",") if n.strip()]
    if not opts.xmpp_only and len(cpas) != len(hosts):
        raise ConfigError("--cpa-url needs one URL per --xmpp-host node (or use --xmpp-only)", field="cpa_url")
    if len(cpas) > len(hosts):
        raise ConfigError(f"--cpa-url gives {len(cpas)} URLs for {len(hosts)} --xmpp-host node(s)", field="cpa_url")
    if len(names) > len(hosts):
        raise ConfigError(f"--node-names gives {len(names)} names for {len(hosts)} --xmpp-host node(s)",
                          field="node_names")
    for url in cpas:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"--cpa-url {url!r} is not an http(s):// URL", field="cpa_url")
    nodes = []
    for i, hp in enumerate(hosts):
        host, _, port = hp.rpartition(":") if ":" in hp else (hp, "", "5222")
        try:
            port_no = int(port or 5222)
        except ValueError:
            raise ConfigError(f"--xmpp-host {hp!r}: port {port!r} is not a number", field="xmpp_host") from None
        if not host:
            raise ConfigError(f"--xmpp-host {hp!r}: no host before the port", field="xmpp_host")
        if not 1 <= port_no <= 65535:
            raise ConfigError(f"--xmpp-host {hp!r}: port must be 1 to 65535, not {port_no}", field="xmpp_host")
        nodes.append(NodeAddress(name=names[i] if i < len(names) else host, cpa_url=cpas[i] if i < len(cpas) else None,
                                 xmpp_host=host, xmpp_port=port_no))
    if len(nodes) == 2 and nodes[0].name == nodes[1].name:
        raise ConfigError(f"both nodes are named {nodes[0].name!r}: give --node-names", field="node_names")
    return Target(pair=ServerPair(nodes=tuple(nodes), domain=opts.domain or nodes[0].xmpp_host), admin_url="",
                  is_mock=False)


def settings_from_options(opts: Any, is_mock: bool) -> ClientSettings:
    """The clients' settings from the options (TLS verification: ``auto`` = off for the mock only).

    Raises:
        ConfigError: a value out of range (negative limits, lower > upper ...).
    """
    verify = {"on": True, "off": False}.get(opts.verify_tls, not is_mock)
    return ClientSettings(
        xmpp_only=bool(opts.xmpp_only),
        verify_tls=verify,
        lower_limit_property=opts.lower_property,
        upper_limit_property=opts.upper_property,
        default_limits=ReloginLimits(lower_s=opts.default_lower, upper_s=opts.default_upper),
        timeouts=replace(Timeouts(), soap_s=opts.soap_timeout, ping_interval_s=opts.ping_interval,
                         ping_timeout_s=opts.ping_timeout),
        activity=ActivityRates(presence_per_min=opts.presence_rate * 60.0, messages_per_min=opts.message_rate * 60.0),
    )


# -- option checks: every problem in the option's own name and unit ---------------------------------

#: (attribute, option, unit, lowest allowed, lowest excluded, note) of every numeric option
_NUMBERS: tuple[tuple[str, str, str, float, bool, str], ...] = (
    ("default_lower", "--default-lower", "s", 0.0, False, ""),
    ("default_upper", "--default-upper", "s", 0.0, False, ""),
    ("message_rate", "--message-rate", "messages/s per client", 0.0, False, ""),
    ("presence_rate", "--presence-rate", "presence changes/s per client", 0.0, False, ""),
    ("ping_interval", "--ping-interval", "s", 0.0, False, " (0 = off)"),
    ("ping_timeout", "--ping-timeout", "s", 0.0, True, ""),
    ("soap_timeout", "--soap-timeout", "s", 0.0, True, ""),
    ("server_login_rate", "--server-login-rate", "logins/s", 0.0, False, " (0 = not declared)"),
    ("max_login_wait", "--max-login-wait", "s", 0.0, True, ""),
    ("recovery_margin", "--recovery-margin", "s", 0.0, False, ""),
    ("loop_lag_warn_ms", "--loop-lag-warn-ms", "ms", 0.0, False, " (0 = warn always)"),
    ("cpu_warn", "--cpu-warn", "% CPU", 0.0, False, " (0 = warn always)"),
    ("record_rotate_mb", "--record-rotate-mb", "MiB", 0.0, False, " (0 = never)"),
    ("drill_every", "--drill-every", "s", 0.0, False, " (0 = off)"),
)


def _number_problem(value: float, option: str, unit: str, low: float, exclusive: bool, note: str) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return f"{option} must be a finite number ({unit}), not {value}"
    if value < low or (exclusive and value == low):
        return f"{option} must be {'>' if exclusive else '>='} {low:g} {unit}{note}, not {value:g}"
    return None


def _pattern_problems(opts: Any) -> list[str]:
    """``--user-pattern``/``--password-pattern``: they format, and give distinct, valid ids."""
    pattern, password = opts.user_pattern, opts.password_pattern
    try:
        first, second = pattern.format(n=1), pattern.format(n=2)
    except (KeyError, IndexError, ValueError, AttributeError, TypeError) as exc:
        return [f"--user-pattern {pattern!r} does not format ({type(exc).__name__}: {exc}); write {{n}} for the "
                "user number, e.g. user{n:05d}"]
    problems = []
    if first == second:
        problems.append(f"--user-pattern {pattern!r} gives every user the id {first!r}; put {{n}} in it, "
                        "e.g. user{n:05d}")
    why = localpart_problem(first) if first else "empty"
    if why:
        problems.append(f"--user-pattern {pattern!r} gives the user id {first!r}, not a JID local part ({why})")
    try:
        secret = password.format(user=first)
    except (KeyError, IndexError, ValueError, AttributeError, TypeError) as exc:
        problems.append(f"--password-pattern does not format ({type(exc).__name__}: {exc}); write {{user}} for "
                        "the user id, e.g. pass-{user}")
    else:
        if not secret:
            problems.append("--password-pattern gives an empty password")
    return problems


def option_problems(opts: Any) -> list[str]:
    """Every problem with jabberemu's options and Locust's ``-u``/``-r``, each in the option's own
    name and unit (e.g. ``--default-upper (10 s) must be >= --default-lower (30 s)``); [] when fine.

    Files (``--topology``, ``--users-csv``) are read later, by :func:`target_from_options` and
    :func:`load_users_csv`. Locust refuses a non-positive ``-r`` itself; a negative ``-u`` it accepts and
    then fails in the middle of the run, so it is checked here.
    """
    problems: list[str] = []
    users = getattr(opts, "num_users", None)
    if users is not None and users < 1:
        problems.append(f"-u must be at least 1, not {users}")
    rate = getattr(opts, "spawn_rate", None)
    if rate is not None:
        problem = _number_problem(rate, "-r", "users/s", 0.0, True, "")
        if problem:
            problems.append(problem)
    bad = set()
    for name, option, unit, low, exclusive, note in _NUMBERS:
        problem = _number_problem(getattr(opts, name), option, unit, low, exclusive, note)
        if problem:
            problems.append(problem)
            bad.add(name)
    if not bad & {"default_lower", "default_upper"} and opts.default_upper < opts.default_lower:
        problems.append(f"--default-upper ({opts.default_upper:g} s) must be >= --default-lower "
                        f"({opts.default_lower:g} s)")
    if opts.user_offset < 0:
        problems.append(f"--user-offset must be >= 0, not {opts.user_offset}")
    for name, option in (("lower_property", "--lower-property"), ("upper_property", "--upper-property")):
        if not str(getattr(opts, name)).strip():
            problems.append(f"{option} must name a CPA get-all-config property, not {getattr(opts, name)!r}")
    if not opts.users_csv:
        problems += _pattern_problems(opts)
    if opts.fail_on_verdict and not opts.report:
        problems.append("--fail-on-verdict needs --report (the verdict is the report's)")
    if opts.source_addresses:
        try:
            parse_source_addresses(opts.source_addresses)
        except ConfigError as exc:
            problems.append(str(exc))
    return problems


def check_options(opts: Any) -> None:
    """Refuse bad options before anything starts.

    Raises:
        ConfigError: every problem of :func:`option_problems`, joined with "; " (one line).
    """
    problems = option_problems(opts)
    if problems:
        raise ConfigError("; ".join(problems))
