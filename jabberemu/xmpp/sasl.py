"""The ``CISCO-VTG-TOKEN`` SASL mechanism, registered with slixmpp on import.

Cisco Jabber authenticates its XMPP session to IM&P with the one-time password (OTP) it fetched
from the CPA (``get-onetime-password``). The initial response is
``userid=<user>@<domain>\\0token=<otp>`` (../shared/DOMAIN.md, "XMPP side"; IM and Presence
Developer Cookbook 10.5). Credentials: ``username`` (node part), ``host`` (the presence domain) and
``token`` (the OTP as bytes in ``ClientXMPP.credentials['token']``).

Also on import (our choice, process-wide): slixmpp's SASLprep (RFC 4013, the stringprep profile its
mechanism choice applies to the user name and password of every login) returns printable ASCII
text unchanged without walking its tables: such text has nothing to map (B.1, C.1.2), nothing to
normalise (NFKC), nothing prohibited (C.2.1 is the ASCII controls, C.2.2 onwards is non-ASCII) and
no right-to-left characters. The profile walked its 15 tables (2 mappings, 10 prohibitions, 3 for
bidirectional text) per character, ~0.1 ms of a login's client CPU (py-spy, bench/login_cost.py);
everything else (bytes, other text, a query) still goes through it (tests/client/test_sasl.py compares
both on generated text and through slixmpp's mechanism choice).
"""

from __future__ import annotations

import slixmpp.util.sasl.client as sasl_client
from slixmpp.util.sasl.client import Mech, SASLCancelled, sasl_mech

__all__ = ["CiscoVtgToken", "MECHANISM", "initial_response", "saslprep"]

_STRINGPREP_SASLPREP = getattr(sasl_client.saslprep, "stringprep_profile", sasl_client.saslprep)


def saslprep(data: str | bytes, query: bool = False) -> str:
    """SASLprep of ``data``: printable ASCII text as it is, anything else through slixmpp's profile.

    Args:
        data: the credential (text, or bytes as slixmpp accepts them).
        query: slixmpp's query flag (slixmpp's profile refuses every query; passed on).

    Returns:
        The prepared text.

    Raises:
        slixmpp.util.stringprep_profiles.StringPrepError: what slixmpp's profile raises.
    """
    if not query and type(data) is str and data.isascii() and data.isprintable():  # U+0020-U+007E only
        return data
    return _STRINGPREP_SASLPREP(data, query)  # type: ignore[no-any-return]


saslprep.stringprep_profile = _STRINGPREP_SASLPREP  # type: ignore[attr-defined]
sasl_client.saslprep = saslprep

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
