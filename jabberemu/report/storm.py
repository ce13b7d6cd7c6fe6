"""What a re-login wave did to the servers, and what happened to its clients (pure, numpy).

A re-login is a CPA SOAP login ("log ins are extremely expensive to resources on the IM and
Presence server": TechNote "Configure IM and Presence Server High Availability", "Jabber Client
Re-Login Timer"); the re-login limits exist so that the logins of a wave arrive no faster than a
node can serve them (docs/login-model.md). For every wave this module measures, per node and per
second:

- **demand**: CPA logins (``soap/session-login`` and ``soap/login``) of the wave's clients that
  reached the node's login admission, at the second they were sent. Attempts refused before
  admission (``soap-fault:services-stopped``: the failed node; ``connection-refused``: a dead one)
  cost the node nothing and are left out (docs/login-model.md §1);
- **served**: those logins answered (success or a fault from the node's work), at the second the
  answer came; refused busy and timed out are not served;
- the **login wait** as the client measured it: the CPA login's round trip, queue wait included
  (a timed-out login counts with the time it waited); per second p50/p99, and the wave's p99;
- from the node's own counters when the run has them (``server_metrics.jsonl``): queue depth,
  logins in service, queue wait p99, refused busy, abandoned (the drill collects them; a run against
  a real pair has none, and everything above still works from the client records).

Per wave, from the client records: refused busy, SOAP timeouts, OTP refused, clients that needed a
second round, GAVE_UP by reason, and how each client came back (round one: the session login;
round two: the password login).

Everything is computed from the run data alone, so ``jabberemu report`` rebuilds it.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence, Set
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from jabberemu.report.records import RequestRecord, RunData, ServerMetric, StateRecord
from jabberemu.report.waves import Wave, peak_rate

__all__ = [
    "BEFORE_ADMISSION",
    "BUSY",
    "CPA_LOGINS",
    "OTP_REFUSED",
    "SERVER_KEYS",
    "SOAP_TIMEOUT",
    "NodeStorm",
    "ServerRowList",
    "ServerRows",
    "WaveStorm",
    "storms",
]

FloatArray = NDArray[np.float64]

#: Locust names (request type ``soap``) of the CPA logins: the password and the one-time password one.
CPA_LOGINS = frozenset({"login", "session-login"})
#: Failure classes of logins that never reached a node's login admission (cost it nothing).
BEFORE_ADMISSION = frozenset({"soap-fault:services-stopped", "connection-refused"})
BUSY = "soap-fault:server-busy"
SOAP_TIMEOUT = "timeout:soap"
OTP_REFUSED = "soap-fault:bad-onetime-password"
#: The node counters (``server_metrics.jsonl`` keys) a wave's server side reads.
SERVER_KEYS = frozenset({"login_queue_max", "login_queue_depth", "login_in_service", "login_wait_p99_ms",
                         "login_busy", "login_abandoned", "login_completed"})


class ServerRows(Protocol):
    """The nodes' metric rows, asked for by node and time window."""

    def rows(self, node: str, lo_ts: float, hi_ts: float) -> Sequence[ServerMetric]:
        """Rows of ``node`` with ``lo_ts <= ts <= hi_ts`` (epoch s), in time order."""
        ...

    def keys(self, node: str) -> Set[str]:
        """Every key any row of ``node`` holds, over the whole run."""
        ...


class ServerRowList:
    """:class:`ServerRows` over rows held in memory (``RunData.server_metrics``)."""

    def __init__(self, metrics: Iterable[ServerMetric]) -> None:
        self._rows: dict[str, list[ServerMetric]] = defaultdict(list)
        for m in metrics:
            self._rows[m.node].append(m)
        self._ts = {n: [r.ts for r in rows] for n, rows in self._rows.items()}
        self._keys = {n: {k for r in rows for k in r.values} for n, rows in self._rows.items()}

    def rows(self, node: str, lo_ts: float, hi_ts: float) -> Sequence[ServerMetric]:
        ts = self._ts.get(node, [])
        return self._rows.get(node, [])[bisect.bisect_left(ts, lo_ts):bisect.bisect_right(ts, hi_ts)]

    def keys(self, node: str) -> Set[str]:
        return self._keys.get(node, set())


