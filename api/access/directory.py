"""The live API keys as one process knows them (docs/api.md): all read at once, again at most once per
KEY_CACHE_S however many requests wait, and the ids found to be nobody's in a bounded cache."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from cachetools import TTLCache
from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncEngine

from api.access import keys
from api.access.keys import LiveKey
from api.access.models import ApiKey
from api.db import read

# Ids remembered as nobody's; past that many, each costs a read again (within its address's rate).
UNKNOWN_IDS = 10_000
UNKNOWN_HOLD_S = 600.0  # ids are random and a revocation is for good: nobody's now is nobody's later
READ_TIMEOUT_S = 5.0
LIVE = select(ApiKey.key_id, ApiKey.scopes, ApiKey.secret_sha256).where(ApiKey.revoked_at.is_(None))


class KeyDirectory:
    def __init__(self) -> None:
        self._live: dict[str, LiveKey] = {}
        self._read_at = -float("inf")  # time.monotonic() when the last full read began
        self._reading: asyncio.Task[None] | None = None
        self._unknown: TTLCache[str, bool] = TTLCache(UNKNOWN_IDS, UNKNOWN_HOLD_S)

    async def find(
        self, engine: AsyncEngine, key_id: str, charge: Callable[[], Awaitable[None]]
    ) -> LiveKey | None:
        """Return the live key of this id, or None. An unlisted id is charged first, so that a throttled
        guess costs the database nothing, then read unless it is remembered as nobody's."""
        if key_id in self._live:
            if time.monotonic() - self._read_at >= keys.KEY_CACHE_S:
                await self.read_all(engine)
            return self._live.get(key_id)
        await charge()
        if key_id in self._unknown:
            return None
        rows = await read(engine, LIVE.where(ApiKey.key_id == key_id), timeout=READ_TIMEOUT_S)
        if not rows:
            self._unknown[key_id] = True
            return None
        self._live[key_id] = found = _live_key(rows[0])
        return found

    async def read_all(self, engine: AsyncEngine) -> None:
        """Read every live key; callers arriving while a read runs wait for that one."""
        if self._reading is None or self._reading.done():
            self._reading = asyncio.ensure_future(self._read_all(engine))
            # Its error retrieved here too: the callers that waited for it may all have left.
            self._reading.add_done_callback(lambda read: read.cancelled() or read.exception())
        await asyncio.shield(self._reading)  # a caller that leaves does not cancel the others' read

    async def _read_all(self, engine: AsyncEngine) -> None:
        began = time.monotonic()
        self._live = {row.key_id: _live_key(row) for row in await read(engine, LIVE, timeout=READ_TIMEOUT_S)}
        self._read_at = began


def _live_key(row: Row[Any]) -> LiveKey:
    return LiveKey(row.key_id, frozenset(row.scopes.split()), row.secret_sha256)
