"""The words of failure: stream and SASL conditions, losses, stages, timers, and the :class:`Cause`
that names why an attempt failed or a connection was lost (pure enums and one frozen dataclass).

``Cause.cls`` is the recorded failure class (``stream-error:<condition>``, ``connection-reset``,
``soap-fault:<code>`` ...; the list is in ``core/events.py`` and docs/failure-causes.md). The events
and commands (``core/events.py``) carry these; ``jabberemu.core.events`` re-exports them.
Imports: the standard library only.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Cause", "CauseKind", "LossKind", "SaslCondition", "Stage", "StreamCondition", "TimerPurpose"]


class StreamCondition(enum.Enum):
    """Stream error conditions, RFC 6120 §4.9.3."""

    BAD_FORMAT = "bad-format"
    BAD_NAMESPACE_PREFIX = "bad-namespace-prefix"
    CONFLICT = "conflict"
    CONNECTION_TIMEOUT = "connection-timeout"
    HOST_GONE = "host-gone"
    HOST_UNKNOWN = "host-unknown"
    IMPROPER_ADDRESSING = "improper-addressing"
    INTERNAL_SERVER_ERROR = "internal-server-error"
    INVALID_FROM = "invalid-from"
    INVALID_NAMESPACE = "invalid-namespace"
    INVALID_XML = "invalid-xml"
    NOT_AUTHORIZED = "not-authorized"
    NOT_WELL_FORMED = "not-well-formed"
    POLICY_VIOLATION = "policy-violation"
    REMOTE_CONNECTION_FAILED = "remote-connection-failed"
    RESET = "reset"
    RESOURCE_CONSTRAINT = "resource-constraint"
    RESTRICTED_XML = "restricted-xml"
    SEE_OTHER_HOST = "see-other-host"
    SYSTEM_SHUTDOWN = "system-shutdown"
    UNDEFINED_CONDITION = "undefined-condition"
    UNSUPPORTED_ENCODING = "unsupported-encoding"
    UNSUPPORTED_FEATURE = "unsupported-feature"
    UNSUPPORTED_STANZA_TYPE = "unsupported-stanza-type"
    UNSUPPORTED_VERSION = "unsupported-version"

    @classmethod
    def parse(cls, text: str) -> StreamCondition:
        """Map a wire condition name to a member; an unknown name becomes UNDEFINED_CONDITION."""
        try:
            return cls(text)
        except ValueError:
            return cls.UNDEFINED_CONDITION


class SaslCondition(enum.Enum):
    """SASL failure conditions, RFC 6120 §6.5."""

    ABORTED = "aborted"
    ACCOUNT_DISABLED = "account-disabled"
    CREDENTIALS_EXPIRED = "credentials-expired"
    ENCRYPTION_REQUIRED = "encryption-required"
    INCORRECT_ENCODING = "incorrect-encoding"
    INVALID_AUTHZID = "invalid-authzid"
    INVALID_MECHANISM = "invalid-mechanism"
    MALFORMED_REQUEST = "malformed-request"
    MECHANISM_TOO_WEAK = "mechanism-too-weak"
    NOT_AUTHORIZED = "not-authorized"
    TEMPORARY_AUTH_FAILURE = "temporary-auth-failure"

    @classmethod
    def parse(cls, text: str) -> SaslCondition:
        """Map a wire condition name to a member; an unknown name becomes NOT_AUTHORIZED (§6.5)."""
        try:
            return cls(text)
        except ValueError:
            return cls.NOT_AUTHORIZED


class LossKind(enum.Enum):
    """How a TCP connection ended or failed."""

    CONNECTION_RESET = "connection-reset"
    CONNECTION_CLOSED = "connection-closed"
    CONNECTION_REFUSED = "connection-refused"
    DNS_FAILURE = "dns-failure"  # the host name did not resolve: no connection was tried


class Stage(enum.Enum):
    """An operation the driver puts a deadline on (see ``config.Timeouts``)."""

    SOAP = "soap"
    CONNECT = "connect"
    AUTH = "auth"
    BIND = "bind"


class TimerPurpose(enum.Enum):
    RELOGIN_WAIT = "relogin-wait"


class CauseKind(enum.Enum):
    STREAM_ERROR = "stream-error"
    CONNECTION_RESET = "connection-reset"
    CONNECTION_CLOSED = "connection-closed"
    CONNECTION_REFUSED = "connection-refused"
    DNS_FAILURE = "dns-failure"
    PING_TIMEOUT = "ping-timeout"
    SOAP_FAULT = "soap-fault"
    HTTP_ERROR = "http-error"
    AUTH_FAILURE = "auth-failure"
    TIMEOUT = "timeout"
    REDIRECT_LOOP = "redirect-loop"
    TOO_MANY_REDIRECTS = "too-many-redirects"


@dataclass(frozen=True, kw_only=True, slots=True)
class Cause:
    """Why an attempt failed or a connection was lost (an HA event when it was connected)."""

    kind: CauseKind
    node: str
    detail: str | None = None

    @property
    def cls(self) -> str:
        """The recorded class, e.g. ``stream-error:system-shutdown`` or ``connection-reset``."""
        return self.kind.value if self.detail is None else f"{self.kind.value}:{self.detail}"
