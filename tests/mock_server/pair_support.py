"""Helpers for the tests that start the real mock pair (``test_pair_*``, ``test_admin_*``, browser).

A pair with short SRM timers, a SOAP probe that shows exactly what a client sees, slixmpp clients
configured per ENGINEERING.md, and readers of the admin API's event log; the raw-socket XMPP client
is ``raw_xmpp``. Imported by the test modules (``tests/mock_server/conftest.py`` puts this directory
on ``sys.path``).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import slixmpp
from raw_xmpp import DOMAIN, TIMEOUT_S, RawXmppClient
from waiting import wait_until

from mock_server.pair.runner import MockPair
from mock_server.pair_config import DEFAULT_NODE_NAMES, PairConfig
from mock_server.users import provision

__all__ = [
    "DOMAIN", "N1", "N2", "FAST_PARAMS", "TIMEOUT_S", "SoapResult", "fast_config", "started_pair", "soap",
    "soap_login_otp", "slix_client", "slix_connected", "transitions", "wait_transitions", "PairPool", "home_users",
    "contacts_on_other_node", "node_of", "online", "xmpp_port", "cpa_url",
]

N1, N2 = DEFAULT_NODE_NAMES
FAST_PARAMS = (
    "heartbeat_interval_s=0.1",
    "heartbeat_timeout_s=0.5",
    "init_heartbeat_timeout_s=1.0",
    "critical_service_delay_s=0.3",
    "relogin_lower_s=1",
    "relogin_upper_s=2",
)
"""SRM timers shrunk for tests: beat 0.1 s, peer silent 0.5 s = down, service down 0.3 s = failover."""

_SOAP_NS = "urn:cisco:epas:soap"


def fast_config(*, users: int = 10, params: tuple[str, ...] = (), **kw: Any) -> PairConfig:
    """A pair config on loopback port 0 with :data:`FAST_PARAMS` plus ``params`` (later wins)."""
    return PairConfig(users=users, params=FAST_PARAMS + params, **kw)


@contextlib.asynccontextmanager
async def started_pair(config: PairConfig | None = None, **kw: Any) -> AsyncIterator[MockPair]:
    """A running pair whose two nodes are Normal (bounded wait); stopped on exit."""
    async with MockPair(config or fast_config(), **kw) as pair:
        if pair.config.ha_enabled:
            await pair.wait_for_states({N1: "Normal", N2: "Normal"}, timeout_s=10)
        yield pair


async def online(pair: MockPair, node: str, user: str, *, resource: str = "probe", **kw: Any) -> RawXmppClient:
    """A raw XMPP client of ``user`` signed in on ``node`` with its initial presence sent."""
    client = await RawXmppClient.open(xmpp_port(pair, node))
    await client.login(user, resource=resource, presence=True, **kw)
    return client


def node_of(pair: MockPair, name: str) -> dict[str, Any]:
    """The topology entry of node ``name``."""
    return next(n for n in pair.topology["nodes"] if n["name"] == name)


def xmpp_port(pair: MockPair, name: str) -> int:
    return int(node_of(pair, name)["xmpp_port"])


def cpa_url(pair: MockPair, name: str) -> str:
    return str(node_of(pair, name)["cpa_url"])


def home_users(config: PairConfig) -> dict[str, list[str]]:
    """Node name -> user ids homed there (the same provisioning the nodes run)."""
    directory = provision(config.users, config.node_names, seed=config.seed, contacts=config.contacts)
    return {name: [u.user_id for u in directory.users_on(name)] for name in config.node_names}


def contacts_on_other_node(config: PairConfig) -> tuple[str, str]:
    """Two users that are roster contacts of each other, homed on node 1 and node 2."""
    directory = provision(config.users, config.node_names, seed=config.seed, contacts=config.contacts)
    for user in directory.users_on(config.node_names[0]):
        for contact in directory.contacts_of(user.user_id):
            if directory.home_node(contact) == config.node_names[1]:
                return user.user_id, contact
    raise AssertionError("no pair of contacts across the two nodes")


# -- events ------------------------------------------------------------------------------------
def transitions(events: list[dict[str, Any]], node: str | None = None) -> list[tuple[str, str, str]]:
    """``(node, to, reason)`` of the state transitions, in the order recorded (node-stamped time)."""
    rows = sorted((e for e in events if e.get("kind") == "transition"), key=lambda e: e["ts"])
    return [(e["node"], e["to"], e["reason"]) for e in rows if node is None or e["node"] == node]


async def wait_transitions(
    pair: MockPair, since: float, expected: dict[str, list[tuple[str, str]]], timeout_s: float = 8.0
) -> list[dict[str, Any]]:
    """Wait until each node's transitions since ``since`` are exactly ``expected[node]`` (state,
    reason) in order; returns the events since ``since``.

    Raises:
        AssertionError: another sequence, or not complete in time (the message shows what was seen).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        events = (await pair.admin("GET", f"/api/events?since={since}"))["events"]
        seen = {n: [(to, r) for _, to, r in transitions(events, n)] for n in expected}
        if seen == expected:
            return list(events)
        for n, want in expected.items():
            assert seen[n] == want[: len(seen[n])], f"{n}: transitions {seen[n]}, expected {want}"
        if time.monotonic() > deadline:
            raise AssertionError(f"transitions {seen}, expected {expected}")
        await asyncio.sleep(0.05)


