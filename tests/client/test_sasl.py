"""SASLprep's printable-ASCII shortcut (jabberemu.xmpp.sasl) against slixmpp's own profile."""

from __future__ import annotations

import pytest
import slixmpp.util.sasl.client as sasl_client
from hypothesis import given, settings
from hypothesis import strategies as st
from slixmpp.util.stringprep_profiles import StringPrepError

from jabberemu.xmpp import sasl

SLOW = sasl._STRINGPREP_SASLPREP


def _outcome(fn, data):  # type: ignore[no-untyped-def]
    try:
        return ("ok", fn(data))
    except StringPrepError:
        return ("refused", None)


def test_slixmpp_choose_uses_the_shortcut_and_prepares_as_before() -> None:
    assert sasl_client.saslprep is sasl.saslprep and SLOW is not sasl.saslprep

    def chosen(user: str, password: str) -> dict[str, bytes]:
        mech = sasl_client.choose(["PLAIN"], lambda _req, _opt: {"username": user, "password": password},
                                  lambda _s: {"encrypted": True, "encrypted_plain": True, "unencrypted_plain": True})
        return dict(mech.credentials)

    assert chosen("user00001", "p@ss w0rd") == {"username": b"user00001", "password": b"p@ss w0rd", "authzid": b""}
    # non-ASCII goes through slixmpp's profile: a no-break space is mapped to SPACE (RFC 4013 2.1)
    assert chosen("us\u00a0er", "caf\u00e9")["username"] == b"us er"
    assert chosen("us\u00a0er", "caf\u00e9")["password"] == "caf\u00e9".encode()


def test_a_query_and_bytes_go_through_slixmpps_profile() -> None:
    assert _outcome(lambda t: sasl.saslprep(t, True), "user00001") == _outcome(lambda t: SLOW(t, True), "user00001")
    assert _outcome(lambda t: sasl.saslprep(t, True), "user00001")[0] == "refused"  # slixmpp refuses any query
    assert sasl.saslprep(b"user00001") == SLOW(b"user00001") == "user00001"


@pytest.mark.parametrize("text", ["user00001", "p@ss w0rd!~", "", " ", "a\x7f", "tab\tx", "nul\x00",
                                  "caf\u00e9", "\u00a0nbsp", "soft\u00adhyphen", "\u05d0\u05d1", "\ufb01x",
                                  "I\u2163"])
def test_known_texts_prepare_as_slixmpp_prepares_them(text: str) -> None:
    assert _outcome(sasl.saslprep, text) == _outcome(SLOW, text)


def test_printable_ascii_is_returned_as_is_and_controls_still_refused() -> None:
    assert sasl.saslprep("user00001") == "user00001"
    assert _outcome(sasl.saslprep, "a\x7f") == ("refused", None)
    assert sasl.saslprep("\u00a0x") == " x"  # non-ASCII space mapped to SPACE (RFC 4013 2.1), by slixmpp


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=24) | st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x7f), max_size=24))
def test_any_text_prepares_as_slixmpp_prepares_it(text: str) -> None:
    assert _outcome(sasl.saslprep, text) == _outcome(SLOW, text)
