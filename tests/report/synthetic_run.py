"""A small simulator that writes a run directory in the run-data formats of ARCHITECTURE.md.

N clients log in on a ramp (Balanced: alternate home nodes), the first node fails over at
``failover_at_s`` (its clients draw a uniform wait and re-login on the peer at event + wait +
latency), and optionally falls back at ``fallback_at_s`` (the same clients return home). With a
``server_login_rate`` the serving node starts the wave's CPA session logins no faster than that
(docs/login-model.md: burst 1, no service time, unbounded queue), so a narrow window queues them.
The ground truth (HA times, waits, completions, latencies) is returned so tests compute expected
numbers independently of the report code.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["NODES", "SimConfig", "SimTruth", "WaveTruth", "simulate"]

NODES = ("imp1.example.test", "imp2.example.test")
STARTED_TS = 1_700_000_000.0


@dataclass
class SimConfig:
    clients: int = 300
    lower_s: float = 5.0
    upper_s: float = 25.0
    ramp_per_s: float = 100.0
    failover_at_s: float | None = None  # default: 5 s after the ramp
    fallback_at_s: float | None = None
    server_login_rate: float | None = None
    recovery_margin_s: float | None = None
    gave_up: int = 0  # failed-over clients that never come back
    seed: int = 1
    missing_rt_every: int = 10  # every k-th soap/login sample has no response time
    stop_at_s: float | None = None  # partial run: records after this are never written
    cpu_percent: float = 40.0
    loop_lag_ms: float = 3.0
    end_at_s: float | None = None


@dataclass
class WaveTruth:
    kind: str
    node: str
    target: str
    at_s: float
    clients: list[str] = field(default_factory=list)
    ha_t: list[float] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)
    completion_t: list[float] = field(default_factory=list)
    recovery_s: list[float] = field(default_factory=list)


@dataclass
class SimTruth:
    run_dir: Path
    config: SimConfig
    waves: list[WaveTruth]
    samples_ms: dict[str, list[float | None]]  # "type/name" -> response times (None = no response time)
    end_states: dict[str, int]


def simulate(run_dir: Path, config: SimConfig) -> SimTruth:
    """Write ``run.json`` and the JSONL files of a synthetic run into ``run_dir``."""
    rng = random.Random(config.seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    cev: list[dict[str, Any]] = []
    samples: dict[str, list[float | None]] = {}
    t0 = STARTED_TS

    def rec(t: float, kind: str, **fields: Any) -> None:
        cev.append({"ts": t0 + t, "type": kind, **fields})

    def request(t: float, client: str, rtype: str, name: str, node: str, rt_ms: float | None, ok: bool = True,
                cause: str | None = None) -> None:
        rec(t, "request", client=client, request_type=rtype, name=name, node=node, response_time_ms=rt_ms,
            ok=ok, error=None if ok else "cancelled", cause=cause)
        samples.setdefault(f"{rtype}/{name}", []).append(rt_ms)

    def state(t: float, client: str, old: str, new: str, node: str | None, reason: str | None = None) -> None:
        rec(t, "state", client=client, **{"from": old, "to": new}, node=node, reason=reason)

    clients = [f"user{i + 1:05d}" for i in range(config.clients)]
    home = {c: NODES[i % 2] for i, c in enumerate(clients)}
    login_count = 0
    for i, c in enumerate(clients):
        t = i / config.ramp_per_s
        soap_ms = rng.uniform(5, 40)
        auth_ms = rng.uniform(2, 20)
        total = (soap_ms + auth_ms + 5) / 1000
        state(t, c, "NEW", "SOAPCONNECT_P", home[c])
        state(t + soap_ms / 1000, c, "SOAPCONNECT_P", "SOAPCONNECTED", home[c])
        state(t + soap_ms / 1000, c, "SOAPCONNECTED", "XMPPCONNECT_P", home[c])
        state(t + total, c, "XMPPCONNECT_P", "XMPPCONNECTED", home[c])
        login_count += 1
        missing = config.missing_rt_every and login_count % config.missing_rt_every == 0
        if missing:
            # a cut-short sample without response time, then the successful retry
            request(t + soap_ms / 2000, c, "soap", "login", home[c], None, ok=False)
        request(t + soap_ms / 1000, c, "soap", "login", home[c], soap_ms)
        request(t + total, c, "xmpp", "auth", home[c], auth_ms)
        request(t + total, c, "client", "login", home[c], total * 1000)
        rec(t + total, "connected", client=c, node=home[c], relogin=False, recovery_s=None)

    ramp_end = config.clients / config.ramp_per_s + 0.1
    if config.failover_at_s is None:
        config.failover_at_s = ramp_end + 5.0
    assert config.failover_at_s > ramp_end, "the simulator fails over only after every client logged in"
    failed_node, peer = NODES
    moved = [c for c in clients if home[c] == failed_node]
    gave_up = set(moved[: config.gave_up])
    waves = []

    def wave(kind: str, at_s: float, src: str, dst: str, members: list[str]) -> WaveTruth:
        truth = WaveTruth(kind=kind, node=src, target=dst, at_s=at_s)
        drawn = [(c, at_s + rng.uniform(0.0, 0.3), rng.uniform(config.lower_s, config.upper_s)) for c in members]
        # the serving node's login admission: FIFO at the declared rate (start k >= start k-1 + 1/R)
        served_at: dict[str, float] = {}
        last_start = float("-inf")
        for c, ha, wait in sorted(drawn, key=lambda d: d[1] + d[2]):
            if c in gave_up and kind == "failover":
                continue  # never reaches the serving node
            arrival = ha + wait + (0.005 if kind == "failover" else 0.0)
            start = arrival if config.server_login_rate is None else max(arrival, last_start + 1 / config.server_login_rate)
            last_start = start
            served_at[c] = start + 0.002  # the answer
        for c, ha, wait in drawn:
            rec(ha, "ha_event", client=c, node=src, cls="stream-error:system-shutdown")
            state(ha, c, "XMPPCONNECTED", "FAILOVER", src, "stream-error:system-shutdown")
            rec(ha, "wait", client=c, wait_s=wait, lower_s=config.lower_s, upper_s=config.upper_s)
            request(ha, c, "ha", "wait", src, wait * 1000)
            truth.clients.append(c)
            truth.ha_t.append(ha)
            truth.waits.append(wait)
            start = ha + wait
            if c in gave_up and kind == "failover":
                state(start, c, "FAILOVER", "SOAPCONNECT_SESSION_P", src)
                state(start + 0.01, c, "SOAPCONNECT_SESSION_P", "GAVE_UP", src, "no node left")
                rec(start + 0.01, "end", client=c, state="GAVE_UP", reason="no node left after two rounds")
                continue
            # the session re-login: a CPA login with the cached OTP; on failover the home node's
            # stopped services refuse it at once (before admission), then the peer signs it in
            state(start, c, "FAILOVER", "SOAPCONNECT_SESSION_P", src if kind == "failover" else dst)
            sent = start
            if kind == "failover":
                request(start + 0.005, c, "soap", "session-login", src, 5.0, ok=False,
                        cause="soap-fault:services-stopped")
                state(start + 0.005, c, "SOAPCONNECT_SESSION_P", "SOAPCONNECT_SESSION_S", dst)
                sent = start + 0.005
            answered = served_at[c]
            request(answered, c, "soap", "session-login", dst, (answered - sent) * 1000)
            state(answered, c, "SOAPCONNECT_SESSION_S" if kind == "failover" else "SOAPCONNECT_SESSION_P",
                  "SOAPCONNECTED", dst)
            state(answered, c, "SOAPCONNECTED", "XMPPCONNECT_P", dst)
            latency = answered - start + rng.uniform(0.01, 0.15)  # + fresh OTP and XMPP
            state(start + latency, c, "XMPPCONNECT_P", "XMPPCONNECTED", dst)
            request(start + latency, c, "ha", "relogin", dst, (start + latency - ha) * 1000)
            recovery = start + latency - ha
            rec(start + latency, "connected", client=c, node=dst, relogin=True, recovery_s=recovery)
            truth.completion_t.append(start + latency)
            truth.recovery_s.append(recovery)
        return truth

    waves.append(wave("failover", config.failover_at_s, failed_node, peer, moved))
    actions = [{"ts": t0 + config.failover_at_s, "action": "failover", "node": failed_node}]
    last_t = config.failover_at_s + config.upper_s + 1
    if config.fallback_at_s is not None:
        back = [c for c in moved if c not in gave_up]
        waves.append(wave("fallback", config.fallback_at_s, peer, failed_node, back))
        actions.append({"ts": t0 + config.fallback_at_s, "action": "fallback", "node": failed_node})
        last_t = config.fallback_at_s + config.upper_s + 1
    end_t = config.end_at_s if config.end_at_s is not None else last_t + 2
    end_states: dict[str, int] = {}
    for c in clients:
        if c in gave_up:
            end_states["GAVE_UP"] = end_states.get("GAVE_UP", 0) + 1
            continue
        rec(end_t, "end", client=c, state="LOGGED_OUT", reason="stopped")
        end_states["LOGGED_OUT"] = end_states.get("LOGGED_OUT", 0) + 1

    server_events = []
    for w in waves:
        a, b = (("Failing Over", "Taking Over"), ("Idle", "Running in Backup Mode")) if w.kind == "failover" \
            else (("Taking Back", "Falling Back"), ("Normal", "Normal"))
        reason = "On Admin Request"
        server_events += [
            {"ts": t0 + w.at_s, "node": failed_node, "kind": "transition", "from": "x", "to": a[0], "reason": reason},
            {"ts": t0 + w.at_s, "node": peer, "kind": "transition", "from": "x", "to": a[1], "reason": reason},
            {"ts": t0 + w.at_s + 0.5, "node": failed_node, "kind": "transition", "from": a[0], "to": b[0], "reason": reason},
            {"ts": t0 + w.at_s + 0.5, "node": peer, "kind": "transition", "from": a[1], "to": b[1], "reason": reason},
        ]
    generator = [{"ts": t0 + s, "worker": "w1", "cpu_percent": config.cpu_percent + rng.uniform(-5, 5),
                  "loop_lag_ms": config.loop_lag_ms * rng.uniform(0.5, 1.5)} for s in range(int(end_t) + 1)]
    metrics = [{"ts": t0 + s, "node": n, "cpa_logins_ok": 0, "active_sessions": 0}  # no queue counters
               for s in range(int(end_t) + 1) for n in NODES]

    stop = t0 + config.stop_at_s if config.stop_at_s is not None else float("inf")

    def dump(name: str, rows: list[dict[str, Any]]) -> None:
        rows = sorted((r for r in rows if r["ts"] <= stop), key=lambda r: r["ts"])
        with (run_dir / name).open("w", encoding="utf-8") as fh:
            for r in rows:
                fh.write(json.dumps(r) + "\n")

    dump("client_events.jsonl", cev)
    dump("server_events.jsonl", server_events)
    dump("server_metrics.jsonl", metrics)
    dump("generator.jsonl", generator)
    run = {"run_id": run_dir.name, "started_ts": t0, "clients": config.clients, "lower_s": config.lower_s,
           "upper_s": config.upper_s, "server_login_rate": config.server_login_rate,
           "actions": [a for a in actions if a["ts"] <= stop], "partial": config.stop_at_s is not None}
    if config.recovery_margin_s is not None:
        run["recovery_margin_s"] = config.recovery_margin_s
    (run_dir / "run.json").write_text(json.dumps(run, indent=1), encoding="utf-8")
    return SimTruth(run_dir=run_dir, config=config, waves=waves, samples_ms=samples, end_states=end_states)
