"""Server Recovery Manager (SRM) parameters of the mock pair, their parsing and the login profiles.

Defaults are Cisco's, from "Configuration and Administration of IM and Presence Service" 12.5(1),
chapter "Configure Redundancy and High Availability" (Service Parameters of the Cisco Server Recovery
Manager): Keep Alive (HeartBeat) Interval 15 s, Keep Alive (Heartbeat) Timeout 60 s, Initialization
Keep Alive (Heartbeat) Timeout 120 s, Critical Service Down Delay 90 s, Enable Automatic Fallback
off, Client Re-Login Lower Limit 120 s and Upper Limit 537 s. The automatic fallback delay (1800 s)
is fixed in the product; here it is a setting (our choice). The re-login limits are per node (Cisco
requires them equal on both; a mismatch is a fault scenario worth emulating, so it is allowed),
every other parameter is cluster-wide.

Parameters arrive as ``--param NAME=VALUE`` (cluster-wide, or both nodes for a per-node parameter)
or ``--param NODE:NAME=VALUE`` (one node, per-node parameters only), and as JSON through the
admin API (``GET|PUT /api/parameters``, ``{node: {name: value}}``, see :func:`to_dict` /
:func:`update_from_dict`).

Login profiles: Cisco's "High Availability Login Profiles" tables (same guide) give a sustainable
re-login rate per server size; :data:`LOGIN_PROFILES` names them (see DOMAIN.md "Sizing and
throttle rules").
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

__all__ = [
    "CLUSTER_PARAMETERS",
    "LOGIN_PROFILES",
    "NODE_PARAMETERS",
    "LoginProfile",
    "ParamSetting",
    "ParameterError",
    "SrmParameters",
    "apply_params",
    "from_dict",
    "login_profile",
    "parse_param",
    "to_dict",
    "update_from_dict",
]

logger = logging.getLogger(__name__)


class ParameterError(ValueError):
    """A bad SRM parameter, parameter text or login profile name.

    Attributes:
        name: the parameter (or profile) name concerned, or None when the text had none.
        value: the offending value or text, or None.
        node: the node name concerned, or None.
        detail: what is wrong, in words.
    """

    def __init__(self, detail: str, *, name: str | None = None, value: object = None,
                 node: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.name = name
        self.value = value
        self.node = node


@dataclass(frozen=True, kw_only=True)
class SrmParameters:
    """The SRM service parameters one node runs with (seconds unless said).

    Source: "Configuration and Administration of IM and Presence Service" 12.5(1), "Configure
    Redundancy and High Availability" (SRM service parameters and their defaults).

    Raises:
        ParameterError: a time is not positive (``relogin_lower_s`` may be 0), the heartbeat
            timeout is shorter than the heartbeat interval, or ``relogin_lower_s > relogin_upper_s``.
    """

    heartbeat_interval_s: float = 15.0
    heartbeat_timeout_s: float = 60.0
    init_heartbeat_timeout_s: float = 120.0
    critical_service_delay_s: float = 90.0
    auto_fallback: bool = False
    auto_fallback_delay_s: float = 1800.0
    relogin_lower_s: float = 120.0
    relogin_upper_s: float = 537.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "auto_fallback":
                if not isinstance(value, bool):
                    raise ParameterError(f"{f.name} must be a bool, not {value!r}", name=f.name, value=value)
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ParameterError(f"{f.name} must be a number of seconds, not {value!r}",
                                     name=f.name, value=value)
            if value != value or value in (float("inf"), float("-inf")):
                raise ParameterError(f"{f.name} must be finite, not {value!r}", name=f.name, value=value)
            minimum_ok = value >= 0 if f.name == "relogin_lower_s" else value > 0
            if not minimum_ok:
                raise ParameterError(f"{f.name} must be {'>= 0' if f.name == 'relogin_lower_s' else '> 0'}"
                                     f", not {value!r}", name=f.name, value=value)
        if self.heartbeat_timeout_s < self.heartbeat_interval_s:
            raise ParameterError(
                f"heartbeat_timeout_s ({self.heartbeat_timeout_s}) must be >= heartbeat_interval_s "
                f"({self.heartbeat_interval_s})", name="heartbeat_timeout_s", value=self.heartbeat_timeout_s)
        if self.init_heartbeat_timeout_s < self.heartbeat_interval_s:
            raise ParameterError(
                f"init_heartbeat_timeout_s ({self.init_heartbeat_timeout_s}) must be >= heartbeat_interval_s "
                f"({self.heartbeat_interval_s})", name="init_heartbeat_timeout_s",
                value=self.init_heartbeat_timeout_s)
        if self.relogin_lower_s > self.relogin_upper_s:
            raise ParameterError(
                f"relogin_lower_s ({self.relogin_lower_s}) must be <= relogin_upper_s ({self.relogin_upper_s})",
                name="relogin_lower_s", value=self.relogin_lower_s)


#: Parameters each node holds for itself (``NODE:NAME=VALUE`` allowed).
NODE_PARAMETERS: frozenset[str] = frozenset({"relogin_lower_s", "relogin_upper_s"})
#: Parameters shared by the whole Presence Redundancy Group.
CLUSTER_PARAMETERS: frozenset[str] = frozenset(
    f.name for f in dataclasses.fields(SrmParameters) if f.name not in NODE_PARAMETERS)

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


class ParamSetting(NamedTuple):
    """One parsed ``--param``: ``(node, name, value)``; ``node`` is None for "every node"."""

    node: str | None
    name: str
    value: float | bool


def _convert(name: str, raw: object, *, node: str | None = None) -> float | bool:
    """Turn text or a JSON value into the parameter's type; raise ParameterError naming the part."""
    if name not in NODE_PARAMETERS and name not in CLUSTER_PARAMETERS:
        known = ", ".join(sorted(NODE_PARAMETERS | CLUSTER_PARAMETERS))
        raise ParameterError(f"unknown parameter name {name!r} (known: {known})", name=name, value=raw, node=node)
    if name == "auto_fallback":
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
            return raw.strip().lower() in _TRUE
        raise ParameterError(f"value of {name} must be true/false, not {raw!r}", name=name, value=raw, node=node)
    if isinstance(raw, bool):
        raise ParameterError(f"value of {name} must be a number of seconds, not {raw!r}",
                             name=name, value=raw, node=node)
    if isinstance(raw, (int, float)):
        return float(raw)
    if isinstance(raw, str):
        try:
            return float(raw.strip())
        except ValueError:
            pass
    raise ParameterError(f"value of {name} must be a number of seconds, not {raw!r}", name=name, value=raw, node=node)


