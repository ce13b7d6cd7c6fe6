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
from jabberemu.driver import EmulatedClient
from jabberemu.loadgen.swarm import SWARM

__all__ = ["JabberUser", "IdleJabberUser", "ChattyJabberUser", "PresenceJabberUser", "LOGIN_TIMEOUT_S"]

logger = logging.getLogger(__name__)

LOGIN_TIMEOUT_S = 600.0
"""Upper bound on one initial sign-in, queueing on a throttled server included."""


class JabberUser(User):
    """Abstract base: subclass it, set ``weight`` and optionally ``activity``.

    Attributes:
        activity: activity rates of this class's clients; None = the run's ``--message-rate`` /
            ``--presence-rate``.
    """

    abstract = True
    wait_time = constant(1.0)
    activity: ClassVar[ActivityRates | None] = None

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.client: EmulatedClient | None = None
        self.spec = None

    def on_start(self) -> None:
        spec = SWARM.next_user()
        self.spec = spec
        settings = SWARM.settings
        if settings is not None and self.activity is not None:
            settings = replace(settings, activity=self.activity)
        self.client = SWARM.bridge.submit(_make_client, spec.user_id, spec.password, spec.home, settings, timeout_s=30)
        SWARM.bridge.submit(self.client.start, timeout_s=LOGIN_TIMEOUT_S)

    @task
    def stay_signed_in(self) -> None:
        """The client works on the loop; the greenlet only keeps the user alive."""
        gevent.sleep(0)

    def on_stop(self) -> None:
        client = self.client
        if client is None:
            return
        try:
            SWARM.bridge.submit(client.stop, timeout_s=15)
        except Exception:
            logger.warning("%s did not sign out cleanly", client.user_id, exc_info=True)


async def _make_client(user_id: str, password: str, home: str | None, settings: Any) -> EmulatedClient:
    assert SWARM.runtime is not None
    return EmulatedClient(user_id, password, home, SWARM.runtime, settings)


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
