"""Shared machinery of the fuzz corpus: the budget, hypothesis settings, input counters and a
sans-IO driver that answers a ``C2sStream`` the way ``C2sConnection`` does.

Budget: ``JABBEREMU_FUZZ_EXAMPLES`` is the corpus size over all targets (default
``DEFAULT_TOTAL``); each target gets its share by ``WEIGHTS``. Counts of inputs actually tried
are kept in ``COUNTS`` and printed at the end of the pytest session (``conftest.py``).
"""

from __future__ import annotations

import itertools
import os
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.strategies import SearchStrategy

from mock_server.xmpp.backend import LocalBackend, NodeRef
from mock_server.xmpp.events import (
    AuthRequested, DataOut, Event, RosterRequested, Routed, SaslCondition, SaslMechanism, StartTlsRequested,
    StreamClosed, StreamCondition, StreamErrorSent, StreamOpened,
)
from mock_server.xmpp.wire import C2sStream, WireSettings
from mock_server.xmpp.xml import ParseLimits

__all__ = [
    "COUNTS",
    "DEFAULT_TOTAL",
    "DOMAIN",
    "ELSEWHERE_USER",
    "ENV_EXAMPLES",
    "LIMITS",
    "OTPS",
    "UNSERVED_USER",
    "USERS",
    "WEIGHTS",
    "WireDriver",
    "budget",
    "total_budget",
    "fuzz_settings",
    "make_xmpp_backend",
    "output_well_formed",
    "run_corpus",
    "stream_error_condition",
]

ENV_EXAMPLES = "JABBEREMU_FUZZ_EXAMPLES"
#: Default corpus size over all targets (>= 10,000 as the issue asks).
DEFAULT_TOTAL = 10_500
#: Share of the corpus per target; the fast sans-IO targets get most of it.
WEIGHTS: dict[str, float] = {
    "xmpp_wire_hostile": 0.25,
    "xmpp_wire_mutated": 0.14,
    "xmpp_wire_sasl": 0.12,
    "xmpp_wire_order": 0.12,
    "xmpp_wire_splits": 0.09,
    "cpa_parse": 0.18,
    "cpa_app": 0.04,
    "cpa_http_raw": 0.01,
    "xmpp_socket": 0.05,
}
DOMAIN = "example.test"
NODE = "imp1.example.test"
USERS = ["alice", "bob", "carol", "dave", "erin"]
OTPS = {"alice": "otp-alice-1", "bob": "otp-bob-1"}
ELSEWHERE_USER = "frank"  # served by the other node: see-other-host
UNSERVED_USER = "gina"  # no node serves: system-shutdown
LIMITS = ParseLimits()
T = TypeVar("T")

#: Inputs tried per target in this session (filled by the tests, printed by conftest).
COUNTS: Counter[str] = Counter()


def total_budget() -> int:
    """The corpus size from ``JABBEREMU_FUZZ_EXAMPLES`` (default ``DEFAULT_TOTAL``)."""
    raw = os.environ.get(ENV_EXAMPLES, "").strip()
    if not raw:
        return DEFAULT_TOTAL
    value = int(raw)
    if value < 1:
        raise ValueError(f"{ENV_EXAMPLES} must be >= 1, got {value}")
    return value


def budget(target: str) -> int:
    """Examples for ``target``: its share of the total, at least 5."""
    return max(5, round(total_budget() * WEIGHTS[target]))


def fuzz_settings(target: str) -> settings:
    """Hypothesis settings of a target: fixed seed (derandomize), no example database, no
    deadline, generate phase only (a failure is reported as found, not shrunk: shrinking a
    10 KB stream is slow and the failing input is printed anyway)."""
    return settings(
        max_examples=budget(target), deadline=None, derandomize=True, database=None,
        phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
        print_blob=False,
    )


def make_xmpp_backend(port: int = 5222) -> LocalBackend:
    """alice..erin (password ``pass-<user>``), OTPs for alice and bob, frank served elsewhere,
    gina served by no node."""
    backend = LocalBackend.with_users(domain=DOMAIN, node_name=NODE, users=USERS + [ELSEWHERE_USER, UNSERVED_USER],
                                      contacts_each=1)
    backend.peer_hostname = "imp2.example.test"
    backend.xmpp_port = port
    for user, otp in OTPS.items():
        backend.issue_token(user, otp)
    backend.elsewhere[ELSEWHERE_USER] = NodeRef(name="imp2.example.test", xmpp_host="127.0.0.2", xmpp_port=5222)
    backend.nobody_serves.add(UNSERVED_USER)
    return backend


_ERR_RE = re.compile(rb"<stream:error><([a-z-]+) xmlns='urn:ietf:params:xml:ns:xmpp-streams'")


def stream_error_condition(out: bytes) -> str | None:
    """The condition of the stream error in ``out``, or None."""
    m = _ERR_RE.search(out)
    return m.group(1).decode() if m else None


_DECL = b"<?xml version='1.0'?>"


