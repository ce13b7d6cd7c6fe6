"""Shared test set-up: refuse any socket that is not on loopback."""

from __future__ import annotations

import ipaddress
import socket

import pytest

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _check(address: object) -> None:
    if isinstance(address, tuple) and address:
        host = address[0]
        if isinstance(host, str) and host not in ("localhost",):
            try:
                ip = ipaddress.ip_address(host.split("%")[0])
            except ValueError:
                raise RuntimeError(f"tests connect to IP literals on loopback only, not {host!r}") from None
            if not ip.is_loopback:
                raise RuntimeError(f"tests may only reach loopback, not {host}")


def _guarded_connect(self: socket.socket, address: object) -> None:
    _check(address)
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    _check(address)
    return _real_connect_ex(self, address)


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", _guarded_connect_ex)
