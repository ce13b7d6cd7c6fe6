"""Fuzz corpus against the sans-IO c2s stream (``xmpp_wire`` + ``xmpp_xml``), no sockets.

Properties checked on every input (``WireDriver.check_invariants``): ``feed`` and the answers
raise nothing; the server's bytes are well-formed stream prefixes; a stream error carries a
condition of RFC 6120 §4.9.3 and closes the stream; the parser buffer never holds more than
``max_stanza_bytes``. Per target, the exact outcome is checked too.
"""

from __future__ import annotations

import base64
import random
import xml.etree.ElementTree as ET

from hypothesis import strategies as st

from fuzz_support import DOMAIN, LIMITS, WireDriver, run_corpus
from fuzz_xmpp_inputs import (
    DECL, HEADER, HEADER_KINDS, MID_KINDS, Stage, chunked, conversation, conversations, hostile, hostile_cases, mutate, mutated_cases,
    plain_auth,
)
from mock_server.xmpp.events import Routed, StreamClosed, StreamErrorSent
from mock_server.xmpp.wire import C2sStream
from xmpp_model import ACTIONS, Action, Model, classify

SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
_STATE_AT = {Stage.NEGOTIATING: "NEGOTIATING", Stage.BINDING: "BINDING", Stage.ESTABLISHED: "ESTABLISHED"}


def outcome(driver: WireDriver, out_before: int) -> str:
    """What the last input ended in (see ``fuzz_xmpp_inputs``)."""
    err = driver.error
    if err is not None:
        return err.value
    new = bytes(driver.out[out_before:])
    if driver.stream.closed:
        return "closed"
    if b"type='error'" in new:
        return "stanza-error"
    return "ok" if new else "open"


def feed_chunks(driver: WireDriver, data: bytes, rng: random.Random) -> None:
    for piece in chunked(data, rng):
        if driver.stream.closed:
            return
        driver.feed(piece)


# -- 1. hostile XML at each stage -----------------------------------------------------------------
_SEEN: set[tuple[str, Stage]] = set()


def _hostile(case: tuple[str, Stage, int, int, int]) -> None:
    kind, stage, size, seed, conv_seed = case
    _SEEN.add((kind, stage))
    frag = hostile(kind, stage, size, seed)
    rng = random.Random(seed)
    driver = WireDriver()
    if stage is not Stage.HEADER:
        conv = conversation(conv_seed, n_stanzas=0, close=False)
        for turn in conv.up_to(stage):
            feed_chunks(driver, turn, rng)
        assert driver.stream.state.name == _STATE_AT[stage], (driver.stream.state, bytes(driver.out))
    before = len(driver.out)
    feed_chunks(driver, frag.data, rng)
    driver.check_invariants()
    got = outcome(driver, before)
    assert got in frag.outcomes, (kind, stage, got, bytes(driver.out[before:])[:300])
    if got == "open":
        assert len(driver.out) == before and not driver.stream.closed


def test_hostile_xml_at_every_stage() -> None:
    """DOCTYPEs (billion laughs, XXE, parameter entities), comments, PIs, huge attributes, deep
    nesting, bad namespaces, invalid UTF-8, oversize stanzas, out-of-order stanzas, truncation."""
    _SEEN.clear()
    tried = run_corpus("xmpp_wire_hostile", hostile_cases(), _hostile)
    combos = {(k, Stage.HEADER) for k in HEADER_KINDS} | {
        (k, s) for k in MID_KINDS for s in (Stage.NEGOTIATING, Stage.BINDING, Stage.ESTABLISHED)}
    if tried >= 1000:  # the default corpus reaches every kind at every stage
        assert combos - _SEEN == set()


# -- 2. mutated valid streams -------------------------------------------------------------------
def _mutated(case: tuple[int, int, bool]) -> None:
    seed, n_ops, tls = case
    rng = random.Random(seed)
    conv = conversation(seed, tls=tls, n_stanzas=seed % 4)
    turns = list(conv.turns)
    for _ in range(rng.randrange(1, 3)):
        i = rng.randrange(len(turns))
        turns[i] = mutate(turns[i], rng, n_ops)
    driver = WireDriver(tls=tls)
    for turn in turns:
        feed_chunks(driver, turn, rng)
    driver.check_invariants()


def test_mutated_streams() -> None:
    """Valid logins with bytes flipped, tokens inserted, ranges deleted, duplicated, truncated."""
    run_corpus("xmpp_wire_mutated", mutated_cases(), _mutated)


