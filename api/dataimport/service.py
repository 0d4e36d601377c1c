"""Import a MovieLens dataset into the database: idempotent, batched, all or nothing."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, delete, func, select
from sqlalchemy.orm import Session

from api.movies.models import Genre, Movie, MovieTag, movie_genres
from api.ratings.models import Rating
from api.ratings.writes import upsert_rating_columns
from api.upsert import upsert_statement
from api.users.models import User
from ml.movielens.format import MAX_DESCRIPTION, MAX_TAG, MAX_TAGS, Dataset

log = logging.getLogger(__name__)

# Called with the number of rows just written; the command line passes a progress bar's update.
Progress = Callable[[int], Any]


@dataclass(frozen=True)
class ImportCounts:
    users: int
    movies: int
    ratings: int
    genres: int


class UnknownGenreError(ValueError):
    """A movie names a genre the database does not know."""


class MovieTextError(ValueError):
    """A movie's description or tags are past the bounds the readers keep (hostile or runaway input)."""


def import_dataset(
    *, session: Session, dataset: Dataset, batch_size: int = 20_000, progress: Progress | None = None
) -> ImportCounts:
    """Upsert every user, movie, genre link and rating of dataset; return the table counts after.

    Runs inside the caller's transaction: the caller commits, and a failure or an interruption
    leaves nothing behind. A second import of the same data changes nothing.
    """
    report = progress or (lambda _n: None)
    _check_text(dataset)
    connection = session.connection()
    genre_ids = dict(session.execute(select(Genre.name, Genre.id)).all())

    user_rows = [
        {"id": u.id, "gender": u.gender, "age": u.age, "occupation_id": u.occupation, "zip_code": u.zip_code}
        for u in dataset.users
    ]
    _write(
        session,
        User.__table__,
        user_rows,
        ["id"],
        ["gender", "age", "occupation_id", "zip_code"],
        batch_size,
        report,
    )

    movie_rows = [
        {"id": m.id, "title": m.title, "year": m.year, "description": m.description} for m in dataset.movies
    ]
    _write(session, Movie.__table__, movie_rows, ["id"], ["title", "year", "description"], batch_size, report)

    link_rows = []
    for movie in dataset.movies:
        for name in movie.genres:
            if name not in genre_ids:
                raise UnknownGenreError(
                    f"movie {movie.id} has genre {name!r}, which the database does not know"
                )
            link_rows.append({"movie_id": movie.id, "genre_id": genre_ids[name]})
    # A movie's genres are replaced by the file's: its stale links go, the rest are upserted.
    movie_ids = [m.id for m in dataset.movies]
    kept = {(r["movie_id"], r["genre_id"]) for r in link_rows}
    for chunk in _chunks(movie_ids, 1000):
        existing = connection.execute(
            select(movie_genres.c.movie_id, movie_genres.c.genre_id).where(movie_genres.c.movie_id.in_(chunk))
        ).all()
        for movie_id, genre_id in existing:
            if (movie_id, genre_id) not in kept:
                connection.execute(
                    delete(movie_genres).where(
                        movie_genres.c.movie_id == movie_id, movie_genres.c.genre_id == genre_id
                    )
                )
    _write(session, movie_genres, link_rows, ["movie_id", "genre_id"], [], batch_size, report)

    # A movie's tags are replaced by the file's too (none when it has none).
    for chunk in _chunks(movie_ids, 1000):
        connection.execute(delete(MovieTag).where(MovieTag.movie_id.in_(chunk)))
    tag_rows = [
        {"movie_id": m.id, "position": i, "tag": tag} for m in dataset.movies for i, tag in enumerate(m.tags)
    ]
    _write(session, MovieTag.__table__, tag_rows, ["movie_id", "position"], ["tag"], batch_size, report)

    held = upsert_rating_columns(
        session=session, ratings=dataset.ratings, batch_size=batch_size, report=report
    )
    log.info("upserted %d rows into ratings", len(dataset.ratings))
    return count_rows(session=session, ratings=held)


def count_rows(*, session: Session, ratings: int | None = None) -> ImportCounts:
    """Return how many users, movies, ratings and genres the database holds; `ratings` when the
    caller knows it (a COUNT(*) inside a bulk load's transaction is far slower than after its
    commit)."""

    def count(table: Any) -> int:
        return int(session.execute(select(func.count()).select_from(table)).scalar_one())

    return ImportCounts(
        users=count(User.__table__),
        movies=count(Movie.__table__),
        ratings=count(Rating.__table__) if ratings is None else ratings,
        genres=count(Genre.__table__),
    )


def total_rows(dataset: Dataset) -> int:
    """Return how many rows an import of dataset writes, for a progress bar's total."""
    return (
        len(dataset.users)
        + len(dataset.movies)
        + sum(len(m.genres) + len(m.tags) for m in dataset.movies)
        + len(dataset.ratings)
    )


def _check_text(dataset: Dataset) -> None:
    """Raise MovieTextError, before anything is written, for a movie's text past the readers' bounds."""
    for m in dataset.movies:
        if m.description is not None and len(m.description) > MAX_DESCRIPTION:
            length = len(m.description)
            raise MovieTextError(
                f"movie {m.id} has a description of {length} characters, at most {MAX_DESCRIPTION}"
            )
        if len(m.tags) > MAX_TAGS or len(set(m.tags)) < len(m.tags):
            raise MovieTextError(f"movie {m.id} has {len(m.tags)} tags or repeats one: at most {MAX_TAGS}")
        if any(not tag or len(tag) > MAX_TAG for tag in m.tags):
            raise MovieTextError(f"movie {m.id} has an empty tag or one longer than {MAX_TAG} characters")


def _write(
    session: Session,
    table: Table | Any,
    rows: Sequence[dict[str, Any]],
    key: list[str],
    update: list[str],
    batch_size: int,
    report: Progress,
) -> None:
    connection = session.connection()
    statement = upsert_statement(connection, table, key, update)
    for chunk in _chunks(rows, batch_size):
        connection.execute(statement, list(chunk))
        report(len(chunk))
    log.info("upserted %d rows into %s", len(rows), table.name)


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
