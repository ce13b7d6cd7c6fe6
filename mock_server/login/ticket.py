"""The life of one login at a node's admission (docs/login-model.md §1): pure data and one table.

:class:`Ticket` is what ``login.cost.LoginCostModel`` hands its caller for each login; a login it
admitted goes through the states of :data:`TRANSITIONS` (waiting, in service, dropping when its client
left while in service, answered, abandoned when its client left while waiting); the lookup
:func:`next_state` raises :class:`LoginTicketError` on any other step.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["TRANSITIONS", "LoginState", "LoginStep", "LoginTicketError", "Ticket", "TicketKind", "next_state"]


class TicketKind(enum.Enum):
    """What ``LoginCostModel.arrive`` decided (and what ``LoginCostModel.start_due`` reports)."""

    STARTED = "started"  # in service from ``started_s``
    QUEUED = "queued"  # waits at the tail of the queue
    BUSY = "busy"  # refused at arrival: answer ``server-busy`` now


class LoginState(enum.Enum):
    """Where one admitted login is."""

    WAITING = "waiting"
    IN_SERVICE = "in-service"
    DROPPING = "dropping"  # in service, client gone: runs to its end, answer dropped
    ANSWERED = "answered"
    ABANDONED = "abandoned"  # left the queue, never served


class LoginStep(enum.Enum):
    """What happens to an admitted login."""

    START = "start"
    COMPLETE = "complete"
    ABANDON = "abandon"


TRANSITIONS: dict[tuple[LoginState, LoginStep], LoginState] = {
    (LoginState.WAITING, LoginStep.START): LoginState.IN_SERVICE,
    (LoginState.WAITING, LoginStep.ABANDON): LoginState.ABANDONED,
    (LoginState.IN_SERVICE, LoginStep.COMPLETE): LoginState.ANSWERED,
    (LoginState.IN_SERVICE, LoginStep.ABANDON): LoginState.DROPPING,
    (LoginState.DROPPING, LoginStep.COMPLETE): LoginState.ANSWERED,
}
"""The life of one admitted login; anything else raises :class:`LoginTicketError`."""


class LoginTicketError(ValueError):
    """A step the login's state does not allow, or a ticket the model no longer tracks.

    Attributes:
        ticket_id: the ticket concerned.
        state: its state, or None when it is not live (refused busy, answered, abandoned).
        step: the step asked for.
    """

    def __init__(self, ticket_id: int, state: LoginState | None, step: LoginStep) -> None:
        where = state.value if state is not None else "not live"
        super().__init__(f"login ticket {ticket_id}: cannot {step.value} while {where}")
        self.ticket_id = ticket_id
        self.state = state
        self.step = step


@dataclass(frozen=True, kw_only=True)
class Ticket:
    """One login attempt as the model saw it (times in the caller's seconds).

    Attributes:
        id: unique per model, in arrival order.
        kind: STARTED (``started_s`` set), QUEUED or BUSY.
        arrived_s: arrival time.
        started_s: start of service; None unless STARTED.
        service_s: S, the time it holds its worker once started.
    """

    id: int
    kind: TicketKind
    arrived_s: float
    started_s: float | None = None
    service_s: float = 0.0

    @property
    def done_s(self) -> float | None:
        """When the service ends (``started_s + service_s``); None unless started."""
        return None if self.started_s is None else self.started_s + self.service_s

    @property
    def wait_s(self) -> float | None:
        """Queue wait, arrival to start; None unless started."""
        return None if self.started_s is None else self.started_s - self.arrived_s


def next_state(ticket_id: int, state: LoginState | None, step: LoginStep) -> LoginState:
    """Look ``(state, step)`` up in :data:`TRANSITIONS`.

    Args:
        ticket_id: for the error message.
        state: the login's state, None when the model no longer tracks it.
        step: what happens.

    Returns:
        The new state.

    Raises:
        LoginTicketError: the table has no such row.
    """
    new = TRANSITIONS.get((state, step)) if state is not None else None
    if new is None:
        raise LoginTicketError(ticket_id, state, step)
    return new
