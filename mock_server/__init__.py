"""A mock Cisco IM and Presence Presence Redundancy Group: two nodes with CPA SOAP, XMPP and SRM.

The house, from the ground up (each package's docstring says what lives there and what it may
import; an import only ever points down this list):

- shared roots: ``params`` (SRM parameters, login profiles), ``users`` (provisioning, home nodes,
  rosters), ``datastore`` (the Login Datastore), ``pair_config`` (the pair's settings);
- pure protocol cores, each beside its asyncio shell: ``srm/`` (the Server Recovery Manager:
  states and the one table, events, machine), ``login/`` (login admission: model and shell),
  ``xmpp/`` (the c2s stream, sessions; listener and connection), ``cpa/`` (the SOAP codec; the
  aiohttp app);
- ``node/``: one IM&P node on one asyncio loop (SRM driver, peer side, backends, control);
- ``pair/``: the processes (supervisor, zygote and node processes, admin API, Prometheus, MockPair);
- entry points: ``__main__`` (``python -m mock_server``) and ``node_main`` (``python -m
  mock_server.node_main [--zygote]``).

Shares no code with ``jabberemu``.
"""

__all__: list[str] = []
