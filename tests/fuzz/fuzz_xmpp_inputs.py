"""Hostile and valid XMPP client byte streams for the fuzz corpus.

Hypothesis draws only a few small choices per example (a kind, a stage, a size, a seed); the
bytes are then built deterministically from ``random.Random(seed)``. That keeps hypothesis'
per-example cost low (it dominates on a busy machine) while the inputs stay reproducible:
a failing example prints its kind and seed.

Every hostile fragment carries the outcomes it may end in: stream error conditions
(RFC 6120 §4.9.3), ``sasl:<condition>`` (RFC 6120 §6.5), ``stanza-error``, ``tls-failure``,
``closed`` (our ``</stream:stream>`` after the client's) or ``open`` (an incomplete input: no
error, nothing more said).
"""

from __future__ import annotations

import base64
import enum
import random
from dataclasses import dataclass

from hypothesis import strategies as st

from fuzz_support import DOMAIN, OTPS

__all__ = [
    "DECL",
    "HEADER",
    "HEADER_KINDS",
    "MID_KINDS",
    "Conversation",
    "Hostile",
    "Stage",
    "chunked",
    "conversation",
    "conversations",
    "hostile",
    "hostile_cases",
    "mutate",
    "mutated_cases",
    "plain_auth",
    "bind_iq",
    "header",
    "rand_stanza",
    "rand_text",
    "token_auth",
]

NS_STREAM = "http://etherx.jabber.org/streams"
SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
BIND = "urn:ietf:params:xml:ns:xmpp-bind"
DECL = b"<?xml version='1.0'?>"


def header(to: str = DOMAIN, ns: str = "jabber:client", stream_ns: str = NS_STREAM, version: str | None = "1.0",
           root: str = "stream:stream", extra: str = "", decl: bool = True) -> bytes:
    ver = f" version='{version}'" if version is not None else ""
    return ((DECL if decl else b"")
            + f"<{root} to='{to}' xmlns='{ns}' xmlns:stream='{stream_ns}'{ver} xml:lang='en'{extra}>".encode())


HEADER = header()


def plain_auth(user: str, password: str, authzid: str = "", mechanism: str = "PLAIN") -> bytes:
    payload = base64.b64encode(f"{authzid}\0{user}\0{password}".encode()).decode()
    return f"<auth xmlns='{SASL}' mechanism='{mechanism}'>{payload}</auth>".encode()


def token_auth(user: str, otp: str) -> bytes:
    payload = base64.b64encode(f"userid={user}@{DOMAIN}\0token={otp}".encode()).decode()
    return f"<auth xmlns='{SASL}' mechanism='CISCO-VTG-TOKEN'>{payload}</auth>".encode()


def bind_iq(resource: str | None, iq_id: str = "b1", typ: str = "set") -> bytes:
    res = f"<resource>{resource}</resource>" if resource is not None else ""
    return f"<iq type='{typ}' id='{iq_id}'><bind xmlns='{BIND}'>{res}</bind></iq>".encode()


# -- text and stanzas ---------------------------------------------------------------------------
_TEXT_POOL = (
    [chr(c) for c in range(0x20, 0x7F) if chr(c) not in "<&>'\""]
    + ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;", "&#233;", "&#x1F600;", "&#10;", "\n", "\r\n", "\t",
       "é", "ß", "中文", "😀", "\u200b", "\u00a0", "\U0010FFFD", "]]&gt;"]
)


def rand_text(rng: random.Random, n: int) -> str:
    """Escaped character data of about ``n`` tokens (entities, char refs, multibyte, CR LF)."""
    return "".join(rng.choice(_TEXT_POOL) for _ in range(n))


def _rand_name(rng: random.Random) -> str:
    return rng.choice(["x", "data", "thread", "subject", "a", "b-c", "n.1", "_u", "é"])


def _rand_child(rng: random.Random, depth: int) -> str:
    name = _rand_name(rng)
    ns = rng.choice(["", "", f" xmlns='urn:x:{rng.randrange(99)}'", " xmlns:p='urn:p' p:k='v'"])
    attrs = "".join(f" a{i}='{rand_text(rng, rng.randrange(6))}'" for i in range(rng.randrange(3)))
    if depth <= 0 or rng.random() < 0.4:
        return f"<{name}{ns}{attrs}/>" if rng.random() < 0.5 else f"<{name}{ns}{attrs}>{rand_text(rng, rng.randrange(12))}</{name}>"
    inner = "".join(_rand_child(rng, depth - 1) + rand_text(rng, rng.randrange(3)) for _ in range(rng.randrange(1, 3)))
    return f"<{name}{ns}{attrs}>{inner}</{name}>"


