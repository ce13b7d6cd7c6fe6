"""Settings of the emulated client: small frozen objects, checked on construction.

Pure: no I/O. Everything here raises :class:`jabberemu.errors.ConfigError` on a bad value.

Sources: re-login limits and their defaults (120 s / 537 s) from "Configuration and Administration
of IM and Presence Service" 12.5(1), "Configure Redundancy and High Availability" (Client Re-Login
Lower/Upper Limit); the 30 s bind timeout from DOMAIN.md ("Binding gets no answer in 30 s -> the
client closes the stream and tries the next node"); the limit property names are our choice
(DOMAIN.md, "What a Jabber client does").
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jabberemu.errors import ConfigError

__all__ = [
    "DEFAULT_LOWER_PROPERTY",
    "DEFAULT_UPPER_PROPERTY",
    "MAX_SANE_LIMIT_S",
    "ActivityRates",
    "ClientSettings",
    "NodeAddress",
    "ReloginLimits",
    "SaslMechanism",
    "ServerPair",
    "Timeouts",
]

DEFAULT_LOWER_PROPERTY = "Presence.Relogin.LowerLimit"
DEFAULT_UPPER_PROPERTY = "Presence.Relogin.UpperLimit"
#: A limit above one day is reported as absurd (still obeyed: the client does what the server says).
MAX_SANE_LIMIT_S = 86400.0


def _finite_non_negative(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name} must be a number, not {value!r}", field=name)
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{name} must be finite and >= 0, not {value!r}", field=name)


def _positive(name: str, value: float) -> None:
    _finite_non_negative(name, value)
    if value <= 0:
        raise ConfigError(f"{name} must be > 0, not {value!r}", field=name)


@dataclass(frozen=True, kw_only=True, slots=True)
class ReloginLimits:
    """Client Re-Login Lower/Upper Limit, in seconds, as cached by a client at login.

    Args:
        lower_s: lower limit, >= 0, finite. Cisco default 120 s.
        upper_s: upper limit, >= lower_s, finite. Cisco default 537 s.

    Raises:
        ConfigError: a value is negative, NaN, infinite, or lower_s > upper_s.
    """

    lower_s: float = 120.0
    upper_s: float = 537.0

    def __post_init__(self) -> None:
        _finite_non_negative("lower_s", self.lower_s)
        _finite_non_negative("upper_s", self.upper_s)
        object.__setattr__(self, "lower_s", float(self.lower_s))
        object.__setattr__(self, "upper_s", float(self.upper_s))
        if self.lower_s > self.upper_s:
            raise ConfigError(
                f"lower_s {self.lower_s} > upper_s {self.upper_s}", field="lower_s"
            )

    @property
    def window_s(self) -> float:
        """upper_s - lower_s, the width of the re-login window in seconds."""
        return self.upper_s - self.lower_s

    @classmethod
    def from_server(
        cls,
        lower_text: str | None,
        upper_text: str | None,
        *,
        default: ReloginLimits | None = None,
    ) -> tuple[ReloginLimits, list[str]]:
        """Parse the two limit properties a CPA sent, never failing.

        Args:
            lower_text: the lower-limit property value (seconds, decimal allowed), or None if absent.
            upper_text: the upper-limit property value, or None if absent.
            default: limits used for a missing or unusable value; Cisco's 120/537 when None.

        Returns:
            ``(limits, problems)``: usable limits and a list of human-readable problems so the
            caller can name absurd values. Rules: a missing, non-numeric, NaN, infinite or negative
            value is replaced by the default's; lower > upper is swapped; a value above
            :data:`MAX_SANE_LIMIT_S` is kept but reported.
        """
        base = default if default is not None else cls()
        problems: list[str] = []

        def one(label: str, text: str | None, fallback: float) -> float:
            if text is None or not text.strip():
                problems.append(f"{label} limit missing; using {fallback:g} s")
                return fallback
            try:
                value = float(text.strip())
            except ValueError:
                problems.append(f"{label} limit {text!r} is not a number; using {fallback:g} s")
                return fallback
            if math.isnan(value) or math.isinf(value):
                problems.append(f"{label} limit {text!r} is not finite; using {fallback:g} s")
                return fallback
            if value < 0:
                problems.append(f"{label} limit {value:g} s is negative; using {fallback:g} s")
                return fallback
            if value > MAX_SANE_LIMIT_S:
                problems.append(f"{label} limit {value:g} s is above {MAX_SANE_LIMIT_S:g} s")
            return value

        lower = one("lower", lower_text, base.lower_s)
        upper = one("upper", upper_text, base.upper_s)
        if lower > upper:
            problems.append(f"lower limit {lower:g} s > upper limit {upper:g} s; swapped")
            lower, upper = upper, lower
        return cls(lower_s=lower, upper_s=upper), problems


@dataclass(frozen=True, kw_only=True, slots=True)
class NodeAddress:
    """Where one IM&P node listens.

    Args:
        name: node name as the CPA reports it (e.g. ``imp1.example.test``); unique in a pair.
        cpa_url: CPA SOAP endpoint URL (``http(s)://...``), or None (XMPP-only targets).
        xmpp_host: XMPP c2s host (IP literal or name).
        xmpp_port: XMPP c2s port, 1..65535.

    Raises:
        ConfigError: empty name or host, bad URL scheme, port out of range.
    """

    name: str
    cpa_url: str | None
    xmpp_host: str
    xmpp_port: int = 5222

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError("node name must be a non-empty string", field="name")
        if self.cpa_url is not None and not (
            isinstance(self.cpa_url, str) and self.cpa_url.startswith(("http://", "https://"))
        ):
            raise ConfigError(f"cpa_url must be http(s)://..., not {self.cpa_url!r}", field="cpa_url")
        if not isinstance(self.xmpp_host, str) or not self.xmpp_host:
            raise ConfigError("xmpp_host must be a non-empty string", field="xmpp_host")
        if (
            isinstance(self.xmpp_port, bool)
            or not isinstance(self.xmpp_port, int)
            or not 1 <= self.xmpp_port <= 65535
        ):
            raise ConfigError(f"xmpp_port out of range: {self.xmpp_port!r}", field="xmpp_port")

    @property
    def xmpp_address(self) -> str:
        """``host:port`` of the XMPP listener (IPv6 hosts in brackets), as see-other-host names it."""
        host = f"[{self.xmpp_host}]" if ":" in self.xmpp_host else self.xmpp_host
        return f"{host}:{self.xmpp_port}"


@dataclass(frozen=True, kw_only=True, slots=True)
class ServerPair:
    """A Presence Redundancy Group as the client sees it: one or two nodes and the presence domain.

    Args:
        nodes: one or two :class:`NodeAddress` with distinct names; the first is the default home.
        domain: presence domain (e.g. ``example.test``).

    Raises:
        ConfigError: no node, more than two, duplicate names, empty domain.
    """

    nodes: tuple[NodeAddress, ...]
    domain: str

    def __post_init__(self) -> None:
        if not isinstance(self.nodes, tuple) or not 1 <= len(self.nodes) <= 2:
            raise ConfigError("a pair holds a tuple of one or two nodes", field="nodes")
        if not all(isinstance(n, NodeAddress) for n in self.nodes):
            raise ConfigError("nodes must be NodeAddress values", field="nodes")
        if len({n.name for n in self.nodes}) != len(self.nodes):
            raise ConfigError("node names must be distinct", field="nodes")
        if not isinstance(self.domain, str) or not self.domain:
            raise ConfigError("domain must be a non-empty string", field="domain")

    def node(self, name: str) -> NodeAddress:
        """Return the node called ``name``.

        Raises:
            ConfigError: no such node.
        """
        for n in self.nodes:
            if n.name == name:
                return n
        raise ConfigError(f"no node named {name!r} in the pair", field="nodes")

    def peer_of(self, name: str) -> NodeAddress | None:
        """Return the other node of the pair, or None for a one-node pair.

        Raises:
            ConfigError: ``name`` is not in the pair.
        """
        self.node(name)
        for n in self.nodes:
            if n.name != name:
                return n
        return None

    def find(self, text: str) -> NodeAddress | None:
        """Find a node by name or by XMPP ``host:port`` (as a see-other-host text gives it).

        Returns:
            The node, or None when nothing matches.
        """
        text = text.strip()
        for n in self.nodes:
            if text in (n.name, n.xmpp_address, f"{n.xmpp_host}:{n.xmpp_port}"):
                return n
        return None

    @classmethod
    def from_topology(cls, data: Any) -> ServerPair:
        """Build a pair from the mock's topology JSON (already parsed).

        Args:
            data: ``{"presence_domain": D, "nodes": [{"name", "cpa_url", "xmpp_host", "xmpp_port"}, ...]}``
                (other keys are ignored; ``cpa_url`` may be absent or null: an XMPP-only node).

        Raises:
            ConfigError: one line saying what is missing or wrong, in the file's own terms (which
                node, which key, the value found); the caller names the file.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"the file holds {_json_kind(data)}, not an object with \"presence_domain\" and "
                              "\"nodes\"", field="topology")
        if "nodes" not in data:
            raise ConfigError("no \"nodes\" (the pair's one or two nodes)", field="nodes")
        raw_nodes = data["nodes"]
        if not isinstance(raw_nodes, list):
            raise ConfigError(f"\"nodes\" is {_json_kind(raw_nodes)}, not a list of one or two nodes", field="nodes")
        if not 1 <= len(raw_nodes) <= 2:
            raise ConfigError(f"\"nodes\" holds {len(raw_nodes)} nodes; a pair has one or two", field="nodes")
        nodes = tuple(_node_from_topology(i, n) for i, n in enumerate(raw_nodes, start=1))
        names = [n.name for n in nodes]
        if len(set(names)) != len(names):
            raise ConfigError(f"both nodes are named {names[0]!r}", field="nodes")
        domain = data.get("presence_domain")
        if domain is None:
            raise ConfigError("no \"presence_domain\"", field="domain")
        if not isinstance(domain, str) or not domain or any(c.isspace() or not c.isprintable() for c in domain):
            raise ConfigError(f"\"presence_domain\" must be a domain name, not {_short(domain)}", field="domain")
        return cls(nodes=nodes, domain=domain)


