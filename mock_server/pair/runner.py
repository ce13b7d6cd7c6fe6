"""Run the whole mock pair from asyncio code: supervisor, two node processes and the admin API.

Tests and the jabberemu drill use it as::

    async with MockPair(PairConfig(users=300)) as pair:
        topology = pair.topology        # the --topology-out document
        await pair.admin("POST", "/api/failover", {"node": "imp1.example.test"})
"""

from __future__ import annotations

import asyncio
import json
import logging
from types import TracebackType
from typing import Any, cast

import aiohttp
from aiohttp import web

from mock_server.pair.admin_app import make_admin_app
from mock_server.pair.supervisor import Supervisor
from mock_server.pair_config import PairConfig

__all__ = ["MockPair", "AdminError"]

logger = logging.getLogger(__name__)


class AdminError(Exception):
    """The admin API answered with an error status.

    Attributes:
        status: HTTP status code.
        body: the decoded JSON body (``{"error": ...}``) or the raw text.
    """

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"admin API answered {status}: {body}")
        self.status = status
        self.body = body


class MockPair:
    """The mock Presence Redundancy Group, started on entry and stopped on exit.

    Args:
        config: the pair's settings (ports 0 = free ports).
        admin_port: port of the admin API; 0 picks a free one.
        admin_token: bearer token for admin writes (required beyond loopback).
        events_out: JSONL file receiving every event, or None.
    """

    def __init__(
        self,
        config: PairConfig,
        *,
        admin_port: int = 0,
        admin_token: str | None = None,
        events_out: str | None = None,
    ) -> None:
        self.config = config
        self.supervisor = Supervisor(config, events_out=events_out)
        self._admin_port = admin_port
        self._admin_token = admin_token
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.admin_url = ""
        self.topology: dict[str, Any] = {}

    async def start(self) -> dict[str, Any]:
        """Start nodes and admin API; returns the topology document.

        Raises:
            mock_server.pair.channel.NodeGoneError: a node did not start.
            OSError: a port could not be bound.
        """
        app = make_admin_app(self.supervisor, admin_token=self._admin_token)
        try:
            await self.supervisor.start()
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, self.config.bind, self._admin_port)
            await site.start()
        except BaseException:
            await self.stop()
            raise
        server = cast(asyncio.Server, site._server)
        assert server is not None and server.sockets
        port = server.sockets[0].getsockname()[1]
        self.admin_url = f"http://{self.config.bind}:{port}"
        self.topology = self.supervisor.topology(self.admin_url)
        return self.topology

    async def stop(self) -> None:
        """Stop the admin API and both node processes (idempotent)."""
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.supervisor.stop()

    async def admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Call the admin API and return its decoded JSON.

        Raises:
            AdminError: the API answered with a status >= 400.
        """
        if self._session is None:
            self._session = aiohttp.ClientSession()
        headers = {"Authorization": f"Bearer {self._admin_token}"} if self._admin_token else {}
        async with self._session.request(method, self.admin_url + path, json=body, headers=headers) as resp:
            text = await resp.text()
            try:
                data = json.loads(text)
            except ValueError:
                data = text
            if resp.status >= 400:
                raise AdminError(resp.status, data)
            return data

    async def wait_for_states(
        self, expected: dict[str, str], timeout_s: float = 10.0, poll_s: float = 0.05
    ) -> dict[str, Any]:
        """Poll ``/api/status`` until every named node shows the expected SRM state.

        Args:
            expected: node name -> state text as shown on the page (e.g. ``"Normal"``).
            timeout_s: seconds to wait at most.

        Returns:
            The last status document.

        Raises:
            TimeoutError: the states were not reached in time (message shows the last states).
        """
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            status = await self.admin("GET", "/api/status")
            states = {n["name"]: n.get("state") for n in status["nodes"]}
            if all(states.get(k) == v for k, v in expected.items()):
                return status  # type: ignore[no-any-return]
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"wanted {expected}, nodes show {states}")
            await asyncio.sleep(poll_s)

    async def __aenter__(self) -> MockPair:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