def rand_stanza(rng: random.Random, i: int) -> bytes:
    """A valid stanza for an established session: a message, presence or server iq."""
    to = rng.choice([f"bob@{DOMAIN}", f"carol@{DOMAIN}/r", f"nobody@{DOMAIN}", "other.test", f"Bob@{DOMAIN.upper()}"])
    kind = rng.randrange(8)
    if kind <= 2:
        extra = "".join(_rand_child(rng, 3) for _ in range(rng.randrange(3)))
        quote = rng.choice("'\"")
        return (f"<message to={quote}{to}{quote} id='m{i}' type='chat' xml:lang='en'>"
                f"<body>{rand_text(rng, rng.randrange(40))}</body>{extra}</message>").encode()
    if kind == 3:
        return f"<presence><show>away</show><status>{rand_text(rng, rng.randrange(20))}</status></presence>".encode()
    if kind == 4:
        return f"<presence to='{to}' type='subscribe'/>".encode()
    if kind == 5:
        return f"<iq type='get' id='p{i}'><ping xmlns='urn:xmpp:ping'/></iq>".encode()
    if kind == 6:
        return f"<iq type='get' id='r{i}'><query xmlns='jabber:iq:roster'/></iq>".encode()
    return f"<iq type='set' id='s{i}'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>".encode()


# -- conversations ------------------------------------------------------------------------------
class Stage(enum.Enum):
    """Where a hostile fragment is sent."""

    HEADER = "header"  # in place of the first stream header
    NEGOTIATING = "negotiating"  # after our features, before SASL
    BINDING = "binding"  # after <success/> and the restart, before bind
    ESTABLISHED = "established"  # after bind


@dataclass(frozen=True, kw_only=True)
class Conversation:
    """Client turns of a valid login (each turn is sent after the server answered the last).

    Attributes:
        turns: the turns in order.
        stage_ends: number of turns that reach each stage.
        user: who logs in.
    """

    turns: tuple[bytes, ...]
    stage_ends: dict[Stage, int]
    user: str

    def up_to(self, stage: Stage) -> list[bytes]:
        return list(self.turns[: self.stage_ends[stage]])


def conversation(seed: int, *, tls: bool = False, n_stanzas: int | None = None, close: bool | None = None) -> Conversation:
    """A valid conversation built from ``seed``: header, [STARTTLS, header,] SASL (PLAIN, token,
    or empty auth + response), restart, bind, some stanzas, maybe the close."""
    rng = random.Random(seed)
    turns: list[bytes] = []
    ends: dict[Stage, int] = {Stage.HEADER: 0}
    turns.append(HEADER if rng.random() < 0.8 else header(to=DOMAIN.upper(), version="1.5"))
    if tls:
        turns.append(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        turns.append(HEADER)
    ends[Stage.NEGOTIATING] = len(turns)
    user = rng.choice(["alice", "bob"])
    how = rng.randrange(4)
    if how == 0:
        turns.append(token_auth(user, OTPS[user]))
    elif how == 1:
        turns.append(f"<auth xmlns='{SASL}' mechanism='PLAIN'/>".encode())
        payload = base64.b64encode(f"\0{user}\0pass-{user}".encode()).decode()
        turns.append(f"<response xmlns='{SASL}'>{payload}</response>".encode())
    else:
        turns.append(plain_auth(rng.choice([user, f"{user}@{DOMAIN}", user.upper()]), f"pass-{user}"))
    turns.append(HEADER)
    ends[Stage.BINDING] = len(turns)
    turns.append(bind_iq(rng.choice([None, "r", "Jabber_Win.1", "é😀"]), iq_id=f"b{rng.randrange(9)}"))
    ends[Stage.ESTABLISHED] = len(turns)
    count = rng.randrange(6) if n_stanzas is None else n_stanzas
    for i in range(count):
        batch = b"".join(rand_stanza(rng, i * 10 + k) for k in range(rng.randrange(1, 3)))
        turns.append(batch if rng.random() < 0.7 else b"\n  " + batch + b" ")
    if close if close is not None else rng.random() < 0.3:
        turns.append(b"</stream:stream>")
    return Conversation(turns=tuple(turns), stage_ends=ends, user=user)


def chunked(data: bytes, rng: random.Random, *, max_pieces: int = 8) -> list[bytes]:
    """``data`` cut at random points (possibly inside a UTF-8 sequence or a tag)."""
    if len(data) < 2:
        return [data] if data else []
    cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randrange(0, max_pieces))))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]