def _json_kind(value: object) -> str:
    """How JSON calls the type of ``value`` (for messages about a file's shape)."""
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return "a number"
    return "null" if value is None else type(value).__name__


def _short(value: object, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters (one line, whatever the file holds)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _node_from_topology(number: int, node: object) -> NodeAddress:
    """Node ``number`` (1-based) of a topology's ``nodes``.

    Raises:
        ConfigError: not an object, or a missing or bad name, address or CPA URL.
    """
    if not isinstance(node, Mapping):
        raise ConfigError(f"node {number} is {_json_kind(node)}, not an object", field="nodes")
    name = node.get("name")
    if name is None:
        raise ConfigError(f"node {number} has no \"name\"", field="name")
    if not isinstance(name, str) or not name.strip() or not name.isprintable():
        raise ConfigError(f"node {number}: \"name\" must be a node name, not {_short(name)}", field="name")
    label = f"node {number} ({name})"
    for key in ("xmpp_host", "xmpp_port"):
        if node.get(key) is None:
            raise ConfigError(f"{label} has no \"{key}\" (its XMPP address)", field=key)
    host = node["xmpp_host"]
    if not isinstance(host, str) or not host or any(c.isspace() or not c.isprintable() for c in host):
        raise ConfigError(f"{label}: \"xmpp_host\" must be a host name or address, not {_short(host)}",
                          field="xmpp_host")
    port = node["xmpp_port"]
    if isinstance(port, str) and port.isascii() and port.isdigit():
        port = int(port)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ConfigError(f"{label}: \"xmpp_port\" must be a port number 1 to 65535, not {_short(port)}",
                          field="xmpp_port")
    cpa_url = node.get("cpa_url")
    if cpa_url is not None and not (isinstance(cpa_url, str) and cpa_url.startswith(("http://", "https://"))):
        raise ConfigError(f"{label}: \"cpa_url\" must be an http(s):// URL, not {_short(cpa_url)}",
                          field="cpa_url")
    return NodeAddress(name=name, cpa_url=cpa_url, xmpp_host=host, xmpp_port=port)


@dataclass(frozen=True, kw_only=True, slots=True)
class Timeouts:
    """Deadlines the driver enforces, in seconds (all finite and > 0).

    ``bind_s`` = 30: "Binding gets no answer in 30 s -> the client closes the stream and tries the
    next node" (DOMAIN.md). ``soap_s`` = 30: one CPA SOAP call, a login waiting in a busy node's
    queue included (our choice: Cisco publishes no Jabber SOAP timeout; 30 s matches the bind
    timeout); when it expires the client closes the connection, which takes the login out of the
    node's queue (docs/login-model.md). ``ping_interval_s``/``ping_timeout_s``: XEP-0199 keepalive
    that detects a silent peer (the ``ping-timeout`` HA event class), sent ``ping_interval_s`` after the
    session came up or the last answer, rounded up to a 0.25 s grid shared by a process's clients
    (``jabberemu.xmpp.client.PING_GRID_S``); ``ping_interval_s`` = 0 sends no ping at all (a silent
    peer is then noticed only by TCP).
    """

    soap_s: float = 30.0
    connect_s: float = 10.0
    auth_s: float = 10.0
    bind_s: float = 30.0
    ping_interval_s: float = 60.0
    ping_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        for name in ("soap_s", "connect_s", "auth_s", "bind_s", "ping_timeout_s"):
            _positive(name, getattr(self, name))
        _finite_non_negative("ping_interval_s", self.ping_interval_s)


@dataclass(frozen=True, kw_only=True, slots=True)
class ActivityRates:
    """User activity once connected, per client, as Poisson rates (0 = none).

    Args:
        presence_per_min: presence changes per minute.
        messages_per_min: 1:1 messages to roster contacts per minute.
    """

    presence_per_min: float = 0.0
    messages_per_min: float = 0.0

    def __post_init__(self) -> None:
        _finite_non_negative("presence_per_min", self.presence_per_min)
        _finite_non_negative("messages_per_min", self.messages_per_min)


class SaslMechanism(enum.Enum):
    """SASL mechanisms the emulated client uses (wire names as values)."""

    CISCO_VTG_TOKEN = "CISCO-VTG-TOKEN"
    PLAIN = "PLAIN"
    SCRAM_SHA_1 = "SCRAM-SHA-1"
    SCRAM_SHA_256 = "SCRAM-SHA-256"


@dataclass(frozen=True, kw_only=True, slots=True)
class ClientSettings:
    """How every emulated client of a run behaves.

    Args:
        xmpp_only: True for servers without a CPA (Prosody, ejabberd): no SOAP states, SASL with
            the password, limits from ``default_limits``.
        verify_tls: verify the server certificate (on for real targets; off for the mock).
        lower_limit_property: CPA ``get-all-config`` property holding the lower limit.
        upper_limit_property: likewise for the upper limit.
        default_limits: limits used when the server sends none (and always in XMPP-only mode).
        timeouts: operation deadlines.
        activity: user activity rates once connected.
        password_mechanism: SASL mechanism with the password in XMPP-only mode (PLAIN or SCRAM-*).

    Raises:
        ConfigError: empty property names, a non-password ``password_mechanism``, wrong types.
    """

    xmpp_only: bool = False
    verify_tls: bool = True
    lower_limit_property: str = DEFAULT_LOWER_PROPERTY
    upper_limit_property: str = DEFAULT_UPPER_PROPERTY
    default_limits: ReloginLimits = field(default_factory=ReloginLimits)
    timeouts: Timeouts = field(default_factory=Timeouts)
    activity: ActivityRates = field(default_factory=ActivityRates)
    password_mechanism: SaslMechanism = SaslMechanism.PLAIN

    def __post_init__(self) -> None:
        if not isinstance(self.xmpp_only, bool) or not isinstance(self.verify_tls, bool):
            raise ConfigError("xmpp_only and verify_tls must be bool")
        for name in ("lower_limit_property", "upper_limit_property"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"{name} must be a non-empty string", field=name)
        if not isinstance(self.default_limits, ReloginLimits):
            raise ConfigError("default_limits must be ReloginLimits", field="default_limits")
        if not isinstance(self.timeouts, Timeouts):
            raise ConfigError("timeouts must be Timeouts", field="timeouts")
        if not isinstance(self.activity, ActivityRates):
            raise ConfigError("activity must be ActivityRates", field="activity")
        if (
            not isinstance(self.password_mechanism, SaslMechanism)
            or self.password_mechanism is SaslMechanism.CISCO_VTG_TOKEN
        ):
            raise ConfigError(
                "password_mechanism must be PLAIN or SCRAM-*", field="password_mechanism"
            )