@dataclass(frozen=True, kw_only=True)
class NodeStorm:
    """One node during one wave; arrays per second from the wave's first HA event (``t_s`` = bin
    starts, the model's clock).

    ``queue_depth``, ``in_service``, ``server_wait_p99_ms`` are the node's own counters (NaN
    where no row fell in that second; None without server metrics).
    """

    node: str
    t_s: FloatArray
    demand: FloatArray
    served: FloatArray
    wait_p50_ms: FloatArray
    wait_p99_ms: FloatArray
    demand_total: int
    served_total: int
    demand_peak_1s: float
    demand_peak_10s: float
    served_peak_1s: float
    queue_depth: FloatArray | None = None
    in_service: FloatArray | None = None
    server_wait_p99_ms: FloatArray | None = None
    server_busy: int | None = None
    server_abandoned: int | None = None
    server_completed: int | None = None


@dataclass(frozen=True, kw_only=True)
class WaveStorm:
    """The server side and the client outcomes of one wave (``wave`` = ``Wave.index``).

    Attributes:
        nodes: per node that saw demand, busiest first.
        demand_peak_1s / _10s: highest demand over a sliding 1 s / 10 s window on any node (logins/s).
        served_peak_1s: highest served rate over a sliding 1 s window on any node.
        busiest_node: the node with the highest 1 s demand peak.
        login_wait_p50_s / p99_s / max_s: the CPA login round trips of the wave (client-measured,
            queue wait included; timed-out logins count with what they waited); None without any.
        queue_peak: the most logins waiting at once on any node (server counters), None without.
        busy, timeouts, otp_refused: CPA login attempts of the wave's clients that failed so.
        abandoned: logins the nodes dropped from their queue because the client had gone (server
            counters), None without.
        second_rounds: clients that waited again and started round two.
        gave_up: ``"<reason> (<detail>)"`` -> clients of the wave that ended GAVE_UP meanwhile.
        recovered_by: how recovered clients came back: ``round 1 (session login)``, ``round 2
            (password login)`` -> clients.
    """

    wave: int
    nodes: tuple[NodeStorm, ...]
    demand_peak_1s: float
    demand_peak_10s: float
    served_peak_1s: float
    busiest_node: str | None
    login_wait_p50_s: float | None
    login_wait_p99_s: float | None
    login_wait_max_s: float | None
    queue_peak: int | None
    busy: int
    timeouts: int
    otp_refused: int
    abandoned: int | None
    second_rounds: int
    gave_up: dict[str, int] = field(default_factory=dict)
    recovered_by: dict[str, int] = field(default_factory=dict)

    @property
    def at_risk(self) -> int:
        """Login attempts refused busy or timed out: clients the server failed."""
        return self.busy + self.timeouts


@dataclass(frozen=True, kw_only=True, slots=True)
class _Attempt:
    node: str
    start_s: float  # load clock
    end_s: float
    wait_ms: float | None
    cause: str | None
    ok: bool
    name: str


def _by_client(records: Iterable[RequestRecord | StateRecord]) -> dict[str, list[RequestRecord | StateRecord]]:
    out: dict[str, list[RequestRecord | StateRecord]] = defaultdict(list)
    for r in records:
        out[r.client].append(r)
    return out


def _within(records: list[RequestRecord | StateRecord], lo_ts: float, hi_ts: float) -> list[RequestRecord | StateRecord]:
    keys = [r.ts for r in records]
    return records[bisect.bisect_left(keys, lo_ts):bisect.bisect_left(keys, hi_ts)]


def _per_second(times: Sequence[float], edges: FloatArray) -> FloatArray:
    counts, _ = np.histogram(np.asarray(times, dtype=float), bins=edges)
    return counts.astype(float)


def _binned_percentiles(times: Sequence[float], values: Sequence[float], edges: FloatArray,
                        q: float) -> FloatArray:
    out = np.full(edges.size - 1, np.nan)
    if not times:
        return out
    idx = np.searchsorted(edges, np.asarray(times, dtype=float), side="right") - 1
    vals = np.asarray(values, dtype=float)
    for b in np.unique(idx):
        if 0 <= b < out.size:
            out[b] = float(np.percentile(vals[idx == b], q))
    return out


