"""Settings objects: defaults, checks, server-sent limits."""

from __future__ import annotations

import math

import pytest

from jabberemu.config import (
    ClientSettings,
    NodeAddress,
    ReloginLimits,
    SaslMechanism,
    ServerPair,
    Timeouts,
)
from jabberemu.errors import ConfigError


def test_defaults_are_ciscos() -> None:
    assert ReloginLimits() == ReloginLimits(lower_s=120.0, upper_s=537.0)
    t = Timeouts()
    assert (t.soap_s, t.connect_s, t.auth_s, t.bind_s, t.ping_interval_s, t.ping_timeout_s) == (
        30, 10, 10, 30, 60, 30)
    s = ClientSettings()
    assert (s.xmpp_only, s.verify_tls, s.lower_limit_property, s.upper_limit_property) == (
        False, True, "Presence.Relogin.LowerLimit", "Presence.Relogin.UpperLimit")
    assert s.password_mechanism is SaslMechanism.PLAIN


@pytest.mark.parametrize(("lower", "upper"), [(3, 2), (-1, 5), (math.nan, 5), (1, math.inf), ("1", 2)])
def test_limits_refuse_bad_values(lower, upper) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError):
        ReloginLimits(lower_s=lower, upper_s=upper)


def test_limits_accept_equal_and_zero() -> None:
    assert ReloginLimits(lower_s=0, upper_s=0).window_s == 0
    assert isinstance(ReloginLimits(lower_s=1, upper_s=2).lower_s, float)


@pytest.mark.parametrize(
    ("lower", "upper", "limits", "problem_words"),
    [
        ("5", "25.5", (5.0, 25.5), []),
        (None, "600", (120.0, 600.0), ["lower limit missing"]),
        ("abc", None, (120.0, 537.0), ["not a number", "upper limit missing"]),
        ("NaN", "inf", (120.0, 537.0), ["not finite", "not finite"]),
        ("-4", "30", (120.0, 30.0), None),  # default lower 120 > 30: swapped, see below
        ("30", "10", (10.0, 30.0), ["swapped"]),
        ("100000", "200000", (100000.0, 200000.0), ["above 86400", "above 86400"]),
    ],
)
def test_limits_from_server(lower, upper, limits, problem_words) -> None:  # type: ignore[no-untyped-def]
    got, problems = ReloginLimits.from_server(lower, upper)
    if problem_words is None:  # negative lower replaced by 120, then 120 > 30 swapped
        assert (got.lower_s, got.upper_s) == (30.0, 120.0)
        assert any("negative" in p for p in problems) and any("swapped" in p for p in problems)
        return
    assert (got.lower_s, got.upper_s) == limits
    assert len(problems) == len(problem_words)
    for word, problem in zip(problem_words, problems, strict=True):
        assert word in problem


def test_limits_from_server_with_own_default() -> None:
    got, problems = ReloginLimits.from_server(None, None, default=ReloginLimits(lower_s=5, upper_s=25))
    assert (got.lower_s, got.upper_s) == (5.0, 25.0) and len(problems) == 2


def _node(name: str, port: int, cpa: str | None = "http://127.0.0.1:9/x") -> NodeAddress:
    return NodeAddress(name=name, cpa_url=cpa, xmpp_host="127.0.0.1", xmpp_port=port)


def test_pair_lookup() -> None:
    a, b = _node("a", 5301), _node("b", 5302)
    pair = ServerPair(nodes=(a, b), domain="example.test")
    assert pair.node("b") is b and pair.peer_of("a") is b and pair.peer_of("b") is a
    assert pair.find("127.0.0.1:5302") is b and pair.find("a") is a and pair.find("x:1") is None
    with pytest.raises(ConfigError):
        pair.node("c")
    assert ServerPair(nodes=(a,), domain="d").peer_of("a") is None
    assert NodeAddress(name="v6", cpa_url=None, xmpp_host="::1", xmpp_port=5222).xmpp_address == "[::1]:5222"


@pytest.mark.parametrize(
    "build",
    [
        lambda: ServerPair(nodes=(), domain="d"),
        lambda: ServerPair(nodes=(_node("a", 1), _node("a", 2)), domain="d"),
        lambda: ServerPair(nodes=(_node("a", 1), _node("b", 2), _node("c", 3)), domain="d"),
        lambda: ServerPair(nodes=[_node("a", 1)], domain="d"),
        lambda: ServerPair(nodes=(_node("a", 1),), domain=""),
        lambda: _node("a", 0),
        lambda: _node("a", 70000),
        lambda: _node("", 1),
        lambda: _node("a", 1, cpa="ftp://x"),
        lambda: Timeouts(bind_s=0),
        lambda: Timeouts(ping_interval_s=-1),
        lambda: Timeouts(ping_interval_s=float("nan")),
        lambda: ClientSettings(password_mechanism=SaslMechanism.CISCO_VTG_TOKEN),
        lambda: ClientSettings(lower_limit_property=" "),
    ],
)
def test_bad_settings_raise(build) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError):
        build()


def test_ping_interval_zero_means_no_keepalive() -> None:
    assert Timeouts(ping_interval_s=0).ping_interval_s == 0


def test_pair_from_topology() -> None:
    topo = {"presence_domain": "example.test", "admin_url": "http://127.0.0.1:1",
            "nodes": [{"name": "imp1.example.test", "cpa_url": "http://127.0.0.1:2/EPASSoap/service/v80",
                       "wsdl_url": "http://127.0.0.1:2/EPASSoap/service/v80?wsdl",
                       "xmpp_host": "127.0.0.1", "xmpp_port": 3},
                      {"name": "imp2.example.test", "cpa_url": "http://127.0.0.1:4/EPASSoap/service/v80",
                       "xmpp_host": "127.0.0.1", "xmpp_port": 5}]}
    pair = ServerPair.from_topology(topo)
    assert [n.name for n in pair.nodes] == ["imp1.example.test", "imp2.example.test"]
    assert pair.nodes[1].xmpp_port == 5 and pair.domain == "example.test"
    with pytest.raises(ConfigError):
        ServerPair.from_topology({"nodes": []})
