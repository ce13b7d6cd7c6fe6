"""The small parts :class:`~jabberemu.xmpp.lean.LeanClientXMPP` is built from (slixmpp 1.17).

- :func:`break_transport_cycle`: drops the bound method an asyncio socket transport keeps of itself;
- :class:`LeanIq`: slixmpp's ``Iq`` whose ``send`` leaves no self-referring closure (``_IqWaiter``);
- :class:`RawIqError`, :class:`MatchTag`: the raw IQ's error and a tag matcher for the hot path;
- stand-ins for what ``BaseXMPP`` makes per connection and an emulated client never uses: the send
  queue (``_NoQueue``), the bind event (``_BindFlag``), the API registry (``_NoApi``), and
  :class:`RosterView`, the available resources of the contacts instead of slixmpp's roster.

Why each exists, with the measured savings: :mod:`jabberemu.xmpp.lean`.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.jid import JID
from slixmpp.stanza import Iq, StreamFeatures
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatcherId
from slixmpp.xmlstream.matcher.base import MatcherBase
from slixmpp.xmlstream.matcher.idsender import MatchIDSender
from slixmpp.xmlstream.stanzabase import StanzaBase

__all__ = ["IQ_DEFAULT_TIMEOUT_S", "LeanIq", "LeanStreamFeatures", "MatchTag", "RawIqError", "RosterView",
           "break_transport_cycle"]

#: Seconds an IQ waits for its answer when the caller gives no timeout (slixmpp's default).
IQ_DEFAULT_TIMEOUT_S = 120


def break_transport_cycle(transport: Any) -> None:
    """Drop the bound method an asyncio socket transport keeps of itself (``_read_ready_cb``).

    CPython's ``_SelectorSocketTransport`` keeps ``self._read_ready__data_received`` as an
    attribute: a reference cycle that outlives the connection. Call it once the transport is
    closed (in ``connection_lost``: its reader is removed by then). Other transports are left alone.
    """
    if getattr(transport, "_read_ready_cb", None) is not None:
        transport._read_ready_cb = None


class _IqWaiter:
    """What ``Iq.send`` keeps while an IQ waits for its answer, as an object instead of a closure
    that refers to itself (slixmpp 1.17 ``Iq.send``: ``callback_success``/``callback_timeout``)."""

    __slots__ = ("iq", "future", "callback", "matcher", "name")

    def __init__(self, iq: LeanIq, future: asyncio.Future[Any], callback: Any, matcher: Any, name: str) -> None:
        self.iq = iq
        self.future = future
        self.callback = callback
        self.matcher = matcher
        self.name = name

    def __call__(self, result: Any) -> None:
        stream: Any = self.iq.stream
        kind = result["type"]
        if kind == "result":
            if not self.future.done():
                self.future.set_result(result)
        elif kind == "error":
            if not self.future.done():
                self.future.set_exception(IqError(result))  # type: ignore[no-untyped-call]
        else:  # an IQ addressed to ourselves: wait on (as slixmpp does)
            stream.register_handler(Callback(self.name, self.matcher, self, once=True))
            return
        stream.cancel_schedule(f"IqTimeout_{self.iq['id']}")
        waiting = getattr(stream, "_iq_waiters", None)
        if waiting is not None:
            waiting.pop(self.name, None)
        if self.callback is not None:
            self.callback(result)

    def expire(self) -> None:
        if not self.future.done():
            self.future.set_exception(IqTimeout(self.iq))  # type: ignore[no-untyped-call]
        stream: Any = self.iq.stream
        stream.remove_handler(self.name)
        waiting = getattr(stream, "_iq_waiters", None)
        if waiting is not None:
            waiting.pop(self.name, None)


class LeanStreamFeatures(StreamFeatures):
    """slixmpp's ``StreamFeatures`` without the values round trip of its ``setup`` (our choice).

    slixmpp 1.17's ``StreamFeatures.setup`` runs ``self.values = self.values``: it reads every
    interface and plugin of the new stanza and writes them back. ``ElementBase.__init__`` calls
    ``setup`` before it loads the plugins of the parsed children, so the round trip reads an empty
    stanza and writes nothing back (the features offered are loaded just after, as before); it cost
    ~0.1 ms per login, two ``<stream:features/>`` a login (three with STARTTLS; py-spy). The features
    a parsed stanza offers are the same (tests/client/test_xmpp_lean.py).

    The class shares ``StreamFeatures``' plugin tables (it defines none of its own), so the feature
    plugins slixmpp registers on ``StreamFeatures`` are its too; never call ``register_stanza_plugin``
    on this class, which would give it tables of its own.
    """

    def setup(self, xml: Any = None) -> bool:
        return bool(StanzaBase.setup(self, xml))


class LeanIq(Iq):
    """slixmpp's ``Iq`` whose :meth:`send` leaves no reference cycle behind (same behaviour)."""

    def send(self, callback: Any = None, timeout: float | None = None) -> asyncio.Future[Any]:  # type: ignore[override]
        """Send the IQ (slixmpp 1.17 ``Iq.send``): a ``get``/``set`` returns a future of the answer
        (``IqError`` for an error answer, ``IqTimeout`` after ``timeout`` s, default 120 s); any
        other type returns a future already done.
        """
        if timeout is not None and not isinstance(timeout, (float, int)):
            raise TypeError(f'Wrong type for "timeout" parameter: {type(timeout)}')
        stream: Any = self.stream
        future: asyncio.Future[Any] = asyncio.Future(loop=stream.loop)
        if self["type"] in ("get", "set"):
            if stream.session_bind_event.is_set():
                matcher: Any = MatchIDSender({"id": self["id"], "self": stream.boundjid, "peer": self["to"]})
            else:
                matcher = MatcherId(self["id"])
            name = f"IqCallback_{self['id']}"
            waiter = _IqWaiter(self, future, callback, matcher, name)
            stream.schedule(f"IqTimeout_{self['id']}", IQ_DEFAULT_TIMEOUT_S if timeout is None else timeout,
                            waiter.expire, repeat=False)
            stream.register_handler(Callback(name, matcher, waiter, once=True))
            waiting = getattr(stream, "_iq_waiters", None)
            if waiting is not None:
                waiting[name] = waiter
        else:
            future.set_result(None)
        StanzaBase.send(self)
        return future


