"""Login Datastore: sessions, OTPs, lifetimes on an injected clock, replication by deltas."""

from __future__ import annotations

import json

import pytest

from mock_server.datastore import KEEP_PER_USER, Delta, DeltaFormatError, DeltaKind, LoginDatastore


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def pair(**kwargs: object) -> tuple[LoginDatastore, LoginDatastore, list[Delta], Clock]:
    """Two nodes A and B; A's deltas are collected (as the peer link would ship them)."""
    clock = Clock()
    shipped: list[Delta] = []
    a = LoginDatastore(node="A", clock=clock, on_delta=shipped.append, **kwargs)  # type: ignore[arg-type]
    b = LoginDatastore(node="B", clock=clock, **kwargs)  # type: ignore[arg-type]
    return a, b, shipped, clock


def ship(shipped: list[Delta], to: LoginDatastore) -> None:
    """Send every delta through JSON, as the peer link does, and apply it."""
    for delta in shipped:
        to.apply(Delta.from_dict(json.loads(json.dumps(delta.to_dict()))))
    shipped.clear()


def test_otp_issued_on_a_is_accepted_on_b_after_replication() -> None:
    a, b, shipped, _ = pair()
    otp = a.issue_otp("user00001")
    assert [d.kind for d in shipped] == [DeltaKind.OTP_ISSUED]
    assert not b.check_otp("user00001", otp)
    ship(shipped, b)
    assert b.check_otp("user00001", otp)
    assert a.check_otp("user00001", otp)
    assert b.check_otp("user00001", otp), "reusable by default: the backup accepts an OTP used at home"


def test_replayed_otp_for_another_user_is_refused() -> None:
    a, b, shipped, _ = pair()
    otp = a.issue_otp("user00001")
    a.issue_otp("user00002")
    ship(shipped, b)
    for store in (a, b):
        assert not store.check_otp("user00002", otp)
        assert not store.check_otp("nobody", otp)
        assert store.check_otp("user00001", otp)
        assert not store.check_otp("user00001", otp + "x")


def test_otp_expires_after_its_lifetime() -> None:
    a, b, shipped, clock = pair(otp_lifetime_s=30.0)
    otp = a.issue_otp("u")
    ship(shipped, b)
    clock.now += 29.9
    assert a.check_otp("u", otp) and b.check_otp("u", otp)
    clock.now += 0.1
    assert not a.check_otp("u", otp) and not b.check_otp("u", otp)
    assert a.otp_count == 0 and b.otp_count == 0


def test_single_use_otp_is_consumed_and_the_use_replicated() -> None:
    a, b, shipped, _ = pair(otp_single_use=True)
    otp = a.issue_otp("u")
    ship(shipped, b)
    assert b.check_otp("u", otp)
    assert not b.check_otp("u", otp)
    assert shipped == []  # B has no on_delta: nothing recorded on A's list
    b.on_delta = shipped.append
    otp2 = a.issue_otp("u")
    ship(shipped, b)
    assert b.check_otp("u", otp2)
    assert [d.kind for d in shipped] == [DeltaKind.OTP_USED]
    ship(shipped, a)
    assert not a.check_otp("u", otp2)


def test_sessions_replicate_expire_and_drop() -> None:
    a, b, shipped, clock = pair(session_lifetime_s=60.0)
    key = a.issue_session_key("user00001")
    other = a.issue_session_key("user00002")
    assert key != other and len(key) >= 32
    ship(shipped, b)
    assert b.user_for_session(key) == "user00001"
    assert b.drop_session(key) is True
    assert b.user_for_session(key) is None
    assert a.drop_session(key) is True
    assert [d.kind for d in shipped] == [DeltaKind.SESSION_DROPPED]
    assert a.drop_session(key) is False
    clock.now += 60.0
    assert a.user_for_session(other) is None and b.user_for_session(other) is None


def test_apply_never_echoes() -> None:
    a, b, shipped, _ = pair()
    echoed: list[Delta] = []
    b.on_delta = echoed.append
    a.issue_session_key("u")
    a.issue_otp("u")
    ship(shipped, b)
    assert echoed == []
    assert b.session_count == 1 and b.otp_count == 1


def test_snapshot_resyncs_a_fresh_peer_without_expired_entries() -> None:
    a, _, shipped, clock = pair(otp_lifetime_s=10.0, session_lifetime_s=None)
    key = a.issue_session_key("u1")
    old = a.issue_otp("u1")
    clock.now += 9.0
    new = a.issue_otp("u2")
    clock.now += 2.0
    fresh = LoginDatastore(node="C", clock=clock)
    for delta in a.snapshot():
        fresh.apply(delta)
    assert fresh.user_for_session(key) == "u1"
    assert fresh.check_otp("u2", new)
    assert not fresh.check_otp("u1", old)
    assert fresh.otp_count == 1 and fresh.session_count == 1


def test_purge_expired_counts() -> None:
    a, _, _, clock = pair(otp_lifetime_s=5.0, session_lifetime_s=5.0)
    a.issue_session_key("u")
    a.issue_otp("u")
    a.issue_otp("v")
    clock.now += 5.0
    assert a.purge_expired() == 3
    assert a.session_count == 0 and a.otp_count == 0


def test_delta_round_trip_and_repr_hides_secret() -> None:
    delta = Delta(kind=DeltaKind.OTP_ISSUED, user="u", secret="s3cret", expires_ts=12.5, issued_ts=2.5)
    assert delta.to_dict() == {"kind": "otp-issued", "user": "u", "secret": "s3cret", "expires_ts": 12.5,
                               "issued_ts": 2.5}
    assert Delta.from_dict(delta.to_dict()) == delta
    older = {"kind": "otp-issued", "user": "u", "secret": "s3cret", "expires_ts": 12.5}  # a frame without it
    assert Delta.from_dict(older).issued_ts is None
    assert "s3cret" not in repr(delta)


