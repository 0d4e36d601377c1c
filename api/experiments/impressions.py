"""Every list served to a user is recorded as an impression, off the request path: the answer gets
the impression's id at once, the row waits in a bounded queue, and one writer task inserts what has
queued in one statement. A full queue drops the impression (counted, never waited for); old
impressions are pruned by `prune`, which the serving process runs every hour."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

from prometheus_client import Counter
from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from api.db import utcnow
from api.experiments.models import Impression

log = logging.getLogger(__name__)
RECORDED = Counter("movierec_impressions_total", "Impressions by what became of them", ["outcome"])
WRITTEN, DROPPED, LOST = RECORDED.labels("written"), RECORDED.labels("dropped"), RECORDED.labels("lost")
IMPRESSION_ID_MAX = 2**63 - 1  # ids are random below it: a BIGINT
BATCH = 1000  # rows of one insert at most
LINGER_S = 0.1  # how long the writer lets a batch gather: a transaction a tenth of a second, not a request
PRUNE_CHUNK = 5000  # impressions deleted a transaction

Rows = list[dict[str, object]]


class ImpressionRecorder:
    """The bounded queue of impressions not yet written, and its writer (`run`, a task of the app's
    lifespan; `close` writes what is left at shutdown)."""

    def __init__(self, write: Callable[[Rows], Awaitable[None]], *, capacity: int) -> None:
        self.write = write
        self.queue: asyncio.Queue[dict[str, object]] = asyncio.Queue(maxsize=max(capacity, 0))
        self.capacity = capacity
        self._pending: set[int] = set()  # queued or being written
        self._written = asyncio.Event()  # set after each batch
        self._writing: asyncio.Future[None] | None = None  # the batch being written
        self._held: Rows = []  # taken from the queue, gathering a batch

    def record(
        self,
        *,
        user_id: int,
        version_id: int,
        movie_ids: Sequence[int],
        experiment_id: int | None,
        arm: str | None,
    ) -> int | None:
        """Queue an impression and return its id, or None when nothing was shown or the queue is full."""
        if not movie_ids:
            return None
        if self.capacity <= 0 or self.queue.full():
            DROPPED.inc()
            return None
        impression_id = secrets.randbelow(IMPRESSION_ID_MAX) + 1
        self.queue.put_nowait(
            {
                "id": impression_id, "user_id": user_id, "experiment_id": experiment_id, "arm": arm,
                "version_id": version_id, "movie_ids": ",".join(map(str, movie_ids)), "shown_at": utcnow(),
            }
        )  # fmt: skip
        self._pending.add(impression_id)
        return impression_id

    async def written(self, impression_id: int) -> None:
        """Return once an impression this process queued has been written (at once for any other)."""
        while impression_id in self._pending:
            self._written.clear()
            await self._written.wait()

    async def run(self) -> None:
        """Write what has queued, in batches, until cancelled."""
        while True:
            self._held.append(await self.queue.get())
            await asyncio.sleep(LINGER_S)
            rows, self._held = self._held + self._take(BATCH - len(self._held)), []
            self._writing = asyncio.ensure_future(self._write(rows))
            await asyncio.shield(self._writing)  # cancelling `run` leaves the batch to finish (close)

    async def close(self) -> None:
        """Write every impression still held or queued (at shutdown, after `run` is cancelled)."""
        if self._writing is not None:
            await self._writing
        rows, self._held = self._held, []
        rows += self._take(BATCH - len(rows))
        while rows:
            await self._write(rows)
            rows = self._take(BATCH)

    def _take(self, n: int) -> Rows:
        rows: Rows = []
        while len(rows) < n and not self.queue.empty():
            rows.append(self.queue.get_nowait())
        return rows

    async def _write(self, rows: Rows) -> None:
        try:
            await self.write(rows)
            WRITTEN.inc(len(rows))
        except Exception as error:  # the database is down: these are lost, the next batch may land
            LOST.inc(len(rows))
            log.warning("lost %d impressions: %s", len(rows), error)
        finally:
            self._pending.difference_update(int(row["id"]) for row in rows)  # type: ignore[call-overload]
            self._written.set()


def insert_impressions(session: Session, rows: Rows) -> None:
    session.execute(insert(Impression), rows)


def prune(session: Session, *, retention_days: int) -> int:
    """Delete up to PRUNE_CHUNK impressions older than the retention, with their feedback (the caller
    commits); return how many."""
    before = utcnow() - timedelta(days=retention_days)
    ids = list(session.scalars(select(Impression.id).where(Impression.shown_at < before).limit(PRUNE_CHUNK)))
    if ids:
        session.execute(delete(Impression).where(Impression.id.in_(ids)))
    return len(ids)
