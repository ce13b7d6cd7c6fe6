"""What the mock's c2s stream sends, against the golden fragments in tests/data/xmpp/ (canonical XML)."""

from __future__ import annotations

from pathlib import Path

from lxml import etree

from mock_server.xmpp.backend import NodeRef
from mock_server.xmpp.events import StreamCondition
from mock_server.xmpp.wire import C2sStream, WireSettings

GOLDEN = Path(__file__).resolve().parents[2] / "data" / "xmpp"
HEADER = (b"<?xml version='1.0'?><stream:stream to='example.test' xmlns='jabber:client'"
          b" xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>")
STREAM_NS = b"xmlns:stream='http://etherx.jabber.org/streams'"


def c14n(fragment: bytes) -> str:
    return str(etree.canonicalize(etree.fromstring(fragment), strip_text=True))


def fragment(out: bytes, tag: bytes) -> bytes:
    """Cut ``<stream:TAG>...</stream:TAG>`` out of a stream and declare the stream prefix on it."""
    start = out.index(b"<stream:" + tag)
    end = out.index(b"</stream:" + tag + b">") + len(b"</stream:" + tag + b">")
    piece = out[start:end]
    return piece.replace(b"<stream:" + tag, b"<stream:" + tag + b" " + STREAM_NS, 1)


def golden(name: str) -> str:
    return c14n((GOLDEN / name).read_bytes())


def test_pre_auth_features() -> None:
    s = C2sStream(WireSettings(domain="example.test", tls_available=True))
    s.feed(HEADER)
    out = s.accept_stream(["imp1.example.test", "imp2.example.test"])
    assert c14n(fragment(out, b"features")) == golden("features_preauth.xml")


def test_bind_features_and_stream_errors() -> None:
    s = C2sStream(WireSettings(domain="example.test"))
    s.feed(HEADER)
    s.accept_stream()
    s.feed(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHB3</auth>")
    s.auth_success("alice")
    s.feed(HEADER)
    assert c14n(fragment(s.accept_stream(), b"features")) == golden("features_bind.xml")
    ref = NodeRef(name="imp2.example.test", xmpp_host="127.0.0.1", xmpp_port=5223)
    out = s.stream_error(StreamCondition.SEE_OTHER_HOST, ref.see_other_host_text)
    assert c14n(fragment(out, b"error")) == golden("stream_error_see_other_host.xml")
    s2 = C2sStream(WireSettings(domain="example.test"))
    s2.feed(HEADER)
    s2.accept_stream()
    out = s2.stream_error(StreamCondition.SYSTEM_SHUTDOWN, "services stopped")
    assert c14n(fragment(out, b"error")) == golden("stream_error_system_shutdown.xml")
