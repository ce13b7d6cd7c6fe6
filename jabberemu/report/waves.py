"""Split a run's HA events into re-login waves and measure each wave (pure, numpy/scipy).

A *wave* is the set of clients that lost their session in one failover or fallback and came back
after a re-login wait drawn uniformly from [lower, upper] (Planning Guide for Cisco Jabber 14.1,
"Client Behavior During a Failover"; IM&P config guide 12.5(1), "High Availability Login
Profiles": the window exists to keep the re-login rate ``N / (upper - lower)`` below what the
server can take).

How waves are found:

1. Per client, only the first ``ha_event`` after a session was up counts (*primary* HA event);
   later ones before the next ``connected`` (e.g. ``soap-fault:...`` while retrying) are follow-ups.
2. Primary HA events are sorted and cut into clusters wherever two consecutive ones are more than
   ``gap_s`` apart (default 5 s: a node drops all its streams within a second or two).
3. Each cluster is anchored to the latest admin action that can start a wave (``RunData.actions``:
   ``run.json``, else the mock's ``admin`` events; ``ActionKind.starts_waves``: a failover, a node
   kill, a critical service stopped, a fallback ..., never a service restart) at or before its
   first event
   (+ ``skew_s`` for an action stamped after the API call returned) that is not older than the
   previous cluster. ``at_s`` is the action's time, else the first HA event's.
4. ``kind``: the action's (failover / node-kill / service-down / partition -> failover; fallback ->
   fallback); without one, a vote: a client whose re-login lands on its home node (the node of its
   first login) is falling back, else failing over.
"""

from __future__ import annotations

import bisect
import enum
from collections import Counter, defaultdict
from collections.abc import Sequence, Set
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from jabberemu.report.records import (
    Action,
    ActionKind,
    ConnectedRecord,
    HaEventRecord,
    RunData,
    RunInfo,
    WaitRecord,
)

__all__ = ["DEFAULT_GAP_S", "DEFAULT_SKEW_S", "HaKind", "Member", "Wave", "anchor_action", "find_waves",
           "measure_wave", "peak_rate", "pending_count"]

#: Two primary HA events further apart than this (s) belong to different waves.
DEFAULT_GAP_S = 5.0
#: An action may be stamped up to this many seconds after the first HA event it caused.
DEFAULT_SKEW_S = 2.0

FloatArray = NDArray[np.float64]


class HaKind(enum.Enum):
    """Direction of a wave."""

    FAILOVER = "failover"
    FALLBACK = "fallback"


@dataclass(frozen=True, kw_only=True)
class Wave:
    """One re-login wave; times on the load clock (s since ``started_ts``).

    ``node`` is the node named by the admin action (the failing node on failover, the node
    taking its users back on fallback) or, without an action, ``from_node``: the node that
    dropped the sessions (most common ``ha_event.node``).

    Arrays (one entry per client of the wave, unordered): ``ha_t`` HA event times, ``waits_s``
    drawn waits (clients that logged one), ``recovery_s`` HA event -> XMPPCONNECTED (recovered
    clients only), ``relogin_t`` completion times (recovered clients only). ``members`` are the
    wave's client ids in the order of ``ha_t``; ``until_t`` the end of each member's part in this
    wave (its next HA event, or infinity), on the load clock; ``not_recovered`` (client, HA event
    epoch ts) of the members that did not come back.
    """

    index: int
    kind: HaKind
    node: str | None
    from_node: str | None
    at_s: float
    anchor: str | None
    lower_s: float | None
    upper_s: float | None
    limits_mixed: bool
    clients: int
    recovered: int
    pending: int
    not_recovered_sample: tuple[str, ...]
    predicted_peak_rate: float | None
    measured_peak_rate_1s: float
    measured_peak_rate_10s: float
    peak_node: str | None
    recovery_p50_s: float | None
    recovery_p95_s: float | None
    recovery_p99_s: float | None
    recovery_max_s: float | None
    ks_statistic: float | None
    ks_pvalue: float | None
    end_s: float
    ha_classes: dict[str, int] = field(default_factory=dict)
    target_nodes: dict[str, int] = field(default_factory=dict)
    ha_t: FloatArray = field(default_factory=lambda: np.empty(0))
    waits_s: FloatArray = field(default_factory=lambda: np.empty(0))
    recovery_s: FloatArray = field(default_factory=lambda: np.empty(0))
    relogin_t: FloatArray = field(default_factory=lambda: np.empty(0))
    relogin_node: tuple[str, ...] = ()
    members: tuple[str, ...] = ()
    until_t: FloatArray = field(default_factory=lambda: np.empty(0))
    not_recovered: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        if self.recovered > self.clients or self.clients < 0:
            raise ValueError(f"recovered {self.recovered} > clients {self.clients}")