def output_well_formed(out: bytes) -> None:
    """Raise AssertionError unless the server's bytes are a sequence of well-formed stream
    prefixes: nothing, or our XML declaration starting each stream (one per restart)."""
    if not out:
        return
    assert out.startswith(_DECL), f"server bytes before its stream header: {out[:200]!r}"
    for segment in out.split(_DECL)[1:]:
        parser = ET.XMLPullParser(events=("start",))
        try:
            parser.feed(segment)
            list(parser.read_events())
        except ET.ParseError as exc:
            raise AssertionError(f"server sent malformed XML ({exc}): {segment[:400]!r}") from None


@dataclass
class WireDriver:
    """Drives one ``C2sStream`` and answers its events as ``C2sConnection`` does with a
    ``LocalBackend`` (no admission limit). Writes after the stream closed are dropped, as the
    connection drops them once closing.

    Attributes:
        out: every byte the server wrote.
        events: every event, in order.
        max_buffer_bytes: the largest parser buffer seen after a feed that left the stream open.
    """

    backend: LocalBackend = field(default_factory=make_xmpp_backend)
    tls: bool = False
    limits: ParseLimits = LIMITS
    out: bytearray = field(default_factory=bytearray)
    events: list[Event] = field(default_factory=list)
    max_buffer_bytes: int = 0
    stream: C2sStream = field(init=False)
    _closing: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        ids = itertools.count(1)
        self.stream = C2sStream(WireSettings(domain=DOMAIN, limits=self.limits, tls_available=self.tls),
                                id_factory=lambda: f"id{next(ids)}")

    def write(self, data: bytes) -> None:
        if data and not self._closing:
            self.out += data

    def feed(self, data: bytes) -> list[Event]:
        """Feed bytes and answer the events; returns the events."""
        evs = self.stream.feed(data)
        self.events.extend(evs)
        s = self.stream
        for ev in evs:
            if isinstance(ev, DataOut):
                self.write(ev.data)
            elif isinstance(ev, StreamOpened):
                self.write(s.accept_stream(self.backend.hostname_hints()))
            elif isinstance(ev, StartTlsRequested):
                self.write(s.proceed_tls())
            elif isinstance(ev, AuthRequested):
                self._auth(ev)
            elif isinstance(ev, RosterRequested):
                assert s.user is not None
                self.write(s.roster_result(ev.iq_id, self.backend.roster(s.user)))
            elif isinstance(ev, Routed):
                self.write(s.bounce(ev))
            elif isinstance(ev, StreamClosed):
                self.write(s.close())
        if s.closed:
            self._closing = True
        else:
            self.max_buffer_bytes = max(self.max_buffer_bytes, len(s._parser._buf))  # the bound under test
        return evs

    def _auth(self, ev: AuthRequested) -> None:
        b, s = self.backend, self.stream
        ok = (b.check_password(ev.user, ev.secret) if ev.mechanism is SaslMechanism.PLAIN
              else b.check_token(ev.user, ev.secret))
        if not ok:
            self.write(s.auth_failure(SaslCondition.NOT_AUTHORIZED))
            return
        ref = b.serving_node(ev.user)
        if ref is None:
            self.write(s.stream_error(StreamCondition.SYSTEM_SHUTDOWN, "no node serves this user now"))
        elif ref.name != b.node_name:
            self.write(s.stream_error(StreamCondition.SEE_OTHER_HOST, ref.see_other_host_text))
        else:
            self.write(s.auth_success(ev.user))

    def feed_turns(self, turns: list[list[bytes]]) -> None:
        """Feed each turn (a list of chunks) in order; stop once the stream is closed."""
        for turn in turns:
            for chunk in turn:
                if self.stream.closed:
                    return
                self.feed(chunk)

    @property
    def error(self) -> StreamCondition | None:
        """Condition of the stream error the server sent (on its own or via the driver)."""
        for ev in self.events:
            if isinstance(ev, StreamErrorSent):
                return ev.condition
        found = stream_error_condition(bytes(self.out))
        return StreamCondition(found) if found else None

    def check_invariants(self) -> None:
        """What must hold after any input: well-formed output, bounded buffer, an error
        condition from our list, and a closing tag after any stream error."""
        out = bytes(self.out)
        output_well_formed(out)
        assert self.max_buffer_bytes <= self.limits.max_stanza_bytes, self.max_buffer_bytes
        cond = stream_error_condition(out)
        if cond is not None:
            assert cond in {c.value for c in StreamCondition}, cond
            assert out.endswith(b"</stream:error></stream:stream>"), out[-200:]
            assert self.stream.closed


def run_corpus(target: str, strategy: SearchStrategy[T], prop: Callable[[T], None]) -> int:
    """Run ``prop`` on ``budget(target)`` examples of ``strategy``; record and return the count.

    Raises:
        AssertionError: from ``prop`` (hypothesis reports the failing example), or fewer inputs
            than the budget were tried.
    """
    tried = 0

    @fuzz_settings(target)
    @given(strategy)
    def run(case: T) -> None:
        nonlocal tried
        tried += 1
        prop(case)

    try:
        run()
    finally:
        COUNTS[target] += tried
    assert tried >= budget(target), f"{target}: {tried} inputs tried, budget {budget(target)}"
    return tried
