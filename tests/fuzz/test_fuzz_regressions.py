"""Regression tests for the bugs the fuzz corpus found in the mock's protocol modules, one each,
deterministic (see docs/fuzzing.md "Found and fixed")."""

from __future__ import annotations

import base64
import time

import pytest

from fuzz_support import WireDriver
from fuzz_xmpp_inputs import HEADER, bind_iq, plain_auth
from mock_server.xmpp.events import (
    AuthRequested, PresenceBroadcast, SaslCondition, SaslMechanism, SessionBound, StreamCondition, StreamErrorSent,
    StreamOpened,
)
from mock_server.xmpp.sasl import decode_sasl
from mock_server.xmpp.xml import ParseLimits, StanzaItem, StreamParser, XmlViolation

NS_ERR = "urn:ietf:params:xml:ns:xmpp-streams"


def test_pipelined_header_and_auth_in_one_read() -> None:
    """Was: ``accept_stream`` raised WireStateError (state AUTHENTICATING), which asyncio logs as
    'protocol.data_received() call failed' and resets the client."""
    d = WireDriver()
    evs = d.feed(HEADER + plain_auth("alice", "pass-alice"))
    assert [type(e) for e in evs] == [StreamOpened, AuthRequested]
    out = bytes(d.out)
    assert out.index(b"<stream:features>") < out.index(b"<success ")
    evs = d.feed(HEADER + bind_iq("r"))
    assert [type(e).__name__ for e in evs] == ["StreamOpened", "DataOut", "SessionBound"]
    assert isinstance(evs[-1], SessionBound) and evs[-1].full_jid == "alice@example.test/r"
    assert bytes(d.out).count(b"<stream:features><bind ") == 1
    d.check_invariants()


def test_pipelined_header_and_error_keeps_header_first() -> None:
    d = WireDriver()
    d.feed(HEADER + b"<abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>" * 5)
    out = bytes(d.out)
    assert out.startswith(b"<?xml version='1.0'?><stream:stream ") and out.count(b"<stream:stream ") == 1
    assert out.count(b"<aborted/>") == 5
    assert out.endswith(f"<stream:error><policy-violation xmlns='{NS_ERR}'/><text xmlns='{NS_ERR}' xml:lang='en'>"
                        "too many authentication failures</text></stream:error></stream:stream>".encode())
    d.check_invariants()
    d2 = WireDriver()
    d2.feed(HEADER + b"</stream:stream>")
    assert bytes(d2.out).endswith(b"version='1.0' xml:lang='en'></stream:stream>")


def test_stanzas_before_a_violation_in_the_same_read_are_handled() -> None:
    """Was: a violation dropped the stanzas completed earlier in the same ``feed``, so the
    outcome depended on how TCP split the bytes."""
    d = WireDriver()
    for turn in (HEADER, plain_auth("alice", "pass-alice"), HEADER, bind_iq("r")):
        d.feed(turn)
    evs = d.feed(b"<presence/><!-- x -->")
    assert [type(e) for e in evs][0] is PresenceBroadcast
    assert evs[-1] == StreamErrorSent(condition=StreamCondition.RESTRICTED_XML, text="comments are not allowed")
    p = StreamParser()
    p.feed(HEADER)
    with pytest.raises(XmlViolation) as info:
        p.feed(b"<a/><b/>&bad;")
    assert [type(i) for i in info.value.items_before] == [StanzaItem, StanzaItem]


@pytest.mark.parametrize("space", ["\u00a0", "\u3000", "\u2028", "\x85"])
def test_unicode_spaces_between_stanzas_are_text(space: str) -> None:
    """Was accepted as whitespace (``str.strip``); XML 1.0 §2.3 S is space, tab, CR, LF only."""
    p = StreamParser()
    p.feed(HEADER)
    with pytest.raises(XmlViolation) as info:
        p.feed((space * 3).encode() + b"<a/>")
    assert (info.value.condition, info.value.detail) == ("not-well-formed", "text between stanzas")


def test_text_of_many_lines_is_linear() -> None:
    """Was O(n²): each expat text callback re-concatenated the element text (a 60 KB body of
    newlines took ~0.25 s of CPU per stanza on this machine, blocking the loop)."""
    p = StreamParser()
    p.feed(HEADER)
    body = b"\n" * 60_000
    started = time.perf_counter()
    items = []
    for _ in range(20):
        items += p.feed(b"<message><body>" + body + b"</body><x/>tail\r\n" + b"&amp;" * 1000 + b"</message>")
    elapsed_s = time.perf_counter() - started
    assert len(items) == 20
    elem = items[0].element
    assert elem[0].text == "\n" * 60_000 and elem[1].tail == "tail\n" + "&" * 1000
    assert elapsed_s < 2.5, elapsed_s  # was ~5 s for these 20 stanzas


@pytest.mark.parametrize("chunk", [1024, 16 * 1024, 1 << 20])
def test_oversize_stanza_refused_whatever_the_split(chunk: int) -> None:
    """Was: a stanza up to 16 KiB over the limit passed when it completed between two checks."""
    p = StreamParser(ParseLimits())
    p.feed(HEADER)
    data = b"<message><body>" + b"a" * 70_000 + b"</body></message>"
    with pytest.raises(XmlViolation) as info:
        for off in range(0, len(data), chunk):
            p.feed(data[off:off + chunk])
    assert info.value.condition == "policy-violation"


def test_oversize_header_refused() -> None:
    p = StreamParser(ParseLimits())
    data = HEADER.replace(b"<stream:stream", b"<stream:stream" + b" " * 70_000)
    with pytest.raises(XmlViolation) as info:
        p.feed(data)
    assert info.value.condition == "policy-violation"


@pytest.mark.parametrize("text", ["====", "AAAA====", "YR==", "YWxpY2U=="])
def test_non_canonical_base64_is_incorrect_encoding(text: str) -> None:
    """Was: ``====`` decoded to an empty payload (malformed-request); RFC 6120 §6.5.2 and
    RFC 4648 §4 make it incorrect-encoding."""
    assert decode_sasl(SaslMechanism.PLAIN, text, "example.test") is SaslCondition.INCORRECT_ENCODING
    good = base64.b64encode(b"\0alice\0pw").decode()
    assert decode_sasl(SaslMechanism.PLAIN, good, "example.test").user == "alice"


def test_atheris_entry_points_accept_any_bytes() -> None:
    """The atheris targets (run by hand, docs/fuzzing.md) stay usable without atheris."""
    from atheris_targets import cpa_one_input, xmpp_one_input

    for data in (b"", b"\x00", b"\x03<presence/><message to='bob@example.test'><body>x</body></message>",
                 b"\x01<!DOCTYPE x [<!ENTITY a 'b'>]>", b"\xff" * 64):
        xmpp_one_input(data)
        cpa_one_input(data)
