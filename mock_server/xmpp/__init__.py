"""The mock node's XMPP client-to-server side (RFC 6120, RFC 6121, XEP-0199): pure protocol core
below, asyncio shell on top.

Pure (no I/O, no event loop), from the bottom up:

- ``xml``: the hardened, incremental XML reader and writer of one stream;
- ``jid``: JIDs split and compared as the mock does;
- ``events``: wire words, the stream's events and its state table;
- ``sasl``: the SASL initial responses the mock accepts (PLAIN, CISCO-VTG-TOKEN);
- ``backend``: what the listener asks of the node it runs in (``XmppBackend``), and
  ``LocalBackend``, a single-node one for tests;
- ``render``: the XML the server writes, spelled from plain values;
- ``wire``: ``C2sStream``, one stream's server side: bytes in, events and bytes out;
- ``sessions``: ``SessionTable``, the bound sessions of one listener, their delivery and routing;
- ``settings``: the listener's tunables and counter names.

Asyncio shell: ``connection`` (``C2sConnection``, the Protocol around one ``C2sStream``; it asks
the listener for what it needs through ``ListenerView``) and ``listener`` (``XmppListener``, the
server socket, its connections and pings; it owns the ``SessionTable``).

May import: the standard library and the modules of this package, each only those listed above
it. Nothing else of the mock: the node implements ``XmppBackend`` (``mock_server.node.backends``).
The package re-exports nothing: import each name from its module, so that the pure core never loads
the shell.
"""

__all__: list[str] = []
