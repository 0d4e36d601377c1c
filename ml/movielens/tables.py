"""Shared by the readers of every layout: lines and CSV rows with their numbers, values and ratings
checked as the database checks them, and the dataset put together with its references checked."""

from __future__ import annotations

import csv
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from ml.movielens.format import (
    AGE_BUCKETS,
    GENRES,
    MAX_OCCUPATION,
    MAX_OCCUPATIONS,
    OCCUPATIONS,
    Dataset,
    MalformedDataError,
    Movie,
    Ratings,
    User,
    ml1m_occupations,
)

MAX_TITLE = 255
MAX_ID = 2**31 - 1  # the id columns' largest value (INTEGER)
NUMERIC_BYTES = b"0123456789.,\r\n"  # all a file the fast reader takes may hold after its header
_READ_BLOCK = 1 << 24


@dataclass(frozen=True)
class RatingColumns:
    """A file's ratings as columns (users, movies, stars, seconds), with each one's line, or parsed whole,
    a line then counted again only when an error names one."""

    path: Path
    columns: Sequence[Any]
    lines: Sequence[int] = ()  # empty when parsed whole
    header: bool = True  # when parsed whole, whether the file starts with a header line

    def line(self, index: int) -> int:
        """Return the file line of the index-th rating: when parsed whole, the index-th non-empty line
        after the header, if any."""
        if self.lines:
            return self.lines[index]
        with self.path.open("rb") as handle:
            numbers = (n for n, raw in enumerate(handle, start=1) if raw.strip() and n > self.header)
            return next(islice(numbers, index, None))


def numeric_csv_ratings(path: Path, names: Sequence[str]) -> RatingColumns | None:
    """Return the ratings of a CSV file of numbers under a header of `names` (any order), parsed whole by
    numpy's C reader, or None for any other file or a value `integer` or `stars` would refuse."""
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
    kinds = dict(zip(names, (np.int64, np.int64, np.float64, np.int64), strict=True))
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
        (users >= 1) & (movies >= 1) & (stars >= 0.5) & (stars <= 5) & (2 * stars == np.round(2 * stars))
    ).all():
        return None
    return RatingColumns(path, (users, movies, stars, times))


def csv_rows(path: Path, required: Sequence[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line number, row by column name) of a UTF-8 CSV file whose header names at least `required`."""
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise MalformedDataError(path, 1, "the file is empty: a header line is needed")
            names = [h.strip() for h in header]
            missing = [c for c in required if c not in names]
            if missing:
                raise MalformedDataError(
                    path, 1, f"the header lacks {', '.join(missing)} (it has {', '.join(names)})"
                )
            for fields in reader:
                if not fields or fields == [""]:
                    continue
                if len(fields) != len(names):
                    raise MalformedDataError(
                        path, reader.line_num, f"expected {len(names)} fields, found {len(fields)}"
                    )
                yield reader.line_num, dict(zip(names, (f.strip() for f in fields), strict=True))
    except UnicodeDecodeError as error:
        raise MalformedDataError(path, 0, f"not utf-8 text ({error.reason})") from None
    except csv.Error as error:
        raise MalformedDataError(path, 0, f"not valid CSV: {error}") from None


def need_files(directory: Path, names: Sequence[str], layout: str) -> None:
    """Raise FileNotFoundError naming the first of the layout's files the directory lacks."""
    for name in names:
        if not (directory / name).is_file():
            raise FileNotFoundError(
                f"{directory / name} not found: the {layout} layout needs {', '.join(names)}"
            )


def split_lines(path: Path, expected: int, separator: str, encoding: str) -> Iterator[tuple[int, list[str]]]:
    """Yield (line number, fields) of each non-empty line of a file of `expected` separated fields."""
    with path.open(encoding=encoding, newline="") as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.rstrip("\r\n")
            if not line:
                continue
            parts = line.split(separator)
            if len(parts) != expected:
                raise MalformedDataError(
                    path, number, f"expected {expected} fields separated by {separator!r}, found {len(parts)}"
                )
            yield number, parts


def integer(path: Path, line: int, name: str, text: str, low: int = 1) -> int:
    try:
        value = int(text)
    except ValueError:
        raise MalformedDataError(path, line, f"{name} is not a whole number: {text!r}") from None
    if value < low:
        raise MalformedDataError(path, line, f"{name} {value} is below {low}")
    return value


def new_id(path: Path, line: int, name: str, text: str, seen: set[int]) -> int:
    """Return a positive id not seen before in this file (and remember it)."""
    value = integer(path, line, f"{name} id", text)
    if value > MAX_ID:
        raise MalformedDataError(path, line, f"{name} id {value} is above {MAX_ID}")
    if value in seen:
        raise MalformedDataError(path, line, f"{name} id {value} repeats")
    seen.add(value)
    return value


def stars(path: Path, line: int, text: str) -> float:
    """Return a rating of 0.5 to 5 stars in half steps (the database's check)."""
    try:
        value = float(text)
    except ValueError:
        raise MalformedDataError(path, line, f"rating is not a number: {text!r}") from None
    if not (0.5 <= value <= 5 and float(2 * value).is_integer()):
        raise MalformedDataError(path, line, f"rating {text} is not 0.5 to 5 stars in half steps")
    return value


def timestamp(path: Path, line: int, text: str) -> int:
    """Return seconds since the epoch from seconds, or from an ISO 8601 moment (UTC unless it says)."""
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise MalformedDataError(path, line, f"timestamp is neither seconds nor ISO 8601: {text!r}") from None
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp())


