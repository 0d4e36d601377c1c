"""The dataset every reader returns (users, movies, ratings, occupation names), with ML-1M's age buckets,
occupations and genres, which every layout is read into, and the bounds on a movie's text."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

# ML-1M's age groups, each coded by its lowest age (1: under 18; 56: 56 and over)
AGE_BUCKETS: tuple[int, ...] = (1, 18, 25, 35, 45, 50, 56)
# ML-1M's occupations, each coded by its position; the database's occupations table starts with them
OCCUPATIONS: tuple[str, ...] = (
    "other or not specified", "academic/educator", "artist", "clerical/admin", "college/grad student",
    "customer service", "doctor/health care", "executive/managerial", "farmer", "homemaker",
    "K-12 student", "lawyer", "programmer", "retired", "sales/marketing", "scientist", "self-employed",
    "technician/engineer", "tradesman/craftsman", "unemployed", "writer",
)  # fmt: skip
MAX_OCCUPATION = 64  # characters of an occupation's name (the occupations table's column)
MAX_OCCUPATIONS = 1000  # distinct occupations of one dataset: more is not a list of occupations

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
        self.path, self.line_number, self.reason = path, line_number, reason
        super().__init__(f"{path}:{line_number}: {reason}")


@dataclass(frozen=True, slots=True)
class User:
    id: int
    gender: str | None  # "F" or "M"; None (here and below) when the dataset does not say
    age: int | None  # one of AGE_BUCKETS
    occupation: int | None  # a key of its Dataset's occupations
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


def ml1m_occupations() -> dict[int, str]:
    """Return ML-1M's occupation names by code."""
    return dict(enumerate(OCCUPATIONS))


@dataclass(frozen=True, slots=True)
class Dataset:
    users: list[User]
    movies: list[Movie]
    ratings: Ratings
    # The name of each occupation id the users carry, as the dataset says it (ML-1M's by default); an
    # import stores the names, so that ids are the database's, not the dataset's.
    occupations: dict[int, str] = field(default_factory=ml1m_occupations)


def parse_year(title: str) -> int | None:
    """Return the release year at the end of a MovieLens title, or None."""
    match = _YEAR_RE.search(title)
    return int(match.group(1)) if match else None


def tag_of(text: str) -> str:
    """Return a tag as stored and read: lower case, runs of white space made one space, trimmed."""
    return _SPACES_RE.sub(" ", text).strip().lower()
