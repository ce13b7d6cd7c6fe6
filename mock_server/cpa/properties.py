"""What ``get-all-config`` tells a client: the system properties (home node, its peer, where to
reach each, the re-login limits) and the user properties. Pure.

The property names are the contract of docs/ARCHITECTURE.md ("CPA SOAP wire contract"); the limits
travelling in ``get-all-config`` under settable names is our choice (DOMAIN.md, "What a Jabber
client does").
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DEFAULT_LOWER_LIMIT_PROPERTY",
    "DEFAULT_UPPER_LIMIT_PROPERTY",
    "PROP_BACKUP",
    "PROP_DOMAIN",
    "PROP_PRIMARY",
    "NodeContact",
    "format_seconds",
    "system_config",
    "user_config",
]

PROP_DOMAIN = "Presence.Domain"
PROP_PRIMARY = "Presence.PrimaryServer"
PROP_BACKUP = "Presence.BackupServer"
#: Our choice (DOMAIN.md, "What a Jabber client does"): default property names of the re-login limits.
DEFAULT_LOWER_LIMIT_PROPERTY = "Presence.Relogin.LowerLimit"
DEFAULT_UPPER_LIMIT_PROPERTY = "Presence.Relogin.UpperLimit"


@dataclass(frozen=True, kw_only=True)
class NodeContact:
    """How a client reaches one node: the values of ``get-all-config``'s server properties."""

    name: str
    xmpp_host: str
    xmpp_port: int
    cpa_url: str

    def __post_init__(self) -> None:
        if not self.name or not self.xmpp_host or not self.cpa_url:
            raise ValueError("NodeContact needs name, xmpp_host and cpa_url")
        if not 0 < self.xmpp_port < 65536:
            raise ValueError(f"xmpp_port out of range: {self.xmpp_port}")


def format_seconds(value_s: float) -> str:
    """Format a duration in seconds as a plain decimal without exponent or trailing zeros.

    Args:
        value_s: seconds, >= 0.

    Returns:
        E.g. ``"120"``, ``"0.25"``.
    """
    text = f"{value_s:.6f}".rstrip("0").rstrip(".")
    return text or "0"


def system_config(
    *,
    domain: str,
    primary: NodeContact,
    backup: NodeContact | None,
    lower_limit_s: float,
    upper_limit_s: float,
    lower_limit_property: str = DEFAULT_LOWER_LIMIT_PROPERTY,
    upper_limit_property: str = DEFAULT_UPPER_LIMIT_PROPERTY,
) -> dict[str, str]:
    """Build the ``get-all-config`` system properties of the contract, in a stable order.

    The re-login limits travelling in ``get-all-config`` is our choice (DOMAIN.md: Cisco does not
    publish the field); the values are the SRM "Client Re-Login Lower/Upper Limit" in seconds.

    Args:
        domain: presence domain.
        primary: the user's home node.
        backup: its peer, or None in a single-node group (backup properties are then omitted).
        lower_limit_s, upper_limit_s: the re-login limits (seconds, 0 <= lower <= upper).
        lower_limit_property, upper_limit_property: property names for the two limits.

    Returns:
        Property name -> value.

    Raises:
        ValueError: limits out of order or negative.
    """
    if not 0 <= lower_limit_s <= upper_limit_s:
        raise ValueError(f"re-login limits must satisfy 0 <= lower <= upper: {lower_limit_s}, {upper_limit_s}")
    props = {PROP_DOMAIN: domain, PROP_PRIMARY: primary.name}
    if backup is not None:
        props[PROP_BACKUP] = backup.name
    for prefix, node in ((PROP_PRIMARY, primary), (PROP_BACKUP, backup)):
        if node is None:
            continue
        props[f"{prefix}.XmppHost"] = node.xmpp_host
        props[f"{prefix}.XmppPort"] = str(node.xmpp_port)
        props[f"{prefix}.CpaUrl"] = node.cpa_url
    props[lower_limit_property] = format_seconds(lower_limit_s)
    props[upper_limit_property] = format_seconds(upper_limit_s)
    return props


def user_config(user: str, domain: str) -> dict[str, str]:
    """``get-all-config`` user properties: the user id and the bare JID."""
    return {"Presence.UserId": user, "Presence.Jid": f"{user}@{domain}"}