def title_of(path: Path, line: int, title: str) -> str:
    if not title.strip() or len(title) > MAX_TITLE:
        raise MalformedDataError(path, line, f"title is empty or longer than {MAX_TITLE} characters")
    return title


def genre_list(
    path: Path, line: int, text: str, names: Mapping[str, str | None] | None = None
) -> tuple[str, ...]:
    """Return the genres of a `|`-separated list, each a name of GENRES or of `names`, which maps it
    to its genre (None: left out)."""
    found = [g for g in text.split("|") if g]
    known = names or dict(zip(GENRES, GENRES, strict=True))
    unknown = [g for g in found if g not in known]
    if unknown:
        raise MalformedDataError(path, line, f"unknown genre {unknown[0]!r}: one of {', '.join(known)}")
    return tuple(g for n in found if (g := known[n]))


class OccupationIds:
    """The ids of the occupations a dataset's users have, as it says them: an ML-1M code (0-20) is its own
    id, a name is ML-1M's code when ML-1M has that name, else the next id from 21 in order of appearance."""

    def __init__(self) -> None:
        self.names = ml1m_occupations()  # by id, for the Dataset
        self._ids = {name: code for code, name in self.names.items()}

    def id_of(self, path: Path, line: int, text: str) -> int | None:
        """Return the id of an occupation code or name ("": unknown, None)."""
        name = " ".join(text.split())
        if not name:
            return None
        if name.isascii() and name.isdigit():
            code = int(name)
            if code >= len(OCCUPATIONS):
                raise MalformedDataError(
                    path, line, f"occupation {code} is not an ML-1M code (0-{len(OCCUPATIONS) - 1}): name it"
                )
            return code
        if len(name) > MAX_OCCUPATION:
            raise MalformedDataError(path, line, f"occupation is longer than {MAX_OCCUPATION} characters")
        if name not in self._ids:
            if len(self.names) >= len(OCCUPATIONS) + MAX_OCCUPATIONS:
                raise MalformedDataError(path, line, f"more than {MAX_OCCUPATIONS} distinct occupations")
            self._ids[name] = len(self.names)
            self.names[len(self.names)] = name
        return self._ids[name]


def age_bucket(years: int) -> int:
    """Return the ML-1M age bucket of an age in years (a bucket's own value maps to itself)."""
    return max(b for b in AGE_BUCKETS if b <= years) if years >= 18 else 1


def user(path: Path, line: int, user_id: int, fields: Sequence[str], occupations: OccupationIds) -> User:
    """Return a user from optional gender, age in years, occupation and zip code ("" is unknown), checked
    as the database checks them."""
    gender, age, occupation, zip_code = fields
    if gender not in ("", "F", "M"):
        raise MalformedDataError(path, line, f"gender must be F, M or empty, not {gender!r}")
    occ = occupations.id_of(path, line, occupation)
    if len(zip_code) > 10:
        raise MalformedDataError(path, line, f"zip code {zip_code[:20]!r} is longer than 10 characters")
    years = age_bucket(integer(path, line, "age", age)) if age else None
    return User(user_id, gender or None, years, occ, zip_code or None)


def dataset(
    users: list[User] | None,
    movies: list[Movie],
    columns: RatingColumns,
    occupations: dict[int, str] | None = None,
) -> Dataset:
    """Return the dataset after checking every rating's ids (in range, and defined: users only when listed)
    and that no user rates a movie twice; users are the raters, demographics unknown, when not listed;
    occupations names the users' occupation ids (ML-1M's when None)."""
    user_ids, movie_ids, star_values, seconds = columns.columns
    user_ids, movie_ids = np.asarray(user_ids), np.asarray(movie_ids)
    for name, ids in (("user", user_ids), ("movie", movie_ids)):
        too_big = np.flatnonzero(ids > MAX_ID)
        if too_big.size:
            index = int(too_big[0])
            raise MalformedDataError(
                columns.path, columns.line(index), f"{name} id {ids[index]} is above {MAX_ID}"
            )
    ratings = Ratings(
        user_id=user_ids.astype(np.int32),
        movie_id=movie_ids.astype(np.int32),
        rating=np.asarray(star_values).astype(np.float32),
        timestamp=np.array(seconds, dtype=np.int64),  # a copy: not a view of a reader's buffer
    )
    if users is None:
        users = [User(int(u), None, None, None, None) for u in np.unique(ratings.user_id)]
    checks = (
        ("user", ratings.user_id, [u.id for u in users]),
        ("movie", ratings.movie_id, [m.id for m in movies]),
    )
    for name, column, known in checks:
        bad = np.flatnonzero(~np.isin(column, np.asarray(known, dtype=np.int32)))
        if bad.size:
            raise MalformedDataError(
                columns.path, columns.line(int(bad[0])), f"{name} id {int(column[bad[0]])} is not defined"
            )
    pairs = ratings.user_id.astype(np.int64) * (1 << 32) + ratings.movie_id
    _, first = np.unique(pairs, return_index=True)
    if first.size != pairs.size:
        again = int(np.setdiff1d(np.arange(pairs.size), first)[0])
        raise MalformedDataError(
            columns.path, columns.line(again), "the same user rates the same movie twice"
        )
    return Dataset(users=users, movies=movies, ratings=ratings, occupations=occupations or ml1m_occupations())
