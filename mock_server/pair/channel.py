"""The control channel between the supervisor and one node process.

Each node process dials the supervisor's control listener (loopback TCP, port 0) and sends a first
line ``{"hello": TOKEN, "index": I, "pid": P}`` with the one-time token the supervisor gave it
(``pair.supervisor.Supervisor``, ``pair.node_process.serve_forked``). Both directions then carry
newline-delimited JSON objects:

supervisor -> node  ``{"id": 7, "op": "failover", "args": {...}}``
node -> supervisor  ``{"id": 7, "ok": true, "result": ...}`` or
                    ``{"id": 7, "ok": false, "error": "...", "status": 409}``
node -> supervisor  ``{"event": {...}}`` pushed at any time (state transitions, service changes)
node -> supervisor  ``{"ready": {...}}`` once, when every listener is bound (ports)

End of the connection on the node's side means the supervisor is gone: the node shuts down, so a
killed supervisor leaves no orphan node behind. Logging goes to standard error, never here.
"""

from __future__ import annotations

import enum
import json
from typing import Any

__all__ = ["ControlError", "ControlOp", "NodeGoneError", "decode", "encode"]


class ControlOp(str, enum.Enum):
    """Operations the supervisor asks of a node."""

    STATUS = "status"
    CONFIGURE_PEER = "configure_peer"
    HA = "ha"
    FAILOVER = "failover"
    FALLBACK = "fallback"
    RECOVER = "recover"
    SERVICE = "service"
    PARTITION = "partition"
    PARAMS_GET = "params_get"
    PARAMS_PUT = "params_put"
    METRICS = "metrics"
    SHUTDOWN = "shutdown"


class ControlError(Exception):
    """A node refused or failed a control operation; ``str()`` is the node's message.

    Attributes:
        status: the HTTP status the admin API answers with: 409 (not allowed in this state, the
            SRM's reason in the message), 400 (bad arguments), 404 (no such service).
    """

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


class NodeGoneError(ControlError):
    """The node process is not running (killed, crashed or not started)."""


def encode(obj: dict[str, Any]) -> bytes:
    """One frame: compact JSON and a newline."""
    return json.dumps(obj, separators=(",", ":"), default=str).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    """Parse one frame.

    Raises:
        ControlError: the line is not a JSON object.
    """
    try:
        obj = json.loads(line)
    except ValueError as exc:
        raise ControlError(f"control frame is not JSON: {line[:80]!r}") from exc
    if not isinstance(obj, dict):
        raise ControlError("control frame is not a JSON object")
    return obj
