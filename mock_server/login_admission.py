"""Asyncio side of the login cost model: make a CPA login wait for its turn, or refuse it.

The pure model (``login_cost.LoginCostModel``) decides; this wrapper sleeps. The cost is charged
on the CPA ``login`` (where a real IM&P node does its database work for a Jabber sign-in); XMPP
authentication with the one-time password that follows it is not charged again (our choice).
"""

from __future__ import annotations

import asyncio
import time

from mock_server.login_cost import AdmissionKind, LoginCostModel, LoginCostSettings

__all__ = ["LoginAdmission"]


class LoginAdmission:
    """Login admission of one node.

    Args:
        rate_per_s: sustained logins per second; None = unlimited.
        burst: logins that may start back to back.
        service_ms: milliseconds one login occupies once started.
        queue_limit: logins that may wait; beyond it a login is refused ("server busy").
    """

    def __init__(
        self, *, rate_per_s: float | None = None, burst: int = 1, service_ms: float = 0.0, queue_limit: int = 10_000
    ) -> None:
        self.model = LoginCostModel(
            LoginCostSettings(rate_per_s=rate_per_s, burst=burst, service_ms=service_ms, queue_limit=queue_limit)
        )

    async def admit(self) -> bool:
        """Wait until this login may answer; False when the queue is full (fault ``server-busy``)."""
        admission = self.model.admit(time.monotonic())
        if admission.kind is AdmissionKind.BUSY:
            return False
        delay_s = admission.wait_s + admission.service_s
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        return True

    def try_now(self) -> bool:
        """XMPP authentication: not charged (see the module docstring)."""
        return True

    @property
    def queue_depth(self) -> int:
        """Logins waiting now."""
        return self.model.queue_depth(time.monotonic())

    def counters(self) -> dict[str, int]:
        """Cumulative counters: attempts, started, queued, busy."""
        c = self.model.counters(time.monotonic())
        return {"attempts": c.attempts, "started": c.started, "queued": c.queued, "busy": c.busy}
