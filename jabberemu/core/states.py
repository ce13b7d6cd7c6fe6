"""Jabber client states and the one transition table of the emulated client.

Source: "Planning Guide for Cisco Jabber" 14.1, "Client Behavior During a Failover": on a lost
connection the client goes XMPPCONNECTED -> FAILOVER -> SOAPCONNECT_SESSION_P ->
SOAPCONNECT_SESSION_S -> (both failed: FAILOVER again) -> SOAPCONNECT_P -> SOAPCONNECT_S ->
SOAPCONNECTED -> XMPPCONNECT_P -> XMPPCONNECT_S -> XMPPCONNECTED; after the second failed round it
stops retrying until the user signs in again. Before each round it waits a random time between the
Client Re-Login Lower and Upper Limit cached at its last login (uniform: our choice, DOMAIN.md).

What the states mean for us (our reading; Cisco publishes no more detail):

- ``SOAPCONNECT_P`` / ``_S``: a fresh CPA sign-in with the password on the first / second choice
  node: SOAP ``login`` then ``get-all-config`` (learns the primary and secondary XMPP nodes and the
  re-login limits). Initial login: first choice = the home node (primary), second = its peer.
- ``SOAPCONNECTED``: signed in to the CPA; fetching a one-time password (``get-onetime-password``).
- ``XMPPCONNECT_P`` / ``_S``: XMPP connect + SASL ``CISCO-VTG-TOKEN`` with that fresh OTP (or, in
  XMPP-only mode, PLAIN/SCRAM with the password) + bind + session on the primary / secondary.
- ``SOAPCONNECT_SESSION_P`` / ``_S``: *session* re-login, round one: a CPA SOAP ``login`` on the
  primary / secondary node authenticated with the one-time password cached at the client's last
  sign-in, then ``get-all-config`` (limits and primary/backup refreshed). The TechNote "Configure IM
  and Presence Server High Availability", "Jabber Client Re-Login Timer": "the user must attempt to
  log in to that server via SOAP (Client Profile Agent). This happens automatically with the
  one-time password that is passed from the IMDB database ... Once the timer expires, the client
  then attempts SOAP log in to the secondary node." This login is what costs the server and what
  the re-login limits throttle (docs/login-model.md). It works on either node because the Login
  Datastore is replicated; if replication was cut the node refuses the OTP
  (``bad-onetime-password``) and the client moves on to the other node, then to round two (a fresh
  sign-in with the password). A refused OTP never ends the client: the password was not tried.
  Success leads to SOAPCONNECTED (fresh OTP), then XMPPCONNECT_P / _S, still in round one.
- ``FAILOVER``: waiting the drawn time (a timer) before the next round. Fallback (the backup
  closing the stream) takes the same path: it is just another lost connection.
- End states ``LOGGED_OUT`` (stop requested) and ``GAVE_UP`` carry an :class:`EndReason`.

First / second choice: the primary first, unless a ``see-other-host`` stream error (RFC 6120
§4.9.3.19) named the other node of the pair: then that node comes first (see ``core/relogin.py``).
After a CPA sign-in (password or OTP) the XMPP attempts start on the node whose CPA signed the
client in (our choice: a CPA signs in only the users its node serves, so that is the node "the CPA
named"; the mock answers ``not-served-here`` otherwise). A one-node pair tries its only node twice.

Redirects (``see-other-host``, outcome ``redirect``; rules in ``core/redirect.py``): the named
host may be a node of the pair or any ``host[:port]`` (a node built on the fly, XMPP only: the CPA
sign-in stays with the pair's nodes). During XMPPCONNECT_P / _S the client connects to it at once
("the initiating entity SHOULD attempt to connect to the alternate host"), in the same state: the
redirect replaces that attempt's target, so a failure on the named host moves on exactly as the
attempt's own failure would (_P -> _S, _S -> the end of the round). While XMPPCONNECTED it is an
HA event like any lost connection (FAILOVER, the re-login wait; DOMAIN.md): a host outside the
pair is then the first XMPP choice of the re-login; a node of the pair comes first as before (its
CPA first, then XMPP on the node whose CPA signs the client in). A redirect loop or a chain past ``MAX_REDIRECTS`` is not a
``redirect`` but a ``failure`` of class ``redirect-loop`` / ``too-many-redirects``; malformed text
is a plain ``failure`` (``stream-error:see-other-host``).

Rounds: :class:`Round` NONE during the initial login and while connected, FIRST / SECOND during a
re-login. The initial login has no FAILOVER round: failing on both nodes gives up at once.

XMPP-only mode (no CPA): the SOAP and SESSION states are skipped; every round is XMPPCONNECT_P ->
XMPPCONNECT_S with the password, with the same waits and the same two rounds.

The table maps ``(mode, round, state, outcome, via)`` to ``(state', round', end reason)``. ``via``
only matters in SOAPCONNECTED (which node gave the CPA session: a failed OTP fetch then moves on to
the second choice, or gives up, or, in round one, waits for round two, after it). :func:`lookup` raises on a key the table lacks.
:func:`render_markdown` draws ``docs/client-states.md`` from the table.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

from jabberemu.errors import LocalProtocolError

__all__ = [
    "END_STATES",
    "TABLE",
    "ClientState",
    "EndReason",
    "Mode",
    "Outcome",
    "Round",
    "STATE_SENDS",
    "Transition",
    "TransitionKey",
    "Via",
    "lookup",
    "render_markdown",
    "render_mermaid",
]


class ClientState(enum.Enum):
    """States of one emulated Jabber client (Cisco's names where Cisco names them)."""

    NEW = "NEW"
    SOAPCONNECT_P = "SOAPCONNECT_P"
    SOAPCONNECT_S = "SOAPCONNECT_S"
    SOAPCONNECTED = "SOAPCONNECTED"
    XMPPCONNECT_P = "XMPPCONNECT_P"
    XMPPCONNECT_S = "XMPPCONNECT_S"
    XMPPCONNECTED = "XMPPCONNECTED"
    FAILOVER = "FAILOVER"
    SOAPCONNECT_SESSION_P = "SOAPCONNECT_SESSION_P"
    SOAPCONNECT_SESSION_S = "SOAPCONNECT_SESSION_S"
    LOGGED_OUT = "LOGGED_OUT"
    GAVE_UP = "GAVE_UP"


END_STATES: frozenset[ClientState] = frozenset({ClientState.LOGGED_OUT, ClientState.GAVE_UP})


class EndReason(enum.Enum):
    """Why a client reached an end state (few values, so reports can count them)."""

    STOP_REQUESTED = "stop-requested"
    BAD_CREDENTIALS = "bad-credentials"
    INITIAL_LOGIN_FAILED = "initial-login-failed"
    RELOGIN_FAILED = "relogin-failed"


#: What each state sends on the wire (CPA mode; XMPP-only mode sends only the XMPP part, with the
#: password). The TechNote "Configure IM and Presence Server High Availability", "Jabber Client
#: Re-Login Timer", and docs/login-model.md §2; drawn into docs/client-states.md.
STATE_SENDS: dict[ClientState, str] = {
    ClientState.NEW: "nothing",
    ClientState.SOAPCONNECT_P: "CPA SOAP `login` with the password to the primary (first choice) node, then "
                               "`get-all-config`; the login passes the node's login admission",
    ClientState.SOAPCONNECT_S: "the same to the secondary (second choice) node",
    ClientState.SOAPCONNECTED: "CPA SOAP `get-onetime-password` on the node that signed the client in (a fresh OTP)",
    ClientState.XMPPCONNECT_P: "XMPP: TCP connect, stream, (STARTTLS), SASL `CISCO-VTG-TOKEN` with the fresh OTP "
                               "(XMPP-only: PLAIN/SCRAM with the password), bind, session, roster, initial presence; "
                               "first to the host a see-other-host named, else to the node whose CPA signed the client in",
    ClientState.XMPPCONNECT_S: "the same to the other node (or to the host a see-other-host named)",
    ClientState.XMPPCONNECTED: "stanzas: presence, messages, XEP-0199 pings; nothing on the CPA",
    ClientState.FAILOVER: "nothing: the drawn re-login wait runs (uniform in [lower, upper])",
    ClientState.SOAPCONNECT_SESSION_P: "CPA SOAP `login` with the one-time password cached at the last sign-in "
                                       "(the session re-login) to the primary node, then `get-all-config`; the "
                                       "login passes the node's login admission: the cost the limits throttle",
    ClientState.SOAPCONNECT_SESSION_S: "the same to the secondary node",
    ClientState.LOGGED_OUT: "on the way in: XMPP `</stream:stream>` and CPA SOAP `logout` (best effort)",
    ClientState.GAVE_UP: "nothing more until the user signs in again",
}


class Mode(enum.Enum):
    """CPA (SOAP sign-in + OTP) or XMPP-only (password SASL, no CPA)."""

    CPA = "cpa"
    XMPP_ONLY = "xmpp-only"


class Round(enum.IntEnum):
    """Re-login round: NONE for the initial login and while connected."""

    NONE = 0
    FIRST = 1
    SECOND = 2


class Outcome(enum.Enum):
    """What an input event means to the table (the machine maps events to outcomes)."""

    START = "start"
    SOAP_OK = "soap-ok"
    OTP_OK = "otp-ok"
    XMPP_UP = "xmpp-up"
    FAILURE = "failure"  # attempt failed / connection lost: try elsewhere
    REDIRECT = "redirect"  # see-other-host to a usable host within the hop bound (core/redirect.py)
    REJECTED = "rejected"  # bad credentials: retrying cannot help
    TIMER = "timer"
    STOP = "stop"


class Via(enum.Enum):
    """Guard for SOAPCONNECTED: the CPA session came from the first or second choice node."""

    ANY = "any"
    FIRST = "first"
    SECOND = "second"


class TransitionKey(NamedTuple):
    mode: Mode
    round: Round
    state: ClientState
    outcome: Outcome
    via: Via = Via.ANY


class Transition(NamedTuple):
    state: ClientState
    round: Round
    reason: EndReason | None = None


_NONE, _FIRST, _SECOND = Round.NONE, Round.FIRST, Round.SECOND


def _build() -> dict[TransitionKey, Transition]:
    S, O = ClientState, Outcome  # noqa: N806 - short aliases for the rows below
    table: dict[TransitionKey, Transition] = {}

    def row(mode: Mode, rnd: Round, state: ClientState, outcome: Outcome, dst: ClientState,
            dst_round: Round, reason: EndReason | None = None, via: Via = Via.ANY) -> None:
        key = TransitionKey(mode, rnd, state, outcome, via)
        if key in table:
            raise AssertionError(f"duplicate table row {key}")
        table[key] = Transition(dst, dst_round, reason)

    def failed(rnd: Round) -> EndReason:
        return EndReason.INITIAL_LOGIN_FAILED if rnd is _NONE else EndReason.RELOGIN_FAILED

    cpa, xo = Mode.CPA, Mode.XMPP_ONLY
    bad = EndReason.BAD_CREDENTIALS

    # --- CPA mode -------------------------------------------------------------------------------
    row(cpa, _NONE, S.NEW, O.START, S.SOAPCONNECT_P, _NONE)
    for rnd in (_NONE, _SECOND):  # fresh sign-in: the initial login and re-login round two
        row(cpa, rnd, S.SOAPCONNECT_P, O.SOAP_OK, S.SOAPCONNECTED, rnd)
        row(cpa, rnd, S.SOAPCONNECT_P, O.FAILURE, S.SOAPCONNECT_S, rnd)
        row(cpa, rnd, S.SOAPCONNECT_P, O.REJECTED, S.GAVE_UP, rnd, bad)
        row(cpa, rnd, S.SOAPCONNECT_S, O.SOAP_OK, S.SOAPCONNECTED, rnd)
        row(cpa, rnd, S.SOAPCONNECT_S, O.FAILURE, S.GAVE_UP, rnd, failed(rnd))
        row(cpa, rnd, S.SOAPCONNECT_S, O.REJECTED, S.GAVE_UP, rnd, bad)
        row(cpa, rnd, S.SOAPCONNECTED, O.OTP_OK, S.XMPPCONNECT_P, rnd)
        row(cpa, rnd, S.SOAPCONNECTED, O.FAILURE, S.SOAPCONNECT_S, rnd, via=Via.FIRST)
        row(cpa, rnd, S.SOAPCONNECTED, O.FAILURE, S.GAVE_UP, rnd, failed(rnd), via=Via.SECOND)
        row(cpa, rnd, S.SOAPCONNECTED, O.REJECTED, S.GAVE_UP, rnd, bad)
        row(cpa, rnd, S.XMPPCONNECT_P, O.XMPP_UP, S.XMPPCONNECTED, _NONE)
        row(cpa, rnd, S.XMPPCONNECT_P, O.FAILURE, S.XMPPCONNECT_S, rnd)
        row(cpa, rnd, S.XMPPCONNECT_S, O.XMPP_UP, S.XMPPCONNECTED, _NONE)
        row(cpa, rnd, S.XMPPCONNECT_S, O.FAILURE, S.GAVE_UP, rnd, failed(rnd))
    row(cpa, _NONE, S.XMPPCONNECTED, O.FAILURE, S.FAILOVER, _FIRST)
    # round one: the session re-login (CPA login with the cached OTP), then as a fresh sign-in, but
    # a failure after the second node waits for round two instead of giving up
    row(cpa, _FIRST, S.FAILOVER, O.TIMER, S.SOAPCONNECT_SESSION_P, _FIRST)
    row(cpa, _FIRST, S.SOAPCONNECT_SESSION_P, O.SOAP_OK, S.SOAPCONNECTED, _FIRST)
    row(cpa, _FIRST, S.SOAPCONNECT_SESSION_P, O.FAILURE, S.SOAPCONNECT_SESSION_S, _FIRST)
    row(cpa, _FIRST, S.SOAPCONNECT_SESSION_S, O.SOAP_OK, S.SOAPCONNECTED, _FIRST)
    row(cpa, _FIRST, S.SOAPCONNECT_SESSION_S, O.FAILURE, S.FAILOVER, _SECOND)
    row(cpa, _FIRST, S.SOAPCONNECTED, O.OTP_OK, S.XMPPCONNECT_P, _FIRST)
    row(cpa, _FIRST, S.SOAPCONNECTED, O.FAILURE, S.SOAPCONNECT_SESSION_S, _FIRST, via=Via.FIRST)
    row(cpa, _FIRST, S.SOAPCONNECTED, O.FAILURE, S.FAILOVER, _SECOND, via=Via.SECOND)
    row(cpa, _FIRST, S.SOAPCONNECTED, O.REJECTED, S.GAVE_UP, _FIRST, bad)
    row(cpa, _FIRST, S.XMPPCONNECT_P, O.XMPP_UP, S.XMPPCONNECTED, _NONE)
    row(cpa, _FIRST, S.XMPPCONNECT_P, O.FAILURE, S.XMPPCONNECT_S, _FIRST)
    row(cpa, _FIRST, S.XMPPCONNECT_S, O.XMPP_UP, S.XMPPCONNECTED, _NONE)
    row(cpa, _FIRST, S.XMPPCONNECT_S, O.FAILURE, S.FAILOVER, _SECOND)
    row(cpa, _SECOND, S.FAILOVER, O.TIMER, S.SOAPCONNECT_P, _SECOND)

    # --- XMPP-only mode -------------------------------------------------------------------------
    row(xo, _NONE, S.NEW, O.START, S.XMPPCONNECT_P, _NONE)
    for rnd in (_NONE, _FIRST, _SECOND):
        row(xo, rnd, S.XMPPCONNECT_P, O.XMPP_UP, S.XMPPCONNECTED, _NONE)
        row(xo, rnd, S.XMPPCONNECT_P, O.FAILURE, S.XMPPCONNECT_S, rnd)
        row(xo, rnd, S.XMPPCONNECT_P, O.REJECTED, S.GAVE_UP, rnd, bad)
        row(xo, rnd, S.XMPPCONNECT_S, O.XMPP_UP, S.XMPPCONNECTED, _NONE)
        row(xo, rnd, S.XMPPCONNECT_S, O.REJECTED, S.GAVE_UP, rnd, bad)
    row(xo, _NONE, S.XMPPCONNECT_S, O.FAILURE, S.GAVE_UP, _NONE, EndReason.INITIAL_LOGIN_FAILED)
    row(xo, _FIRST, S.XMPPCONNECT_S, O.FAILURE, S.FAILOVER, _SECOND)
    row(xo, _SECOND, S.XMPPCONNECT_S, O.FAILURE, S.GAVE_UP, _SECOND, EndReason.RELOGIN_FAILED)
    row(xo, _NONE, S.XMPPCONNECTED, O.FAILURE, S.FAILOVER, _FIRST)
    row(xo, _FIRST, S.FAILOVER, O.TIMER, S.XMPPCONNECT_P, _FIRST)
    row(xo, _SECOND, S.FAILOVER, O.TIMER, S.XMPPCONNECT_P, _SECOND)

    # --- see-other-host (RFC 6120 §4.9.3.19), both modes ------------------------------------------
    # During an XMPP attempt: connect to the named host now, in the same state (it replaces the
    # attempt's target; a failure there moves on as the attempt's own failure would). While
    # connected: an HA event like any lost connection (the re-login wait applies), the named host
    # coming first in the re-login (module docstring).
    for mode in (cpa, xo):
        for rnd in (_NONE, _FIRST, _SECOND):
            row(mode, rnd, S.XMPPCONNECT_P, O.REDIRECT, S.XMPPCONNECT_P, rnd)
            row(mode, rnd, S.XMPPCONNECT_S, O.REDIRECT, S.XMPPCONNECT_S, rnd)
        row(mode, _NONE, S.XMPPCONNECTED, O.REDIRECT, S.FAILOVER, _FIRST)

    # --- stop from every live (mode, round, state) the table reaches -----------------------------
    live = {(k.mode, k.round, k.state) for k in table}
    for mode, rnd, state in sorted(live, key=lambda t: (t[0].value, t[1], t[2].value)):
        row(mode, rnd, state, O.STOP, S.LOGGED_OUT, rnd, EndReason.STOP_REQUESTED)
    return table


TABLE: dict[TransitionKey, Transition] = _build()


def lookup(mode: Mode, rnd: Round, state: ClientState, outcome: Outcome,
           via: Via = Via.ANY) -> Transition:
    """Find the transition for an outcome in a state.

    Args:
        mode, rnd, state, outcome: the table key.
        via: which node gave the CPA session (only consulted in SOAPCONNECTED).

    Returns:
        The :class:`Transition` (target state, target round, end reason or None).

    Raises:
        LocalProtocolError: the table has no such row.
    """
    found = TABLE.get(TransitionKey(mode, rnd, state, outcome, via))
    if found is None and via is not Via.ANY:
        found = TABLE.get(TransitionKey(mode, rnd, state, outcome, Via.ANY))
    if found is None:
        raise LocalProtocolError(
            f"no transition for {outcome.value} in {state.value} "
            f"(mode {mode.value}, round {int(rnd)})"
        )
    return found


def render_mermaid(mode: Mode) -> str:
    """Draw the table of one mode as a Mermaid ``stateDiagram-v2`` (STOP rows left out).

    Returns:
        The diagram source: one edge per (state, next state), its rows' labels joined by ``;``.
    """
    edges: dict[tuple[ClientState, ClientState], list[str]] = {}
    for key, tr in TABLE.items():
        if key.mode is not mode or key.outcome is Outcome.STOP:
            continue
        label = key.outcome.value
        if key.round is not Round.NONE:
            label += f" [r{int(key.round)}]"
        if key.via is not Via.ANY:
            label += f" [via {key.via.value}]"
        if tr.round is not key.round and tr.state not in END_STATES:
            label += f" / r{int(tr.round)}"
        if tr.reason is not None:
            label += f" / {tr.reason.value}"
        edges.setdefault((key.state, tr.state), []).append(label)
    lines = ["stateDiagram-v2", "    [*] --> NEW"]
    for (src, dst), labels in edges.items():
        lines.append(f"    {src.value} --> {dst.value}: {'; '.join(labels)}")
    lines.append("    LOGGED_OUT --> [*]")
    lines.append("    GAVE_UP --> [*]")
    return "\n".join(lines) + "\n"


def render_markdown() -> str:
    """The whole of ``docs/client-states.md``: both diagrams plus the table as Markdown."""
    out = [
        "# Emulated Jabber client states",
        "",
        "Generated from the table in `jabberemu/core/states.py` (whose docstring says what each state",
        "means) by `python -c 'import sys, jabberemu.core.states as s; sys.stdout.write(s.render_markdown())'",
        "> docs/client-states.md`. Do not edit by hand; a test checks it is current.",
        "Labels: outcome, `[rN]` = in re-login round N, `/ rN` = enters round N, `/ reason` = end reason.",
        "`stop` leads from every live state to LOGGED_OUT (stop-requested) and is left out of the drawings.",
        "",
    ]
    for mode in Mode:
        out += [f"## Mode {mode.value}", "", "```mermaid", render_mermaid(mode).rstrip("\n"), "```", ""]
    out += ["## What each state sends", "", "| state | sends |", "|---|---|"]
    out += [f"| {state.value} | {text} |" for state, text in STATE_SENDS.items()]
    out += [""]
    out += ["## Table", "", "| mode | round | state | outcome | via | -> state | -> round | reason |",
            "|---|---|---|---|---|---|---|---|"]
    for key, tr in TABLE.items():
        out.append(
            f"| {key.mode.value} | {int(key.round)} | {key.state.value} | {key.outcome.value} | "
            f"{key.via.value} | {tr.state.value} | {int(tr.round)} | "
            f"{tr.reason.value if tr.reason else ''} |"
        )
    return "\n".join(out) + "\n"

