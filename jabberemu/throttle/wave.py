"""The fast model of a re-login wave: every client's attempts on both nodes, all replicas at once.

Client behaviour (docs/login-model.md §2): round 1 at the drawn wait; in a **failover** wave the
attempt on the failed home node fails at once at no cost, so round 1 is one attempt on the serving
node (the backup); in a **fallback** wave round 1 is an attempt on the serving node (home) and, if
that fails, one on the other node at the failure instant (charged, answered ``not-served-here`` at
best). A failed round draws its round-2 wait from the drawn ``round2_s``, counted from the failure
instant; round 2 goes the same way; a failed round 2 is GAVE_UP. An answered login on the serving
node ends the re-login at its answer (XMPP and the rest count as zero).

**Interleaving rounds, one pass in time slabs.** Round-2 arrivals interleave in time with round-1
stragglers on the same node, and in a FIFO queue an arrival can only be decided once every earlier
arrival is known. Every re-entry into round 2 comes at least ``lower_s`` after the arrival whose
failure caused it (failure instant >= that arrival, wait >= lower_s). So cut time into slabs of
width ``w = lower_s * (1 - 1e-6)`` (the margin keeps float rounding of ``t / w`` from moving a
re-entry into its cause's slab; a check raises if it ever did): every arrival in slab j is caused
by an arrival in a slab < j, or is a round-1 arrival (known from the start), or (fallback) an
attempt at the other node caused by a failure at the serving node in a slab <= j. Processing slab j
as "serving node, then other node", each node's arrivals of the slab are all known when the node
runs them, and a node receives its arrivals in time order across slabs, so feeding them to its
:class:`~jabberemu.throttle.admission.NodeQueue` (whose state persists between slabs) is exactly
the single-pass FIFO recurrence over the whole merged stream. No fixed-point iteration is needed;
the number of slabs is about (horizon / lower_s) and only non-empty slabs cost anything.

**Why numpy and not a simulation library.** 25,000 clients x 200 replicas is 5 M clients and up to
~20 M events; an event-driven library (SimPy: a generator resume and a heap operation per event)
needs minutes for that. Replicas are independent and share one recurrence, so vectorising across
replicas turns the Python-level loop into one step per arrival *rank*: ~N to 4N steps of ~15
numpy operations on arrays of R elements. ``reference.py`` is the straightforward event-driven
simulator of the same spec; the tests require both to agree client by client.

Tie order at one instant: answers, give-ups, starts, arrivals; simultaneous arrivals at one node are
taken in (round, client) order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar, cast

import numpy as np
from numpy.typing import NDArray

from jabberemu.throttle.admission import NodeQueue
from jabberemu.throttle.errors import ModelInputError
from jabberemu.throttle.model import (
    AttemptOutcome,
    ClientFate,
    ClientOutcomes,
    FloatArray,
    IntArray,
    NodeAttempts,
    ServerModel,
    WaveKind,
    WaveSpec,
    Waits,
)

__all__ = ["SLAB_MARGIN", "simulate_clients"]

#: Relative margin by which a slab is narrower than the lower limit (see the module docstring).
SLAB_MARGIN = 1e-6

_Slots = NDArray[np.int32]
_Index = NDArray[np.int64]
_T = TypeVar("_T", bound=np.generic)


@dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class _Source:
    """Generated arrivals at one node, ``(m + 1, R)``, each column sorted by time; the last row and
    any other +inf time are "no arrival" (slot = the dummy client N of round 1).

    A *slot* codes (round, client) as ``(round - 1) * (N + 1) + client``: its order is the tie
    order (round, client), and it indexes a node's ``(R, 2, N + 1)`` record arrays directly.
    """

    time: FloatArray
    slot: _Slots


class _Node:
    """A node's queue plus the record of its attempts, ``(R, 2, N + 1)`` (one dummy client)."""

    def __init__(self, server: ServerModel, replicas: int, clients: int, timeout_s: float) -> None:
        self.server = server
        self.queue = NodeQueue(server, replicas=replicas, soap_timeout_s=timeout_s)
        self.arrival = np.full((replicas, 2, clients + 1), np.nan)
        self.start = np.full((replicas, 2, clients + 1), np.nan)
        self.outcome = np.zeros((replicas, 2, clients + 1), dtype=np.int8)
        self.pending: dict[int, list[tuple[_Source, _Index, _Index]]] = {}

    def attempts(self) -> NodeAttempts:
        n = self.arrival.shape[2] - 1

        def view(a: NDArray[_T]) -> NDArray[_T]:
            return a[:, :, :n].transpose(1, 0, 2)

        return NodeAttempts(arrival_s=view(self.arrival), start_s=view(self.start), outcome=view(self.outcome),
                            queue_peak=self.queue.queue_peak.copy())