# -- 3. SASL payloads ----------------------------------------------------------------------------
def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def sasl_attempt(kind: str, rng: random.Random) -> tuple[bytes, list[str]]:
    """One SASL exchange (one or two client elements joined) and the tokens it must produce
    (before the attempt-limit stream error the model adds)."""
    def auth(payload: str, mech: str = "PLAIN") -> bytes:
        return f"<auth xmlns='{SASL}' mechanism='{mech}'>{payload}</auth>".encode()

    user = rng.choice(["alice", "alice@example.test", "ALICE", "Alice@EXAMPLE.TEST"])
    match kind:
        case "ok_plain":
            return auth(_b64(f"\0{user}\0pass-alice".encode())), ["success"]
        case "ok_token":
            return auth(_b64(f"userid={user if '@' in user else user + '@' + DOMAIN}\0token=otp-alice-1".encode()),
                        "CISCO-VTG-TOKEN"), ["success"]
        case "wrong_password":
            return auth(_b64(f"\0{user}\0{rng.choice(['pass-bob', 'PASS-ALICE', ' pass-alice', 'x' * 300])}".encode())), ["sasl:not-authorized"]
        case "other_users_otp":
            return auth(_b64(f"userid=alice@{DOMAIN}\0token=otp-bob-1".encode()), "CISCO-VTG-TOKEN"), ["sasl:not-authorized"]
        case "otp_as_password":
            return auth(_b64(b"\0alice\0otp-alice-1")), ["sasl:not-authorized"]
        case "unknown_user":
            return auth(_b64(b"\0mallory\0pass-mallory")), ["sasl:not-authorized"]
        case "wrong_domain":
            return auth(_b64(f"\0alice@{rng.choice(['evil.test', 'example.test.evil', ''])}\0pass-alice".encode())), ["sasl:not-authorized"]
        case "token_wrong_domain":
            return auth(_b64(b"userid=alice@evil.test\0token=otp-alice-1"), "CISCO-VTG-TOKEN"), ["sasl:not-authorized"]
        case "authzid_other":
            return auth(_b64(b"bob@example.test\0alice\0pass-alice")), ["sasl:invalid-authzid"]
        case "not_base64":
            junk = rng.choice(["!!!!", "YWxp*2U=", "YQ", "====", "AAAA====", "a b c", "\u00e9\u00e9\u00e9\u00e9"])
            return auth(junk), ["sasl:incorrect-encoding"]
        case "missing_nuls":
            return auth(_b64(rng.choice([b"alicepass-alice", b"alice\0pass-alice", b"\0\0", b"\0alice\0"]))), ["sasl:malformed-request"]
        case "extra_nuls":
            return auth(_b64(b"\0alice\0pass-alice\0")), ["sasl:malformed-request"]
        case "invalid_utf8":
            return auth(_b64(b"\0alice\xff\0pass")), ["sasl:malformed-request"]
        case "token_malformed":
            return auth(_b64(rng.choice([b"alice\0otp", b"userid=alice@example.test", b"token=x\0userid=", b"\0"])),
                        "CISCO-VTG-TOKEN"), ["sasl:malformed-request"]
        case "empty_equals":
            return auth("="), ["sasl:malformed-request"]
        case "bad_mechanism":
            mech = rng.choice(["SCRAM-SHA-1", "DIGEST-MD5", "plain", "", "X-OAUTH2", "PLAIN "])
            return auth(_b64(b"\0alice\0pass-alice"), mech), ["sasl:invalid-mechanism"]
        case "overlong":
            n = rng.randrange(1000, 40_000)
            return auth(_b64(b"\0alice\0" + b"p" * n)), ["sasl:not-authorized"]
        case "challenge_ok":
            return (auth("") + f"<response xmlns='{SASL}'>{_ALICE}</response>".encode(),
                    ["challenge", "success"])
        case "challenge_bad":
            return (auth("", "CISCO-VTG-TOKEN") + f"<response xmlns='{SASL}'>%%%</response>".encode(),
                    ["challenge", "sasl:incorrect-encoding"])
        case "challenge_abort":
            return auth("") + f"<abort xmlns='{SASL}'/>".encode(), ["challenge", "sasl:aborted"]
        case "abort":
            return f"<abort xmlns='{SASL}'/>".encode(), ["sasl:aborted"]
        case "see_other_host":
            return auth(_b64(b"\0frank\0pass-frank")), ["err:see-other-host"]
        case "nobody_serves":
            return auth(_b64(b"\0gina\0pass-gina")), ["err:system-shutdown"]
    raise ValueError(kind)


_ALICE = _b64(b"\0alice\0pass-alice")
SASL_KINDS = ("ok_plain", "ok_token", "wrong_password", "other_users_otp", "otp_as_password", "unknown_user",
              "wrong_domain", "token_wrong_domain", "authzid_other", "not_base64", "missing_nuls", "extra_nuls",
              "invalid_utf8", "token_malformed", "empty_equals", "bad_mechanism", "overlong", "challenge_ok",
              "challenge_bad", "challenge_abort", "abort", "see_other_host", "nobody_serves")


def _sasl(seed: int) -> None:
    rng = random.Random(seed)
    kinds = rng.choices(SASL_KINDS, k=rng.randrange(1, 8))
    driver = WireDriver()
    driver.feed(HEADER)
    failures = 0
    for kind in kinds:
        data, expected = sasl_attempt(kind, rng)
        before = len(driver.out)
        if "challenge" in expected:  # the response is sent after the challenge arrived
            first_end = data.index(b"</auth>") + len(b"</auth>")
            feed_chunks(driver, data[:first_end], rng)
            feed_chunks(driver, data[first_end:], rng)
        else:
            feed_chunks(driver, data, rng)
        got = classify(bytes(driver.out[before:]))
        failed = any(t.startswith("sasl:") for t in expected)
        failures += failed
        if failed and failures >= 5:
            expected = expected + ["err:policy-violation"]
        assert got == expected, (kind, got, expected)
        if driver.stream.closed or "success" in expected:
            break
    driver.check_invariants()


