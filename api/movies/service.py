"""Queries and writes for movies and genres."""

from __future__ import annotations

import difflib
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from functools import partial

from cachetools import TTLCache
from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.orm import Session

from api.db import Run, all_rows
from api.errors import BadUserInput, NotFound
from api.movies.models import Genre, Movie, MovieTag, movie_genres
from api.movies.search import (
    Position,
    after_position,
    indexed,
    most_rated_floor,
    scanned,
    search_words,
)


@dataclass(frozen=True)
class MovieRecord:
    """What every view of a movie shows: id, title and year."""

    id: int
    title: str
    year: int | None


class TitleCache:
    """Titles and years shared by a process's requests, read again after a minute: only a re-import of
    a corrected movies file changes a stored movie. Used on the event loop only, so it needs no lock."""

    def __init__(self) -> None:
        self._records: TTLCache[int, MovieRecord] = TTLCache(maxsize=100_000, ttl=60)

    async def get_many(self, run: Run, ids: Sequence[int]) -> dict[int, MovieRecord]:
        """Return the movies with the given ids by id, absent ones left out; misses read through `run`
        (a GraphQL operation's own session)."""
        found = {i: record for i in ids if (record := self._records.get(i)) is not None}
        if missing := set(ids) - found.keys():
            statement = select(Movie.id, Movie.title, Movie.year).where(Movie.id.in_(missing))
            rows = await run(partial(all_rows, statement, None))
            fresh = {row.id: MovieRecord(row.id, row.title, row.year) for row in rows}
            found.update(fresh)
            self._records.update(fresh)
        return found


def genre_names(*, session: Session) -> list[str]:
    """Return every genre name, alphabetically."""
    return list(session.execute(select(Genre.name).order_by(Genre.name)).scalars())


def check_genres(*, session: Session, genres: Sequence[str]) -> list[str]:
    """Return genres de-duplicated, or raise BadUserInput naming the first unknown one."""
    return check_genre_names(genres, genre_names(session=session))


def check_genre_names(genres: Sequence[str], known: Collection[str]) -> list[str]:
    """Return genres de-duplicated, or raise BadUserInput naming the first one not `known`."""
    for genre in genres:
        if genre not in known:
            hint = _closest(genre, known)
            raise BadUserInput(f"unknown genre {genre!r}{hint}; known genres: {', '.join(sorted(known))}")
    return list(dict.fromkeys(genres))


def _closest(genre: str, known: Collection[str]) -> str:
    """Return " (did you mean 'X'?)" naming the known genre closest to `genre`, or "" when none is close."""
    by_folded = {_fold(name): name for name in known}
    close = difflib.get_close_matches(_fold(genre[:64]), by_folded, n=1, cutoff=0.6)
    return f" (did you mean {by_folded[close[0]]!r}?)" if close else ""


def _fold(name: str) -> str:
    """Return name without case and the characters that only separate words: "Sci-Fi" is "scifi"."""
    return "".join(c for c in name.casefold() if c.isalnum())


def get_movie(*, session: Session, movie_id: int) -> Movie:
    """Return the movie, or raise NotFound."""
    if (movie := session.get(Movie, movie_id)) is None:
        raise NotFound(f"movie {movie_id} does not exist")
    return movie


def genres_by_movie(*, session: Session, ids: Sequence[int]) -> dict[int, list[str]]:
    """Return each movie's genre names, alphabetically."""
    query = (
        select(movie_genres.c.movie_id, Genre.name)
        .join(Genre, Genre.id == movie_genres.c.genre_id)
        .where(movie_genres.c.movie_id.in_(set(ids)))
        .order_by(Genre.name)
    )
    return _by_movie(session, query, ids)


def tags_by_movie(*, session: Session, ids: Sequence[int]) -> dict[int, list[str]]:
    """Return each movie's tags, most applied first (movies without tags are left out)."""
    query = select(MovieTag.movie_id, MovieTag.tag).where(MovieTag.movie_id.in_(set(ids)))
    return _by_movie(session, query.order_by(MovieTag.position), ids)


