"""The only writes of the ratings table: the API's rate and delete, and the import.

Each first bumps the ratings version of every user it changes, in its transaction, so no kept list
stays current. Bumping first takes the user's row lock before the rating's foreign-key check asks
for a shared one: concurrent raters of one user queue instead of deadlocking. Each keeps
`movies.rating_count` too; a rate or delete changes it before the rating, so that the movie's row is
locked before the foreign-key check's shared lock, as the user's is."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

import numpy as np
from pymysql.constants import CLIENT
from sqlalchemy import Connection, Insert, delete, func, select, update
from sqlalchemy.orm import Session

from api.db import utcnow
from api.errors import NotFound
from api.movies.models import Movie
from api.movies.service import get_movie
from api.ratings.models import Rating
from api.ratings.service import check_stars
from api.upsert import upsert_statement
from api.users.models import User
from api.users.service import get_user
from ml.movielens.format import Ratings

BUMP_CHUNK = 1_000  # users or movies per UPDATE
BULK_FORMAT_CHUNK = 1_000_000  # ratings formatted at a time into the bulk load's file
MYSQL_UPSERT = (
    "INSERT INTO ratings (user_id, movie_id, rating, rated_at) VALUES {} "
    "ON DUPLICATE KEY UPDATE rating = VALUES(rating), rated_at = VALUES(rated_at)"
)


def rate_movie(*, session: Session, user_id: int, movie_id: int, rating: float) -> Rating:
    """Insert or update the user's rating of the movie and return it (the caller commits)."""
    rating = check_stars(rating)
    # Bumped before any read: once the user's row is locked, their ratings read here stay as read.
    _bump(session, [user_id])
    get_user(session=session, user_id=user_id)
    get_movie(session=session, movie_id=movie_id)
    if not _rated(session, user_id, movie_id):
        _count(session, movie_id, 1)
    values = dict(user_id=user_id, movie_id=movie_id, rating=rating, rated_at=utcnow().replace(microsecond=0))
    session.connection().execute(_upsert(session.connection()), [values])
    return Rating(**values)


def delete_rating(*, session: Session, user_id: int, movie_id: int) -> None:
    """Delete the user's rating of the movie; raise NotFound when there is none (the caller rolls back)."""
    _bump(session, [user_id])
    if not _rated(session, user_id, movie_id):
        raise NotFound(f"user {user_id} has not rated movie {movie_id}")
    _count(session, movie_id, -1)
    session.execute(delete(Rating).where(Rating.user_id == user_id, Rating.movie_id == movie_id))


def upsert_rating_columns(
    *,
    session: Session,
    ratings: Ratings,
    batch_size: int = 20_000,
    report: Callable[[int], Any] = lambda _rows: None,
) -> int | None:
    """Insert or replace the import's ratings in the caller's transaction; return the table's row
    count when known without counting (after a bulk load), else None. On MySQL an empty table gets
    one LOAD DATA, else each batch is one INSERT written from the numbers (no binding per value)."""
    _bump(session, np.unique(ratings.user_id).tolist())
    held = _write_ratings(session, ratings, batch_size, report)
    _recount(session, np.unique(ratings.movie_id).tolist())
    return held


def _write_ratings(
    session: Session, ratings: Ratings, batch_size: int, report: Callable[[int], Any]
) -> int | None:
    connection = session.connection()
    mysql = connection.dialect.name == "mysql"
    if mysql and len(ratings) and _can_load_in_bulk(connection, ratings):
        _load_in_bulk(connection, ratings)
        report(len(ratings))
        return len(ratings)
    for start in range(0, len(ratings), batch_size):
        end = min(start + batch_size, len(ratings))
        if mysql:
            values = ",".join(f"({u},{m},{s!r},'{t}')" for u, m, s, t in _values(ratings, start, end))
            connection.exec_driver_sql(MYSQL_UPSERT.format(values))
        else:
            rows = [
                {"user_id": u, "movie_id": m, "rating": s, "rated_at": datetime.fromisoformat(t)}
                for u, m, s, t in _values(ratings, start, end)
            ]
            connection.execute(_upsert(connection), rows)
        report(end - start)
    return None


def _upsert(connection: Connection) -> Insert:
    return upsert_statement(connection, Rating.__table__, ["user_id", "movie_id"], ["rating", "rated_at"])


def _values(ratings: Ratings, start: int, end: int) -> Iterator[tuple[int, int, float, str]]:
    """Yield the ratings from start to end as Python numbers, each time as MySQL reads a DATETIME."""
    moments = np.datetime_as_string(ratings.timestamp[start:end].astype("datetime64[s]"))
    yield from zip(
        ratings.user_id[start:end].tolist(), ratings.movie_id[start:end].tolist(),
        ratings.rating[start:end].astype(np.float64).tolist(), moments.tolist(), strict=True,
    )  # fmt: skip


