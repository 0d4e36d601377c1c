"""Every layout `movierec data import` reads, which one a directory holds, and their readers: ML-1M,
ML-100K, the MovieLens CSV releases, the generic CSV layout and RecBole's atomic files (in recbole.py;
docs/data.md shows each)."""

from __future__ import annotations

from array import array
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ml.movielens.format import (
    AGE_BUCKETS,
    GENRES,
    MAX_DESCRIPTION,
    MAX_TAG,
    MAX_TAGS,
    OCCUPATIONS,
    Dataset,
    MalformedDataError,
    Movie,
    User,
    parse_year,
    tag_of,
)
from ml.movielens.recbole import load_recbole
from ml.movielens.tables import (
    OccupationIds,
    RatingColumns,
    age_bucket,
    csv_rows,
    dataset,
    genre_list,
    integer,
    need_files,
    new_id,
    numeric_csv_ratings,
    split_lines,
    stars,
    timestamp,
    title_of,
    user,
)

ML1M_FILES = ("users.dat", "movies.dat", "ratings.dat")
ML1M_SEPARATOR = "::"
ENCODING = "latin-1"  # of ML-1M's and ML-100K's files


def load_ml1m(directory: Path) -> Dataset:
    """Return the dataset of an ML-1M directory; raise naming a missing file or a bad line."""
    need_files(directory, ML1M_FILES, "ML-1M")
    users, seen = [], set[int]()
    path = directory / "users.dat"
    for number, (uid, gender, age, occupation, zip_code) in split_lines(path, 5, ML1M_SEPARATOR, ENCODING):
        user_id = new_id(path, number, "user", uid, seen)
        if gender not in ("F", "M"):
            raise MalformedDataError(path, number, f"gender must be F or M, not {gender!r}")
        bucket = integer(path, number, "age", age, low=0)
        if bucket not in AGE_BUCKETS:
            raise MalformedDataError(path, number, f"age {bucket} is not an ML-1M age bucket")
        occ = integer(path, number, "occupation", occupation, low=0)
        if occ >= len(OCCUPATIONS):
            raise MalformedDataError(path, number, f"occupation {occ} is not in 0-{len(OCCUPATIONS) - 1}")
        if not zip_code or len(zip_code) > 10:
            raise MalformedDataError(path, number, f"zip code {zip_code!r} is empty or too long")
        users.append(User(user_id, gender, bucket, occ, zip_code))
    movies, seen = [], set[int]()
    path = directory / "movies.dat"
    for number, (mid, title, genres) in split_lines(path, 3, ML1M_SEPARATOR, ENCODING):
        movie_id = new_id(path, number, "movie", mid, seen)
        title = title_of(path, number, title)
        movies.append(Movie(movie_id, title, parse_year(title), genre_list(path, number, genres)))
    return dataset(users, movies, _whole_ratings(directory / "ratings.dat", ML1M_SEPARATOR))


def _whole_ratings(path: Path, separator: str) -> RatingColumns:
    """Return the whole-number ratings of a ratings.dat or u.data, in a flat list (it grows fastest)."""
    values: list[int] = []
    for number, (uid, mid, rating, ts) in split_lines(path, 4, separator, ENCODING):
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


# u.item's 19 genre flags: "unknown", then ML-1M's 18 genres in the same order
ITEM_GENRES = ("unknown", *GENRES)


def load_ml100k(directory: Path) -> Dataset:
    """Return the dataset of an ML-100K directory, its occupations by their own names ("librarian" is
    not ML-1M's, "artist" is); raise MalformedDataError on the first bad line."""
    need_files(directory, ("u.data", "u.item", "u.user"), "ML-100K")
    users, seen, occupations = [], set[int](), OccupationIds()
    path = directory / "u.user"
    for line, (uid, age, gender, occupation, zip_code) in split_lines(path, 5, "|", ENCODING):
        if gender not in ("F", "M"):
            raise MalformedDataError(path, line, f"gender must be F or M, not {gender!r}")
        years = integer(path, line, "age", age)
        users.append(User(new_id(path, line, "user", uid, seen), gender, age_bucket(years),
                          occupations.id_of(path, line, occupation), zip_code[:10] or None))  # fmt: skip
    movies, seen = [], set[int]()
    path = directory / "u.item"
    for line, parts in split_lines(path, 5 + len(ITEM_GENRES), "|", ENCODING):
        flags = parts[5:]
        if any(f not in ("0", "1") for f in flags):
            raise MalformedDataError(path, line, "genre flags must be 0 or 1")
        genres = tuple(g for g, f in zip(ITEM_GENRES, flags, strict=True) if f == "1" and g != "unknown")
        title = title_of(path, line, parts[1].strip())
        movies.append(Movie(new_id(path, line, "movie", parts[0], seen), title, parse_year(title), genres))
    return dataset(users, movies, _whole_ratings(directory / "u.data", "\t"), occupations.names)


