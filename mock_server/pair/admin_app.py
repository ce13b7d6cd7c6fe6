"""The admin API and page of the mock pair (aiohttp, in the supervisor process).

JSON routes (bad requests get 4xx with ``{"error": "..."}``, never a traceback):

``GET  /api/status``                                per node: state, reason, users, services
``POST /api/ha``           ``{"enabled": bool}``    Enable High Availability on both nodes
``POST /api/failover``     ``{"node": NAME}``       admin Failover of NAME
``POST /api/fallback``     ``{"node": NAME}``       admin Fallback of NAME (the failed node)
``POST /api/recover``                               admin Recover (both nodes)
``POST /api/nodes/{name}/services/{service}/{stop|start}``
``POST /api/nodes/{name}/kill`` and ``/restart``    SIGKILL of the node process / start it again
``POST /api/partition`` and ``/api/heal``           drop heartbeats and replication both ways / stop
``GET|PUT /api/parameters``                         SRM parameters (``--param`` names)
``GET  /api/events[?since=TS]``                     every recorded event
``GET  /api/metrics``                               per node, per second counters
``GET  /metrics``                                   Prometheus exposition (``mock_server.pair.prom``)
``GET  /api/tables/enterprisenode`` and ``/enterprisesubcluster``

The page at ``/`` mirrors the CUCM "Presence Redundancy Group Configuration" view. When the API is
bound beyond loopback, every write needs ``Authorization: Bearer <token>`` (``--admin-token``).
"""

from __future__ import annotations

import asyncio
import hmac
import importlib.resources
import ipaddress
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from mock_server.pair.channel import ControlError, ControlOp, NodeGoneError
from mock_server.pair.prom import PromExporter
from mock_server.pair.supervisor import Supervisor

__all__ = ["make_admin_app", "is_loopback", "SUPERVISOR_KEY", "SUBCLUSTER_NAME"]

logger = logging.getLogger(__name__)

