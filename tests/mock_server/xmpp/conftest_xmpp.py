"""Helpers for the XMPP listener tests: a started listener, a raw-socket client, slixmpp clients.

Imported by ``test_xmpp_*.py`` (pytest puts this directory on ``sys.path``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import ssl
from collections.abc import AsyncIterator
from typing import Any

import slixmpp

from mock_server.node.tls import client_context_no_verify, server_context
from mock_server.xmpp.backend import LocalBackend
from mock_server.xmpp.listener import XmppListener
from mock_server.xmpp.settings import ListenerSettings

__all__ = ["DOMAIN", "NODE", "RawClient", "header", "make_backend", "running", "slix", "slix_session"]

DOMAIN = "example.test"
NODE = "imp1.example.test"
PEER = "imp2.example.test"
USERS = ["alice", "bob", "carol", "dave", "erin"]
TIMEOUT_S = 5.0
_CLIENT_SSL: ssl.SSLContext = client_context_no_verify()
_SERVER_SSL: ssl.SSLContext | None = None


def header(to: str = DOMAIN, ns: str = "jabber:client", stream_ns: str = "http://etherx.jabber.org/streams") -> bytes:
    return (f"<?xml version='1.0'?><stream:stream to='{to}' xmlns='{ns}' xmlns:stream='{stream_ns}'"
            " version='1.0' xml:lang='en'>").encode()


def make_backend() -> LocalBackend:
    """alice..erin with passwords ``pass-<user>``; each has the next and previous user as contacts."""
    backend = LocalBackend.with_users(domain=DOMAIN, node_name=NODE, users=USERS, contacts_each=1)
    backend.peer_hostname = PEER
    return backend


def server_ssl() -> ssl.SSLContext:
    global _SERVER_SSL
    if _SERVER_SSL is None:
        _SERVER_SSL = server_context([DOMAIN, NODE, "127.0.0.1"])
    return _SERVER_SSL


@contextlib.asynccontextmanager
async def running(backend: LocalBackend | None = None, *, tls: bool = False,
                  **settings: Any) -> AsyncIterator[tuple[XmppListener, int]]:
    """A started listener on 127.0.0.1 port 0; stopped (bounded) on exit."""
    listener = XmppListener(backend or make_backend(), ListenerSettings(**settings),
                            ssl_context=server_ssl() if tls else None)
    port = await listener.start("127.0.0.1", 0)
    backend_obj = listener.backend
    if isinstance(backend_obj, LocalBackend):
        backend_obj.xmpp_port = port
    try:
        yield listener, port
    finally:
        await listener.stop(timeout_s=1.0)


class RawClient:
    """A byte-level client: send bytes, read until a pattern, see the server close."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.received = b""

    @classmethod
    async def open(cls, port: int) -> RawClient:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), TIMEOUT_S)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read_until(self, pattern: bytes, timeout_s: float = TIMEOUT_S) -> bytes:
        """Read until ``pattern`` (a regex) matches what arrived since the last match; return that."""
        rx = re.compile(pattern, re.S)

        async def loop() -> bytes:
            while True:
                m = rx.search(self.received)
                if m:
                    got, self.received = self.received[: m.end()], self.received[m.end():]
                    return got
                chunk = await self.reader.read(65536)
                if not chunk:
                    raise ConnectionError(f"closed before {pattern!r}; got {self.received!r}")
                self.received += chunk

        return await asyncio.wait_for(loop(), timeout_s)

    async def read_to_close(self, timeout_s: float = TIMEOUT_S) -> bytes:
        """Everything until the server closes (EOF); raises ConnectionResetError on a reset."""
        async def loop() -> bytes:
            while chunk := await self.reader.read(65536):
                self.received += chunk
            got, self.received = self.received, b""
            return got

        try:
            return await asyncio.wait_for(loop(), timeout_s)
        finally:
            self.close()

    async def login(self, user: str, password: str | None = None, resource: str | None = "raw") -> str:
        """PLAIN login, bind; returns the bound full JID."""
        await self.send(header())
        await self.read_until(rb"</stream:features>")
        payload = base64.b64encode(f"\0{user}\0{password or 'pass-' + user}".encode())
        await self.send(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + payload + b"</auth>")
        await self.read_until(rb"<success[^>]*/>")
        await self.send(header())
        await self.read_until(rb"</stream:features>")
        res = f"<resource>{resource}</resource>" if resource else ""
        await self.send(f"<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>{res}</bind></iq>".encode())
        got = await self.read_until(rb"</iq>")
        m = re.search(rb"<jid>([^<]+)</jid>", got)
        assert m, got
        return m.group(1).decode()

    def close(self) -> None:
        self.writer.close()


def slix(user: str, port: int, *, password: str | None = None, tls: bool = False,
         resource: str = "slix") -> slixmpp.ClientXMPP:
    """A slixmpp client configured per ENGINEERING.md: plain TCP + PLAIN, or STARTTLS without
    verification; shared SSL context; no direct TLS."""
    client = slixmpp.ClientXMPP(f"{user}@{DOMAIN}/{resource}", password or f"pass-{user}",
                                ssl_context=_CLIENT_SSL, loop=asyncio.get_running_loop())
    client.enable_starttls = tls
    client.enable_direct_tls = False
    client.enable_plaintext = True
    client.register_plugin("xep_0199")
    client.plugin["feature_mechanisms"].unencrypted_plain = True
    client.auto_reconnect = False
    client._test_port = port
    return client


@contextlib.asynccontextmanager
async def slix_session(client: slixmpp.ClientXMPP) -> AsyncIterator[slixmpp.ClientXMPP]:
    """Connect, wait for ``session_start`` (bounded), and disconnect on exit."""
    started = asyncio.Event()
    client.add_event_handler("session_start", lambda _e: started.set())
    client.connect("127.0.0.1", client._test_port)
    try:
        await asyncio.wait_for(started.wait(), TIMEOUT_S)
        yield client
    finally:
        await asyncio.wait_for(client.disconnect(wait=1.0), TIMEOUT_S)
