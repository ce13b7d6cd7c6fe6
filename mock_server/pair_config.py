"""Settings of the mock Presence Redundancy Group, shared by the supervisor and the node processes.

The supervisor builds one :class:`PairConfig` from its command line and hands each node process the
same JSON plus the node's index, so that both nodes provision the same users and parameters.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from mock_server.login.cost import LoginCostSettings

__all__ = ["PairConfig", "NodePorts", "LoginCostConfig", "DEFAULT_NODE_NAMES", "DEFAULT_DOMAIN"]

DEFAULT_NODE_NAMES = ("imp1.example.test", "imp2.example.test")
DEFAULT_DOMAIN = "example.test"


@dataclass(frozen=True, kw_only=True)
class NodePorts:
    """TCP ports of one node; 0 asks the kernel for a free one."""

    cpa: int = 0
    xmpp: int = 0
    peer: int = 0

    def __post_init__(self) -> None:
        for name in ("cpa", "xmpp", "peer"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value <= 65535:
                raise ValueError(f"port {name}={value!r} is not in 0..65535")


@dataclass(frozen=True, kw_only=True)
class LoginCostConfig:
    """Login admission of one node (docs/login-model.md §1, ``mock_server.login.cost``).

    Every default is our choice and together they make a login free: Cisco publishes a sustainable
    login rate per server size (the HA login profiles), not a queue, a worker count or a service time.

    Attributes:
        rate_per_s: R, logins started per second (token bucket); None = unlimited.
        burst: B, logins that may start back to back (bucket size).
        workers: C, logins in service at once; None = unlimited.
        service_ms: S, milliseconds one started login holds its worker before it answers.
        queue_limit: Q, logins that may wait; beyond it "server busy"; None = unbounded, 0 = no waiting.

    Raises:
        ValueError: a value out of range (``params.ParameterError``).
    """

    rate_per_s: float | None = None
    burst: int = 1
    workers: int | None = None
    service_ms: float = 0.0
    queue_limit: int | None = None

    def __post_init__(self) -> None:
        self.settings()  # the model's own checks

    def settings(self) -> LoginCostSettings:
        """The model's settings."""
        return LoginCostSettings(rate_per_s=self.rate_per_s, burst=self.burst, workers=self.workers,
                                 service_ms=self.service_ms, queue_limit=self.queue_limit)


@dataclass(frozen=True, kw_only=True)
class PairConfig:
    """Everything both node processes need to know.

    Attributes:
        node_names: the two IM&P node names (first = node 1).
        domain: the presence domain.
        bind: address every listener binds.
        ports: ports per node, in node order.
        users: number of users to provision (ignored when ``users_csv`` is set).
        users_csv: path of a users CSV file.
        seed: seed of user provisioning (Faker display names, contacts).
        password_pattern: password of provisioned users; ``{user}`` is replaced by the user id.
        assignment: ``balanced`` or ``active-standby``.
        contacts: roster contacts per user.
        params: ``--param`` settings as given, ``NAME=VALUE`` or ``NODE:NAME=VALUE``.
        ha_enabled: the Enable High Availability flag at start.
        login_cost: admission per node, in node order.
        lower_property / upper_property: CPA property names of the re-login limits.
        starttls: offer STARTTLS on XMPP.
        server_ping_interval_s: XEP-0199 pings to idle clients; 0 disables them.
        stanza_limit_bytes: largest stanza accepted before ``policy-violation``.
        otp_lifetime_s: lifetime of a one-time password.
        replicate_otp: replicate the Login Datastore to the peer (False emulates the OTP fault).
    """

    node_names: tuple[str, str] = DEFAULT_NODE_NAMES
    domain: str = DEFAULT_DOMAIN
    bind: str = "127.0.0.1"
    ports: tuple[NodePorts, NodePorts] = (NodePorts(), NodePorts())
    users: int = 100
    users_csv: str | None = None
    seed: int = 1
    password_pattern: str = "pass-{user}"
    assignment: str = "balanced"
    contacts: int = 5
    params: tuple[str, ...] = ()
    ha_enabled: bool = True
    login_cost: tuple[LoginCostConfig, LoginCostConfig] = (LoginCostConfig(), LoginCostConfig())
    lower_property: str = "Presence.Relogin.LowerLimit"
    upper_property: str = "Presence.Relogin.UpperLimit"
    starttls: bool = False
    server_ping_interval_s: float = 0.0
    stanza_limit_bytes: int = 65536
    otp_lifetime_s: float = 3600.0
    replicate_otp: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.node_names) != 2 or len(set(self.node_names)) != 2:
            raise ValueError(f"a Presence Redundancy Group here has two distinct nodes, not {self.node_names!r}")
        if self.assignment not in ("balanced", "active-standby"):
            raise ValueError(f"assignment must be 'balanced' or 'active-standby', not {self.assignment!r}")
        if self.users < 0:
            raise ValueError(f"--users must be >= 0, not {self.users}")
        if "{user}" not in self.password_pattern and self.users_csv is None:
            pass  # a fixed password for everyone is allowed
        if self.stanza_limit_bytes < 1024:
            raise ValueError("stanza limit must be at least 1024 bytes")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for the node processes)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PairConfig:
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: a field is missing or out of range.
        """
        d = dict(data)
        d["node_names"] = tuple(d["node_names"])
        d["ports"] = tuple(NodePorts(**p) for p in d["ports"])
        d["params"] = tuple(d.get("params", ()))
        d["login_cost"] = tuple(LoginCostConfig(**c) for c in d["login_cost"])
        return cls(**d)

    def with_ports(self, index: int, ports: NodePorts) -> PairConfig:
        """A copy with node ``index``'s ports fixed (used to restart a node on the same ports)."""
        all_ports = list(self.ports)
        all_ports[index] = ports
        return dataclasses.replace(self, ports=(all_ports[0], all_ports[1]))
