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
from jabberemu.gcpolicy import GcPolicy, active_policy
from jabberemu.rundata import CLIENT_EVENTS_FILE, RecordType, RunDataSink
from jabberemu.soap.adapter import CpaAdapter
from jabberemu.soap.cpa import BUNDLED_WSDL, CpaClient, load_wsdl
from jabberemu.soap.transport import AiohttpTransport, SoapTransport
from jabberemu.xmpp.client import Connector
from jabberemu.xmpp.source import SourceAddressConnector

__all__ = [
    "CLIENT_EVENTS_FILE",
    "Clock",
    "MeasureCallback",
    "RecordType",
    "RunDataSink",
    "Runtime",
    "encode_record",
    "make_ssl_context",
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
        transport: the shared zeep/aiohttp transport (or a :class:`~jabberemu.soap.transport.MockTransport`),
            None in XMPP-only mode.
        cpa_adapter: the CPA side of every client's login, as core events (None in XMPP-only mode).
        xmpp_connector: opens the XMPP connections (:meth:`create`'s default: a
            :class:`~jabberemu.xmpp.source.SourceAddressConnector` without source addresses; None, for a
            Runtime built directly: slixmpp's own ``loop.create_connection``).
        run_seed: seed from which each client's random source is derived.
        clock: time sources.
        measure: measurement callback (Locust's request event through the bridge, or a list).
        sink: run-data sink.
        registry: counts of clients per state and node.
        warned: problem keys already logged once (e.g. ``limits-missing``) -> times seen.
        gc_policy: the garbage-collector policy this runtime installed (uninstalled by :meth:`aclose`).
    """

    pair: ServerPair
    settings: ClientSettings
    ssl_context: ssl.SSLContext
    cpa: CpaClient | None
    transport: SoapTransport | None
    run_seed: int = 0
    clock: Clock = field(default_factory=Clock)
    measure: MeasureCallback | None = None
    sink: RunDataSink = field(default_factory=RunDataSink)
    registry: ClientRegistry = field(default_factory=ClientRegistry)
    warned: Counter[str] = field(default_factory=Counter)
    gc_policy: GcPolicy | None = None
    cpa_adapter: CpaAdapter | None = None
    xmpp_connector: Connector | None = None

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
        gc_policy: GcPolicy | None | bool = True,
        http_transport: SoapTransport | None = None,
        xmpp_connector: Connector | None = None,
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
            gc_policy: the process's garbage-collector policy (:mod:`jabberemu.gcpolicy`), installed
                on this loop until :meth:`aclose`; True (default) = the process's active policy or a
                new default one; None or False leaves the collector alone (tests that count garbage).
            http_transport: the CPA's transport (a new :class:`AiohttpTransport` with the SOAP deadline
                when None; a ``MockTransport`` in tests).
            xmpp_connector: opens XMPP connections (a :class:`~jabberemu.xmpp.source.SourceAddressConnector`
                without source addresses when None; a ``jabberemu.xmpp.memory.MemoryConnector`` in tests).

        Raises:
            ConfigError: CPA mode on a pair whose nodes lack a CPA URL.
            zeep.exceptions.Error, OSError: the WSDL could not be loaded.
        """
        policy = (active_policy() or GcPolicy()) if gc_policy is True else (gc_policy or None)
        ctx = make_ssl_context(settings.verify_tls)
        cpa: CpaClient | None = None
        transport: SoapTransport | None = None
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
            transport = http_transport if http_transport is not None else AiohttpTransport(
                ssl_context=ctx, timeout_s=settings.timeouts.soap_s, limit=http_pool_limit)
            cpa = CpaClient(document, transport)
        if policy is not None:
            policy.install(asyncio.get_running_loop())
        runtime = cls(
            pair=pair, settings=settings, ssl_context=ctx, cpa=cpa, transport=transport,
            run_seed=run_seed, clock=clock or Clock(), measure=measure,
            sink=sink if sink is not None else RunDataSink(),
            registry=registry if registry is not None else ClientRegistry(), gc_policy=policy,
            xmpp_connector=xmpp_connector if xmpp_connector is not None else SourceAddressConnector(),
        )
        if cpa is not None:
            runtime.cpa_adapter = CpaAdapter(cpa, pair, runtime.report, runtime.warn_once, runtime.clock.monotonic)
        return runtime

    def now_ts(self) -> float:
        """Unix epoch seconds for a record."""
        return self.clock.wall()

    def report(self, client_id: str | None, measurement: Measurement) -> None:
        """The one road of a measurement: one hand-off to the callback (Locust, through the bridge's
        queue) and one ``request`` record to the sink (the run data). Safe from any thread when the
        callback and the sink are (the Locust ones are: deque appends).

        Args:
            client_id: the measuring client; None for a login that never got a user id (Locust only:
                the run data's records are per client).
            measurement: what was measured.
        """
        if self.measure is not None:
            try:
                self.measure(client_id or "", measurement)
            except Exception:  # a broken callback must not break the client
                logger.exception("measurement callback failed for %s", measurement.label)
        if client_id is None:
            return
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
        """Close the HTTP session, flush the sink, uninstall the GC policy (idempotent)."""
        if self.transport is not None:
            await self.transport.aclose()
        self.sink.close()
        if self.gc_policy is not None:
            self.gc_policy.uninstall()
            self.gc_policy = None


def _error_text(exc: BaseException) -> str:
    """A short, secret-free description of a failure (class name and message)."""
    return f"{type(exc).__name__}: {exc}"[:300]
