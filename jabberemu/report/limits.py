"""The re-login limits a run used, and where the report learned them (the header's "limits").

``run.json`` ``lower_s`` / ``upper_s`` are the client's *defaults* (``--default-lower/-upper``),
used only when a server hands out none. What the clients actually cached at login is in every
``wait`` record (``lower_s``, ``upper_s``), so the report prefers, in this order (our choice):

1. **the clients' waits**: the limits most waits were drawn from (with the other pairs seen, when
   the nodes handed out different ones);
2. **the mock's parameters**: ``run.json`` ``server_parameters`` (``GET /api/parameters`` of the
   mock pair at the start of the run: each node's ``relogin_lower_s`` / ``relogin_upper_s``), for a
   run in which no client drew a wait;
3. **the client defaults**, labelled as such.
"""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass, field

from jabberemu.report.records import RunInfo, WaitRecord

__all__ = ["LimitsBuilder", "LimitsSeen", "LimitsSource", "limits_of"]


class LimitsSource(enum.Enum):
    """Where the limits shown come from."""

    WAITS = "the clients' waits (what the server handed out at login)"
    SERVER_PARAMETERS = "the mock's /api/parameters at the start of the run"
    CLIENT_DEFAULTS = "client defaults (--default-lower/--default-upper): no wait recorded, no server parameters"


@dataclass(frozen=True, kw_only=True)
class LimitsSeen:
    """The run's re-login limits (s) and their source; ``by_limits``: (lower, upper) -> waits drawn
    from them (several pairs: the nodes were configured apart)."""

    lower_s: float | None
    upper_s: float | None
    source: LimitsSource
    waits: int = 0
    by_limits: dict[tuple[float, float], int] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """``120–537 s (from the clients' waits ...)`` for the report's header."""
        def s(v: float | None) -> str:
            return "?" if v is None else f"{v:g}"

        text = f"{s(self.lower_s)}–{s(self.upper_s)} s (from {self.source.value}"
        if self.source is LimitsSource.WAITS:
            text += f", {self.waits} waits"
            if len(self.by_limits) > 1:
                text += "; also " + ", ".join(f"{lo:g}–{up:g} s ({n})" for (lo, up), n in
                                              list(self.by_limits.items())[1:])
        return text + ")"


class LimitsBuilder:
    """Counts the limits of each ``wait`` record (memory: one entry per distinct pair)."""

    def __init__(self) -> None:
        self.pairs: Counter[tuple[float, float]] = Counter()

    def add(self, w: WaitRecord) -> None:
        """One ``wait`` record."""
        self.pairs[(w.lower_s, w.upper_s)] += 1

    def result(self, info: RunInfo) -> LimitsSeen:
        """The limits, by the order of the module docstring."""
        if self.pairs:
            (lo, up), _ = self.pairs.most_common(1)[0]
            return LimitsSeen(lower_s=lo, upper_s=up, source=LimitsSource.WAITS, waits=sum(self.pairs.values()),
                              by_limits=dict(self.pairs.most_common()))
        params = info.extra.get("server_parameters")
        if isinstance(params, dict):
            pairs: Counter[tuple[float, float]] = Counter()
            for node_params in params.values():
                if isinstance(node_params, dict):
                    low, high = node_params.get("relogin_lower_s"), node_params.get("relogin_upper_s")
                    if isinstance(low, (int, float)) and isinstance(high, (int, float)):
                        pairs[(float(low), float(high))] += 1
            if pairs:
                (lo, up), _ = pairs.most_common(1)[0]
                return LimitsSeen(lower_s=lo, upper_s=up, source=LimitsSource.SERVER_PARAMETERS,
                                  by_limits=dict(pairs.most_common()))
        return LimitsSeen(lower_s=info.lower_s, upper_s=info.upper_s, source=LimitsSource.CLIENT_DEFAULTS)


def limits_of(waits: list[WaitRecord], info: RunInfo) -> LimitsSeen:
    """:class:`LimitsBuilder` over loaded wait records."""
    b = LimitsBuilder()
    for w in waits:
        b.add(w)
    return b.result(info)