# -- hostile fragments --------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Hostile:
    """A hostile fragment and what it may end in."""

    kind: str
    data: bytes
    outcomes: frozenset[str]


NWF = frozenset({"not-well-formed"})
RXML = frozenset({"restricted-xml"})
POLICY = frozenset({"policy-violation"})
NWF_OR_RXML = frozenset({"not-well-formed", "restricted-xml"})

_LAUGHS = (b"<!DOCTYPE lolz [<!ENTITY lol 'lol'>"
           + b"".join(f"<!ENTITY lol{i} '{('&lol' + (str(i - 1) if i > 1 else '') + ';') * 10}'>".encode()
                      for i in range(1, 10)) + b"]>")
_DOCTYPES = [
    _LAUGHS,
    b"<!DOCTYPE s [<!ENTITY xxe SYSTEM 'file:///etc/passwd'>]>",
    b"<!DOCTYPE s [<!ENTITY % pe SYSTEM 'file:///etc/passwd'> %pe;]>",
    b"<!DOCTYPE s [<!ENTITY % pe '<!ENTITY x \"y\">'> %pe;]>",
    b"<!DOCTYPE s PUBLIC '-//EVIL//DTD x//EN' 'http://127.0.0.1:9/evil.dtd'>",
    b"<!DOCTYPE s SYSTEM 'http://127.0.0.1:9/evil.dtd'>",
    b"<!DOCTYPE s [<!ELEMENT s ANY><!ATTLIST s a CDATA 'default'>]>",
]
_BAD_UTF8 = [b"\xff", b"\xfe", b"\xc0\x80", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80",
             b"\xf8\x88\x80\x80\x80"]

HEADER_KINDS = (
    "random_prefix", "http_request", "wrong_default_ns", "wrong_stream_ns", "wrong_root", "host_unknown",
    "bad_version", "doctype", "comment_first", "pi_first", "header_huge_attr", "header_many_attrs",
    "header_invalid_utf8", "header_truncated", "header_unbound_prefix", "header_dup_attr", "header_oversize",
)
MID_KINDS = (
    "doctype_mid", "entity_undefined", "entity_external_ref", "comment", "pi", "deep_nesting", "huge_attr",
    "many_attrs", "oversize_stanza", "text_between", "unicode_space_between", "invalid_utf8", "unbound_prefix",
    "xml_prefix_rebind", "mismatched_close", "second_decl", "nul_char", "bad_char_ref", "unknown_element",
    "stanza_out_of_order", "bad_ns_stanza", "header_element", "close_stream", "truncated_stanza",
)


def _not_authorized_or(stage: Stage, established: frozenset[str]) -> frozenset[str]:
    return established if stage is Stage.ESTABLISHED else frozenset({"not-authorized"})


def hostile(kind: str, stage: Stage, size: int, seed: int) -> Hostile:
    """Build the hostile fragment ``kind`` for ``stage`` (``size`` in 0..1000 scales it)."""
    rng = random.Random(seed)
    if stage is Stage.HEADER:
        return _hostile_header(kind, size, rng)
    return _hostile_mid(kind, stage, size, rng)


