"""Measurements and their vocabulary (the Locust ``request_type`` / ``name`` pairs).

The table is the contract in docs/ARCHITECTURE.md, "Measurement names":

==============  ===================  =============================================================
request_type    name                 response time means
==============  ===================  =============================================================
soap            login                one SOAP round trip (password sign-in)
soap            session-login        one SOAP round trip (re-login with the cached one-time password)
soap            get-all-config       one SOAP round trip
soap            get-onetime-password one SOAP round trip
soap            logout               one SOAP round trip
xmpp            connect              TCP connect (+ TLS)
xmpp            auth                 SASL exchange
xmpp            bind                 resource binding + session
xmpp            ping                 XEP-0199 ping round trip
xmpp            message-latency      send -> receive of a 1:1 message
client          login                first SOAP request -> initial presence sent
ha              relogin              HA event -> XMPPCONNECTED on the node now serving the client
ha              wait                 the drawn re-login wait (ms)
==============  ===================  =============================================================
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from jabberemu.errors import LocalProtocolError

__all__ = [
    "CLIENT_LOGIN",
    "HA_RELOGIN",
    "HA_WAIT",
    "SOAP_GET_ALL_CONFIG",
    "SOAP_GET_ONETIME_PASSWORD",
    "SOAP_LOGIN",
    "SOAP_LOGOUT",
    "SOAP_SESSION_LOGIN",
    "VOCABULARY",
    "XMPP_AUTH",
    "XMPP_BIND",
    "XMPP_CONNECT",
    "XMPP_MESSAGE_LATENCY",
    "XMPP_PING",
    "Measurement",
    "Metric",
    "RequestType",
]


class RequestType(enum.Enum):
    """Locust ``request_type`` values of jabberemu."""

    SOAP = "soap"
    XMPP = "xmpp"
    CLIENT = "client"
    HA = "ha"


@dataclass(frozen=True, kw_only=True, slots=True)
class Metric:
    """One entry of the vocabulary: request type, name, and what its time means."""

    request_type: RequestType
    name: str
    meaning: str

    @property
    def label(self) -> str:
        """``request_type/name``, e.g. ``soap/login``."""
        return f"{self.request_type.value}/{self.name}"


SOAP_LOGIN = Metric(request_type=RequestType.SOAP, name="login", meaning="one SOAP round trip (password sign-in)")
SOAP_SESSION_LOGIN = Metric(request_type=RequestType.SOAP, name="session-login",
                            meaning="one SOAP round trip (re-login with the cached one-time password)")
SOAP_GET_ALL_CONFIG = Metric(request_type=RequestType.SOAP, name="get-all-config",
                             meaning="one SOAP round trip")
SOAP_GET_ONETIME_PASSWORD = Metric(request_type=RequestType.SOAP, name="get-onetime-password",
                                   meaning="one SOAP round trip")
SOAP_LOGOUT = Metric(request_type=RequestType.SOAP, name="logout", meaning="one SOAP round trip")
XMPP_CONNECT = Metric(request_type=RequestType.XMPP, name="connect", meaning="TCP connect (+TLS)")
XMPP_AUTH = Metric(request_type=RequestType.XMPP, name="auth", meaning="SASL exchange")
XMPP_BIND = Metric(request_type=RequestType.XMPP, name="bind", meaning="resource binding + session")
XMPP_PING = Metric(request_type=RequestType.XMPP, name="ping", meaning="XEP-0199 ping round trip")
XMPP_MESSAGE_LATENCY = Metric(request_type=RequestType.XMPP, name="message-latency",
                              meaning="send -> receive of a 1:1 message")
CLIENT_LOGIN = Metric(request_type=RequestType.CLIENT, name="login",
                      meaning="first SOAP request -> initial presence sent")
HA_RELOGIN = Metric(request_type=RequestType.HA, name="relogin",
                    meaning="HA event -> XMPPCONNECTED on the node now serving the client")
HA_WAIT = Metric(request_type=RequestType.HA, name="wait", meaning="the drawn re-login wait (ms)")

VOCABULARY: tuple[Metric, ...] = (
    SOAP_LOGIN, SOAP_SESSION_LOGIN, SOAP_GET_ALL_CONFIG, SOAP_GET_ONETIME_PASSWORD, SOAP_LOGOUT,
    XMPP_CONNECT, XMPP_AUTH, XMPP_BIND, XMPP_PING, XMPP_MESSAGE_LATENCY,
    CLIENT_LOGIN, HA_RELOGIN, HA_WAIT,
)
_KNOWN = frozenset((m.request_type, m.name) for m in VOCABULARY)


@dataclass(frozen=True, kw_only=True, slots=True)
class Measurement:
    """One timed request, as handed to the measurement callback (and to Locust's request event).

    Args:
        request_type: one of :class:`RequestType` (use ``.value`` for Locust).
        name: a name of the vocabulary for that type.
        response_time_ms: finite, >= 0, in milliseconds.
        response_length: bytes of the answer (0 when unknown), >= 0.
        exception: the failure, or None on success.
        node: node name the request went to, or None.
        cause: failure class of a failed request as the client machine names it
            (``soap-fault:server-busy``, ``timeout:soap``, ``connection-refused`` ...;
            ``core.events.classify``), or None.

    Raises:
        LocalProtocolError: a pair outside the vocabulary, a negative or non-finite time or length.
    """

    request_type: RequestType
    name: str
    response_time_ms: float
    response_length: int = 0
    exception: BaseException | None = None
    node: str | None = None
    cause: str | None = None

    def __post_init__(self) -> None:
        if (self.request_type, self.name) not in _KNOWN:
            raise LocalProtocolError(f"unknown measurement {self.request_type!r}/{self.name!r}")
        if not math.isfinite(self.response_time_ms) or self.response_time_ms < 0:
            raise LocalProtocolError(f"bad response_time_ms {self.response_time_ms!r}")
        if isinstance(self.response_length, bool) or not isinstance(self.response_length, int) \
                or self.response_length < 0:
            raise LocalProtocolError(f"bad response_length {self.response_length!r}")

    @classmethod
    def of(cls, metric: Metric, response_time_ms: float, *, response_length: int = 0,
           exception: BaseException | None = None, node: str | None = None,
           cause: str | None = None) -> Measurement:
        """Build a measurement of ``metric`` (e.g. ``Measurement.of(SOAP_LOGIN, 12.5, node=n)``)."""
        return cls(request_type=metric.request_type, name=metric.name,
                   response_time_ms=response_time_ms, response_length=response_length,
                   exception=exception, node=node, cause=cause)

    @property
    def ok(self) -> bool:
        return self.exception is None

    @property
    def label(self) -> str:
        return f"{self.request_type.value}/{self.name}"
