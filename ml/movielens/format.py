"""Reader for the ML-1M file format: `::`-separated, latin-1 users.dat, movies.dat, ratings.dat."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

ENCODING = "latin-1"
SEPARATOR = "::"

AGE_BUCKETS: dict[int, str] = {
    1: "Under 18",
    18: "18-24",
    25: "25-34",
    35: "35-44",
    45: "45-49",
    50: "50-55",
    56: "56+",
}

OCCUPATIONS: dict[int, str] = {
    0: "other or not specified",
    1: "academic/educator",
    2: "artist",
    3: "clerical/admin",
    4: "college/grad student",
    5: "customer service",
    6: "doctor/health care",
    7: "executive/managerial",
    8: "farmer",
    9: "homemaker",
    10: "K-12 student",
    11: "lawyer",
    12: "programmer",
    13: "retired",
    14: "sales/marketing",
    15: "scientist",
    16: "self-employed",
    17: "technician/engineer",
    18: "tradesman/craftsman",
    19: "unemployed",
    20: "writer",
}

GENRES: tuple[str, ...] = (
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)

# Bounds on a movie's text, kept by every reader and by the import: hostile or runaway input stops here.
MAX_DESCRIPTION = 4000  # characters of a description
MAX_TAGS = 32  # tags of one movie
MAX_TAG = 64  # characters of one tag

_YEAR_RE = re.compile(r"\((\d{4})\)\s*$")
_SPACES_RE = re.compile(r"\s+")


class MalformedDataError(ValueError):
    """A line of a MovieLens file that does not follow the format."""

    def __init__(self, path: Path, line_number: int, reason: str) -> None:
        self.path = path
        self.line_number = line_number
        self.reason = reason
        super().__init__(f"{path}:{line_number}: {reason}")


@dataclass(frozen=True, slots=True)
class User:
    id: int
    gender: str | None  # "F" or "M"; None (here and below) when the dataset does not say
    age: int | None  # one of AGE_BUCKETS
    occupation: int | None  # one of OCCUPATIONS
    zip_code: str | None


@dataclass(frozen=True, slots=True)
class Movie:
    id: int
    title: str  # as in the file, year included: "Toy Story (1995)"
    year: int | None  # parsed from the title
    genres: tuple[str, ...]
    description: str | None = None  # free text, at most MAX_DESCRIPTION characters; None: none
    tags: tuple[str, ...] = ()  # normalised by tag_of, distinct, most applied first, at most MAX_TAGS


@dataclass(frozen=True, slots=True)
class Ratings:
    """Ratings as parallel arrays, one element a rating, in file order."""

    user_id: npt.NDArray[np.int32]
    movie_id: npt.NDArray[np.int32]
    rating: npt.NDArray[np.float32]  # stars, 0.5 to 5 in half steps (ML-1M's are whole)
    timestamp: npt.NDArray[np.int64]  # seconds since the epoch, UTC

    def __len__(self) -> int:
        return int(self.user_id.shape[0])


@dataclass(frozen=True, slots=True)
class Dataset:
    users: list[User]
    movies: list[Movie]
    ratings: Ratings


def parse_year(title: str) -> int | None:
    """Return the release year at the end of a MovieLens title, or None."""
    match = _YEAR_RE.search(title)
    return int(match.group(1)) if match else None


def tag_of(text: str) -> str:
    """Return a tag as stored and read: lower case, runs of white space made one space, trimmed."""
    return _SPACES_RE.sub(" ", text).strip().lower()


def _fields(path: Path, expected: int) -> Iterator[tuple[int, list[str]]]:
    with path.open(encoding=ENCODING, newline="") as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.rstrip("\r\n")
            if not line:
                continue
            parts = line.split(SEPARATOR)
            if len(parts) != expected:
                raise MalformedDataError(
                    path, number, f"expected {expected} fields separated by '::', found {len(parts)}"
                )
            yield number, parts


def _int(path: Path, number: int, name: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise MalformedDataError(path, number, f"{name} is not an integer: {text!r}") from None


def read_users(path: Path) -> list[User]:
    """Return the users of a users.dat file; raise MalformedDataError on the first bad line."""
    users: list[User] = []
    seen: set[int] = set()
    for number, (uid, gender, age, occupation, zip_code) in _fields(path, 5):
        user_id = _int(path, number, "user id", uid)
        if user_id <= 0 or user_id in seen:
            raise MalformedDataError(path, number, f"user id {user_id} is not positive or repeats")
        if gender not in ("F", "M"):
            raise MalformedDataError(path, number, f"gender must be F or M, not {gender!r}")
        age_bucket = _int(path, number, "age", age)
        if age_bucket not in AGE_BUCKETS:
            raise MalformedDataError(path, number, f"age {age_bucket} is not an ML-1M age bucket")
        occ = _int(path, number, "occupation", occupation)
        if occ not in OCCUPATIONS:
            raise MalformedDataError(path, number, f"occupation {occ} is not in 0-20")
        if not zip_code or len(zip_code) > 10:
            raise MalformedDataError(path, number, f"zip code {zip_code!r} is empty or too long")
        seen.add(user_id)
        users.append(User(user_id, gender, age_bucket, occ, zip_code))
    return users


def read_movies(path: Path) -> list[Movie]:
    """Return the movies of a movies.dat file; raise MalformedDataError on the first bad line."""
    movies: list[Movie] = []
    seen: set[int] = set()
    known = set(GENRES)
    for number, (mid, title, genre_text) in _fields(path, 3):
        movie_id = _int(path, number, "movie id", mid)
        if movie_id <= 0 or movie_id in seen:
            raise MalformedDataError(path, number, f"movie id {movie_id} is not positive or repeats")
        if not title.strip() or len(title) > 255:
            raise MalformedDataError(path, number, "title is empty or longer than 255 characters")
        genres = tuple(g for g in genre_text.split("|") if g)
        unknown = [g for g in genres if g not in known]
        if unknown:
            raise MalformedDataError(path, number, f"unknown genre {unknown[0]!r}")
        seen.add(movie_id)
        movies.append(Movie(movie_id, title, parse_year(title), genres))
    return movies


def read_ratings(path: Path) -> Ratings:
    """Return the ratings of a ratings.dat file; raise MalformedDataError on the first bad line."""
    users: list[int] = []
    movies: list[int] = []
    stars: list[int] = []
    times: list[int] = []
    for number, (uid, mid, rating, ts) in _fields(path, 4):
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
    return Ratings(
        user_id=np.asarray(users, dtype=np.int32),
        movie_id=np.asarray(movies, dtype=np.int32),
        rating=np.asarray(stars, dtype=np.float32),
        timestamp=np.asarray(times, dtype=np.int64),
    )


def load_dataset(directory: Path) -> Dataset:
    """Return the dataset in a directory holding users.dat, movies.dat and ratings.dat.

    Raises FileNotFoundError naming a missing file, and MalformedDataError for a bad line
    or for a rating whose user or movie the other files do not define.
    """
    directory = Path(directory)
    paths = {name: directory / f"{name}.dat" for name in ("users", "movies", "ratings")}
    for path in paths.values():
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} not found: a MovieLens directory needs users.dat, movies.dat and ratings.dat"
            )
    users = read_users(paths["users"])
    movies = read_movies(paths["movies"])
    ratings = read_ratings(paths["ratings"])
    _check_references(paths["ratings"], users, movies, ratings)
    return Dataset(users=users, movies=movies, ratings=ratings)


def _check_references(path: Path, users: list[User], movies: list[Movie], ratings: Ratings) -> None:
    user_ids = np.asarray([u.id for u in users], dtype=np.int32)
    movie_ids = np.asarray([m.id for m in movies], dtype=np.int32)
    for name, column, known in (("user", ratings.user_id, user_ids), ("movie", ratings.movie_id, movie_ids)):
        bad = np.flatnonzero(~np.isin(column, known))
        if bad.size:
            line = _line_of_record(path, int(bad[0]))
            raise MalformedDataError(path, line, f"{name} id {int(column[bad[0]])} is not defined")
    pairs = ratings.user_id.astype(np.int64) * (1 << 32) + ratings.movie_id
    _, first = np.unique(pairs, return_index=True)
    if first.size != pairs.size:
        duplicated = np.setdiff1d(np.arange(pairs.size), first)[0]
        line = _line_of_record(path, int(duplicated))
        raise MalformedDataError(path, line, "the same user rates the same movie twice")


def _line_of_record(path: Path, index: int) -> int:
    """Return the 1-based line number of the index-th non-empty line."""
    with path.open(encoding=ENCODING, newline="") as handle:
        seen = -1
        for number, raw in enumerate(handle, start=1):
            if raw.strip():
                seen += 1
                if seen == index:
                    return number
    return 0
