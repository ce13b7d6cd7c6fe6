"""``python -m mock_server.node_main INDEX CONFIG_JSON``: one node process of the mock pair.

Started by the supervisor (``supervisor.Supervisor``). Speaks the control channel
(``mock_server.control``) on standard input and output; logs go to standard error. End of input
(the supervisor is gone) or SIGTERM stops the node; SIGKILL is how the admin API kills it.
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

from mock_server.control import ControlError, decode, encode
from mock_server.node import MockNode, NodeControlError
from mock_server.pair_config import PairConfig

__all__ = ["main"]

logger = logging.getLogger("mock_server.node_main")


def _write(obj: dict[str, Any]) -> None:
    sys.stdout.buffer.write(encode(obj))
    sys.stdout.buffer.flush()


def _emit(event: dict[str, Any]) -> None:
    event.setdefault("ts", time.time())
    _write({"event": event})


async def _run(index: int, config: PairConfig) -> int:
    loop = asyncio.get_running_loop()
    node = MockNode(config, index, emit=_emit)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    ports = await node.start()
    _write({"ready": {"name": node.name, "pid": os.getpid(), "ports": {"cpa": ports.cpa, "xmpp": ports.xmpp, "peer": ports.peer}}})
    reader = asyncio.StreamReader(limit=1 << 22)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def serve_control() -> None:
        while True:
            line = await reader.readline()
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
                    _write({"id": req_id, "ok": True, "result": None})
                    stop.set()
                    return
                result = node.control(op, frame.get("args") or {})
                _write({"id": req_id, "ok": True, "result": result})
            except NodeControlError as exc:
                _write({"id": req_id, "ok": False, "error": str(exc), "status": exc.status})
            except (ValueError, TypeError, KeyError) as exc:
                _write({"id": req_id, "ok": False, "error": str(exc), "status": 400})
            except Exception as exc:  # keep serving; the admin sees a message, not a traceback
                logger.exception("control %s failed", op)
                _write({"id": req_id, "ok": False, "error": f"internal error: {type(exc).__name__}"})

    control = loop.create_task(serve_control())
    await stop.wait()
    control.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await control
    await node.stop()
    for sig in (signal.SIGTERM, signal.SIGINT):  # before the loop closes its wake-up fd
        loop.remove_signal_handler(sig)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    index = int(argv[0])
    config = PairConfig.from_dict(json.loads(argv[1]))
    level = os.environ.get("MOCK_LOG_LEVEL", "WARNING")
    logging.basicConfig(level=level, stream=sys.stderr,
                        format=f"%(asctime)s %(levelname)s {config.node_names[index]} %(name)s: %(message)s")
    return asyncio.run(_run(index, config))


if __name__ == "__main__":
    sys.exit(main())
