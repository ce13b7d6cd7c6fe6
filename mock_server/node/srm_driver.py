"""The SRM of one node, run on the node's loop: the machine's timers, heartbeats and commands.

:class:`SrmDriver` owns the pure ``srm.SrmMachine`` and carries out what it decides: timers on the
loop, frames to the peer, the critical services it stops and starts, which users the node serves,
which streams to close, user moves and transition records. It also keeps the monitored services as
the admin switched them, so it alone answers whether the node's critical services run.

What it needs of the rest of the node comes in as callables (``send``, ``emit``, ``disconnect``,
``peer_gone``), so this module imports nothing else of the node.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from mock_server import srm

__all__ = ["Emit", "SrmDriver"]

Emit = Callable[[dict[str, Any]], None]
"""Pushes one event dict to the supervisor (transitions, services, disconnects)."""

_PEER_GONE = frozenset({srm.Reason.PEER_DOWN, srm.Reason.PEER_REBOOT, srm.Reason.PEER_DOWN_DURING_INITIALIZATION})


class SrmDriver:
    """Runs one node's SRM machine.

    Args:
        machine: the node's SRM machine (not started).
        send: sends an SRM frame to the peer (dropped while the link is down).
        emit: pushes an event to the supervisor.
        disconnect: closes the XMPP streams of a user group with this stream error condition;
            returns how many it closed.
        peer_gone: the peer went away with its users (Peer Down or Peer Reboot while this node
            takes over): forget what it told us about them.
    """

    def __init__(self, machine: srm.SrmMachine, *, send: Callable[[srm.PeerMessage], None], emit: Emit,
                 disconnect: Callable[[srm.UserGroup, str], int], peer_gone: Callable[[], None]) -> None:
        self.machine = machine
        self.serving = srm.ServeSet.NONE
        self.services: dict[srm.MonitoredService, bool] = dict.fromkeys(srm.ALWAYS_CRITICAL, True)
        self.stopped = False  # critical services stopped by the SRM (a manual failover), not the admin
        self._send = send
        self._emit = emit
        self._disconnect = disconnect
        self._peer_gone = peer_gone
        self._timers: dict[srm.Timer, asyncio.TimerHandle] = {}

    def services_running(self) -> bool:
        """Whether the node's critical services run (neither the SRM nor the admin stopped one)."""
        return not self.stopped and all(self.services.get(s, True) for s in srm.ALWAYS_CRITICAL)

    def start(self) -> None:
        """Carry out the machine's initial commands."""
        self.run(self.machine.start())

    def stop(self) -> None:
        """Cancel every running timer."""
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()

    def handle(self, event: srm.Event) -> None:
        """Feed one event to the machine and carry out its commands.

        Raises:
            srm.SrmTransitionError: the machine refuses the event in its state.
        """
        self.run(self.machine.handle(event))

    def heard(self, message: srm.PeerMessage) -> None:
        """A frame from the peer."""
        self.handle(srm.PeerMessageReceived(message=message))

    def run(self, commands: list[srm.Command]) -> None:
        """Carry out the machine's commands, in order."""
        loop = asyncio.get_running_loop()
        for cmd in commands:
            if isinstance(cmd, srm.SendToPeer):
                self._send(cmd.message)
            elif isinstance(cmd, srm.StartTimer):
                old = self._timers.pop(cmd.timer, None)
                if old is not None:
                    old.cancel()
                self._timers[cmd.timer] = loop.call_later(cmd.delay_s, self._timer_due, cmd.timer)
            elif isinstance(cmd, srm.CancelTimer):
                running = self._timers.pop(cmd.timer, None)
                if running is not None:
                    running.cancel()
            elif isinstance(cmd, srm.StopCriticalServices):
                self.stopped = True
                self._emit({"kind": "service", "service": "critical", "to": "stopped", "by": "srm"})
            elif isinstance(cmd, srm.StartCriticalServices):
                self.stopped = False
                self._emit({"kind": "service", "service": "critical", "to": "running", "by": "srm"})
            elif isinstance(cmd, srm.ServeUsers):
                self.serving = cmd.users
            elif isinstance(cmd, srm.DisconnectUsers):
                n = self._disconnect(cmd.group, cmd.stream_error)
                self._emit({"kind": "disconnect", "group": cmd.group.value, "condition": cmd.stream_error, "count": n})
            elif isinstance(cmd, srm.BeginUserMove):
                # Sessions and OTPs are already replicated: the move itself is immediate here.
                loop.call_soon(self.handle, srm.UsersMoved(move=cmd.move, ok=True))
            elif isinstance(cmd, srm.RecordTransition):
                if cmd.to_state is srm.NodeState.BACKUP and cmd.reason in _PEER_GONE:
                    self._peer_gone()
                self._emit(
                    {
                        "kind": "transition",
                        "from": cmd.from_state.value,
                        "to": cmd.to_state.value,
                        "reason": cmd.reason.value,
                    }
                )

    async def heartbeats(self) -> None:
        """Send the machine's heartbeat to the peer every ``heartbeat_interval_s``, forever."""
        while True:
            self._send(self.machine.heartbeat())
            await asyncio.sleep(self.machine.params.heartbeat_interval_s)

    # -- timers ------------------------------------------------------------------------------------
    def _timer_due(self, timer: srm.Timer) -> None:
        """A timer expired. The heartbeat timeout is checked once more on the next loop pass: a loop
        that stalled (busy node, busy machine) runs due timers in the same pass as the socket reads
        that carry the peer's late heartbeats, but the peer link's reader task only sees those
        bytes on the next pass; the heartbeat re-arms the timer there and the check is void."""
        handle = self._timers.get(timer)
        if timer is srm.Timer.HEARTBEAT_TIMEOUT and handle is not None:
            asyncio.get_running_loop().call_soon(self._timer_still_due, timer, handle)
        else:
            self._timer_fired(timer)

    def _timer_still_due(self, timer: srm.Timer, handle: asyncio.TimerHandle) -> None:
        if self._timers.get(timer) is handle:  # not re-armed meanwhile
            self._timer_fired(timer)

    def _timer_fired(self, timer: srm.Timer) -> None:
        self._timers.pop(timer, None)
        self.handle(srm.TimerFired(timer=timer))
