"""Bad input to the c2s listener: each case gets its exact stream error, and a control client is
served afterwards (RFC 6120 §4.9.3, §11.1)."""

from __future__ import annotations

import asyncio
import re

import pytest
from listener_support import running
from raw_xmpp import DOMAIN, TIMEOUT_S, RawXmppClient, header
from waiting import wait_until
from test_xmpp_raw import assert_control_served, stream_error

HEAD_REPLY = b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'"

LAUGHS = (b"<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>"
          + b"".join(f"<!ENTITY lol{i} '{('&lol' + str(i - 1 if i > 1 else '') + ';') * 10}'>".encode()
                     for i in range(1, 10))
          + b"]>" + header()[len(b"<?xml version='1.0'?>"):] + b"<message to='bob@example.test'><body>&lol9;</body></message>")
XXE = (b"<?xml version='1.0'?><!DOCTYPE s [<!ENTITY xxe SYSTEM 'file:///etc/passwd'>]>"
       + header()[len(b"<?xml version='1.0'?>"):] + b"<message><body>&xxe;</body></message>")


async def error_for(port: int, data: bytes, *, login_first: bool = False) -> bytes:
    """Send ``data`` (after a login if asked) and return everything up to the server's close."""
    c = await RawXmppClient.open(port)
    if login_first:
        await c.login("alice")
    else:
        await c.send(header())
        await c.read_until(rb"</stream:features>")
    await c.send(data)
    return await c.read_to_close()


@pytest.mark.parametrize(("data", "condition"), [
    (b"\x00\xff\xfe garbage <<<>>>", "not-well-formed"),
    (LAUGHS, "restricted-xml"),
    (XXE, "restricted-xml"),
    (header(ns="jabber:server"), "invalid-namespace"),
    (header(stream_ns="urn:example:wrong"), "invalid-namespace"),
    (header(to="evil.example"), "host-unknown"),
    (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "not-well-formed"),
])
async def test_bad_stream_start(data: bytes, condition: str) -> None:
    """Errors before our header: the header comes first (RFC 6120 §4.9.1.1)."""
    async with running() as (listener, port):
        c = await RawXmppClient.open(port)
        await c.send(data)
        got = await c.read_to_close()
        assert got.startswith(HEAD_REPLY)
        m = re.search(rb"<stream:error><([a-z-]+) xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>", got)
        assert m is not None and m.group(1).decode() == condition, got
        assert got.endswith(b"</stream:error></stream:stream>")
        assert b"root:" not in got and b"lollol" not in got
        assert listener.metrics["stream_errors_sent"] == 1
        await assert_control_served(port)


@pytest.mark.parametrize(("data", "condition", "text"), [
    (b"<message to='bob@example.test'><body>hi</message>", "not-well-formed", None),
    (b"<message><body>&undefined;</body></message>", "not-well-formed", None),
    (b"<!-- hello -->", "restricted-xml", "comments are not allowed"),
    (b"<?php x?>", "restricted-xml", "processing instructions are not allowed"),
    (b"stray text", "not-well-formed", "text between stanzas"),
    (b"<message>" + b"<a>" * 40 + b"</a>" * 40 + b"</message>", "policy-violation", "nesting deeper than 32"),
    (b"<message id='" + b"x" * 10_000 + b"'/>", "policy-violation", "attribute over 8192 characters"),
    (b"<r xmlns='urn:xmpp:sm:3'/>", "unsupported-stanza-type", "{urn:xmpp:sm:3}r is not supported"),
])
async def test_bad_input_after_login(data: bytes, condition: str, text: str | None) -> None:
    async with running() as (listener, port):
        got = await error_for(port, data, login_first=True)
        if text is None:
            assert got.startswith(f"<stream:error><{condition} xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text".encode())
            assert got.endswith(b"</text></stream:error></stream:stream>")
        else:
            assert got == stream_error(condition, text)
        await wait_until(lambda: listener.session_count == 0, TIMEOUT_S)
        await assert_control_served(port)


async def test_stanza_before_auth_is_not_authorized() -> None:
    async with running() as (_l, port):
        got = await error_for(port, b"<message to='bob@example.test'><body>x</body></message>")
        assert got == stream_error("not-authorized", "{jabber:client}message before authentication and binding")
        await assert_control_served(port)


async def test_ten_megabyte_stanza_is_refused_early() -> None:
    async with running() as (listener, port):
        c = await RawXmppClient.open(port)
        await c.login("alice")
        before = listener.metrics["bytes_received"]
        await c.send(b"<message to='bob@example.test'><body>")
        reply = asyncio.ensure_future(c.read_to_close())
        chunk = b"A" * 65536
        for _ in range(160):  # 10 MiB
            if reply.done():
                break
            c.writer.write(chunk)
            await c.writer.drain()
        else:
            raise AssertionError("server read 10 MiB without closing")
        assert await reply == stream_error("policy-violation", "element over 65536 bytes")
        read = listener.metrics["bytes_received"] - before
        assert read < 1024 * 1024, read  # refused after ~64 KiB, never buffered 10 MB
        await assert_control_served(port)


async def test_truncated_stream_ends_the_session() -> None:
    async with running() as (listener, port):
        c = await RawXmppClient.open(port)
        await c.login("alice")
        assert listener.session_count == 1
        await c.send(b"<message to='bob@example.test'><body>half a mess")
        c.writer.write_eof()
        assert await c.read_to_close() == b""
        await wait_until(lambda: listener.session_count == 0 and listener.connection_count == 0, TIMEOUT_S)
        await assert_control_served(port)


async def test_feed_split_byte_by_byte_is_served() -> None:
    async with running() as (_l, port):
        c = await RawXmppClient.open(port)
        for b in header():
            c.writer.write(bytes([b]))
            await c.writer.drain()
        got = await c.read_until(rb"</stream:features>")
        assert f"from='{DOMAIN}'".encode() in got
        c.close()
