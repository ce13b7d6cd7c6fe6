"""The Login Datastore of one mock IM&P node: CPA session keys and one-time passwords (OTPs).

Cisco IM and Presence keeps CPA sessions and the one-time passwords that Jabber presents on XMPP
(SASL ``CISCO-VTG-TOKEN``) in a Login Datastore replicated between the two nodes of a Presence
Redundancy Group, so that the backup node accepts an OTP the home node issued (DOMAIN.md, "CPA SOAP
interface"; Configuration and Administration of IM and Presence Service 12.5(1), "Configure
Redundancy and High Availability"). Lifetimes and single-use are **our choice**, settable.

Bounded by the users, not by the run's length (**our choice**, issue 19): each user keeps only the
:data:`KEEP_PER_USER` most recently *issued* session keys and OTPs; an older one is forgotten when a
newer is issued or applied from the peer. Every issue carries its issue time, so both nodes keep the
same entries whatever order the deltas arrive in (a resync after a partition, a queue drained after
a restart), and nothing extra is replicated. A client presents the key and OTP of its last login, so a re-login is
never refused for it; a node soaking 2,000 users through a failover every ten minutes holds at most
``users x KEEP_PER_USER`` of each (~0.7 KiB per user and node). Session keys do not expire by default (a real CPA session lasts until
logout): an 8-hour soak's logout is not refused ``unknown-session`` for a key issued at its start.

Pure: no I/O, an injected clock (wall-clock seconds by default, so that expiry instants carried in
deltas mean the same on both node processes). Every change made locally produces a :class:`Delta`
handed to ``on_delta``; the node ships it to the peer, which calls :meth:`LoginDatastore.apply`.
Applying a delta never produces another one (no echo).
"""

from __future__ import annotations

import enum
import logging
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DEFAULT_OTP_LIFETIME_S",
    "DEFAULT_SESSION_LIFETIME_S",
    "KEEP_PER_USER",
    "DeltaKind",
    "Delta",
    "DeltaFormatError",
    "LoginDatastore",
]

logger = logging.getLogger(__name__)

#: Our choice: how long an OTP stays valid after issue (s). Long enough to cover a re-login window.
DEFAULT_OTP_LIFETIME_S = 900.0
#: Our choice: how long a CPA session key stays valid after issue (s); None: until logout or replaced.
DEFAULT_SESSION_LIFETIME_S: float | None = None
#: Our choice: session keys and OTPs kept per user (the most recent: the one a client holds and the
#: one before, for a request still in flight); older ones are forgotten. With 2 a node is full once
#: every user has signed in twice (a 60-minute soak's mock grew ~1.7 MiB per cycle with 4, until full).
KEEP_PER_USER = 2

_KEY_BYTES = 24
_OTP_BYTES = 18


class DeltaKind(enum.Enum):
    """What changed in a Login Datastore."""

    SESSION_ISSUED = "session-issued"
    SESSION_DROPPED = "session-dropped"
    OTP_ISSUED = "otp-issued"
    OTP_USED = "otp-used"


class DeltaFormatError(ValueError):
    """A replication frame does not decode to a :class:`Delta`. Attribute ``data`` keeps the input."""

    def __init__(self, message: str, data: object) -> None:
        super().__init__(message)
        self.data = data


