"""The client's CPA SOAP side: the zeep client of the Client Profile Agent (``cpa``, which also
translates every failed call, once, into a jabberemu error carrying the client machine's event), its
aiohttp transport and the in-memory ``MockTransport`` of driver tests (``transport``), a template fast
path for the hot login calls (``fastpath``), the adapter the driver calls (``adapter``: a sign-in,
an OTP or a logout in, core events and measurements out), with the bundled WSDL (``wsdl/``).

May import: ``jabberemu.config``, ``jabberemu.errors``, ``jabberemu.core`` (events and metrics), zeep,
aiohttp, lxml. Never the driver, ``loadgen`` or ``report``.
"""
__all__: list[str] = []