# The releases' genre names: "Children" is ML-1M's "Children's"; None is left out
RELEASE_GENRES = {
    **{g: g for g in GENRES},
    "Children": "Children's",
    "(no genres listed)": None,
    "IMAX": None,
}


def _ratings(directory: Path, names: tuple[str, str, str, str]) -> RatingColumns:
    """Return the ratings of a CSV layout's ratings.csv: parsed whole when it holds numbers only, else line
    by line into typed arrays (40 bytes a rating)."""
    path = directory / "ratings.csv"
    parsed = numeric_csv_ratings(path, names)
    if parsed is not None:
        return parsed
    user_col, movie_col, rating_col, time_col = names
    lines, users, movies, times = array("q"), array("q"), array("q"), array("q")
    ratings = array("d")
    for line, row in csv_rows(path, names):
        lines.append(line)
        users.append(integer(path, line, user_col, row[user_col]))
        movies.append(integer(path, line, movie_col, row[movie_col]))
        ratings.append(stars(path, line, row[rating_col]))
        times.append(timestamp(path, line, row[time_col]))
    return RatingColumns(path, (users, movies, ratings, times), lines)


def load_movielens_csv(directory: Path, notes: list[str]) -> Dataset:
    """Return the dataset of a MovieLens CSV release; notes gets what was left out, and why."""
    need_files(directory, ("movies.csv", "ratings.csv"), "MovieLens CSV")
    path = directory / "movies.csv"
    movies, seen, left_out = [], set[int](), 0
    for line, row in csv_rows(path, ("movieId", "title", "genres")):
        genres = tuple(dict.fromkeys(genre_list(path, line, row["genres"], RELEASE_GENRES)))
        left_out += "IMAX" in row["genres"].split("|")
        title = title_of(path, line, row["title"])
        movies.append(
            Movie(new_id(path, line, "movie", row["movieId"], seen), title, parse_year(title), genres)
        )
    if left_out:
        notes.append(f"IMAX is a screen format, not one of the 18 genres: left out of {left_out} movies")
    if (directory / "tags.csv").is_file():
        movies = _with_release_tags(directory / "tags.csv", movies, notes)
    return dataset(None, movies, _ratings(directory, ("userId", "movieId", "rating", "timestamp")))


def _with_release_tags(path: Path, movies: list[Movie], notes: list[str]) -> list[Movie]:
    """Return the movies with the tags of a release's tags.csv: each movie's MAX_TAGS most applied."""
    known = {m.id for m in movies}
    applied: defaultdict[int, Counter[str]] = defaultdict(Counter)
    too_long = 0
    for line, row in csv_rows(path, ("userId", "movieId", "tag", "timestamp")):
        integer(path, line, "userId", row["userId"])
        movie_id = integer(path, line, "movieId", row["movieId"])
        if movie_id not in known:
            raise MalformedDataError(path, line, f"movie id {movie_id} is not defined")
        timestamp(path, line, row["timestamp"])
        tag = tag_of(row["tag"])
        if len(tag) > MAX_TAG:
            too_long += 1
        elif tag:
            applied[movie_id][tag] += 1
    capped = sum(len(c) > MAX_TAGS for c in applied.values())
    if too_long:
        notes.append(f"tags.csv: {too_long} tags longer than {MAX_TAG} characters left out")
    if capped:
        notes.append(f"tags.csv: {capped} movies have more than {MAX_TAGS} tags: their most applied kept")

    ranked = {i: tuple(sorted(c, key=lambda t: (-c[t], t))[:MAX_TAGS]) for i, c in applied.items()}
    return [replace(m, tags=ranked.get(m.id, ())) for m in movies]


