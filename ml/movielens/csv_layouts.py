"""Readers of the two CSV layouts: the MovieLens CSV releases (ml-latest-small, ml-latest, ml-25m,
ml-32m) and the documented generic layout a team can write its own data in (docs/data.md).

MovieLens CSV: ratings.csv, movies.csv (genres `|`-separated; "IMAX", a screen format, left out and
noted), optional tags.csv (each movie's MAX_TAGS most applied tags), no users; links.csv is not read.
Generic: ratings.csv, movies.csv (movie_id,title[,year][,genres][,description][,tags]), optional
users.csv (user_id[,gender][,age][,occupation][,zip_code]), UTF-8 with a header line.
"""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from pathlib import Path

from ml.movielens.format import (
    GENRES,
    MAX_TAG,
    MAX_TAGS,
    Dataset,
    MalformedDataError,
    Movie,
    User,
    parse_year,
    tag_of,
)
from ml.movielens.tables import (
    RatingColumns,
    csv_rows,
    dataset,
    description,
    genre_list,
    integer,
    need_files,
    new_id,
    numeric_csv_ratings,
    stars,
    tag_list,
    timestamp,
    title_of,
    user,
)

# The releases' genre names: "Children" is ML-1M's "Children's"; None is left out
RELEASE_GENRES = {
    **{g: g for g in GENRES},
    "Children": "Children's",
    "(no genres listed)": None,
    "IMAX": None,
}


def _ratings(path: Path, names: tuple[str, str, str, str]) -> RatingColumns:
    """Return the file's ratings: parsed whole when it holds numbers only, else line by line."""
    parsed = numeric_csv_ratings(path, names)
    if parsed is not None:
        return parsed
    user_col, movie_col, rating_col, time_col = names
    columns = RatingColumns(path)
    for line, row in csv_rows(path, names):
        columns.add(
            line,
            integer(path, line, user_col, row[user_col]),
            integer(path, line, movie_col, row[movie_col]),
            stars(path, line, row[rating_col]),
            timestamp(path, line, row[time_col]),
        )
    return columns


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
    return dataset(
        None, movies, _ratings(directory / "ratings.csv", ("userId", "movieId", "rating", "timestamp"))
    )


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

    def tags(movie_id: int) -> tuple[str, ...]:
        counts = applied.get(movie_id, Counter())
        return tuple(sorted(counts, key=lambda t: (-counts[t], t))[:MAX_TAGS])

    return [dataclasses.replace(m, tags=tags(m.id)) for m in movies]


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
        text = description(path, line, row.get("description", ""))
        movies.append(Movie(movie_id, title, year, genres, text, tag_list(path, line, row.get("tags", ""))))
    users: list[User] | None = None
    path = directory / "users.csv"
    if path.is_file():
        users, seen = [], set()
        for line, row in csv_rows(path, ("user_id",)):
            uid = new_id(path, line, "user", row["user_id"], seen)
            fields = (row.get(k, "") for k in ("gender", "age", "occupation", "zip_code"))
            users.append(user(path, line, uid, *fields))
    else:
        notes.append("no users.csv: the raters are the users, their demographics unknown")
    return dataset(
        users, movies, _ratings(directory / "ratings.csv", ("user_id", "movie_id", "rating", "timestamp"))
    )