def parse_param(text: str) -> ParamSetting:
    """Parse one ``--param`` argument.

    Args:
        text: ``NAME=VALUE`` or ``NODE:NAME=VALUE``; NODE is a node name (it may contain dots),
            values are seconds (decimal allowed) or, for ``auto_fallback``, true/false/1/0/yes/no/on/off.

    Returns:
        ``ParamSetting(node, name, value)`` with ``node`` None when no node was given.

    Raises:
        ParameterError: no ``=``, empty node or name, unknown name, bad value, or a node given for a
            cluster-wide parameter; the message names the bad part.
    """
    left, sep, raw_value = text.partition("=")
    if not sep:
        raise ParameterError(f"--param {text!r}: expected NAME=VALUE or NODE:NAME=VALUE (no '=')", value=text)
    node: str | None = None
    name = left.strip()
    if ":" in left:
        node_part, _, name = left.rpartition(":")
        node, name = node_part.strip(), name.strip()
        if not node:
            raise ParameterError(f"--param {text!r}: empty node name before ':'", value=text)
    if not name:
        raise ParameterError(f"--param {text!r}: empty parameter name", value=text, node=node)
    if not raw_value.strip():
        raise ParameterError(f"--param {text!r}: empty value for {name}", name=name, value=text, node=node)
    value = _convert(name, raw_value, node=node)
    if node is not None and name not in NODE_PARAMETERS:
        raise ParameterError(f"--param {text!r}: {name} is cluster-wide and cannot be set for node {node!r}",
                             name=name, value=raw_value, node=node)
    return ParamSetting(node, name, value)


def apply_params(settings: Iterable[ParamSetting | str], node_names: Iterable[str],
                 base: SrmParameters | None = None) -> dict[str, SrmParameters]:
    """Apply ``--param`` settings (in order; later wins) to the defaults of every node.

    Args:
        settings: parsed settings or raw ``--param`` texts.
        node_names: the nodes of the pair.
        base: starting parameters (Cisco's defaults when None).

    Returns:
        ``{node_name: SrmParameters}``; cluster-wide values are equal on every node.

    Raises:
        ParameterError: bad text, a node name that is not in ``node_names``, or a combination that
            fails :class:`SrmParameters` checks (the error then names the node).
    """
    nodes = list(node_names)
    changes: dict[str, dict[str, float | bool]] = {n: {} for n in nodes}
    for item in settings:
        setting = parse_param(item) if isinstance(item, str) else item
        if setting.node is not None and setting.node not in changes:
            raise ParameterError(f"unknown node {setting.node!r} in --param (nodes: {', '.join(nodes)})",
                                 name=setting.name, node=setting.node)
        for n in [setting.node] if setting.node is not None else nodes:
            changes[n][setting.name] = setting.value
    return _build(base or SrmParameters(), changes)


