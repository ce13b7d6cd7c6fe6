"""Pre-built CPA requests and a strict reader of the CPA's success answers (the per-call hot path).

zeep builds and reads every message through its XSD object model: ~0.35 ms to serialise a request
and ~0.5-1 ms to read a ``get-all-config`` answer on this machine (../shared/ENGINEERING.md,
bench/profile_hotspots.py), several times the cost of the HTTP exchange itself. The CPA's
messages are tiny and fixed, so:

- :class:`RequestTemplate`: zeep builds each operation's request ONCE (``binding._create`` with
  marker values, serialised as the transport would), and each call substitutes the few per-call
  values (user name, password, session key), XML-escaped exactly as lxml escapes element text.
  A value lxml would write differently (control characters, ``\\r``, lone surrogates) returns
  None and the caller lets zeep build that request: the bytes on the wire are zeep's bytes in
  every case (tests/client/test_cpa_fastpath.py compares them, and the golden files of
  tests/data/soap/ define them).
- :func:`read_success`: reads a ``200`` answer of the exact shape the schema defines
  (``Envelope/Body/<op>-resp/success/...``, SOAP 1.2, no DTD, no header entries, no child
  elements where text is expected) with lxml directly. Anything else (a fault, an HTTP error, a
  malformed or unexpected answer) returns :data:`MISS` and the caller hands the answer to zeep,
  whose result or error then decides, as before.

Sources: IM and Presence Developer Cookbook 10.5, "EPAS SOAP"; SOAP 1.2 part 1 §5 (envelope).
"""

from __future__ import annotations

import enum
import re
from typing import Any

import lxml.etree
from zeep.wsdl.utils import etree_to_string

__all__ = ["MISS", "Miss", "RequestTemplate", "build_template", "read_success", "escape_text"]

EPAS_NS = "urn:cisco:epas:soap"
SOAP12_NS = "http://www.w3.org/2003/05/soap-envelope"
_ENVELOPE = f"{{{SOAP12_NS}}}Envelope"
_HEADER = f"{{{SOAP12_NS}}}Header"
_BODY = f"{{{SOAP12_NS}}}Body"
_SUCCESS = f"{{{EPAS_NS}}}success"
_PROPERTY = f"{{{EPAS_NS}}}property"
_SYSTEM = f"{{{EPAS_NS}}}system-config"
_USER = f"{{{EPAS_NS}}}user-config"

# Characters lxml writes verbatim in element text besides & < > (which escape_text handles):
# tab, newline and everything from U+0020 up except surrogates and U+FFFE/U+FFFF.
_VERBATIM = re.compile("[\t\n\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]*")

# Same safety settings as zeep's loader (zeep.loader.parse_xml): no entities, no network.
_PARSER = lxml.etree.XMLParser(remove_comments=True, resolve_entities=False, no_network=True, huge_tree=False)


class Miss(enum.Enum):
    """The fast path declines; zeep decides."""

    MISS = "miss"


MISS = Miss.MISS


def escape_text(value: str) -> bytes | None:
    """``value`` as lxml serialises element text in UTF-8, or None when lxml would write it otherwise.

    Args:
        value: the text (a user name, password or session key).

    Returns:
        The escaped UTF-8 bytes (``&`` ``<`` ``>`` as entity references), or None for text holding
        characters outside :data:`_VERBATIM` (zeep then builds the request, or refuses it).
    """
    if _VERBATIM.fullmatch(value) is None:
        return None
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").encode("utf-8")


class RequestTemplate:
    """One operation's request as zeep serialises it, split around its per-call values.

    Args:
        parts: the serialised envelope's bytes between the slots (one more than ``slots``).
        slots: names of the values, in order of appearance.
        headers: the HTTP headers zeep sends with it (``Content-Type`` with the SOAP action).
    """

    __slots__ = ("parts", "slots", "headers")

    def __init__(self, parts: tuple[bytes, ...], slots: tuple[str, ...], headers: dict[str, str]) -> None:
        if len(parts) != len(slots) + 1:
            raise ValueError("a template needs one part more than slots")
        self.parts = parts
        self.slots = slots
        self.headers = headers

    def render(self, values: dict[str, str]) -> bytes | None:
        """The request with ``values`` in place, or None when one cannot be placed verbatim.

        Raises:
            KeyError: a slot has no value.
        """
        out = [self.parts[0]]
        for name, part in zip(self.slots, self.parts[1:]):
            text = escape_text(values[name])
            if text is None:
                return None
            out.append(text)
            out.append(part)
        return b"".join(out)


