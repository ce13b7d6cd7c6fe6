"""Asyncio shell of the login model (``login.cost.LoginCostModel``): makes a CPA login wait its turn.

The model decides; this shell keeps time with the loop's clock and timers: one ``loop.call_at``
timer for the next start of a queued login, one per login in service for the end of its service
time, and one future per admitted login that the CPA handler awaits until the login may answer.

Abandonment is real: when a client gives up (its SOAP timeout) and closes the connection, aiohttp
cancels the handler (the node's runner enables ``handler_cancellation``, opt-in since aiohttp 3.9)
and the cancelled :meth:`LoginAdmission.admit` takes the login out of the queue, or, when it is
already in service, leaves it its worker until its service time is over and counts it
``abandoned_in_service``.

Only the CPA ``login`` is charged (docs/login-model.md §1); XMPP authentication is free.
"""

from __future__ import annotations

import asyncio
import logging

from mock_server.login.cost import LoginCostModel, LoginCostSettings, LoginInterval
from mock_server.login.ticket import Ticket, TicketKind

__all__ = ["LoginAdmission"]

logger = logging.getLogger(__name__)


class LoginAdmission:
    """Login admission of one node, on the running loop.

    Args:
        settings: rate, burst, workers, service time, queue limit (default: free logins).
    """

    def __init__(self, settings: LoginCostSettings | None = None) -> None:
        self.model = LoginCostModel(settings)
        self._answers: dict[int, asyncio.Future[None]] = {}  # ticket id -> resolved at end of service
        self._services: dict[int, asyncio.TimerHandle] = {}  # ticket id -> end-of-service timer
        self._start_timer: asyncio.TimerHandle | None = None
        self._start_at: float | None = None
        self._closed = False

    async def admit(self) -> bool:
        """Wait until this login may answer: it started, and its service time is over.

        Returns:
            True: answer now (success or any other fault; the node did the work). False: refused
            busy at once (fault ``server-busy``).

        Raises:
            asyncio.CancelledError: the caller was cancelled (the client went away); the login
                is abandoned (see the module docstring).
        """
        loop = asyncio.get_running_loop()
        now = loop.time()
        ticket = self.model.arrive(now)
        if ticket.kind is TicketKind.BUSY:
            return False
        answer: asyncio.Future[None] = loop.create_future()
        self._answers[ticket.id] = answer
        if ticket.kind is TicketKind.STARTED:
            self._serve(ticket, now)
        self._pump()
        try:
            await answer
        except asyncio.CancelledError:
            self._give_up(ticket)
            raise
        return True

    def _give_up(self, ticket: Ticket) -> None:
        self._answers.pop(ticket.id, None)
        if self._closed or not self.model.is_live(ticket):
            return  # answered in the same loop pass as the client left: nothing to undo
        state = self.model.abandon(ticket, asyncio.get_running_loop().time())
        logger.debug("login %s abandoned (%s)", ticket.id, state.value)
        self._pump()

    def _serve(self, ticket: Ticket, now: float) -> None:
        """Hold the worker of a started login until ``done_s``, then answer."""
        done_s = ticket.done_s
        assert done_s is not None
        if done_s <= now:
            self._finish(ticket)
        else:
            self._services[ticket.id] = asyncio.get_running_loop().call_at(done_s, self._end_of_service, ticket)

    def _end_of_service(self, ticket: Ticket) -> None:
        self._services.pop(ticket.id, None)
        self._finish(ticket)
        self._pump()

    def _finish(self, ticket: Ticket) -> None:
        self.model.complete(ticket, asyncio.get_running_loop().time())
        answer = self._answers.pop(ticket.id, None)
        if answer is not None and not answer.done():
            answer.set_result(None)

    def _pump(self) -> None:
        """Start what is due (a completion at once may free a worker: repeat), re-arm the timer."""
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            started = self.model.start_due(now)
            if not started:
                break
            for ticket in started:
                self._serve(ticket, now)
        start_at = self.model.next_start_at()
        if start_at == self._start_at:
            return
        if self._start_timer is not None:
            self._start_timer.cancel()
        self._start_at = start_at
        self._start_timer = None if start_at is None else loop.call_at(start_at, self._on_start_timer)

    def _on_start_timer(self) -> None:
        self._start_timer = self._start_at = None
        self._pump()

    def close(self) -> None:
        """Stop every timer (node shutdown); waiting handlers are left to their cancellation."""
        self._closed = True
        if self._start_timer is not None:
            self._start_timer.cancel()
        for handle in self._services.values():
            handle.cancel()
        self._services.clear()

    @property
    def queue_depth(self) -> int:
        """Logins waiting now."""
        return self.model.queue_depth

    def take_interval(self) -> LoginInterval:
        """The model's interval summary at the loop's current time (one call per metrics row)."""
        return self.model.take_interval(asyncio.get_running_loop().time())
