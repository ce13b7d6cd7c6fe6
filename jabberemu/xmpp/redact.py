"""Keep SASL credentials out of slixmpp's DEBUG log; installed on import (by ``jabberemu.xmpp.client``).

slixmpp logs every stanza it sends or receives at DEBUG (``SEND: %s`` / ``RECV: %s``, logger
``slixmpp.xmlstream.xmlstream``). The SASL ``<auth/>`` element carries the base64 of the user's
password (``PLAIN``, RFC 4616 section 2) or of ``userid=<user>@<domain>\\0token=<otp>``
(``CISCO-VTG-TOKEN``); a SCRAM ``<response/>`` carries a proof derived from the password (RFC 5802
section 5.1). :class:`SaslRedactFilter` replaces the text of those elements by ``[redacted]`` in
the log record before any handler sees it. Filters on a logger run only for records that logger
emits at an enabled level, so this costs nothing unless slixmpp's DEBUG log is on.
"""

from __future__ import annotations

import logging
import re

__all__ = ["REDACTED", "SLIXMPP_STREAM_LOGGER", "SaslRedactFilter", "ExpectedAuthFailureFilter", "install", "redact"]

SLIXMPP_STREAM_LOGGER = "slixmpp.xmlstream.xmlstream"
"""The logger of slixmpp's ``XMLStream`` (``SEND:``/``RECV:`` lines)."""
REDACTED = "[redacted]"

_SECRET_ELEMENTS = re.compile(r"(<(auth|response)\b[^>]*>)([^<]+)(</\2\s*>)", re.S)
_STANZA_LINES = ("SEND: %s", "RECV: %s")


def redact(text: str) -> str:
    """``text`` with the payload of every ``<auth>`` and ``<response>`` element replaced.

    Args:
        text: serialised XML (one or more stanzas).

    Returns:
        The same text, e.g. ``<auth mechanism="PLAIN">[redacted]</auth>``.
    """
    return _SECRET_ELEMENTS.sub(lambda m: m.group(1) + REDACTED + m.group(4), text)


class SaslRedactFilter(logging.Filter):
    """Rewrites slixmpp's ``SEND:``/``RECV:`` records whose stanza carries SASL credentials."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg in _STANZA_LINES and isinstance(record.args, tuple) and len(record.args) == 1:
            data = record.args[0]
            text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
            if "<auth" in text or "<response" in text:
                record.args = (redact(text),)
        return True


SLIXMPP_MECHANISMS_LOGGER = "slixmpp.features.feature_mechanisms.mechanisms"


class ExpectedAuthFailureFilter(logging.Filter):
    """Demotes slixmpp's ERROR "No appropriate login method." to DEBUG.

    A backup node that refuses a cached one-time password is a normal step of an HA re-login
    (the client then signs in afresh); the emulated client reports it as its own event, so one
    ERROR line per client per wave would only flood the log.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and str(record.msg).startswith("No appropriate login method"):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


_FILTER = SaslRedactFilter()
_AUTH_FILTER = ExpectedAuthFailureFilter()


def install() -> None:
    """Attach the filters to slixmpp's loggers (idempotent)."""
    stream_logger = logging.getLogger(SLIXMPP_STREAM_LOGGER)
    if _FILTER not in stream_logger.filters:
        stream_logger.addFilter(_FILTER)
    mech_logger = logging.getLogger(SLIXMPP_MECHANISMS_LOGGER)
    if _AUTH_FILTER not in mech_logger.filters:
        mech_logger.addFilter(_AUTH_FILTER)


install()
