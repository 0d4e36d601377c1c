"""A file's ratings as columns before the dataset is put together: gathered row by row with each
one's line, or parsed whole with lines counted again only when an error names one."""

from __future__ import annotations

import warnings
from array import array
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ml.movielens.format import MalformedDataError, Ratings

MAX_ID = 2**31 - 1  # the id columns' largest value (INTEGER)


class RatingColumns:
    """Ratings gathered row by row, with each one's line for error messages.

    In typed arrays, not lists: 40 bytes a rating, where Python objects took several times that
    for ML-25M's 25 million (docs/figures.md).
    """

    def __init__(self) -> None:
        self.users, self.movies = array("q"), array("q")
        self.stars, self.times, self.lines = array("d"), array("q"), array("q")

    def add(self, line: int, user_id: int, movie_id: int, rating: float, seconds: int) -> None:
        self.users.append(user_id)
        self.movies.append(movie_id)
        self.stars.append(rating)
        self.times.append(seconds)
        self.lines.append(line)

    def line(self, index: int) -> int:
        """Return the file line of the index-th rating."""
        return self.lines[index]

    def ratings(self, path: Path) -> Ratings:
        """Return the ratings as arrays, or raise MalformedDataError for an id past the largest one."""
        return _checked_ratings(
            path,
            self.line,
            np.frombuffer(self.users, dtype=np.int64),
            np.frombuffer(self.movies, dtype=np.int64),
            np.frombuffer(self.stars, dtype=np.float64),
            np.frombuffer(self.times, dtype=np.int64),
        )


class ParsedRatings:
    """Ratings of a file whose every line after its header is a rating or blank, held as arrays: a CSV
    file of numbers only, parsed whole by numpy's C reader (numeric_csv_ratings, many times faster
    than line by line: docs/figures.md), or an ML-1M ratings.dat, which has no header."""

    def __init__(
        self, path: Path, users: Array, movies: Array, stars: Array, times: Array, *, header: bool = True
    ) -> None:
        self.path, self.users, self.movies, self.stars, self.times = path, users, movies, stars, times
        self.header = header

    def line(self, index: int) -> int:
        """Return the file line of the index-th rating, counted again (only an error asks for it)."""
        with self.path.open("rb") as handle:
            if self.header:
                handle.readline()
            seen = -1
            for number, raw in enumerate(handle, start=1 + self.header):
                seen += bool(raw.strip())
                if seen == index:
                    return number
        raise IndexError(index)

    def ratings(self, path: Path) -> Ratings:
        """Return the ratings as arrays, or raise MalformedDataError for an id past the largest one."""
        return _checked_ratings(path, self.line, self.users, self.movies, self.stars, self.times)


Array = npt.NDArray[Any]
NUMERIC_BYTES = b"0123456789.,\r\n"  # all a file the fast reader takes may hold after its header
_READ_BLOCK = 1 << 24


def numeric_csv_ratings(path: Path, names: Sequence[str]) -> ParsedRatings | None:
    """Return the ratings of a CSV file whose header is exactly `names` (user, movie, rating and
    timestamp columns, in any order) and whose lines hold digits, points and commas only, parsed
    whole by numpy's C reader and checked as `integer`, `stars` and `timestamp` check each value.

    None for any other file or any value those would refuse: the line-by-line reader then reads the
    file, and names the line of the first bad value, exactly as without this path.
    """
    try:
        with path.open("rb") as handle:
            header = [h.strip() for h in handle.readline().decode("utf-8").split(",")]
            if sorted(header) != sorted(names):
                return None
            while block := handle.read(_READ_BLOCK):
                if block.translate(None, NUMERIC_BYTES):
                    return None
    except (OSError, UnicodeDecodeError):
        return None
    user_col, movie_col, rating_col, time_col = names
    kinds = {user_col: np.int64, movie_col: np.int64, rating_col: np.float64, time_col: np.int64}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data": no ratings
            table = np.loadtxt(
                path, delimiter=",", skiprows=1, comments=None, quotechar=None, encoding="ascii", ndmin=1,
                dtype=[(name, kinds[name]) for name in header],
            )  # fmt: skip
    except ValueError:  # a field that is not a number of its kind, or a line of other length
        return None
    users, movies, stars, times = (table[name] for name in names)
    if not (
        (users >= 1).all()
        and (movies >= 1).all()
        and ((stars >= 0.5) & (stars <= 5) & (2 * stars == np.round(2 * stars))).all()
    ):
        return None
    return ParsedRatings(path, users, movies, stars, times)


def _checked_ratings(
    path: Path, line: Callable[[int], int], users: Array, movies: Array, stars: Array, times: Array
) -> Ratings:
    for name, ids in (("user", users), ("movie", movies)):
        too_big = np.flatnonzero(ids > MAX_ID)
        if too_big.size:
            index = int(too_big[0])
            raise MalformedDataError(path, line(index), f"{name} id {int(ids[index])} is above {MAX_ID}")
    return Ratings(
        user_id=users.astype(np.int32),
        movie_id=movies.astype(np.int32),
        rating=stars.astype(np.float32),
        timestamp=times.astype(np.int64),  # a copy: the arrays may be views of a reader's buffers
    )
