"""What a c2s listener is set up with and what it counts: :class:`ListenerSettings` (tunables, all
our choice; tests shrink the timers) and the names of its counters (:data:`COUNTERS`), read as
:class:`ListenerMetrics`. No I/O."""

from __future__ import annotations

from dataclasses import dataclass

from mock_server.xmpp.xml import ParseLimits

__all__ = ["COUNTERS", "ListenerMetrics", "ListenerSettings"]

COUNTERS = ("connections_total", "connections_active", "sessions_active", "auths_ok", "auths_failed",
            "redirects", "stream_errors_sent", "pings_sent", "pongs_received", "ping_timeouts",
            "stanzas_routed", "stanzas_bounced", "tls_upgrades", "bytes_received")
"""The listener's counters: the listener counts connections, the connections count what their
streams did, the session table counts sessions and routed stanzas."""


@dataclass(frozen=True, kw_only=True)
class ListenerSettings:
    """Listener tunables (all our choice; tests shrink the timers).

    Args:
        limits: XML limits per stream (stanza size default 64 KiB).
        tls_required: refuse SASL before STARTTLS (needs an ``ssl_context``).
        ping_interval_s: ping a bound client idle this long (XEP-0199 §4.2); 0 turns pinging off.
        ping_timeout_s: close with ``connection-timeout`` when the ping is unanswered this long.
        max_connections: over this, a new stream gets ``resource-constraint`` (RFC 6120 §4.9.3.17).
        max_write_buffer_bytes: a client that does not read past this is reset.
        close_grace_s: after our closing bytes, reset the socket if the client has not gone.

    Raises:
        ValueError: negative or zero values where positive ones are needed.
    """

    limits: ParseLimits = ParseLimits()
    tls_required: bool = False
    ping_interval_s: float = 0.0
    ping_timeout_s: float = 30.0
    max_connections: int = 50_000
    max_write_buffer_bytes: int = 4 * 1024 * 1024
    close_grace_s: float = 2.0

    def __post_init__(self) -> None:
        if self.ping_interval_s < 0 or self.ping_timeout_s <= 0 or self.close_grace_s <= 0:
            raise ValueError("ping_interval_s >= 0, ping_timeout_s > 0 and close_grace_s > 0 required")
        if self.max_connections < 1 or self.max_write_buffer_bytes < 64 * 1024:
            raise ValueError("max_connections >= 1 and max_write_buffer_bytes >= 64 KiB required")


class ListenerMetrics(dict[str, int]):
    """A snapshot of the listener counters; calling it returns a plain ``dict`` copy."""

    def __call__(self) -> dict[str, int]:
        return dict(self)
