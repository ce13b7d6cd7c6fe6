"""SRM parameters: Cisco defaults, checks, --param parsing, per-node overrides, admin API shape."""

from __future__ import annotations

import dataclasses

import pytest

from mock_server.params import (
    LOGIN_PROFILES, ParameterError, ParamSetting, SrmParameters, apply_params, from_dict, login_profile, parse_param,
    to_dict,
    update_from_dict,
)

NODES = ["imp1.example.test", "imp2.example.test"]


def test_cisco_defaults() -> None:
    p = SrmParameters()
    assert dataclasses.asdict(p) == {
        "heartbeat_interval_s": 15.0, "heartbeat_timeout_s": 60.0, "init_heartbeat_timeout_s": 120.0,
        "critical_service_delay_s": 90.0, "auto_fallback": False, "auto_fallback_delay_s": 1800.0,
        "relogin_lower_s": 120.0, "relogin_upper_s": 537.0}


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"heartbeat_interval_s": 0}, "heartbeat_interval_s"),
    ({"critical_service_delay_s": -1}, "critical_service_delay_s"),
    ({"relogin_lower_s": 600}, "relogin_lower_s"),
    ({"heartbeat_timeout_s": 10}, "heartbeat_timeout_s"),
    ({"auto_fallback": 1}, "auto_fallback"),
    ({"heartbeat_interval_s": True}, "heartbeat_interval_s"),
    ({"auto_fallback_delay_s": float("nan")}, "auto_fallback_delay_s"),
])
def test_checks(kwargs: dict[str, object], name: str) -> None:
    with pytest.raises(ParameterError) as info:
        SrmParameters(**kwargs)  # type: ignore[arg-type]
    assert info.value.name == name


def test_lower_zero_allowed_for_tests() -> None:
    assert SrmParameters(relogin_lower_s=0, relogin_upper_s=0.5).relogin_lower_s == 0


@pytest.mark.parametrize(("text", "expected"), [
    ("heartbeat_interval_s=0.2", ParamSetting(None, "heartbeat_interval_s", 0.2)),
    ("auto_fallback=on", ParamSetting(None, "auto_fallback", True)),
    ("auto_fallback=False", ParamSetting(None, "auto_fallback", False)),
    ("imp1.example.test:relogin_lower_s=1.5", ParamSetting("imp1.example.test", "relogin_lower_s", 1.5)),
    (" relogin_upper_s = 3 ", ParamSetting(None, "relogin_upper_s", 3.0)),
])
def test_parse(text: str, expected: ParamSetting) -> None:
    assert parse_param(text) == expected


@pytest.mark.parametrize(("text", "words"), [
    ("heartbeat_interval_s", "no '='"),
    ("bogus=1", "unknown parameter name 'bogus'"),
    ("heartbeat_interval_s=fast", "'fast'"),
    ("auto_fallback=maybe", "true/false"),
    (":relogin_lower_s=1", "empty node"),
    ("=1", "empty parameter name"),
    ("relogin_lower_s=", "empty value"),
    ("imp1.example.test:heartbeat_timeout_s=1", "cluster-wide"),
])
def test_parse_errors_name_the_bad_part(text: str, words: str) -> None:
    with pytest.raises(ParameterError) as info:
        parse_param(text)
    assert words in str(info.value)


def test_apply_cluster_and_per_node() -> None:
    params = apply_params(["heartbeat_interval_s=0.2", "heartbeat_timeout_s=1", "init_heartbeat_timeout_s=2",
                           "relogin_lower_s=1", "relogin_upper_s=5", "imp2.example.test:relogin_upper_s=9"], NODES)
    assert params[NODES[0]].heartbeat_interval_s == params[NODES[1]].heartbeat_interval_s == 0.2
    assert (params[NODES[0]].relogin_lower_s, params[NODES[0]].relogin_upper_s) == (1.0, 5.0)
    assert (params[NODES[1]].relogin_lower_s, params[NODES[1]].relogin_upper_s) == (1.0, 9.0)


def test_apply_errors() -> None:
    with pytest.raises(ParameterError, match="unknown node 'imp3"):
        apply_params(["imp3.example.test:relogin_lower_s=1"], NODES)
    with pytest.raises(ParameterError, match="node imp1.example.test") as info:
        apply_params(["imp1.example.test:relogin_lower_s=600"], NODES)
    assert info.value.node == NODES[0]


def test_dict_round_trip_and_partial_update() -> None:
    params = apply_params(["imp1.example.test:relogin_lower_s=100"], NODES)
    data = to_dict(params)
    assert data[NODES[0]]["critical_service_delay_s"] == 90.0
    assert (data[NODES[0]]["relogin_lower_s"], data[NODES[1]]["relogin_lower_s"]) == (100.0, 120.0)
    assert from_dict(data) == params
    assert update_from_dict(params, data) == params
    new = update_from_dict(params, {NODES[0]: {"auto_fallback": True, "relogin_upper_s": 600},
                                    NODES[1]: {"relogin_lower_s": 10}})
    assert new[NODES[0]].auto_fallback and not new[NODES[1]].auto_fallback
    assert (new[NODES[0]].relogin_lower_s, new[NODES[0]].relogin_upper_s) == (100.0, 600.0)
    assert (new[NODES[1]].relogin_lower_s, new[NODES[1]].relogin_upper_s) == (10.0, 537.0)
    assert params[NODES[0]].auto_fallback is False  # the input is not modified
    assert update_from_dict(params, {NODES[1]: {}}) == params


@pytest.mark.parametrize("body", [[], {"x": 1}, {NODES[0]: {"bogus": 1}}, {NODES[0]: {"auto_fallback": "yes"}},
                                  {NODES[0]: {"heartbeat_interval_s": True}}, {NODES[0]: {"heartbeat_interval_s": "1"}},
                                  {"imp9": {}}, {NODES[0]: 5}, {NODES[0]: {"relogin_lower_s": 1000}}])
def test_update_rejects_bad_bodies(body: object) -> None:
    with pytest.raises(ParameterError):
        update_from_dict(apply_params([], NODES), body)


def test_login_profiles() -> None:
    rates = {name: p.users_per_s for name, p in LOGIN_PROFILES.items()}
    assert rates == {"small": 3.0, "small-conservative": 1.5, "15k-active-standby": 6.0, "15k-active-active": 15.0,
                     "25k": 8.5, "push": 4.0}
    with pytest.raises(ParameterError, match="known: small"):
        login_profile("giant")
