"""The mock Presence Redundancy Group as processes: the supervisor, its node processes, the admin API.

What lives here:

- ``channel``: the control channel between the supervisor and a node process (frames, operations,
  errors);
- ``processes``: the zygote that forks node processes and the pidfd watch over each;
- ``node_process``: what runs in a node process (a ``MockNode`` and the control channel's node
  side) and the zygote's loop; ``python -m mock_server.node_main`` is its entry point;
- ``supervisor``: ``Supervisor``, which starts the two nodes, talks to them and keeps the event log;
- ``prom``: the pair's Prometheus ``/metrics``;
- ``admin_app``: the admin API and page (aiohttp; ``static/admin.html``);
- ``runner``: ``MockPair``, the whole pair run from asyncio code (tests, benchmarks, the drill).

May import: anything below it (the ``node`` wing, the pure cores and the shared roots) and the
standard library, aiohttp, prometheus_client. Only the entry points at the package root
(``__main__``, ``node_main``, the ``runner`` alias) import it. Inside, the supervisor never imports
``node_process``: the zygote runs it in another process. The package re-exports nothing: import each
name from its module.
"""

__all__: list[str] = []
