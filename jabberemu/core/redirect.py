"""``see-other-host`` (RFC 6120 §4.9.3.19): read the named host, decide whether to follow it.

Pure functions and frozen values; :class:`~jabberemu.core.machine.ClientMachine` keeps the chain
and the table (:mod:`jabberemu.core.states`, outcome ``redirect``) says where it leads.

Our reading of RFC 6120 §4.9.3.19:

- The XML character data of ``<see-other-host/>`` "MUST be a valid domainpart or a domainpart plus
  port number (separated by the ':' character in the form "domainpart:port")"; an IPv6 address is
  "enclosed in square brackets". We accept, after trimming surrounding white space: a DNS name
  (letter-digit-hyphen labels; an internationalised name is converted with the ``idna`` codec), an
  IPv4 literal, or a bracketed IPv6 literal, each optionally followed by ``:port`` (ASCII digits,
  1..65535). Anything else is **malformed** (empty text, white space inside, a bare IPv6 address,
  an empty, zero, too large or non-numeric port, a host that is no domainpart): the stream error
  is then a plain failure (``stream-error:see-other-host``), no redirect.
- Without a port the RFC says to resolve the name "as described under Section 3.2" (SRV, then the
  fallback port). The emulated client connects to host:port directly, for configured nodes too, so
  a host without a port gets 5222, the §3.2 fallback port (:data:`DEFAULT_XMPP_PORT`).
- A text naming a node the client knows (a node of the pair, or the primary/backup the CPA named)
  by its name, by its XMPP ``host:port`` or by its XMPP address (IPv6 in brackets) means that node
  (it keeps its CPA URL). Anything else becomes a :class:`~jabberemu.config.NodeAddress` built on
  the fly: name = the normalised ``host:port``, no CPA URL (so only XMPP attempts go there; the
  CPA sign-in stays with the pair's nodes).
- "the initiating entity SHOULD abort the connection attempt after a certain number of successive
  redirects (e.g., at least 2 but no more than 5)": our choice is :data:`MAX_REDIRECTS` = 3
  successive redirects; a fourth ends the attempt as ``too-many-redirects``. A redirect naming a
  host already in the chain (the host that sent the first redirect included; a host redirecting to
  itself too) ends it as ``redirect-loop``. Hosts are compared by normalised XMPP ``host:port``
  (lower-case name, compressed IPv6): the same host on another port is another target, as the RFC
  has it ("differing only by the port number ... reconnect at that address").
- The chain holds the hosts of successive redirects, starting with the host that sent the first;
  a redirect continues it only when it comes from the host the previous one named. The machine
  clears it when an XMPP attempt ends any other way and when the client is connected.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from jabberemu.config import NodeAddress

__all__ = [
    "DEFAULT_XMPP_PORT",
    "MAX_REDIRECTS",
    "HostPort",
    "Redirect",
    "RedirectVerdict",
    "address_key",
    "judge_redirect",
    "parse_host_port",
]

#: Port of a see-other-host target named without one (RFC 6120 §3.2.2 fallback, c2s).
DEFAULT_XMPP_PORT = 5222
#: Successive see-other-host redirects followed before the attempt ends as ``too-many-redirects``
#: (our choice within RFC 6120 §4.9.3.19's "at least 2 but no more than 5").
MAX_REDIRECTS = 3

_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_DOTTED_DIGITS = re.compile(r"[0-9.]+")
_PORT = re.compile(r"[0-9]{1,5}")


@dataclass(frozen=True, kw_only=True, slots=True)
class HostPort:
    """A parsed see-other-host target.

    Attributes:
        host: normalised host: lower-case DNS name (A-labels, no trailing dot), dotted IPv4, or
            compressed IPv6 without brackets.
        port: the port named, or :data:`DEFAULT_XMPP_PORT`.
        port_given: whether the text named a port.
    """

    host: str
    port: int
    port_given: bool

    @property
    def address(self) -> str:
        """``host:port``, an IPv6 host in brackets (the name of a node built on the fly)."""
        return _address(self.host, self.port)


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _norm_name(text: str) -> str | None:
    """A DNS name or IPv4 literal, normalised; None when it is no domainpart."""
    name = text[:-1] if text.endswith(".") else text
    if not name:
        return None
    try:
        name = name.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None
    if _DOTTED_DIGITS.fullmatch(name):
        try:
            return str(ipaddress.IPv4Address(name))
        except ValueError:
            return None
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in name.split(".")):
        return None
    return name


def parse_host_port(text: str) -> HostPort | None:
    """Read ``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` (surrounding white space ignored).

    Args:
        text: the XML character data of ``<see-other-host/>``.

    Returns:
        The target, or None when the text is malformed (see the module docstring).
    """
    text = text.strip()
    if not text or any(ch.isspace() for ch in text):
        return None
    port_text: str | None
    if text.startswith("["):
        inner, closed, rest = text[1:].partition("]")
        if not closed or "%" in inner:  # a zone id is no domainpart
            return None
        try:
            host = ipaddress.IPv6Address(inner).compressed
        except ValueError:
            return None
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:] if rest else None
    else:
        if text.count(":") > 1:  # a bare IPv6 address (RFC 6120: brackets required) or garbage
            return None
        name, colon, tail = text.partition(":")
        norm = _norm_name(name)
        if norm is None:
            return None
        host, port_text = norm, (tail if colon else None)
    if port_text is None:
        return HostPort(host=host, port=DEFAULT_XMPP_PORT, port_given=False)
    if not _PORT.fullmatch(port_text) or not 1 <= int(port_text) <= 65535:
        return None
    return HostPort(host=host, port=int(port_text), port_given=True)


def address_key(node: NodeAddress) -> str:
    """Normalised XMPP ``host:port`` of ``node``: how the redirect chain tells hosts apart."""
    parsed = parse_host_port(f"[{node.xmpp_host}]" if ":" in node.xmpp_host else node.xmpp_host)
    host = parsed.host if parsed is not None else node.xmpp_host.lower()
    return _address(host, node.xmpp_port)


class RedirectVerdict(enum.Enum):
    """What the machine does with a see-other-host (values: the failure classes where it fails)."""

    FOLLOW = "follow"  # the next XMPP attempt goes to the target (table outcome ``redirect``)
    MALFORMED = "malformed"  # no usable host[:port]: a plain stream error
    LOOP = "redirect-loop"  # the target is already in the chain: the attempt fails
    TOO_MANY = "too-many-redirects"  # following it would exceed MAX_REDIRECTS: the attempt fails


@dataclass(frozen=True, kw_only=True, slots=True)
class Redirect:
    """One see-other-host as judged by :func:`judge_redirect`.

    Attributes:
        verdict: follow, malformed, loop, too many.
        target: where it points (None when malformed).
        known: the target is a node the client knows (pair node / CPA-named), not one built on the fly.
        chain: the chain including this redirect's target (the chain as it was when malformed).
    """

    verdict: RedirectVerdict
    target: NodeAddress | None
    known: bool
    chain: tuple[str, ...]

    @property
    def hop(self) -> int:
        """Place of this redirect in the chain of successive redirects (1 = the first)."""
        return max(len(self.chain) - 1, 0)


def _find(text: str, known: list[NodeAddress]) -> NodeAddress | None:
    for node in known:
        if text in (node.name, node.xmpp_address, f"{node.xmpp_host}:{node.xmpp_port}"):
            return node
    parsed = parse_host_port(text)
    if parsed is None:
        return None
    for node in known:
        by_name = parsed.host == node.name.lower().rstrip(".") and (
            not parsed.port_given or parsed.port == node.xmpp_port)
        if by_name or address_key(node) == parsed.address:
            return node
    return None


def judge_redirect(text: str | None, *, source: NodeAddress, chain: tuple[str, ...],
                   known: Iterable[NodeAddress], max_redirects: int | None = None) -> Redirect:
    """Decide what a see-other-host from ``source`` means.

    Args:
        text: the ``<see-other-host/>`` character data (None or empty: malformed).
        source: the node whose stream carried the error.
        chain: the current chain of successive redirects. It goes on only when ``source`` is its
            last host (the host the previous redirect named); otherwise this redirect starts a new
            chain from ``source``.
        known: nodes the client knows, in order of preference (primary, secondary, pair nodes).
        max_redirects: successive redirects allowed; None reads :data:`MAX_REDIRECTS` (which
            tests may lower) at call time.

    Returns:
        A :class:`Redirect`: FOLLOW with its target and the longer chain, MALFORMED, LOOP (the
        target is in the chain, ``source`` included) or TOO_MANY (the chain would pass
        ``max_redirects``).
    """
    nodes = list(known)
    src = address_key(source)
    before = chain if chain and chain[-1] == src else (src,)
    stripped = (text or "").strip()
    target = _find(stripped, nodes) if stripped else None
    known_target = target is not None
    if target is None:
        parsed = parse_host_port(stripped)
        if parsed is None:
            return Redirect(verdict=RedirectVerdict.MALFORMED, target=None, known=False, chain=chain)
        target = NodeAddress(name=parsed.address, cpa_url=None, xmpp_host=parsed.host, xmpp_port=parsed.port)
    key = address_key(target)
    after = (*before, key)
    if key in before:
        verdict = RedirectVerdict.LOOP
    elif len(after) - 1 > (MAX_REDIRECTS if max_redirects is None else max_redirects):
        verdict = RedirectVerdict.TOO_MANY
    else:
        verdict = RedirectVerdict.FOLLOW
    return Redirect(verdict=verdict, target=target, known=known_target, chain=after)
