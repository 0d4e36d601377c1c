"""The most-rated movies from a per-process snapshot of every movie's rating count, year and genres,
read again at most every MAX_AGE_S, in one thread while the one before answers: a request filters it
in memory, so no client's filters can make every request count the ratings."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from anyio import to_thread
from sqlalchemy import Connection, Engine, select
from sqlalchemy.orm import Session

from api.movies.models import Genre, Movie, movie_genres

log = logging.getLogger(__name__)
MAX_AGE_S = 60.0  # a process counts the ratings again at most this often
RETRY_S = 5.0  # after a failed read, the snapshot before serves this long before the next try


@dataclass(frozen=True, eq=False)
class Snapshot:
    """Every rated movie's id, rating count, year and genres, most-rated first (ties: lower id first)."""

    ids: npt.NDArray[np.int64]
    counts: npt.NDArray[np.int64]
    years: npt.NDArray[np.float64]  # NaN where unknown: like SQL's NULL, it passes no year bound
    genres: npt.NDArray[np.bool_]  # (movies, genre_names): whether each movie has each genre
    genre_names: tuple[str, ...]  # every genre of the catalogue, alphabetically

    def top(
        self,
        limit: int,
        *,
        genres: Collection[str] | None = None,
        year_from: int | None = None,
        year_to: int | None = None,
        exclude: Collection[int] = (),
    ) -> list[tuple[int, int]]:
        """Return (movie id, rating count) of the `limit` most-rated movies of any of `genres` within
        the years, but the `exclude` ones. Genres must be among genre_names (check them first)."""
        keep = np.ones(self.ids.size, dtype=bool)
        if genres:
            columns = [self.genre_names.index(g) for g in set(genres)]
            keep &= self.genres[:, columns].any(axis=1)
        if year_from is not None:
            keep &= self.years >= year_from
        if year_to is not None:
            keep &= self.years <= year_to
        rows = np.flatnonzero(keep)
        if exclude:
            rows = rows[: limit + len(exclude)]  # enough for `limit` whichever of them are excluded
            rows = rows[~np.isin(self.ids[rows], np.fromiter(exclude, np.int64, len(exclude)))]
        rows = rows[:limit]
        return list(zip(self.ids[rows].tolist(), self.counts[rows].tolist(), strict=True))


def read_snapshot(session: Session | Connection) -> Snapshot:
    """Return the snapshot of the database now: the rated movies with their rating counts (which every
    rating write keeps, api.ratings.writes), and the genres."""
    rated = select(Movie.id, Movie.year, Movie.rating_count).where(Movie.rating_count > 0)
    rows = session.execute(rated).all()
    names = dict(session.execute(select(Genre.id, Genre.name)).all())
    links = session.execute(select(movie_genres.c.movie_id, movie_genres.c.genre_id)).all()
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    years = np.array([math.nan if r[1] is None else r[1] for r in rows], dtype=np.float64)
    counts = np.array([r[2] for r in rows], dtype=np.int64)
    order = np.lexsort((ids, -counts))  # most-rated first, then the lower id
    ids, counts, years = ids[order], counts[order], years[order]
    genre_names = tuple(sorted(names.values()))
    column_of = {genre_id: genre_names.index(name) for genre_id, name in names.items()}
    row_of = {movie_id: row for row, movie_id in enumerate(ids.tolist())}
    # A movie nobody rated is not in the snapshot, nor are its genres.
    cells = [(row_of[movie_id], column_of[genre_id]) for movie_id, genre_id in links if movie_id in row_of]
    matrix = np.zeros((ids.size, len(genre_names)), dtype=bool)
    matrix[tuple(np.array(cells, dtype=np.intp).reshape(-1, 2).T)] = True
    return Snapshot(ids, counts, years, matrix, genre_names)


class Popularity:
    """A process's Snapshot, kept on its event loop: read again when older than max_age seconds, one
    read at a time in a thread of anyio's (not one of the requests' worker threads), while the snapshot
    before answers."""

    def __init__(self, engine: Engine, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._engine, self._clock, self.max_age = engine, clock, MAX_AGE_S
        self._current: Snapshot | None = None
        self._due = -math.inf  # when the current snapshot is to be read again
        self._reading: asyncio.Task[Snapshot] | None = None

    async def snapshot(self) -> Snapshot:
        """Return the current snapshot, starting a read if one is due; before the first, wait for it."""
        if self._reading is None and (self._current is None or self._clock() >= self._due):
            self._reading = asyncio.ensure_future(self._read())
            # retrieved here too: the requests that waited for a first read that failed may all have left
            self._reading.add_done_callback(lambda read: read.cancelled() or read.exception())
        if self._current is not None:
            return self._current
        assert self._reading is not None  # started above, as there is no snapshot yet
        # Shielded: a waiter that is cancelled (its client left) cannot cancel the read others share.
        return await asyncio.shield(self._reading)

    async def _read(self) -> Snapshot:
        started = self._clock()
        try:
            snapshot = await to_thread.run_sync(self._count)
        except Exception as error:  # the snapshot before serves until RETRY_S, then a request tries again
            log.warning("could not count the most-rated movies: %s", error)
            self._due = started + RETRY_S
            if self._current is None:
                raise  # to the requests waiting for the first
            return self._current
        finally:
            self._reading = None
        self._current, self._due = snapshot, started + self.max_age
        return snapshot

    def _count(self) -> Snapshot:
        # Only reads: on SQLite it then holds up no writer (api.db._sqlite_on_begin), nor a caller
        # in a worker thread whose transaction waits for this first snapshot.
        with self._engine.connect().execution_options(deferred_begin=True) as connection:
            return read_snapshot(connection)
