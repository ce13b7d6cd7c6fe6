"""One node process of the mock pair: runs a :class:`~mock_server.node.node.MockNode` and serves the
supervisor's control channel; and the *zygote* that forks node processes.

The zygote (``python -m mock_server.node_main --zygote``, whose entry module imports this one)
imports this module once (aiohttp, lxml, the node's code, Faker's data) and then forks one child
per request it reads on standard input, so a node starts in tens of milliseconds instead of a
second of imports per process (``pair.processes.Zygote``). It is single-threaded and runs no event loop, so forking is safe.
Requests and answers are JSON lines: ``{"args": [index, config_json, host, port, token]}`` ->
``{"pid": N}``. End of its input ends the zygote; its children are reaped by the kernel
(SIGCHLD ignored) and watched by the supervisor through a pidfd.

A node child runs :func:`serve_forked`: it dials the supervisor's control listener on loopback,
says hello with its one-time token, and then speaks the control protocol (``mock_server.pair.channel``)
on that connection. End of that connection (the supervisor is gone) or SIGTERM/SIGINT stops the
node; SIGKILL is how the admin API kills it. Logs go to standard error, never to a control channel.

By hand: ``python -m mock_server.node_main INDEX CONFIG_JSON CONTROL_HOST CONTROL_PORT TOKEN``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from typing import Any

from mock_server.node.control import NodeControlError
from mock_server.node.node import MockNode
from mock_server.pair.channel import ControlError, decode, encode
from mock_server.pair_config import PairConfig

__all__ = ["main", "serve_forked", "zygote_main"]

logger = logging.getLogger(__name__)


class _Channel:
    """The control connection: frames out (answers, events, ready), frames in (requests)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    def write(self, obj: dict[str, Any]) -> None:
        if not self.writer.is_closing():
            self.writer.write(encode(obj))

    def emit(self, event: dict[str, Any]) -> None:
        event.setdefault("ts", time.time())
        self.write({"event": event})


async def _serve_control(node: MockNode, channel: _Channel, stop: asyncio.Event) -> None:
    while True:
        try:
            line = await channel.reader.readline()
        except (ConnectionError, ValueError):
            line = b""
        if not line:
            stop.set()  # the supervisor is gone: no orphan node
            return
        try:
            frame = decode(line)
        except ControlError as exc:
            logger.warning("%s", exc)
            continue
        req_id, op = frame.get("id"), str(frame.get("op"))
        try:
            if op == "shutdown":
                channel.write({"id": req_id, "ok": True, "result": None})
                stop.set()
                return
            result = node.control.run(op, frame.get("args") or {})
            channel.write({"id": req_id, "ok": True, "result": result})
        except NodeControlError as exc:
            channel.write({"id": req_id, "ok": False, "error": str(exc), "status": exc.status})
        except (ValueError, TypeError, KeyError) as exc:
            channel.write({"id": req_id, "ok": False, "error": str(exc), "status": 400})
        except Exception as exc:  # keep serving; the admin sees a message, not a traceback
            logger.exception("control %s failed", op)
            channel.write({"id": req_id, "ok": False, "error": f"internal error: {type(exc).__name__}", "status": 500})


async def _run(index: int, config: PairConfig, host: str, port: int, token: str) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    # A node forked by the zygote ignores SIGINT: a Ctrl-C in the terminal reaches the whole
    # process group, and the supervisor must stop the nodes itself, after the clients (else the
    # nodes would drop every client first and a partial report would show a fake failover wave).
    sigs = [signal.SIGTERM]
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        sigs.append(signal.SIGINT)
    for sig in sigs:
        loop.add_signal_handler(sig, stop.set)
    reader, writer = await asyncio.open_connection(host, port, limit=1 << 22)
    channel = _Channel(reader, writer)
    channel.write({"hello": token, "index": index, "pid": os.getpid()})
    node = MockNode(config, index, emit=channel.emit)
    try:
        ports = await node.start()
        channel.write({"ready": {"name": node.name, "pid": os.getpid(),
                                 "ports": {"cpa": ports.cpa, "xmpp": ports.xmpp, "peer": ports.peer}}})
        control = loop.create_task(_serve_control(node, channel, stop))
        await stop.wait()
        control.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await control
    finally:
        await node.stop()
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()
        for sig in sigs:  # before the loop closes its wake-up fd
            loop.remove_signal_handler(sig)
    return 0


def _configure_logging(config: PairConfig, index: int) -> None:
    level = os.environ.get("MOCK_LOG_LEVEL", "WARNING")
    logging.basicConfig(level=level, stream=sys.stderr, force=True,
                        format=f"%(asctime)s %(levelname)s {config.node_names[index]} %(name)s: %(message)s")


def serve_forked(index: int, config_json: str, host: str, port: int, token: str) -> None:
    """Entry point of a node process started from the supervisor's fork server.

    Args:
        index: 0 or 1, the node's position in ``config.node_names``.
        config_json: the pair's :class:`PairConfig` as JSON (``to_dict``).
        host, port: the supervisor's control listener (loopback).
        token: one-time token that identifies this node to the supervisor.
    """
    config = PairConfig.from_dict(json.loads(config_json))
    _configure_logging(config, index)
    asyncio.run(_run(index, config, host, port, token))


def zygote_main() -> int:
    """Fork a node process for every request line on standard input (module docstring)."""
    from mock_server.users import provision

    provision(2, ("a.example.test", "b.example.test"), seed=1)  # warm Faker's data before forking
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the children
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the supervisor and the nodes
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    for line in stdin:
        try:
            index, config_json, host, port, token = json.loads(line)["args"]
        except (ValueError, KeyError, TypeError) as exc:
            stdout.write(encode({"error": f"bad zygote request: {exc}"}))
            stdout.flush()
            continue
        pid = os.fork()
        if pid == 0:  # the node
            code = 1
            try:
                devnull = os.open(os.devnull, os.O_RDWR)
                os.dup2(devnull, 0)
                os.dup2(devnull, 1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # SIGINT stays ignored (see _run)
                serve_forked(int(index), str(config_json), str(host), int(port), str(token))
                code = 0
            except BaseException:
                import traceback

                traceback.print_exc()
            finally:
                sys.stderr.flush()
                os._exit(code)
        stdout.write(encode({"pid": pid}))
        stdout.flush()
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m mock_server.node_main INDEX CONFIG_JSON HOST PORT TOKEN`` (by hand), or
    ``--zygote``."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--zygote"]:
        return zygote_main()
    index, config = int(argv[0]), PairConfig.from_dict(json.loads(argv[1]))
    _configure_logging(config, index)
    return asyncio.run(_run(index, config, argv[2], int(argv[3]), argv[4]))
