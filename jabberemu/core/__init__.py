"""Pure, sans-IO core of the emulated Jabber client (standard library only).

May import: the standard library only; no I/O, no asyncio, no protocol library. The adapters
(``soap/``, ``xmpp/``) and the driver feed it events.

Re-exports the public names of :mod:`~jabberemu.core.states`, :mod:`~jabberemu.core.events`,
:mod:`~jabberemu.core.machine`, :mod:`~jabberemu.core.relogin`, :mod:`~jabberemu.core.redirect`,
:mod:`~jabberemu.core.metrics` and :mod:`~jabberemu.core.registry`.
"""

from __future__ import annotations

from jabberemu.core import events, machine, metrics, redirect, registry, relogin, states
from jabberemu.core.events import *  # noqa: F403
from jabberemu.core.machine import *  # noqa: F403
from jabberemu.core.metrics import *  # noqa: F403
from jabberemu.core.redirect import *  # noqa: F403
from jabberemu.core.registry import *  # noqa: F403
from jabberemu.core.relogin import *  # noqa: F403
from jabberemu.core.states import *  # noqa: F403

__all__ = sorted(
    {*states.__all__, *events.__all__, *machine.__all__, *relogin.__all__, *metrics.__all__,
     *registry.__all__, *redirect.__all__}
)