def build_template(binding: Any, client: Any, operation: str, *, body_slots: dict[str, str] | None = None,
                   header_slots: dict[str, str] | None = None, fixed: dict[str, Any] | None = None) -> RequestTemplate:
    """Let zeep build ``operation`` once with a marker in each slot and split it there.

    Args:
        binding: the zeep SOAP binding.
        client: the zeep client (its settings and plugins apply as on a real call).
        operation: the operation name, e.g. ``login``.
        body_slots: operation argument -> slot name (e.g. ``{"username": "username"}``).
        header_slots: SOAP header element -> slot name (``{"session-key": "session_key"}``).
        fixed: arguments that never change (``client-type``, ``force``...).

    Raises:
        ValueError: a marker does not appear exactly once in zeep's serialisation.
    """
    body_slots, header_slots = body_slots or {}, header_slots or {}
    slots = [*body_slots.values(), *header_slots.values()]
    markers = {slot: f"JEMUSLOT{i}X" for i, slot in enumerate(slots)}
    kwargs: dict[str, Any] = dict(fixed or {})
    kwargs.update({arg: markers[slot] for arg, slot in body_slots.items()})
    if header_slots:
        kwargs["_soapheaders"] = {name: markers[slot] for name, slot in header_slots.items()}
    envelope, http_headers = binding._create(operation, (), kwargs, client=client,
                                             options={"address": "http://template.invalid/"})
    data: bytes = etree_to_string(envelope)  # type: ignore[no-untyped-call]
    order = sorted(slots, key=lambda slot: data.find(markers[slot].encode()))
    parts: list[bytes] = []
    rest = data
    for slot in order:
        pieces = rest.split(markers[slot].encode())
        if len(pieces) != 2:
            raise ValueError(f"{operation}: the marker of {slot!r} appears {len(pieces) - 1} times")
        parts.append(pieces[0])
        rest = pieces[1]
    parts.append(rest)
    return RequestTemplate(tuple(parts), tuple(order), dict(http_headers))


def _only_child(el: Any, tag: str) -> Any:
    """The single child element of ``el`` when it is ``tag``, else None."""
    if len(el) != 1:
        return None
    child = el[0]
    return child if child.tag == tag else None


def _leaf_text(el: Any) -> str | None:
    """Text of an element without children (None when it has any)."""
    if len(el):
        return None
    return el.text or ""


def _properties(plist: Any) -> dict[str, str] | None:
    out: dict[str, str] = {}
    for prop in plist:
        if prop.tag != _PROPERTY or len(prop):
            return None
        name = prop.get("name")
        if name:
            out[name] = prop.text or ""
    return out


def read_success(operation: str, status: int, content: bytes, content_type: str) -> Any:
    """Read a CPA success answer of the exact expected shape.

    Args:
        operation: ``login``, ``get-all-config``, ``get-onetime-password`` or ``logout``.
        status: HTTP status.
        content: HTTP body.
        content_type: the ``Content-Type`` header.

    Returns:
        ``login``: the session key; ``get-onetime-password``: the OTP; ``get-all-config``:
        ``(system, user)`` property dicts; ``logout``: None; :data:`MISS` for anything else.
    """
    if status != 200 or not content or content_type.lstrip().lower().startswith("multipart/"):
        return MISS
    try:
        root = lxml.etree.fromstring(content, _PARSER)
    except lxml.etree.XMLSyntaxError:
        return MISS
    if root.tag != _ENVELOPE or root.getroottree().docinfo.doctype:
        return MISS
    n = len(root)
    if n == 2 and root[0].tag == _HEADER and not len(root[0]):
        body = root[1]
    elif n == 1:
        body = root[0]
    else:
        return MISS
    if body.tag != _BODY:
        return MISS
    resp = _only_child(body, f"{{{EPAS_NS}}}{operation}-resp")
    success = _only_child(resp, _SUCCESS) if resp is not None else None
    if success is None:
        return MISS
    if operation == "logout":
        return None if not len(success) else MISS
    if operation == "get-all-config":
        if len(success) != 2 or success[0].tag != _SYSTEM or success[1].tag != _USER:
            return MISS
        system, user = _properties(success[0]), _properties(success[1])
        if system is None or user is None:
            return MISS
        return system, user
    leaf_tag = {"login": "session-key", "get-onetime-password": "password"}.get(operation)
    leaf = _only_child(success, f"{{{EPAS_NS}}}{leaf_tag}") if leaf_tag else None
    text = _leaf_text(leaf) if leaf is not None else None
    return text if text else MISS
