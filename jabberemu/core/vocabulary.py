"""The one vocabulary of why a client ended and why an attempt failed (drawn into docs/failure-causes.md).

Every failed request record carries a *cause* (``cause`` field of ``client_events.jsonl``, the
``cause`` of a :class:`~jabberemu.core.metrics.Measurement`), and every HA event a *class*
(``ha_event.cls``), both spelled ``<kind>`` or ``<kind>:<detail>`` (:attr:`Cause.cls`); every client
that ends has an end state and an end reason. This module says what each word means; the report's
"Failures by cause" table and the accounting group by these words, and
:func:`render_markdown` writes the page users read (a test checks the page is current).
"""

from __future__ import annotations

from jabberemu.core.events import CauseKind, SaslCondition, Stage, StreamCondition
from jabberemu.core.states import EndReason

__all__ = [
    "CAUSE_KINDS",
    "END_REASONS",
    "FAULT_CODES",
    "REPORT_ONLY_REASONS",
    "render_markdown",
]

#: What each end reason means (the state it comes with in brackets).
END_REASONS: dict[EndReason, str] = {
    EndReason.STOP_REQUESTED: "LOGGED_OUT: the run stopped the user (end of the test, Locust stop); "
                              "not a failure",
    EndReason.BAD_CREDENTIALS: "GAVE_UP: the CPA refused the password (`soap-fault:bad-credentials`) or, "
                               "XMPP-only, SASL refused it; retrying cannot help",
    EndReason.INITIAL_LOGIN_FAILED: "GAVE_UP: the first sign-in failed on both nodes (each failure's cause "
                                    "is in the client's state records and request records)",
    EndReason.RELOGIN_FAILED: "GAVE_UP: both re-login rounds after an HA event failed on both nodes",
}

#: Reasons the report gives to clients that have no end record of their own.
REPORT_ONLY_REASONS: dict[str, str] = {
    "no end record": "the run was cut (partial run): the client is counted in its last state",
    "pending": "the client was still inside its re-login window when the run ended: the wave was cut, "
               "its verdict is INCONCLUSIVE, not FAIL",
}

#: (form, meaning) of each cause kind.
CAUSE_KINDS: dict[CauseKind, tuple[str, str]] = {
    CauseKind.STREAM_ERROR: ("stream-error:<condition>",
                             "the server ended the XMPP stream with a stream error (RFC 6120 §4.9.3); an "
                             "HA event when the client was connected (`system-shutdown` on failover and "
                             "fallback)"),
    CauseKind.CONNECTION_RESET: ("connection-reset", "the TCP connection was reset (a killed node, a cut link)"),
    CauseKind.CONNECTION_CLOSED: ("connection-closed",
                                  "the peer closed the TCP connection without a stream error"),
    CauseKind.CONNECTION_REFUSED: ("connection-refused", "nothing listens at that address and port (a node down)"),
    CauseKind.DNS_FAILURE: ("dns-failure", "the host name did not resolve: no connection was tried"),
    CauseKind.PING_TIMEOUT: ("ping-timeout",
                             "the server did not answer an XEP-0199 ping within `--ping-timeout`: a silent "
                             "peer, an HA event"),
    CauseKind.SOAP_FAULT: ("soap-fault:<code>", "the CPA answered a SOAP fault; `<code>` is its "
                           "`epas:error/@code` (below), `unknown` when it has none"),
    CauseKind.HTTP_ERROR: ("http-error:<status>:<content type>",
                           "the CPA URL answered HTTP that is not a SOAP answer (a proxy's HTML 500 page, "
                           "a 404): status and content type as received"),
    CauseKind.AUTH_FAILURE: ("auth-failure:<condition>",
                             "SASL failed (RFC 6120 §6.5): `not-authorized` for a refused one-time "
                             "password or password"),
    CauseKind.TIMEOUT: ("timeout:<stage>",
                        "the client gave up waiting at one stage: `soap` (`--soap-timeout`, a CPA call "
                        "including its wait in the node's login queue), `connect`, `auth`, `bind`"),
    CauseKind.REDIRECT_LOOP: ("redirect-loop", "see-other-host led back to a host already tried in this attempt"),
    CauseKind.TOO_MANY_REDIRECTS: ("too-many-redirects",
                                   "more see-other-host hops than the client follows in one attempt"),
}

#: CPA ``epas:error/@code`` values the mock sends and what they mean (a real CPA's codes are kept
#: as it sends them).
FAULT_CODES: dict[str, str] = {
    "bad-credentials": "wrong user or password",
    "bad-onetime-password": "the one-time password of a session login is unknown to this node (never "
                            "issued, used, or not replicated from the peer)",
    "unknown-session": "a call with a session key the node does not know",
    "not-served-here": "this node does not serve the user now (its peer does)",
    "services-stopped": "the node's services are stopped (failed over, Idle): no login is admitted",
    "server-busy": "the node's login queue is full: refused at arrival (docs/login-model.md)",
    "malformed-request": "the request is not a valid CPA call",
    "unknown-operation": "the operation is not part of the CPA service",
}


def _details(kind: CauseKind) -> list[str]:
    if kind is CauseKind.STREAM_ERROR:
        return [c.value for c in StreamCondition]
    if kind is CauseKind.AUTH_FAILURE:
        return [c.value for c in SaslCondition]
    if kind is CauseKind.TIMEOUT:
        return [s.value for s in Stage]
    if kind is CauseKind.SOAP_FAULT:
        return [*FAULT_CODES, "unknown"]
    return []


def render_markdown() -> str:
    """The whole of ``docs/failure-causes.md``."""
    out = [
        "# Why clients end and why attempts fail",
        "",
        "Generated from `jabberemu/core/vocabulary.py` by `python -c 'import sys, jabberemu.core.vocabulary as v;",
        "sys.stdout.write(v.render_markdown())' > docs/failure-causes.md`. Do not edit by hand; a test checks",
        "it is current. The report's \"Failures by cause\" table groups failed requests by these words,",
        "with first and last seen; its accounting counts every client once, by end state and reason.",
        "",
        "## End reasons",
        "",
        "| reason | state and meaning |",
        "|---|---|",
    ]
    out += [f"| `{reason.value}` | {text} |" for reason, text in END_REASONS.items()]
    out += [f"| `{reason}` | report only: {text} |" for reason, text in REPORT_ONLY_REASONS.items()]
    out += [
        "",
        "## Causes of failed attempts and HA events",
        "",
        "A failed request's `cause` and an HA event's class, `<kind>` or `<kind>:<detail>`.",
        "",
        "| cause | meaning | details |",
        "|---|---|---|",
    ]
    for kind, (form, text) in CAUSE_KINDS.items():
        details = ", ".join(f"`{d}`" for d in _details(kind)) or "none"
        out.append(f"| `{form}` | {text} | {details} |")
    out += ["", "## CPA fault codes", "", "| code | meaning |", "|---|---|"]
    out += [f"| `{code}` | {text} |" for code, text in FAULT_CODES.items()]
    out += [
        "",
        "A failed request without a cause (an activity stanza that could not be sent, say) is grouped",
        "as `unclassified:<exception class>`.",
        "",
    ]
    return "\n".join(out)
