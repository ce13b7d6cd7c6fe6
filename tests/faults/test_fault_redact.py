"""The slixmpp DEBUG-log filter of ``jabberemu.xmpp.redact``: SASL payloads never reach a handler."""

from __future__ import annotations

import base64
import logging

import pytest

import jabberemu.xmpp.client  # noqa: F401  (installs the filter, as every jabberemu XMPP user does)
from jabberemu.xmpp.redact import REDACTED, SLIXMPP_STREAM_LOGGER, SaslRedactFilter, install, redact

PLAIN = base64.b64encode(b"\0user00001\0pass-user00001").decode()
TOKEN = base64.b64encode(b"userid=user00001@example.test\0token=OTP123").decode()


def test_redact_replaces_auth_and_response_payloads_only() -> None:
    assert redact(f'<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="PLAIN">{PLAIN}</auth>') == \
        f'<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="PLAIN">{REDACTED}</auth>'
    assert redact(f"<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{TOKEN}</response>") == \
        f"<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{REDACTED}</response>"
    assert redact("<authority>x</authority><presence/>") == "<authority>x</authority><presence/>"
    assert redact("<auth mechanism='X'/>") == "<auth mechanism='X'/>"


def test_slixmpp_send_lines_are_redacted_before_any_handler(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=SLIXMPP_STREAM_LOGGER)
    install()  # idempotent
    log = logging.getLogger(SLIXMPP_STREAM_LOGGER)
    assert sum(isinstance(f, SaslRedactFilter) for f in log.filters) == 1
    log.debug("SEND: %s", f"<auth mechanism='CISCO-VTG-TOKEN'>{TOKEN}</auth>")
    log.debug("SEND: %s", f"<auth mechanism='PLAIN'>{PLAIN}</auth>".encode())
    log.debug("RECV: %s", "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [f"SEND: <auth mechanism='CISCO-VTG-TOKEN'>{REDACTED}</auth>",
                        f"SEND: <auth mechanism='PLAIN'>{REDACTED}</auth>",
                        "RECV: <success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"]
    assert TOKEN not in caplog.text and PLAIN not in caplog.text


def test_refused_otp_is_not_an_error_line(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from jabberemu.xmpp.redact import SLIXMPP_MECHANISMS_LOGGER

    logger = logging.getLogger(SLIXMPP_MECHANISMS_LOGGER)
    with caplog.at_level(logging.INFO):
        logger.error("No appropriate login method.")
        logger.error("something else")
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == ["something else"]
