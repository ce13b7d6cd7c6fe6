"""The one vocabulary of HA actions: what a ``--drill`` step says, what ``run.json`` records, what
the report reads back.

A drill step is written ``KIND[:NODE[:ARG]]@T`` (``jabberemu.loadgen.schedule``); ``run.json``
``actions[].action`` records its :attr:`ActionKind.value` (``service-stop:SERVICE`` with its
argument); the report maps a recorded verb back with :meth:`ActionKind.parse`, which also reads the
spellings of older run directories and of the mock's admin events (``node-kill``, ``service-down``,
``ha-enable`` ...). ``jabberemu drill --fault`` names *scenarios* (a fault and the steps that undo
it), built out of these steps (``jabberemu.drill``).
"""

from __future__ import annotations

import enum

__all__ = ["ActionKind"]


class ActionKind(enum.Enum):
    """What an HA action does (admin API of the mock pair; Cisco admin actions where they exist).

    ``OTHER`` is never scheduled: it is what :meth:`parse` gives an unknown recorded verb (the raw
    verb stays in the report's ``Action.name``).
    """

    FAILOVER = "failover"
    FALLBACK = "fallback"
    RECOVER = "recover"
    SERVICE_STOP = "service-stop"
    SERVICE_START = "service-start"
    KILL = "kill"
    RESTART = "restart"
    PARTITION = "partition"
    HEAL = "heal"
    HA_ON = "ha-on"
    HA_OFF = "ha-off"
    MARK = "mark"  # an operator's action on a real pair, recorded with --drill mark:TEXT@T
    STOP = "stop"  # the drill's end
    OTHER = "other"

    @classmethod
    def schedulable(cls) -> tuple[ActionKind, ...]:
        """The kinds a ``--drill`` step may name (every kind but ``OTHER``)."""
        return tuple(k for k in cls if k is not cls.OTHER)

    @classmethod
    def parse(cls, verb: str) -> ActionKind:
        """Map a recorded verb (``failover``, ``node_kill``, ``kill``, ``service-stop:SERVICE`` ...) to a kind.

        Args:
            verb: the ``action`` string of a ``run.json`` action, any case, ``_`` or ``-``.
        Returns:
            The kind; ``OTHER`` when the verb is not known.
        """
        key = verb.strip().lower().replace("_", "-").replace(" ", "-").split(":", 1)[0]
        return _ALIASES.get(key, cls.OTHER)

    @property
    def needs_node(self) -> bool:
        """True for steps that name the node they act on."""
        return self in (ActionKind.FAILOVER, ActionKind.FALLBACK, ActionKind.SERVICE_STOP, ActionKind.SERVICE_START,
                        ActionKind.KILL, ActionKind.RESTART)

    @property
    def moves_sessions_away(self) -> bool:
        """True for actions that make a node drop its users (a failover-type HA event)."""
        return self in (ActionKind.FAILOVER, ActionKind.KILL, ActionKind.SERVICE_STOP, ActionKind.PARTITION)

    @property
    def starts_waves(self) -> bool:
        """True for actions that may start a re-login wave: those that move sessions away, the ones
        that bring them back (Fallback, Recover), enabling HA (with a critical service down it fails
        over at once) and an operator's mark on a real pair. Not a service restart, a node restart
        or a heal: they move nobody by themselves (docs/srm.md)."""
        return self.moves_sessions_away or self in (ActionKind.FALLBACK, ActionKind.RECOVER, ActionKind.HA_ON,
                                                    ActionKind.MARK)


_ALIASES: dict[str, ActionKind] = {k.value: k for k in ActionKind}
_ALIASES.update({
    "node-kill": ActionKind.KILL, "node-restart": ActionKind.RESTART,
    "service-down": ActionKind.SERVICE_STOP, "stop-service": ActionKind.SERVICE_STOP,
    "service-up": ActionKind.SERVICE_START, "start-service": ActionKind.SERVICE_START,
    "ha-enable": ActionKind.HA_ON, "enable-ha": ActionKind.HA_ON,
    "ha-disable": ActionKind.HA_OFF, "disable-ha": ActionKind.HA_OFF,
})
