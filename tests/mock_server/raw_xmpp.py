"""A byte-level XMPP c2s client for the mock's tests: send bytes, read until a pattern, log in, see how
the server ended the connection (stream error, clean close or TCP reset).

Shared by the listener tests (``xmpp/``) and the pair tests (``pair/``); this directory is on
``sys.path`` (``tests/mock_server/conftest.py``).
"""

from __future__ import annotations

import asyncio
import base64
import re
from dataclasses import dataclass

__all__ = ["DOMAIN", "TIMEOUT_S", "Closed", "RawXmppClient", "header"]

DOMAIN = "example.test"
TIMEOUT_S = 5.0


def header(to: str = DOMAIN, ns: str = "jabber:client", stream_ns: str = "http://etherx.jabber.org/streams") -> bytes:
    """A client stream header (RFC 6120 §4.7)."""
    return (f"<?xml version='1.0'?><stream:stream to='{to}' xmlns='{ns}' xmlns:stream='{stream_ns}'"
            " version='1.0' xml:lang='en'>").encode()


@dataclass(frozen=True)
class Closed:
    """How a connection ended for the client: the stream error condition it got (or None), whether
    the TCP connection was reset, and every byte received after the last read."""

    stream_error: str | None
    reset: bool
    data: bytes


class RawXmppClient:
    """One raw c2s connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.received = b""  # read but not yet returned by a read_until

    @classmethod
    async def open(cls, port: int) -> RawXmppClient:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), TIMEOUT_S)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read_until(self, pattern: bytes, timeout_s: float = TIMEOUT_S) -> bytes:
        """Read until the regex ``pattern`` matches what arrived since the last match; returns the
        bytes up to the match's end."""
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

    async def closed(self, timeout_s: float = TIMEOUT_S) -> Closed:
        """Read until the server ends the connection; what it sent and how it closed."""
        reset = False

        async def run() -> None:
            nonlocal reset
            while True:
                try:
                    chunk = await self.reader.read(65536)
                except (ConnectionResetError, BrokenPipeError):
                    reset = True
                    return
                if not chunk:
                    return
                self.received += chunk

        try:
            await asyncio.wait_for(run(), timeout_s)
        finally:
            self.writer.close()
        data, self.received = self.received, b""
        m = re.search(rb"<stream:error><([a-z-]+)", data)
        return Closed(stream_error=m.group(1).decode() if m else None, reset=reset, data=data)

    async def open_stream(self) -> bytes:
        """Send a stream header; returns the server's header and features."""
        await self.send(header())
        return await self.read_until(rb"</stream:features>")

    async def auth(self, user: str, *, password: str | None = None, otp: str | None = None) -> bytes:
        """Open the stream and authenticate (PLAIN with ``password``, default ``pass-<user>``, or
        CISCO-VTG-TOKEN with ``otp``); returns the server's SASL answer (or what closed it)."""
        await self.open_stream()
        if otp is not None:
            mech, raw = "CISCO-VTG-TOKEN", f"userid={user}@{DOMAIN}\0token={otp}".encode()
        else:
            mech, raw = "PLAIN", f"\0{user}\0{password or 'pass-' + user}".encode()
        await self.send(
            f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='{mech}'>".encode()
            + base64.b64encode(raw) + b"</auth>"
        )
        return await self.read_until(rb"<success[^>]*/>|<success[^>]*>.*?</success>|</failure>|</stream:stream>")

    async def login(self, user: str, password: str | None = None, *, otp: str | None = None,
                    resource: str | None = "raw", presence: bool = False) -> str:
        """Authenticate, bind ``resource`` (None: the server picks one), send initial presence if
        asked; returns the bound full JID.

        Raises:
            AssertionError: the server did not accept the login (its answer in the message).
        """
        got = await self.auth(user, password=password, otp=otp)
        assert b"<success" in got, f"{user} not accepted: {got!r}"
        await self.open_stream()
        res = f"<resource>{resource}</resource>" if resource else ""
        await self.send(f"<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>{res}</bind></iq>".encode())
        got = await self.read_until(rb"</iq>")
        m = re.search(rb"<jid>([^<]+)</jid>", got)
        assert m, got
        if presence:
            await self.send(b"<presence/>")
        return m.group(1).decode()

    async def ping(self, ident: str = "c1") -> bytes:
        """An XEP-0199 ping to the server; returns its result."""
        await self.send(f"<iq type='get' id='{ident}' to='{DOMAIN}'><ping xmlns='urn:xmpp:ping'/></iq>".encode())
        return await self.read_until(rf"<iq[^>]*id=['\"]{ident}['\"][^>]*/?>".encode())

    def close(self) -> None:
        self.writer.close()
