"""The mock node's CPA ("EPAS SOAP") endpoint: the SOAP 1.2 codec (pure) and its aiohttp app.

Pure (no I/O):

- ``request``: the words both sides use (operations, fault codes, errors) and request parsing;
- ``response``: success envelopes and faults, rendered;
- ``properties``: what ``get-all-config`` tells a client (system and user properties);
- ``metrics``: the endpoint's counters, per second and in total (clock injected).

Shell: ``app``, the aiohttp routes (SOAP endpoint, WSDL, XSD) over a ``CpaBackend`` that the node
implements (``mock_server.node.backends``); ``StaticCpaBackend`` is a fixed one for tests. ``wsdl/``
holds the WSDL and XSD we author, byte-identical to ``jabberemu/soap/wsdl/`` (a test checks).

May import: the standard library, lxml, aiohttp (``app`` only), and the shared roots below it
(``users``, ``datastore``) and ``login.admission`` (the app awaits the node's login admission).
Nothing above it (``node``, ``pair``). The package re-exports nothing: import each name from its
module, so that the codec never loads aiohttp.
"""

__all__: list[str] = []
