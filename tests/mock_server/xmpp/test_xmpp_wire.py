"""xmpp_wire / xmpp_xml alone: bytes in, events and bytes out, no sockets, no event loop."""

from __future__ import annotations

import base64
import itertools

import pytest

from mock_server.xmpp.backend import LocalBackend, NodeRef, RosterItem
from mock_server.xmpp.events import (
    AuthRequested, DataOut, IqResponse, PresenceBroadcast, Routed, RosterRequested, SaslCondition, SaslMechanism,
    SessionBound, StanzaKind, StartTlsRequested, StreamClosed, StreamCondition, StreamErrorSent, StreamOpened,
    WireInput, WireState, WireStateError, next_state,
)
from mock_server.xmpp.jid import split_jid
from mock_server.xmpp.wire import C2sStream, WireSettings
from mock_server.xmpp.xml import ParseLimits, StanzaItem, StreamParser, XmlViolation, restamp, serialize

HEADER = (b"<?xml version='1.0'?><stream:stream to='example.test' xmlns='jabber:client'"
          b" xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>")
SASL = "urn:ietf:params:xml:ns:xmpp-sasl"


def stream(**kw: object) -> C2sStream:
    ids = itertools.count(1)
    return C2sStream(WireSettings(domain="example.test", **kw), id_factory=lambda: f"id{next(ids)}")  # type: ignore[arg-type]


def plain(user: str, pw: str, authzid: str = "") -> bytes:
    p = base64.b64encode(f"{authzid}\0{user}\0{pw}".encode()).decode()
    return f"<auth xmlns='{SASL}' mechanism='PLAIN'>{p}</auth>".encode()


def bound(user: str = "alice") -> C2sStream:
    s = stream()
    s.feed(HEADER)
    s.accept_stream()
    (ev,) = s.feed(plain(user, "pw"))
    assert isinstance(ev, AuthRequested)
    s.auth_success(ev.user)
    s.feed(HEADER)
    s.accept_stream()
    s.feed(b"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq>")
    assert s.state is WireState.ESTABLISHED
    return s