def tag_list(path: Path, line: int, text: str) -> tuple[str, ...]:
    """Return the distinct tags of a `|`-separated list, normalised, refused past the bounds."""
    tags = tuple(dict.fromkeys(t for part in text.split("|") if (t := tag_of(part))))
    if len(tags) > MAX_TAGS:
        raise MalformedDataError(path, line, f"{len(tags)} tags, at most {MAX_TAGS} a movie")
    long = [t for t in tags if len(t) > MAX_TAG]
    if long:
        raise MalformedDataError(path, line, f"tag {long[0][:20]!r}... is longer than {MAX_TAG} characters")
    return tags


def load_generic_csv(directory: Path, notes: list[str]) -> Dataset:
    """Return the dataset of the generic CSV layout (users.csv optional)."""
    need_files(directory, ("movies.csv", "ratings.csv"), "CSV")
    path = directory / "movies.csv"
    movies, seen = [], set[int]()
    for line, row in csv_rows(path, ("movie_id", "title")):
        title = title_of(path, line, row["title"])
        year_text = row.get("year", "")
        year = integer(path, line, "year", year_text) if year_text else parse_year(title)
        genres = genre_list(path, line, row.get("genres", ""))
        movie_id = new_id(path, line, "movie", row["movie_id"], seen)
        text = row.get("description", "")
        if len(text) > MAX_DESCRIPTION:
            raise MalformedDataError(
                path, line, f"description has {len(text)} characters, at most {MAX_DESCRIPTION} are read"
            )
        tags = tag_list(path, line, row.get("tags", ""))
        movies.append(Movie(movie_id, title, year, genres, text or None, tags))
    users: list[User] | None = None
    occupations = OccupationIds()
    path = directory / "users.csv"
    if path.is_file():
        users, seen = [], set()
        for line, row in csv_rows(path, ("user_id",)):
            uid = new_id(path, line, "user", row["user_id"], seen)
            fields = [row.get(k, "") for k in ("gender", "age", "occupation", "zip_code")]
            users.append(user(path, line, uid, fields, occupations))
    else:
        notes.append("no users.csv: the raters are the users, their demographics unknown")
    ratings = _ratings(directory, ("user_id", "movie_id", "rating", "timestamp"))
    return dataset(users, movies, ratings, occupations.names)


@dataclass(frozen=True)
class Layout:
    name: str
    description: str
    load: Callable[[Path, list[str]], Dataset]  # the directory, a list the reader adds notes to


LAYOUTS = {
    layout.name: layout
    for layout in (
        Layout("ml-1m", "MovieLens 1M (users.dat, movies.dat, ratings.dat)", lambda d, _: load_ml1m(d)),
        Layout("ml-100k", "MovieLens 100K (u.user, u.item, u.data)", lambda d, _: load_ml100k(d)),
        Layout("movielens-csv", "a MovieLens CSV release like ml-latest or ml-25m (movies.csv, ratings.csv)",
               load_movielens_csv),
        Layout("csv", "the generic CSV layout (movies.csv, ratings.csv, optional users.csv)",
               load_generic_csv),
        Layout("recbole", "RecBole atomic files (NAME.inter, NAME.item, optional NAME.user)", load_recbole),
    )
}  # fmt: skip


@dataclass
class Loaded:
    dataset: Dataset
    layout: Layout
    notes: list[str]  # what was left out or assumed, for the operator


def detect(directory: Path) -> Layout:
    """Return the layout of a directory's files, or raise FileNotFoundError saying what was looked for."""
    if (directory / "ratings.dat").is_file():
        return LAYOUTS["ml-1m"]
    if (directory / "u.data").is_file():
        return LAYOUTS["ml-100k"]
    ratings = directory / "ratings.csv"
    if ratings.is_file():
        with ratings.open(encoding="utf-8", errors="replace") as handle:
            header = handle.readline()
        return LAYOUTS["movielens-csv" if header.startswith("userId,") else "csv"]
    if any(path.is_file() for path in directory.glob("*.inter")):
        return LAYOUTS["recbole"]
    raise FileNotFoundError(
        f"{directory} holds no dataset: looked for ratings.dat (ML-1M), u.data (ML-100K), ratings.csv "
        "(a MovieLens CSV release, or the generic CSV layout) or NAME.inter (RecBole's atomic files)"
    )


def load(directory: Path, layout: str = "auto") -> Loaded:
    """Return the dataset in a directory, read in the layout named or detected."""
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory} is not a directory")
    chosen = detect(directory) if layout == "auto" else LAYOUTS[layout]
    notes: list[str] = []
    return Loaded(chosen.load(directory, notes), chosen, notes)
