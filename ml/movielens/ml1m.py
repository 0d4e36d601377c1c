"""Reader for the ML-1M file format: `::`-separated, latin-1 users.dat, movies.dat, ratings.dat."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ml.movielens.format import (
    AGE_BUCKETS,
    GENRES,
    OCCUPATIONS,
    Dataset,
    MalformedDataError,
    Movie,
    User,
    parse_year,
)
from ml.movielens.rating_columns import ParsedRatings
from ml.movielens.tables import MAX_TITLE, dataset, integer, need_files, new_id, split_lines

FILES = ("users.dat", "movies.dat", "ratings.dat")
ENCODING = "latin-1"
SEPARATOR = "::"


def load_ml1m(directory: Path) -> Dataset:
    """Return the dataset in a directory holding users.dat, movies.dat and ratings.dat.

    Raises FileNotFoundError naming a missing file, and MalformedDataError for a bad line
    or for a rating whose user or movie the other files do not define.
    """
    directory = Path(directory)
    need_files(directory, FILES, "ML-1M")
    users, movies, ratings = (directory / name for name in FILES)
    return dataset(ratings, _users(users), _movies(movies), _ratings(ratings))


def _users(path: Path) -> list[User]:
    users: list[User] = []
    seen: set[int] = set()
    for number, (uid, gender, age, occupation, zip_code) in split_lines(path, 5, SEPARATOR, ENCODING):
        user_id = new_id(path, number, "user", uid, seen)
        if gender not in ("F", "M"):
            raise MalformedDataError(path, number, f"gender must be F or M, not {gender!r}")
        age_bucket = integer(path, number, "age", age, low=0)
        if age_bucket not in AGE_BUCKETS:
            raise MalformedDataError(path, number, f"age {age_bucket} is not an ML-1M age bucket")
        occ = integer(path, number, "occupation", occupation, low=0)
        if occ not in OCCUPATIONS:
            raise MalformedDataError(path, number, f"occupation {occ} is not in 0-20")
        if not zip_code or len(zip_code) > 10:
            raise MalformedDataError(path, number, f"zip code {zip_code!r} is empty or too long")
        users.append(User(user_id, gender, age_bucket, occ, zip_code))
    return users


def _movies(path: Path) -> list[Movie]:
    movies: list[Movie] = []
    seen: set[int] = set()
    known = set(GENRES)
    for number, (mid, title, genre_text) in split_lines(path, 3, SEPARATOR, ENCODING):
        movie_id = new_id(path, number, "movie", mid, seen)
        if not title.strip() or len(title) > MAX_TITLE:
            raise MalformedDataError(path, number, f"title is empty or longer than {MAX_TITLE} characters")
        genres = tuple(g for g in genre_text.split("|") if g)
        unknown = [g for g in genres if g not in known]
        if unknown:
            raise MalformedDataError(path, number, f"unknown genre {unknown[0]!r}")
        movies.append(Movie(movie_id, title, parse_year(title), genres))
    return movies


def _ratings(path: Path) -> ParsedRatings:
    """Return the ratings of a ratings.dat: in lists, which append faster than RatingColumns, then arrays."""
    users: list[int] = []
    movies: list[int] = []
    stars: list[int] = []
    times: list[int] = []
    for number, (uid, mid, rating, ts) in split_lines(path, 4, SEPARATOR, ENCODING):
        try:
            u, m, r, t = int(uid), int(mid), int(rating), int(ts)
        except ValueError:
            raise MalformedDataError(
                path, number, "user, movie, rating and timestamp must be integers"
            ) from None
        if not 1 <= r <= 5:
            raise MalformedDataError(path, number, f"rating {r} is outside 1-5")
        if u <= 0 or m <= 0 or t < 0:
            raise MalformedDataError(path, number, "ids must be positive and the timestamp not negative")
        users.append(u)
        movies.append(m)
        stars.append(r)
        times.append(t)
    columns = (np.asarray(c, dtype=np.int64) for c in (users, movies, stars, times))
    return ParsedRatings(path, *columns, header=False)
