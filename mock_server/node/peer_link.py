"""The link between the two IM&P nodes of a Presence Redundancy Group.

Real IM&P nodes exchange SRM heartbeats and replicate the Login Datastore between them (TechNote
200958 "IM and Presence Server High Availability"). The mock does both over one loopback TCP link per
direction: each node listens on its peer port and dials the peer's. Frames are newline-delimited
JSON objects, each with a ``"t"`` kind:

``srm``          SRM peer message, heartbeats included: ``msg`` (dict the SRM machine defines)
``ds``           Login Datastore delta: ``delta`` (dict)
``stanza``       an XMPP stanza for a user the peer serves: ``to`` (JID), ``xml`` (str)
``presence``     a session's broadcast presence changed: ``jid`` (full), ``xml`` (str), ``available``
``presence-all`` every available session of the sender: ``items`` (full JID -> xml); sent each time
                 the link comes up or a partition heals, so the receiver's view is whole again

A partition (``set_partitioned(True)``) drops every frame both ways without closing sockets, so that
heartbeats and replication stop as they would on a cut network; a killed peer shows as a closed or
reset connection. The outbound side redials every ``redial_s`` seconds while the peer is away.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

__all__ = ["PeerLink", "MAX_FRAME_BYTES"]

logger = logging.getLogger(__name__)

MAX_FRAME_BYTES = 1 << 20
"""Largest frame accepted from the peer; a longer line closes the inbound connection."""

FrameHandler = Callable[[dict[str, Any]], None]


class PeerLink:
    """Both directions of the node-to-node link.

    Args:
        on_frame: called on the event loop for every frame received from the peer (not while
            partitioned).
        redial_s: seconds between attempts to reach the peer while it is away.
        max_queue: frames kept for the peer while it is away; older ones are dropped first
            (heartbeats carry no history, replication is best effort as in a real partition).
        on_up: called when frames can flow to the peer again: the outbound connection is up (after
            the frames kept while away), or a partition healed while it was up.
    """

    def __init__(self, on_frame: FrameHandler, *, redial_s: float = 0.2, max_queue: int = 100_000,
                 on_up: Callable[[], None] | None = None) -> None:
        self._on_frame = on_frame
        self._on_up = on_up
        self._redial_s = redial_s
        self._max_queue = max_queue
        self._server: asyncio.AbstractServer | None = None
        self._peer_addr: tuple[str, int] | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._dialer: asyncio.Task[None] | None = None
        self._inbound: set[asyncio.Task[None]] = set()
        self._inbound_writers: set[asyncio.StreamWriter] = set()
        self._pending: list[bytes] = []
        self._partitioned = False
        self._closed = False
        self.frames_sent = 0
        self.frames_received = 0
        self.frames_dropped = 0

    @property
    def connected(self) -> bool:
        """True when the outbound connection to the peer is up."""
        return self._writer is not None and not self._writer.is_closing()

    @property
    def partitioned(self) -> bool:
        return self._partitioned

    async def listen(self, host: str, port: int = 0) -> int:
        """Start accepting the peer's connection.

        Args:
            host: address to bind (loopback by default in the mock).
            port: TCP port; 0 picks a free one.

        Returns:
            The bound port.
        """
        self._server = await asyncio.start_server(self._serve_inbound, host, port, limit=MAX_FRAME_BYTES)
        sock = self._server.sockets[0]
        return int(sock.getsockname()[1])

    def connect_to(self, host: str, port: int) -> None:
        """Dial the peer at ``host:port`` and keep redialling while it is away."""
        self._peer_addr = (host, port)
        if self._dialer is None or self._dialer.done():
            self._dialer = asyncio.get_running_loop().create_task(self._dial_forever(), name="peer-dialer")

    def set_partitioned(self, partitioned: bool) -> None:
        """Drop (True) or pass again (False) every frame in both directions."""
        was = self._partitioned
        self._partitioned = partitioned
        if partitioned:
            self.frames_dropped += len(self._pending)
            self._pending.clear()
        elif was and self.connected:
            self._up()

    def send(self, frame: dict[str, Any], *, keep_while_away: bool = True) -> None:
        """Queue one frame for the peer; never blocks. Dropped while partitioned.

        Args:
            frame: the JSON object to send.
            keep_while_away: keep the frame for the peer while the link is down and send it when
                the link comes back (replication deltas, routed stanzas). False drops it instead:
                SRM heartbeats and protocol frames describe the sender's state *now*, and a stale
                one delivered to a restarted peer would make it decide on a state long gone.
        """
        if self._partitioned or self._closed:
            self.frames_dropped += 1
            return
        line = json.dumps(frame, separators=(",", ":")).encode() + b"\n"
        if self.connected:
            assert self._writer is not None
            self._writer.write(line)
            self.frames_sent += 1
        elif not keep_while_away:
            self.frames_dropped += 1
        else:
            self._pending.append(line)
            if len(self._pending) > self._max_queue:
                del self._pending[0]
                self.frames_dropped += 1

    def reset_connections(self) -> None:
        """Close both directions now (as when the peer process is killed); the dialer redials."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        for writer in list(self._inbound_writers):
            writer.close()

    async def close(self) -> None:
        """Stop listening and dialling, and close every connection."""
        self._closed = True
        if self._dialer is not None:
            self._dialer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dialer
        self.reset_connections()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
        for task in list(self._inbound):
            task.cancel()
        if self._inbound:
            await asyncio.gather(*self._inbound, return_exceptions=True)

    async def _dial_forever(self) -> None:
        while not self._closed:
            assert self._peer_addr is not None
            if not self.connected:
                try:
                    _, writer = await asyncio.open_connection(*self._peer_addr)
                except OSError:
                    await asyncio.sleep(self._redial_s)
                    continue
                self._writer = writer
                logger.debug("peer link up to %s:%s", *self._peer_addr)
                pending, self._pending = self._pending, []
                for line in pending:
                    writer.write(line)
                self.frames_sent += len(pending)
                self._up()
            await asyncio.sleep(self._redial_s)
            if self._writer is not None and self._writer.is_closing():
                self._writer = None

    def _up(self) -> None:
        if self._on_up is not None:
            try:
                self._on_up()
            except Exception:  # the link must keep going
                logger.exception("peer link on_up failed")

    async def _serve_inbound(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._inbound.add(task)
        self._inbound_writers.add(writer)
        try:
            while True:
                try:
                    line = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    logger.warning("peer sent a frame over %d bytes; closing", MAX_FRAME_BYTES)
                    break
                except (ConnectionError, OSError):
                    break
                if not line:
                    break
                if self._partitioned:
                    self.frames_dropped += 1
                    continue
                try:
                    frame = json.loads(line)
                except ValueError:
                    logger.warning("peer sent a frame that is not JSON; ignored")
                    continue
                if not isinstance(frame, dict):
                    continue
                self.frames_received += 1
                try:
                    self._on_frame(frame)
                except Exception:  # a bad frame must not kill the link
                    logger.exception("peer frame handler failed on kind %r", frame.get("t"))
        finally:
            self._inbound.discard(task)
            self._inbound_writers.discard(writer)
            writer.close()
