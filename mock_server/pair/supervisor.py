"""The supervisor: starts the two node processes, talks to them, keeps the event log.

Each IM&P node runs in its own OS process so that killing a node is a real failure: its sockets
vanish with it. The processes are forked by the zygote and watched through a pidfd
(``pair.processes``).

Each node dials the supervisor's control listener (loopback, port 0) and identifies itself with a
one-time token; requests, answers and events then flow on that connection (``pair.channel``). The
supervisor serves the admin API (see ``pair.admin_app``), forwards admin actions to the nodes, and
records every event the nodes push, stamped with Unix time in seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from mock_server.pair.channel import ControlError, ControlOp, NodeGoneError, decode, encode
from mock_server.pair.processes import NodeProcess, Zygote
from mock_server.pair_config import NodePorts, PairConfig

__all__ = ["GRACEFUL_STOP_S", "START_TIMEOUT_S", "NodeHandle", "Supervisor"]

logger = logging.getLogger(__name__)

START_TIMEOUT_S = 30.0
"""Seconds a node process may take to bind its listeners and report ready."""

GRACEFUL_STOP_S = 5.0
"""Seconds a node asked to shut down may take to exit before it is terminated."""

_CONTROL_HOST = "127.0.0.1"


@dataclass
class NodeHandle:
    """One node process as the supervisor sees it."""

    index: int
    name: str
    proc: NodeProcess | None = None
    ports: NodePorts = field(default_factory=NodePorts)
    ready: dict[str, Any] = field(default_factory=dict)
    pending: dict[int, asyncio.Future[Any]] = field(default_factory=dict)
    reader_task: asyncio.Task[None] | None = None
    writer: asyncio.StreamWriter | None = None
    killed: bool = False

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None


class Supervisor:
    """Start, control and stop the two node processes of one Presence Redundancy Group.

    Args:
        config: the pair's settings; ports 0 pick free ones at the first start and are then kept
            for restarts.
        events_out: path of a JSONL file that receives every event as it is recorded, or None.
    """

    def __init__(self, config: PairConfig, *, events_out: str | None = None) -> None:
        self.config = config
        self.nodes = [NodeHandle(index=i, name=n) for i, n in enumerate(config.node_names)]
        self.events: list[dict[str, Any]] = []
        self._events_file = open(events_out, "a", encoding="utf-8") if events_out else None  # noqa: SIM115
        self._next_id = 0
        self.started_ts = time.time()
        self._server: asyncio.AbstractServer | None = None
        self._control_port = 0
        self._hellos: dict[str, asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]]] = {}

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start both nodes and introduce them to each other.

        Raises:
            NodeGoneError: a node exited or did not report ready within ``START_TIMEOUT_S``.
        """
        self._server = await asyncio.start_server(self._accept, _CONTROL_HOST, 0, limit=1 << 22)
        self._control_port = int(self._server.sockets[0].getsockname()[1])
        await asyncio.gather(*(self._spawn(node) for node in self.nodes))
        await self._introduce()

    async def stop(self) -> None:
        """Ask each node to shut down, give it time to exit, then terminate what is left; no
        orphan processes. (A SIGTERM that reaches a node while its loop is already closing would
        hit a closed wake-up fd, so the graceful path waits first.)"""
        asked = [node for node in self.nodes if node.alive]
        for node in asked:
            with contextlib.suppress(ControlError, asyncio.TimeoutError, ConnectionError):
                await asyncio.wait_for(self.request(node.name, ControlOp.SHUTDOWN), 2.0)
        for node in asked:
            if node.proc is not None:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(node.proc.wait(), GRACEFUL_STOP_S)
        for node in self.nodes:
            await self._reap(node)
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._events_file is not None:
            self._events_file.close()
            self._events_file = None

    async def kill(self, name: str) -> None:
        """SIGKILL the node's process: its sockets vanish without a stream error."""
        node = self.node(name)
        if not node.alive:
            raise NodeGoneError(f"node {name} is not running")
        assert node.proc is not None
        node.killed = True
        node.proc.kill()
        await node.proc.wait()
        self.record({"node": name, "kind": "admin", "action": "kill"})

    async def restart(self, name: str) -> None:
        """Start a killed or stopped node again on the same ports; it comes up Initializing."""
        node = self.node(name)
        if node.alive:
            await self.kill(name)
        await self._reap(node)
        node.killed = False
        self.record({"node": name, "kind": "admin", "action": "restart"})
        await self._spawn(node)
        await self._introduce()

    # -- requests ----------------------------------------------------------------------------

    def node(self, name: str) -> NodeHandle:
        """The handle of node ``name``.

        Raises:
            KeyError: no node has that name.
        """
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    async def request(self, name: str, op: ControlOp, /, timeout_s: float = 10.0, **args: Any) -> Any:
        """Send one control operation to node ``name`` and wait for its answer.

        Raises:
            KeyError: unknown node.
            NodeGoneError: the node is not running.
            ControlError: the node refused the operation (message from the node).
            asyncio.TimeoutError: no answer within ``timeout_s`` seconds.
        """
        node = self.node(name)
        if not node.alive or node.writer is None or node.writer.is_closing():
            raise NodeGoneError(f"node {name} is not running")
        self._next_id += 1
        req_id = self._next_id
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        node.pending[req_id] = fut
        try:
            node.writer.write(encode({"id": req_id, "op": op.value, "args": args}))
            await node.writer.drain()
            return await asyncio.wait_for(fut, timeout_s)
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise NodeGoneError(f"node {name} is not running") from exc
        finally:
            node.pending.pop(req_id, None)

    def record(self, event: dict[str, Any]) -> dict[str, Any]:
        """Stamp ``event`` with ``ts`` (Unix seconds) unless it has one, keep it, and write it out."""
        event.setdefault("ts", time.time())
        self.events.append(event)
        if self._events_file is not None:
            self._events_file.write(json.dumps(event, default=str) + "\n")
            self._events_file.flush()
        return event

    def topology(self, admin_url: str) -> dict[str, Any]:
        """The topology document clients read (``--topology-out``)."""
        nodes = []
        for node in self.nodes:
            host = self.config.bind
            cpa_url = f"http://{host}:{node.ports.cpa}/EPASSoap/service/v80"
            nodes.append(
                {
                    "name": node.name,
                    "cpa_url": cpa_url,
                    "wsdl_url": cpa_url + "?wsdl",
                    "xmpp_host": host,
                    "xmpp_port": node.ports.xmpp,
                }
            )
        return {"presence_domain": self.config.domain, "admin_url": admin_url, "nodes": nodes}

    # -- internals ---------------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """A node dialled in: its first line must carry a token we handed out."""
        try:
            hello = decode(await asyncio.wait_for(reader.readline(), START_TIMEOUT_S))
        except (ControlError, asyncio.TimeoutError, ConnectionError, ValueError):
            writer.close()
            return
        fut = self._hellos.pop(str(hello.get("hello")), None)
        if fut is None or fut.done():
            logger.warning("control connection with an unknown token; closed")
            writer.close()
            return
        fut.set_result((reader, writer))

    async def _spawn(self, node: NodeHandle) -> None:
        config = self.config.with_ports(node.index, node.ports)
        if config.users_csv:  # the zygote's working directory may not be ours
            config = dataclasses.replace(config, users_csv=os.path.abspath(config.users_csv))
        token = secrets.token_hex(16)
        loop = asyncio.get_running_loop()
        hello: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = loop.create_future()
        self._hellos[token] = hello
        args = [node.index, json.dumps(config.to_dict()), _CONTROL_HOST, self._control_port, token]
        # the first fork starts the zygote (a second of imports): keep the loop free meanwhile
        node.proc = NodeProcess(await asyncio.to_thread(Zygote.fork, args))
        ready: asyncio.Future[dict[str, Any]] = loop.create_future()
        try:
            exited: asyncio.Future[Any] = asyncio.ensure_future(node.proc.wait())
            waiting: set[asyncio.Future[Any]] = {hello, exited}
            done, _ = await asyncio.wait(waiting, timeout=START_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
            exited.cancel()
            if hello not in done:
                raise NodeGoneError(f"node {node.name} did not call back (exit code {node.proc.returncode})")
            reader, node.writer = hello.result()
            node.reader_task = loop.create_task(self._read(node, reader, ready))
            node.ready = await asyncio.wait_for(ready, START_TIMEOUT_S)
        except (asyncio.TimeoutError, NodeGoneError) as exc:
            self._hellos.pop(token, None)
            await self._reap(node)
            raise NodeGoneError(f"node {node.name} did not start: {exc}") from exc
        node.ports = NodePorts(**node.ready["ports"])
        self.record({"node": node.name, "kind": "process", "action": "started", "pid": node.proc.pid})

    async def _introduce(self) -> None:
        for node in self.nodes:
            if not node.alive:
                continue
            peer = self.nodes[1 - node.index]
            await self.request(
                node.name,
                ControlOp.CONFIGURE_PEER,
                name=peer.name,
                host=self.config.bind,
                peer_port=peer.ports.peer,
                xmpp_port=peer.ports.xmpp,
                cpa_port=peer.ports.cpa,
            )

    async def _read(self, node: NodeHandle, reader: asyncio.StreamReader,
                    ready: asyncio.Future[dict[str, Any]]) -> None:
        while True:
            try:
                line = await reader.readline()
            except (ValueError, ConnectionError):
                break
            if not line:
                break
            try:
                frame = decode(line)
            except ControlError:
                logger.warning("node %s wrote a line that is not a control frame: %r", node.name, line[:120])
                continue
            if "ready" in frame and not ready.done():
                ready.set_result(frame["ready"])
            elif "event" in frame:
                event = dict(frame["event"])
                event.setdefault("node", node.name)
                self.record(event)
            elif "id" in frame:
                fut = node.pending.get(frame["id"])
                if fut is not None and not fut.done():
                    if frame.get("ok"):
                        fut.set_result(frame.get("result"))
                    else:
                        status = frame.get("status")
                        fut.set_exception(ControlError(str(frame.get("error", "refused")),
                                                       status if isinstance(status, int) else 409))
        if not ready.done():
            ready.set_exception(NodeGoneError(f"node {node.name} exited before it was ready"))
        for fut in node.pending.values():
            if not fut.done():
                fut.set_exception(NodeGoneError(f"node {node.name} is gone"))
        if node.proc is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(node.proc.wait(), GRACEFUL_STOP_S)
        if not node.killed:
            self.record({"node": node.name, "kind": "process", "action": "exited"})

    async def _reap(self, node: NodeHandle) -> None:
        proc = node.proc
        if proc is None:
            return
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 3.0)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()
        if node.writer is not None:
            node.writer.close()
            node.writer = None
        if node.reader_task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(node.reader_task, 2.0)
            node.reader_task = None
