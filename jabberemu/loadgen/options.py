"""jabberemu's extra Locust command-line options.

Each works on the command line, from an environment variable (``JABBEREMU_*``) and from
``locust.conf`` (Locust's config file uses the long option names without dashes). Registered through
``events.init_command_line_parser`` by the locustfile.
"""

from __future__ import annotations

from typing import Any

__all__ = ["add_options", "OPTION_NAMES"]

OPTION_NAMES = (
    "topology", "cpa_url", "xmpp_host", "node_names", "domain", "users_csv", "user_pattern", "password_pattern",
    "user_offset", "xmpp_only", "verify_tls", "lower_property", "upper_property", "default_lower",
    "default_upper", "message_rate", "presence_rate", "ping_interval", "ping_timeout", "run_seed", "drill",
    "run_dir", "server_login_rate", "recovery_margin", "progress", "loop_lag_warn_ms", "cpu_warn",
    "fail_on_verdict", "report",
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
    d.add_argument("--recovery-margin", env_var="JABBEREMU_RECOVERY_MARGIN", type=float, default=5.0,
                   help="recovery must finish within upper + this many seconds")
    d.add_argument("--progress", env_var="JABBEREMU_PROGRESS", action="store_true", default=False,
                   help="print one line per second: clients per state and node")
    d.add_argument("--loop-lag-warn-ms", env_var="JABBEREMU_LOOP_LAG_WARN_MS", type=float, default=50.0,
                   help="warn that latencies are untrustworthy above this event-loop lag p99 (ms)")
    d.add_argument("--cpu-warn", env_var="JABBEREMU_CPU_WARN", type=float, default=85.0,
                   help="warn above this generator CPU percent (per process)")
    d.add_argument("--report", env_var="JABBEREMU_REPORT", action="store_true", default=False,
                   help="build report.html and summary.json in the run directory at the end")
    d.add_argument("--fail-on-verdict", env_var="JABBEREMU_FAIL_ON_VERDICT", action="store_true", default=False,
                   help="with --report: exit code 1 when the verdict is FAIL")
