"""One mock IM&P node's asyncio side: the objects that run the pure cores on one loop.

What lives here:

- ``node``: ``MockNode``, which puts the parts together, starts and stops them, and knows who
  serves a user now and where each node is reached;
- ``srm_driver``: ``SrmDriver``, the SRM machine on the loop (timers, heartbeats, its commands,
  the monitored services);
- ``peer_side``: ``PeerSide``, what travels to and from the peer node (SRM frames, Login Datastore
  deltas, stanzas, the peer's users' presence), over ``peer_link``;
- ``peer_link``: ``PeerLink``, the node-to-node TCP link (JSON lines, partitions, redial);
- ``backends``: ``CpaSide`` and ``XmppSide``, the backends the CPA app and the XMPP listener ask,
  as adapters over the node (``NodeView``);
- ``control``: ``NodeControl``, the operations the supervisor asks of the node;
- ``sampler``: ``MetricsSampler``, the node's per-second metrics rows;
- ``tls``: the self-signed certificate for XMPP STARTTLS.

May import: the standard library, aiohttp, cryptography, the pure cores and shells below it
(``srm``, ``login``, ``xmpp``, ``cpa``) and the shared roots (``pair_config``, ``params``,
``users``, ``datastore``). Never ``pair`` above it: the node process (``pair.node_process``) runs a
``MockNode``. Inside, ``node.node`` imports the others and none imports it back: what a part needs
of the node comes in as arguments (callables, or ``backends.NodeView``).
The package re-exports nothing: import each name from its module.
"""

__all__: list[str] = []
