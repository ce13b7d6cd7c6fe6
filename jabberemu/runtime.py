"""Per-process shared resources of the emulated clients, built once at start-up.

Everything here is shared by every :class:`~jabberemu.driver.EmulatedClient` of one process (one
asyncio loop): one ``ssl.SSLContext`` (a default context per slixmpp client costs 67-84 ms and
~880 KiB; shared, 0.3 ms: ../shared/ENGINEERING.md), the parsed CPA WSDL, one aiohttp-based zeep
transport and one :class:`~jabberemu.soap.cpa.CpaClient`, the run seed, a clock, the measurement
callback, the run-data sink and the :class:`~jabberemu.core.registry.ClientRegistry`.

Run data (docs/ARCHITECTURE.md, "Run data"): the schema, :class:`RunDataSink` and
:class:`RecordType` live in :mod:`jabberemu.rundata` (re-exported here); records never carry
passwords, session keys or OTPs.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import ssl
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from zeep.wsdl import Document

from jabberemu.config import ClientSettings, ServerPair
from jabberemu.core.metrics import Measurement
from jabberemu.core.registry import ClientRegistry
from jabberemu.errors import ConfigError
from jabberemu.rundata import CLIENT_EVENTS_FILE, RecordType, RunDataSink
from jabberemu.soap.cpa import BUNDLED_WSDL, CpaClient, load_wsdl
from jabberemu.soap.transport import AiohttpTransport

__all__ = [
    "CLIENT_EVENTS_FILE",
    "Clock",
    "MeasureCallback",
    "RecordType",
    "RunDataSink",
    "Runtime",
    "GC_YOUNG_THRESHOLD",
    "make_ssl_context",
    "tune_gc",
]

logger = logging.getLogger(__name__)

MeasureCallback = Callable[[str, Measurement], None]
"""``callback(client_id, measurement)``; called on the loop thread, must not block."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Clock:
    """Where the clients read the time.

    Args:
        monotonic: seconds for durations (``time.monotonic``).
        wall: Unix epoch seconds for the ``ts`` of records (``time.time``).
    """

    monotonic: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time


GC_YOUNG_THRESHOLD = 20_000
"""Young-generation threshold of :func:`tune_gc` (CPython's default: 700 net allocations)."""


def tune_gc(young_threshold: int = GC_YOUNG_THRESHOLD) -> tuple[int, int, int]:
    """Fewer young collections in a process that holds thousands of emulated clients (idempotent).

    Every login allocates a few hundred container objects that live as long as the connection;
    with CPython's default threshold (700) the collector ran ~600 passes per 1,000 logins,
    ~2 ms of CPU per login, and each pass walks the young objects again (bench/login_cost.py
    ``gc_ms_per_login``). At 20,000: ~20 passes per 1,000 logins, ~0.7 ms per login, the longest
    pause ~70 ms (measured with 1,000 logins at 100/s on the 2-core bench machine). Only raises the
    threshold, never lowers one set higher by the embedding program. ``gc.freeze()`` was measured
    too (another ~30% off) and left out: a frozen dead session is never collected.

    Args:
        young_threshold: generation-0 threshold to apply.

    Returns:
        The thresholds now in force (``gc.get_threshold()``).
    """
    current = gc.get_threshold()
    if current[0] < young_threshold:
        gc.set_threshold(young_threshold, *current[1:])
    return gc.get_threshold()


_SSL_CONTEXTS: dict[bool, ssl.SSLContext] = {}


def make_ssl_context(verify_tls: bool) -> ssl.SSLContext:
    """The one client TLS context of the process (XMPP STARTTLS and https CPA URLs).

    Made once per process and setting (loading the CA store costs ~70 ms and ~1 MiB: the
    ``load_default_certs`` of the profiles); without verification no CA store is loaded at all
    (``ssl.create_default_context`` minus ``load_default_certs``: same protocol and cipher defaults).

    Args:
        verify_tls: True verifies the certificate chain and host name; False accepts any
            certificate (the mock's self-signed one).
    """
    ctx = _SSL_CONTEXTS.get(verify_tls)
    if ctx is None:
        if verify_tls:
            ctx = ssl.create_default_context()
        else:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        _SSL_CONTEXTS[verify_tls] = ctx
    return ctx


