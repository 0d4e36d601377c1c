"""Reader for the ML-1M file format: `::`-separated, latin-1 users.dat, movies.dat, ratings.dat."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ml.movielens.format import AGE_BUCKETS, OCCUPATIONS, Dataset, MalformedDataError, Movie, User, parse_year
from ml.movielens.tables import (
    RatingColumns,
    dataset,
    genre_list,
    integer,
    need_files,
    new_id,
    split_lines,
    title_of,
)

FILES = ("users.dat", "movies.dat", "ratings.dat")
ENCODING = "latin-1"
SEPARATOR = "::"


def load_ml1m(directory: Path) -> Dataset:
    """Return the dataset in a directory holding users.dat, movies.dat and ratings.dat, or raise
    FileNotFoundError naming a missing file or MalformedDataError naming a bad line."""
    need_files(directory, FILES, "ML-1M")
    users, seen = [], set[int]()
    path = directory / "users.dat"
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
    movies, seen = [], set[int]()
    path = directory / "movies.dat"
    for number, (mid, title, genres) in split_lines(path, 3, SEPARATOR, ENCODING):
        movie_id = new_id(path, number, "movie", mid, seen)
        title = title_of(path, number, title)
        movies.append(Movie(movie_id, title, parse_year(title), genre_list(path, number, genres)))
    return dataset(users, movies, _ratings(directory / "ratings.dat"))


def _ratings(path: Path) -> RatingColumns:
    """Return the ratings of a ratings.dat: in one flat list, which grows faster than RatingColumns."""
    values: list[int] = []
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
        values.extend((u, m, r, t))
    return RatingColumns(path, list(np.asarray(values, dtype=np.int64).reshape(-1, 4).T), header=False)
