"""The c2s listener seen byte by byte: SASL exchanges, HA stream errors, conflict, resets."""

from __future__ import annotations

import asyncio
import base64

import pytest
from listener_support import NODE, PEER, make_backend, running, slix, slix_session
from raw_xmpp import DOMAIN, TIMEOUT_S, RawXmppClient, header
from waiting import wait_until

from mock_server.xmpp.backend import NodeRef

SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
ERR = "urn:ietf:params:xml:ns:xmpp-streams"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def token_auth(user: str, otp: str) -> bytes:
    payload = base64.b64encode(f"userid={user}@{DOMAIN}\0token={otp}".encode()).decode()
    return f"<auth xmlns='{SASL}' mechanism='CISCO-VTG-TOKEN'>{payload}</auth>".encode()


def stream_error(condition: str, text: str | None = None) -> bytes:
    t = f"<text xmlns='{ERR}' xml:lang='en'>{text}</text>" if text else ""
    return f"<stream:error><{condition} xmlns='{ERR}'/>{t}</stream:error></stream:stream>".encode()


async def assert_control_served(port: int, user: str = "dave") -> None:
    """A fresh client logs in, binds and gets a ping answered."""
    control = await RawXmppClient.open(port)
    try:
        jid = await control.login(user, resource="control")
        assert jid == f"{user}@{DOMAIN}/control"
        await control.send(b"<iq type='get' id='c1'><ping xmlns='urn:xmpp:ping'/></iq>")
        assert await control.read_until(rb"</?iq[^>]*>") == f"<iq type='result' id='c1' from='{DOMAIN}'/>".encode()
    finally:
        control.close()


async def test_features_offer_mechanisms_and_hostname_hints() -> None:
    async with running() as (_l, port):
        c = await RawXmppClient.open(port)
        await c.send(header())
        got = await c.read_until(rb"</stream:features>")
        assert got.startswith(b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                              b"xmlns:stream='http://etherx.jabber.org/streams' id='")
        assert f"from='{DOMAIN}' version='1.0' xml:lang='en'>".encode() in got
        assert got.endswith(
            f"<stream:features><mechanisms xmlns='{SASL}'><mechanism>PLAIN</mechanism>"
            f"<mechanism>CISCO-VTG-TOKEN</mechanism><hostname xmlns='urn:xmpp:domain-based-name:0'>{NODE}</hostname>"
            f"<hostname xmlns='urn:xmpp:domain-based-name:0'>{PEER}</hostname></mechanisms></stream:features>".encode())
        c.close()


