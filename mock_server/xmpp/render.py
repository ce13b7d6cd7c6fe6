"""The XML the server writes on a c2s stream, rendered from plain values (RFC 6120, RFC 6121,
XEP-0199): the stream header and features, SASL and STARTTLS answers, iq results and errors, the
roster, pings, bounces and stream errors.

Pure functions, no state: the stream (``xmpp.wire.C2sStream``) decides *what* to write and when;
this module only spells it. Attribute values and text are escaped here. The golden files in
``tests/data/xmpp/`` pin the bytes.
"""

from __future__ import annotations

from collections.abc import Sequence

from mock_server.xmpp.backend import RosterItem
from mock_server.xmpp.events import SaslCondition, SaslMechanism, StanzaCondition, StreamCondition
from mock_server.xmpp.xml import NS_STREAM, attr_escape as qa, text_escape as qt

__all__ = [
    "NS_BIND", "NS_CLIENT", "NS_HOSTNAME", "NS_PING", "NS_ROSTER", "NS_SASL", "NS_SESSION", "NS_STANZA_ERR",
    "NS_STREAM_ERR", "NS_TLS", "bind_result", "bounce", "features", "iq_error", "iq_result", "ping",
    "roster_result", "sasl_failure", "stream_error", "stream_header",
]

NS_CLIENT = "jabber:client"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_SESSION = "urn:ietf:params:xml:ns:xmpp-session"
NS_STREAM_ERR = "urn:ietf:params:xml:ns:xmpp-streams"
NS_STANZA_ERR = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_ROSTER = "jabber:iq:roster"
NS_PING = "urn:xmpp:ping"
NS_HOSTNAME = "urn:xmpp:domain-based-name:0"


def stream_header(*, stream_id: str, domain: str, to: str | None) -> str:
    """Our stream header (RFC 6120 §4.7), answering the client's ``from`` with ``to``."""
    to_attr = f" to='{qa(to)}'" if to else ""
    return (f"<?xml version='1.0'?><stream:stream xmlns='{NS_CLIENT}' xmlns:stream='{NS_STREAM}'"
            f" id='{qa(stream_id)}' from='{qa(domain)}'{to_attr} version='1.0' xml:lang='en'>")


def features(*, binding: bool, starttls: bool, tls_required: bool, sasl: bool,
             hostname_hints: Sequence[str] = ()) -> str:
    """``<stream:features>`` (RFC 6120 §4.3.2): bind and session after authentication; else
    STARTTLS (``<required/>`` when asked) and/or the SASL mechanisms with the host-name hints
    (DOMAIN.md "XMPP side")."""
    parts = ["<stream:features>"]
    if binding:
        parts.append(f"<bind xmlns='{NS_BIND}'/><session xmlns='{NS_SESSION}'><optional/></session>")
    else:
        if starttls:
            req = "<required/>" if tls_required else ""
            parts.append(f"<starttls xmlns='{NS_TLS}'>{req}</starttls>")
        if sasl:
            parts.append(f"<mechanisms xmlns='{NS_SASL}'>")
            parts.extend(f"<mechanism>{m.value}</mechanism>" for m in SaslMechanism)
            parts.extend(f"<hostname xmlns='{NS_HOSTNAME}'>{qt(h)}</hostname>" for h in hostname_hints)
            parts.append("</mechanisms>")
    parts.append("</stream:features>")
    return "".join(parts)


def sasl_failure(condition: SaslCondition, text: str | None = None) -> str:
    """A SASL ``<failure/>`` (RFC 6120 §6.5)."""
    body = f"<text xml:lang='en'>{qt(text)}</text>" if text else ""
    return f"<failure xmlns='{NS_SASL}'><{condition.value}/>{body}</failure>"


def iq_result(iq_id: str, *, from_jid: str | None = None) -> str:
    """An empty iq result (session, RFC 3921 §3; ping answer, XEP-0199 §4.3)."""
    from_attr = f" from='{qa(from_jid)}'" if from_jid is not None else ""
    return f"<iq type='result' id='{qa(iq_id)}'{from_attr}/>"


def iq_error(iq_id: str, condition: str, kind: str) -> str:
    """An iq error (RFC 6120 §8.3) with one defined condition of type ``kind``."""
    return (f"<iq type='error' id='{qa(iq_id)}'><error type='{kind}'>"
            f"<{condition} xmlns='{NS_STANZA_ERR}'/></error></iq>")


def bind_result(iq_id: str, jid: str) -> str:
    """The resource binding result (RFC 6120 §7.6.1)."""
    return f"<iq type='result' id='{qa(iq_id)}'><bind xmlns='{NS_BIND}'><jid>{qt(jid)}</jid></bind></iq>"


def roster_result(iq_id: str, to: str, items: Sequence[RosterItem]) -> str:
    """The roster (RFC 6121 §2.1.3)."""
    parts = [f"<iq type='result' id='{qa(iq_id)}' to='{qa(to)}'><query xmlns='{NS_ROSTER}'>"]
    for it in items:
        name = f" name='{qa(it.name)}'" if it.name else ""
        groups = "".join(f"<group>{qt(g)}</group>" for g in it.groups)
        parts.append(f"<item jid='{qa(it.jid)}'{name} subscription='{it.subscription.value}'>{groups}</item>")
    parts.append("</query></iq>")
    return "".join(parts)


def ping(iq_id: str, *, from_jid: str, to: str) -> str:
    """A server-to-client ping (XEP-0199 §4.2)."""
    return (f"<iq type='get' id='{qa(iq_id)}' from='{qa(from_jid)}' to='{qa(to)}'>"
            f"<ping xmlns='{NS_PING}'/></iq>")


def bounce(kind: str, *, from_jid: str, to: str, stanza_id: str | None, condition: StanzaCondition) -> str:
    """A stanza error reply of ``kind`` (message or iq) from the address nobody took (RFC 6121
    §8.5.2.2.1, §8.5.3.2.1)."""
    sid = f" id='{qa(stanza_id)}'" if stanza_id is not None else ""
    return (f"<{kind} type='error' from='{qa(from_jid)}' to='{qa(to)}'{sid}>"
            f"<error type='cancel'><{condition.value} xmlns='{NS_STANZA_ERR}'/></error>"
            f"</{kind}>")


def stream_error(condition: StreamCondition, text: str | None) -> str:
    """A stream error and the end of our stream (RFC 6120 §4.9): ``see-other-host`` carries
    ``text`` as its content (``host:port``, §4.9.3.19), the others as ``<text/>``."""
    if condition is StreamCondition.SEE_OTHER_HOST:
        body = f"<{condition.value} xmlns='{NS_STREAM_ERR}'>{qt(text or '')}</{condition.value}>"
    else:
        body = f"<{condition.value} xmlns='{NS_STREAM_ERR}'/>"
        if text:
            body += f"<text xmlns='{NS_STREAM_ERR}' xml:lang='en'>{qt(text)}</text>"
    return f"<stream:error>{body}</stream:error></stream:stream>"
