"""The request side of the mock's CPA ("EPAS SOAP") SOAP 1.2 codec, and the words both sides use.

Pure, no I/O: :func:`parse_content_type` reads the ``Content-Type`` header, :func:`parse_request`
turns a request body into a :class:`CpaRequest` or raises :class:`SoapFault`. The operations, fault
codes and errors defined here are what ``cpa.response`` renders. The wire contract is
docs/ARCHITECTURE.md, "CPA SOAP wire contract"; the golden files in ``tests/data/soap/`` pin it.

Sources: SOAP 1.2 Part 1 (W3C Recommendation, 2nd ed.) §5 (envelope, header, body; §5.4 Fault,
§5.4.6 fault codes, §5.4.7 Upgrade header on VersionMismatch); SOAP 1.2 Part 2 §7.5.2 (HTTP status
per fault code: Sender -> 400, others -> 500); Cisco IM and Presence Developer Cookbook 10.5 (the EPAS
operations, ``login-resp/success/session-key``, the ``session-key`` header).

Exception tree::

    CpaSoapError
    +-- RequestTooLargeError   body over the size cap (HTTP 413, no SOAP envelope)
    +-- SoapFault              anything answered with a SOAP 1.2 fault
"""

from __future__ import annotations

import email.message
import enum
from dataclasses import dataclass, field

from lxml import etree

__all__ = [
    "EPAS_NS",
    "MAX_BODY_BYTES",
    "SOAP11_NS",
    "SOAP12_NS",
    "XML_NS",
    "ContentType",
    "CpaRequest",
    "CpaSoapError",
    "FaultCode",
    "FaultSide",
    "Operation",
    "RequestTooLargeError",
    "SoapFault",
    "parse_content_type",
    "parse_request",
]

SOAP12_NS = "http://www.w3.org/2003/05/soap-envelope"
SOAP11_NS = "http://schemas.xmlsoap.org/soap/envelope/"
EPAS_NS = "urn:cisco:epas:soap"
XML_NS = "http://www.w3.org/XML/1998/namespace"

#: Largest request body the endpoint parses (bytes). A login envelope is ~400 bytes.
MAX_BODY_BYTES = 1 << 20

_MEDIA_TYPES = frozenset({"application/soap+xml", "text/xml"})


class Operation(enum.Enum):
    """The CPA operations we serve (Developer Cookbook, "EPAS SOAP")."""

    LOGIN = "login"
    GET_ALL_CONFIG = "get-all-config"
    GET_ONETIME_PASSWORD = "get-onetime-password"
    LOGOUT = "logout"

    @property
    def action(self) -> str:
        """The SOAP action URI, ``urn:cisco:epas:soap/<operation>``."""
        return f"{EPAS_NS}/{self.value}"

    @property
    def needs_session(self) -> bool:
        """Whether the call must carry a ``session-key`` header."""
        return self is not Operation.LOGIN


class FaultSide(enum.Enum):
    """SOAP 1.2 fault code values we use (SOAP 1.2 Part 1 §5.4.6)."""

    SENDER = "Sender"
    RECEIVER = "Receiver"
    VERSION_MISMATCH = "VersionMismatch"

    @property
    def http_status(self) -> int:
        """HTTP status for a fault with this code (SOAP 1.2 Part 2 §7.5.2.2)."""
        return 400 if self is FaultSide.SENDER else 500


class FaultCode(enum.Enum):
    """``code`` attribute of ``env:Detail/epas:error``: what the client classifies by."""

    BAD_CREDENTIALS = "bad-credentials"
    BAD_ONETIME_PASSWORD = "bad-onetime-password"
    UNKNOWN_SESSION = "unknown-session"
    NOT_SERVED_HERE = "not-served-here"
    SERVICES_STOPPED = "services-stopped"
    SERVER_BUSY = "server-busy"
    MALFORMED_REQUEST = "malformed-request"
    UNKNOWN_OPERATION = "unknown-operation"

    @property
    def side(self) -> FaultSide:
        """Who is at fault: the client (Sender) or the server (Receiver)."""
        if self in (FaultCode.SERVICES_STOPPED, FaultCode.SERVER_BUSY):
            return FaultSide.RECEIVER
        return FaultSide.SENDER


