"""The c2s listener against slixmpp 1.17 on real loopback sockets: login, roster, presence,
messages, pings both ways, STARTTLS."""

from __future__ import annotations

import asyncio

import pytest
from listener_support import DOMAIN, TIMEOUT_S, make_backend, running, slix, slix_session
from waiting import wait_until


async def test_plain_login_bind_roster_presence() -> None:
    backend = make_backend()
    async with running(backend) as (listener, port):
        async with slix_session(slix("alice", port)) as alice:
            assert str(alice.boundjid) == f"alice@{DOMAIN}/slix"
            roster = await asyncio.wait_for(alice.get_roster(), TIMEOUT_S)
            items = roster["roster"]["items"]
            assert sorted(str(j) for j in items) == [f"bob@{DOMAIN}", f"erin@{DOMAIN}"]
            assert {items[j]["subscription"] for j in items} == {"both"}
            alice.send_presence(pstatus="here")
            await wait_until(lambda: listener.sessions.get(f"alice@{DOMAIN}/slix").presence is not None)
            assert listener.session_count == 1
            assert [s.full_jid for s in backend.sessions.values()] == [f"alice@{DOMAIN}/slix"]
            m = listener.metrics
            assert (m["auths_ok"], m["auths_failed"], m["sessions_active"]) == (1, 0, 1)
        await wait_until(lambda: listener.session_count == 0)
        assert backend.sessions == {}


async def test_two_users_exchange_presence_and_message() -> None:
    async with running() as (listener, port):
        alice, bob = slix("alice", port), slix("bob", port)
        got_presence: asyncio.Queue = asyncio.Queue()
        got_message: asyncio.Queue = asyncio.Queue()
        alice.add_event_handler("presence_available", got_presence.put_nowait)
        bob.add_event_handler("presence_available", got_presence.put_nowait)
        bob.add_event_handler("presence_unavailable", got_presence.put_nowait)
        bob.add_event_handler("message", got_message.put_nowait)
        async with slix_session(bob):
            bob.send_presence(pstatus="bob here")
            async with slix_session(alice):
                alice.send_presence(pstatus="alice here")
                seen = {}
                for _ in range(2):
                    p = await asyncio.wait_for(got_presence.get(), TIMEOUT_S)
                    seen[str(p["to"].bare) if p["to"] else str(p["from"])] = p
                # alice's broadcast reached bob; bob's current presence was sent to alice (probe answer)
                p_to_bob = [p for p in seen.values() if str(p["from"]) == f"alice@{DOMAIN}/slix"]
                p_to_alice = [p for p in seen.values() if str(p["from"]) == f"bob@{DOMAIN}/slix"]
                assert p_to_bob and p_to_bob[0]["status"] == "alice here"
                assert p_to_alice and p_to_alice[0]["status"] == "bob here"
                alice.send_message(mto=f"bob@{DOMAIN}", mbody="hello bob & co", mtype="chat")
                msg = await asyncio.wait_for(got_message.get(), TIMEOUT_S)
                assert str(msg["from"]) == f"alice@{DOMAIN}/slix"
                assert msg["body"] == "hello bob & co"
                assert msg["type"] == "chat"
            gone = await asyncio.wait_for(got_presence.get(), TIMEOUT_S)
            assert str(gone["from"]) == f"alice@{DOMAIN}/slix" and gone["type"] == "unavailable"
        assert listener.metrics["stanzas_routed"] == 1


async def test_message_to_offline_user_bounces_service_unavailable() -> None:
    async with running() as (_listener, port):
        alice = slix("alice", port)
        errors: asyncio.Queue = asyncio.Queue()
        alice.add_event_handler("message_error", errors.put_nowait)
        async with slix_session(alice):
            alice.send_message(mto=f"carol@{DOMAIN}", mbody="anyone?", mtype="chat")
            err = await asyncio.wait_for(errors.get(), TIMEOUT_S)
            assert err["error"]["condition"] == "service-unavailable"
            assert str(err["from"]) == f"carol@{DOMAIN}"


async def test_client_pings_server() -> None:
    async with running() as (_listener, port):
        async with slix_session(slix("alice", port)) as alice:
            rtt_s = await alice.plugin["xep_0199"].ping(jid=DOMAIN, timeout=TIMEOUT_S)
            assert 0 <= rtt_s < TIMEOUT_S


async def test_server_pings_idle_client() -> None:
    async with running(ping_interval_s=0.1, ping_timeout_s=2.0) as (listener, port):
        async with slix_session(slix("alice", port)):
            await wait_until(lambda: listener.metrics["pongs_received"] >= 2)
            m = listener.metrics
            assert m["pings_sent"] >= 2 and m["ping_timeouts"] == 0
            assert listener.session_count == 1


@pytest.mark.parametrize("tls_required", [False, True])
async def test_starttls_login(tls_required: bool) -> None:
    async with running(tls=True, tls_required=tls_required) as (listener, port):
        alice = slix("alice", port, tls=True)
        async with slix_session(alice):
            assert alice.transport.get_extra_info("sslcontext") is not None
            roster = await asyncio.wait_for(alice.get_roster(), TIMEOUT_S)
            assert len(roster["roster"]["items"]) == 2
            conn = listener.sessions.get(f"alice@{DOMAIN}/slix")
            assert conn.info is not None and conn.info.secured
        assert listener.metrics["tls_upgrades"] == 1


class FakeTransport(asyncio.Transport):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.name, self.written, self.reading, self.closed = name, [], True, False

    def get_extra_info(self, name, default=None):
        return ("127.0.0.1", 40000) if name == "peername" else default

    def set_write_buffer_limits(self, high=None, low=None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def write(self, data) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def can_write_eof(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True


async def test_starttls_race_replies_wait_for_the_tls_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    """The client's new header arrives through TLS before start_tls() returns (ENGINEERING.md):
    the features must go out on the TLS transport, never in clear on the old one."""
    from listener_support import server_ssl
    from raw_xmpp import header

    from mock_server.xmpp.connection import C2sConnection
    from mock_server.xmpp.listener import XmppListener
    from mock_server.xmpp.settings import ListenerSettings
    from mock_server.xmpp.wire import C2sStream

    listener = XmppListener(make_backend(), ListenerSettings(), ssl_context=server_ssl())
    listener._loop = asyncio.get_running_loop()
    plain_t, tls_t = FakeTransport("plain"), FakeTransport("tls")
    conn = C2sConnection(listener, C2sStream(listener._wire))

    async def fake_start_tls(transport, protocol, sslcontext, *, server_side, ssl_handshake_timeout):
        assert transport is plain_t and not plain_t.reading and server_side
        protocol.data_received(header())  # decrypted new header, before we return
        await asyncio.sleep(0)
        return tls_t

    monkeypatch.setattr(listener._loop, "start_tls", fake_start_tls)
    conn.connection_made(plain_t)
    conn.data_received(header())
    conn.data_received(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    assert plain_t.written[-1] == b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
    await wait_until(lambda: conn.transport is tls_t)
    assert len(plain_t.written) == 2  # header+features, proceed: nothing after in clear
    assert len(tls_t.written) == 1 and tls_t.written[0].endswith(b"</stream:features>")
    assert b"<starttls" not in tls_t.written[0] and b"<mechanism>PLAIN</mechanism>" in tls_t.written[0]
    assert listener.metrics["tls_upgrades"] == 1