# -- SOAP: one call with a hand-written envelope --------------------------------------------------
@dataclass(frozen=True)
class SoapResult:
    """HTTP status, the fault's ``epas:error code`` (or None) and the success payload text."""

    status: int
    fault: str | None
    value: str | None
    body: str


def _envelope(op: str, inner: str, key: str | None) -> bytes:
    header = f"<env:Header><epas:session-key>{key}</epas:session-key></env:Header>" if key else ""
    return (f"<?xml version='1.0' encoding='utf-8'?><env:Envelope xmlns:env='http://www.w3.org/2003/05/soap-envelope'"
            f" xmlns:epas='{_SOAP_NS}'>{header}<env:Body>{inner}</env:Body></env:Envelope>").encode()


async def soap(session: aiohttp.ClientSession, url: str, op: str, *, user: str | None = None,
               password: str | None = None, key: str | None = None, otp: str | None = None,
               timeout_s: float = TIMEOUT_S * 4) -> SoapResult:
    """One CPA call (``login``, ``get-all-config``, ``get-onetime-password``, ``logout``); a
    ``login`` with ``otp`` is the session login with the one-time password.

    Raises:
        TimeoutError: no answer within ``timeout_s`` (the connection is then closed).
    """
    if op == "login":
        secret = (f"<epas:onetime-password>{otp}</epas:onetime-password>" if otp is not None
                  else f"<epas:password>{password or 'pass-' + str(user)}</epas:password>")
        inner = (f"<epas:login client-type='CUPC' client-version='14.1' force='true'><epas:username>{user}"
                 f"</epas:username>{secret}</epas:login>")
    else:
        inner = f"<epas:{op}/>"
    headers = {"Content-Type": f'application/soap+xml; charset=utf-8; action="{_SOAP_NS}/{op}"'}
    async with session.post(url, data=_envelope(op, inner, key), headers=headers,
                            timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
        body = await resp.text()
    fault = re.search(r"<epas:error[^>]*code=\"([a-z-]+)\"|<epas:error[^>]*code='([a-z-]+)'", body)
    value = re.search(r"<epas:(?:session-key|password)>([^<]+)<", body)
    return SoapResult(status=resp.status, fault=(fault.group(1) or fault.group(2)) if fault else None,
                      value=value.group(1) if value else None, body=body)


async def soap_login_otp(session: aiohttp.ClientSession, url: str, user: str) -> str:
    """CPA login then get-onetime-password; returns the OTP.

    Raises:
        AssertionError: a fault (shown).
    """
    login = await soap(session, url, "login", user=user)
    assert login.status == 200 and login.value, login.body
    otp = await soap(session, url, "get-onetime-password", key=login.value)
    assert otp.status == 200 and otp.value, otp.body
    return otp.value


# -- slixmpp --------------------------------------------------------------------------------------
def slix_client(user: str, *, password: str | None = None, otp: str | None = None,
                resource: str = "slix") -> slixmpp.ClientXMPP:
    """slixmpp per ENGINEERING.md: plain TCP, no direct TLS, PLAIN over plain TCP allowed, no
    auto-reconnect; with ``otp`` the CISCO-VTG-TOKEN mechanism (``jabberemu.xmpp.sasl``) is used."""
    import jabberemu.xmpp.sasl  # noqa: F401  (registers CISCO-VTG-TOKEN with slixmpp)

    client = slixmpp.ClientXMPP(f"{user}@{DOMAIN}/{resource}", password or f"pass-{user}",
                                loop=asyncio.get_running_loop())
    client.enable_starttls = False
    client.enable_direct_tls = False
    client.enable_plaintext = True
    client.plugin["feature_mechanisms"].unencrypted_plain = True
    client.auto_reconnect = False
    if otp is not None:
        client.credentials["token"] = otp.encode()
        client.plugin["feature_mechanisms"].use_mech = "CISCO-VTG-TOKEN"
    else:
        client.plugin["feature_mechanisms"].use_mech = "PLAIN"
    return client


@contextlib.asynccontextmanager
async def slix_connected(client: slixmpp.ClientXMPP, port: int) -> AsyncIterator[slixmpp.ClientXMPP]:
    """Connect to 127.0.0.1:``port``, wait for ``session_start`` (bounded), disconnect on exit."""
    started = asyncio.Event()
    failed: list[Any] = []
    client.add_event_handler("session_start", lambda _e: started.set())
    client.add_event_handler("failed_auth", failed.append)
    client.connect("127.0.0.1", port)
    try:
        await wait_until(lambda: started.is_set() or failed, TIMEOUT_S, "slixmpp session_start")
        assert not failed, f"{client.boundjid.bare}: authentication failed"
        yield client
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.disconnect(wait=0.5), TIMEOUT_S)


