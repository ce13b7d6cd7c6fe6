"""How the product path opens its XMPP connections: several local source addresses, the kernel's port
search kept cheap, and the socket class gevent did not patch.

One source address opens at most one connection per ephemeral port towards one node ``ip:port``
(``net.ipv4.ip_local_port_range``: ~28,000 on a stock Linux); a pool larger than that uses several
addresses (``--source-addresses``), each connection from the next one in turn. On loopback every
``127.x.y.z`` is local without configuration. Long before the range runs out, ``connect()`` slows
down: Linux (since 4.6) gives ``connect()`` the ports of one parity first and walks all of them before
trying the others, so past half the range (~14,100 connections from one address to one node port) each
``connect()`` scans ~14,000 used ports: measured here, 26 us of CPU per ``connect()`` up to 14,000
connections, 660-930 us past it (BENCHMARKS.md section 7). :func:`loopback_sources` spreads a large
pool over loopback addresses before it gets there (our choice: a target on loopback only, where any
``127.x.y.z`` works).

:class:`SourceAddressConnector` opens each connection itself: a socket of ``socket_class``, with
``IP_BIND_ADDRESS_NO_PORT`` before binding it to a source address (the port is then chosen by
``connect()`` for the whole 4-tuple, so ports are shared across nodes and addresses; a plain ``bind``
would hold a port for every destination), connected with ``loop.sock_connect`` and handed to
``loop.create_connection(sock=...)``. Under Locust the bridge's loop names the socket class gevent did not
patch (``BridgeLoop.socket_class``): asyncio would otherwise make gevent sockets in the bridge's loop thread (a gevent hub for that
thread, two watchers per socket and a Python wrapper around every ``send``/``recv``: ~45 us per
connection of six round trips, measured here). A :data:`~jabberemu.xmpp.client.Connector`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import math
import socket
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from jabberemu.errors import ConfigError

__all__ = ["CONNECT_SEARCH_SHARE", "SourceAddressConnector", "loopback_sources", "parse_source_addresses"]

IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
"""Linux's option (``<linux/in.h>``; Python names it from 3.12)."""
CONNECT_SEARCH_SHARE = 0.4
"""Connections from one source address to one node port kept below this share of the ephemeral range when
spreading over loopback addresses (the slow search starts at half of it; our margin)."""


def parse_source_addresses(text: str) -> tuple[str, ...]:
    """``127.0.0.1,127.0.0.2`` -> the addresses; ConfigError naming the first that is no IP address."""
    out = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            out.append(str(ipaddress.ip_address(item)))
        except ValueError:
            raise ConfigError(f"--source-addresses: {item!r} is not an IP address", field="source_addresses") from None
    if not out:
        raise ConfigError("--source-addresses: no address given", field="source_addresses")
    return tuple(out)


def loopback_sources(clients: int, hosts: Iterable[str], ephemeral_ports: int) -> tuple[str, ...]:
    """Source addresses that keep ``clients`` connections to one node port below :data:`CONNECT_SEARCH_SHARE`
    of the ephemeral range.

    Args:
        clients: clients of the whole run (after a failover they may all be on one node).
        hosts: the nodes' XMPP hosts.
        ephemeral_ports: ports in ``net.ipv4.ip_local_port_range``.

    Returns:
        ``127.0.0.1``, ``127.0.0.2``... when every node host is an IPv4 loopback address and one address
        would pass that share; () otherwise (one address, the kernel's choice).
    """
    per_address = max(1, int(ephemeral_ports * CONNECT_SEARCH_SHARE))
    if clients <= per_address:
        return ()
    for host in hosts:
        try:
            if not ipaddress.ip_address(host).is_loopback or ipaddress.ip_address(host).version != 4:
                return ()
        except ValueError:
            return ()
    return tuple(f"127.0.0.{i}" for i in range(1, min(254, math.ceil(clients / per_address)) + 1))


class SourceAddressConnector:
    """Opens each connection from the next of ``addresses`` (round robin; none: the kernel's choice), the port
    chosen by ``connect()`` (``IP_BIND_ADDRESS_NO_PORT``), on a socket of ``socket_class``.

    Args:
        addresses: local IP addresses of this host; () binds none.
        loop: the event loop (the running one when None).
        socket_class: the class of the sockets made; None: the loop's ``socket_class`` if it has one (the
            bridge's loop under Locust: gevent's original), else ``socket.socket``.
    """

    def __init__(self, addresses: Sequence[str] = (), loop: asyncio.AbstractEventLoop | None = None,
                 socket_class: type[socket.socket] | None = None) -> None:
        self.addresses = tuple(addresses)
        self._next = itertools.cycle(self.addresses) if self.addresses else None
        self._loop = loop
        self.socket_class = socket_class

    async def __call__(self, protocol_factory: Callable[[], asyncio.BaseProtocol], host: str, port: int,
                       **kw: Any) -> tuple[asyncio.BaseTransport, asyncio.BaseProtocol]:
        """What ``loop.create_connection(protocol_factory, host, port, **kw)`` does (``ssl``,
        ``server_hostname``, by default ``host`` with ``ssl``; TCP_NODELAY), from the next source address;
        a host name is resolved with ``loop.getaddrinfo`` and its addresses tried in turn.

        Raises:
            OSError: no address could be connected (the last error); ``socket.gaierror`` for a name that
                does not resolve.
        """
        loop = self._loop or asyncio.get_running_loop()
        source = next(self._next) if self._next is not None else None
        targets: list[tuple[int, Any]]
        try:
            targets = [(socket.AF_INET6 if ":" in host else socket.AF_INET, (host, port))]
            ipaddress.ip_address(host)
        except ValueError:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            targets = [(family, address) for family, _type, _proto, _name, address in infos]
        if source is not None:
            want = 6 if ":" in source else 4
            targets = [t for t in targets if (6 if t[0] == socket.AF_INET6 else 4) == want] or targets
        make_socket: type[socket.socket] = self.socket_class or getattr(loop, "socket_class", None) or socket.socket
        if kw.get("ssl") and kw.get("server_hostname") is None:
            kw["server_hostname"] = host  # what create_connection(host, port, ssl=...) checks the certificate for
        error: OSError | None = None
        try:
            for family, address in targets:
                # IPPROTO_TCP: asyncio sets TCP_NODELAY only on a socket that names its protocol
                sock = make_socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
                try:
                    sock.setblocking(False)
                    if source is not None:
                        with contextlib.suppress(OSError):  # ENOPROTOOPT on a kernel without it: a plain bind
                            sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                        sock.bind((source, 0))
                    await loop.sock_connect(sock, address)
                except OSError as exc:
                    sock.close()
                    error = exc
                    continue
                except BaseException:
                    sock.close()
                    raise
                try:
                    return await loop.create_connection(protocol_factory, sock=sock, **kw)
                except (ValueError, TypeError):
                    sock.close()  # refused before a transport owned the socket (once it does, it closes it)
                    raise
            raise error if error is not None else OSError(f"no address to connect to for {host}:{port}")
        finally:
            error = None  # as asyncio's create_connection: the error's traceback holds this frame
