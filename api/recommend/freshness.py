"""The one read a kept recommendation needs: has anything it was computed from changed?

It runs on every `recommendations` request, so it costs one round trip and nothing else: its
own small pool of autocommit connections (no transaction to roll back when done, no snapshot
left on a pooled connection), no ping before use (a connection found dead is replaced and the
read tried once more) and a statement compiled once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, bindparam, func, select
from sqlalchemy.orm import Session

from api.db import make_engine
from api.errors import NotFound, Unavailable
from api.movies.models import Movie
from api.users.models import User

_users = User.__table__.c
USER_STATE = select(
    _users.gender,
    _users.age,
    _users.occupation_id,
    _users.zip_code,
    _users.ratings_version,
    select(func.max(Movie.id)).scalar_subquery(),
).where(_users.id == bindparam("user_id"))


@dataclass(frozen=True)
class UserState:
    gender: str
    age: int
    occupation_id: int
    zip_code: str
    ratings_version: int  # bumped with every change to the user's ratings
    newest_movie: int | None  # the catalogue's highest movie id: new movies change it


def user_state(*, session: Session, user_id: int) -> UserState:
    """Return the user's demographics and versions through a session, or raise NotFound."""
    return _state_of(user_id, session.execute(USER_STATE, {"user_id": user_id}).one_or_none())


def _state_of(user_id: int, row: Any) -> UserState:
    if row is None:
        raise NotFound(f"user {user_id} does not exist")
    return UserState(*row)


class FreshnessReader:
    """Reads a user's state in one autocommit round trip."""

    def __init__(self, url: str, *, pool_size: int = 4) -> None:
        # SQLite connections are in autocommit already (api.db turns pysqlite's own handling off).
        options: dict[str, Any] = {} if url.startswith("sqlite") else {"isolation_level": "AUTOCOMMIT"}
        self.engine: Engine = make_engine(
            url, pool_size=pool_size, max_overflow=4, pool_pre_ping=False, **options
        )
        self._errors = self.engine.dialect.loaded_dbapi.Error
        compiled = USER_STATE.compile(dialect=self.engine.dialect)
        self._sql = str(compiled)
        self._positional = self.engine.dialect.positional

    def user_state(self, user_id: int) -> UserState:
        """Return the user's demographics and versions; raise NotFound, or Unavailable."""
        params: Any = (user_id,) if self._positional else {"user_id": user_id}
        for attempt in (1, 2):
            try:
                connection = self.engine.raw_connection()
            except Exception as error:  # sqlalchemy wraps the driver's connect errors
                raise Unavailable("the database is unavailable; try again shortly") from error
            try:
                cursor = connection.cursor()
                cursor.execute(self._sql, params)
                row = cursor.fetchone()
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
        return _state_of(user_id, row)

    def dispose(self) -> None:
        self.engine.dispose()