def _by_movie(session: Session, query: Select[int, str], ids: Sequence[int]) -> dict[int, list[str]]:
    """Return the query's (movie id, text) rows as lists by movie; no ids read nothing."""
    result: dict[int, list[str]] = defaultdict(list)
    for movie_id, text in session.execute(query) if ids else ():
        result[movie_id].append(text)
    return result


def list_movies(
    *,
    session: Session,
    first: int,
    after_id: int | None = None,
    genre: str | None = None,
    year_from: int | None = None,
    year_to: int | None = None,
) -> list[Movie]:
    """Return up to first + 1 movies by id after after_id that match (one more tells of a next page);
    a title search is search_movies."""
    query = select(Movie).order_by(Movie.id).limit(first + 1)
    if after_id is not None:
        query = query.where(Movie.id > after_id)
    query = query.where(*_filters(session, genre, year_from, year_to))
    return list(session.execute(query).scalars())


def search_movies(
    *,
    session: Session,
    search: str,
    first: int,
    after: Position | None = None,
    genre: str | None = None,
    year_from: int | None = None,
    year_to: int | None = None,
) -> list[tuple[Movie, Position]]:
    """Return up to first + 1 movies whose titles match `search`, most relevant first, after `after`
    (one more tells of a next page), each with its position for a cursor. A search without a letter
    or digit finds nothing."""
    words = search_words(search)
    if not words:
        return []
    dialect = session.get_bind().dialect.name
    filters = _filters(session, genre, year_from, year_to)

    def ranked(
        condition: ColumnElement[bool], tier: int, limit: int, *among: ColumnElement[bool]
    ) -> list[tuple[Movie, Position]]:
        query = (
            select(Movie)
            .where(condition, *filters, *among)
            .order_by(Movie.rating_count.desc(), Movie.id)
            .limit(limit)
        )
        if after is not None:
            query = query.where(after_position(after, tier))
        return [(movie, Position(tier, movie.rating_count, movie.id)) for movie in session.scalars(query)]

    scan = scanned(words, dialect)
    floor = session.execute(most_rated_floor()).scalar() if scan is not None else None
    found: list[tuple[Movie, Position]] = []
    for tier in (0, 1):
        wanted = first + 1 - len(found)
        if wanted == 0 or (after is not None and after.tier > tier):
            continue
        # The most-rated movies alone give the tier's page when they fill it: a movie left out has
        # fewer ratings than any in, so it ranks below the page. Else the index finds all of the tier.
        page = ranked(scan.tier(tier), tier, wanted, Movie.rating_count >= floor) if scan and floor else []
        if len(page) < wanted:
            page = ranked(indexed(words, dialect).tier(tier), tier, wanted)
        found += page
    return found


def _filters(
    session: Session, genre: str | None, year_from: int | None, year_to: int | None
) -> list[ColumnElement[bool]]:
    """Return the conditions of the genre (checked) and years asked for."""
    conditions = []
    if genre:
        check_genres(session=session, genres=[genre])
        conditions.append(Movie.genres.any(Genre.name == genre))
    if year_from is not None:
        conditions.append(Movie.year >= year_from)
    if year_to is not None:
        conditions.append(Movie.year <= year_to)
    return conditions


def create_movie(*, session: Session, title: str, year: int | None, genres: Sequence[str]) -> Movie:
    """Insert a movie with its genres and return it (the caller commits)."""
    title = title.strip()
    if not 1 <= len(title) <= 255:
        raise BadUserInput("title must be 1 to 255 characters")
    if not title.isprintable():
        raise BadUserInput("title must not contain control, format or unassigned characters")
    genres = check_genres(session=session, genres=genres)
    rows = session.scalars(select(Genre).where(Genre.name.in_(genres)))
    movie = Movie(title=title, year=year, genres=list(rows))
    session.add(movie)
    session.flush()
    return movie
