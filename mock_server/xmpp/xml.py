"""Incremental, hardened XML reader and writer for one XMPP stream (RFC 6120 §4, §11).

``StreamParser`` turns bytes into stream-level items: the stream header, each complete top-level
element (a stanza or a nonza such as ``<auth/>``) with its **raw bytes**, and the stream end. Only
the element being read is held in memory; the bytes of a stanza are kept from its first byte to its
last and dropped as soon as it is complete, so memory stays flat whatever the stream length.

Hardening (RFC 6120 §11.1 "Restricted XML"), done here and not left to parser defaults:

- **No DTDs, so no entity expansion and no external entities**: the expat ``StartDoctypeDeclHandler``
  and ``EntityDeclHandler`` raise, which stops the parse before any entity is declared (billion
  laughs, XXE). Parameter entities are never parsed (``XML_PARAM_ENTITY_PARSING_NEVER``) and no
  ``ExternalEntityRefHandler`` is installed, so expat opens nothing. An undeclared ``&name;`` is an
  expat error (``not-well-formed``). Comments and processing instructions are refused too.
- **Input forced to UTF-8** (``ParserCreate(encoding="utf-8")``) whatever the XML declaration says.
- **Bounded**: a top-level element may not exceed ``max_stanza_bytes`` (checked every 16 KiB slice
  of input, so a 10 MB stanza is refused after ~64 KiB, never buffered), nesting ``max_depth``,
  ``max_attrs`` attributes of at most ``max_attr_bytes`` each.

Violations raise ``XmlViolation`` carrying the RFC 6120 §4.9.3 stream error condition to send.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pyexpat import ExpatError, ParserCreate, XML_PARAM_ENTITY_PARSING_NEVER
from typing import Any
from xml.sax.saxutils import escape

__all__ = [
    "NS_STREAM",
    "NS_XML",
    "ParseLimits",
    "StanzaItem",
    "StreamEndItem",
    "StreamHeaderItem",
    "StreamParser",
    "XmlViolation",
    "attr_escape",
    "restamp",
    "serialize",
    "text_escape",
]

NS_STREAM = "http://etherx.jabber.org/streams"
NS_XML = "http://www.w3.org/XML/1998/namespace"
_SEP = " "
_SLICE_BYTES = 16 * 1024
_XML_SPACE = " \t\r\n"


class XmlViolation(Exception):
    """The peer broke XML or our limits; close the stream with ``condition``.

    Attributes:
        condition: RFC 6120 §4.9.3 defined condition word, e.g. ``not-well-formed``.
        detail: what was wrong, for logs and the error's ``<text/>``.
        items_before: items completed by the same ``feed`` call before the violation; the
            caller handles them first, so the outcome does not depend on how TCP split the bytes.
    """

    def __init__(self, condition: str, detail: str) -> None:
        super().__init__(f"{condition}: {detail}")
        self.condition = condition
        self.detail = detail
        self.items_before: list[ParseItem] = []


@dataclass(frozen=True, kw_only=True)
class ParseLimits:
    """Limits on what one stream may send (our choice; RFC 6120 §13.12 asks for limits).

    Args:
        max_stanza_bytes: size of one top-level element, default 64 KiB.
        max_depth: element nesting inside a stanza (the stanza itself is depth 1).
        max_attrs: attributes per element.
        max_attr_bytes: characters in one attribute value.

    Raises:
        ValueError: a limit below its minimum.
    """

    max_stanza_bytes: int = 64 * 1024
    max_depth: int = 32
    max_attrs: int = 64
    max_attr_bytes: int = 8 * 1024

    def __post_init__(self) -> None:
        if self.max_stanza_bytes < 1024 or self.max_depth < 4 or self.max_attrs < 8 or self.max_attr_bytes < 256:
            raise ValueError(f"limits too small: {self}")


@dataclass(frozen=True, kw_only=True)
class StreamHeaderItem:
    """The opening ``<stream:stream>`` tag.

    Attributes:
        tag: Clark name of the root element.
        attrs: attributes by Clark name (``{http://www.w3.org/XML/1998/namespace}lang``).
        namespaces: prefix (``""`` for the default) -> namespace declared on the root.
    """

    tag: str
    attrs: dict[str, str]
    namespaces: dict[str, str]


@dataclass(frozen=True, kw_only=True)
class StanzaItem:
    """A complete top-level element and the exact bytes it arrived as."""

    element: ET.Element
    raw: bytes = field(repr=False)


@dataclass(frozen=True, kw_only=True)
class StreamEndItem:
    """The closing ``</stream:stream>`` tag."""


ParseItem = StreamHeaderItem | StanzaItem | StreamEndItem


def _clark(name: str) -> str:
    ns, sep, local = name.partition(_SEP)
    return f"{{{ns}}}{local}" if sep else name


_TAG_END_RE = re.compile(rb"""(?:[^>"']++|"[^"]*+"|'[^']*+')*+>""")  # possessive: no backtracking


def _tag_end(buf: bytearray | bytes, start: int) -> int:
    """Index of the ``>`` closing the tag that starts at ``start`` (skips quoted values)."""
    m = _TAG_END_RE.match(buf, start)
    if m is None:
        raise XmlViolation("not-well-formed", "tag end not found")
    return m.end() - 1


_HANDLERS = {
    "StartDoctypeDeclHandler": "_refuse_dtd", "EntityDeclHandler": "_refuse_dtd", "CommentHandler": "_refuse_comment",
    "ProcessingInstructionHandler": "_refuse_pi", "StartNamespaceDeclHandler": "_ns_decl",
    "StartElementHandler": "_start", "EndElementHandler": "_end", "CharacterDataHandler": "_chars",
}
"""The expat handlers :class:`StreamParser` sets, to its methods of these names (one table, so that
:meth:`StreamParser.close` clears every one it set)."""


class StreamParser:
    """Incremental reader of one XML stream; create a new one on every stream restart.

    Args:
        limits: size and depth limits.
    """

    def __init__(self, limits: ParseLimits | None = None) -> None:
        self._limits = limits or ParseLimits()
        p = ParserCreate(encoding="utf-8", namespace_separator=_SEP)
        p.buffer_text = False
        p.SetParamEntityParsing(XML_PARAM_ENTITY_PARSING_NEVER)
        for handler, method in _HANDLERS.items():
            setattr(p, handler, getattr(self, method))
        self._p = p
        self._buf = bytearray()
        self._base = 0  # absolute stream index of _buf[0]
        self._fed = 0
        self._boundary = 0  # absolute index after the last complete top-level item
        self._depth = 0
        self._stanza_start = -1
        self._stack: list[ET.Element] = []
        self._text: list[str] = []  # character data since the last tag, joined once (no O(n^2) concat)
        self._pending_ns: dict[str, str] = {}
        self._items: list[ParseItem] = []
        self._ended = False

    def close(self) -> None:
        """Stop parsing and release expat's handlers.

        The handlers are bound methods of this object, held by the expat parser it holds: a reference
        cycle that only a full GC pass would free, keeping each ended stream's parser, buffers and
        everything they reach in memory until then (issue 19). Closing breaks it, so reference counting
        frees an ended stream at once. Feeding a closed parser yields nothing.
        """
        self._ended = True
        for handler in _HANDLERS:
            setattr(self._p, handler, None)

    @property
    def bytes_fed(self) -> int:
        """Bytes fed to this parser so far."""
        return self._fed

    def feed(self, data: bytes) -> list[ParseItem]:
        """Parse more bytes.

        Args:
            data: the next bytes of the stream (any split is fine).

        Returns:
            Items completed by these bytes, in order. Bytes after ``</stream:stream>`` are ignored.

        Raises:
            XmlViolation: malformed or restricted XML, or a limit exceeded; the parser is then dead.
                Its ``items_before`` holds the items completed before the violation.
        """
        items: list[ParseItem] = []
        self._items = items
        try:
            for off in range(0, len(data), _SLICE_BYTES):
                if self._ended:
                    break
                chunk = data[off:off + _SLICE_BYTES]
                self._buf += chunk
                self._fed += len(chunk)
                try:
                    self._p.Parse(chunk, False)
                except ExpatError as exc:
                    raise XmlViolation("not-well-formed", str(exc)) from exc
                if self._fed - self._boundary > self._limits.max_stanza_bytes:
                    raise XmlViolation("policy-violation", f"element over {self._limits.max_stanza_bytes} bytes")
                keep_from = self._boundary if self._stanza_start < 0 else min(self._boundary, self._stanza_start)
                if keep_from > self._base:
                    del self._buf[: keep_from - self._base]
                    self._base = keep_from
        except XmlViolation as exc:
            exc.items_before = items
            raise
        return items

    # -- expat handlers -------------------------------------------------------------------
    def _refuse_dtd(self, *_: Any) -> None:
        raise XmlViolation("restricted-xml", "DTDs and entity declarations are not allowed")

    def _refuse_comment(self, *_: Any) -> None:
        raise XmlViolation("restricted-xml", "comments are not allowed")

    def _refuse_pi(self, *_: Any) -> None:
        raise XmlViolation("restricted-xml", "processing instructions are not allowed")

    def _ns_decl(self, prefix: str | None, uri: str | None) -> None:
        self._pending_ns[prefix or ""] = uri or ""

    def _check_attrs(self, attrs: dict[str, str]) -> None:
        lim = self._limits
        if len(attrs) > lim.max_attrs:
            raise XmlViolation("policy-violation", f"more than {lim.max_attrs} attributes")
        for value in attrs.values():
            if len(value) > lim.max_attr_bytes:
                raise XmlViolation("policy-violation", f"attribute over {lim.max_attr_bytes} characters")

    def _flush_text(self) -> None:
        """Put the character data read since the last tag into the tree (text or tail)."""
        if not self._text:
            return
        data = "".join(self._text)
        self._text.clear()
        cur = self._stack[-1]
        if len(cur):
            cur[-1].tail = data
        else:
            cur.text = data

    def _start(self, name: str, attrs: dict[str, str]) -> None:
        self._check_attrs(attrs)
        if self._stack:
            self._flush_text()
        clark_attrs = {_clark(k): v for k, v in attrs.items()}
        self._depth += 1
        idx = self._p.CurrentByteIndex
        if self._depth == 1:
            self._boundary = _tag_end(self._buf, idx - self._base) + 1 + self._base
            if self._boundary > self._limits.max_stanza_bytes:
                raise XmlViolation("policy-violation", f"stream header over {self._limits.max_stanza_bytes} bytes")
            self._items.append(StreamHeaderItem(tag=_clark(name), attrs=clark_attrs, namespaces=self._pending_ns))
            self._pending_ns = {}
            return
        self._pending_ns = {}
        if self._depth - 1 > self._limits.max_depth:
            raise XmlViolation("policy-violation", f"nesting deeper than {self._limits.max_depth}")
        elem = ET.Element(_clark(name), clark_attrs)
        if self._depth == 2:
            self._stanza_start = idx
        else:
            self._stack[-1].append(elem)
        self._stack.append(elem)

    def _end(self, name: str) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._ended = True
            self._items.append(StreamEndItem())
            return
        self._flush_text()
        elem = self._stack.pop()
        if self._depth > 1:
            return
        start = self._stanza_start
        end = _tag_end(self._buf, start - self._base)
        if self._buf[end - 1] != 0x2F:  # not an empty-element tag <x/>: expat reports the index of "</"
            end = self._buf.index(b">", self._p.CurrentByteIndex - self._base)
        if end + 1 - start + self._base > self._limits.max_stanza_bytes:  # whatever the slice alignment
            raise XmlViolation("policy-violation", f"element over {self._limits.max_stanza_bytes} bytes")
        raw = bytes(self._buf[start - self._base: end + 1])
        self._boundary = end + 1 + self._base
        self._stanza_start = -1
        self._items.append(StanzaItem(element=elem, raw=raw))

    def _chars(self, data: str) -> None:
        if self._depth >= 2:
            self._text.append(data)
        elif self._depth == 1:
            if data.strip(_XML_SPACE):  # XML whitespace only (XML 1.0 §2.3 S), not NBSP, U+3000, NEL...
                raise XmlViolation("not-well-formed", "text between stanzas")
            self._boundary = self._p.CurrentByteIndex + len(data)


_NAME_RE = re.compile(rb"<[^\s/>]+")
_ATTR_RE = re.compile(rb"""\s+([^\s=/>]+)\s*=\s*("[^"]*"|'[^']*')""")


def attr_escape(value: str) -> str:
    """Escape for a single-quoted attribute value."""
    return escape(value, {"'": "&apos;", '"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"})


def text_escape(value: str) -> str:
    """Escape character data."""
    return escape(value)


def restamp(raw: bytes, *, from_jid: str, to_jid: str | None = None) -> bytes:
    """Rewrite a stanza's start tag with our ``from`` (and ``to`` when given); the rest of the
    bytes are forwarded untouched (RFC 6120 §8.1.2.1: the server stamps ``from``).

    Args:
        raw: the well-formed bytes of one stanza as received.
        from_jid: the sender's full JID.
        to_jid: replaces ``to`` when given.

    Returns:
        The stanza bytes with the new attributes first in the start tag.
    """
    m = _NAME_RE.match(raw)
    if m is None:
        raise ValueError("not a stanza")
    pos = m.end()
    drop = {b"from", b"to"} if to_jid is not None else {b"from"}
    kept: list[bytes] = []
    while (a := _ATTR_RE.match(raw, pos)) is not None:
        if a.group(1) not in drop:
            kept.append(a.group(0))
        pos = a.end()
    stamp = f" from='{attr_escape(from_jid)}'"
    if to_jid is not None:
        stamp += f" to='{attr_escape(to_jid)}'"
    return b"".join([raw[: m.end()], stamp.encode(), *kept, raw[pos:]])


def _split(name: str) -> tuple[str, str]:
    if name.startswith("{"):
        ns, _, local = name[1:].partition("}")
        return ns, local
    return "", name


def serialize(elem: ET.Element, parent_ns: str = "jabber:client") -> bytes:
    """Write an element with plain prefixes: ``xml:lang`` (never the Clark name ElementTree would
    write, ENGINEERING.md), a default ``xmlns`` where the namespace changes, ``ns<N>`` prefixes for
    other namespaced attributes.

    Args:
        elem: element with Clark names.
        parent_ns: default namespace in force where it is written.
    """
    out: list[str] = []
    _write(elem, parent_ns, out)
    return "".join(out).encode()


def _write(elem: ET.Element, parent_ns: str, out: list[str]) -> None:
    ns, local = _split(elem.tag)
    out.append("<" + local)
    if ns != parent_ns:
        out.append(f" xmlns='{attr_escape(ns)}'")
    prefixes: dict[str, str] = {}
    for key, value in elem.attrib.items():
        ans, alocal = _split(key)
        if not ans:
            name = alocal
        elif ans == NS_XML:
            name = "xml:" + alocal
        else:
            if ans not in prefixes:
                prefixes[ans] = f"ns{len(prefixes)}"
                out.append(f" xmlns:{prefixes[ans]}='{attr_escape(ans)}'")
            name = f"{prefixes[ans]}:{alocal}"
        out.append(f" {name}='{attr_escape(value)}'")
    if not len(elem) and not elem.text:
        out.append("/>")
        return
    out.append(">")
    if elem.text:
        out.append(text_escape(elem.text))
    for child in elem:
        _write(child, ns, out)
        if child.tail:
            out.append(text_escape(child.tail))
    out.append(f"</{local}>")
