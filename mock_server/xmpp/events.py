"""Wire words, events and the state table of the c2s stream (``xmpp.wire``).

State table (one lookup, ``next_state``, raises on a missing transition)::

    AWAIT_HEADER  --HEADER-->      NEGOTIATING      (also after <proceed/>: the TLS stream)
    NEGOTIATING   --STARTTLS-->    TLS_STARTING --PROCEED--> AWAIT_HEADER
    NEGOTIATING   --AUTH-->        AUTHENTICATING --AUTH_OK--> AWAIT_RESTART --HEADER--> BINDING
    NEGOTIATING   --AUTH_NO_DATA-> CHALLENGED --RESPONSE--> AUTHENTICATING
    NEGOTIATING / CHALLENGED / AUTHENTICATING --AUTH_FAILED--> NEGOTIATING
    BINDING       --BIND-->        ESTABLISHED
    any open state --CLIENT_CLOSE--> CLOSED;  stream errors set CLOSED directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, StrEnum, auto

__all__ = [
    "AuthRequested",
    "DataOut",
    "Event",
    "IqResponse",
    "PresenceBroadcast",
    "Routed",
    "RosterRequested",
    "SaslCondition",
    "SaslMechanism",
    "SessionBound",
    "StanzaCondition",
    "StanzaKind",
    "StartTlsRequested",
    "StreamClosed",
    "StreamCondition",
    "StreamErrorSent",
    "StreamOpened",
    "WireInput",
    "WireState",
    "WireStateError",
    "next_state",
]


class WireState(Enum):
    """Where one c2s stream stands (server side)."""

    AWAIT_HEADER = auto()
    NEGOTIATING = auto()
    TLS_STARTING = auto()
    CHALLENGED = auto()
    AUTHENTICATING = auto()
    AWAIT_RESTART = auto()
    BINDING = auto()
    ESTABLISHED = auto()
    CLOSED = auto()


class WireInput(Enum):
    """What moves a stream between states."""

    HEADER = auto()
    STARTTLS = auto()
    PROCEED = auto()
    AUTH = auto()
    AUTH_NO_DATA = auto()
    RESPONSE = auto()
    AUTH_OK = auto()
    AUTH_FAILED = auto()
    BIND = auto()
    CLIENT_CLOSE = auto()


_S, _I = WireState, WireInput
_TABLE: dict[tuple[WireState, WireInput], WireState] = {
    (_S.AWAIT_HEADER, _I.HEADER): _S.NEGOTIATING,
    (_S.NEGOTIATING, _I.STARTTLS): _S.TLS_STARTING,
    (_S.TLS_STARTING, _I.PROCEED): _S.AWAIT_HEADER,
    (_S.NEGOTIATING, _I.AUTH): _S.AUTHENTICATING,
    (_S.NEGOTIATING, _I.AUTH_NO_DATA): _S.CHALLENGED,
    (_S.CHALLENGED, _I.RESPONSE): _S.AUTHENTICATING,
    (_S.NEGOTIATING, _I.AUTH_FAILED): _S.NEGOTIATING,
    (_S.CHALLENGED, _I.AUTH_FAILED): _S.NEGOTIATING,
    (_S.AUTHENTICATING, _I.AUTH_FAILED): _S.NEGOTIATING,
    (_S.AUTHENTICATING, _I.AUTH_OK): _S.AWAIT_RESTART,
    (_S.AWAIT_RESTART, _I.HEADER): _S.BINDING,
    (_S.BINDING, _I.BIND): _S.ESTABLISHED,
    **{(s, _I.CLIENT_CLOSE): _S.CLOSED for s in WireState if s is not _S.CLOSED},
}


class WireStateError(Exception):
    """A transition the table lacks, or a caller answering an event that is not pending.

    Attributes:
        state: the stream's state.
        action: the input or method refused.
    """

    def __init__(self, *, state: WireState, action: str) -> None:
        super().__init__(f"{action} not allowed in {state.name}")
        self.state = state
        self.action = action


def next_state(state: WireState, inp: WireInput) -> WireState:
    """Look up the transition.

    Raises:
        WireStateError: the table has no entry for ``(state, inp)``.
    """
    try:
        return _TABLE[(state, inp)]
    except KeyError:
        raise WireStateError(state=state, action=inp.name) from None


class StreamCondition(StrEnum):
    """Stream error conditions used here (RFC 6120 §4.9.3)."""

    BAD_FORMAT = "bad-format"
    CONFLICT = "conflict"
    CONNECTION_TIMEOUT = "connection-timeout"
    HOST_UNKNOWN = "host-unknown"
    INVALID_NAMESPACE = "invalid-namespace"
    NOT_AUTHORIZED = "not-authorized"
    NOT_WELL_FORMED = "not-well-formed"
    POLICY_VIOLATION = "policy-violation"
    RESOURCE_CONSTRAINT = "resource-constraint"
    RESTRICTED_XML = "restricted-xml"
    SEE_OTHER_HOST = "see-other-host"
    SYSTEM_SHUTDOWN = "system-shutdown"
    UNSUPPORTED_STANZA_TYPE = "unsupported-stanza-type"
    UNSUPPORTED_VERSION = "unsupported-version"


class SaslCondition(StrEnum):
    """SASL failure conditions (RFC 6120 §6.5)."""

    ABORTED = "aborted"
    INCORRECT_ENCODING = "incorrect-encoding"
    INVALID_AUTHZID = "invalid-authzid"
    INVALID_MECHANISM = "invalid-mechanism"
    MALFORMED_REQUEST = "malformed-request"
    NOT_AUTHORIZED = "not-authorized"
    TEMPORARY_AUTH_FAILURE = "temporary-auth-failure"


class SaslMechanism(StrEnum):
    """Mechanisms offered, in this order (DOMAIN.md "XMPP side")."""

    PLAIN = "PLAIN"
    CISCO_VTG_TOKEN = "CISCO-VTG-TOKEN"


class StanzaKind(StrEnum):
    """The three stanza kinds (RFC 6120 §8)."""

    MESSAGE = "message"
    PRESENCE = "presence"
    IQ = "iq"


class StanzaCondition(StrEnum):
    """Stanza error conditions used here (RFC 6120 §8.3.3)."""

    SERVICE_UNAVAILABLE = "service-unavailable"
    RECIPIENT_UNAVAILABLE = "recipient-unavailable"
    ITEM_NOT_FOUND = "item-not-found"


@dataclass(frozen=True, kw_only=True)
class DataOut:
    """Bytes the stream decided to send on its own."""

    data: bytes

    def __post_init__(self) -> None:
        if not self.data:
            raise ValueError("DataOut needs bytes")


@dataclass(frozen=True, kw_only=True)
class StreamOpened:
    """A valid stream header arrived; answer with ``C2sStream.accept_stream`` (or a stream error)."""

    secured: bool
    authenticated: bool


@dataclass(frozen=True, kw_only=True)
class StartTlsRequested:
    """The client asked for STARTTLS; answer with ``proceed_tls`` and upgrade the transport."""


@dataclass(frozen=True, kw_only=True)
class AuthRequested:
    """SASL credentials to check; answer with ``auth_success``/``auth_failure``/``stream_error``.

    Attributes:
        mechanism: PLAIN (``secret`` is the password) or CISCO-VTG-TOKEN (``secret`` is the OTP).
        user: lower-cased user id (local part); the domain was checked already.
        secret: never logged (``repr=False``).
    """

    mechanism: SaslMechanism
    user: str
    secret: str = field(repr=False)

    def __post_init__(self) -> None:
        if not self.user or not self.secret:
            raise ValueError("AuthRequested needs user and secret")


@dataclass(frozen=True, kw_only=True)
class SessionBound:
    """A resource was bound (the result is already sent). An older session with the same full
    JID must now be closed with ``conflict`` (RFC 6120 §7.7.2.2, the replace option)."""

    full_jid: str
    resource: str


@dataclass(frozen=True, kw_only=True)
class RosterRequested:
    """Roster get (RFC 6121 §2.1.3); answer with ``roster_result(iq_id, items)``."""

    iq_id: str


@dataclass(frozen=True, kw_only=True)
class PresenceBroadcast:
    """Presence without ``to`` (RFC 6121 §4.2.2 initial/§4.4.2 update/§4.5.2 unavailable), ``from``
    stamped; send it to the user's contacts (and on initial presence, theirs to the user)."""

    available: bool
    stanza: bytes = field(repr=False)


@dataclass(frozen=True, kw_only=True)
class Routed:
    """A stanza for another entity, ``from`` stamped (RFC 6120 §10.4, §10.5). Deliver it, or answer
    with ``bounce(event)`` when nobody takes it."""

    kind: StanzaKind
    to_jid: str
    stanza_type: str | None
    stanza_id: str | None
    stanza: bytes = field(repr=False)


@dataclass(frozen=True, kw_only=True)
class IqResponse:
    """An iq result or error addressed to the server, e.g. the answer to our XEP-0199 ping."""

    iq_id: str
    ok: bool


@dataclass(frozen=True, kw_only=True)
class StreamClosed:
    """The client sent ``</stream:stream>``; answer with ``close()`` and close the transport."""


@dataclass(frozen=True, kw_only=True)
class StreamErrorSent:
    """The stream sent a stream error on its own (bytes already in a ``DataOut``); close the
    transport once written."""

    condition: StreamCondition
    text: str | None = None


Event = (DataOut | StreamOpened | StartTlsRequested | AuthRequested | SessionBound | RosterRequested
         | PresenceBroadcast | Routed | IqResponse | StreamClosed | StreamErrorSent)
