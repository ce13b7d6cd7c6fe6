"""What the swarm reads from the mock pair's admin API before the run (nothing on a real pair: each
answer falls back to the default it names): where users are homed, the first node's login model, the
highest re-login upper limit the nodes hand out. Blocking ``requests`` calls (gevent-patched in Locust).
"""

from __future__ import annotations

import logging
from typing import Any

import requests

from jabberemu.loadgen.options import Assignment

__all__ = ["detect_assignment", "mock_login_model", "mock_upper_limit"]

logger = logging.getLogger(__name__)


def detect_assignment(admin_url: str) -> Assignment:
    """Ask the mock's ``/api/status`` where users are homed: all on node 1 = Active-Standby.

    Returns:
        ACTIVE_STANDBY when every node after the first has no assigned user, else BALANCED (also
        when the admin API cannot be read: the mock's default).
    """
    if not admin_url:
        return Assignment.BALANCED
    try:
        nodes = requests.get(admin_url.rstrip("/") + "/api/status", timeout=10).json()["nodes"]
        counts = [int(n.get("assigned_users", 0)) for n in nodes]
    except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
        logger.warning("could not read the user assignment from %s (%s); assuming balanced", admin_url, exc)
        return Assignment.BALANCED
    if len(counts) > 1 and counts[0] > 0 and not any(counts[1:]):
        return Assignment.ACTIVE_STANDBY
    return Assignment.BALANCED


def mock_login_model(admin_url: str) -> dict[str, Any] | None:
    """The first node's login admission settings as the mock reports them (``/api/status``), or None
    on a real pair or when it cannot be read (docs/login-model.md §1)."""
    if not admin_url:
        return None
    try:
        nodes = requests.get(admin_url.rstrip("/") + "/api/status", timeout=10).json()["nodes"]
        model = nodes[0].get("login_model")
        return dict(model) if isinstance(model, dict) else None
    except (requests.RequestException, ValueError, KeyError, TypeError, IndexError) as exc:
        logger.debug("login model of the mock not read from %s: %s", admin_url, exc)
        return None


def mock_upper_limit(admin_url: str) -> float | None:
    """The highest Client Re-Login Upper Limit the mock's nodes hand out (``/api/parameters``), or
    None on a real pair or when it cannot be read."""
    if not admin_url:
        return None
    try:
        params = requests.get(admin_url.rstrip("/") + "/api/parameters", timeout=10).json()
        return max(float(p["relogin_upper_s"]) for p in params.values())
    except (requests.RequestException, ValueError, KeyError, TypeError, AttributeError) as exc:
        logger.debug("re-login limits of the mock not read from %s: %s", admin_url, exc)
        return None
