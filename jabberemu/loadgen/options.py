"""jabberemu's extra Locust command-line options.

Each works on the command line, from an environment variable (``JABBEREMU_*``) and from
``locust.conf`` (Locust's config file uses the long option names without dashes). Registered through
``events.init_command_line_parser`` by the locustfile.
"""

from __future__ import annotations

import csv
import enum
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from jabberemu.config import ActivityRates, ClientSettings, NodeAddress, ReloginLimits, ServerPair, Timeouts
from jabberemu.errors import ConfigError
from jabberemu.throttle.planner import DEFAULT_MAX_WAIT_P99_S

__all__ = [
    "OPTION_NAMES",
    "Assignment",
    "Target",
    "UserSpec",
    "add_options",
    "home_node",
    "load_users_csv",
    "settings_from_options",
    "target_from_options",
]


class Assignment(enum.Enum):
    """How the users of ``--user-pattern`` are homed on the pair (the mock's ``--assignment``).

    Source: Configuration and Administration of IM and Presence Service 12.5(1), "Configure
    Redundancy and High Availability": Balanced spreads users over both nodes, Active-Standby homes
    every user on the first node.
    """

    AUTO = "auto"
    BALANCED = "balanced"
    ACTIVE_STANDBY = "active-standby"

OPTION_NAMES = (
    "topology", "cpa_url", "xmpp_host", "node_names", "domain", "users_csv", "user_pattern", "password_pattern",
    "user_offset", "xmpp_only", "verify_tls", "lower_property", "upper_property", "default_lower",
    "default_upper", "message_rate", "presence_rate", "ping_interval", "ping_timeout", "soap_timeout", "run_seed",
    "drill",
    "run_dir", "server_login_rate", "max_login_wait", "recovery_margin", "progress", "loop_lag_warn_ms", "cpu_warn",
    "fail_on_verdict", "report", "assignment", "prometheus_port", "prometheus_host",
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
                   help="CSV of user id, password[, display name[, home node]]")
    u.add_argument("--user-pattern", env_var="JABBEREMU_USER_PATTERN", default="user{n:05d}",
                   help="user ids when no CSV is given; {n} counts from 1 (default %(default)s)")
    u.add_argument("--password-pattern", env_var="JABBEREMU_PASSWORD_PATTERN", default="pass-{user}",
                   help="password of each user; {user} is the user id (default %(default)s)")
    u.add_argument("--assignment", env_var="JABBEREMU_ASSIGNMENT", default="auto",
                   choices=[a.value for a in Assignment],
                   help="home node of pattern users: balanced (user n on node (n-1) mod 2), active-standby (all "
                   "on node 1), auto = ask the mock's admin API, else balanced (default %(default)s)")
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
                   help="XEP-0199 ping of the server every S seconds; 0 = off")
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


def target_from_options(opts: Any) -> Target:
    """The target from ``--topology`` or ``--cpa-url``/``--xmpp-host``.

    Raises:
        ConfigError: no target given, an unreadable or malformed topology, or mismatched lists.
    """
    if opts.topology:
        try:
            data = json.loads(Path(opts.topology).read_text(encoding="utf-8"))
            pair = ServerPair.from_topology(data)
        except OSError as exc:
            raise ConfigError(f"--topology {opts.topology}: {exc.strerror or exc}", field="topology") from exc
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"--topology {opts.topology}: not a topology JSON ({exc})", field="topology") from exc
        return Target(pair=pair, admin_url=str(data.get("admin_url") or ""), is_mock=True)
    hosts = [h.strip() for h in opts.xmpp_host.split(",") if h.strip()]
    if not hosts:
        raise ConfigError("no target: give --topology FILE (the bundled mock), or --xmpp-host (and --cpa-url) "
                          "of a real pair", field="topology")
    cpas = [u.strip() for u in opts.cpa_url.split(",") if u.strip()]
    names = [n.strip() for n in opts.node_names.split(",") if n.strip()]
    if not opts.xmpp_only and len(cpas) != len(hosts):
        raise ConfigError("--cpa-url needs one URL per --xmpp-host node (or use --xmpp-only)", field="cpa_url")
    nodes = []
    for i, hp in enumerate(hosts):
        host, _, port = hp.rpartition(":") if ":" in hp else (hp, "", "5222")
        try:
            port_no = int(port or 5222)
        except ValueError:
            raise ConfigError(f"--xmpp-host {hp!r}: port {port!r} is not a number", field="xmpp_host") from None
        nodes.append(NodeAddress(name=names[i] if i < len(names) else host, cpa_url=cpas[i] if i < len(cpas) else None,
                                 xmpp_host=host, xmpp_port=port_no))
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
                         ping_timeout_s=opts.ping_timeout)
        if opts.ping_interval > 0 else replace(Timeouts(), soap_s=opts.soap_timeout),
        activity=ActivityRates(presence_per_min=opts.presence_rate * 60.0, messages_per_min=opts.message_rate * 60.0),
    )


@dataclass(frozen=True, kw_only=True)
class UserSpec:
    """Who one emulated client is.

    Attributes:
        index: 0-based position in the run's user list (unique across workers).
        user_id: the user id; password: its password (never logged).
        home: name of its home node, or None for the pair's first node.
    """

    index: int
    user_id: str
    password: str
    home: str | None

    def __post_init__(self) -> None:
        if self.index < 0 or not self.user_id:
            raise ConfigError(f"bad user #{self.index}: {self.user_id!r}", field="users")

    def __repr__(self) -> str:  # never show the password
        return f"UserSpec(index={self.index}, user_id={self.user_id!r}, home={self.home!r})"


def home_node(index: int, nodes: tuple[str, ...], assignment: Assignment) -> str:
    """The home of pattern user ``index`` (0-based), as the mock provisions it.

    Args:
        index: 0-based user index (user id number - 1).
        nodes: node names of the pair, first = the Active-Standby active node.
        assignment: BALANCED or ACTIVE_STANDBY (AUTO must be resolved first).
    """
    if assignment is Assignment.ACTIVE_STANDBY:
        return nodes[0]
    return nodes[index % len(nodes)]


def load_users_csv(path: str) -> list[UserSpec]:
    """Rows of user id, password[, display name[, home node]]; a header row is skipped.

    Raises:
        ConfigError: unreadable file or a row without a user id or a password (the line is named).
    """
    out: list[UserSpec] = []
    try:
        with open(path, newline="", encoding="utf-8") as f:
            for line_no, row in enumerate(csv.reader(f), start=1):
                if not row or not any(c.strip() for c in row):
                    continue
                if row[0].strip().lower() in ("user", "userid", "user_id", "user id", "username"):
                    continue
                if len(row) < 2 or not row[0].strip() or not row[1]:
                    raise ConfigError(f"--users-csv {path}, line {line_no}: need 'user id,password', got "
                                      f"{len(row)} field(s)", field="users_csv")
                home = row[3].strip() if len(row) > 3 and row[3].strip() else None
                out.append(UserSpec(index=len(out), user_id=row[0].strip(), password=row[1], home=home))
    except OSError as exc:
        raise ConfigError(f"--users-csv {path}: {exc.strerror or exc}", field="users_csv") from exc
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"--users-csv {path}: not a UTF-8 CSV ({exc})", field="users_csv") from exc
    if not out:
        raise ConfigError(f"--users-csv {path}: no users", field="users_csv")
    return out
