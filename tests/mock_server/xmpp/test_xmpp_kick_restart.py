"""A stream error due while the client restarts its stream after SASL success waits for the restart.

Regression: a failover that closed streams right after ``<success/>`` wrote our new stream header
and the error before the client had reset its parser, and slixmpp failed with a parse error
(RFC 6120 §6.4.6: nothing is sent between success and the client's restart).
"""

from __future__ import annotations

import asyncio

from listener_support import make_backend, running
from raw_xmpp import TIMEOUT_S, RawXmppClient, header
from test_xmpp_raw import SASL, token_auth


async def test_kick_between_success_and_restart_waits_for_the_restart() -> None:
    backend = make_backend()
    backend.issue_token("alice", "otp-1")
    async with running(backend) as (listener, port):
        c = await RawXmppClient.open(port)
        await c.send(header())
        await c.read_until(rb"</stream:features>")
        await c.send(token_auth("alice", "otp-1"))
        assert await c.read_until(rb"/>") == f"<success xmlns='{SASL}'/>".encode()
        assert listener.shutdown_sessions(lambda user: user == "alice") == 1
        # Nothing may arrive before our restart: the old document is finished.
        try:
            early = await asyncio.wait_for(c.reader.read(1), 0.2)
        except asyncio.TimeoutError:
            early = b""
        assert early == b""
        await c.send(header())
        rest = await c.read_to_close(TIMEOUT_S)
        assert rest.startswith(b"<?xml version='1.0'?><stream:stream ")
        assert b"<stream:error><system-shutdown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>" in rest
        assert rest.endswith(b"</stream:stream>")


async def test_conflict_with_a_vanished_older_session_keeps_the_new_one() -> None:
    """Regression: kicking an older session whose peer is gone raised ENOTCONN from
    ``write_eof`` inside the *new* connection's ``data_received``, and asyncio dropped the new one."""
    async with running() as (listener, port):
        old = await RawXmppClient.open(port)
        assert await old.login("alice", resource="r") == "alice@example.test/r"
        conn = listener.sessions.get("alice@example.test/r")
        assert conn.transport is not None
        conn.transport.pause_reading()  # the server will not notice the reset before the kick
        old.writer.transport.abort()  # the older session's peer is gone (FIN; its socket is closed)
        await asyncio.sleep(0.1)
        new = await RawXmppClient.open(port)
        assert await new.login("alice", resource="r") == "alice@example.test/r"
        await new.send(b"<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>")
        assert await new.read_until(rb"</?iq[^>]*>") == b"<iq type='result' id='p' from='example.test'/>"
        assert listener.sessions.get("alice@example.test/r") not in (None, conn)
        new.close()
