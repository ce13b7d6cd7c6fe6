"""Re-login waves found and measured while the run data streams by (bounded memory).

The same rules as ``report.waves`` (primary HA events, clusters cut by gaps and admin actions,
anchors), applied one record at a time in time order. Each wave collects, for each of its clients,
only what its measurement reads: the first wait at or after the client's HA event, its first
``connected`` after it, its CPA login requests (``storm.CPA_LOGINS``), its ``state`` records up to
XMPPCONNECTED or GAVE_UP, and its ``end`` record. A client's part is *done* once it is back
(``connected`` and the XMPPCONNECTED state seen), :data:`END_GRACE_S` after its ``end`` record, or
when it lost its session again (its next primary HA event). A wave is measured
(``waves.measure_wave``, ``storm.storms``, ``prediction.predict``, on a
:class:`~jabberemu.report.records.RunData` holding only its clients' records) once its cluster is
closed and every client's part is done, then handed to ``on_wave`` and kept without its per-client
arrays: memory holds the open waves, not the run.

Our choices where streaming differs from loading everything (both documented in
docs/ARCHITECTURE.md): a client's CPA login after it is back and before its next HA event is not
counted in the wave (the Jabber client logs in again only after an HA event); a wave still open
:data:`FORCE_CLOSE_S` after its last HA event + upper limit + margin is measured as it stands (its
stragglers count as not recovered).
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from jabberemu.report.prediction import WavePrediction, predict, without_censored
from jabberemu.report.records import (
    Action,
    ConnectedRecord,
    EndRecord,
    HaEventRecord,
    RequestRecord,
    RunData,
    RunInfo,
    StateRecord,
    WaitRecord,
)
from jabberemu.report.storm import CPA_LOGINS, ServerRows, WaveStorm, storms
from jabberemu.report.waves import Member, Wave, anchor_action, measure_wave, pending_count
from jabberemu.rundata.records import ClientRecord

__all__ = ["FORCE_CLOSE_S", "MeasuredWave", "WaveCallback", "WaveStream"]

FORCE_CLOSE_S = 3600.0
"""A wave still open this long after its last HA event + upper + margin is measured as it stands."""
END_GRACE_S = 30.0
"""A client's part of a wave is done this many seconds (of data) after its ``end`` record: records
written after it still count, as when everything is loaded."""

_BACK_STATES = frozenset({"XMPPCONNECTED", "GAVE_UP"})


@dataclass(frozen=True, kw_only=True)
class MeasuredWave:
    """One wave as measured: the wave, what it did to the servers, the model's prediction."""

    wave: Wave
    storm: WaveStorm
    prediction: WavePrediction | None


WaveCallback = Callable[[MeasuredWave], None]
"""Called once per wave with its full arrays (for per-wave figures), before they are dropped."""


@dataclass(eq=False)
class _Part:
    event: HaEventRecord
    wave: _OpenWave
    until_ts: float = float("inf")
    wait: WaitRecord | None = None
    connected: ConnectedRecord | None = None
    back: bool = False  # XMPPCONNECTED or GAVE_UP state seen
    ended_ts: float | None = None
    done: bool = False


@dataclass(eq=False)
class _OpenWave:
    index: int
    action: Action | None
    first_ts: float
    last_ts: float
    parts: list[_Part] = field(default_factory=list)
    open_parts: int = 0
    closed: bool = False  # no more HA events join
    upper_s: float = 0.0  # the highest upper limit its clients drew from
    requests: list[RequestRecord] = field(default_factory=list)
    states: list[StateRecord] = field(default_factory=list)
    waits: list[WaitRecord] = field(default_factory=list)
    ends: list[EndRecord] = field(default_factory=list)


def _strip(w: Wave) -> Wave:
    empty = np.empty(0)
    return replace(w, ha_t=empty, waits_s=empty, recovery_s=empty, relogin_t=empty, relogin_node=(), members=(),
                   until_t=empty)