def _server_series(rows: Sequence[ServerMetric], known: Set[str], t0: float, edges: FloatArray, key: str,
                   how: str = "max") -> FloatArray | None:
    if key not in known:
        return None
    out = np.full(edges.size - 1, np.nan)
    for r in rows:
        if key not in r.values:
            continue
        b = int(np.searchsorted(edges, r.ts - t0, side="right")) - 1
        if 0 <= b < out.size:
            v = r.values[key]
            out[b] = v if np.isnan(out[b]) else (max(out[b], v) if how == "max" else out[b] + v)
    return out


def _server_total(rows: Sequence[ServerMetric], known: Set[str], t0: float, lo_s: float, hi_s: float,
                  key: str) -> int | None:
    if key not in known:
        return None
    # a row counts what happened in the second before its ts
    return int(sum(r.values.get(key, 0.0) for r in rows if lo_s < r.ts - t0 <= hi_s + 1.0))


def _node_storm(node: str, attempts: list[_Attempt], server: ServerRows, t0: float, at_s: float,
                edges_abs: FloatArray) -> NodeStorm:
    reached = [a for a in attempts if a.cause not in BEFORE_ADMISSION]
    answered = [a for a in reached if a.cause not in (BUSY, SOAP_TIMEOUT)]
    waited = [a for a in reached if a.cause != BUSY and a.wait_ms is not None]
    starts = [a.start_s for a in reached]
    ends = [a.end_s for a in answered]
    lo, hi = float(edges_abs[0]), float(edges_abs[-1])
    rows = server.rows(node, t0 + lo - 1.0, t0 + hi + 2.0)  # every row the series and totals below read
    known = server.keys(node)  # keys seen in any row of the node (none: no server counters)
    return NodeStorm(
        node=node, t_s=edges_abs[:-1] - edges_abs[0],
        demand=_per_second(starts, edges_abs), served=_per_second(ends, edges_abs),
        wait_p50_ms=_binned_percentiles([a.end_s for a in waited], [a.wait_ms or 0.0 for a in waited], edges_abs, 50),
        wait_p99_ms=_binned_percentiles([a.end_s for a in waited], [a.wait_ms or 0.0 for a in waited], edges_abs, 99),
        demand_total=len(reached), served_total=len(answered),
        demand_peak_1s=peak_rate(starts, 1.0), demand_peak_10s=peak_rate(starts, 10.0),
        served_peak_1s=peak_rate(ends, 1.0),
        queue_depth=_server_series(rows, known, t0, edges_abs, "login_queue_max")
        if "login_queue_max" in known else _server_series(rows, known, t0, edges_abs, "login_queue_depth"),
        in_service=_server_series(rows, known, t0, edges_abs, "login_in_service"),
        server_wait_p99_ms=_server_series(rows, known, t0, edges_abs, "login_wait_p99_ms"),
        server_busy=_server_total(rows, known, t0, lo, hi, "login_busy"),
        server_abandoned=_server_total(rows, known, t0, lo, hi, "login_abandoned"),
        server_completed=_server_total(rows, known, t0, lo, hi, "login_completed"),
    )