def test_sasl_payloads() -> None:
    """Not base64, missing NULs, invalid UTF-8, overlong, wrong user@domain, other users' OTPs,
    bad mechanisms, abort, challenge round trips; the 5th failure closes the stream."""
    run_corpus("xmpp_wire_sasl", st.integers(0, 2**31), _sasl)


# -- 4. out-of-order stanzas against the reference model --------------------------------------------
_PREFIX = [Action.HEADER, Action.AUTH_OK, Action.HEADER, Action.BIND]


def _order(case: tuple[int, bool]) -> None:
    seed, tls = case
    rng = random.Random(seed)
    actions = _PREFIX[: rng.randrange(len(_PREFIX) + 1)] + [rng.choice(ACTIONS) for _ in range(rng.randrange(1, 8))]
    model = Model(tls=tls)
    driver = WireDriver(tls=tls)
    for i, action in enumerate(actions):
        if model.closed:
            break
        before = len(driver.out)
        feed_chunks(driver, action.data, rng)
        expected = model.step(action)
        got = classify(bytes(driver.out[before:]))
        assert got == expected, ([a.value for a in actions[: i + 1]], got, expected)
        assert driver.stream.closed == model.closed, [a.value for a in actions[: i + 1]]
    driver.check_invariants()


def test_out_of_order_stanzas() -> None:
    """iq before auth, bind twice, message before bind, second stream header, restart without
    auth, STARTTLS twice, SASL elements after bind, each answered as the model says."""
    run_corpus("xmpp_wire_order", st.tuples(st.integers(0, 2**31), st.booleans()), _order)


# -- 5. the same stream in any split gives the same events ----------------------------------------
def _run_split(turns: list[bytes], rng: random.Random | None, tls: bool) -> WireDriver:
    driver = WireDriver(tls=tls)
    for turn in turns:
        if driver.stream.closed:
            break
        if rng is None:
            driver.feed(turn)
        elif rng.random() < 0.1 and len(turn) < 400:
            for i in range(len(turn)):
                if not driver.stream.closed:
                    driver.feed(turn[i:i + 1])
        else:
            feed_chunks(driver, turn, rng)
    return driver


def _routed_ok(driver: WireDriver) -> None:
    """Every routed stanza is well-formed XML carrying our ``from`` (RFC 6120 §8.1.2.1)."""
    for ev in driver.events:
        if isinstance(ev, Routed):
            wrapped = (b"<w xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
                       + ev.stanza + b"</w>")
            elem = ET.fromstring(wrapped)[0]
            assert elem.get("from") == driver.stream.full_jid, ev.stanza[:200]


def _splits(case: tuple[int, bool]) -> None:
    seed, tls = case
    rng = random.Random(seed)
    turns = list(conversation(seed, tls=tls).turns)
    if rng.random() < 0.3:  # a hostile last turn: the error must not depend on the split either
        kind = rng.choice(["comment", "deep_nesting", "invalid_utf8", "oversize_stanza", "text_between",
                           "unicode_space_between", "huge_attr", "nul_char", "doctype_mid"])
        turns.append(b"<presence/>" + hostile(kind, Stage.ESTABLISHED, rng.randrange(100), seed).data)
    whole = _run_split(turns, None, tls)
    pieces = _run_split(turns, rng, tls)
    whole.check_invariants()
    pieces.check_invariants()
    _routed_ok(whole)
    assert pieces.events == whole.events
    assert bytes(pieces.out) == bytes(whole.out)
    ended = [e for e in whole.events if isinstance(e, (StreamErrorSent, StreamClosed))]
    assert len(ended) <= 1


def test_random_splits_give_the_same_events() -> None:
    """A valid stream (optionally ending in hostile bytes), each turn fed whole or cut at random
    points, byte by byte now and then: identical events and identical bytes out."""
    run_corpus("xmpp_wire_splits", conversations(), _splits)


# -- small deterministic checks of the driver itself ------------------------------------------------
def test_driver_completes_a_valid_login() -> None:
    driver = WireDriver()
    for turn in conversation(7, n_stanzas=3, close=True).turns:
        driver.feed(turn)
    driver.check_invariants()
    assert driver.stream.closed and driver.error is None
    assert bytes(driver.out).endswith(b"</stream:stream>")
    assert bytes(driver.out).count(DECL) == 2


def test_limits_are_the_defaults() -> None:
    assert (LIMITS.max_stanza_bytes, LIMITS.max_depth, LIMITS.max_attrs, LIMITS.max_attr_bytes) == (65536, 32, 64, 8192)
    assert isinstance(WireDriver().stream, C2sStream)
    assert plain_auth("a", "b").startswith(b"<auth ")