def peak_rate(times_s: Sequence[float] | FloatArray, window_s: float) -> float:
    """Highest event rate in any window of ``window_s`` seconds (sliding, not binned).

    Args:
        times_s: event times (s), any order.
        window_s: window length (s), > 0.
    Returns:
        max over t of (events in [t, t + window_s)) / window_s; 0.0 when there are no events.
    """
    if window_s <= 0:
        raise ValueError(f"window_s must be > 0, got {window_s}")
    t = np.sort(np.asarray(times_s, dtype=float))
    if t.size == 0:
        return 0.0
    ends = np.searchsorted(t, t + window_s, side="left")
    return float(np.max(ends - np.arange(t.size))) / window_s


def _primary_events(data: RunData) -> list[HaEventRecord]:
    """First HA event per client after each time its session was up."""
    connected_ts: dict[str, list[float]] = defaultdict(list)
    for c in data.connected:
        connected_ts[c.client].append(c.ts)
    armed_after: dict[str, float] = {}
    primary = []
    for ev in data.ha_events:
        last = armed_after.get(ev.client)
        if last is not None:
            times = connected_ts.get(ev.client, [])
            if bisect.bisect_right(times, ev.ts) == bisect.bisect_right(times, last):
                continue  # no session since the last primary HA event: a follow-up
        armed_after[ev.client] = ev.ts
        primary.append(ev)
    return primary


def _clusters(events: list[HaEventRecord], gap_s: float, splits: Sequence[float] = ()) -> list[list[HaEventRecord]]:
    """Group HA events into waves: a gap over ``gap_s``, or a split instant (an admin action,
    less the skew) between two events, starts a new one."""
    clusters: list[list[HaEventRecord]] = []
    cuts = sorted(splits)
    for ev in events:
        if clusters:
            prev = clusters[-1][-1].ts
            i = bisect.bisect_right(cuts, prev)
            cut_between = i < len(cuts) and cuts[i] <= ev.ts
            if ev.ts - prev <= gap_s and not cut_between:
                clusters[-1].append(ev)
                continue
        clusters.append([ev])
    return clusters


def anchor_action(cluster: list[HaEventRecord], actions: Sequence[Action], not_before: float,
                  skew_s: float) -> Action | None:
    """The latest wave-starting action after ``not_before`` and at or before the cluster's first
    event (+ ``skew_s``), or None."""
    first = cluster[0].ts
    best = None
    for action in actions:
        if not_before < action.ts <= first + skew_s:
            best = action
    return best


def _percentile(values: FloatArray, q: float) -> float | None:
    return float(np.percentile(values, q)) if values.size else None


def _next_after(times: list[float], after: float, before: float) -> int | None:
    i = bisect.bisect_right(times, after)
    return i if i < len(times) and times[i] < before else None


@dataclass(frozen=True, kw_only=True, slots=True)
class Member:
    """What a wave needs of one of its clients: its primary HA event, when its part ends (its next
    primary HA event, or infinity), its first wait at or after the event, its first ``connected``
    after it (each before ``until_ts``), and its home node (first login's node; ``has_home`` False
    when it never logged in first)."""

    event: HaEventRecord
    until_ts: float
    wait: WaitRecord | None
    connected: ConnectedRecord | None
    home: str | None
    has_home: bool = True


