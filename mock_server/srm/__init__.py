"""The Server Recovery Manager (SRM) of one IM and Presence node: a pure, table-driven state machine.

What lives here, in reading order (the shape of ``jabberemu/core/``):

- ``states``: node states and reasons as Cisco names them, the peer frame kinds, and the one
  transition table (``TABLE``) with its diagram;
- ``events``: events in, commands out, the peer frame, the SRM errors;
- ``machine``: ``SrmMachine.handle(event) -> list[Command]``, one table lookup per event.

May import: the standard library and the shared root ``mock_server.params``; nothing else of the
mock. Who runs it: ``mock_server.node.srm_driver`` (timers, heartbeats, the peer link). The package
re-exports every public name, so ``from mock_server import srm`` then ``srm.NodeState`` reads as one
vocabulary.
"""

from __future__ import annotations

from mock_server.srm import events, machine, states
from mock_server.srm.events import *  # noqa: F403
from mock_server.srm.machine import *  # noqa: F403
from mock_server.srm.states import *  # noqa: F403

__all__ = sorted({*states.__all__, *events.__all__, *machine.__all__})