class BulkLoadError(RuntimeError):
    """The bulk load of ratings would break what the database's checks, switched off for it, keep."""


def _can_load_in_bulk(connection: Connection, ratings: Ratings) -> bool:
    """Return whether these ratings may be loaded in bulk: no (user, movie) pair repeats (an upsert keeps
    the last), the table is empty, and both ends allow LOAD DATA LOCAL (api.db.make_batch_engine)."""
    pairs = np.sort(ratings.user_id.astype(np.int64) << 32 | ratings.movie_id.astype(np.int64))
    if (pairs[1:] == pairs[:-1]).any():  # sorting: np.unique's hash table is far slower at this size
        return False
    if not getattr(connection.connection.dbapi_connection, "client_flag", 0) & CLIENT.LOCAL_FILES:
        return False
    if not connection.exec_driver_sql("SELECT @@local_infile").scalar_one():
        return False
    # A plain read: a locking one (FOR UPDATE) keeps MariaDB from loading in bulk. A rating written
    # by someone else before the load makes the load refuse its row, and the import roll back.
    return connection.exec_driver_sql("SELECT 1 FROM ratings LIMIT 1").first() is None


def _load_in_bulk(connection: Connection, ratings: Ratings) -> None:
    """Load ratings into the empty ratings table with one LOAD DATA of a temporary file, with unique
    and foreign-key checks off (MariaDB then fills it in bulk); the skipped checks are made here first
    on rows locked until commit. A rollback empties the table again."""
    for table, column in (("users", ratings.user_id), ("movies", ratings.movie_id)):
        known = np.fromiter(
            connection.exec_driver_sql(f"SELECT id FROM {table} LOCK IN SHARE MODE").scalars(), np.int64
        )
        missing = np.setdiff1d(np.unique(column), known)
        if missing.size:
            raise BulkLoadError(
                f"the ratings name {missing.size} {table} that do not exist, e.g. {int(missing[0])}"
            )
    with tempfile.NamedTemporaryFile(
        "w", encoding="ascii", prefix="movierec-ratings-", suffix=".tsv"
    ) as file:
        for start in range(0, len(ratings), BULK_FORMAT_CHUNK):
            end = min(start + BULK_FORMAT_CHUNK, len(ratings))
            file.write("".join(f"{u}\t{m}\t{s!r}\t{t}\n" for u, m, s, t in _values(ratings, start, end)))
        file.flush()
        connection.exec_driver_sql("SET SESSION unique_checks = 0, foreign_key_checks = 0")
        try:
            loaded = connection.exec_driver_sql(
                "LOAD DATA LOCAL INFILE %s INTO TABLE ratings CHARACTER SET ascii "
                "(user_id, movie_id, rating, rated_at)",
                (file.name,),
            ).rowcount
            warnings = connection.exec_driver_sql("SHOW COUNT(*) WARNINGS").scalar_one()
        finally:
            connection.exec_driver_sql("SET SESSION unique_checks = 1, foreign_key_checks = 1")
    # LOCAL turns a refused row into a warning: anything but every row, cleanly, rolls back.
    if loaded != len(ratings) or warnings:
        raise BulkLoadError(f"MySQL loaded {loaded} of {len(ratings)} ratings with {warnings} warnings")


def _bump(session: Session, user_ids: Sequence[int]) -> None:
    for start in range(0, len(user_ids), BUMP_CHUNK):
        session.execute(
            update(User)
            .where(User.id.in_(user_ids[start : start + BUMP_CHUNK]))
            .values(ratings_version=User.ratings_version + 1)
            .execution_options(synchronize_session=False)
        )


def _rated(session: Session, user_id: int, movie_id: int) -> bool:
    query = select(Rating.user_id).where(Rating.user_id == user_id, Rating.movie_id == movie_id)
    return session.execute(query).first() is not None


def _count(session: Session, movie_id: int, change: int) -> None:
    session.execute(
        update(Movie)
        .where(Movie.id == movie_id)
        .values(rating_count=Movie.rating_count + change)
        .execution_options(synchronize_session=False)
    )


def _recount(session: Session, movie_ids: Sequence[int]) -> None:
    """Set the movies' rating counts from the ratings table (one index range each)."""
    counted = select(func.count()).where(Rating.movie_id == Movie.id).scalar_subquery()
    for start in range(0, len(movie_ids), BUMP_CHUNK):
        session.execute(
            update(Movie)
            .where(Movie.id.in_(movie_ids[start : start + BUMP_CHUNK]))
            .values(rating_count=counted)
            .execution_options(synchronize_session=False)
        )
