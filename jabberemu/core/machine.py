"""``ClientMachine``: one emulated Jabber client as a sans-IO state machine.

Events in, commands out; the transitions come from the one table in :mod:`jabberemu.core.states`
(whose docstring says what every state means and cites the Cisco source). The machine owns no
clock and no I/O: the driver carries out the commands, times them, and feeds the results back.

Rules the driver can rely on:

- ``handle`` raises :class:`~jabberemu.errors.LocalProtocolError` for an event the table lacks in
  the current state (e.g. ``XmppUp`` while signing in to the CPA) and for a ``Start`` after the end.
- An event naming a node other than the one the current state works with is *stale* (a late result
  of an attempt the machine already gave up on) and is dropped: ``handle`` returns ``[]`` and
  ``stale_events`` grows. So is a ``TimerFired`` whose id is not the pending timer.
- Once in LOGGED_OUT or GAVE_UP, every event but ``Start`` is dropped the same way.
- Order of the returned commands: clean-up of the state left (cancel timer, disconnect, logout),
  records, then the action of the state entered.
- A ``StreamError`` ``see-other-host`` in an XMPP state is judged by
  :func:`~jabberemu.core.redirect.judge_redirect` (RFC 6120 §4.9.3.19): followed, it is the table's
  ``redirect`` outcome and the named host is the next XMPP target; a loop or too long a chain is a
  ``failure`` of class ``redirect-loop`` / ``too-many-redirects``; malformed text a plain
  ``failure``. Each is recorded with :class:`~jabberemu.core.events.RedirectSeen`.
"""

from __future__ import annotations

import logging
import random

from jabberemu.config import ClientSettings, NodeAddress, ReloginLimits, SaslMechanism, ServerPair
from jabberemu.core import events as ev
from jabberemu.core.redirect import Redirect, RedirectVerdict, judge_redirect
from jabberemu.core.registry import ClientRegistry
from jabberemu.core.relogin import ClientRandom, draw_wait_s, order_targets, place_redirect
from jabberemu.core.states import (
    END_STATES,
    ClientState,
    EndReason,
    Mode,
    Outcome,
    Round,
    Transition,
    Via,
    lookup,
)
from jabberemu.errors import ConfigError, LocalProtocolError

__all__ = ["BAD_CREDENTIALS_CODE", "ClientMachine"]

logger = logging.getLogger(__name__)

#: CPA fault code after which retrying cannot help (ARCHITECTURE.md, SOAP faults).
BAD_CREDENTIALS_CODE = "bad-credentials"
#: SASL conditions that end an XMPP-only client (its password is wrong), RFC 6120 §6.5.
_FATAL_SASL = frozenset({
    ev.SaslCondition.NOT_AUTHORIZED,
    ev.SaslCondition.ACCOUNT_DISABLED,
    ev.SaslCondition.CREDENTIALS_EXPIRED,
})
_XMPP_ATTEMPTS = frozenset({ClientState.XMPPCONNECT_P, ClientState.XMPPCONNECT_S})
_XMPP_STATES = _XMPP_ATTEMPTS | {ClientState.XMPPCONNECTED}
_REFUSED = {RedirectVerdict.LOOP: ev.CauseKind.REDIRECT_LOOP, RedirectVerdict.TOO_MANY: ev.CauseKind.TOO_MANY_REDIRECTS}
_SESSION_STATES = frozenset({ClientState.SOAPCONNECT_SESSION_P, ClientState.SOAPCONNECT_SESSION_S})
_FIRST_CHOICE = frozenset({
    ClientState.SOAPCONNECT_P, ClientState.XMPPCONNECT_P, ClientState.SOAPCONNECT_SESSION_P,
})
_NODE_EVENTS = (
    ev.SoapLoginOk, ev.SoapFailed, ev.HttpFailed, ev.OtpOk, ev.XmppUp, ev.XmppAuthFailed, ev.StreamError,
    ev.ConnectionLost, ev.PingTimeout, ev.OperationTimeout,
)


def _cause(event: ev.Event, redirect: Redirect | None) -> ev.Cause:
    """The failure class of ``event``; a refused redirect has its own (``redirect-loop`` ...)."""
    if redirect is not None and redirect.verdict in _REFUSED and isinstance(event, ev.StreamError):
        return ev.Cause(kind=_REFUSED[redirect.verdict], node=event.node)
    return ev.classify(event)


