"""Fixtures of the pair tests that share one pool of running pairs per module (``test_pair_ha``,
``test_pair_presence``): ``pool`` (10 users, fast SRM timers), ``pair`` (a pair in Normal | Normal from
it), ``http`` (an aiohttp session). A module that needs another pair defines its own ``pair``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest_asyncio
from pair_support import PairPool, fast_config

from mock_server.pair.runner import MockPair


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def pool() -> AsyncIterator[PairPool]:
    pool = PairPool(fast_config(users=10))
    try:
        yield pool
    finally:
        await pool.close()


@pytest_asyncio.fixture(loop_scope="module")
async def pair(pool: PairPool) -> MockPair:
    return await pool.get()


@pytest_asyncio.fixture(loop_scope="module")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s