class _Engine:
    def __init__(self, wave: WaveSpec, serving: ServerModel, other: ServerModel | None, waits: Waits) -> None:
        self.wave = wave
        self.waits = waits
        self.replicas, self.clients = waits.replicas, waits.clients
        self.timeout_s = float(wave.soap_timeout_s)
        self.width = float(wave.lower_s) * (1.0 - SLAB_MARGIN)
        self.fallback = wave.kind is WaveKind.FALLBACK
        self.serving = _Node(serving, self.replicas, self.clients, self.timeout_s)
        self.other = _Node(other or serving, self.replicas, self.clients, self.timeout_s) if self.fallback else None
        self.recovery = np.full((self.replicas, self.clients + 1), np.nan)
        self.fate = np.zeros((self.replicas, self.clients + 1), dtype=np.int8)
        self.round2 = np.concatenate((waits.round2_s, np.zeros((self.replicas, 1))), axis=1)
        self._cols = np.arange(self.replicas, dtype=np.int64)
        self._dummy = np.int32(self.clients)

    # --- pending arrivals, bucketed by slab ------------------------------------------------------

    def _take(self, array: NDArray[_T], rows: _Index) -> NDArray[_T]:
        """``array[rows[i, r], r]`` for an ``(m, R)`` C-contiguous array (faster than take_along_axis)."""
        return cast("NDArray[_T]", array.reshape(-1)[rows * self.replicas + self._cols])

    def _add(self, node: _Node, time: FloatArray, slot: _Slots, min_slab: int) -> None:
        """Compact and sort generated arrivals per column; file each slab's column ranges under it.

        Sorting is skipped when the compacted columns are already in time order (round 1 from
        :func:`~jabberemu.throttle.model.draw_waits`; failures of one kind at the serving node).
        """
        valid = np.isfinite(time)
        width = int(valid.sum(axis=0).max())
        if width == 0:
            return
        r = self.replicas
        packed_t = np.full((width + 1) * r, np.inf)  # one more row: the "no arrival" row
        packed_s = np.full((width + 1) * r, self._dummy, dtype=np.int32)
        if width < time.shape[0]:
            flat = np.flatnonzero(valid)
            dest = (np.cumsum(valid, axis=0) - 1).reshape(-1)[flat] * r + flat % r
            packed_t[dest] = time.reshape(-1)[flat]
            packed_s[dest] = slot.reshape(-1)[flat]
        else:
            packed_t[: width * r] = time.reshape(-1)
            packed_s[: width * r] = slot.reshape(-1)
        t2, s2 = packed_t.reshape(width + 1, r), packed_s.reshape(width + 1, r)
        if (t2[1:] < t2[:-1]).any():
            order = np.argsort(t2, axis=0)
            t2, s2 = self._take(t2, order), self._take(s2, order)
        valid = np.isfinite(t2)
        key = np.floor(np.where(valid, t2, 0.0) / self.width).astype(np.int64)
        kmin, kmax = int(key[valid].min()), int(key[valid].max())
        if kmin < min_slab:
            raise AssertionError(f"arrival in slab {kmin} < {min_slab}: lower_s too small for float resolution")
        nk = kmax - kmin + 1
        bucket = np.where(valid, key - kmin, nk) * r + self._cols
        counts = np.bincount(bucket.reshape(-1), minlength=(nk + 1) * r).reshape(nk + 1, r)[:nk]
        starts = np.cumsum(counts, axis=0) - counts
        src = _Source(time=t2, slot=s2)
        for i in np.nonzero(counts.any(axis=1))[0].tolist():
            node.pending.setdefault(kmin + i, []).append((src, starts[i], counts[i]))

    def _batch(self, node: _Node, slab: int) -> tuple[FloatArray, _Slots] | None:
        """All arrivals of ``slab`` at ``node``, ``(m, R)``, each column sorted by (time, slot)."""
        parts = [self._gather(*entry) for entry in node.pending.pop(slab, [])]
        if not parts:
            return None
        if len(parts) == 1:
            time, slot = parts[0]
        else:
            time = np.concatenate([p[0] for p in parts])
            order = np.argsort(time, axis=0, kind="stable")
            time, slot = self._take(time, order), self._take(np.concatenate([p[1] for p in parts]), order)
        tied = ((time[1:] == time[:-1]) & np.isfinite(time[1:])).any(axis=0)
        for col in np.nonzero(tied)[0].tolist():  # rare: simultaneous arrivals, in (round, client) order
            o = np.lexsort((slot[:, col], time[:, col]))
            time[:, col], slot[:, col] = time[o, col], slot[o, col]
        return time, slot

    def _gather(self, src: _Source, lo: _Index, cnt: _Index) -> tuple[FloatArray, _Slots]:
        width = int(cnt.max())
        step = np.arange(width)[:, None]
        rows = np.where(step < cnt[None, :], lo[None, :] + step, src.time.shape[0] - 1)
        return self._take(src.time, rows), self._take(src.slot, rows)

    # --- one node, one slab --------------------------------------------------------------------

    def _client_of(self, slot: _Slots) -> _Slots:
        """The client of a slot (either round)."""
        n1 = np.int32(self.clients + 1)
        return np.where(slot >= n1, slot - n1, slot)

    def _per_client(self, client: _Slots) -> _Index:
        """Flat index of (replica, client) into a ``(R, N + 1)`` array (rows broadcast)."""
        return self._cols * (self.clients + 1) + client

    def _run(self, node: _Node, time: FloatArray, slot: _Slots) -> tuple[FloatArray, IntArray, FloatArray]:
        """Feed a batch to a node and record the attempts; returns start, outcome, end-of-attempt time."""
        adm = node.queue.admit(time)
        where = self._cols * (2 * (self.clients + 1)) + slot  # padding lands in the dummy client
        node.arrival.reshape(-1)[where] = time
        node.start.reshape(-1)[where] = adm.start_s
        node.outcome.reshape(-1)[where] = adm.outcome
        done_s = np.where(adm.outcome == AttemptOutcome.REFUSED_BUSY, time,
                          np.where(adm.outcome == AttemptOutcome.ANSWERED, adm.start_s + float(node.server.service_s),
                                   time + self.timeout_s))
        return adm.start_s, adm.outcome, done_s

    def _round_failed(self, failed: NDArray[np.bool_], done_s: FloatArray, slot: _Slots, slab: int) -> None:
        """Round 1 failed -> round 2 after its wait; round 2 failed -> GAVE_UP."""
        first = slot <= self._dummy
        again = failed & first
        if again.any():
            wait = self.round2.reshape(-1)[self._per_client(np.where(first, slot, self._dummy))]
            self._add(self.serving, np.where(again, done_s + wait, np.inf), slot + np.int32(self.clients + 1),
                      slab + 1)
        gone = failed & ~first
        if gone.any():
            self.fate.reshape(-1)[self._per_client(np.where(gone, self._client_of(slot), self._dummy))] = (
                ClientFate.GAVE_UP)

    def _serving_slab(self, time: FloatArray, slot: _Slots, slab: int) -> None:
        start, outcome, done_s = self._run(self.serving, time, slot)
        ok = outcome == AttemptOutcome.ANSWERED
        target = self._per_client(np.where(ok, self._client_of(slot), self._dummy))
        self.recovery.reshape(-1)[target] = done_s
        self.fate.reshape(-1)[target] = np.where(slot > self._dummy, ClientFate.RECOVERED_ROUND_2,
                                                 ClientFate.RECOVERED_ROUND_1)
        failed = ~ok & (outcome != AttemptOutcome.NONE)
        if self.other is not None:  # refused (at arrival) and timed out (arrival + T): each in time order
            busy = outcome == AttemptOutcome.REFUSED_BUSY
            self._add(self.other, np.where(busy, done_s, np.inf), slot, slab)
            self._add(self.other, np.where(failed & ~busy, done_s, np.inf), slot, slab)
        else:
            self._round_failed(failed, done_s, slot, slab)

    def _other_slab(self, time: FloatArray, slot: _Slots, slab: int) -> None:
        _, outcome, done_s = self._run(self.other, time, slot) if self.other is not None else (None, None, None)
        assert outcome is not None and done_s is not None
        self._round_failed(outcome != AttemptOutcome.NONE, done_s, slot, slab)  # never served there

    # --- the pass --------------------------------------------------------------------------------

    def run(self) -> ClientOutcomes:
        r, n = self.replicas, self.clients
        self._add(self.serving, np.ascontiguousarray(self.waits.round1_s.T),
                  np.broadcast_to(np.arange(n, dtype=np.int32)[:, None], (n, r)), 0)
        nodes = [self.serving] + ([self.other] if self.other is not None else [])
        while True:
            keys = [k for node in nodes for k in node.pending]
            if not keys:
                break
            j = min(keys)
            batch = self._batch(self.serving, j)
            if batch is not None:
                self._serving_slab(*batch, slab=j)
            if self.other is not None:
                batch = self._batch(self.other, j)
                if batch is not None:
                    self._other_slab(*batch, slab=j)
        fate = self.fate[:, :n]
        if (fate == ClientFate.UNKNOWN).any():
            raise AssertionError("a client without a fate after the last slab")
        return ClientOutcomes(wave=self.wave, serving_model=self.serving.server,
                              other_model=self.other.server if self.other else None, waits=self.waits,
                              serving=self.serving.attempts(), other=self.other.attempts() if self.other else None,
                              recovery_s=self.recovery[:, :n], fate=fate)


