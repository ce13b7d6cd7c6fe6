"""Fixtures of the client tests (test servers live in client_support.py, polling in tests/waiting.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from jabberemu.runtime import Runtime


@pytest.fixture(autouse=True)
async def _close_runtimes(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[list[Runtime]]:
    """Close every Runtime a test built, even when the test failed (no unclosed HTTP sessions)."""
    made: list[Runtime] = []
    original = Runtime.create.__func__  # type: ignore[attr-defined]

    async def create(cls: type[Runtime], *args: Any, **kwargs: Any) -> Runtime:
        rt = await original(cls, *args, **kwargs)
        made.append(rt)
        return rt

    monkeypatch.setattr(Runtime, "create", classmethod(create))
    yield made
    for rt in made:
        await rt.aclose()
