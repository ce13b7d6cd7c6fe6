"""Set-up for the Locust (gevent-patched) tests, run in a pytest process of their own.

``make test`` runs ``pytest tests/loadgen -p no:asyncio -p no:aiohttp``: with pytest-asyncio
blocked, its ini keys in pyproject.toml would be "unknown config options", which warnings-as-errors
turns into a failure; they are declared here (as inert) only when that plugin is blocked.
"""

from __future__ import annotations

from typing import Any

import pytest

__all__: list[str] = []

_ASYNCIO_INI_KEYS = ("asyncio_mode", "asyncio_default_fixture_loop_scope")


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    if pluginmanager.is_blocked("asyncio"):
        for key in _ASYNCIO_INI_KEYS:
            parser.addini(key, "inert here: pytest-asyncio is disabled in the gevent-patched process")


def pytest_configure(config: Any) -> None:
    # Importing locust monkey-patches the process: do it once, before any test module imports
    # socket-using libraries, so every test sees one consistent (patched) world.
    import locust  # noqa: F401


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Same rule as tests/conftest.py, on the class ``socket.socket`` is *now* (gevent's).

    The root fixture wraps the stdlib method captured before gevent patched ``socket``; calling it
    on a gevent socket raises TypeError, so this one wraps the patched class's own methods.
    """
    import ipaddress
    import socket

    def check(address: object) -> None:
        if isinstance(address, tuple) and address and isinstance(address[0], str) and address[0] != "localhost":
            if not ipaddress.ip_address(address[0].split("%")[0]).is_loopback:
                raise RuntimeError(f"tests may only reach loopback, not {address[0]}")

    cls = socket.socket
    real_connect, real_connect_ex = cls.connect, cls.connect_ex

    def connect(self: socket.socket, address: object) -> None:
        check(address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: object) -> int:
        check(address)
        return real_connect_ex(self, address)

    monkeypatch.setattr(cls, "connect", connect)
    monkeypatch.setattr(cls, "connect_ex", connect_ex)