@dataclass(frozen=True, kw_only=True)
class Delta:
    """One replicated change.

    Attributes:
        kind: what happened.
        user: the user id (bare local part).
        secret: the session key (session kinds) or the OTP (OTP kinds). Hidden from repr.
        expires_ts: Unix-epoch expiry (issue kinds), or None for "never".
        issued_ts: Unix-epoch issue time (issue kinds): which entries a user keeps; None when the sender
            did not say (the receiver then uses its arrival time).
    """

    kind: DeltaKind
    user: str
    secret: str
    expires_ts: float | None = None
    issued_ts: float | None = None

    def __post_init__(self) -> None:
        if not self.user or not self.secret:
            raise ValueError("a Delta needs user and secret")

    def __repr__(self) -> str:
        return f"Delta(kind={self.kind.value}, user={self.user!r}, expires_ts={self.expires_ts!r})"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (what the peer link sends)."""
        return {"kind": self.kind.value, "user": self.user, "secret": self.secret, "expires_ts": self.expires_ts,
                "issued_ts": self.issued_ts}

    @classmethod
    def from_dict(cls, data: object) -> Delta:
        """Decode :meth:`to_dict`'s output.

        Raises:
            DeltaFormatError: wrong shape, unknown kind or bad field types.
        """
        if not isinstance(data, dict):
            raise DeltaFormatError("a delta must be a JSON object", data)
        try:
            kind = DeltaKind(data["kind"])
            user, secret, expires, issued = data["user"], data["secret"], data.get("expires_ts"), data.get("issued_ts")
        except (KeyError, ValueError) as exc:
            raise DeltaFormatError(f"bad delta: {exc}", data) from exc
        if not isinstance(user, str) or not isinstance(secret, str):
            raise DeltaFormatError("delta user and secret must be strings", data)
        for name, value in (("expires_ts", expires), ("issued_ts", issued)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise DeltaFormatError(f"delta {name} must be a number or null", data)
        try:
            return cls(kind=kind, user=user, secret=secret, expires_ts=None if expires is None else float(expires),
                       issued_ts=None if issued is None else float(issued))
        except ValueError as exc:
            raise DeltaFormatError(str(exc), data) from exc


@dataclass(frozen=True, kw_only=True, slots=True)
class _Entry:
    user: str
    expires_ts: float | None
    issued_ts: float


class LoginDatastore:
    """Session keys and OTPs of one node, with replication deltas.

    Args:
        node: the node's name (for logs only).
        otp_lifetime_s: OTP validity after issue (s, > 0).
        session_lifetime_s: session validity after issue (s, > 0), or None for no expiry.
        otp_single_use: when True a successful :meth:`check_otp` consumes the OTP (and replicates
            that); default False: reusable within its lifetime, so the backup accepts an OTP the
            client already used on the home node.
        clock: returns Unix-epoch seconds; injected in tests.
        on_delta: called with every local change; settable later as the ``on_delta`` attribute.

    Raises:
        ValueError: a lifetime <= 0.
    """

    def __init__(
        self,
        *,
        node: str = "",
        otp_lifetime_s: float = DEFAULT_OTP_LIFETIME_S,
        session_lifetime_s: float | None = DEFAULT_SESSION_LIFETIME_S,
        otp_single_use: bool = False,
        clock: Callable[[], float] = time.time,
        on_delta: Callable[[Delta], None] | None = None,
    ) -> None:
        if otp_lifetime_s <= 0:
            raise ValueError(f"otp_lifetime_s must be > 0, not {otp_lifetime_s}")
        if session_lifetime_s is not None and session_lifetime_s <= 0:
            raise ValueError(f"session_lifetime_s must be > 0 or None, not {session_lifetime_s}")
        self.node = node
        self.otp_lifetime_s = otp_lifetime_s
        self.session_lifetime_s = session_lifetime_s
        self.otp_single_use = otp_single_use
        self.on_delta = on_delta
        self._clock = clock
        self._sessions: dict[str, _Entry] = {}
        self._keys_of: dict[str, list[str]] = {}  # user -> its session keys
        self._otps: dict[str, dict[str, _Entry]] = {}  # user -> OTP -> entry

    # -- local changes -------------------------------------------------------------------------

    def issue_session_key(self, user: str) -> str:
        """Issue a new CPA session key for ``user`` and replicate it.

        Args:
            user: the user id.

        Returns:
            An unguessable URL-safe key.
        """
        key = secrets.token_urlsafe(_KEY_BYTES)
        now = self._clock()
        expires = None if self.session_lifetime_s is None else now + self.session_lifetime_s
        self._add_session(key, _Entry(user=user, expires_ts=expires, issued_ts=now))
        self._emit(Delta(kind=DeltaKind.SESSION_ISSUED, user=user, secret=key, expires_ts=expires, issued_ts=now))
        return key

    def user_for_session(self, key: str) -> str | None:
        """Return the user a session key belongs to, or None when unknown or expired."""
        entry = self._sessions.get(key)
        if entry is None:
            return None
        if entry.expires_ts is not None and self._clock() >= entry.expires_ts:
            self._forget_session(key)
            return None
        return entry.user

    def drop_session(self, key: str) -> bool:
        """Forget a session key (logout) and replicate that.

        Returns:
            True when the key was known.
        """
        entry = self._forget_session(key)
        if entry is None:
            return False
        self._emit(Delta(kind=DeltaKind.SESSION_DROPPED, user=entry.user, secret=key))
        return True

    def issue_otp(self, user: str) -> str:
        """Issue a one-time password bound to ``user``, valid for ``otp_lifetime_s``, and replicate it.

        Returns:
            An unguessable URL-safe OTP.
        """
        otp = secrets.token_urlsafe(_OTP_BYTES)
        now = self._clock()
        expires = now + self.otp_lifetime_s
        self._purge_user(user)
        self._add_otp(otp, _Entry(user=user, expires_ts=expires, issued_ts=now))
        self._emit(Delta(kind=DeltaKind.OTP_ISSUED, user=user, secret=otp, expires_ts=expires, issued_ts=now))
        return otp

    def check_otp(self, user: str, otp: str) -> bool:
        """Check an OTP presented by ``user`` (SASL CISCO-VTG-TOKEN).

        An OTP issued for another user is refused. In single-use mode a valid OTP is consumed and
        the consumption replicated.

        Returns:
            True when the OTP is known for this user and not expired.
        """
        self._purge_user(user)
        otps = self._otps.get(user)
        if not otps:
            return False
        match = next((known for known in otps if secrets.compare_digest(known, otp)), None)
        if match is None:
            return False
        if self.otp_single_use:
            del otps[match]
            self._emit(Delta(kind=DeltaKind.OTP_USED, user=user, secret=match))
        return True

    # -- replication ---------------------------------------------------------------------------

    def apply(self, delta: Delta) -> None:
        """Apply a change received from the peer. Never emits a delta.

        Args:
            delta: the peer's change; an already-expired issue is ignored.
        """
        now = self._clock()
        if delta.kind in (DeltaKind.SESSION_ISSUED, DeltaKind.OTP_ISSUED):
            if delta.expires_ts is not None and delta.expires_ts <= now:
                return  # already expired: it must not push a live entry out
            entry = _Entry(user=delta.user, expires_ts=delta.expires_ts,
                           issued_ts=now if delta.issued_ts is None else delta.issued_ts)
            if delta.kind is DeltaKind.SESSION_ISSUED:
                self._add_session(delta.secret, entry)
            else:
                self._purge_user(delta.user, now)
                self._add_otp(delta.secret, entry)
        elif delta.kind is DeltaKind.SESSION_DROPPED:
            self._forget_session(delta.secret)
        elif delta.kind is DeltaKind.OTP_USED:
            self._otps.get(delta.user, {}).pop(delta.secret, None)
        else:  # pragma: no cover - the enum is closed
            raise ValueError(f"unknown delta kind {delta.kind}")
        logger.debug("node %s applied %s for %s", self.node, delta.kind.value, delta.user)

    def snapshot(self) -> Iterator[Delta]:
        """Yield issue deltas recreating every live entry: a full resync for a (re)connected peer."""
        now = self._clock()
        for key, entry in list(self._sessions.items()):
            if entry.expires_ts is None or entry.expires_ts > now:
                yield Delta(kind=DeltaKind.SESSION_ISSUED, user=entry.user, secret=key, expires_ts=entry.expires_ts,
                            issued_ts=entry.issued_ts)
        for user, otps in list(self._otps.items()):
            for otp, entry in otps.items():
                if entry.expires_ts is None or entry.expires_ts > now:
                    yield Delta(kind=DeltaKind.OTP_ISSUED, user=user, secret=otp, expires_ts=entry.expires_ts,
                                issued_ts=entry.issued_ts)

    def purge_expired(self) -> int:
        """Drop every expired session and OTP (call now and then). Does not replicate.

        Returns:
            How many entries were dropped.
        """
        now = self._clock()
        dead = [k for k, e in self._sessions.items() if e.expires_ts is not None and e.expires_ts <= now]
        for key in dead:
            self._forget_session(key)
        dropped = len(dead)
        for user in list(self._otps):
            dropped += self._purge_user(user, now)
        return dropped

    @property
    def session_count(self) -> int:
        """Number of stored sessions (expired ones included until purged)."""
        return len(self._sessions)

    @property
    def otp_count(self) -> int:
        """Number of stored OTPs (expired ones included until purged)."""
        return sum(len(otps) for otps in self._otps.values())

    # -- internals -----------------------------------------------------------------------------

    def _add_session(self, key: str, entry: _Entry) -> None:
        if key in self._sessions:
            return
        keys = self._keys_of.setdefault(entry.user, [])
        self._sessions[key] = entry
        keys.append(key)
        while len(keys) > KEEP_PER_USER:  # forget the earliest issued, whatever the order of arrival
            oldest = min(keys, key=lambda k: self._sessions[k].issued_ts)
            keys.remove(oldest)
            del self._sessions[oldest]

    def _forget_session(self, key: str) -> _Entry | None:
        entry = self._sessions.pop(key, None)
        if entry is not None:
            keys = self._keys_of.get(entry.user, [])
            if key in keys:
                keys.remove(key)
            if not keys:
                self._keys_of.pop(entry.user, None)
        return entry

    def _add_otp(self, otp: str, entry: _Entry) -> None:
        otps = self._otps.setdefault(entry.user, {})
        otps.setdefault(otp, entry)
        while len(otps) > KEEP_PER_USER:  # forget the earliest issued, whatever the order of arrival
            del otps[min(otps, key=lambda o: otps[o].issued_ts)]

    def _purge_user(self, user: str, now: float | None = None) -> int:
        otps = self._otps.get(user)
        if otps is None:
            return 0
        when = self._clock() if now is None else now
        dead = [otp for otp, entry in otps.items() if entry.expires_ts is not None and entry.expires_ts <= when]
        for otp in dead:
            del otps[otp]
        if not otps:
            del self._otps[user]
        return len(dead)

    def _emit(self, delta: Delta) -> None:
        if self.on_delta is not None:
            self.on_delta(delta)
