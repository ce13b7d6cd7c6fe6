"""``EmulatedClient``: runs one :class:`~jabberemu.core.machine.ClientMachine` on an asyncio loop.

The machine decides; this module does: it carries out the machine's commands (timers with
``loop.call_later``, CPA calls through the process's one :class:`~jabberemu.soap.adapter.CpaAdapter`,
XMPP connections as :class:`~jabberemu.xmpp.client.XmppSession`) and feeds the machine the events
those two adapters return or emit. The adapters time their own calls, enforce their deadlines
(``Timeouts``: a stalled server ends an attempt as ``timeout:<stage>``), translate their libraries'
failures into events once, and hand each measurement to the runtime's one road
(:meth:`~jabberemu.runtime.Runtime.report`); this module writes the client's run-data records
(states, HA events, waits, connections, end).

Re-login limits come from ``get-all-config`` (read by the CPA adapter): a missing, non-numeric, NaN or
negative value is replaced by the default (120/537 s unless the settings say otherwise), lower > upper
is swapped, a value above one day is kept (the client does what the server says; the wait stays
bounded by it). Each kind of problem is logged once per process and counted in ``Runtime.warned``.

Source of the client behaviour: "Planning Guide for Cisco Jabber" 14.1, "Client Behavior During a
Failover" (see :mod:`jabberemu.core.states`).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable
from typing import Any

from jabberemu.config import ClientSettings, NodeAddress, SaslMechanism
from jabberemu.core import events as ev
from jabberemu.core import metrics as mx
from jabberemu.core.machine import ClientMachine
from jabberemu.core.redirect import RedirectVerdict
from jabberemu.core.relogin import ClientRandom, client_random
from jabberemu.core.states import END_STATES, ClientState, EndReason
from jabberemu.errors import ConfigError, LocalProtocolError
from jabberemu.runtime import RecordType, Runtime
from jabberemu.xmpp.client import XmppSession

__all__ = ["PRESENCE_SHOWS", "EmulatedClient"]

logger = logging.getLogger(__name__)

#: ``<show/>`` values a presence change picks from (RFC 6121 §4.7.2.1); None = plain available.
PRESENCE_SHOWS: tuple[str | None, ...] = (None, "away", "chat", "dnd", "xa")


class EmulatedClient:
    """One emulated Jabber client.

    Args:
        user_id: the user's id (JID local part, registry key).
        password: the user's password (sent to the CPA, or SASL in XMPP-only mode; never logged).
        home: name of the user's home node in ``runtime.pair``, or None for the pair's first node.
        runtime: the process's shared objects.
        settings: client settings; ``runtime.settings`` when None.
        rng: the client's random source; ``client_random(runtime.run_seed, user_id)`` when None.
        starttls: negotiate STARTTLS when a node offers it.

    Raises:
        ConfigError: unknown home node, or CPA mode without a CPA client in the runtime.
    """

    def __init__(self, user_id: str, password: str, home: str | None, runtime: Runtime,
                 settings: ClientSettings | None = None, rng: random.Random | ClientRandom | None = None,
                 *, starttls: bool = True) -> None:
        self.user_id = user_id
        self._password = password
        self.runtime = runtime
        self.settings = settings if settings is not None else runtime.settings
        if not self.settings.xmpp_only and runtime.cpa is None:
            raise ConfigError("CPA mode needs a runtime with a CPA client", field="xmpp_only")
        rng = rng if rng is not None else client_random(runtime.run_seed, user_id)
        self._activity_seed = rng.getrandbits(64)  # its Random (2.5 KiB) is made on first use
        self._activity_random: random.Random | None = None
        self.machine = ClientMachine(user_id, rng, self.settings, runtime.pair, home_node=home,
                                     registry=runtime.registry)
        self._starttls = starttls
        self._loop = asyncio.get_running_loop()
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._ops: set[asyncio.Task[Any]] = set()
        self._closing: set[asyncio.Task[Any]] = set()
        self._xmpp: XmppSession | None = None
        self._queue: list[ev.Event] = []
        self._feeding = False
        self._stopping = False
        self._login_t0: float | None = None
        self._ha_t0: float | None = None
        self._activity: dict[int, asyncio.TimerHandle] = {}
        self._activity_seq = 0
        self._settled: asyncio.Future[ClientState] | None = None
        self.hostname_hints: list[str] = []
        self.contacts: list[str] = []

    # ----------------------------------------------------------------------------- API ---
    @property
    def _activity_rng(self) -> random.Random:
        """Random source of presence and message activity (idle clients never need one)."""
        if self._activity_random is None:
            self._activity_random = random.Random(self._activity_seed)
        return self._activity_random

    @property
    def state(self) -> ClientState:
        return self.machine.state

    @property
    def xmpp(self) -> XmppSession | None:
        """The current XMPP connection (None between attempts)."""
        return self._xmpp

    async def start(self, *, wait: bool = True) -> ClientState:
        """Sign in (the machine's ``Start``).

        Args:
            wait: return only once the client is XMPPCONNECTED or has ended (bounded by the
                timeouts: the initial login has no re-login waits).

        Returns:
            The state reached (XMPPCONNECTED, GAVE_UP ...; the current state when not waiting).

        Raises:
            LocalProtocolError: the client was started before.
        """
        if self.machine.state is not ClientState.NEW:
            raise LocalProtocolError(f"{self.user_id}: started twice")
        self._login_t0 = self._mono()
        if wait:
            self._settled = self._loop.create_future()
        self._feed(ev.Start())
        if self._settled is not None:
            return await asyncio.shield(self._settled)
        return self.machine.state

    async def stop(self, *, timeout_s: float = 5.0) -> ClientState:
        """Sign out: XMPP close, CPA ``logout``, end state LOGGED_OUT (idempotent).

        Args:
            timeout_s: how long to wait for the graceful close and the logout.

        Returns:
            The end state (LOGGED_OUT, or GAVE_UP when the client had already given up).
        """
        if self.machine.state not in END_STATES:
            self._stopping = True
            self._feed(ev.StopRequested())
        pending = self._closing | self._ops  # logout and close; cancelled attempts winding down
        if pending:
            try:
                await asyncio.wait(pending, timeout=timeout_s)
            finally:  # a sign-out cut short (cancelled) closes its streams all the same
                for task in list(self._closing):
                    task.cancel()
        return self.machine.state

    def send_message(self, to_bare_jid: str | None = None) -> bool:
        """Send one stamped chat message to ``to_bare_jid`` (a random roster contact when None).

        Returns:
            True when sent (connected and a recipient known).
        """
        session = self._xmpp
        if session is None or self.machine.state is not ClientState.XMPPCONNECTED:
            return False
        if to_bare_jid is None:
            if not session.contacts:
                return False
            to_bare_jid = self._activity_rng.choice(session.contacts)
        session.send_chat(to_bare_jid)
        return True

    def change_presence(self) -> bool:
        """Broadcast a random presence change. Returns True when connected."""
        session = self._xmpp
        if session is None or self.machine.state is not ClientState.XMPPCONNECTED:
            return False
        session.change_presence(self._activity_rng.choice(PRESENCE_SHOWS), "jabberemu")
        return True

    # ------------------------------------------------------------------------ machine ---
    def _mono(self) -> float:
        return self.runtime.clock.monotonic()

    def _feed(self, event: ev.Event) -> None:
        """Hand one event to the machine and carry out its commands (never re-entrant)."""
        self._queue.append(event)
        if self._feeding:
            return
        self._feeding = True
        try:
            while self._queue:
                current = self._queue.pop(0)
                try:
                    commands = self.machine.handle(current)
                except LocalProtocolError:
                    logger.exception("%s: machine refused %r in %s", self.user_id, current,
                                     self.machine.state.value)
                    continue
                for command in commands:
                    try:
                        self._do(command)
                    except Exception:
                        logger.exception("%s: carrying out %r failed", self.user_id, command)
        finally:
            self._feeding = False

    def _do(self, cmd: ev.Command) -> None:  # noqa: C901 - one branch per command type
        rt = self.runtime
        if isinstance(cmd, ev.StartTimer):
            self._timers[cmd.timer_id] = self._loop.call_later(
                cmd.delay_s, self._timer_fired, cmd.timer_id)
        elif isinstance(cmd, ev.CancelTimer):
            handle = self._timers.pop(cmd.timer_id, None)
            if handle is not None:
                handle.cancel()
        elif isinstance(cmd, ev.SoapLogin):
            self._spawn(self._soap_login(cmd.node, cmd.otp), self._ops)
        elif isinstance(cmd, ev.FetchOtp):
            self._spawn(self._fetch_otp(cmd.node, cmd.session_key), self._ops)
        elif isinstance(cmd, ev.SoapLogout):
            self._spawn(self._logout(cmd.node, cmd.session_key), self._closing)
        elif isinstance(cmd, ev.XmppConnect):
            self._connect(cmd)
        elif isinstance(cmd, ev.XmppDisconnect):
            self._disconnect(cmd.node)
        elif isinstance(cmd, ev.EnterEndState):
            self._end(cmd)
        elif isinstance(cmd, ev.StateChanged):
            if cmd.from_state is ClientState.XMPPCONNECTED:
                self._stop_activity()
            rt.sink.emit(RecordType.STATE, rt.now_ts(), client=self.user_id, **{
                "from": cmd.from_state.value, "to": cmd.to_state.value}, node=cmd.node,
                reason=cmd.reason, round=cmd.round)
        elif isinstance(cmd, ev.HaEventSeen):
            self._ha_t0 = self._mono()
            rt.sink.emit(RecordType.HA_EVENT, rt.now_ts(), client=self.user_id, node=cmd.node, cls=cmd.cls)
        elif isinstance(cmd, ev.WaitDrawn):
            rt.sink.emit(RecordType.WAIT, rt.now_ts(), client=self.user_id, wait_s=cmd.wait_s,
                         lower_s=cmd.lower_s, upper_s=cmd.upper_s, round=cmd.round)
            rt.report(self.user_id, mx.Measurement.of(mx.HA_WAIT, cmd.wait_s * 1000.0, node=cmd.limits_node))
        elif isinstance(cmd, ev.Connected):
            self._connected(cmd)
        elif isinstance(cmd, ev.AttemptFailed):
            logger.debug("%s: %s on %s failed: %s", self.user_id, cmd.state.value, cmd.node, cmd.cls)
        elif isinstance(cmd, ev.RedirectSeen):
            self._redirect_seen(cmd)
        elif isinstance(cmd, ev.LimitsProblems):
            for problem in cmd.problems:
                key = "limits-missing" if "missing" in problem else "limits-absurd"
                rt.warn_once(key, "re-login limits from %s: %s", cmd.node, problem)
        else:
            raise LocalProtocolError(f"unknown command {type(cmd).__name__}")

    def _redirect_seen(self, cmd: ev.RedirectSeen) -> None:
        """A see-other-host: followed or refused (the failure class says so), or malformed (warned)."""
        if cmd.verdict is RedirectVerdict.MALFORMED:
            self.runtime.warn_once("see-other-host-malformed", "see-other-host from %s names no host[:port] "
                                   "(%r); taken as a plain stream error", cmd.node, cmd.text)
        logger.debug("%s: see-other-host from %s: %r -> %s (%s, hop %d)", self.user_id, cmd.node, cmd.text,
                     cmd.target, cmd.verdict.value, cmd.hop)

    def _timer_fired(self, timer_id: int) -> None:
        self._timers.pop(timer_id, None)
        self._feed(ev.TimerFired(timer_id=timer_id))

    def _spawn(self, coro: Awaitable[None], group: set[asyncio.Task[Any]]) -> None:
        task: asyncio.Task[Any] = self._loop.create_task(coro)  # type: ignore[arg-type]
        group.add(task)
        task.add_done_callback(group.discard)

    def _connected(self, cmd: ev.Connected) -> None:
        rt, now = self.runtime, self._mono()
        recovery_s: float | None = None
        if cmd.relogin and self._ha_t0 is not None:
            recovery_s = now - self._ha_t0
            self._ha_t0 = None
            rt.report(self.user_id, mx.Measurement.of(mx.HA_RELOGIN, recovery_s * 1000.0, node=cmd.node))
        elif not cmd.relogin and self._login_t0 is not None:
            rt.report(self.user_id, mx.Measurement.of(mx.CLIENT_LOGIN, (now - self._login_t0) * 1000.0,
                                                      node=cmd.node))
            self._login_t0 = None
        rt.sink.emit(RecordType.CONNECTED, rt.now_ts(), client=self.user_id, node=cmd.node,
                     relogin=cmd.relogin, recovery_s=recovery_s)
        if self._xmpp is not None:
            self.hostname_hints = list(self._xmpp.hostname_hints)
            self.contacts = list(self._xmpp.contacts)
        self._settle()
        self._start_activity()

    def _end(self, cmd: ev.EnterEndState) -> None:
        rt, now = self.runtime, self._mono()
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        for task in list(self._ops):
            task.cancel()
        self._stop_activity()
        if self._xmpp is not None:
            self._xmpp.kill()
            self._xmpp = None
        failure = RuntimeError(f"{cmd.state.value}: {cmd.reason.value} ({cmd.detail})")
        # the end reason names the failure of the whole sign-in or re-login (docs/failure-causes.md); each
        # attempt's own failure is already counted under its class: not counted twice
        cause = cmd.reason.value
        if self._login_t0 is not None and cmd.reason is not EndReason.STOP_REQUESTED:
            rt.report(self.user_id, mx.Measurement.of(mx.CLIENT_LOGIN, (now - self._login_t0) * 1000.0,
                                                      exception=failure, cause=cause))
        if self._ha_t0 is not None and cmd.reason is not EndReason.STOP_REQUESTED:
            rt.report(self.user_id, mx.Measurement.of(mx.HA_RELOGIN, (now - self._ha_t0) * 1000.0,
                                                      exception=failure, cause=cause))
        self._login_t0 = self._ha_t0 = None
        rt.sink.emit(RecordType.END, rt.now_ts(), client=self.user_id, state=cmd.state.value,
                     reason=cmd.reason.value, detail=cmd.detail)
        logger.debug("%s ended in %s: %s (%s)", self.user_id, cmd.state.value, cmd.reason.value, cmd.detail)
        self._settle()

    def _settle(self) -> None:
        if self._settled is not None and not self._settled.done():
            self._settled.set_result(self.machine.state)

    # --------------------------------------------------------------------------- SOAP ---
    async def _soap_login(self, node: NodeAddress, otp: str | None) -> None:
        """Password sign-in (``otp`` None) or the session login with the cached one-time password."""
        adapter = self.runtime.cpa_adapter
        assert adapter is not None
        if otp is None:
            event = await adapter.sign_in(self.user_id, node, self.settings, password=self._password,
                                          primary=self.machine.primary)
        else:
            event = await adapter.sign_in(self.user_id, node, self.settings, otp=otp, primary=self.machine.primary)
        self._feed(event)

    async def _fetch_otp(self, node: NodeAddress, session_key: str) -> None:
        adapter = self.runtime.cpa_adapter
        assert adapter is not None
        self._feed(await adapter.fetch_otp(self.user_id, node, session_key))

    async def _logout(self, node: NodeAddress, session_key: str) -> None:
        adapter = self.runtime.cpa_adapter
        if adapter is not None:
            await adapter.logout(self.user_id, node, session_key)

    # --------------------------------------------------------------------------- XMPP ---
    def _connect(self, cmd: ev.XmppConnect) -> None:
        if self._xmpp is not None:
            self._xmpp.kill()
        rt = self.runtime
        secret = cmd.otp if cmd.mechanism is SaslMechanism.CISCO_VTG_TOKEN else self._password
        assert secret is not None
        session = XmppSession(
            user_id=self.user_id, domain=rt.pair.domain, node=cmd.node, mechanism=cmd.mechanism,
            secret=secret, ssl_context=rt.ssl_context, timeouts=self.settings.timeouts,
            on_event=self._xmpp_event, report=rt.report, starttls=self._starttls,
            monotonic=rt.clock.monotonic, wall=rt.clock.wall, loop=self._loop, connector=rt.xmpp_connector,
        )
        self._xmpp = session
        session.start()

    def _disconnect(self, node: str) -> None:
        session = self._xmpp
        if session is None or session.node.name != node:
            return
        self._xmpp = None
        if self._stopping:
            self._spawn(session.close(), self._closing)
        else:
            session.kill()

    def _xmpp_event(self, session: XmppSession, event: ev.Event) -> None:
        if session is not self._xmpp:
            return  # a connection the machine already left
        self._feed(event)

    # ----------------------------------------------------------------------- activity ---
    def _start_activity(self) -> None:
        rates = self.settings.activity
        if rates.presence_per_min > 0:
            self._schedule_activity(rates.presence_per_min, self.change_presence)
        if rates.messages_per_min > 0:
            self._schedule_activity(rates.messages_per_min, self.send_message)

    def _schedule_activity(self, per_min: float, action: Any) -> None:
        delay_s = self._activity_rng.expovariate(per_min / 60.0)
        self._activity_seq += 1
        key = self._activity_seq
        self._activity[key] = self._loop.call_later(delay_s, self._activity_due, key, per_min, action)

    def _activity_due(self, key: int, per_min: float, action: Any) -> None:
        """An activity timer fired (no closure: a fired handle must not keep a cycle alive)."""
        self._activity.pop(key, None)
        if self.machine.state is ClientState.XMPPCONNECTED and action():
            self._schedule_activity(per_min, action)

    def _stop_activity(self) -> None:
        for handle in self._activity.values():
            handle.cancel()
        self._activity.clear()
