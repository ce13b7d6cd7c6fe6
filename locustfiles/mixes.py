"""A population mix: 80% idle, 10% chatty, 10% presence-heavy Jabber clients.

``locust -f locustfiles/mixes.py --headless -u N -r R -t T --topology FILE``
"""

from locust import events

from jabberemu.loadgen.shape import DrillShape  # noqa: F401
from jabberemu.loadgen.swarm import install
from jabberemu.loadgen.user import ChattyJabberUser, IdleJabberUser, PresenceJabberUser  # noqa: F401

install(events)