async def test_cisco_vtg_token_exchange_bytes() -> None:
    backend = make_backend()
    backend.issue_token("alice", "otp-123")
    async with running(backend) as (listener, port):
        c = await RawXmppClient.open(port)
        await c.send(header())
        await c.read_until(rb"</stream:features>")
        sent = token_auth("alice", "otp-123")
        assert sent == (f"<auth xmlns='{SASL}' mechanism='CISCO-VTG-TOKEN'>"
                        "dXNlcmlkPWFsaWNlQGV4YW1wbGUudGVzdAB0b2tlbj1vdHAtMTIz</auth>").encode()
        await c.send(sent)
        assert await c.read_until(rb"/>") == f"<success xmlns='{SASL}'/>".encode()
        await c.send(header())
        got = await c.read_until(rb"</stream:features>")
        assert got.endswith(b"<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"
                            b"<session xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/></session></stream:features>")
        await c.send(b"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
        got = await c.read_until(rb"</iq>")
        assert got.startswith(b"<iq type='result' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>alice@example.test/")
        await c.send(b"<iq type='set' id='s'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>")
        assert await c.read_until(rb"/>") == b"<iq type='result' id='s'/>"
        assert listener.metrics["auths_ok"] == 1
        await c.send(b"</stream:stream>")
        assert await c.read_to_close() == b"</stream:stream>"


async def test_otp_replayed_for_another_user_is_refused() -> None:
    backend = make_backend()
    backend.issue_token("alice", "otp-alice")
    async with running(backend) as (listener, port):
        c = await RawXmppClient.open(port)
        await c.send(header())
        await c.read_until(rb"</stream:features>")
        await c.send(token_auth("bob", "otp-alice"))
        assert await c.read_until(rb"</failure>") == f"<failure xmlns='{SASL}'><not-authorized/></failure>".encode()
        # the stream stays usable: the right user with the OTP gets in
        await c.send(token_auth("alice", "otp-alice"))
        assert await c.read_until(rb"/>") == f"<success xmlns='{SASL}'/>".encode()
        assert (listener.metrics["auths_failed"], listener.metrics["auths_ok"]) == (1, 1)
        c.close()
        await assert_control_served(port)


@pytest.mark.parametrize(("auth", "failure"), [
    (f"<auth xmlns='{SASL}' mechanism='DIGEST-MD5'/>", "invalid-mechanism"),
    (f"<auth xmlns='{SASL}' mechanism='PLAIN'>"+b64(b'\0bob\0wrong')+"</auth>", "not-authorized"),
    (f"<auth xmlns='{SASL}' mechanism='PLAIN'>"+b64(b'bob-no-nul')+"</auth>", "malformed-request"),
    (f"<auth xmlns='{SASL}' mechanism='PLAIN'>!!notbase64</auth>", "incorrect-encoding"),
    (f"<auth xmlns='{SASL}' mechanism='CISCO-VTG-TOKEN'>"+b64(b'token=x')+"</auth>", "malformed-request"),
])
async def test_sasl_failures_then_retry_succeeds(auth: str, failure: str) -> None:
    async with running() as (listener, port):
        c = await RawXmppClient.open(port)
        await c.send(header())
        await c.read_until(rb"</stream:features>")
        await c.send(auth.encode())
        assert await c.read_until(rb"</failure>") == f"<failure xmlns='{SASL}'><{failure}/></failure>".encode()
        ok = base64.b64encode(b"\0bob\0pass-bob").decode()
        await c.send(f"<auth xmlns='{SASL}' mechanism='PLAIN'>{ok}</auth>".encode())
        assert await c.read_until(rb"/>") == f"<success xmlns='{SASL}'/>".encode()
        c.close()
        await assert_control_served(port)
        assert listener.metrics["auths_failed"] == (1 if failure == "not-authorized" else 0)


async def test_user_served_elsewhere_gets_see_other_host() -> None:
    backend = make_backend()
    backend.elsewhere["carol"] = NodeRef(name=PEER, xmpp_host="127.0.0.1", xmpp_port=5299)
    backend.nobody_serves.add("erin")
    async with running(backend) as (listener, port):
        c = await RawXmppClient.open(port)
        await c.send(header())
        await c.read_until(rb"</stream:features>")
        ok = base64.b64encode(b"\0carol\0pass-carol").decode()
        await c.send(f"<auth xmlns='{SASL}' mechanism='PLAIN'>{ok}</auth>".encode())
        assert await c.read_to_close() == (
            f"<stream:error><see-other-host xmlns='{ERR}'>127.0.0.1:5299</see-other-host></stream:error>"
            "</stream:stream>").encode()
        c = await RawXmppClient.open(port)
        await c.send(header())
        await c.read_until(rb"</stream:features>")
        ok = base64.b64encode(b"\0erin\0pass-erin").decode()
        await c.send(f"<auth xmlns='{SASL}' mechanism='PLAIN'>{ok}</auth>".encode())
        assert await c.read_to_close() == stream_error("system-shutdown", "no node serves this user now")
        assert listener.metrics["redirects"] == 1
        await assert_control_served(port)


async def test_second_login_same_full_jid_conflicts_the_first() -> None:
    backend = make_backend()
    async with running(backend) as (listener, port):
        first, second = await RawXmppClient.open(port), await RawXmppClient.open(port)
        assert await first.login("alice", resource="desk") == f"alice@{DOMAIN}/desk"
        assert await second.login("alice", resource="desk") == f"alice@{DOMAIN}/desk"
        assert await first.read_to_close() == stream_error("conflict", "replaced by a new connection")
        assert listener.session_count == 1
        assert listener.sessions.get(f"alice@{DOMAIN}/desk").peer.endswith(
            str(second.writer.get_extra_info("sockname")[1]))
        assert list(backend.sessions) == [f"alice@{DOMAIN}/desk"]
        second.close()


async def test_shutdown_sessions_sends_system_shutdown_to_chosen_users() -> None:
    async with running() as (listener, port):
        alice, bob = slix("alice", port), slix("bob", port)
        errors: asyncio.Queue = asyncio.Queue()
        alice.add_event_handler("stream_error", errors.put_nowait)
        disconnected = asyncio.Event()
        alice.add_event_handler("disconnected", lambda _e: disconnected.set())
        async with slix_session(bob):
            async with slix_session(alice):
                assert listener.shutdown_sessions(lambda user: user == "alice") == 1
                err = await asyncio.wait_for(errors.get(), TIMEOUT_S)
                assert err["condition"] == "system-shutdown"
                await asyncio.wait_for(disconnected.wait(), TIMEOUT_S)
            assert listener.session_count == 1
            assert listener.sessions.get(f"bob@{DOMAIN}/slix") is not None
            rtt_s = await bob.plugin["xep_0199"].ping(jid=DOMAIN, timeout=TIMEOUT_S)
            assert rtt_s < TIMEOUT_S


async def test_abort_all_resets_connections() -> None:
    async with running() as (listener, port):
        c = await RawXmppClient.open(port)
        await c.login("alice")
        assert listener.abort_all() == 1
        with pytest.raises(ConnectionResetError):
            await c.read_to_close()
        await wait_until(lambda: listener.session_count == 0, TIMEOUT_S)
        await assert_control_served(port)


async def test_unanswered_server_ping_closes_with_connection_timeout() -> None:
    async with running(ping_interval_s=0.05, ping_timeout_s=0.2) as (listener, port):
        c = await RawXmppClient.open(port)
        jid = await c.login("alice")
        ping = await c.read_until(rb"</iq>")
        assert ping == (f"<iq type='get' id='s2c-1' from='{DOMAIN}' to='{jid}'>"
                        "<ping xmlns='urn:xmpp:ping'/></iq>").encode()
        assert await c.read_to_close() == stream_error("connection-timeout", "ping unanswered")
        assert listener.metrics["ping_timeouts"] == 1


async def test_connection_over_limit_gets_resource_constraint() -> None:
    async with running(max_connections=1) as (_l, port):
        first = await RawXmppClient.open(port)
        await first.login("alice")
        c = await RawXmppClient.open(port)
        await c.send(header())
        got = await c.read_to_close()
        assert got.startswith(b"<?xml version='1.0'?><stream:stream ")
        assert got.endswith(stream_error("resource-constraint", "too many connections"))
        first.close()


async def test_deliver_from_peer_and_route_to_backend() -> None:
    backend = make_backend()
    async with running(backend) as (listener, port):
        c = await RawXmppClient.open(port)
        jid = await c.login("alice", resource="desk")
        routed_in = f"<message from='zed@{DOMAIN}/x' to='{jid}' type='chat'><body>via peer</body></message>".encode()
        assert listener.sessions.deliver(f"alice@{DOMAIN}", routed_in) == 1  # bound but no presence yet: all sessions
        assert await c.read_until(rb"</message>") == routed_in
        assert listener.sessions.deliver(f"alice@{DOMAIN}/other", routed_in) == 0
        assert listener.sessions.deliver(f"nobody@{DOMAIN}", routed_in) == 0
        # carol is not connected here: the stanza goes to the backend, which has no peer -> error reply
        await c.send(f"<message to='carol@{DOMAIN}' id='m9'><body>x</body></message>".encode())
        bounce = await c.read_until(rb"</message>")
        assert bounce == (f"<message type='error' from='carol@{DOMAIN}' to='{jid}' id='m9'><error type='cancel'>"
                          "<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>").encode()
        assert list(backend.routed)[-1] == (f"carol@{DOMAIN}",
                                            f"<message from='{jid}' to='carol@{DOMAIN}' id='m9'><body>x</body></message>".encode())
        # presence: alice's broadcast goes to the backend once (for contacts served elsewhere), never bounced
        await c.send(b"<presence/>")
        await wait_until(lambda: len(backend.published) == 1, TIMEOUT_S)
        assert list(backend.published) == [(jid, f"<presence from='{jid}'/>".encode(), True)]
        assert listener.metrics["stanzas_bounced"] == 1
        c.close()
