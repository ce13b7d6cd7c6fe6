"""jabberemu's locustfile: ``locust -f locustfiles/jabber.py`` (or ``jabberemu run``).

One Locust user is one emulated Cisco Jabber client with the run's ``--message-rate`` /
``--presence-rate`` activity. For a population mix, use ``locustfiles/mixes.py`` (idle, chatty,
presence-heavy classes by weight). ``DrillShape`` keeps ``-u/-r/-t`` and fires the ``--drill``
actions on the load clock.
"""

from __future__ import annotations

from locust import events

from jabberemu.loadgen.shape import DrillShape
from jabberemu.loadgen.swarm import install
from jabberemu.loadgen.user import JabberUser

__all__ = ["Jabber", "DrillShape"]

install(events)


class Jabber(JabberUser):
    """A Jabber client with the run's activity options."""
