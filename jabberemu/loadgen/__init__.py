"""The Locust side: each Locust user is one emulated client, run on an asyncio loop beside gevent.

Lives here: the bridge between gevent and the clients' asyncio loop (``bridge``, its loop thread in
``bridgeloop``), the per-process swarm and its options (``swarm``, ``options``, ``users_csv``, the
Locust/gevent traps it works around in ``traps``, its progress in ``progress``), the Locust user
(``user``), the drill on the load clock (``shape``, ``schedule``), run-data and health collection
across worker processes (``collect``, ``workers``), what the swarm reads from the mock before the run
(``pairinfo``), live metrics (``prometheus``, ``webui``, ``serverdata``) and the locustfile.

May import: ``jabberemu.driver``, ``runtime``, ``config``, ``core``, ``report`` (its pure health and
run-data rules, so live figures and the report compute alike), Locust and gevent. Nothing imports it
but the locustfiles and ``jabberemu.drill``.
"""
__all__: list[str] = []