class WaveStream:
    """Finds and measures waves from client records fed in time order.

    Args:
        info: ``run.json``.
        actions: the run's admin actions (``RunData.actions``).
        gap_s, skew_s: as ``waves.find_waves``.
        margin_s: the recovery margin (s).
        server: the nodes' metric rows (complete before the first record is fed).
        on_wave: called with each measured wave.
        run_dir: the run directory (for the per-wave :class:`RunData`).
    """

    def __init__(self, info: RunInfo, actions: Sequence[Action], *, gap_s: float, skew_s: float, margin_s: float,
                 server: ServerRows, on_wave: WaveCallback | None = None, run_dir: Path = Path(".")) -> None:
        self.info = info
        self.actions = [a for a in actions if a.kind.starts_waves]
        self.cuts = sorted(a.ts - skew_s for a in self.actions)
        self.gap_s = gap_s
        self.skew_s = skew_s
        self.margin_s = margin_s
        self.server = server
        self.on_wave = on_wave
        self.run_dir = run_dir
        self.home: dict[str, str | None] = {}
        self._last_primary: dict[str, float] = {}
        self._armed: set[str] = set()
        self._part: dict[str, _Part] = {}
        self._current: _OpenWave | None = None
        self._open: list[_OpenWave] = []
        self._previous_last = float("-inf")
        self._next_index = 0
        self.measured: list[MeasuredWave] = []
        self.peak_open_parts = 0
        self.forced = 0
        self._next_check = float("-inf")
        self._ended: deque[_Part] = deque()

    # -- feeding ------------------------------------------------------------------------------

    def add(self, rec: ClientRecord) -> None:
        """One client record, in time order."""
        if isinstance(rec, HaEventRecord):
            self._ha_event(rec)
        elif isinstance(rec, ConnectedRecord):
            if not rec.relogin and rec.client not in self.home:
                self.home[rec.client] = rec.node
            last = self._last_primary.get(rec.client)
            if last is None or rec.ts > last:
                self._armed.add(rec.client)
        part = self._part.get(getattr(rec, "client", ""))
        if part is not None and rec.ts >= part.event.ts:
            self._route(part, rec)
        if rec.ts >= self._next_check:  # once a second of data: clusters and waves that time closed
            self._next_check = rec.ts + 1.0
            self._by_time(rec.ts)

    def _ha_event(self, ev: HaEventRecord) -> None:
        client = ev.client
        if client in self._last_primary and client not in self._armed:
            return  # a follow-up: no session since the client's last primary HA event
        self._armed.discard(client)
        self._last_primary[client] = ev.ts
        old = self._part.get(client)
        if old is not None:
            old.until_ts = ev.ts
            self._done(old)
        cur = self._current
        if cur is not None:
            i = bisect.bisect_right(self.cuts, cur.last_ts)
            cut_between = i < len(self.cuts) and self.cuts[i] <= ev.ts
            if ev.ts - cur.last_ts > self.gap_s or cut_between:
                self._close_cluster(cur)
                cur = None
        if cur is None:
            action = anchor_action([ev], self.actions, self._previous_last, self.skew_s)
            cur = self._current = _OpenWave(index=self._next_index, action=action, first_ts=ev.ts, last_ts=ev.ts)
            self._next_index += 1
            self._open.append(cur)
        cur.last_ts = ev.ts
        part = _Part(event=ev, wave=cur)
        cur.parts.append(part)
        cur.open_parts += 1
        self._part[client] = part
        self.peak_open_parts = max(self.peak_open_parts, len(self._part))

    def _route(self, part: _Part, rec: ClientRecord) -> None:
        wave = part.wave
        if isinstance(rec, WaitRecord):
            if part.wait is None:
                part.wait = rec
            wave.waits.append(rec)
            wave.upper_s = max(wave.upper_s, rec.upper_s)
        elif isinstance(rec, ConnectedRecord):
            if part.connected is None and rec.ts > part.event.ts:
                part.connected = rec
        elif isinstance(rec, StateRecord):
            if not part.back:
                wave.states.append(rec)
                part.back = rec.to_state in _BACK_STATES
        elif isinstance(rec, RequestRecord):
            if rec.request_type == "soap" and rec.name in CPA_LOGINS:
                wave.requests.append(rec)
        elif isinstance(rec, EndRecord):
            wave.ends.append(rec)
            if part.ended_ts is None:
                part.ended_ts = rec.ts
                self._ended.append(part)
        if part.back and part.connected is not None:
            self._done(part)

    def _done(self, part: _Part) -> None:
        if part.done:
            return
        part.done = True
        wave = part.wave
        wave.open_parts -= 1
        if self._part.get(part.event.client) is part:
            del self._part[part.event.client]
        self._maybe_measure(wave)

    def _close_cluster(self, wave: _OpenWave) -> None:
        wave.closed = True
        self._previous_last = wave.last_ts
        if self._current is wave:
            self._current = None
        self._maybe_measure(wave)

    def _by_time(self, now_ts: float) -> None:
        while self._ended and (self._ended[0].ended_ts or 0.0) < now_ts - END_GRACE_S:
            self._done(self._ended.popleft())
        cur = self._current
        if cur is not None and now_ts - cur.last_ts > self.gap_s:  # no later HA event can join it
            self._close_cluster(cur)
        for wave in list(self._open):
            upper = max(wave.upper_s, self.info.upper_s or 0.0)
            if now_ts > wave.last_ts + upper + self.margin_s + FORCE_CLOSE_S:
                if not wave.closed:
                    self._close_cluster(wave)
                for part in wave.parts:
                    if not part.done:
                        self.forced += 1
                        self._done(part)

    def _maybe_measure(self, wave: _OpenWave) -> None:
        if not wave.closed or wave.open_parts > 0 or wave not in self._open:
            return
        self._open.remove(wave)
        members = [Member(event=p.event, until_ts=p.until_ts, wait=p.wait, connected=p.connected,
                          home=self.home.get(p.event.client), has_home=p.event.client in self.home)
                   for p in wave.parts]
        measured = measure_wave(wave.index, members, wave.action, self.info, margin_s=self.margin_s,
                                run_end=float("inf"), gave_up=frozenset())
        key = lambda r: r.ts  # noqa: E731
        data = RunData(run_dir=self.run_dir, info=self.info, states=sorted(wave.states, key=key),
                       waits=sorted(wave.waits, key=key), requests=sorted(wave.requests, key=key),
                       ends=sorted(wave.ends, key=key))
        (storm,) = storms(data, [measured], server=self.server)
        prediction = predict(data, measured, storm)
        result = MeasuredWave(wave=measured, storm=storm, prediction=prediction)
        if self.on_wave is not None:
            self.on_wave(result)
        self.measured.append(replace(result, wave=_strip(measured)))
        wave.parts.clear()

    # -- the end ------------------------------------------------------------------------------

    def finish(self, *, run_end: float, gave_up: set[str]) -> list[MeasuredWave]:
        """Measure the waves still open (end of the data) and count each wave's pending clients.

        Args:
            run_end: end of the run (epoch s).
            gave_up: clients whose end state is GAVE_UP.
        Returns:
            Every wave, in order.
        """
        for wave in list(self._open):
            wave.closed = True
            for part in wave.parts:
                part.done = True
            wave.open_parts = 0
            self._part = {c: p for c, p in self._part.items() if p.wave is not wave}
            self._maybe_measure(wave)
        out = []
        for m in sorted(self.measured, key=lambda m: m.wave.index):
            pending = pending_count(m.wave, margin_s=self.margin_s, run_end=run_end, t0=self.info.started_ts,
                                    gave_up=gave_up)
            prediction = without_censored(m.prediction) if pending and m.prediction is not None else m.prediction
            out.append(replace(m, wave=replace(m.wave, pending=pending), prediction=prediction))
        return out

    @property
    def open_waves(self) -> int:
        """Waves not measured yet."""
        return len(self._open)