@dataclass(kw_only=True, eq=False)
class Runtime:
    """Shared objects of one process; build with :meth:`create`, close with :meth:`aclose`.

    Attributes:
        pair: the target pair (node addresses and presence domain).
        settings: client settings of the run.
        ssl_context: the one client TLS context.
        cpa: the CPA SOAP client, None in XMPP-only mode.
        transport: the shared zeep/aiohttp transport, None in XMPP-only mode.
        run_seed: seed from which each client's random source is derived.
        clock: time sources.
        measure: measurement callback (Locust's request event through the bridge, or a list).
        sink: run-data sink.
        registry: counts of clients per state and node.
        warned: problem keys already logged once (e.g. ``limits-missing``) -> times seen.
    """

    pair: ServerPair
    settings: ClientSettings
    ssl_context: ssl.SSLContext
    cpa: CpaClient | None
    transport: AiohttpTransport | None
    run_seed: int = 0
    clock: Clock = field(default_factory=Clock)
    measure: MeasureCallback | None = None
    sink: RunDataSink = field(default_factory=RunDataSink)
    registry: ClientRegistry = field(default_factory=ClientRegistry)
    warned: Counter[str] = field(default_factory=Counter)

    @classmethod
    async def create(
        cls,
        pair: ServerPair,
        settings: ClientSettings,
        *,
        run_seed: int = 0,
        wsdl: Document | str | None = None,
        measure: MeasureCallback | None = None,
        sink: RunDataSink | None = None,
        clock: Clock | None = None,
        registry: ClientRegistry | None = None,
        http_pool_limit: int = 2000,
        gc_young_threshold: int | None = GC_YOUNG_THRESHOLD,
    ) -> Runtime:
        """Build the shared objects (on the loop that will run the clients).

        Args:
            pair: target pair.
            settings: client settings (``verify_tls``, ``xmpp_only``, ``timeouts.soap_s``).
            run_seed: the run's seed.
            wsdl: a parsed WSDL, a path or the server's ``?wsdl`` URL; None: the bundled copy.
                Parsing blocks; a URL is fetched in a worker thread so a server on this loop
                can answer.
            measure: measurement callback, or None to only write ``request`` records.
            sink: run-data sink (an in-memory one when None).
            clock: time sources (real ones when None).
            registry: a shared registry (a new one when None).
            http_pool_limit: concurrent HTTP connections over all CPA nodes.
            gc_young_threshold: applied process-wide with :func:`tune_gc`; None leaves the
                collector as it is.

        Raises:
            ConfigError: CPA mode on a pair whose nodes lack a CPA URL.
            zeep.exceptions.Error, OSError: the WSDL could not be loaded.
        """
        if gc_young_threshold is not None:
            tune_gc(gc_young_threshold)
        ctx = make_ssl_context(settings.verify_tls)
        cpa: CpaClient | None = None
        transport: AiohttpTransport | None = None
        if not settings.xmpp_only:
            if any(n.cpa_url is None for n in pair.nodes):
                raise ConfigError("CPA mode needs a cpa_url on every node", field="cpa_url")
            if isinstance(wsdl, Document):
                document = wsdl
            else:
                location = wsdl if wsdl is not None else BUNDLED_WSDL
                if location.startswith(("http://", "https://")):
                    document = await asyncio.to_thread(load_wsdl, location)
                else:
                    document = load_wsdl(location)
            transport = AiohttpTransport(ssl_context=ctx, timeout_s=settings.timeouts.soap_s,
                                         limit=http_pool_limit)
            cpa = CpaClient(document, transport)
        return cls(
            pair=pair, settings=settings, ssl_context=ctx, cpa=cpa, transport=transport,
            run_seed=run_seed, clock=clock or Clock(), measure=measure,
            sink=sink if sink is not None else RunDataSink(),
            registry=registry if registry is not None else ClientRegistry(),
        )

    def now_ts(self) -> float:
        """Unix epoch seconds for a record."""
        return self.clock.wall()

    def report(self, client_id: str, measurement: Measurement) -> None:
        """Hand a measurement to the callback and write its ``request`` record.

        Args:
            client_id: the measuring client.
            measurement: what was measured.
        """
        if self.measure is not None:
            try:
                self.measure(client_id, measurement)
            except Exception:  # a broken callback must not break the client
                logger.exception("measurement callback failed for %s", measurement.label)
        exc = measurement.exception
        self.sink.emit(
            RecordType.REQUEST, self.now_ts(), client=client_id,
            request_type=measurement.request_type.value, name=measurement.name, node=measurement.node,
            response_time_ms=round(measurement.response_time_ms, 3), ok=exc is None,
            error=None if exc is None else _error_text(exc), cause=measurement.cause,
        )

    def warn_once(self, key: str, message: str, *args: Any) -> None:
        """Log a warning the first time ``key`` is seen in this process; always count it.

        Args:
            key: the problem's kind, e.g. ``limits-missing``.
            message, args: lazy ``%s`` logging message.
        """
        self.warned[key] += 1
        if self.warned[key] == 1:
            logger.warning(message + " (logged once per process)", *args)

    async def aclose(self) -> None:
        """Close the HTTP session and flush the sink (idempotent)."""
        if self.transport is not None:
            await self.transport.aclose()
        self.sink.close()


def _error_text(exc: BaseException) -> str:
    """A short, secret-free description of a failure (class name and message)."""
    return f"{type(exc).__name__}: {exc}"[:300]
