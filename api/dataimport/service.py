"""Import a MovieLens dataset into the database: idempotent, batched, all or nothing."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from api.movies.models import Genre, Movie, MovieTag, movie_genres
from api.ratings.models import Rating
from api.ratings.writes import upsert_rating_columns
from api.upsert import upsert_statement
from api.users.models import Occupation, User
from ml.movielens.format import MAX_DESCRIPTION, MAX_TAG, MAX_TAGS, Dataset

log = logging.getLogger(__name__)

MAX_OCCUPATION_ID = 2**15 - 1  # the occupation id columns' largest value (SMALLINT)
# Called with the number of rows just written; the command line passes a progress bar's update.
Progress = Callable[[int], Any]


@dataclass(frozen=True)
class ImportCounts:
    users: int
    movies: int
    ratings: int
    genres: int

    def __str__(self) -> str:
        return f"{self.users} users, {self.movies} movies, {self.ratings} ratings, {self.genres} genres"


class UnknownGenreError(ValueError):
    """A movie names a genre the database does not know."""


class UnknownOccupationError(ValueError):
    """A user's occupation has no name, or the occupations table has no id left for a new one."""


class MovieTextError(ValueError):
    """A movie's description or tags are past the bounds the readers keep (hostile or runaway input)."""


def import_dataset(
    *, session: Session, dataset: Dataset, batch_size: int = 20_000, progress: Progress = lambda _rows: None
) -> ImportCounts:
    """Upsert every user, movie, genre link, tag and rating of dataset in the caller's transaction, which
    the caller commits: a failure or an interruption leaves nothing behind. A second import of the same
    data changes nothing. Return the table counts after."""
    _check_text(dataset)
    genre_ids = dict(session.execute(select(Genre.name, Genre.id)).all())
    links = []
    for movie in dataset.movies:
        for name in movie.genres:
            if name not in genre_ids:
                raise UnknownGenreError(
                    f"movie {movie.id} has genre {name!r}, which the database does not know"
                )
            links.append({"movie_id": movie.id, "genre_id": genre_ids[name]})

    def write(table: Any, rows: list[dict[str, Any]], *key: str) -> None:
        """Upsert rows in batches: a row whose key exists gets the row's other columns."""
        connection = session.connection()
        statement = upsert_statement(
            connection, table, key, [c for c in rows[0] if c not in key] if rows else []
        )
        for chunk in _chunks(rows, batch_size):
            connection.execute(statement, list(chunk))
            progress(len(chunk))
        log.info("upserted %d rows into %s", len(rows), table.name)

    occupations = occupation_ids(session=session, dataset=dataset)
    users = [
        {
            "id": u.id,
            "gender": u.gender,
            "age": u.age,
            "occupation_id": None if u.occupation is None else occupations[u.occupation],
            "zip_code": u.zip_code,
        }
        for u in dataset.users
    ]
    write(User.__table__, users, "id")
    movies = [
        {"id": m.id, "title": m.title, "year": m.year, "description": m.description} for m in dataset.movies
    ]
    write(Movie.__table__, movies, "id")
    # A movie's genres and tags are replaced by the file's (none when it has none).
    for chunk in _chunks([m.id for m in dataset.movies], 1000):
        session.execute(delete(movie_genres).where(movie_genres.c.movie_id.in_(chunk)))
        session.execute(delete(MovieTag).where(MovieTag.movie_id.in_(chunk)))
    write(movie_genres, links, "movie_id", "genre_id")
    tags = [
        {"movie_id": m.id, "position": i, "tag": tag} for m in dataset.movies for i, tag in enumerate(m.tags)
    ]
    write(MovieTag.__table__, tags, "movie_id", "position")
    held = upsert_rating_columns(
        session=session, ratings=dataset.ratings, batch_size=batch_size, report=progress
    )
    log.info("upserted %d rows into ratings", len(dataset.ratings))
    return count_rows(session=session, ratings=held)


def occupation_ids(*, session: Session, dataset: Dataset) -> dict[int, int]:
    """Return the database's id of each occupation id the dataset's users carry, found by name as the
    database compares names (MySQL's collation ignores case): a name the occupations table lacks is added
    with the next id, so that ids already given never change."""
    ids = {}
    for code in sorted({u.occupation for u in dataset.users if u.occupation is not None}):
        name = dataset.occupations.get(code)
        if name is None:
            raise UnknownOccupationError(f"occupation id {code} has no name in the dataset")
        found = session.execute(select(Occupation.id).where(Occupation.name == name)).scalar()
        if found is None:
            found = int(session.execute(select(func.coalesce(func.max(Occupation.id), -1))).scalar_one()) + 1
            if found > MAX_OCCUPATION_ID:
                raise UnknownOccupationError(f"the occupations table is full: {name!r} cannot be added")
            session.add(Occupation(id=found, name=name))
            session.flush()
            log.info("added occupation %d, %r", found, name)
        ids[code] = found
    return ids


def count_rows(*, session: Session, ratings: int | None = None) -> ImportCounts:
    """Return how many users, movies, ratings and genres the database holds, taking `ratings` from a
    caller who knows it (a COUNT(*) inside a bulk load's transaction is far slower than after it)."""

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
        length = len(m.description or "")
        if length > MAX_DESCRIPTION:
            raise MovieTextError(
                f"movie {m.id} has a description of {length} characters, at most {MAX_DESCRIPTION}"
            )
        if len(m.tags) > MAX_TAGS or len(set(m.tags)) < len(m.tags):
            raise MovieTextError(f"movie {m.id} has {len(m.tags)} tags or repeats one: at most {MAX_TAGS}")
        if any(not tag or len(tag) > MAX_TAG for tag in m.tags):
            raise MovieTextError(f"movie {m.id} has an empty tag or one longer than {MAX_TAG} characters")


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
