"""The ``CISCO-VTG-TOKEN`` SASL mechanism, registered with slixmpp on import.

Cisco Jabber authenticates its XMPP session to IM&P with the one-time password (OTP) it fetched
from the CPA (``get-onetime-password``). The initial response is
``userid=<user>@<domain>\\0token=<otp>`` (../shared/DOMAIN.md, "XMPP side"; IM and Presence
Developer Cookbook 10.5). Credentials: ``username`` (node part), ``host`` (the presence domain) and
``token`` (the OTP as bytes in ``ClientXMPP.credentials['token']``).
"""

from __future__ import annotations

from slixmpp.util.sasl.client import Mech, SASLCancelled, sasl_mech

__all__ = ["CiscoVtgToken", "MECHANISM", "initial_response"]

MECHANISM = "CISCO-VTG-TOKEN"


def initial_response(user: str, domain: str, token: str | bytes) -> bytes:
    """The mechanism's initial response (before base64, which slixmpp applies on the wire).

    Args:
        user: node part of the JID, e.g. ``user00001``.
        domain: presence domain, e.g. ``example.test``.
        token: the OTP.
    """
    tok = token.encode() if isinstance(token, str) else token
    return b"userid=" + user.encode() + b"@" + domain.encode() + b"\x00token=" + tok


@sasl_mech(30)  # above PLAIN (1): chosen whenever the server offers it and a token is set
class CiscoVtgToken(Mech):
    """SASL ``CISCO-VTG-TOKEN``: one message, no challenge."""

    name = MECHANISM
    required_credentials = {"username", "host", "token"}
    security = {"encrypted", "unencrypted_plain"}

    def process(self, challenge: bytes = b"") -> bytes:
        if challenge:
            raise SASLCancelled("CISCO-VTG-TOKEN expects no challenge")  # type: ignore[no-untyped-call]
        token = self.credentials["token"]
        if not token:
            raise SASLCancelled("no one-time password to offer")  # type: ignore[no-untyped-call]
        return initial_response(
            self.credentials["username"].decode(), self.credentials["host"].decode(), token
        )