class RawIqError(Exception):
    """An ``<iq type='error'/>`` answered a raw IQ (:meth:`LeanClientXMPP.send_raw_iq`).

    Attributes:
        condition: the stanza error's defined condition (RFC 6120 §8.3.3), e.g. ``service-unavailable``.
    """

    def __init__(self, condition: str) -> None:
        super().__init__(condition)
        self.condition = condition


class MatchTag(MatcherBase):
    """Matches a stanza by its element tag (and, for an IQ, its type and a child element): what the
    single-step ``MatchXPath``/``StanzaPath`` criteria of a client's handlers test, without building a
    wrapper element and an XPath search per stanza (our choice; same answers for these criteria).

    Args:
        tag: the stanza's qualified tag, e.g. ``{jabber:client}presence``.
        iq_type: for an ``<iq/>``, the ``type`` it must have.
        child: a child element the stanza must have (qualified tag).
    """

    def __init__(self, tag: str, *, iq_type: str | None = None, child: str | None = None) -> None:
        super().__init__(tag)
        self.tag = tag
        self.iq_type = iq_type
        self.child = child

    def match(self, stanza: Any) -> bool:
        xml = stanza.xml
        if xml.tag != self.tag:
            return False
        if self.iq_type is not None and xml.get("type") != self.iq_type:
            return False
        return self.child is None or xml.find(self.child) is not None


def _single_step(criteria: str) -> str | None:
    """The tag of a one-step, namespaced ``MatchXPath`` criteria (``{ns}name``), else None."""
    if criteria.startswith("{") and "/" not in criteria.rsplit("}", 1)[-1] and "[" not in criteria:
        return criteria
    return None


_IDS = itertools.count(1)


class _NoQueue:
    """Stands in for slixmpp's per-connection send queue (an ``asyncio.Queue``, ~2.4 KiB) while nothing
    waits in it: :meth:`LeanClientXMPP.send` makes the real queue the first time a stanza must wait."""

    __slots__ = ()

    def empty(self) -> bool:
        return True

    def qsize(self) -> int:
        return 0

    def get_nowait(self) -> Any:
        raise asyncio.QueueEmpty

    def put_nowait(self, item: Any) -> None:
        raise RuntimeError("the stand-in send queue takes nothing (LeanClientXMPP makes a real one)")

    async def join(self) -> None:
        return None


_NO_QUEUE = _NoQueue()


class _BindFlag:
    """Stands in for ``BaseXMPP.session_bind_event`` (an ``asyncio.Event`` nobody here awaits)."""

    __slots__ = ("_set",)

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def clear(self) -> None:
        self._set = False

    def is_set(self) -> bool:
        return self._set


class _NoApi:
    """Stands in for ``BaseXMPP.api`` (a per-client ``APIRegistry``): ``BasePlugin.__init__`` asks it
    for a wrapper, and none of the stream-feature plugins loaded here calls one."""

    __slots__ = ()

    def wrap(self, _name: str) -> _NoApi:
        return self


_NO_API = _NoApi()


class _Contact:
    """What :class:`RosterView` shows of one contact: its available resources."""

    __slots__ = ("resources",)

    def __init__(self, resources: dict[str, dict[str, Any]]) -> None:
        self.resources = resources


class RosterView:
    """Read-only, slixmpp-shaped view of the presence seen: ``view[jid].resources``."""

    __slots__ = ("_available",)

    def __init__(self, available: dict[str, dict[str, dict[str, Any]]]) -> None:
        self._available = available

    def __getitem__(self, jid: str) -> _Contact:
        return _Contact(dict(self._available.get(str(JID(jid).bare), {})))