def test_full_login_bytes() -> None:
    s = stream()
    assert s.feed(HEADER[:20]) == []
    assert s.feed(HEADER[20:]) == [StreamOpened(secured=False, authenticated=False)]
    assert s.accept_stream(["imp1", "imp2"]) == (
        b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'"
        b" id='id1' from='example.test' version='1.0' xml:lang='en'><stream:features>"
        b"<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism>"
        b"<mechanism>CISCO-VTG-TOKEN</mechanism><hostname xmlns='urn:xmpp:domain-based-name:0'>imp1</hostname>"
        b"<hostname xmlns='urn:xmpp:domain-based-name:0'>imp2</hostname></mechanisms></stream:features>")
    (ev,) = s.feed(plain("Alice@Example.test", "secret"))
    assert ev == AuthRequested(mechanism=SaslMechanism.PLAIN, user="alice", secret="secret")
    assert "secret" not in repr(ev)
    assert s.auth_success("alice") == f"<success xmlns='{SASL}'/>".encode()
    assert s.state is WireState.AWAIT_RESTART
    assert s.feed(HEADER) == [StreamOpened(secured=False, authenticated=True)]
    assert s.accept_stream().endswith(
        b"<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/><session "
        b"xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/></session></stream:features>")
    evs = s.feed(b"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
    assert evs == [
        DataOut(data=b"<iq type='result' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                     b"<jid>alice@example.test/id3</jid></bind></iq>"),
        SessionBound(full_jid="alice@example.test/id3", resource="id3"),
    ]
    assert s.feed(b"<iq type='set' id='s'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>") == [
        DataOut(data=b"<iq type='result' id='s'/>")]
    assert s.feed(b"</stream:stream>") == [StreamClosed()]
    assert s.close() == b"</stream:stream>"
    assert s.closed and s.feed(b"<more/>") == []


def test_cisco_token_payload() -> None:
    s = stream()
    s.feed(HEADER)
    s.accept_stream()
    payload = base64.b64encode(b"userid=bob@example.test\0token=otp-9").decode()
    (ev,) = s.feed(f"<auth xmlns='{SASL}' mechanism='CISCO-VTG-TOKEN'>{payload}</auth>".encode())
    assert ev == AuthRequested(mechanism=SaslMechanism.CISCO_VTG_TOKEN, user="bob", secret="otp-9")


@pytest.mark.parametrize(("auth", "condition"), [
    (plain("bob@other.test", "pw"), "not-authorized"),
    (plain("bob", "pw", authzid="carol@example.test"), "invalid-authzid"),
    (f"<auth xmlns='{SASL}' mechanism='PLAIN'>{base64.b64encode(b'x').decode()}</auth>".encode(), "malformed-request"),
    (f"<auth xmlns='{SASL}' mechanism='X-OAUTH'>AAAA</auth>".encode(), "invalid-mechanism"),
    (f"<auth xmlns='{SASL}' mechanism='PLAIN'>%%%</auth>".encode(), "incorrect-encoding"),
    (f"<auth xmlns='{SASL}' mechanism='PLAIN'>{base64.b64encode(bytes([0, 0xff, 0, 0x41])).decode()}</auth>".encode(),
     "malformed-request"),
])
def test_sasl_failures_by_the_wire(auth: bytes, condition: str) -> None:
    s = stream()
    s.feed(HEADER)
    s.accept_stream()
    assert s.feed(auth) == [DataOut(data=f"<failure xmlns='{SASL}'><{condition}/></failure>".encode())]
    assert s.state is WireState.NEGOTIATING


def test_sasl_without_initial_response_gets_empty_challenge() -> None:
    s = stream()
    s.feed(HEADER)
    s.accept_stream()
    assert s.feed(f"<auth xmlns='{SASL}' mechanism='PLAIN'/>".encode()) == [
        DataOut(data=f"<challenge xmlns='{SASL}'/>".encode())]
    payload = base64.b64encode(b"\0bob\0pw").decode()
    (ev,) = s.feed(f"<response xmlns='{SASL}'>{payload}</response>".encode())
    assert ev == AuthRequested(mechanism=SaslMechanism.PLAIN, user="bob", secret="pw")


def test_too_many_auth_failures_close_the_stream() -> None:
    s = stream(max_auth_attempts=2)
    s.feed(HEADER)
    s.accept_stream()
    (ev,) = s.feed(plain("bob", "bad"))
    assert s.auth_failure(SaslCondition.NOT_AUTHORIZED) == f"<failure xmlns='{SASL}'><not-authorized/></failure>".encode()
    s.feed(plain("bob", "bad"))
    out = s.auth_failure(SaslCondition.NOT_AUTHORIZED)
    assert out.endswith(b"<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text "
                        b"xmlns='urn:ietf:params:xml:ns:xmpp-streams' xml:lang='en'>too many authentication failures"
                        b"</text></stream:error></stream:stream>")
    assert s.closed


def test_starttls_resets_the_parser() -> None:
    s = stream(tls_available=True)
    s.feed(HEADER)
    assert b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'></starttls><mechanisms" in s.accept_stream()
    assert s.feed(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>") == [StartTlsRequested()]
    assert s.proceed_tls() == b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
    assert s.feed(HEADER) == [StreamOpened(secured=True, authenticated=False)]
    assert b"starttls" not in s.accept_stream()


def test_tls_required_offers_no_sasl_before_tls() -> None:
    s = stream(tls_available=True, tls_required=True)
    s.feed(HEADER)
    assert s.accept_stream().endswith(
        b"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>")


def test_stanzas_routed_with_stamped_from() -> None:
    s = bound()
    evs = s.feed(b"<message from='mallory@x' to='Bob@Example.TEST/home' id='m1' type='chat' xml:lang='fr'>"
                 b"<body>a &amp; b</body></message><presence/><presence type='unavailable'/>"
                 b"<iq type='get' id='q' to='bob@example.test/home'><query xmlns='jabber:iq:version'/></iq>")
    assert evs == [
        Routed(kind=StanzaKind.MESSAGE, to_jid="bob@example.test/home", stanza_type="chat", stanza_id="m1",
               stanza=b"<message from='alice@example.test/r' to='Bob@Example.TEST/home' id='m1' type='chat'"
                      b" xml:lang='fr'><body>a &amp; b</body></message>"),
        PresenceBroadcast(available=True, stanza=b"<presence from='alice@example.test/r'/>"),
        PresenceBroadcast(available=False, stanza=b"<presence from='alice@example.test/r' type='unavailable'/>"),
        Routed(kind=StanzaKind.IQ, to_jid="bob@example.test/home", stanza_type="get", stanza_id="q",
               stanza=b"<iq from='alice@example.test/r' type='get' id='q' to='bob@example.test/home'>"
                      b"<query xmlns='jabber:iq:version'/></iq>"),
    ]
    assert s.bounce(evs[0]) == (b"<message type='error' from='bob@example.test/home' to='alice@example.test/r' id='m1'>"
                                b"<error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
                                b"</error></message>")
    presence = Routed(kind=StanzaKind.PRESENCE, to_jid="bob@example.test", stanza_type="subscribe", stanza_id=None,
                      stanza=b"<presence/>")
    assert s.bounce(presence) == b""  # presence is never bounced


def test_server_iqs() -> None:
    s = bound()
    assert s.feed(b"<iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>") == [RosterRequested(iq_id="r")]
    assert s.roster_result("r", [RosterItem(jid="bob@example.test", name="Bob <B>", groups=("Team",))]) == (
        b"<iq type='result' id='r' to='alice@example.test/r'><query xmlns='jabber:iq:roster'>"
        b"<item jid='bob@example.test' name='Bob &lt;B&gt;' subscription='both'><group>Team</group></item></query></iq>")
    assert s.feed(b"<iq type='get' id='p' to='example.test'><ping xmlns='urn:xmpp:ping'/></iq>") == [
        DataOut(data=b"<iq type='result' id='p' from='example.test'/>")]
    assert s.feed(b"<iq type='get' id='v'><query xmlns='jabber:iq:version'/></iq>") == [
        DataOut(data=b"<iq type='error' id='v'><error type='cancel'><service-unavailable "
                     b"xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")]
    assert s.ping("s1") == (b"<iq type='get' id='s1' from='example.test' to='alice@example.test/r'>"
                            b"<ping xmlns='urn:xmpp:ping'/></iq>")
    assert s.feed(b"<iq type='result' id='s1' from='alice@example.test/r' to='example.test'/>") == [
        IqResponse(iq_id="s1", ok=True)]


def test_stream_error_before_header_sends_header_first() -> None:
    s = stream()
    evs = s.feed(b"<<<garbage")
    assert isinstance(evs[0], DataOut) and evs[0].data.startswith(b"<?xml version='1.0'?><stream:stream ")
    assert b"<stream:error><not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>" in evs[0].data
    assert evs[1] == StreamErrorSent(condition=StreamCondition.NOT_WELL_FORMED, text=evs[1].text)  # type: ignore[union-attr]
    assert s.closed and s.auth_success("x") == b"" and s.stream_error(StreamCondition.CONFLICT) == b""


def test_see_other_host_text_is_the_element_content() -> None:
    s = bound()
    ref = NodeRef(name="imp2", xmpp_host="::1", xmpp_port=5223)
    assert s.stream_error(StreamCondition.SEE_OTHER_HOST, ref.see_other_host_text) == (
        b"<stream:error><see-other-host xmlns='urn:ietf:params:xml:ns:xmpp-streams'>[::1]:5223</see-other-host>"
        b"</stream:error></stream:stream>")


def test_pipelined_stanza_before_auth_answer_is_policy_violation() -> None:
    s = stream()
    s.feed(HEADER)
    s.accept_stream()
    evs = s.feed(plain("bob", "pw") + b"<presence/>")
    assert isinstance(evs[0], AuthRequested)
    assert evs[-1] == StreamErrorSent(condition=StreamCondition.POLICY_VIOLATION,
                                      text="{jabber:client}presence sent before the server answered")
    assert s.auth_success("bob") == b""  # stream already closed: nothing to send


def test_state_table_refuses_unknown_transitions() -> None:
    assert next_state(WireState.BINDING, WireInput.BIND) is WireState.ESTABLISHED
    with pytest.raises(WireStateError) as info:
        next_state(WireState.ESTABLISHED, WireInput.AUTH)
    assert info.value.state is WireState.ESTABLISHED and info.value.action == "AUTH"
    s = stream()
    with pytest.raises(WireStateError):
        s.auth_success("alice")


def test_raw_bytes_and_restamp() -> None:
    p = StreamParser()
    p.feed(HEADER)
    items = p.feed(b"  <presence a='&gt;/&quot;' from=\"x\"\n to='y'/>\n<message><b>1</b>t</message>")
    assert [i.raw for i in items if isinstance(i, StanzaItem)] == [
        b"<presence a='&gt;/&quot;' from=\"x\"\n to='y'/>", b"<message><b>1</b>t</message>"]
    assert restamp(b"<presence a='from=x' from=\"x\"\n to='y'/>", from_jid="me@d/r", to_jid="o'k@d") == (
        b"<presence from='me@d/r' to='o&apos;k@d' a='from=x'/>")


def test_serializer_writes_xml_lang_not_clark_names() -> None:
    s = stream()
    s.feed(HEADER.replace(b" version='1.0'>", b" xmlns:x='urn:x' version='1.0'>"))  # extra prefix: no raw forwarding
    s.accept_stream()
    (ev,) = s.feed(plain("alice", "pw"))
    s.auth_success("alice")
    s.feed(HEADER.replace(b" version='1.0'>", b" xmlns:x='urn:x' version='1.0'>"))
    s.accept_stream()
    s.feed(b"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq>")
    (ev,) = s.feed(b"<message to='bob@example.test' xml:lang='de' x:hint='1'><x:extra/></message>")
    assert isinstance(ev, Routed)
    assert ev.stanza == (b"<message to='bob@example.test' xml:lang='de' xmlns:ns0='urn:x' ns0:hint='1'"
                         b" from='alice@example.test/r'><extra xmlns='urn:x'/></message>")
    assert b"{http" not in serialize(StreamParser().feed(HEADER) and _elem(b"<m xml:lang='en'/>"))


def _elem(data: bytes):  # type: ignore[no-untyped-def]
    p = StreamParser()
    p.feed(HEADER)
    (item,) = p.feed(data)
    assert isinstance(item, StanzaItem)
    return item.element


def test_parser_memory_stays_flat_over_many_stanzas() -> None:
    p = StreamParser()
    p.feed(HEADER)
    for _ in range(2000):
        p.feed(b"<message to='b@example.test'><body>" + b"x" * 500 + b"</body></message> ")
    assert len(p._buf) < 1024


@pytest.mark.parametrize("limit", [1024, 4096])
def test_size_limit_is_enforced_without_buffering(limit: int) -> None:
    p = StreamParser(ParseLimits(max_stanza_bytes=limit))
    p.feed(HEADER)
    with pytest.raises(XmlViolation) as info:
        p.feed(b"<message><body>" + b"A" * 10 * limit)
    assert info.value.condition == "policy-violation"
    assert len(p._buf) <= limit + 16 * 1024


def test_split_jid_and_local_backend() -> None:
    assert split_jid("Bob@Example.Test/Home") == ("bob", "example.test", "Home")
    assert split_jid("example.test") == ("", "example.test", "")
    b = LocalBackend.with_users(domain="d", node_name="n", users=["a", "b", "c"], contacts_each=1)
    assert [i.jid for i in b.roster("a")] == ["b@d", "c@d"]
    assert b.check_password("a", "pass-a") and not b.check_password("a", "pass-b") and not b.check_password("z", "x")
    b.issue_token("a", "t1")
    assert b.check_token("a", "t1") and not b.check_token("b", "t1")
    with pytest.raises(ValueError):
        NodeRef(name="n", xmpp_host="h", xmpp_port=0)