def measure_wave(index: int, members: Sequence[Member], action: Action | None, info: RunInfo, *,
                 margin_s: float, run_end: float, gave_up: Set[str]) -> Wave:
    """Measure one wave (one cluster of primary HA events, in time order) from its members' records.

    Args:
        index: the wave's number (0-based).
        members: one per primary HA event of the cluster, in the cluster's order.
        action: the admin action the wave is anchored to, or None.
        info: ``run.json``.
        margin_s: grace after ``upper`` before a missing re-login counts as lost.
        run_end: end of the run (epoch s): later deadlines are pending.
        gave_up: clients whose end state is GAVE_UP.
    """
    t0 = info.started_ts
    at_ts = action.ts if action is not None else members[0].event.ts
    limits: Counter[tuple[float, float]] = Counter()
    waits, raw_waits, rec, rel_t, rel_node, ha_t, until_t = [], [], [], [], [], [], []
    not_recovered: list[tuple[str, float]] = []
    votes: Counter[HaKind] = Counter()
    for m in members:
        ev = m.event
        ha_t.append(ev.ts - t0)
        until_t.append(m.until_ts - t0)
        if m.wait is not None:
            lo, up = m.wait.lower_s, m.wait.upper_s
            limits[(lo, up)] += 1
            waits.append((m.wait.wait_s - lo) / (up - lo) if up > lo else 0.5)
            raw_waits.append(m.wait.wait_s)
        c = m.connected
        if c is None:
            not_recovered.append((ev.client, ev.ts))
            continue
        rec.append(c.recovery_s if (c.relogin and c.recovery_s is not None) else c.ts - ev.ts)
        rel_t.append(c.ts - t0)
        rel_node.append(c.node or "?")
        if m.has_home:
            votes[HaKind.FALLBACK if c.node == m.home else HaKind.FAILOVER] += 1
    lower: float | None
    upper: float | None
    if limits:
        (lower, upper), _ = limits.most_common(1)[0]
    else:
        lower, upper = info.lower_s, info.upper_s
    if action is not None and action.kind is ActionKind.FALLBACK:
        kind = HaKind.FALLBACK
    elif action is not None and action.kind.moves_sessions_away:
        kind = HaKind.FAILOVER
    else:
        kind = votes.most_common(1)[0][0] if votes else HaKind.FAILOVER
    from_node = Counter(m.event.node for m in members).most_common(1)[0][0]
    node = action.node if action is not None and action.node else from_node
    norm = np.asarray(waits, dtype=float)
    waits_s = np.asarray(raw_waits, dtype=float)
    ks_stat = ks_p = None
    if norm.size >= 2 and lower is not None and upper is not None and upper > lower:
        res = stats.kstest(norm, "uniform")
        ks_stat, ks_p = float(res.statistic), float(res.pvalue)
    recovery = np.asarray(rec, dtype=float)
    relogin_t = np.asarray(rel_t, dtype=float)
    peaks1: dict[str, float] = {}
    peaks10: dict[str, float] = {}
    nodes_arr = np.asarray(rel_node, dtype=object)
    for target in sorted(set(rel_node)):
        sel = relogin_t[nodes_arr == target]
        peaks1[target] = peak_rate(sel, 1.0)
        peaks10[target] = peak_rate(sel, 10.0)
    peak_node = max(peaks1, key=lambda n: (peaks1[n], peaks10[n])) if peaks1 else None
    deadline_extra = (upper if upper is not None else 0.0) + margin_s
    # still inside their window (+ margin) when the run ended, partial or not, and not given up:
    # not lost, untested
    pending = sum(1 for c, ts in not_recovered if ts + deadline_extra > run_end and c not in gave_up)
    end_s = float(relogin_t.max()) if relogin_t.size else at_ts - t0 + deadline_extra
    return Wave(
        index=index, kind=kind, node=node, from_node=from_node, at_s=at_ts - t0,
        anchor=action.name if action is not None else None,
        lower_s=lower, upper_s=upper, limits_mixed=len(limits) > 1,
        clients=len(members), recovered=len(rec), pending=pending,
        not_recovered_sample=tuple(sorted(c for c, _ in not_recovered)[:20]),
        not_recovered=tuple(not_recovered),
        predicted_peak_rate=(len(members) / (upper - lower)
                             if lower is not None and upper is not None and upper > lower else None),
        measured_peak_rate_1s=max(peaks1.values(), default=0.0),
        measured_peak_rate_10s=max(peaks10.values(), default=0.0),
        peak_node=peak_node,
        recovery_p50_s=_percentile(recovery, 50), recovery_p95_s=_percentile(recovery, 95),
        recovery_p99_s=_percentile(recovery, 99),
        recovery_max_s=float(recovery.max()) if recovery.size else None,
        ks_statistic=ks_stat, ks_pvalue=ks_p, end_s=max(end_s, at_ts - t0),
        ha_classes=dict(Counter(m.event.cls for m in members).most_common()),
        target_nodes=dict(Counter(rel_node).most_common()),
        ha_t=np.asarray(ha_t, dtype=float), waits_s=waits_s, recovery_s=recovery,
        relogin_t=relogin_t, relogin_node=tuple(rel_node),
        members=tuple(m.event.client for m in members), until_t=np.asarray(until_t, dtype=float),
    )