class PairPool:
    """One pair shared by the tests of a module while it stays clean: both nodes alive and Normal,
    every service running, no partition, the parameters it started with. A test that leaves it
    otherwise gets a fresh pair for the next test, so no test depends on another's leftovers.

    Args:
        config: the pair's settings.
    """

    def __init__(self, config: PairConfig) -> None:
        self.config = config
        self.pair: MockPair | None = None
        self._params: Any = None
        self.starts = 0

    async def get(self) -> MockPair:
        """The shared pair, clean (a fresh one when the last test left it otherwise)."""
        if self.pair is not None and not await self._clean(self.pair):
            await self.close()
        if self.pair is None:
            pair = MockPair(self.config)
            await pair.start()
            try:
                await pair.wait_for_states({N1: "Normal", N2: "Normal"}, timeout_s=10)
                self._params = await pair.admin("GET", "/api/parameters")
            except BaseException:
                await pair.stop()
                raise
            self.pair = pair
            self.starts += 1
        return self.pair

    async def _clean(self, pair: MockPair) -> bool:
        try:
            status = await pair.admin("GET", "/api/status")
            params = await pair.admin("GET", "/api/parameters")
        except Exception:
            return False
        return params == self._params and all(
            n.get("alive") and n["state"] == "Normal" and not n.get("partitioned")
            and set(n["services"].values()) == {"running"}
            for n in status["nodes"]
        )

    async def close(self) -> None:
        if self.pair is not None:
            pair, self.pair = self.pair, None
            await pair.stop()
