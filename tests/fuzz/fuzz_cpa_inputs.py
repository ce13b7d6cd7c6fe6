"""Hostile CPA SOAP request bodies and HTTP requests for the fuzz corpus.

As for XMPP, hypothesis draws a kind and a seed; the bytes are built from ``random.Random(seed)``.
Each body carries the outcomes allowed: ``ok`` (parsed) or a ``FaultCode`` value, ``too-large``
(``RequestTooLargeError``) or ``version-mismatch`` (SOAP 1.1 envelope, SOAP 1.2 Part 1 §5.4.7).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from hypothesis import strategies as st

from fuzz_xmpp_inputs import mutate

__all__ = ["BODY_KINDS", "Body", "CONTENT_TYPES", "RAW_HTTP_KINDS", "body", "body_cases", "envelope", "raw_http"]

SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
EPAS = "urn:cisco:epas:soap"
#: Body cap used by the fuzz targets (the real default is 1 MiB; smaller keeps the corpus fast).
CAP_BYTES = 64 * 1024

MALFORMED = frozenset({"malformed-request"})


@dataclass(frozen=True, kw_only=True)
class Body:
    kind: str
    data: bytes
    action: str | None
    outcomes: frozenset[str]


def envelope(inner: str, key: str | None = None, *, ns: str = SOAP12, header_extra: str = "", prolog: str = "") -> bytes:
    header = f"<env:Header><epas:session-key>{key}</epas:session-key>{header_extra}</env:Header>" if key else ""
    return (f'{prolog}<env:Envelope xmlns:env="{ns}" xmlns:epas="{EPAS}">{header}<env:Body>{inner}</env:Body>'
            "</env:Envelope>").encode()


def login(user: str = "user00001", password: str | None = None, attrs: str = ' client-type="CUPC"') -> str:
    pw = password if password is not None else f"pass-{user}"
    return f"<epas:login{attrs}><epas:username>{user}</epas:username><epas:password>{pw}</epas:password></epas:login>"


_LAUGHS = ('<!DOCTYPE env:Envelope [<!ENTITY lol "lol">'
           + "".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10))
           + "]>")
_DOCTYPES = [
    _LAUGHS,
    '<!DOCTYPE env:Envelope [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>',
    '<!DOCTYPE env:Envelope [<!ENTITY % pe SYSTEM "file:///etc/passwd"> %pe;]>',
    '<!DOCTYPE env:Envelope [<!ENTITY % pe SYSTEM "http://127.0.0.1:9/x.dtd"> %pe;]>',
    '<!DOCTYPE env:Envelope SYSTEM "http://127.0.0.1:9/evil.dtd">',
    '<!DOCTYPE env:Envelope PUBLIC "-//EVIL//x" "file:///etc/passwd">',
    '<!DOCTYPE env:Envelope [<!ATTLIST epas:login force CDATA "true">]>',
]
_ENTITY_USE = ["&lol9;", "&xxe;", "&pe;", "&undefined;", "&amp;", "&#x41;"]

BODY_KINDS = (
    "valid_login", "valid_session_op", "soap11", "wrong_root", "no_body", "two_bodies", "empty_body",
    "two_ops", "header_after_body", "unknown_op", "login_missing", "login_bad_force", "dup_session_key",
    "doctype", "entity_ref", "deep_nesting", "huge_attribute", "oversize", "random_bytes", "invalid_utf8",
    "encoding_decl", "comments_pis_cdata", "action_mismatch", "action_match", "mutated", "trailing_garbage",
    "empty", "many_attributes", "namespace_tricks",
)


def body(kind: str, seed: int) -> Body:
    """Build the request body ``kind`` from ``seed``."""
    rng = random.Random(seed)

    def b(data: bytes, outcomes: frozenset[str] | set[str], action: str | None = None) -> Body:
        return Body(kind=kind, data=data, action=action, outcomes=frozenset(outcomes))

    user = rng.choice(["user00001", "user00002", "nobody", "", "üser", "a" * 300])
    match kind:
        case "valid_login":
            user = rng.choice(["user00001", "user00003", user])
            return b(envelope(login(user, rng.choice([None, None, "wrong", ""]))), {"ok"})
        case "valid_session_op":
            op = rng.choice(["get-all-config", "get-onetime-password", "logout"])
            return b(envelope(f"<epas:{op}/>", rng.choice(["K-1", "  ", "x" * 500])), {"ok"})
        case "soap11":
            return b(envelope(login(), ns=SOAP11), {"version-mismatch"})
        case "wrong_root":
            return b(rng.choice([b"<foo/>", b"<Envelope/>", envelope(login(), ns="urn:not-soap"),
                                 f'<env:Body xmlns:env="{SOAP12}"/>'.encode()]), MALFORMED)
        case "no_body":
            return b(f'<env:Envelope xmlns:env="{SOAP12}"><env:Header/></env:Envelope>'.encode(), MALFORMED)
        case "two_bodies":
            return b(envelope(login()).replace(b"</env:Envelope>", b"<env:Body/></env:Envelope>"), MALFORMED)
        case "empty_body":
            return b(envelope(rng.choice(["", "  ", "text only"])), MALFORMED)
        case "two_ops":
            return b(envelope(login() + "<epas:logout/>"), MALFORMED)
        case "header_after_body":
            return b(envelope(login()).replace(b"</env:Envelope>", b"<env:Header/></env:Envelope>"), MALFORMED)
        case "unknown_op":
            op = rng.choice(["<epas:frobnicate/>", "<login/>", '<x:login xmlns:x="urn:cisco:epas:soap:v2"/>',
                             "<epas:login-resp/>", "<epas:LOGIN/>"])
            return b(envelope(op), {"unknown-operation"})
        case "login_missing":
            return b(envelope(rng.choice(["<epas:login/>", "<epas:login><epas:username>u</epas:username></epas:login>",
                                          "<epas:login><epas:password>p</epas:password></epas:login>"])), MALFORMED)
        case "login_bad_force":
            return b(envelope(login(attrs=f' force="{rng.choice(["yes", "TRUE", "2", "", "tru e"])}"')), MALFORMED)
        case "dup_session_key":
            return b(envelope("<epas:get-all-config/>", "K-1", header_extra="<epas:session-key>K-2</epas:session-key>"),
                     {"ok"})
        case "doctype":
            use = rng.choice(_ENTITY_USE)
            return b(envelope(login(user=use), prolog=rng.choice(_DOCTYPES)), MALFORMED)
        case "entity_ref":
            return b(envelope(login(user=rng.choice(["&lol9;", "&xxe;", "&undefined;", "&#0;", "&#xD800;"]))), MALFORMED)
        case "deep_nesting":
            n = rng.choice([50, 255, 257, 300, 2000, 5000])
            return b(envelope(login(user="<a>" * n + "</a>" * n, password="p")), {"ok", "malformed-request"})
        case "huge_attribute":
            n = rng.randrange(1000, CAP_BYTES - 1000)
            return b(envelope(login(attrs=f' client-type="{"x" * n}"')), {"ok"})
        case "oversize":
            return b(envelope(login(user="u" * (CAP_BYTES + rng.randrange(1, 5000)))), {"too-large"})
        case "random_bytes":
            return b(rng.randbytes(rng.randrange(1, 400)), MALFORMED)
        case "invalid_utf8":
            bad = rng.choice([b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xc3", b"\x00"])
            return b(envelope(login(user="X")).replace(b"X", bad, 1), MALFORMED)
        case "encoding_decl":
            enc = rng.choice(["UTF-8", "utf-16", "ISO-8859-1", "bogus-enc", "UTF-32", "ascii", "EBCDIC"])
            return b(envelope(login(), prolog=f'<?xml version="1.0" encoding="{enc}"?>'), {"ok", "malformed-request"})
        case "comments_pis_cdata":
            inner = login(user=rng.choice(["<![CDATA[user00001]]>", "user<!-- c -->00001", "<?pi x?>user00001"]))
            return b(envelope("<!-- c -->" + inner + "<?pi?>", prolog="<!-- head -->"), {"ok"})
        case "action_mismatch":
            return b(envelope(login()), MALFORMED, action=rng.choice(["urn:cisco:epas:soap/logout", "x", " "]))
        case "action_match":
            return b(envelope(login()), {"ok"}, action="urn:cisco:epas:soap/login")
        case "mutated":
            data = mutate(envelope(login(), "K-1"), rng, rng.randrange(1, 5))
            return b(data, {"ok", "malformed-request", "unknown-operation", "version-mismatch"})
        case "trailing_garbage":
            return b(envelope(login()) + rng.choice([b"<x/>", b"garbage", b"<!DOCTYPE x>"]), MALFORMED)
        case "empty":
            return b(rng.choice([b"", b"   ", b"\n"]), MALFORMED)
        case "many_attributes":
            attrs = "".join(f' a{i}="{i}"' for i in range(rng.randrange(100, 3000)))
            return b(envelope(login(attrs=attrs)), {"ok"})
        case "namespace_tricks":
            data = rng.choice([
                envelope(login()).replace(b'xmlns:epas="urn:cisco:epas:soap"', b'xmlns:epas="urn:cisco:epas:soap "'),
                envelope(login()).replace(b"<env:Body>", b'<env:Body xmlns:epas="urn:other">'),
                envelope(login()).replace(b'xmlns:env=', b'xmlns:xml="urn:x" xmlns:env='),
                envelope(login()).replace(b"<epas:login", b"<undeclared:login"),
            ])
            return b(data, {"unknown-operation", "malformed-request"})
    raise ValueError(kind)


def body_cases() -> st.SearchStrategy[tuple[str, int]]:
    return st.tuples(st.sampled_from(BODY_KINDS), st.integers(0, 2**31))


#: Content-Type header values (None: no header; a tuple: the header twice).
CONTENT_TYPES: tuple[object, ...] = (
    "application/soap+xml; charset=utf-8",
    "application/soap+xml; charset=utf-8; action=\"urn:cisco:epas:soap/login\"",
    "application/soap+xml; action=\"urn:cisco:epas:soap/logout\"",
    "application/soap+xml; action*=utf-8''%ff%fe",
    "application/soap+xml; charset=bogus",
    "APPLICATION/SOAP+XML",
    "text/xml; charset=utf-8",
    "application/xml",
    "multipart/form-data; boundary=x",
    "text/plain",
    "",
    ";;;=;",
    "application/soap+xml; action=" + "x" * 4000,
    None,
    ("application/soap+xml", "text/plain"),
    ("text/plain", "application/soap+xml"),
)

RAW_HTTP_KINDS = (
    "bad_request_line", "http09", "bad_header", "dup_content_length", "cl_and_te", "bad_chunk", "huge_header",
    "many_headers", "short_body", "garbage", "absolute_uri", "pipelined", "bad_method", "negative_length",
    "expect_continue", "nul_in_header",
)


def raw_http(kind: str, seed: int, path: str) -> bytes:
    """A raw HTTP/1.1 request of ``kind`` to ``path`` (may be malformed on purpose)."""
    rng = random.Random(seed)
    soap = envelope(login())
    ct = b"Content-Type: application/soap+xml\r\n"

    def req(head: bytes, data: bytes = soap) -> bytes:
        return b"POST " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" + head + b"\r\n" + data

    match kind:
        case "bad_request_line":
            return rng.choice([b"POST\r\n\r\n", b"POST  HTTP/1.1\r\n\r\n", b"POST / HTTP/9.9\r\n\r\n", b"\r\n\r\n"])
        case "http09":
            return b"GET " + path.encode() + b"\r\n"
        case "bad_header":
            return req(ct + rng.choice([b"No-Colon\r\n", b": empty-name\r\n", b"Sp ace: x\r\n", b"X:\x01\r\n"]))
        case "dup_content_length":
            return req(ct + f"Content-Length: {len(soap)}\r\nContent-Length: {len(soap) + 5}\r\n".encode())
        case "cl_and_te":
            return req(ct + f"Content-Length: {len(soap)}\r\nTransfer-Encoding: chunked\r\n".encode())
        case "bad_chunk":
            return req(ct + b"Transfer-Encoding: chunked\r\n", rng.choice([b"zz\r\nabc\r\n0\r\n\r\n", b"5\r\nabc", b"-1\r\n\r\n",
                                                                          b"ffffffffffffffffff\r\n"]))
        case "huge_header":
            return req(ct + b"X-Big: " + b"a" * rng.randrange(9000, 70_000) + b"\r\n")
        case "many_headers":
            return req(ct + b"".join(f"X-{i}: {i}\r\n".encode() for i in range(rng.randrange(100, 500))))
        case "short_body":
            return req(ct + f"Content-Length: {len(soap) + 100}\r\n".encode())
        case "garbage":
            return rng.randbytes(rng.randrange(1, 500)) + b"\r\n\r\n"
        case "absolute_uri":
            return b"POST http://evil.test" + path.encode() + b" HTTP/1.1\r\nHost: evil.test\r\n" + ct + \
                f"Content-Length: {len(soap)}\r\n\r\n".encode() + soap
        case "pipelined":
            one = req(ct + f"Content-Length: {len(soap)}\r\n".encode())
            return one * rng.randrange(2, 5) + b"GARBAGE\r\n\r\n"
        case "bad_method":
            return b"FR0B " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n"
        case "negative_length":
            return req(ct + b"Content-Length: -5\r\n")
        case "expect_continue":
            return req(ct + f"Expect: 100-continue\r\nContent-Length: {len(soap)}\r\n".encode())
        case "nul_in_header":
            return req(b"Content-Type: application/soap+xml\x00evil\r\n" + f"Content-Length: {len(soap)}\r\n".encode())
    raise ValueError(kind)
