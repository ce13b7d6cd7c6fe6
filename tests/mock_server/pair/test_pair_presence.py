"""Presence across the pair is exact through failover, fallback and sign-out (issue 16).

Each node learns the presence of the users its peer serves from the peer's presence frames, not
only from stanzas routed to a local contact, so a node that served nobody for a while (failed over)
still knows the truth when its users come back. What a user gets after its initial presence is read
up to the answer of a ping sent right after it: the server writes the contacts' presence before it
reads the next stanza, so everything it would ever send for the probe is in those bytes.
"""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import pytest
from pair_support import N1, N2, cpa_url, online, soap_login_otp, wait_transitions, xmpp_port
from raw_xmpp import RawXmppClient

from mock_server.pair.runner import MockPair

pytestmark = pytest.mark.asyncio(loop_scope="module")

U1, U2 = "user00001", "user00002"  # homes: imp1, imp2; roster contacts of each other
ADMIN = "On Admin Request"
U2_AVAILABLE = rb"<presence from='user00002@example.test/"
U2_GONE = rb"<presence type='unavailable' from='user00002@example.test/"


async def sign_in_and_look(pair: MockPair, node: str, user: str, **kw: Any) -> tuple[RawXmppClient, bytes]:
    """Sign ``user`` in on ``node`` with initial presence; everything the server sent it up to the
    answer of the ping that follows."""
    client = await online(pair, node, user, **kw)
    return client, await client.ping(f"look-{time.monotonic_ns()}")


async def failover_n1(pair: MockPair) -> None:
    since = time.time()
    await pair.admin("POST", "/api/failover", {"node": N1})
    await wait_transitions(pair, since, {N1: [("Failing Over", ADMIN), ("Idle", ADMIN)],
                                         N2: [("Taking Over", ADMIN), ("Running in Backup Mode", ADMIN)]})


async def fallback_n1(pair: MockPair) -> None:
    since = time.time()
    await pair.admin("POST", "/api/fallback", {"node": N1})
    await wait_transitions(pair, since, {N1: [("Taking Back", ADMIN), ("Normal", "Normal")],
                                         N2: [("Falling Back", ADMIN), ("Normal", "Normal")]})


async def test_a_contact_that_signed_out_while_failed_over_is_not_shown_after_fallback(
        pair: MockPair, http: aiohttp.ClientSession) -> None:
    a = await online(pair, N1, U1)
    b = await online(pair, N2, U2)
    await a.read_until(U2_AVAILABLE)  # imp1 has heard U2's presence
    await failover_n1(pair)
    await a.closed()
    a2 = await online(pair, N2, U1, otp=await soap_login_otp(http, cpa_url(pair, N2), U1))
    b.close()  # U2 signs out while imp1 serves nobody
    await a2.read_until(U2_GONE)
    await fallback_n1(pair)
    await a2.closed()
    back, seen = await sign_in_and_look(pair, N1, U1)
    assert U2_AVAILABLE not in seen, seen
    back.close()


async def test_a_contact_that_signed_in_while_failed_over_is_shown_after_fallback(
        pair: MockPair, http: aiohttp.ClientSession) -> None:
    a = await online(pair, N1, U1)
    await failover_n1(pair)
    await a.closed()
    a2 = await online(pair, N2, U1, otp=await soap_login_otp(http, cpa_url(pair, N2), U1))
    b = await online(pair, N2, U2, resource="new")  # U2 signs in while imp1 serves nobody
    await a2.read_until(rb"<presence from='user00002@example.test/new'")
    await fallback_n1(pair)
    await a2.closed()
    back, seen = await sign_in_and_look(pair, N1, U1)
    assert seen.count(U2_AVAILABLE) == 1 and b"/new'" in seen, seen
    b.close()
    await back.read_until(rb"<presence type='unavailable' from='user00002@example.test/new'/>")
    back.close()


async def test_the_peer_users_presence_is_one_entry_per_resource_after_a_move(pair: MockPair) -> None:
    """U2 signs out and in again on its home node: imp1's users see it once, not twice."""
    b = await online(pair, N2, U2)
    b.close()
    watcher = await online(pair, N1, U1, resource="w")
    b2 = await online(pair, N2, U2, resource="other")
    await watcher.read_until(rb"<presence from='user00002@example.test/other'")
    later, seen = await sign_in_and_look(pair, N1, U1, resource="late")
    assert seen.count(U2_AVAILABLE) == 1 and b"/other'" in seen, seen
    for c in (watcher, later, b2):
        c.close()
