"""``JabberUser``: one Locust user = one emulated Cisco Jabber client.

The client lives on the process's asyncio loop (``swarm.SWARM.bridge``): ``on_start`` signs it in
and waits for XMPPCONNECTED (or its end state), the user then idles while the client's own timers
drive its activity (presence, messages, pings) and its HA behaviour (re-login waits), and
``on_stop`` signs it out. Every login, re-login and stanza reaches Locust's statistics through the
bridge, timed inside the loop. Configure mixes by class attributes (``activity``), not code.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, ClassVar

import gevent
from locust import User, constant, task

from jabberemu.config import ActivityRates
from jabberemu.core.metrics import CLIENT_LOGIN, Measurement
from jabberemu.core.states import ClientState, EndReason
from jabberemu.driver import EmulatedClient
from jabberemu.errors import JabberEmuError
from jabberemu.loadgen.bridge import BridgeTimeoutError
from jabberemu.loadgen.options import UserSpec
from jabberemu.loadgen.swarm import SWARM
from jabberemu.runtime import RecordType

__all__ = ["JabberUser", "IdleJabberUser", "ChattyJabberUser", "PresenceJabberUser", "IDLE_WAKE_S", "LOGIN_TIMEOUT_S"]

logger = logging.getLogger(__name__)

IDLE_WAKE_S = 3600.0
"""How often an idle user's greenlet wakes (it only keeps the user alive)."""

LOGIN_TIMEOUT_S = 600.0
"""Upper bound on one initial sign-in, queueing on a throttled server included."""


class JabberUser(User):
    """Abstract base: subclass it, set ``weight`` and optionally ``activity``.

    Attributes:
        activity: activity rates of this class's clients; None = the run's ``--message-rate`` /
            ``--presence-rate``.
    """

    abstract = True
    #: The greenlet has nothing to do once signed in (the client lives on the loop thread); a long
    #: wait keeps 2,000 greenlets from waking every second and contending for the GIL with the
    #: loop thread. Stopping kills the wait at once, as before.
    wait_time = constant(IDLE_WAKE_S)
    activity: ClassVar[ActivityRates | None] = None

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.client: EmulatedClient | None = None
        self.spec: UserSpec | None = None

    def on_start(self) -> None:
        """Take the next user, build its client on the loop and sign it in.

        Whatever fails, the user shows as a ``client/login`` failure and, once it has a user id,
        as an ``end`` record (GAVE_UP) in the run data: nobody vanishes. A user that cannot even
        get an id (``--users-csv`` too short, master not answering) idles without a client.
        """
        try:
            spec = SWARM.next_user()
        except (JabberEmuError, gevent.Timeout) as exc:
            self._login_failed(None, exc)
            return  # no client: the user idles (StopUser here would print a traceback)
        self.spec = spec
        settings = SWARM.settings
        if settings is not None and self.activity is not None:
            settings = replace(settings, activity=self.activity)
        try:  # one hand-off to the loop per login: build the client there and sign it in
            SWARM.bridge.submit(_sign_in, self, spec, settings, timeout_s=LOGIN_TIMEOUT_S)
        except BridgeTimeoutError as exc:
            self._login_failed(spec.user_id, exc, ended=False)  # the client records its own end state when stopped
        except JabberEmuError as exc:
            self._login_failed(spec.user_id, exc, ended=self.client is None)

    def _login_failed(self, user_id: str | None, exc: BaseException, *, ended: bool = True) -> None:
        """A login that failed outside its client: a failed ``client/login`` on the measurements' one road
        (``Runtime.report``: Locust, and the run data when there is a user id) and, for a user whose client
        was never built (``ended``), its ``end`` record."""
        logger.error("client %s could not start: %s", user_id or "(no user id)", exc)
        runtime = SWARM.runtime
        if runtime is None:  # events.init failed: the process is ending (exit 2)
            return
        runtime.report(user_id, Measurement.of(CLIENT_LOGIN, 0.0, exception=exc))
        if user_id is not None and ended:
            runtime.sink.emit(RecordType.END, runtime.now_ts(), client=user_id, state=ClientState.GAVE_UP.value,
                              reason=EndReason.INITIAL_LOGIN_FAILED.value, error=f"{type(exc).__name__}: {exc}"[:300])

    @task
    def stay_signed_in(self) -> None:
        """The client works on the loop; the greenlet only keeps the user alive."""
        gevent.sleep(0)

    def on_stop(self) -> None:
        """Start the client's sign-out and return: the process waits for every sign-out once, when its
        users are stopped (:mod:`jabberemu.loadgen.signout`: a greenlet waiting here kept ~13 KiB and
        42 objects)."""
        client = self.client
        if client is not None:
            SWARM.sign_outs.start(client)


async def _sign_in(user: JabberUser, spec: UserSpec, settings: Any) -> None:
    """On the loop: build the user's client (``user.client`` is set before the sign-in starts, so that
    ``on_stop`` can sign out a client whose login outlived the greenlet's wait) and sign it in."""
    assert SWARM.runtime is not None
    client = EmulatedClient(spec.user_id, spec.password, spec.home, SWARM.runtime, settings)
    user.client = client
    await client.start()


class IdleJabberUser(JabberUser):
    """Signed in, idle: pings only (the bulk of a real Jabber population)."""

    weight = 8
    activity = ActivityRates(presence_per_min=0.0, messages_per_min=0.0)


class ChattyJabberUser(JabberUser):
    """Sends a 1:1 message to a roster contact every ~20 s."""

    weight = 1
    activity = ActivityRates(presence_per_min=0.5, messages_per_min=3.0)


class PresenceJabberUser(JabberUser):
    """Changes presence every ~30 s (away, dnd, available ...)."""

    weight = 1
    activity = ActivityRates(presence_per_min=2.0, messages_per_min=0.0)
