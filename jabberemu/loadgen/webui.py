"""The "Jabber clients" tab of Locust's web UI: clients per node and per state, re-login rate, live.

Locust 2.47's React UI renders extra tabs from ``template_args["extended_tabs"]`` and
``["extended_tables"]``, filled from an ``extended_stats`` key of the ``/stats/requests`` JSON it
polls every 2 s (Locust docs, "Extending the web UI"; ``locust/webui`` source). We add that key in a
Flask ``after_request`` hook of the master's (or local runner's) web UI, from the progress the
workers send every second (``swarm.Swarm.totals``), Locust's own ``ha/relogin`` statistics and the
generator health samples. ``GET /jabberemu/clients`` serves the same rows as JSON.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["TAB_KEY", "TAB_TITLE", "TABLE_STRUCTURE", "client_rows", "install_tab"]

logger = logging.getLogger(__name__)

TAB_KEY = "jabber-clients"
TAB_TITLE = "Jabber clients"
TABLE_STRUCTURE = [
    {"key": "group", "title": "What"},
    {"key": "name", "title": "Name"},
    {"key": "value", "title": "Clients / value"},
]
"""Columns of the tab; single-word keys (the UI camel-cases keys of the polled JSON)."""

_END_STATES = ("LOGGED_OUT", "GAVE_UP")


def client_rows(
    *,
    nodes: Iterable[str],
    totals: Mapping[str, Any],
    relogin_rate_per_s: float,
    relogins_total: int,
    health_by_worker: Mapping[str, Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """The tab's rows (pure).

    Args:
        nodes: node names of the pair, in topology order (each gets a row, zero included).
        totals: ``{"started", "states": {state: n}, "connected": {node: n}}`` summed over workers.
        relogin_rate_per_s: ``ha/relogin`` per second over Locust's last 10 s window.
        relogins_total: ``ha/relogin`` measurements so far.
        health_by_worker: last generator health sample per worker.

    Returns:
        Rows ``{"group", "name", "value"}``: one per node, per non-empty state, the re-login rate
        and one per generator.
    """
    connected = totals.get("connected", {})
    rows: list[dict[str, Any]] = [{"group": "clients", "name": "started", "value": int(totals.get("started", 0))}]
    names = list(nodes)
    names += sorted(n for n in connected if n not in names)
    for node in names:
        rows.append({"group": "connected per node", "name": node, "value": int(connected.get(node, 0))})
    states = totals.get("states", {})
    for state, count in sorted(states.items(), key=lambda kv: (kv[0] in _END_STATES, kv[0])):
        if count:
            rows.append({"group": "per state", "name": state, "value": int(count)})
    rows.append({"group": "re-login", "name": "ha/relogin per s (last 10 s)", "value": round(relogin_rate_per_s, 2)})
    rows.append({"group": "re-login", "name": "ha/relogin total", "value": int(relogins_total)})
    for worker, sample in sorted(health_by_worker.items()):
        lag = sample.get("loop_lag_ms")
        lag_text = "-" if lag is None else f"{float(lag):.1f} ms"
        rows.append({"group": "generator", "name": worker,
                     "value": f"CPU {float(sample.get('cpu_percent') or 0):.0f}%, loop lag p99 {lag_text}"})
    return rows


def _rows_of(environment: Any, swarm: Any) -> list[dict[str, Any]]:
    entry = environment.runner.stats.entries.get(("relogin", "ha")) if environment.runner is not None else None
    nodes = [n.name for n in swarm.target.pair.nodes] if swarm.target is not None else []
    health = swarm.collector.health_by_worker if swarm.collector is not None else {}
    return client_rows(
        nodes=nodes,
        totals=swarm.totals(),
        relogin_rate_per_s=float(entry.current_rps) if entry is not None else 0.0,
        relogins_total=int(entry.num_requests) if entry is not None else 0,
        health_by_worker=health,
    )


def install_tab(environment: Any, swarm: Any) -> None:
    """Add the tab to ``environment.web_ui`` (call from ``events.init`` on the master or a local runner).

    Args:
        environment: the Locust environment (its ``web_ui`` must exist).
        swarm: the process's :class:`~jabberemu.loadgen.swarm.Swarm`.
    """
    from flask import Response, request

    web_ui = environment.web_ui
    web_ui.template_args["extended_tabs"] = [{"title": TAB_TITLE, "key": TAB_KEY}]
    web_ui.template_args["extended_tables"] = [{"key": TAB_KEY, "structure": TABLE_STRUCTURE}]

    def _extend_stats(response: Any) -> Any:
        if request.path != "/stats/requests" or response.status_code != 200 or not response.is_json:
            return response
        try:
            data = json.loads(response.get_data())
            data["extended_stats"] = [{"key": TAB_KEY, "data": _rows_of(environment, swarm)}]
            response.set_data(json.dumps(data))
        except Exception:  # the stock UI must keep working whatever happens here
            logger.exception("Jabber clients tab: stats not extended")
        return response

    def _clients() -> Any:
        return Response(json.dumps({"rows": _rows_of(environment, swarm)}), mimetype="application/json")

    web_ui.app.after_request(_extend_stats)
    web_ui.app.add_url_rule("/jabberemu/clients", "jabberemu_clients", web_ui.auth_required_if_enabled(_clients))
