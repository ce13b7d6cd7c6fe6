"""SASL initial responses the mock accepts, decoded and checked (no credential lookup here).

- ``PLAIN`` (RFC 4616): ``[authzid] NUL authcid NUL passwd``; authcid is ``user`` or
  ``user@domain``; a non-empty authzid must name the same account (RFC 6120 §6.4.6, §6.5.6).
- ``CISCO-VTG-TOKEN`` (Cisco Jabber's token login against IM and Presence, DOMAIN.md "XMPP side"):
  ``userid=<user>@<domain> NUL token=<otp>``.

Both arrive base64-encoded in ``<auth/>`` or ``<response/>``; ``=`` is an empty response
(RFC 6120 §6.4.2). Failures map to the RFC 6120 §6.5 conditions.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

from mock_server.xmpp.events import SaslCondition, SaslMechanism

__all__ = ["SaslCredentials", "decode_sasl"]


@dataclass(frozen=True, kw_only=True)
class SaslCredentials:
    """A decoded response: lower-cased user id and the secret (password or OTP, never shown)."""

    user: str
    secret: str = field(repr=False)


def _user_of(ident: str, domain: str) -> str | None:
    local, at, dom = ident.rpartition("@")
    if not at:
        local, dom = ident, domain
    if not local or "/" in ident or dom.lower() != domain.lower():
        return None
    return local.lower()


def decode_sasl(mechanism: SaslMechanism, text: str, domain: str) -> SaslCredentials | SaslCondition:
    """Decode a base64 SASL response for ``mechanism``.

    Args:
        mechanism: the mechanism the client chose.
        text: the element's character data (base64, or ``=`` for empty).
        domain: the presence domain a user identity must belong to.

    Returns:
        The credentials, or the SASL failure condition: ``incorrect-encoding`` (bad base64),
        ``malformed-request`` (wrong shape, not UTF-8), ``not-authorized`` (another domain, bad
        identity), ``invalid-authzid`` (PLAIN authzid for another account).
    """
    text = text.strip()
    try:
        payload = b"" if text == "=" else base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return SaslCondition.INCORRECT_ENCODING
    if text != "=" and base64.b64encode(payload).decode() != text:
        return SaslCondition.INCORRECT_ENCODING  # RFC 4648 §3.5, §4: canonical padding only ("====", "AAAA====")
    try:
        fields = payload.decode("utf-8").split("\0")
    except UnicodeDecodeError:
        return SaslCondition.MALFORMED_REQUEST
    if mechanism is SaslMechanism.PLAIN:
        if len(fields) != 3 or not fields[1] or not fields[2]:
            return SaslCondition.MALFORMED_REQUEST
        user = _user_of(fields[1], domain)
        if user is None:
            return SaslCondition.NOT_AUTHORIZED
        if fields[0] and fields[0].lower() not in (user, f"{user}@{domain}".lower()):
            return SaslCondition.INVALID_AUTHZID
        return SaslCredentials(user=user, secret=fields[2])
    pairs = dict(f.partition("=")[::2] for f in fields if f)
    if len(fields) != 2 or not pairs.get("userid") or not pairs.get("token"):
        return SaslCondition.MALFORMED_REQUEST
    user = _user_of(pairs["userid"], domain)
    if user is None:
        return SaslCondition.NOT_AUTHORIZED
    return SaslCredentials(user=user, secret=pairs["token"])
