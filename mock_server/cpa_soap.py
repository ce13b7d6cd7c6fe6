"""Pure SOAP 1.2 codec of the mock's CPA ("EPAS SOAP") endpoint: request bytes in, response bytes out.

No I/O here: :func:`parse_request` turns a request body into a :class:`CpaRequest` or raises
:class:`SoapFault`; the ``build_*`` functions render success responses and faults. The wire contract
is docs/ARCHITECTURE.md, "CPA SOAP wire contract"; the golden files in ``tests/data/soap/`` pin it.

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
from collections.abc import Mapping
from dataclasses import dataclass, field

from lxml import etree

__all__ = [
    "EPAS_NS",
    "SOAP11_NS",
    "SOAP12_NS",
    "MAX_BODY_BYTES",
    "PROP_DOMAIN",
    "PROP_PRIMARY",
    "PROP_BACKUP",
    "DEFAULT_LOWER_LIMIT_PROPERTY",
    "DEFAULT_UPPER_LIMIT_PROPERTY",
    "Operation",
    "FaultCode",
    "FaultSide",
    "CpaSoapError",
    "RequestTooLargeError",
    "SoapFault",
    "CpaRequest",
    "ContentType",
    "NodeContact",
    "parse_content_type",
    "parse_request",
    "build_login_response",
    "build_get_all_config_response",
    "build_onetime_password_response",
    "build_logout_response",
    "build_fault",
    "system_config",
    "format_seconds",
]

SOAP12_NS = "http://www.w3.org/2003/05/soap-envelope"
SOAP11_NS = "http://schemas.xmlsoap.org/soap/envelope/"
EPAS_NS = "urn:cisco:epas:soap"
XML_NS = "http://www.w3.org/XML/1998/namespace"

#: Largest request body the endpoint parses (bytes). A login envelope is ~400 bytes.
MAX_BODY_BYTES = 1 << 20

PROP_DOMAIN = "Presence.Domain"
PROP_PRIMARY = "Presence.PrimaryServer"
PROP_BACKUP = "Presence.BackupServer"
#: Our choice (DOMAIN.md, "What a Jabber client does"): default property names of the re-login limits.
DEFAULT_LOWER_LIMIT_PROPERTY = "Presence.Relogin.LowerLimit"
DEFAULT_UPPER_LIMIT_PROPERTY = "Presence.Relogin.UpperLimit"

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


@dataclass(frozen=True, kw_only=True)
class NodeContact:
    """How a client reaches one node: the values of ``get-all-config``'s server properties."""

    name: str
    xmpp_host: str
    xmpp_port: int
    cpa_url: str

    def __post_init__(self) -> None:
        if not self.name or not self.xmpp_host or not self.cpa_url:
            raise ValueError("NodeContact needs name, xmpp_host and cpa_url")
        if not 0 < self.xmpp_port < 65536:
            raise ValueError(f"xmpp_port out of range: {self.xmpp_port}")


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


def _envelope() -> tuple[etree._Element, etree._Element]:
    root = etree.Element(f"{{{SOAP12_NS}}}Envelope", nsmap={"env": SOAP12_NS, "epas": EPAS_NS})
    body = etree.SubElement(root, f"{{{SOAP12_NS}}}Body")
    return root, body


def _serialise(root: etree._Element) -> bytes:
    return bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8"))


def _success(body: etree._Element, operation: Operation) -> etree._Element:
    resp = etree.SubElement(body, f"{{{EPAS_NS}}}{operation.value}-resp")
    return etree.SubElement(resp, f"{{{EPAS_NS}}}success")


def build_login_response(session_key: str) -> bytes:
    """Render ``login-resp/success/session-key``.

    Args:
        session_key: the key issued by the Login Datastore.

    Returns:
        The UTF-8 SOAP 1.2 envelope.
    """
    root, body = _envelope()
    etree.SubElement(_success(body, Operation.LOGIN), f"{{{EPAS_NS}}}session-key").text = session_key
    return _serialise(root)


def _properties(parent: etree._Element, tag: str, values: Mapping[str, str]) -> None:
    holder = etree.SubElement(parent, f"{{{EPAS_NS}}}{tag}")
    for name, value in values.items():
        prop = etree.SubElement(holder, f"{{{EPAS_NS}}}property", name=name)
        prop.text = value


def build_get_all_config_response(system: Mapping[str, str], user: Mapping[str, str]) -> bytes:
    """Render ``get-all-config-resp/success`` with ``system-config`` and ``user-config`` properties.

    Args:
        system: system properties in the order to send them (see :func:`system_config`).
        user: user properties.

    Returns:
        The UTF-8 SOAP 1.2 envelope.
    """
    root, body = _envelope()
    success = _success(body, Operation.GET_ALL_CONFIG)
    _properties(success, "system-config", system)
    _properties(success, "user-config", user)
    return _serialise(root)