def storms(data: RunData, waves: Sequence[Wave], *, tail_s: float | None = None,
           server: ServerRows | None = None) -> list[WaveStorm]:
    """Measure every wave's server side and client outcomes.

    Args:
        data: the loaded run (or the slice of it that holds the waves' clients).
        waves: ``find_waves(data)``.
        tail_s: seconds after a wave's last re-login still shown (default: the recovery margin).
        server: the nodes' metric rows (default ``data.server_metrics``).

    Returns:
        One :class:`WaveStorm` per wave, in the same order.
    """
    t0 = data.info.started_ts
    tail = data.info.recovery_margin_s if tail_s is None else tail_s
    reqs = _by_client(r for r in data.requests if r.request_type == "soap" and r.name in CPA_LOGINS)
    states = _by_client(data.states)
    ends = {e.client: e for e in data.ends}
    server_rows = server if server is not None else ServerRowList(data.server_metrics)
    out: list[WaveStorm] = []
    for w in waves:
        attempts: dict[str, list[_Attempt]] = defaultdict(list)
        second_rounds = 0
        gave_up: Counter[str] = Counter()
        recovered_by: Counter[str] = Counter()
        last_t = w.at_s
        for client, ha_t, until_t in zip(w.members, w.ha_t, w.until_t):
            lo_ts, hi_ts = t0 + ha_t, t0 + float(until_t)
            last_login: str | None = None
            for r in _within(reqs.get(client, []), lo_ts, hi_ts):
                assert isinstance(r, RequestRecord)
                a = _Attempt(node=r.node or "?", start_s=r.start_ts - t0, end_s=r.ts - t0,
                             wait_ms=r.response_time_ms, cause=r.cause, ok=r.ok, name=r.name)
                attempts[a.node].append(a)
                last_t = max(last_t, a.end_s)
                if r.ok:
                    last_login = r.name
            entered_round_two = False
            recovered = False
            for s in _within(states.get(client, []), lo_ts, hi_ts):
                assert isinstance(s, StateRecord)
                if s.to_state == "FAILOVER" and s.round == 2:
                    entered_round_two = True
                elif s.to_state == "XMPPCONNECTED":
                    recovered = True
                    break
                elif s.to_state == "GAVE_UP":
                    end = ends.get(client)
                    reason = (end.reason if end is not None else None) or "unspecified"
                    gave_up[f"{reason} ({s.reason})" if s.reason and s.reason != reason else reason] += 1
                    break
            second_rounds += entered_round_two
            if recovered:
                recovered_by["round 2 (password login)" if entered_round_two or last_login == "login"
                             else "round 1 (session login)"] += 1
        # one-second bins from the wave's first HA event, as the model counts them (its t = 0)
        origin = float(w.ha_t.min()) if w.ha_t.size else w.at_s
        horizon = max(last_t, w.end_s, origin + (w.upper_s or 0.0)) + tail
        edges_abs = origin + np.arange(0.0, np.ceil(horizon - origin) + 1.0)
        nodes = [_node_storm(node, attempts[node], server_rows, t0, w.at_s, edges_abs) for node in attempts]
        nodes = [n for n in nodes if n.demand_total] or nodes
        nodes.sort(key=lambda n: (-n.demand_peak_1s, n.node))
        every = [a for node in attempts.values() for a in node]
        waited = np.asarray([a.wait_ms for a in every if a.cause not in BEFORE_ADMISSION and a.cause != BUSY
                             and a.wait_ms is not None], dtype=float) / 1000.0
        queue_peaks = [float(np.nanmax(n.queue_depth)) for n in nodes
                       if n.queue_depth is not None and np.isfinite(n.queue_depth).any()]
        abandoned = [n.server_abandoned for n in nodes if n.server_abandoned is not None]
        causes = Counter(a.cause for a in every)
        out.append(WaveStorm(
            wave=w.index, nodes=tuple(nodes),
            demand_peak_1s=max((n.demand_peak_1s for n in nodes), default=0.0),
            demand_peak_10s=max((n.demand_peak_10s for n in nodes), default=0.0),
            served_peak_1s=max((n.served_peak_1s for n in nodes), default=0.0),
            busiest_node=nodes[0].node if nodes and nodes[0].demand_total else None,
            login_wait_p50_s=float(np.percentile(waited, 50)) if waited.size else None,
            login_wait_p99_s=float(np.percentile(waited, 99)) if waited.size else None,
            login_wait_max_s=float(waited.max()) if waited.size else None,
            queue_peak=int(max(queue_peaks)) if queue_peaks else None,
            busy=causes[BUSY], timeouts=causes[SOAP_TIMEOUT], otp_refused=causes[OTP_REFUSED],
            abandoned=sum(abandoned) if abandoned else None,
            second_rounds=second_rounds, gave_up=dict(gave_up.most_common()),
            recovered_by=dict(sorted(recovered_by.items())),
        ))
    return out
