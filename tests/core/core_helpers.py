"""Shared builders for the core tests: a pair, settings, machines, and an event for each outcome."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable

from jabberemu.config import ClientSettings, NodeAddress, ReloginLimits, ServerPair
from jabberemu.core import events as ev
from jabberemu.core.machine import ClientMachine
from jabberemu.core.registry import ClientRegistry
from jabberemu.core.states import ClientState, Mode, Outcome, Round, Via

NODE_A = NodeAddress(name="imp1.example.test", cpa_url="http://127.0.0.1:8001/EPASSoap/service/v80",
                     xmpp_host="127.0.0.1", xmpp_port=5301)
NODE_B = NodeAddress(name="imp2.example.test", cpa_url="http://127.0.0.1:8002/EPASSoap/service/v80",
                     xmpp_host="127.0.0.1", xmpp_port=5302)
PAIR = ServerPair(nodes=(NODE_A, NODE_B), domain="example.test")
DEFAULTS = ReloginLimits(lower_s=1.0, upper_s=2.0)
LOGIN_LIMITS = ReloginLimits(lower_s=5.0, upper_s=25.0)
SOAP_STATES = frozenset({ClientState.SOAPCONNECT_P, ClientState.SOAPCONNECT_S, ClientState.SOAPCONNECTED,
                         ClientState.SOAPCONNECT_SESSION_P, ClientState.SOAPCONNECT_SESSION_S})
SESSION_STATES = frozenset({ClientState.SOAPCONNECT_SESSION_P, ClientState.SOAPCONNECT_SESSION_S})
XMPP_STATES = frozenset({ClientState.XMPPCONNECT_P, ClientState.XMPPCONNECT_S, ClientState.XMPPCONNECTED})

Key = tuple[Mode, Round, ClientState, Via]


def settings(mode: Mode) -> ClientSettings:
    return ClientSettings(xmpp_only=mode is Mode.XMPP_ONLY, default_limits=DEFAULTS)


def machine(mode: Mode = Mode.CPA, *, seed: int = 7, user: str = "user00001",
            registry: ClientRegistry | None = None, home: str | None = None) -> ClientMachine:
    return ClientMachine(user, random.Random(seed), settings(mode), PAIR, home_node=home,
                         registry=registry)


def login_ok(node: str, limits: ReloginLimits = LOGIN_LIMITS, *, key: str = "session-key-1",
             primary: NodeAddress = NODE_A, secondary: NodeAddress | None = NODE_B,
             problems: tuple[str, ...] = ()) -> ev.SoapLoginOk:
    return ev.SoapLoginOk(node=node, session_key=key, limits=limits, primary=primary,
                          secondary=secondary, problems=problems)


def event_for(m: ClientMachine, outcome: Outcome, node: str | None = None) -> ev.Event:
    """A concrete event that means ``outcome`` to ``m`` in its current state."""
    target = node or m.node or NODE_A.name
    if outcome is Outcome.START:
        return ev.Start()
    if outcome is Outcome.STOP:
        return ev.StopRequested()
    if outcome is Outcome.TIMER:
        return ev.TimerFired(timer_id=m.pending_timer if m.pending_timer is not None else 999)
    if outcome is Outcome.SOAP_OK:
        return login_ok(target)
    if outcome is Outcome.OTP_OK:
        return ev.OtpOk(node=target, otp="otp-1")
    if outcome is Outcome.XMPP_UP:
        return ev.XmppUp(node=target)
    if outcome is Outcome.REJECTED:
        if m.mode is Mode.XMPP_ONLY:
            return ev.XmppAuthFailed(node=target, condition=ev.SaslCondition.NOT_AUTHORIZED)
        return ev.SoapFailed(node=target, code="bad-credentials", reason="wrong password",
                             sender_fault=True)
    if outcome is Outcome.REDIRECT:  # a host outside the pair, never in the chain so far
        return ev.StreamError(node=target, condition=ev.StreamCondition.SEE_OTHER_HOST,
                              text=f"elsewhere{len(m.redirect_chain)}.example.test:5299")
    assert outcome is Outcome.FAILURE
    if m.state in SOAP_STATES:
        return ev.SoapFailed(node=target, code="services-stopped", reason="down")
    return ev.ConnectionLost(node=target, cls=ev.LossKind.CONNECTION_RESET)


def key_of(m: ClientMachine) -> Key:
    via = m._via if m.state is ClientState.SOAPCONNECTED else Via.ANY  # noqa: SLF001 - test probe
    return (m.mode, Round(m.round), m.state, via)


def replay(mode: Mode, path: Iterable[Outcome], **kw: object) -> ClientMachine:
    m = machine(mode, **kw)  # type: ignore[arg-type]
    for outcome in path:
        m.handle(event_for(m, outcome))
    return m


def explore() -> dict[Key, tuple[Outcome, ...]]:
    """Breadth-first walk of the real machine: shortest outcome path to every reachable key."""
    paths: dict[Key, tuple[Outcome, ...]] = {}
    queue: deque[tuple[Mode, tuple[Outcome, ...]]] = deque((mode, ()) for mode in Mode)
    while queue:
        mode, path = queue.popleft()
        k = key_of(replay(mode, path))
        if k in paths:
            continue
        paths[k] = path
        if k[2] in (ClientState.LOGGED_OUT, ClientState.GAVE_UP):
            continue
        for outcome in Outcome:
            m = replay(mode, path)
            try:
                cmds = m.handle(event_for(m, outcome))
            except Exception:  # noqa: BLE001 - a missing row; covered by the illegal-transition test
                continue
            if cmds:
                queue.append((mode, (*path, outcome)))
    return paths
