"""A reference model of what the c2s stream answers to each client action in each state, for the
out-of-order and SASL fuzz targets (RFC 6120 §4.9.3, §5, §6, §7; ``mock_server/xmpp/wire.py``).

The server's bytes for one action are reduced to a list of tokens (``classify``) and compared
with the model's (``Model.step``).
"""

from __future__ import annotations

import base64
import enum
import re
from dataclasses import dataclass

from fuzz_xmpp_inputs import HEADER, bind_iq, plain_auth

__all__ = ["ACTIONS", "Action", "Model", "classify"]

SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
MAX_AUTH_ATTEMPTS = 5  # WireSettings default

_TOKEN_RE = re.compile(
    rb"(?P<features><stream:features>)"
    rb"|(?P<success><success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>)"
    rb"|(?P<challenge><challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>)"
    rb"|(?P<proceed><proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>)"
    rb"|(?P<tlsfail><failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>)"
    rb"|<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><(?P<sasl>[a-z-]+)/>"
    rb"|<stream:error><(?P<err>[a-z-]+)"
    rb"|(?P<jid><jid>)"
    rb"|(?P<roster><query xmlns='jabber:iq:roster'>)"
    rb"|(?P<iqerr><iq type='error')"
    rb"|(?P<iqres><iq type='result' id='[^']*'(?: from='[^']*')?/>)"
    rb"|(?P<bounce><message type='error')"
    rb"|(?P<close></stream:stream>)"
)
_NAMES = {"features": "features", "success": "success", "challenge": "challenge", "proceed": "proceed",
          "tlsfail": "tls-failure", "jid": "bind-result", "roster": "roster", "iqerr": "iq-error",
          "iqres": "iq-result", "bounce": "bounce", "close": "close"}


def classify(out: bytes) -> list[str]:
    """Tokens of the server's bytes, in order; ``err:<cond>`` swallows the close after it."""
    tokens: list[str] = []
    for m in _TOKEN_RE.finditer(out):
        kind = m.lastgroup
        assert kind is not None
        if kind == "sasl":
            tokens.append(f"sasl:{m.group('sasl').decode()}")
        elif kind == "err":
            tokens.append(f"err:{m.group('err').decode()}")
        elif kind == "close" and tokens and tokens[-1].startswith("err:"):
            continue
        else:
            tokens.append(_NAMES[kind])
    return tokens


class Action(enum.Enum):
    """What a client may send, in or out of order."""

    HEADER = "header"
    AUTH_OK = "auth_ok"
    AUTH_BAD = "auth_bad"
    AUTH_EMPTY = "auth_empty"
    RESPONSE_OK = "response_ok"
    ABORT = "abort"
    STARTTLS = "starttls"
    BIND = "bind"
    BIND_GET = "bind_get"
    SESSION = "session"
    PING = "ping"
    ROSTER = "roster"
    MESSAGE = "message"
    PRESENCE = "presence"
    IQ_RESULT = "iq_result"
    CLOSE = "close"

    @property
    def data(self) -> bytes:
        return _BYTES[self]


_RESP = base64.b64encode(b"\0alice\0pass-alice").decode()
_BYTES: dict[Action, bytes] = {
    Action.HEADER: HEADER,
    Action.AUTH_OK: plain_auth("alice", "pass-alice"),
    Action.AUTH_BAD: plain_auth("alice", "wrong"),
    Action.AUTH_EMPTY: f"<auth xmlns='{SASL}' mechanism='PLAIN'/>".encode(),
    Action.RESPONSE_OK: f"<response xmlns='{SASL}'>{_RESP}</response>".encode(),
    Action.ABORT: f"<abort xmlns='{SASL}'/>".encode(),
    Action.STARTTLS: b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
    Action.BIND: bind_iq("r"),
    Action.BIND_GET: bind_iq("r", typ="get"),
    Action.SESSION: b"<iq type='set' id='s1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>",
    Action.PING: b"<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>",
    Action.ROSTER: b"<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>",
    Action.MESSAGE: b"<message to='bob@example.test' id='m1'><body>hi</body></message>",
    Action.PRESENCE: b"<presence/>",
    Action.IQ_RESULT: b"<iq type='result' id='x1'/>",
    Action.CLOSE: b"</stream:stream>",
}
ACTIONS = tuple(Action)


class _St(enum.Enum):
    FRESH = "fresh"  # new parser, before the first header
    RESTART = "restart"  # new parser after <success/>
    NEG = "negotiating"
    CHAL = "challenged"
    BIND = "binding"
    EST = "established"
    CLOSED = "closed"


@dataclass
class Model:
    """Expected answers of the stream (no admission limit, TLS offered when ``tls``)."""

    tls: bool
    state: _St = _St.FRESH
    secured: bool = False
    failures: int = 0

    @property
    def closed(self) -> bool:
        return self.state is _St.CLOSED

    def _err(self, cond: str) -> list[str]:
        self.state = _St.CLOSED
        return [f"err:{cond}"]

    def _sasl_fail(self, cond: str) -> list[str]:
        self.failures += 1
        self.state = _St.NEG
        out = [f"sasl:{cond}"]
        if self.failures >= MAX_AUTH_ATTEMPTS:
            out += self._err("policy-violation")
        return out

    def step(self, action: Action) -> list[str]:
        """Advance and return the expected tokens."""
        st, a = self.state, action
        if st in (_St.FRESH, _St.RESTART):
            if a is Action.HEADER:
                self.state = _St.NEG if st is _St.FRESH else _St.BIND
                return ["features"]
            return self._err("not-well-formed" if a is Action.CLOSE else "bad-format")
        if a is Action.HEADER:
            return self._err("not-well-formed")  # an XML declaration in the middle of a document
        if a is Action.CLOSE:
            self.state = _St.CLOSED
            return ["close"]
        if st is _St.NEG:
            return self._negotiating(a)
        if st is _St.CHAL:
            if a is Action.RESPONSE_OK:
                self.state = _St.RESTART
                return ["success"]
            if a is Action.ABORT:
                return self._sasl_fail("aborted")
            return self._err("policy-violation")
        if st is _St.BIND:
            if a is Action.BIND:
                self.state = _St.EST
                return ["bind-result"]
            if a is Action.BIND_GET:
                return ["iq-error"]
            return self._err("not-authorized")
        return self._established(a)

    def _negotiating(self, a: Action) -> list[str]:
        if a is Action.AUTH_OK:
            self.state = _St.RESTART
            return ["success"]
        if a is Action.AUTH_BAD:
            return self._sasl_fail("not-authorized")
        if a is Action.AUTH_EMPTY:
            self.state = _St.CHAL
            return ["challenge"]
        if a is Action.ABORT:
            return self._sasl_fail("aborted")
        if a is Action.STARTTLS:
            if self.tls and not self.secured:
                self.secured = True
                self.state = _St.FRESH
                return ["proceed"]
            self.state = _St.CLOSED
            return ["tls-failure", "close"]
        return self._err("not-authorized")

    def _established(self, a: Action) -> list[str]:
        if a in (Action.PING, Action.SESSION):
            return ["iq-result"]
        if a is Action.ROSTER:
            return ["roster"]
        if a is Action.MESSAGE:
            return ["bounce"]
        if a in (Action.PRESENCE, Action.IQ_RESULT):
            return []
        if a in (Action.BIND, Action.BIND_GET):
            return ["iq-error"]
        return self._err("unsupported-stanza-type")