def _hostile_header(kind: str, size: int, rng: random.Random) -> Hostile:
    def h(data: bytes, outcomes: frozenset[str] | set[str]) -> Hostile:
        return Hostile(kind=kind, data=data, outcomes=frozenset(outcomes))

    rest = HEADER[len(DECL):]
    match kind:
        case "random_prefix":
            return h(rng.choice([b"x", b"1", b"{", b"]"]) + b" garbage <>" + rng.randbytes(size % 200), NWF)
        case "http_request":
            return h(b"GET /http-bind HTTP/1.1\r\nHost: example.test\r\n\r\n", NWF)
        case "wrong_default_ns":
            return h(header(ns=rng.choice(["jabber:server", "", "urn:x", "jabber:client "])),
                     {"invalid-namespace", "not-well-formed"})  # xmlns='' on a prefixed root is fine XML
        case "wrong_stream_ns":
            return h(header(stream_ns=rng.choice(["urn:wrong", "http://etherx.jabber.org/streams/"])),
                     {"invalid-namespace"})
        case "wrong_root":
            return h(header(root=rng.choice(["stream:strea", "stream:features", "iq"])), {"bad-format"})
        case "host_unknown":
            return h(header(to=rng.choice(["evil.example", "example.test.evil", "", "exämple.test"])),
                     {"host-unknown"})
        case "bad_version":
            return h(header(version=rng.choice([None, "0.9", "2.0", "", "1"])), {"unsupported-version"})
        case "doctype":
            return h(DECL + rng.choice(_DOCTYPES) + rest, RXML)
        case "comment_first":
            return h(DECL + b"<!-- hello -->" + rest, RXML)
        case "pi_first":
            return h(DECL + b"<?evil x?>" + rest, RXML)
        case "header_huge_attr":
            return h(header(extra=f" id='{'x' * (8193 + size * 50)}'"), POLICY)
        case "header_many_attrs":
            return h(header(extra="".join(f" a{i}='1'" for i in range(65 + size % 300))), POLICY)
        case "header_invalid_utf8":
            bad = rng.choice(_BAD_UTF8)
            return h(header(extra=" id='a").rstrip(b">") + bad + b"'>", NWF)
        case "header_truncated":
            return h(HEADER[: rng.randrange(1, len(HEADER))], {"open"})
        case "header_unbound_prefix":
            return h(DECL + f"<stream:stream to='{DOMAIN}' xmlns='jabber:client' version='1.0'>".encode(), NWF)
        case "header_dup_attr":
            return h(header(extra=f" to='{DOMAIN}'"), NWF)
        case "header_oversize":
            return h(DECL + b"<stream:stream" + b" " * (70_000 + size * 10) + rest[len(b"<stream:stream"):], POLICY)
    raise ValueError(kind)


