"""The scenario every real peer runs: the emulator in XMPP-only mode against one real server.

50 clients log in (PLAIN or SCRAM), get their roster (one contact each, subscription ``both``),
see their contact's presence, exchange one stamped message each way (``xmpp/message-latency``);
then the server restarts as an HA event: every client sees its stream closed, waits a time drawn
in [lower, upper] (``ClientSettings.default_limits``) and logs in again once the server is back;
presence and messages work again; the clients sign out. Every phase is bounded.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from peer_servers import PeerServer

from jabberemu.config import ClientSettings, NodeAddress, ReloginLimits, SaslMechanism, ServerPair, Timeouts
from jabberemu.core import metrics as mx
from jabberemu.core.states import ClientState, EndReason
from jabberemu.driver import EmulatedClient
from jabberemu.runtime import RecordType, Runtime

__all__ = ["CLIENTS", "PeerFigures", "check_restart_figures", "make_users", "run_peer_scenario"]

logger = logging.getLogger(__name__)

CLIENTS = 50


def make_users(n: int = CLIENTS) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """``(users, contacts)``: user00001.. with passwords, contacts paired 1-2, 3-4, ..."""
    users = [(f"user{i:05d}", f"pass-user{i:05d}") for i in range(1, n + 1)]
    contacts = [(users[i][0], users[i + 1][0]) for i in range(0, n - 1, 2)]
    return users, contacts


@dataclass(kw_only=True)
class PeerFigures:
    """What one run measured (seconds and milliseconds as named)."""

    login_all_s: float = 0.0
    message_latency_ms: list[float] = field(default_factory=list)
    restart_gap_s: float = 0.0
    waits_s: list[float] = field(default_factory=list)
    recovery_s: list[float] = field(default_factory=list)
    ha_classes: dict[str, int] = field(default_factory=dict)
    second_round: int = 0

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.message_latency_ms)
        return {
            "login_all_s": round(self.login_all_s, 2), "messages": len(lat),
            "latency_p50_ms": round(statistics.median(lat), 1) if lat else None,
            "latency_max_ms": round(lat[-1], 1) if lat else None, "restart_gap_s": round(self.restart_gap_s, 2),
            "recovery_min_s": round(min(self.recovery_s), 2), "recovery_max_s": round(max(self.recovery_s), 2),
            "ha_classes": self.ha_classes, "second_round": self.second_round,
        }


async def _until(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout_s} s")
        await asyncio.sleep(0.02)


def _sees_available(client: EmulatedClient, contact_jid: str) -> bool:
    session = client.xmpp
    if session is None:
        return False
    return bool(session.client_roster[contact_jid].resources)


async def _presence_and_messages(clients: list[EmulatedClient], partner: dict[str, str], domain: str,
                                 latencies: list[float], timeout_s: float) -> None:
    """Each client sees its contact available, then sends it one message; all arrive."""
    await _until(lambda: all(_sees_available(c, f"{partner[c.user_id]}@{domain}") for c in clients),
                 timeout_s, "every contact's presence seen")
    before = len(latencies)
    received = {c.user_id: c.xmpp.messages_received for c in clients if c.xmpp}
    assert all(c.send_message(f"{partner[c.user_id]}@{domain}") for c in clients)
    await _until(lambda: len(latencies) - before == len(clients), timeout_s, "every message delivered")
    assert {c.user_id: c.xmpp.messages_received - received[c.user_id] for c in clients if c.xmpp} == {
        c.user_id: 1 for c in clients}


async def run_peer_scenario(server: PeerServer, *, mechanism: SaslMechanism, limits: ReloginLimits,
                            node_name: str) -> PeerFigures:
    """Run the whole scenario against a started ``server`` (see the module docstring).

    Raises:
        AssertionError: a phase failed or took longer than its bound.
    """
    users, contacts = make_users()
    partner = {a: b for a, b in contacts} | {b: a for a, b in contacts}
    figures = PeerFigures()
    measured: list[tuple[str, mx.Measurement]] = []
    latencies = figures.message_latency_ms

    def measure(client: str, m: mx.Measurement) -> None:
        measured.append((client, m))
        if m.label == "xmpp/message-latency" and m.ok:
            latencies.append(m.response_time_ms)

    pair = ServerPair(domain=server.domain, nodes=(
        NodeAddress(name=node_name, cpa_url=None, xmpp_host="127.0.0.1", xmpp_port=server.port),))
    settings = ClientSettings(
        xmpp_only=True, verify_tls=False, password_mechanism=mechanism, default_limits=limits,
        timeouts=Timeouts(soap_s=5, connect_s=5, auth_s=10, bind_s=10, ping_interval_s=30, ping_timeout_s=10))
    rt = await Runtime.create(pair, settings, measure=measure)
    clients = [EmulatedClient(u, p, node_name, rt, starttls=False) for u, p in users]
    try:
        # -- login, roster, presence, messages ---------------------------------------------------
        t0 = time.monotonic()
        states = await asyncio.wait_for(asyncio.gather(*(c.start() for c in clients)), 30)
        figures.login_all_s = time.monotonic() - t0
        assert states == [ClientState.XMPPCONNECTED] * CLIENTS, [c.machine.end_detail for c in clients]
        assert {c.user_id: c.contacts for c in clients} == {
            c.user_id: [f"{partner[c.user_id]}@{server.domain}"] for c in clients}
        auths = [m for _c, m in measured if m.label == "xmpp/auth"]
        assert len(auths) == CLIENTS and all(m.ok for m in auths)
        await _presence_and_messages(clients, partner, server.domain, latencies, 10)

        # -- the server restarts: an HA event for every client -------------------------------------
        t_down = time.monotonic()
        await server.stop()
        await server.start()
        figures.restart_gap_s = time.monotonic() - t_down
        await asyncio.wait_for(_until(lambda: len(rt.sink.of_type(RecordType.CONNECTED)) == 2 * CLIENTS,
                                      2 * limits.upper_s + 20, "every client back"), 2 * limits.upper_s + 25)
        for client in clients:
            (ha,) = [r for r in rt.sink.of_type(RecordType.HA_EVENT) if r["client"] == client.user_id]
            figures.ha_classes[ha["cls"]] = figures.ha_classes.get(ha["cls"], 0) + 1
            waits = [r for r in rt.sink.of_type(RecordType.WAIT) if r["client"] == client.user_id]
            assert 1 <= len(waits) <= 2  # a second round only when the server was not back yet
            figures.second_round += len(waits) - 1
            for w in waits:
                assert limits.lower_s <= w["wait_s"] <= limits.upper_s
                assert (w["lower_s"], w["upper_s"]) == (limits.lower_s, limits.upper_s)
                figures.waits_s.append(w["wait_s"])
            back = [r for r in rt.sink.of_type(RecordType.CONNECTED) if r["client"] == client.user_id][-1]
            assert back["relogin"] is True and back["node"] == node_name
            assert back["recovery_s"] >= sum(w["wait_s"] for w in waits)
            figures.recovery_s.append(back["recovery_s"])
        snap = rt.registry.snapshot()
        assert snap.started == CLIENTS == snap.by_state[ClientState.XMPPCONNECTED]
        await _presence_and_messages(clients, partner, server.domain, latencies, 10)

        # -- sign out ------------------------------------------------------------------------------
        states = await asyncio.wait_for(asyncio.gather(*(c.stop(timeout_s=3) for c in clients)), 10)
        assert states == [ClientState.LOGGED_OUT] * CLIENTS
        assert rt.registry.snapshot().end_reasons == {(ClientState.LOGGED_OUT, EndReason.STOP_REQUESTED): CLIENTS}
        logger.info("peer %s: %s", node_name, figures.summary())
        return figures
    finally:
        await asyncio.wait_for(asyncio.gather(*(c.stop(timeout_s=1) for c in clients)), 10)
        await rt.aclose()


def check_restart_figures(figures: PeerFigures, log_tail: str) -> None:
    """What every peer scenario asserts after the server restart.

    A stopping server closes most streams with ``<system-shutdown/>``; ejabberd may close some
    without the stream error: every client saw exactly one HA event either way, and every
    message went both ways in time.
    """
    assert sum(figures.ha_classes.values()) == CLIENTS, figures.ha_classes
    assert set(figures.ha_classes) <= {"stream-error:system-shutdown", "connection-closed", "connection-reset"}, \
        log_tail
    assert figures.ha_classes.get("stream-error:system-shutdown", 0) > 0
    assert len(figures.message_latency_ms) == 2 * CLIENTS
    assert max(figures.message_latency_ms) < 5000