class CpaSoapError(Exception):
    """Root of the CPA codec's exceptions."""


class RequestTooLargeError(CpaSoapError):
    """The request body exceeds the size cap.

    Attributes:
        size_bytes: bytes received (at least ``limit_bytes + 1``).
        limit_bytes: the cap.
    """

    def __init__(self, size_bytes: int, limit_bytes: int) -> None:
        super().__init__(f"request body of {size_bytes} bytes exceeds the {limit_bytes}-byte limit")
        self.size_bytes = size_bytes
        self.limit_bytes = limit_bytes


class SoapFault(CpaSoapError):
    """A condition answered with a SOAP 1.2 ``env:Fault``.

    Attributes:
        code: the ``epas:error`` code.
        reason: human-readable ``env:Reason/env:Text`` (never holds a password).
        side: the ``env:Code/env:Value``; defaults to ``code.side``.
    """

    def __init__(self, code: FaultCode, reason: str, *, side: FaultSide | None = None) -> None:
        super().__init__(f"{code.value}: {reason}")
        self.code = code
        self.reason = reason
        self.side = side if side is not None else code.side

    @property
    def http_status(self) -> int:
        """HTTP status to send with this fault (400 Sender, 500 otherwise)."""
        return self.side.http_status


@dataclass(frozen=True, kw_only=True)
class CpaRequest:
    """One parsed CPA call.

    Attributes:
        operation: which operation the body element names.
        session_key: text of the ``epas:session-key`` header, or None when absent.
        username: ``login`` only.
        password, onetime_password: ``login`` only, exactly one of the two (a sign-in with the
            password, or the session login with the one-time password); both hidden from repr.
        client_type, client_version, force: ``login`` attributes, None when absent.
    """

    operation: Operation
    session_key: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    onetime_password: str | None = field(default=None, repr=False)
    client_type: str | None = None
    client_version: str | None = None
    force: bool | None = None

    def __post_init__(self) -> None:
        if self.operation is Operation.LOGIN and (
            self.username is None or (self.password is None) == (self.onetime_password is None)
        ):
            raise ValueError("a login request needs a username and exactly one of password, onetime_password")

    @property
    def session_login(self) -> bool:
        """Whether this is a ``login`` with the one-time password (the session re-login)."""
        return self.operation is Operation.LOGIN and self.onetime_password is not None


@dataclass(frozen=True, kw_only=True)
class ContentType:
    """A parsed ``Content-Type`` header: media type (lower case) and the SOAP 1.2 ``action``."""

    media_type: str
    action: str | None = None

    @property
    def acceptable(self) -> bool:
        """Whether the endpoint accepts this media type (SOAP 1.2 or, to answer VersionMismatch, 1.1)."""
        return self.media_type in _MEDIA_TYPES


def parse_content_type(value: str | None) -> ContentType:
    """Parse a ``Content-Type`` header value (RFC 3902 ``application/soap+xml`` with ``action``).

    Args:
        value: the header value, or None when the request has none.

    Returns:
        The media type in lower case ("" when missing) and the ``action`` parameter if present.
    """
    if not value:
        return ContentType(media_type="")
    msg = email.message.Message()
    msg["content-type"] = value
    action = msg.get_param("action")
    return ContentType(
        media_type=msg.get_content_type(),
        action=action if isinstance(action, str) else None,
    )


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False, remove_comments=True
    )


_PARSER = _parser()
_OPERATIONS = {f"{{{EPAS_NS}}}{op.value}": op for op in Operation}


def _child_elements(element: etree._Element) -> list[etree._Element]:
    return [child for child in element if isinstance(child.tag, str)]


def _malformed(reason: str) -> SoapFault:
    return SoapFault(FaultCode.MALFORMED_REQUEST, reason)


