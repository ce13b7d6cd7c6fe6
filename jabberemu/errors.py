"""Exceptions of the jabberemu package: one root, split by layer and by who is at fault.

::

    JabberEmuError                       root of everything jabberemu raises on purpose
    ├── ConfigError                      bad settings, topology or limits (before any I/O)
    ├── LoginError                       a sign-in step was refused by the server
    │   ├── SoapFault                    CPA SOAP 1.2 fault (node, code, reason, sender_fault)
    │   └── XmppAuthError                SASL <failure/> (node, condition), RFC 6120 §6.5
    ├── ProtocolError                    a protocol rule was broken
    │   ├── LocalProtocolError           by us (e.g. an event the client state table lacks)
    │   └── RemoteProtocolError          by the server (malformed answer, unexpected stanza)
    │       └── HttpStatusError          an HTTP error status whose body is no SOAP (node, status,
    │                                    content_type): a proxy's or a crashed CPA's HTML page
    ├── TransportError                   TCP/TLS/HTTP failed (node, cls, e.g. "connection-reset")
    ├── HaError                          high-availability handling failed
    │   └── NoNodeLeft                   every node of the pair was tried and failed
    └── BridgeError                      the Locust (gevent) <-> asyncio bridge was misused or broke

Library exceptions (zeep, slixmpp, aiohttp) are translated at the adapter edge and chained with
``raise ... from exc``. Every exception keeps its facts as attributes so reports need not parse text.
A failure of a server call also carries, in :attr:`JabberEmuError.event`, the client machine's event
for it (``jabberemu.core.events``), built by the same translation: the driver feeds that event as is.
"""

from __future__ import annotations

__all__ = [
    "BridgeError",
    "ConfigError",
    "HaError",
    "HttpStatusError",
    "JabberEmuError",
    "LocalProtocolError",
    "LoginError",
    "NoNodeLeft",
    "ProtocolError",
    "RemoteProtocolError",
    "SoapFault",
    "TransportError",
    "XmppAuthError",
]


class JabberEmuError(Exception):
    """Root of every exception jabberemu raises on purpose.

    Attributes:
        event: for a failed server call, the ``jabberemu.core.events`` event the client machine is fed
            (set by the adapter that translated the library's exception); None otherwise.
    """

    event: object | None = None


class ConfigError(JabberEmuError):
    """Settings, topology or re-login limits are invalid.

    Attributes:
        field: name of the offending setting, or None when the whole object is at fault.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class LoginError(JabberEmuError):
    """A sign-in step (CPA SOAP or XMPP SASL) was refused by a node.

    Attributes:
        node: name of the node that refused.
    """

    def __init__(self, message: str, *, node: str) -> None:
        super().__init__(message)
        self.node = node


class SoapFault(LoginError):
    """A SOAP 1.2 ``env:Fault`` from a node's Client Profile Agent (CPA).

    Attributes:
        node: node name.
        code: ``epas:error/@code`` (e.g. ``bad-credentials``, ``services-stopped``, ``server-busy``).
        reason: ``env:Reason/env:Text``.
        sender_fault: True when ``env:Code/env:Value`` is ``env:Sender`` (the client is at fault),
            False for ``env:Receiver`` (the server is).
    """

    def __init__(self, *, node: str, code: str, reason: str, sender_fault: bool) -> None:
        super().__init__(f"SOAP fault from {node}: {code} ({reason})", node=node)
        self.code = code
        self.reason = reason
        self.sender_fault = sender_fault


class XmppAuthError(LoginError):
    """A SASL ``<failure/>`` (RFC 6120 §6.5).

    Attributes:
        node: node name.
        condition: the defined condition, e.g. ``not-authorized``, ``temporary-auth-failure``.
    """

    def __init__(self, *, node: str, condition: str) -> None:
        super().__init__(f"SASL failure from {node}: {condition}", node=node)
        self.condition = condition


class ProtocolError(JabberEmuError):
    """A protocol rule was broken; the subclass says by whom."""


class LocalProtocolError(ProtocolError):
    """We broke a rule: an event the client state table lacks, a malformed event or command."""


class RemoteProtocolError(ProtocolError):
    """The server broke a rule: a malformed SOAP answer, an unexpected stanza.

    Attributes:
        node: node name, or None when unknown.
    """

    def __init__(self, message: str, *, node: str | None = None) -> None:
        super().__init__(message)
        self.node = node


class HttpStatusError(RemoteProtocolError):
    """The CPA answered an HTTP error status with something that is not SOAP (an HTML error page).

    Attributes:
        node: node name.
        status: the HTTP status code.
        content_type: the media type of the body ("" when the answer had none).
    """

    def __init__(self, *, node: str, status: int, content_type: str) -> None:
        super().__init__(f"{node} answered HTTP {status} ({content_type or 'no content type'}), not SOAP", node=node)
        self.status = status
        self.content_type = content_type


class TransportError(JabberEmuError):
    """TCP, TLS or HTTP failed below the protocol.

    Attributes:
        node: node name.
        cls: failure class as recorded for HA events, e.g. ``connection-reset``,
            ``connection-closed``, ``connection-refused``, ``dns-failure``, ``timeout``.
    """

    def __init__(self, message: str | None = None, *, node: str, cls: str) -> None:
        super().__init__(message if message is not None else f"{cls} talking to {node}")
        self.node = node
        self.cls = cls


class HaError(JabberEmuError):
    """High-availability handling failed."""


class NoNodeLeft(HaError):
    """Every node of the pair was tried and failed.

    Attributes:
        tried: node names in the order they were tried.
        last_cause: failure class of the last attempt (e.g. ``connection-refused``), or None.
    """

    def __init__(self, *, tried: tuple[str, ...], last_cause: str | None) -> None:
        super().__init__(f"no node left after trying {', '.join(tried) or 'nothing'}: {last_cause}")
        self.tried = tried
        self.last_cause = last_cause


class BridgeError(JabberEmuError):
    """The Locust (gevent) <-> asyncio bridge was misused (e.g. a nested loop) or broke."""