@pytest.mark.parametrize(
    "data",
    [
        [],
        {"kind": "bogus", "user": "u", "secret": "s"},
        {"user": "u", "secret": "s"},
        {"kind": "otp-issued", "user": 1, "secret": "s"},
        {"kind": "otp-issued", "user": "u", "secret": "s", "expires_ts": "soon"},
        {"kind": "otp-issued", "user": "u", "secret": "s", "expires_ts": True},
        {"kind": "otp-issued", "user": "u", "secret": "s", "issued_ts": "then"},
        {"kind": "otp-issued", "user": "", "secret": "s"},
    ],
)
def test_bad_delta_frames_raise_delta_format_error(data: object) -> None:
    with pytest.raises(DeltaFormatError) as info:
        Delta.from_dict(data)
    assert info.value.data == data


def test_lifetimes_are_checked() -> None:
    with pytest.raises(ValueError):
        LoginDatastore(otp_lifetime_s=0)
    with pytest.raises(ValueError):
        LoginDatastore(session_lifetime_s=-1)


def test_each_user_keeps_only_its_latest_keys_and_otps_on_both_nodes() -> None:
    a, b, shipped, clock = pair(otp_lifetime_s=3600.0)
    keys, otps = [], []
    for login in range(KEEP_PER_USER + 3):  # seven re-logins of one user in a long soak
        clock.now += 60.0
        keys.append(a.issue_session_key("user00001"))
        otps.append(a.issue_otp("user00001"))
        a.issue_session_key(f"other{login}")
    ship(shipped, b)
    for store in (a, b):
        assert store.session_count == KEEP_PER_USER + (KEEP_PER_USER + 3)  # user00001's four + one per other
        assert store.otp_count == KEEP_PER_USER
        assert [store.user_for_session(k) for k in keys] == [None] * 3 + ["user00001"] * KEEP_PER_USER
        assert [store.check_otp("user00001", o) for o in otps] == [False] * 3 + [True] * KEEP_PER_USER


def test_a_dropped_key_frees_its_place_and_keys_do_not_expire_by_default() -> None:
    a, b, shipped, clock = pair()
    first = a.issue_session_key("user00001")
    second = a.issue_session_key("user00001")
    assert a.drop_session(first)
    more = [a.issue_session_key("user00001") for _ in range(KEEP_PER_USER - 1)]  # fills the freed place
    ship(shipped, b)
    clock.now += 8 * 3600.0  # an 8-hour soak: the key of the first login is still good at logout
    for store in (a, b):
        assert store.user_for_session(first) is None
        assert [store.user_for_session(k) for k in (second, *more)] == ["user00001"] * KEEP_PER_USER
        assert store.session_count == KEEP_PER_USER
    assert a.drop_session(second) and a.session_count == KEEP_PER_USER - 1


def test_both_nodes_keep_the_latest_issued_whatever_the_order_of_arrival() -> None:
    """A partition: B issues keys and OTPs, then A issues later ones; healed, each side's snapshot reaches
    the other after its own issues. Both keep the latest issued (A's), whatever arrived last."""
    a, b, to_b, clock = pair(otp_lifetime_s=3600.0)
    to_a: list[Delta] = []
    b.on_delta = to_a.append
    older_keys, older_otps, newer_keys, newer_otps = [], [], [], []
    for _ in range(KEEP_PER_USER):
        clock.now += 10.0
        older_keys.append(b.issue_session_key("user00001"))
        older_otps.append(b.issue_otp("user00001"))
    for _ in range(KEEP_PER_USER):
        clock.now += 10.0
        newer_keys.append(a.issue_session_key("user00001"))
        newer_otps.append(a.issue_otp("user00001"))
    to_a.clear(), to_b.clear()
    for delta in list(b.snapshot()):  # B's older entries reach A after A's own
        a.apply(delta)
    for delta in list(a.snapshot()):  # A's newer entries reach B after B's own
        b.apply(delta)
    for store in (a, b):
        assert [store.user_for_session(k) for k in older_keys + newer_keys] == [None] * KEEP_PER_USER + [
            "user00001"] * KEEP_PER_USER
        assert [store.check_otp("user00001", o) for o in older_otps + newer_otps] == [False] * KEEP_PER_USER + [
            True] * KEEP_PER_USER


def test_an_expired_issue_from_the_peer_pushes_no_live_entry_out() -> None:
    a, _, _, clock = pair(otp_lifetime_s=600.0, session_lifetime_s=600.0)
    live_keys = [a.issue_session_key("user00001") for _ in range(KEEP_PER_USER)]
    live_otps = [a.issue_otp("user00001") for _ in range(KEEP_PER_USER)]
    stale = clock.now - 1.0  # queued past its lifetime while the link was down
    a.apply(Delta(kind=DeltaKind.SESSION_ISSUED, user="user00001", secret="old-key", expires_ts=stale,
                  issued_ts=stale - 600))
    a.apply(Delta(kind=DeltaKind.OTP_ISSUED, user="user00001", secret="old-otp", expires_ts=stale,
                  issued_ts=stale - 600))
    assert [a.user_for_session(k) for k in live_keys] == ["user00001"] * KEEP_PER_USER
    assert all(a.check_otp("user00001", o) for o in live_otps)
    assert a.user_for_session("old-key") is None and not a.check_otp("user00001", "old-otp")
