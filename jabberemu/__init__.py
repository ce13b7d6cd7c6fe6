"""jabberemu: emulated Cisco Jabber clients for load and HA tests of Cisco IM and Presence.

Floors, bottom up (an import only ever points down; ``jabberemu`` never imports ``mock_server``,
which it drives only over its admin HTTP API):

- ``errors``, ``config``: exceptions and the validated settings everyone reads; ``eventloop`` (the
  clients' asyncio loop, bounded slices) and ``gcpolicy`` (the garbage collector, managed);
- ``core/`` (pure state machine), ``soap/`` (CPA client), ``throttle/`` (the wave model),
  ``mockpair`` (the mock pair as a child process);
- ``xmpp/`` (the slixmpp session), ``runtime`` (per-process shared objects), ``report/`` (run data to
  verdict, from files only);
- ``driver`` (one emulated client: the machine plus its adapters);
- ``loadgen/`` (Locust users, the asyncio bridge, run-data collection, drills);
- ``drill``, ``cli``: the commands.
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
