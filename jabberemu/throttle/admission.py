"""One node's login admission (docs/login-model.md §1) as a recurrence over arrivals, vectorised
across replicas.

The node is a FIFO queue behind a token bucket (rate R, burst B), C workers with service time S,
a queue limit Q, and clients that give up after their SOAP timeout T. Arrivals are fed in time
order; the k-th arrival (time a, deadline d = a + T) is decided from the state the earlier ones
left, because in a FIFO queue nobody behind can change the fate of anybody ahead:

* **would-be start** ``s = max(a, tok, free)``: ``tok`` is when the bucket next holds a token
  (generic cell rate algorithm: ``tok = tat - (B-1)/R``, bucket full at first; taking a token at
  s sets ``tat = max(tat, s) + 1/R``), ``free`` is when a worker is next free: the oldest of the
  last C ``start + S`` (a ring per replica).
* **refused busy** iff it cannot start at once (``s > a``) and Q logins wait. The logins waiting
  at a are the accepted ones with ``leave > a``, ``leave = min(s, d)`` (start or give-up), so
  "Q wait" is "the Q-th most recent accepted login leaves after a" (one look-up in the history of
  leave times, kept per replica).
* **accepted** otherwise: it **starts** iff ``s < d``; it is **answered** iff also
  ``s + S <= d``; started but not answered = timed out **in service** (holds its worker and its
  token to the end, spec §1.4); not started = timed out **waiting** (consumed nothing, so the state
  is left untouched and whoever is behind starts when it would have).

Why no ``max`` with the previous start is needed, why the ring's oldest entry is the earliest free
worker, and why the look-up above counts the waiting logins: **would-be starts are
non-decreasing** in arrival order. By induction: if login k-1 did not start, login k sees the same
state and a later arrival. If it started at its arrival, s_k >= a_k >= a_(k-1). If it started at
its token (s = tok, so tat >= s), the next token is at s + 1/R. If it started at its worker (the
ring's oldest entry, by induction the smallest, as entries enter in start order), the ring's new
oldest entry is no smaller. Hence starts, ring entries (start + S) and ``leave = min(s, a + T)``
are all non-decreasing, and the accepted logins that have left by a are a prefix of them.
**Queue peak**: the depth right after arrival k is the number of accepted logins up to k still
waiting; it grows by at most one per arrival, so the running peak P grows iff the (P+1)-th most
recent accepted login (k included) leaves after a_k.

Ties at one instant follow the order answers, give-ups, starts, arrivals (the reference
simulator uses the same order): a login whose start would fall exactly on its deadline has given
up first; one answered exactly at its deadline is answered; a login that left at a is not
waiting when another arrives at a.

Each step is 10 to 30 numpy operations (more with each of R, C, Q set) on arrays of ``replicas``
elements; the Python loop runs once per arrival rank, so the cost is ~ (arrivals per replica) x
(numpy call overhead, ~0.5 us), nearly independent of the number of replicas up to a few hundred.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jabberemu.throttle.errors import ModelInputError
from jabberemu.throttle.model import AttemptOutcome, FloatArray, IntArray, ServerModel

__all__ = ["Admitted", "NodeQueue"]

_BoolArray = np.ndarray[tuple[int, ...], np.dtype[np.bool_]]


@dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class Admitted:
    """The fate of a batch of arrivals, ``(m, replicas)`` like the batch.

    Attributes:
        start_s: start of service (NaN: never started, or padding).
        outcome: :class:`AttemptOutcome` codes (NONE for padding).
        leave_s: when the login stopped waiting (start or give-up; NaN: not accepted or padding).
    """

    start_s: FloatArray
    outcome: IntArray
    leave_s: FloatArray


class NodeQueue:
    """Login admission of one node in ``replicas`` independent replicas; keeps its state between
    batches, so a long arrival stream may be fed in consecutive time slabs.

    Args:
        server: the node's admission parameters.
        replicas: independent replicas (columns of every batch), >= 1.
        soap_timeout_s: the clients' SOAP timeout T (s), > 0.

    Raises:
        ModelInputError: replicas < 1 or timeout <= 0.
    """

    def __init__(self, server: ServerModel, *, replicas: int, soap_timeout_s: float) -> None:
        if replicas < 1:
            raise ModelInputError("replicas", replicas, "must be >= 1")
        if not soap_timeout_s > 0:
            raise ModelInputError("soap_timeout_s", soap_timeout_s, "must be > 0 s")
        self.server = server
        self.replicas = replicas
        self.soap_timeout_s = float(soap_timeout_s)
        self._rows = np.arange(replicas)
        self._tat = np.full(replicas, -np.inf)  # bucket full since ever
        self._workers = server.workers
        self._ring = np.full((replicas, server.workers or 1), -np.inf)  # last C start + S
        self._started = np.zeros(replicas, dtype=np.int64)
        # leave times of the accepted logins in arrival order, position 1...; position 0 = -inf
        self._hist = np.full((replicas, 1024), -np.inf)
        self._accepted = np.zeros(replicas, dtype=np.int64)
        self._last_arrival = np.full(replicas, -np.inf)
        #: The most logins that waited at once so far, per replica.
        self.queue_peak = np.zeros(replicas, dtype=np.int64)

    def admit(self, arrival_s: FloatArray) -> Admitted:
        """Decide a batch of arrivals.

        Args:
            arrival_s: ``(m, replicas)``; each column non-decreasing, real arrivals first, then
                +inf padding; every arrival no earlier than any of earlier batches' in its column.

        Returns:
            Start, outcome and leave time of every entry.

        Raises:
            ModelInputError: wrong shape, NaN, or arrivals out of time order.
        """
        a_all = np.ascontiguousarray(arrival_s, dtype=np.float64)
        if a_all.ndim != 2 or a_all.shape[1] != self.replicas:
            raise ModelInputError("arrival_s", a_all.shape, f"must be (m, {self.replicas})")
        valid = np.isfinite(a_all)
        if np.isnan(a_all).any() or (a_all == -np.inf).any():
            raise ModelInputError("arrival_s", a_all.shape, "NaN or -inf arrival")
        if a_all.shape[0] and ((a_all[1:] < a_all[:-1]).any() or (a_all[0] < self._last_arrival).any()):
            raise ModelInputError("arrival_s", a_all.shape, "arrivals must be non-decreasing in time")
        m = a_all.shape[0]
        srv = self.server
        service = float(srv.service_s)
        d_all = a_all + self.soap_timeout_s
        s_all = np.empty_like(a_all)
        st_all = np.empty(a_all.shape, dtype=np.bool_)
        acc_all = valid.copy()
        self._loop(a_all, d_all, s_all, st_all, acc_all)
        if m:
            np.maximum(self._last_arrival, np.where(valid, a_all, -np.inf).max(axis=0), out=self._last_arrival)
        answered = st_all & (s_all + service <= d_all)
        outcome = np.full(a_all.shape, AttemptOutcome.NONE, dtype=np.int8)
        outcome[valid & ~acc_all] = AttemptOutcome.REFUSED_BUSY
        outcome[acc_all & ~st_all] = AttemptOutcome.TIMED_OUT_WAITING
        outcome[st_all & ~answered] = AttemptOutcome.TIMED_OUT_IN_SERVICE
        outcome[answered] = AttemptOutcome.ANSWERED
        leave = np.where(acc_all, np.minimum(s_all, d_all), np.nan)
        return Admitted(start_s=np.where(st_all, s_all, np.nan), outcome=outcome, leave_s=leave)

    def _loop(self, a_all: FloatArray, d_all: FloatArray, s_all: FloatArray, st_all: _BoolArray,
              acc_all: _BoolArray) -> None:
        """The recurrence: fill would-be starts, started and accepted flags row by row (module doc).

        Also keeps the leave time of every accepted login (``_hist``) for the queue limit and the
        peak: "Q wait at a" is "the Q-th most recent accepted login leaves after a"; the depth grows
        by at most one per arrival, so the peak P grows iff the (P+1)-th most recent accepted login
        (this one included) leaves after a.
        """
        srv = self.server
        n = self.replicas
        need = int(self._accepted.max()) + a_all.shape[0] + 2
        if need > self._hist.shape[1]:
            grown = np.full((n, max(need, 2 * self._hist.shape[1])), -np.inf)
            grown[:, : self._hist.shape[1]] = self._hist
            self._hist = grown
        hist = self._hist.reshape(-1)
        hbase = self._rows * self._hist.shape[1]
        write = hbase + self._accepted + 1  # where the next accepted login's leave goes
        peak1 = self.queue_peak + 1
        rate = srv.rate_per_s
        inv_rate = 1.0 / rate if rate is not None else 0.0
        lag = (srv.burst - 1) * inv_rate
        service = float(srv.service_s)
        tat, tmp = self._tat, np.empty(n)
        c, ring, started = self._workers, self._ring.reshape(-1), self._started
        wbase = self._rows * (c or 1)
        idx = wbase.copy()
        q = srv.queue_limit
        hidx = np.empty(n, dtype=np.int64)
        late, busy, leave = np.empty(n, dtype=np.bool_), np.empty(n, dtype=np.bool_), np.empty(n)
        free = np.empty(n)
        for k in range(a_all.shape[0]):
            a, d, s, st, acc = a_all[k], d_all[k], s_all[k], st_all[k], acc_all[k]
            if c is not None:
                if c > 1:
                    np.remainder(started, c, out=idx)
                    idx += wbase
                free = ring[idx]
            if rate is not None:
                np.subtract(tat, lag, out=s)
                np.maximum(s, a, out=s)
                if c is not None:
                    np.maximum(s, free, out=s)
            elif c is not None:
                np.maximum(a, free, out=s)
            else:
                np.copyto(s, a)
            np.less(s, d, out=st)
            if q is not None:
                np.greater(s, a, out=late)
                if q > 0:  # the q-th most recent accepted login, or -inf at the row's start
                    np.subtract(write, q, out=hidx)
                    np.maximum(hidx, hbase, out=hidx)
                    np.greater(hist[hidx], a, out=busy)
                    late &= busy
                np.greater(acc, late, out=acc)  # accepted = valid and not (late and Q wait)
                st &= acc
            np.minimum(s, d, out=leave)
            hist[write] = leave
            write += acc
            np.subtract(write, peak1, out=hidx)  # the (P+1)-th most recent accepted, this one included
            np.greater(hist[hidx], a, out=busy)
            peak1 += busy
            if rate is not None:
                np.maximum(tat, s, out=tmp)
                tmp += inv_rate
                np.copyto(tat, tmp, where=st)
            if c is not None:
                np.add(s, service, out=tmp)
                np.copyto(free, tmp, where=st)
                ring[idx] = free
                started += st
        self._accepted[:] = write - hbase - 1
        self.queue_peak[:] = peak1 - 1