class ClientMachine:
    """One emulated client's state, driven by :meth:`handle`.

    Args:
        user_id: the user's id (also the registry key).
        rng: the client's own random source (``relogin.client_random(run_seed, user_id)``, or any
            ``random.Random``).
        settings: run-wide client settings (``xmpp_only`` picks the mode).
        pair: the configured pair; ``home_node`` (default: its first node) is the initial primary.
        home_node: name of the user's home node in ``pair``.
        registry: when given, the machine adds itself and reports every transition.

    Raises:
        ConfigError: CPA mode with a node lacking ``cpa_url``; unknown ``home_node``.
    """

    def __init__(self, user_id: str, rng: random.Random | ClientRandom, settings: ClientSettings, pair: ServerPair,
                 *, home_node: str | None = None, registry: ClientRegistry | None = None) -> None:
        self.user_id = user_id
        self._rng = rng
        self._settings = settings
        self._pair = pair
        self._mode = Mode.XMPP_ONLY if settings.xmpp_only else Mode.CPA
        if self._mode is Mode.CPA and any(n.cpa_url is None for n in pair.nodes):
            raise ConfigError("CPA mode needs a cpa_url on every node", field="cpa_url")
        home = pair.node(home_node) if home_node is not None else pair.nodes[0]
        self._primary: NodeAddress = home
        self._secondary: NodeAddress | None = pair.peer_of(home.name)
        self._state = ClientState.NEW
        self._round = Round.NONE
        self._via = Via.ANY
        self._node: NodeAddress | None = None
        self._series: tuple[NodeAddress, NodeAddress] | None = None
        self._limits: ReloginLimits = settings.default_limits
        self._limits_node: str | None = None
        self._session_key: str | None = None
        self._session_node: NodeAddress | None = None
        self._otp: str | None = None
        self._preferred: str | None = None
        self._redirect: NodeAddress | None = None
        self._chain: tuple[str, ...] = ()
        self._ha_cause: ev.Cause | None = None
        self._last_failure: ev.Cause | None = None
        self._end_reason: EndReason | None = None
        self._timer_seq = 0
        self._pending_timer: int | None = None
        self.stale_events = 0
        self._registry = registry
        if registry is not None:
            registry.add(user_id, self._state, None)

    # ------------------------------------------------------------------------------ views ---
    @property
    def state(self) -> ClientState:
        return self._state

    @property
    def round(self) -> int:
        """0 during the initial login and while connected, 1 or 2 during a re-login."""
        return int(self._round)

    @property
    def mode(self) -> Mode:
        return self._mode

    @property
    def node(self) -> str | None:
        """Name of the node the current state works with (None in NEW, FAILOVER, end states)."""
        return self._node.name if self._node is not None else None

    @property
    def limits(self) -> ReloginLimits:
        """Limits cached at the last successful CPA sign-in (settings' defaults before one)."""
        return self._limits

    @property
    def limits_node(self) -> str | None:
        """The node that sent :attr:`limits`, or None for the defaults."""
        return self._limits_node

    @property
    def primary(self) -> NodeAddress:
        return self._primary

    @property
    def secondary(self) -> NodeAddress | None:
        return self._secondary

    @property
    def preferred_node(self) -> str | None:
        """Node a see-other-host named since the last connect, tried first next time."""
        return self._preferred

    @property
    def redirect_target(self) -> NodeAddress | None:
        """Host a followed see-other-host named, waiting for the next XMPP attempt (None once used)."""
        return self._redirect

    @property
    def redirect_chain(self) -> tuple[str, ...]:
        """XMPP ``host:port`` of each host in the current chain of successive redirects (or empty)."""
        return self._chain

    @property
    def ha_cause(self) -> ev.Cause | None:
        """The HA event being recovered from, None while connected or before any."""
        return self._ha_cause

    @property
    def last_failure(self) -> ev.Cause | None:
        return self._last_failure

    @property
    def end_reason(self) -> EndReason | None:
        return self._end_reason

    @property
    def end_detail(self) -> str | None:
        """Class of the last failure when the client ended (e.g. ``connection-refused``)."""
        if self._state not in END_STATES or self._last_failure is None:
            return None
        return self._last_failure.cls

    @property
    def pending_timer(self) -> int | None:
        return self._pending_timer

    # ------------------------------------------------------------------------------ input ---
    def handle(self, event: ev.Event) -> list[ev.Command]:
        """Feed one event; get the commands to carry out, in order.

        Args:
            event: what the driver observed.

        Returns:
            Commands (possibly none; see the module docstring for dropped events).

        Raises:
            LocalProtocolError: the table has no transition for this event in this state, or a
                ``Start`` after the client ended, or an unknown event type.
        """
        if self._state in END_STATES:
            if isinstance(event, ev.Start):
                raise LocalProtocolError(f"{self.user_id}: Start after {self._state.value}")
            self.stale_events += 1
            return []
        outcome = self._outcome(event)
        if outcome is None:
            self.stale_events += 1
            logger.debug("%s: dropped stale %r in %s", self.user_id, event, self._state.value)
            return []
        redirect = self._judge(event) if outcome is Outcome.FAILURE else None
        if redirect is not None and redirect.verdict is RedirectVerdict.FOLLOW:
            outcome = Outcome.REDIRECT
        via = self._via if self._state is ClientState.SOAPCONNECTED else Via.ANY
        transition = lookup(self._mode, self._round, self._state, outcome, via)
        return self._apply(event, outcome, transition, redirect)

    def _judge(self, event: ev.Event) -> Redirect | None:
        """The verdict on a see-other-host received in an XMPP state, else None."""
        if (
            not isinstance(event, ev.StreamError)
            or event.condition is not ev.StreamCondition.SEE_OTHER_HOST
            or self._state not in _XMPP_STATES
            or self._node is None
        ):
            return None
        known = [n for n in (self._primary, self._secondary, *self._pair.nodes) if n is not None]
        return judge_redirect(event.text, source=self._node, chain=self._chain, known=known)

    def _outcome(self, event: ev.Event) -> Outcome | None:
        if isinstance(event, ev.Start):
            return Outcome.START
        if isinstance(event, ev.StopRequested):
            return Outcome.STOP
        if isinstance(event, ev.TimerFired):
            return Outcome.TIMER if event.timer_id == self._pending_timer else None
        if not isinstance(event, _NODE_EVENTS):
            raise LocalProtocolError(f"unknown event type {type(event).__name__}")
        if self._node is None or event.node != self._node.name:
            return None
        if isinstance(event, ev.SoapLoginOk):
            return Outcome.SOAP_OK
        if isinstance(event, ev.OtpOk):
            return Outcome.OTP_OK
        if isinstance(event, ev.XmppUp):
            return Outcome.XMPP_UP
        if (
            isinstance(event, ev.SoapFailed)
            and event.code == BAD_CREDENTIALS_CODE
            and self._state not in _SESSION_STATES  # an OTP login never proves the password wrong
        ):
            return Outcome.REJECTED
        if (
            isinstance(event, ev.XmppAuthFailed)
            and self._mode is Mode.XMPP_ONLY
            and event.condition in _FATAL_SASL
        ):
            return Outcome.REJECTED
        return Outcome.FAILURE

    # ---------------------------------------------------------------------------- effects ---
    def _apply(self, event: ev.Event, outcome: Outcome, tr: Transition,
               redirect: Redirect | None) -> list[ev.Command]:
        src, src_node = self._state, self._node
        cmds: list[ev.Command] = []
        cause: ev.Cause | None = None
        if isinstance(event, ev.SoapLoginOk):
            self._take_login(event, cmds)
        elif isinstance(event, ev.OtpOk):
            self._otp = event.otp
        elif outcome in (Outcome.FAILURE, Outcome.REJECTED, Outcome.REDIRECT):
            cause = _cause(event, redirect)
            self._last_failure = cause
            if src is ClientState.XMPPCONNECTED:
                self._ha_cause = cause
                cmds.append(ev.HaEventSeen(node=cause.node, cls=cause.cls))
            else:
                cmds.append(ev.AttemptFailed(node=cause.node, state=src, cls=cause.cls))
            if redirect is not None:
                self._take_redirect(event, redirect, src, cmds)
            elif src in _XMPP_ATTEMPTS:
                self._chain = ()  # the attempt ended without a redirect: a later one starts a new chain
        elif outcome is Outcome.TIMER:
            self._pending_timer = None

        # clean-up of the state being left
        if outcome is Outcome.STOP:
            if self._pending_timer is not None:
                cmds.append(ev.CancelTimer(timer_id=self._pending_timer))
                self._pending_timer = None
            if src in _XMPP_STATES and src_node is not None:
                cmds.append(ev.XmppDisconnect(node=src_node.name))
            if self._session_key is not None and self._session_node is not None:
                # Sign out where the client is now: after a failover the node of the first login may
                # have its services stopped, and the session key is in the replicated Login Datastore.
                here = src_node if src is ClientState.XMPPCONNECTED and src_node is not None else None
                target = here if here is not None and here.cpa_url is not None else self._session_node
                cmds.append(ev.SoapLogout(node=target, session_key=self._session_key))
        elif cause is not None and src in _XMPP_STATES:
            cmds.append(ev.XmppDisconnect(node=cause.node))

        self._state, self._round = tr.state, tr.round
        entry = self._enter(tr)
        reason = tr.reason.value if tr.reason is not None else (cause.cls if cause else None)
        cmds.append(ev.StateChanged(from_state=src, to_state=self._state, node=self.node,
                                    round=int(self._round), reason=reason))
        cmds.extend(entry)
        if self._registry is not None:
            self._registry.move(self.user_id, self._state, self.node, tr.reason)
        logger.debug("%s: %s -> %s on %s (round %d, node %s)", self.user_id, src.value,
                     self._state.value, outcome.value, int(self._round), self.node)
        return cmds

    def _take_login(self, event: ev.SoapLoginOk, cmds: list[ev.Command]) -> None:
        self._session_key = event.session_key
        self._session_node = self._node
        self._preferred = event.node  # XMPP goes first to the node whose CPA signed the client in
        self._limits, self._limits_node = event.limits, event.node
        self._primary = event.primary  # completed from the configured pair by the CPA adapter, once
        self._secondary = event.secondary
        if event.problems:
            cmds.append(ev.LimitsProblems(node=event.node, problems=event.problems))

    def _take_redirect(self, event: ev.Event, redirect: Redirect, src: ClientState,
                       cmds: list[ev.Command]) -> None:
        """Record a judged see-other-host; a followed one names the next XMPP target, except a pair
        node named while connected: that one only comes first (its CPA too), and the XMPP attempts
        start, as always after a CPA sign-in, on the node whose CPA signs the client in."""
        assert isinstance(event, ev.StreamError)
        target = redirect.target
        cmds.append(ev.RedirectSeen(node=event.node, text=event.text, verdict=redirect.verdict,
                                    target=target.name if target is not None else None, hop=redirect.hop))
        if redirect.verdict is not RedirectVerdict.FOLLOW or target is None:
            self._chain = ()
            return
        self._chain = redirect.chain
        if redirect.known:
            self._preferred = target.name  # a pair node: its CPA comes first too (order_targets)
        if not (redirect.known and src is ClientState.XMPPCONNECTED):
            self._redirect = target

    def _enter(self, tr: Transition) -> list[ev.Command]:
        state = tr.state
        if state in END_STATES:
            assert tr.reason is not None
            self._node = None
            self._end_reason = tr.reason
            return [ev.EnterEndState(state=state, reason=tr.reason, detail=self.end_detail)]
        if state is ClientState.FAILOVER:
            self._node = None
            wait_s = draw_wait_s(self._rng, self._limits)
            self._timer_seq += 1
            self._pending_timer = self._timer_seq
            return [
                ev.WaitDrawn(wait_s=wait_s, lower_s=self._limits.lower_s,
                             upper_s=self._limits.upper_s, round=int(self._round),
                             limits_node=self._limits_node),
                ev.StartTimer(timer_id=self._pending_timer, delay_s=wait_s,
                              purpose=ev.TimerPurpose.RELOGIN_WAIT),
            ]
        if state is ClientState.XMPPCONNECTED:
            relogin, ha = self._ha_cause is not None, self._ha_cause
            self._ha_cause = None
            self._preferred = None
            self._chain = ()
            assert self._node is not None
            return [ev.Connected(node=self._node.name, relogin=relogin,
                                 ha_cls=ha.cls if ha is not None else None)]
        if state is ClientState.SOAPCONNECTED:
            assert self._node is not None and self._session_key is not None
            return [ev.FetchOtp(node=self._node, session_key=self._session_key)]
        if state in (ClientState.SOAPCONNECT_P, ClientState.SOAPCONNECT_S):
            node = self._pick(state)
            self._via = Via.FIRST if state is ClientState.SOAPCONNECT_P else Via.SECOND
            return [ev.SoapLogin(node=node)]
        if state in _SESSION_STATES:
            node = self._pick(state)
            self._via = Via.FIRST if state is ClientState.SOAPCONNECT_SESSION_P else Via.SECOND
            if self._otp is None:
                raise LocalProtocolError(f"{self.user_id}: no cached OTP for {state.value}")
            return [ev.SoapLogin(node=node, otp=self._otp)]
        # XMPP attempts: the fresh OTP, or the password (XMPP-only)
        node = self._pick(state)
        if self._mode is Mode.XMPP_ONLY:
            return [ev.XmppConnect(node=node, mechanism=self._settings.password_mechanism)]
        if self._otp is None:
            raise LocalProtocolError(f"{self.user_id}: no OTP for {state.value}")
        return [ev.XmppConnect(node=node, mechanism=SaslMechanism.CISCO_VTG_TOKEN, otp=self._otp)]

    def _pick(self, state: ClientState) -> NodeAddress:
        """Target of an attempt state: a new first/second-choice series starts at each _P state; a
        pending redirect target takes the place of the XMPP attempt's own (``place_redirect``)."""
        if state in _FIRST_CHOICE or self._series is None:
            self._series = order_targets(self._primary, self._secondary, self._preferred)
        if self._redirect is not None and state in _XMPP_ATTEMPTS:
            self._series = place_redirect(self._series, self._redirect, first=state is ClientState.XMPPCONNECT_P)
            self._redirect = None
        node = self._series[0] if state in _FIRST_CHOICE else self._series[1]
        self._node = node
        return node
