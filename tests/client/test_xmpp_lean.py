"""LeanClientXMPP: sets what slixmpp's ClientXMPP methods read, and costs less (jabberemu.xmpp.lean)."""

from __future__ import annotations

import asyncio
import gc
import ssl
import xml.etree.ElementTree as ET

import slixmpp
from slixmpp.stanza import StreamFeatures

from jabberemu.xmpp.lean import LeanClientXMPP
from jabberemu.xmpp.leanparts import LeanStreamFeatures

JID_TEXT = "user00001@example.test/jabberemu"
# attributes ClientXMPP/BaseXMPP set that the lean class leaves out on purpose
LEFT_OUT = {"roster", "client_roster", "api", "limits", "session_bind_event", "_available"}


def make_pair(loop: asyncio.AbstractEventLoop) -> tuple[LeanClientXMPP, slixmpp.ClientXMPP]:
    ctx = ssl.create_default_context()
    lean = LeanClientXMPP(JID_TEXT, "pw", sasl_mech="PLAIN", ssl_context=ctx, loop=loop, starttls=True)
    full = slixmpp.ClientXMPP(JID_TEXT, "pw", sasl_mech="PLAIN", ssl_context=ctx, loop=loop)
    return lean, full


async def test_lean_client_has_every_attribute_clientxmpp_sets() -> None:
    lean, full = make_pair(asyncio.get_running_loop())
    missing = set(vars(full)) - set(vars(lean)) - LEFT_OUT
    assert missing == set()
    for name in ("default_ns", "stream_ns", "stream_header", "stream_footer", "default_lang", "default_domain",
                 "tls_services", "starttls_services", "namespace_map", "use_message_ids", "max_redirects"):
        assert getattr(lean, name) == getattr(full, name), name
    assert str(lean.boundjid) == str(full.boundjid) == JID_TEXT
    assert lean.credentials == full.credentials == {"password": "pw"}
    assert lean.plugin["feature_mechanisms"].use_mech == "PLAIN"
    assert sorted(lean.plugin) == ["feature_bind", "feature_mechanisms", "feature_session", "feature_starttls"]
    assert [name for _order, name in lean._stream_feature_order] == ["starttls", "mechanisms", "bind", "session"]


async def test_lean_client_is_smaller() -> None:
    loop = asyncio.get_running_loop()
    ctx = ssl.create_default_context()

    def objects_per_client(make: object) -> float:
        gc.collect()
        before = len(gc.get_objects())
        kept = [make() for _ in range(20)]  # type: ignore[operator]
        gc.collect()
        per = (len(gc.get_objects()) - before) / len(kept)
        del kept
        return per

    lean = objects_per_client(lambda: LeanClientXMPP(JID_TEXT, "", sasl_mech="PLAIN", ssl_context=ctx, loop=loop,
                                                     starttls=False))
    full = objects_per_client(lambda: slixmpp.ClientXMPP(JID_TEXT, "", ssl_context=ctx, loop=loop))
    assert lean < 0.7 * full, (lean, full)


def presence(sender: str, kind: str | None = None) -> ET.Element:
    el = ET.Element("{jabber:client}presence", {"from": sender, "to": JID_TEXT})
    if kind:
        el.set("type", kind)
    return el


async def test_presence_of_others_is_tracked_from_the_xml() -> None:
    lean, _full = make_pair(asyncio.get_running_loop())
    for el in (presence("bob@example.test/a"), presence("Bob@example.test/b"), presence("carol@example.test/x"),
               presence("carol@example.test/x", "unavailable"), presence("dave@example.test/y", "subscribe")):
        lean._track_presence(lean._build_stanza(el))
    assert lean.available_resources("bob@example.test") == {"a", "b"}
    assert lean.client_roster["bob@example.test"].resources.keys() == {"a", "b"}
    assert lean.available_resources("carol@example.test") == set()
    assert lean.available_resources("dave@example.test") == set()


FEATURES_XML = (
    "<stream:features xmlns:stream='http://etherx.jabber.org/streams'>"
    "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>"
    "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>CISCO-VTG-TOKEN</mechanism>"
    "<mechanism>PLAIN</mechanism></mechanisms>"
    "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"
    "<session xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/></session>"
    "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v'/>"
    "</stream:features>"
)


async def test_parsed_stream_features_offer_what_slixmpp_parses() -> None:
    """The lean features stanza skips slixmpp's values round trip in ``setup``: same features read."""
    lean, full = make_pair(asyncio.get_running_loop())
    ours = LeanStreamFeatures(lean, ET.fromstring(FEATURES_XML))  # type: ignore[no-untyped-call]
    theirs = StreamFeatures(full, ET.fromstring(FEATURES_XML))  # type: ignore[no-untyped-call]
    assert sorted(ours["features"]) == sorted(theirs["features"]) == ["bind", "mechanisms", "session", "starttls"]
    assert ours["mechanisms"] == theirs["mechanisms"] == ["CISCO-VTG-TOKEN", "PLAIN"]
    assert list(ours.plugins) == list(theirs.plugins)
    assert [f.name for f in ours["required"]] == [f.name for f in theirs["required"]] == ["starttls", "mechanisms"]
    assert ET.tostring(ours.xml) == ET.tostring(theirs.xml)
    assert isinstance(lean._build_stanza(ET.fromstring(FEATURES_XML)), LeanStreamFeatures)
