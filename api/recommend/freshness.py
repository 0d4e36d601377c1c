"""The one read a kept recommendation needs: has anything it was computed from changed?

It reads the user's ratings version, the catalogue's newest movie and the user's kept list
(api/recommend/models.py) together. It runs on every `recommendations` request, so it costs one
round trip and nothing else: its own small pool of autocommit connections (no transaction to
roll back when done, no snapshot left on a pooled connection), no ping before use (a connection
found dead is replaced and the read tried once more), a statement compiled once per number of
users read together, and no column the answer does not need (the driver parses a descriptor per
column, per request).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import Histogram
from sqlalchemy import Engine, Select, bindparam, func, select
from sqlalchemy.orm import Session

from api.db import make_engine
from api.errors import NotFound, Unavailable
from api.movies.models import Movie
from api.recommend.models import KeptList
from api.users.models import User

BATCH = Histogram(
    "movierec_freshness_batch_users",
    "Users whose freshness one database round trip read",
    buckets=(1, 2, 3, 4, 6, 8, 12, 16),
)
_users, _kept = User.__table__.c, KeptList.__table__.c
NEWEST_MOVIE = select(func.max(Movie.id)).scalar_subquery()
# The fields of UserState, in order.
USER_STATE_COLUMNS = (
    _users.gender,
    _users.age,
    _users.occupation_id,
    _users.zip_code,
    _users.ratings_version,
    NEWEST_MOVIE,
)
USER_STATE = select(*USER_STATE_COLUMNS).where(_users.id == bindparam("user_id"))
FRESHNESS_COLUMNS = (
    _users.id,
    _users.ratings_version,
    NEWEST_MOVIE,
    _kept.model_version_id,
    _kept.ratings_version,
    _kept.newest_movie,
    _kept.time_key,
    _kept.newest_rating,
    _kept["items"],  # not .items: that is the column collection's own method
)


def freshness_statement(users: int) -> Select[Any]:
    """Return the freshness read of `users` users (bind parameters u0, u1, ...)."""
    return (
        select(*FRESHNESS_COLUMNS)
        .select_from(User.__table__.outerjoin(KeptList.__table__, _kept.user_id == _users.id))
        .where(_users.id.in_([bindparam(f"u{i}") for i in range(users)]))
    )


@dataclass(frozen=True)
class KeptRow:
    """A user's kept list as stored, and what it was computed from."""

    model_version_id: int
    ratings_version: int
    newest_movie: int | None
    time_key: int
    newest_rating: int | None
    items: str  # JSON, parsed only when the row is current


@dataclass(frozen=True)
class UserState:
    """What a user's recommendations are computed from, besides their ratings."""

    gender: str
    age: int
    occupation_id: int
    zip_code: str
    ratings_version: int  # bumped with every change to the user's ratings
    newest_movie: int | None  # the catalogue's highest movie id: new movies change it


@dataclass(frozen=True)
class Freshness:
    """The versions a kept answer is checked against, and the user's kept list."""

    ratings_version: int
    newest_movie: int | None
    kept: KeptRow | None


def user_state(*, session: Session, user_id: int) -> UserState:
    """Return the user's demographics and versions through a session, or raise NotFound."""
    row = session.execute(USER_STATE, {"user_id": user_id}).one_or_none()
    if row is None:
        raise NotFound(f"user {user_id} does not exist")
    return UserState(*row)


class FreshnessReader:
    """Reads users' versions and kept lists in one autocommit round trip."""

    def __init__(self, url: str, *, pool_size: int = 4) -> None:
        # SQLite connections are in autocommit already (api.db turns pysqlite's own handling off).
        options: dict[str, Any] = {} if url.startswith("sqlite") else {"isolation_level": "AUTOCOMMIT"}
        self.engine: Engine = make_engine(
            url, pool_size=pool_size, max_overflow=4, pool_pre_ping=False, **options
        )
        self._errors = self.engine.dialect.loaded_dbapi.Error
        self._positional = self.engine.dialect.positional
        self._sql: dict[int, str] = {}  # by number of users: compiled once each

    def read(self, user_id: int) -> Freshness:
        """Return the user's versions and kept list; raise NotFound, or Unavailable."""
        found = self.read_many([user_id]).get(user_id)
        if found is None:
            raise NotFound(f"user {user_id} does not exist")
        return found

    def read_many(self, user_ids: Sequence[int]) -> dict[int, Freshness]:
        """Return the versions and kept lists of the users that exist, by id; raise Unavailable."""
        sql = self._sql.get(len(user_ids))
        if sql is None:
            sql = self._sql[len(user_ids)] = str(
                freshness_statement(len(user_ids)).compile(dialect=self.engine.dialect)
            )
        params: Any = tuple(user_ids) if self._positional else {f"u{i}": u for i, u in enumerate(user_ids)}
        for attempt in (1, 2):
            try:
                connection = self.engine.raw_connection()
            except Exception as error:  # sqlalchemy wraps the driver's connect errors
                raise Unavailable("the database is unavailable; try again shortly") from error
            try:
                cursor = connection.cursor()
                cursor.execute(sql, params)
                rows = cursor.fetchall()
                cursor.close()
                break
            except self._errors as error:
                if not self.engine.dialect.is_disconnect(error, connection.dbapi_connection, None):
                    raise
                connection.invalidate(error)  # closed for good; the pool opens a new one
                if attempt == 2:
                    raise Unavailable("the database is unavailable; try again shortly") from error
            finally:
                connection.close()
        return {
            user_id: Freshness(ratings_version, newest_movie, KeptRow(*kept) if kept[0] is not None else None)
            for user_id, ratings_version, newest_movie, *kept in rows
        }

    def dispose(self) -> None:
        self.engine.dispose()


class FreshnessBatcher:
    """Reads the freshness of every request that asks within one turn of the event loop at once.

    A request's read starts after the request asked, so it sees every change committed before:
    batching changes how many round trips the requests of a busy process make, not what they see.
    """

    def __init__(self, reader: FreshnessReader) -> None:
        self.reader = reader
        self._waiting: dict[int, list[asyncio.Future[Freshness]]] = {}

    async def read(self, user_id: int) -> Freshness:
        """Return the user's versions and kept list; raise NotFound, or Unavailable."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Freshness] = loop.create_future()
        if not self._waiting:
            loop.call_soon(self._read_waiting)  # after the requests ready in this turn have asked
        self._waiting.setdefault(user_id, []).append(future)
        return await future

    def _read_waiting(self) -> None:
        waiting, self._waiting = self._waiting, {}
        BATCH.observe(len(waiting))
        try:
            found = self.reader.read_many(list(waiting))
        except Exception as error:  # every request of the batch fails as a lone read would have
            for futures in waiting.values():
                for future in futures:
                    if not future.done():
                        future.set_exception(error)
            return
        for user_id, futures in waiting.items():
            for future in futures:
                if future.done():  # its request was cancelled meanwhile
                    continue
                if user_id in found:
                    future.set_result(found[user_id])
                else:
                    future.set_exception(NotFound(f"user {user_id} does not exist"))