def build_onetime_password_response(password: str) -> bytes:
    """Render ``get-onetime-password-resp/success/password``.

    Args:
        password: the OTP issued by the Login Datastore.

    Returns:
        The UTF-8 SOAP 1.2 envelope.
    """
    root, body = _envelope()
    etree.SubElement(_success(body, Operation.GET_ONETIME_PASSWORD), f"{{{EPAS_NS}}}password").text = password
    return _serialise(root)


def build_logout_response() -> bytes:
    """Render ``logout-resp/success`` (empty).

    Returns:
        The UTF-8 SOAP 1.2 envelope.
    """
    root, body = _envelope()
    _success(body, Operation.LOGOUT)
    return _serialise(root)


def build_fault(fault: SoapFault) -> bytes:
    """Render a SOAP 1.2 ``env:Fault`` (SOAP 1.2 Part 1 §5.4).

    ``env:Code/env:Value`` is ``env:<side>``, ``env:Reason/env:Text xml:lang="en"`` the reason, and
    ``env:Detail/epas:error code="..."`` the code. A VersionMismatch fault also carries the
    ``env:Upgrade`` header naming the SOAP 1.2 envelope (§5.4.7).

    Args:
        fault: what to report.

    Returns:
        The UTF-8 SOAP 1.2 envelope.
    """
    root = etree.Element(f"{{{SOAP12_NS}}}Envelope", nsmap={"env": SOAP12_NS, "epas": EPAS_NS})
    if fault.side is FaultSide.VERSION_MISMATCH:
        header = etree.SubElement(root, f"{{{SOAP12_NS}}}Header")
        upgrade = etree.SubElement(header, f"{{{SOAP12_NS}}}Upgrade")
        etree.SubElement(upgrade, f"{{{SOAP12_NS}}}SupportedEnvelope", qname="env:Envelope")
    body = etree.SubElement(root, f"{{{SOAP12_NS}}}Body")
    fault_el = etree.SubElement(body, f"{{{SOAP12_NS}}}Fault")
    code = etree.SubElement(fault_el, f"{{{SOAP12_NS}}}Code")
    etree.SubElement(code, f"{{{SOAP12_NS}}}Value").text = f"env:{fault.side.value}"
    reason = etree.SubElement(fault_el, f"{{{SOAP12_NS}}}Reason")
    text = etree.SubElement(reason, f"{{{SOAP12_NS}}}Text")
    text.set(f"{{{XML_NS}}}lang", "en")
    text.text = fault.reason
    detail = etree.SubElement(fault_el, f"{{{SOAP12_NS}}}Detail")
    error = etree.SubElement(detail, f"{{{EPAS_NS}}}error", code=fault.code.value)
    error.text = fault.reason
    return _serialise(root)


def format_seconds(value_s: float) -> str:
    """Format a duration in seconds as a plain decimal without exponent or trailing zeros.

    Args:
        value_s: seconds, >= 0.

    Returns:
        E.g. ``"120"``, ``"0.25"``.
    """
    text = f"{value_s:.6f}".rstrip("0").rstrip(".")
    return text or "0"


def system_config(
    *,
    domain: str,
    primary: NodeContact,
    backup: NodeContact | None,
    lower_limit_s: float,
    upper_limit_s: float,
    lower_limit_property: str = DEFAULT_LOWER_LIMIT_PROPERTY,
    upper_limit_property: str = DEFAULT_UPPER_LIMIT_PROPERTY,
) -> dict[str, str]:
    """Build the ``get-all-config`` system properties of the contract, in a stable order.

    The re-login limits travelling in ``get-all-config`` is our choice (DOMAIN.md: Cisco does not
    publish the field); the values are the SRM "Client Re-Login Lower/Upper Limit" in seconds.

    Args:
        domain: presence domain.
        primary: the user's home node.
        backup: its peer, or None in a single-node group (backup properties are then omitted).
        lower_limit_s, upper_limit_s: the re-login limits (seconds, 0 <= lower <= upper).
        lower_limit_property, upper_limit_property: property names for the two limits.

    Returns:
        Property name -> value.

    Raises:
        ValueError: limits out of order or negative.
    """
    if not 0 <= lower_limit_s <= upper_limit_s:
        raise ValueError(f"re-login limits must satisfy 0 <= lower <= upper: {lower_limit_s}, {upper_limit_s}")
    props = {PROP_DOMAIN: domain, PROP_PRIMARY: primary.name}
    if backup is not None:
        props[PROP_BACKUP] = backup.name
    for prefix, node in ((PROP_PRIMARY, primary), (PROP_BACKUP, backup)):
        if node is None:
            continue
        props[f"{prefix}.XmppHost"] = node.xmpp_host
        props[f"{prefix}.XmppPort"] = str(node.xmpp_port)
        props[f"{prefix}.CpaUrl"] = node.cpa_url
    props[lower_limit_property] = format_seconds(lower_limit_s)
    props[upper_limit_property] = format_seconds(upper_limit_s)
    return props
