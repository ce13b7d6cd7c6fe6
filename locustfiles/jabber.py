"""Locust entry point: ``locust -f locustfiles/jabber.py --headless -u N -r R -t T --topology FILE``."""

from jabberemu.loadgen.locustfile import *  # noqa: F401,F403
from jabberemu.loadgen.locustfile import __all__  # noqa: F401