def _hostile_mid(kind: str, stage: Stage, size: int, rng: random.Random) -> Hostile:
    def h(data: bytes, outcomes: frozenset[str] | set[str]) -> Hostile:
        return Hostile(kind=kind, data=data, outcomes=frozenset(outcomes))

    msg = f"<message to='bob@{DOMAIN}' id='h1'><body>".encode()
    end = b"</body></message>"
    match kind:
        case "doctype_mid":
            return h(rng.choice(_DOCTYPES), NWF_OR_RXML)
        case "entity_undefined":
            return h(msg + rng.choice([b"&lol9;", b"&xxe;", b"&nbsp;", b"&copy;"]) + end, NWF)
        case "entity_external_ref":
            return h(msg + b"%pe;&pe;" + end, NWF)
        case "comment":
            return h(rng.choice([b"<!-- c -->", msg + b"<!-- c -->" + end]), RXML)
        case "pi":
            return h(rng.choice([b"<?php x?>", msg + b"<?evil?>" + end]), RXML)
        case "deep_nesting":
            n = 33 + size * 2
            return h(b"<message>" + b"<a>" * n + b"</a>" * n + b"</message>", POLICY)
        case "huge_attr":
            return h(f"<message id='{'x' * (8193 + size * 50)}'/>".encode(), POLICY)
        case "many_attrs":
            return h(("<message" + "".join(f" a{i}='1'" for i in range(65 + size % 500)) + "/>").encode(), POLICY)
        case "oversize_stanza":
            filler = rng.choice([b"a", b"&amp;", b"\n", "é".encode()])
            return h(msg + filler * ((66_000 + size * 100) // len(filler)) + end, POLICY)
        case "text_between":
            return h(rng.choice([b"stray text", b"  x  ", b"&amp;", b"&#65;"]), NWF)
        case "unicode_space_between":
            return h(rng.choice(["\u00a0", "\u3000", "\u2028", "\x85"]).encode() * (1 + size), NWF)
        case "invalid_utf8":
            bad = rng.choice(_BAD_UTF8)
            return h(rng.choice([msg + bad + end, b"<message id='" + bad + b"'/>", b"<m" + bad + b"/>"]), NWF)
        case "unbound_prefix":
            return h(rng.choice([b"<foo:message/>", b"<message foo:a='1'/>"]), NWF)
        case "xml_prefix_rebind":
            return h(rng.choice([b"<message xmlns:xml='urn:x'/>", b"<message xmlns:xmlns='urn:x'/>"]), NWF)
        case "mismatched_close":
            return h(rng.choice([b"<message></presence>", msg + b"</message>", b"</iq>"]), NWF)
        case "second_decl":
            return h(DECL + HEADER[len(DECL):], NWF_OR_RXML)
        case "nul_char":
            return h(rng.choice([msg + b"\x00" + end, msg + b"&#0;" + end, b"<message id='\x01'/>"]), NWF)
        case "bad_char_ref":
            return h(msg + rng.choice([b"&#xD800;", b"&#x110000;", b"&#xFFFE;", b"&#;", b"&#x;"]) + end, NWF)
        case "unknown_element":
            return h(rng.choice([b"<r xmlns='urn:xmpp:sm:3'/>", b"<foo/>", b"<enable xmlns='urn:xmpp:sm:3'/>"]),
                     _not_authorized_or(stage, frozenset({"unsupported-stanza-type"})))
        case "stanza_out_of_order":
            data = rng.choice([b"<iq type='get' id='x'><ping xmlns='urn:xmpp:ping'/></iq>", msg + b"hi" + end,
                               b"<presence/>", bind_iq("r2")])
            if stage is Stage.ESTABLISHED:
                return h(data, {"stanza-error", "ok", "open"})
            if stage is Stage.BINDING and data.startswith(b"<iq type='set' id='b1'><bind"):
                return h(data, {"ok"})
            return h(data, {"not-authorized"})
        case "bad_ns_stanza":
            return h(rng.choice([b"<message xmlns='jabber:server' to='bob@example.test'/>", b"<iq xmlns=''/>"]),
                     _not_authorized_or(stage, frozenset({"unsupported-stanza-type"})))
        case "header_element":
            return h(HEADER[len(DECL):], {"open"})
        case "close_stream":
            return h(b"</stream:stream>", {"closed"})
        case "truncated_stanza":
            whole = msg + b"hello" + end
            return h(whole[: rng.randrange(1, len(whole))], {"open"})
    raise ValueError(kind)


def hostile_cases() -> st.SearchStrategy[tuple[str, Stage, int, int, int]]:
    """(kind, stage, size, seed, conversation seed): stage HEADER uses the header kinds."""
    header_case = st.tuples(st.sampled_from(HEADER_KINDS), st.just(Stage.HEADER))
    mid_case = st.tuples(st.sampled_from(MID_KINDS),
                         st.sampled_from([Stage.NEGOTIATING, Stage.BINDING, Stage.ESTABLISHED]))
    return st.tuples(st.one_of(header_case, mid_case, mid_case), st.integers(0, 1000),
                     st.integers(0, 2**31)).map(lambda t: (t[0][0], t[0][1], t[1], t[2], t[2] ^ 0x5A5A))


# -- mutations ------------------------------------------------------------------------------------
_TOKENS = [b"<", b">", b"/>", b"</", b"&", b"&amp;", b"&#0;", b"<!--", b"-->", b"<!DOCTYPE x>", b"]]>",
           b"<![CDATA[", b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"</stream:stream>", DECL, b" xmlns:x='y'",
           b"'", b'"', b"=", b"\x00", b"<a>" * 40, b"x" * 9000, b" a='1'" * 70, b"<stream:stream>", b"&lol;",
           b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>", b"</auth>", b"<iq type='get'>"]


def mutate(data: bytes, rng: random.Random, n_ops: int) -> bytes:
    """Apply ``n_ops`` random byte-level mutations (flip, insert token, delete, duplicate, truncate)."""
    buf = bytearray(data)
    for _ in range(n_ops):
        op = rng.randrange(6)
        pos = rng.randrange(len(buf) + 1)
        if op == 0 and buf:
            buf[min(pos, len(buf) - 1)] = rng.randrange(256)
        elif op == 1:
            buf[pos:pos] = rng.choice(_TOKENS)
        elif op == 2:
            del buf[pos:pos + rng.randrange(1, 40)]
        elif op == 3:
            buf[pos:pos] = buf[pos:pos + rng.randrange(1, 200)]
        elif op == 4:
            del buf[pos:]
        else:
            buf[pos:pos] = rng.randbytes(rng.randrange(1, 16))
    return bytes(buf)


def mutated_cases() -> st.SearchStrategy[tuple[int, int, bool]]:
    """(seed, number of mutations, TLS offered)."""
    return st.tuples(st.integers(0, 2**31), st.integers(1, 4), st.booleans())


def conversations() -> st.SearchStrategy[tuple[int, bool]]:
    """(seed, TLS offered) of a valid conversation."""
    return st.tuples(st.integers(0, 2**31), st.booleans())


