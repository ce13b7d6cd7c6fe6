"""Helpers for the XMPP listener tests: a started listener on a small user set, slixmpp clients.

Imported by ``test_xmpp_*.py`` (pytest puts this directory on ``sys.path``); the raw-socket client
they share with the pair tests is ``raw_xmpp`` one directory up.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from typing import Any

import slixmpp
from raw_xmpp import DOMAIN, TIMEOUT_S

from mock_server.node.tls import client_context_no_verify, server_context
from mock_server.xmpp.backend import LocalBackend
from mock_server.xmpp.listener import XmppListener
from mock_server.xmpp.settings import ListenerSettings

__all__ = ["DOMAIN", "NODE", "PEER", "TIMEOUT_S", "make_backend", "running", "server_ssl", "slix", "slix_session"]

NODE = "imp1.example.test"
PEER = "imp2.example.test"
USERS = ["alice", "bob", "carol", "dave", "erin"]
_CLIENT_SSL: ssl.SSLContext = client_context_no_verify()
_SERVER_SSL: ssl.SSLContext | None = None


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
