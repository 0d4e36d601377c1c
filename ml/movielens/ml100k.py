"""Reader for MovieLens 100K: tab-separated u.data, `|`-separated u.item and u.user, latin-1.

Its users give an age in years (read as the ML-1M bucket it falls in) and an occupation by name (read
as the ML-1M occupation it names, or "other or not specified" for the four it has no match for)."""

from __future__ import annotations

from pathlib import Path

from ml.movielens.format import GENRES, Dataset, MalformedDataError, Movie, User, parse_year
from ml.movielens.tables import (
    RatingColumns,
    age_bucket,
    dataset,
    integer,
    need_files,
    new_id,
    split_lines,
    title_of,
)

ENCODING = "latin-1"
FILES = ("u.data", "u.item", "u.user")
# u.item's 19 genre flags: "unknown", then ML-1M's 18 genres in the same order
ITEM_GENRES = ("unknown", *GENRES)
# ML-100K occupation names to ML-1M occupation ids (OCCUPATIONS); 0 is "other or not specified"
OCCUPATION_IDS = {
    "administrator": 3, "artist": 2, "doctor": 6, "educator": 1, "engineer": 17, "entertainment": 0,
    "executive": 7, "healthcare": 6, "homemaker": 9, "lawyer": 11, "librarian": 0, "marketing": 14,
    "none": 0, "other": 0, "programmer": 12, "retired": 13, "salesman": 14, "scientist": 15,
    "student": 4, "technician": 17, "writer": 20,
}  # fmt: skip


def load_ml100k(directory: Path) -> Dataset:
    """Return the dataset of an ML-100K directory; raise MalformedDataError on the first bad line."""
    need_files(directory, FILES, "ML-100K")
    users, seen = [], set[int]()
    path = directory / "u.user"
    for line, (uid, age, gender, occupation, zip_code) in split_lines(path, 5, "|", ENCODING):
        if gender not in ("F", "M"):
            raise MalformedDataError(path, line, f"gender must be F or M, not {gender!r}")
        if occupation not in OCCUPATION_IDS:
            raise MalformedDataError(path, line, f"unknown occupation {occupation!r}")
        years = integer(path, line, "age", age)
        users.append(User(new_id(path, line, "user", uid, seen), gender, age_bucket(years),
                          OCCUPATION_IDS[occupation], zip_code[:10] or None))  # fmt: skip
    movies, seen = [], set[int]()
    path = directory / "u.item"
    for line, parts in split_lines(path, 5 + len(ITEM_GENRES), "|", ENCODING):
        flags = parts[5:]
        if any(f not in ("0", "1") for f in flags):
            raise MalformedDataError(path, line, "genre flags must be 0 or 1")
        genres = tuple(g for g, f in zip(ITEM_GENRES, flags, strict=True) if f == "1" and g != "unknown")
        title = title_of(path, line, parts[1].strip())
        movies.append(Movie(new_id(path, line, "movie", parts[0], seen), title, parse_year(title), genres))
    path = directory / "u.data"
    columns = RatingColumns(path)
    for line, (uid, mid, rating, ts) in split_lines(path, 4, "\t", ENCODING):
        stars = integer(path, line, "rating", rating)
        if stars > 5:
            raise MalformedDataError(path, line, f"rating {stars} is outside 1-5")
        columns.add(line, integer(path, line, "user id", uid), integer(path, line, "movie id", mid),
                    float(stars), integer(path, line, "timestamp", ts, low=0))  # fmt: skip
    return dataset(users, movies, columns)