def pending_count(wave: Wave, *, margin_s: float, run_end: float, t0: float, gave_up: Set[str]) -> int:
    """Clients of ``wave`` still inside their window (+ margin) when the run ended and not given up."""
    deadline_extra = (wave.upper_s if wave.upper_s is not None else 0.0) + margin_s
    return sum(1 for c, ts in wave.not_recovered if ts + deadline_extra > run_end and c not in gave_up)


def find_waves(data: RunData, *, gap_s: float = DEFAULT_GAP_S, skew_s: float = DEFAULT_SKEW_S,
               recovery_margin_s: float | None = None) -> list[Wave]:
    """Find and measure every re-login wave of a run.

    Args:
        data: the loaded run.
        gap_s: HA events further apart than this start a new wave.
        skew_s: tolerance for an action stamped after the HA events it caused.
        recovery_margin_s: grace after ``upper`` before a missing re-login counts as lost rather
            than pending (default: ``run.json`` ``recovery_margin_s``). A client that did not come
            back, did not give up and whose HA event + upper + margin falls after the end of the
            run is *pending*: the run ended before it could be judged.
    Returns:
        Waves in time order (empty when no client saw an HA event).
    """
    info = data.info
    margin = info.recovery_margin_s if recovery_margin_s is None else recovery_margin_s
    primary = _primary_events(data)
    actions = [a for a in data.actions if a.kind.starts_waves]  # a service restart anchors no wave
    clusters = _clusters(primary, gap_s, [a.ts - skew_s for a in actions])
    per_client_primary: dict[str, list[float]] = defaultdict(list)
    for ev in primary:
        per_client_primary[ev.client].append(ev.ts)
    waits_by_client: dict[str, list[WaitRecord]] = defaultdict(list)
    for w in data.waits:
        waits_by_client[w.client].append(w)
    wait_ts = {k: [w.ts for w in v] for k, v in waits_by_client.items()}
    conn_by_client: dict[str, list[ConnectedRecord]] = defaultdict(list)
    for c in data.connected:
        conn_by_client[c.client].append(c)
    conn_ts = {k: [c.ts for c in v] for k, v in conn_by_client.items()}
    home: dict[str, str | None] = {}
    for c in data.connected:
        if c.client not in home and not c.relogin:
            home[c.client] = c.node
    run_end = data.last_ts
    gave_up = {e.client for e in data.ends if e.state == "GAVE_UP"}

    waves: list[Wave] = []
    previous_first = float("-inf")
    for index, cluster in enumerate(clusters):
        action = anchor_action(cluster, actions, previous_first, skew_s)
        previous_first = cluster[-1].ts
        members = []
        for ev in cluster:
            mine = per_client_primary[ev.client]
            pos = mine.index(ev.ts)
            nxt = mine[pos + 1] if pos + 1 < len(mine) else float("inf")
            j = bisect.bisect_left(wait_ts.get(ev.client, []), ev.ts)
            wl = waits_by_client.get(ev.client, [])
            wait = wl[j] if j < len(wl) and wl[j].ts < nxt else None
            k = _next_after(conn_ts.get(ev.client, []), ev.ts, nxt)
            members.append(Member(event=ev, until_ts=nxt, wait=wait,
                                  connected=None if k is None else conn_by_client[ev.client][k],
                                  home=home.get(ev.client), has_home=ev.client in home))
        waves.append(measure_wave(index, members, action, info, margin_s=margin, run_end=run_end,
                                  gave_up=gave_up))
    return waves