def simulate_clients(wave: WaveSpec, serving: ServerModel, waits: Waits, *,
                     other: ServerModel | None = None) -> ClientOutcomes:
    """Simulate every client of every replica of a wave, given the drawn waits (fast model).

    Args:
        wave: clients, kind, limits and SOAP timeout. ``wave.clients`` must equal the waits' columns.
        serving: admission of the serving node (the backup in a failover wave, home in a fallback).
        waits: the drawn waits (e.g. :func:`~jabberemu.throttle.model.draw_waits`); round-2 waits
            must be >= ``wave.lower_s``.
        other: admission of the other node in a fallback wave; default the same as ``serving``.
            Ignored in a failover wave (the failed node costs nothing).

    Returns:
        Per-client outcomes: attempts at both nodes, recovery time and fate.

    Raises:
        ModelInputError: waits do not match the wave.
    """
    if waits.clients != wave.clients:
        raise ModelInputError("waits", waits.round1_s.shape, f"has {waits.clients} clients, the wave {wave.clients}")
    if float(waits.round2_s.min()) < wave.lower_s:
        raise ModelInputError("waits.round2_s", float(waits.round2_s.min()),
                              f"round-2 waits must be >= lower_s {wave.lower_s:g} s")
    return _Engine(wave, serving, other, waits).run()
