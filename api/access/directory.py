"""The live API keys as one process knows them: every one read at once, again at most once per
KEY_CACHE_S (one read however many requests wait for it), and the key ids found to be nobody's
(made up, or revoked) in a bounded cache. Reads are single autocommit SELECTs on the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence

from cachetools import TTLCache
from sqlalchemy import Row, Select
from sqlalchemy.ext.asyncio import AsyncEngine

from api.access import keys
from api.access.keys import LiveKey, live_key, live_keys_query

# Ids remembered as nobody's; past that many, each costs a read again (within its address's rate).
UNKNOWN_IDS = 10_000
UNKNOWN_HOLD_S = 600.0  # ids are random and a revocation is for good: nobody's now is nobody's later
READ_TIMEOUT_S = 5.0


class KeyDirectory:
    def __init__(self) -> None:
        self.hold_s = keys.KEY_CACHE_S
        self._live: dict[str, LiveKey] = {}
        self._read_at = -self.hold_s  # time.monotonic() when the last full read began
        self._reading: asyncio.Task[None] | None = None
        self._unknown: TTLCache[str, bool] = TTLCache(UNKNOWN_IDS, UNKNOWN_HOLD_S)

    def lists(self, key_id: str) -> bool:
        """Return whether the key was live at the last read (or found live since)."""
        return key_id in self._live

    async def listed(self, engine: AsyncEngine, key_id: str) -> LiveKey | None:
        """Return a listed key if still live (all keys are read again when the last read is hold_s old)."""
        if time.monotonic() - self._read_at >= self.hold_s:
            await self.read_all(engine)
        return self._live.get(key_id)

    async def read_all(self, engine: AsyncEngine) -> None:
        """Read every live key; callers arriving while a read runs wait for that one."""
        if self._reading is None:
            self._reading = asyncio.ensure_future(self._read_all(engine))
            self._reading.add_done_callback(self._read_done)
        await asyncio.shield(self._reading)  # a caller that leaves does not cancel the others' read

    async def unlisted(self, engine: AsyncEngine, key_id: str) -> LiveKey | None:
        """Return the live key of an unlisted id: one read, unless the id is remembered as nobody's."""
        if key_id in self._unknown:
            return None
        rows = await _rows(engine, live_keys_query(key_id))
        if not rows:
            self._unknown[key_id] = True
            return None
        self._live[key_id] = found = live_key(rows[0])
        return found

    async def _read_all(self, engine: AsyncEngine) -> None:
        began = time.monotonic()
        rows = await _rows(engine, live_keys_query())
        self._live = {row[0]: live_key(row) for row in rows}
        self._read_at = began

    def _read_done(self, task: asyncio.Task[None]) -> None:
        self._reading = None
        if not task.cancelled():
            task.exception()  # retrieved here too: the callers that waited for it may all have left


async def _rows(engine: AsyncEngine, query: Select[str, str, str, str]) -> Sequence[Row[str, str, str, str]]:
    """Return the rows of one SELECT on a connection of the autocommit read engine (no BEGIN)."""
    async with asyncio.timeout(READ_TIMEOUT_S), engine.connect() as connection:
        try:
            return (await connection.execute(query)).all()
        except BaseException:
            with contextlib.suppress(Exception):
                await connection.invalidate()  # after a failure or a timeout its state is unknown
            raise