def _build(base: SrmParameters, changes: Mapping[str, Mapping[str, Any]]) -> dict[str, SrmParameters]:
    result: dict[str, SrmParameters] = {}
    for node, values in changes.items():
        try:
            result[node] = dataclasses.replace(base, **values)
        except ParameterError as exc:
            raise ParameterError(f"node {node}: {exc.detail}", name=exc.name, value=exc.value, node=node) from exc
    lowers = {(p.relogin_lower_s, p.relogin_upper_s) for p in result.values()}
    if len(lowers) > 1:
        logger.warning("re-login limits differ between nodes (Cisco requires them equal): %s",
                       {n: (p.relogin_lower_s, p.relogin_upper_s) for n, p in result.items()})
    return result


def to_dict(params_by_node: Mapping[str, SrmParameters]) -> dict[str, dict[str, float | bool]]:
    """The JSON shape of ``GET /api/parameters``: ``{node: {name: value, ...}}`` with every parameter."""
    return {node: dataclasses.asdict(p) for node, p in params_by_node.items()}


def from_dict(data: object) -> dict[str, SrmParameters]:
    """Build parameters from ``{node: {name: value}}``; names left out take Cisco's defaults.

    Raises:
        ParameterError: see :func:`update_from_dict`.
    """
    if not isinstance(data, Mapping):
        raise ParameterError(f"parameters must be a JSON object, not {type(data).__name__}")
    return update_from_dict({str(node): SrmParameters() for node in data}, data)


def update_from_dict(current: Mapping[str, SrmParameters], data: object) -> dict[str, SrmParameters]:
    """Apply a ``PUT /api/parameters`` body: ``{node: {name: value}}``, any name or node may be left out.

    Cluster-wide names are accepted per node here: the admin API sends the same values to both
    nodes (their equality is the caller's business; the re-login limits may differ on purpose).

    Args:
        current: the parameters now in force, per node.
        data: the decoded JSON body.

    Returns:
        The new parameters per node (``current`` is not modified; nodes not named are unchanged).

    Raises:
        ParameterError: not an object, unknown node or name, wrong value type (seconds must be
            numbers, ``auto_fallback`` a bool), or values that fail :class:`SrmParameters` checks.
    """
    if not isinstance(data, Mapping):
        raise ParameterError(f"parameters must be a JSON object, not {type(data).__name__}")
    changes: dict[str, dict[str, Any]] = {n: dataclasses.asdict(p) for n, p in current.items()}
    for node, values in data.items():
        if node not in changes:
            raise ParameterError(f"unknown node {node!r} (nodes: {', '.join(changes)})", node=str(node))
        if not isinstance(values, Mapping):
            raise ParameterError(f"parameters of node {node!r} must be an object", node=str(node))
        for name, raw in values.items():
            if isinstance(raw, str) and name != "auto_fallback":
                raise ParameterError(f"value of {name} must be a JSON number, not {raw!r}", name=str(name),
                                     value=raw, node=str(node))
            if isinstance(raw, str):
                raise ParameterError(f"value of {name} must be a JSON bool, not {raw!r}", name=str(name),
                                     value=raw, node=str(node))
            changes[node][name] = _convert(str(name), raw, node=str(node))
    return _build(SrmParameters(), changes)


@dataclass(frozen=True, kw_only=True)
class LoginProfile:
    """A sustainable (re-)login rate for one server size.

    Source: "Configuration and Administration of IM and Presence Service" 12.5(1), chapter
    "High Availability Login Profiles"; push-notification cap from Cisco's push notifications
    deployment guidance (DOMAIN.md, "Sizing and throttle rules").
    """

    name: str
    users_per_s: float
    description: str

    def __post_init__(self) -> None:
        if not self.users_per_s > 0:
            raise ParameterError(f"login profile {self.name}: users_per_s must be > 0", name=self.name,
                                 value=self.users_per_s)


#: Profile name -> profile. Names are ours; rates are Cisco's.
LOGIN_PROFILES: dict[str, LoginProfile] = {p.name: p for p in (
    LoginProfile(name="small", users_per_s=3.0, description="small OVAs (1k-5k users), upper end of 1.5-3 users/s"),
    LoginProfile(name="small-conservative", users_per_s=1.5,
                 description="small OVAs, lower end of 1.5-3 users/s"),
    LoginProfile(name="15k-active-standby", users_per_s=6.0, description="15k-user OVA, active/standby"),
    LoginProfile(name="15k-active-active", users_per_s=15.0, description="15k-user OVA, active/active"),
    LoginProfile(name="25k", users_per_s=8.5, description="25k-user OVA (~8-9 users/s)"),
    LoginProfile(name="push", users_per_s=4.0, description="push notifications enabled: cap of 4 users/s"),
)}


def login_profile(name: str) -> LoginProfile:
    """Look a login profile up by name.

    Raises:
        ParameterError: unknown name (the message lists the known ones).
    """
    try:
        return LOGIN_PROFILES[name]
    except KeyError:
        raise ParameterError(f"unknown login profile {name!r} (known: {', '.join(LOGIN_PROFILES)})",
                             name=name) from None