def parse_request(
    body: bytes, *, action: str | None = None, max_body_bytes: int = MAX_BODY_BYTES
) -> CpaRequest:
    """Parse one CPA request envelope.

    Args:
        body: the raw HTTP request body.
        action: the ``action`` parameter of the Content-Type, if any; must then name the body's
            operation (SOAP 1.2 Part 2 §7.1.4 / RFC 3902).
        max_body_bytes: size cap.

    Returns:
        The parsed request. The session header is returned as found; whether the operation needs
        one is the caller's decision (missing -> ``unknown-session``).

    Raises:
        RequestTooLargeError: body over ``max_body_bytes``.
        SoapFault: ``malformed-request`` for non-XML, a DTD, a non-SOAP root, a SOAP 1.1 envelope
            (with side VersionMismatch, SOAP 1.2 Part 1 §5.4.7), a missing or empty Body, a login
            without a username or without exactly one of password / onetime-password, or an action
            mismatch; ``unknown-operation`` for a body
            element that is not one of our operations.
    """
    if len(body) > max_body_bytes:
        raise RequestTooLargeError(len(body), max_body_bytes)
    if not body.strip():
        raise _malformed("empty request body")
    try:
        root = etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise _malformed(f"request is not well-formed XML: {exc.msg}") from exc
    tree = root.getroottree()
    if tree.docinfo.doctype:
        raise _malformed("a SOAP message must not contain a document type declaration")
    if root.tag == f"{{{SOAP11_NS}}}Envelope":
        raise SoapFault(
            FaultCode.MALFORMED_REQUEST,
            "SOAP 1.1 envelope received; this endpoint speaks SOAP 1.2 only",
            side=FaultSide.VERSION_MISMATCH,
        )
    if root.tag != f"{{{SOAP12_NS}}}Envelope":
        raise _malformed(f"root element {root.tag!s} is not a SOAP 1.2 Envelope")

    children = _child_elements(root)
    header: etree._Element | None = None
    if children and children[0].tag == f"{{{SOAP12_NS}}}Header":
        header = children.pop(0)
    if len(children) != 1 or children[0].tag != f"{{{SOAP12_NS}}}Body":
        raise _malformed("the Envelope must hold an optional Header and then exactly one Body")
    payload = _child_elements(children[0])
    if len(payload) != 1:
        raise _malformed(f"the Body must hold exactly one element, found {len(payload)}")
    element = payload[0]
    operation = _OPERATIONS.get(element.tag)
    if operation is None:
        raise SoapFault(FaultCode.UNKNOWN_OPERATION, f"unknown operation {element.tag!s}")
    if action and action != operation.action:
        raise _malformed(f"action {action!r} does not match the body element {operation.value!r}")

    session_key: str | None = None
    if header is not None:
        found = header.find(f"{{{EPAS_NS}}}session-key")
        if found is not None:
            session_key = (found.text or "").strip() or None

    if operation is not Operation.LOGIN:
        return CpaRequest(operation=operation, session_key=session_key)
    return _parse_login(element, session_key)


def _parse_login(element: etree._Element, session_key: str | None) -> CpaRequest:
    username = element.findtext(f"{{{EPAS_NS}}}username")
    password = element.findtext(f"{{{EPAS_NS}}}password")
    onetime_password = element.findtext(f"{{{EPAS_NS}}}onetime-password")
    if username is None or (password is None) == (onetime_password is None):
        raise _malformed("login needs epas:username and exactly one of epas:password, epas:onetime-password")
    force_text = element.get("force")
    force: bool | None
    if force_text is None:
        force = None
    elif force_text.strip() in ("true", "1"):
        force = True
    elif force_text.strip() in ("false", "0"):
        force = False
    else:
        raise _malformed(f"login attribute force={force_text!r} is not an xs:boolean")
    return CpaRequest(
        operation=Operation.LOGIN,
        session_key=session_key,
        username=username.strip(),
        password=password,
        onetime_password=onetime_password,
        client_type=element.get("client-type"),
        client_version=element.get("client-version"),
        force=force,
    )