SUPERVISOR_KEY = web.AppKey("supervisor", Supervisor)
TOKEN_KEY = web.AppKey("admin_token", str)
PROM_KEY = web.AppKey("prometheus", PromExporter)
SUBCLUSTER_NAME = "DefaultCUPSubCluster"
"""Default Presence Redundancy Group name (IM&P configuration guide 12.5(1))."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@web.middleware
async def _errors_and_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    token = request.app.get(TOKEN_KEY, "")
    if token and request.method not in ("GET", "HEAD"):
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return _error(401, "this admin API needs 'Authorization: Bearer <token>' for writes")
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        return _error(exc.status, f"{request.method} {request.path}: {exc.reason}")  # 404, 405 as JSON
    except KeyError as exc:
        return _error(404, f"unknown node {exc.args[0]!r}")
    except NodeGoneError as exc:
        return _error(409, str(exc))
    except ControlError as exc:
        return _error(exc.status, str(exc))
    except asyncio.TimeoutError:
        return _error(504, "the node did not answer in time")
    except Exception:  # never a traceback on the wire
        logger.exception("admin request %s %s failed", request.method, request.path)
        return _error(500, "internal error; see the mock's log")


async def _json_body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "body is not JSON"}), content_type="application/json"
        ) from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text=json.dumps({"error": "body must be a JSON object"}), content_type="application/json")
    return body


def _node_arg(body: dict[str, Any], sup: Supervisor) -> str:
    name = body.get("node")
    if not isinstance(name, str) or name not in sup.config.node_names:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": f"'node' must be one of {list(sup.config.node_names)}"}),
            content_type="application/json",
        )
    return name


async def _node_status(sup: Supervisor, name: str) -> dict[str, Any]:
    node = sup.node(name)
    if not node.alive:
        return {"name": name, "alive": False, "state": None, "reason": "Node Down", "services": {}}
    try:
        status = await sup.request(name, ControlOp.STATUS, timeout_s=3.0)
    except (ControlError, asyncio.TimeoutError) as exc:
        return {"name": name, "alive": False, "state": None, "reason": f"Not Reachable ({exc})", "services": {}}
    return {"alive": True, **status}


async def status(request: web.Request) -> web.Response:
    sup = request.app[SUPERVISOR_KEY]
    nodes = await asyncio.gather(*(_node_status(sup, n) for n in sup.config.node_names))
    return web.json_response({"subcluster": SUBCLUSTER_NAME, "domain": sup.config.domain, "nodes": list(nodes)})


async def set_ha(request: web.Request) -> web.Response:
    sup = request.app[SUPERVISOR_KEY]
    body = await _json_body(request)
    enabled = body.get("enabled")
    if not isinstance(enabled, bool):
        return _error(400, "'enabled' must be true or false")
    sup.record({"kind": "admin", "action": "ha", "enabled": enabled, "node": None})
    results = {}
    for name in sup.config.node_names:
        if sup.node(name).alive:
            results[name] = await sup.request(name, ControlOp.HA, enabled=enabled)
    return web.json_response({"ok": True, "nodes": results})


def _admin_action(op: ControlOp) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        sup = request.app[SUPERVISOR_KEY]
        name = _node_arg(await _json_body(request), sup)
        sup.record({"kind": "admin", "action": op.value, "node": name})
        result = await sup.request(name, op)
        return web.json_response({"ok": True, "result": result})

    return handler


async def recover(request: web.Request) -> web.Response:
    sup = request.app[SUPERVISOR_KEY]
    sup.record({"kind": "admin", "action": "recover", "node": None})
    results = {}
    for name in sup.config.node_names:
        if sup.node(name).alive:
            results[name] = await sup.request(name, ControlOp.RECOVER)
    return web.json_response({"ok": True, "nodes": results})


async def service_action(request: web.Request) -> web.Response:
    sup = request.app[SUPERVISOR_KEY]
    name, service, action = (request.match_info[k] for k in ("name", "service", "action"))
    if action not in ("stop", "start"):
        return _error(400, "action must be 'stop' or 'start'")
    sup.node(name)
    sup.record({"kind": "admin", "action": f"service-{action}", "node": name, "service": service})
    result = await sup.request(name, ControlOp.SERVICE, service=service, action=action)
    return web.json_response({"ok": True, "result": result})


async def kill_node(request: web.Request) -> web.Response:
    sup = request.app[SUPERVISOR_KEY]
    await sup.kill(request.match_info["name"])
    return web.json_response({"ok": True})


async def restart_node(request: web.Request) -> web.Response:
    sup = request.app[SUPERVISOR_KEY]
    await sup.restart(request.match_info["name"])
    return web.json_response({"ok": True})


def _partition(on: bool) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        sup = request.app[SUPERVISOR_KEY]
        sup.record({"kind": "admin", "action": "partition" if on else "heal", "node": None})
        for name in sup.config.node_names:
            if sup.node(name).alive:
                await sup.request(name, ControlOp.PARTITION, on=on)
        return web.json_response({"ok": True})

    return handler


async def get_parameters(request: web.Request) -> web.Response:
    sup = request.app[SUPERVISOR_KEY]
    out = {}
    for name in sup.config.node_names:
        if sup.node(name).alive:
            out[name] = await sup.request(name, ControlOp.PARAMS_GET)
    return web.json_response(out)


async def put_parameters(request: web.Request) -> web.Response:
    sup = request.app[SUPERVISOR_KEY]
    body = await _json_body(request)
    if not body:
        return _error(400, "give parameters as {NAME: VALUE} or {NODE: {NAME: VALUE}}")
    sup.record({"kind": "admin", "action": "parameters", "node": None, "params": body})
    out = {}
    for name in sup.config.node_names:
        if not sup.node(name).alive:
            continue
        node_params = {k: v for k, v in body.items() if k not in sup.config.node_names}
        node_params.update(body.get(name, {}) if isinstance(body.get(name), dict) else {})
        out[name] = await sup.request(name, ControlOp.PARAMS_PUT, params=node_params)
    return web.json_response(out)


async def get_events(request: web.Request) -> web.Response:
    sup = request.app[SUPERVISOR_KEY]
    since_text = request.query.get("since")
    try:
        since = float(since_text) if since_text else None
    except ValueError:
        return _error(400, "'since' must be Unix seconds")
    events = [e for e in sup.events if since is None or e["ts"] > since]
    return web.json_response({"events": events})


async def get_metrics(request: web.Request) -> web.Response:
    sup = request.app[SUPERVISOR_KEY]
    rows: list[dict[str, Any]] = []
    for name in sup.config.node_names:
        if sup.node(name).alive:
            rows.extend(await sup.request(name, ControlOp.METRICS))
    return web.json_response({"metrics": rows})


async def prometheus_metrics(request: web.Request) -> web.Response:
    prom = request.app[PROM_KEY]
    await prom.refresh(request.app[SUPERVISOR_KEY])
    body, content_type = prom.render(request.headers.get("Accept"))
    return web.Response(body=body, headers={"Content-Type": content_type})


async def table_enterprisenode(request: web.Request) -> web.Response:
    sup = request.app[SUPERVISOR_KEY]
    rows = []
    for i, name in enumerate(sup.config.node_names):
        st = await _node_status(sup, name)
        rows.append(
            {
                "id": i + 1,
                "subclusterid": 1,
                "name": name,
                "isprimary": "t" if i == 0 else "f",
                "tkhaserverstate": st.get("tkhaserverstate"),
            }
        )
    return web.json_response({"rows": rows})


async def table_enterprisesubcluster(request: web.Request) -> web.Response:
    sup = request.app[SUPERVISOR_KEY]
    st = await _node_status(sup, sup.config.node_names[0])
    ha = st.get("ha_enabled", sup.config.ha_enabled)
    row = {"id": 1, "name": SUBCLUSTER_NAME, "description": "mock pair", "haenabled": "t" if ha else "f"}
    return web.json_response({"rows": [row]})


async def page(request: web.Request) -> web.Response:
    html = importlib.resources.files("mock_server.pair").joinpath("static/admin.html").read_text(encoding="utf-8")
    return web.Response(text=html, content_type="text/html")


def is_loopback(host: str) -> bool:
    """True for a loopback address (127.0.0.0/8, ::1) or ``localhost``."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def make_admin_app(sup: Supervisor, *, admin_token: str | None = None) -> web.Application:
    """Build the admin application.

    Args:
        sup: the running supervisor.
        admin_token: bearer token required for writes; required when ``sup.config.bind`` is not
            loopback.

    Raises:
        ValueError: bound beyond loopback without a token.
    """
    if not is_loopback(sup.config.bind) and not admin_token:
        raise ValueError("the admin API is bound beyond loopback: give --admin-token")
    app = web.Application(middlewares=[_errors_and_auth], client_max_size=1 << 20)
    app[SUPERVISOR_KEY] = sup
    app[TOKEN_KEY] = admin_token or ""
    app[PROM_KEY] = PromExporter(sup.config.node_names)  # one registry per supervisor
    app.router.add_get("/", page)
    app.router.add_get("/api/status", status)
    app.router.add_post("/api/ha", set_ha)
    app.router.add_post("/api/failover", _admin_action(ControlOp.FAILOVER))
    app.router.add_post("/api/fallback", _admin_action(ControlOp.FALLBACK))
    app.router.add_post("/api/recover", recover)
    app.router.add_post("/api/nodes/{name}/services/{service}/{action}", service_action)
    app.router.add_post("/api/nodes/{name}/kill", kill_node)
    app.router.add_post("/api/nodes/{name}/restart", restart_node)
    app.router.add_post("/api/partition", _partition(True))
    app.router.add_post("/api/heal", _partition(False))
    app.router.add_get("/api/parameters", get_parameters)
    app.router.add_put("/api/parameters", put_parameters)
    app.router.add_get("/api/events", get_events)
    app.router.add_get("/api/metrics", get_metrics)
    app.router.add_get("/metrics", prometheus_metrics)
    app.router.add_get("/api/tables/enterprisenode", table_enterprisenode)
    app.router.add_get("/api/tables/enterprisesubcluster", table_enterprisesubcluster)
    return app
