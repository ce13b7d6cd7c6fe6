"""Every module declares __all__ and the package re-exports it; errors keep their facts."""

from __future__ import annotations

import importlib

import pytest

import jabberemu.core as core
from jabberemu import errors
from jabberemu.core import metrics

MODULES = ["states", "events", "machine", "relogin", "redirect", "metrics", "registry"]


@pytest.mark.parametrize("name", MODULES)
def test_all_is_exact_and_reexported(name: str) -> None:
    mod = importlib.import_module(f"jabberemu.core.{name}")
    for public in mod.__all__:
        assert hasattr(mod, public), public
        assert getattr(core, public) is getattr(mod, public)
    public_defs = {k for k, v in vars(mod).items()
                   if not k.startswith("_") and getattr(v, "__module__", None) == mod.__name__}
    assert public_defs <= set(mod.__all__)


def test_core_all_is_the_union() -> None:
    union = set().union(*(importlib.import_module(f"jabberemu.core.{n}").__all__ for n in MODULES))
    assert set(core.__all__) == union


def test_error_tree_and_facts() -> None:
    fault = errors.SoapFault(node="imp1", code="server-busy", reason="busy", sender_fault=False)
    assert isinstance(fault, errors.LoginError) and isinstance(fault, errors.JabberEmuError)
    assert (fault.node, fault.code, fault.reason, fault.sender_fault) == ("imp1", "server-busy", "busy", False)
    auth = errors.XmppAuthError(node="imp2", condition="not-authorized")
    assert isinstance(auth, errors.LoginError) and auth.condition == "not-authorized"
    assert issubclass(errors.LocalProtocolError, errors.ProtocolError)
    assert issubclass(errors.RemoteProtocolError, errors.ProtocolError)
    assert issubclass(errors.NoNodeLeft, errors.HaError)
    t = errors.TransportError(node="imp1", cls="connection-reset")
    assert (t.node, t.cls, str(t)) == ("imp1", "connection-reset", "connection-reset talking to imp1")
    assert errors.NoNodeLeft(tried=("a", "b"), last_cause="connection-refused").tried == ("a", "b")
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.JabberEmuError)


def test_measurement_vocabulary() -> None:
    labels = [m.label for m in metrics.VOCABULARY]
    assert labels == ["soap/login", "soap/session-login", "soap/get-all-config", "soap/get-onetime-password", "soap/logout",
                      "xmpp/connect", "xmpp/auth", "xmpp/bind", "xmpp/ping", "xmpp/message-latency",
                      "client/login", "ha/relogin", "ha/wait"]
    m = metrics.Measurement.of(metrics.HA_WAIT, 1234.5, node="imp1")
    assert (m.request_type.value, m.name, m.response_time_ms, m.ok, m.label) == (
        "ha", "wait", 1234.5, True, "ha/wait")
    with pytest.raises(errors.LocalProtocolError):
        metrics.Measurement(request_type=metrics.RequestType.HA, name="login", response_time_ms=1)
    with pytest.raises(errors.LocalProtocolError):
        metrics.Measurement.of(metrics.SOAP_LOGIN, -1.0)
