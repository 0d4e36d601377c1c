"""RecBole's atomic files: NAME.inter (ratings), NAME.item (movies) and an optional NAME.user, each a
tab-separated table under a header of typed fields ("user_id:token"). The fields the product knows are
read; every other field is left out with a note (docs/data.md lists them)."""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path

from ml.movielens.format import GENRES, Dataset, MalformedDataError, Movie, User, parse_year
from ml.movielens.tables import (
    OccupationIds,
    RatingColumns,
    dataset,
    integer,
    need_files,
    new_id,
    stars,
    title_of,
    user,
)

FIELD_TYPES = ("token", "token_seq", "float", "float_seq")
MAX_LINE = 1 << 16  # characters of one line: a longer one is not a row of these files
MAX_FIELDS = 100  # fields of a header (Yelp's have a dozen)
MAX_SECONDS = 253_402_300_799  # the last second of year 9999
MAX_YEAR = 9999
# RecBole's genre tokens that name one of the 18 genres otherwise; "Children" is ML-1M's "Children's"
GENRE_TOKENS = {**{g: g for g in GENRES}, "Children": "Children's"}

# What the product reads of each file: its role, by the field names RecBole's datasets give it.
INTER_FIELDS = {"user": ("user_id",), "item": ("item_id",), "rating": ("rating",), "time": ("timestamp",)}
ITEM_FIELDS = {
    "item": ("item_id",),
    "title": ("movie_title", "title"),
    "year": ("release_year", "year"),
    "genres": ("genre", "class", "genres"),
}
USER_FIELDS = {
    "user": ("user_id",),
    "gender": ("gender",),
    "age": ("age",),
    "occupation": ("occupation",),
    "zip": ("zip_code",),
}


def load_recbole(directory: Path, notes: list[str]) -> Dataset:
    """Return the dataset of a directory's RecBole atomic files; notes gets each field left out, the genres
    not among the 18, and how users were found."""
    inter = _inter_file(directory)
    name = inter.stem
    need_files(directory, (f"{name}.inter", f"{name}.item"), "RecBole")
    movies = _movies(directory / f"{name}.item", notes)
    path = directory / f"{name}.user"
    users, occupations = None, OccupationIds()
    if path.is_file():
        users = _users(path, occupations, notes)
    else:
        notes.append(f"no {name}.user: the raters are the users, their demographics unknown")
    return dataset(users, movies, _ratings(inter, notes), occupations.names)


def _inter_file(directory: Path) -> Path:
    """Return the directory's one NAME.inter, or raise naming what it holds."""
    found = sorted(p for p in directory.glob("*.inter") if p.is_file())
    if len(found) != 1:
        names = ", ".join(p.name for p in found[:5]) or "none"
        raise FileNotFoundError(
            f"{directory} must hold exactly one NAME.inter for RecBole's atomic files, not {names}"
        )
    return found[0]


def _lines(path: Path, notes: list[str]) -> Iterator[tuple[int, list[str]]]:
    """Yield (line number, tab-separated fields) of each non-empty line, the header first; a line that is
    not UTF-8 is read as Latin-1 (RecBole's MovieLens titles may be), said once in notes."""
    latin = 0
    with path.open("rb") as handle:
        number = 0
        while raw := handle.readline(4 * MAX_LINE + 1):
            number += 1
            if len(raw) > 4 * MAX_LINE and not raw.endswith(b"\n"):
                raise MalformedDataError(path, number, f"the line is longer than {MAX_LINE} characters")
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                line, latin = raw.decode("latin-1"), latin + 1
            line = line.rstrip("\r\n")
            if len(line) > MAX_LINE:
                raise MalformedDataError(path, number, f"the line is longer than {MAX_LINE} characters")
            if line:
                yield number, line.split("\t")
    if latin:
        notes.append(f"{path.name}: {latin} lines are not UTF-8, read as Latin-1")


def _table(
    path: Path, roles: Mapping[str, tuple[str, ...]], required: tuple[str, ...], notes: list[str]
) -> tuple[dict[str, int], Iterator[tuple[int, list[str]]]]:
    """Return the column of each role the header names (the first of its field names found), and the rows
    after the header, each checked to have the header's number of fields; every other field gets a note."""
    rows = _lines(path, notes)
    first = next(rows, None)
    if first is None:
        raise MalformedDataError(path, 1, "the file is empty: a header of name:type fields is needed")
    number, header = first
    if len(header) > MAX_FIELDS:
        raise MalformedDataError(path, number, f"the header has {len(header)} fields, at most {MAX_FIELDS}")
    names = []
    for field in header:
        name, _, kind = field.strip().partition(":")
        if not name or kind not in FIELD_TYPES:
            raise MalformedDataError(
                path, number, f"field {field[:40]!r} is not name:type (type one of {', '.join(FIELD_TYPES)})"
            )
        if name in names:
            raise MalformedDataError(path, number, f"field {name!r} repeats")
        names.append(name)
    columns = {}
    for role, candidates in roles.items():
        found = [c for c in candidates if c in names]
        if found:
            columns[role] = names.index(found[0])
    missing = [roles[r][0] for r in required if r not in columns]
    if missing:
        raise MalformedDataError(
            path, number, f"the header lacks {', '.join(missing)} (it has {', '.join(names)})"
        )
    for index, field in enumerate(header):
        if index not in columns.values():
            notes.append(f"{path.name}: field {field.strip()} is not read")

    def checked() -> Iterator[tuple[int, list[str]]]:
        for line, fields in rows:
            if len(fields) != len(names):
                raise MalformedDataError(
                    path, line, f"expected {len(names)} tab-separated fields, found {len(fields)}"
                )
            yield line, [f.strip() for f in fields]

    return columns, checked()


def _movies(path: Path, notes: list[str]) -> list[Movie]:
    """Return the movies of NAME.item: title as given, year from its field (else the title), genres
    among the 18 (space-separated tokens; the others left out, said in notes)."""
    columns, rows = _table(path, ITEM_FIELDS, ("item", "title"), notes)
    movies, seen, left_out = [], set[int](), Counter[str]()
    for line, fields in rows:
        movie_id = new_id(path, line, "item", fields[columns["item"]], seen)
        title = title_of(path, line, fields[columns["title"]])
        year_text = fields[columns["year"]] if "year" in columns else ""
        year = _year(path, line, year_text) if year_text else parse_year(title)
        tokens = fields[columns["genres"]].split() if "genres" in columns else []
        genres = tuple(dict.fromkeys(g for t in tokens if (g := GENRE_TOKENS.get(t))))
        left_out.update(t for t in set(tokens) if t not in GENRE_TOKENS)
        movies.append(Movie(movie_id, title, year, genres))
    if left_out:
        named = ", ".join(f"{g[:30]} ({n} movies)" for g, n in left_out.most_common(5))
        more = f" and {len(left_out) - 5} more" if len(left_out) > 5 else ""
        notes.append(f"{path.name}: genres not among the 18 left out: {named}{more}")
    return movies


def _year(path: Path, line: int, text: str) -> int:
    year = integer(path, line, "release year", text)
    if year > MAX_YEAR:
        raise MalformedDataError(path, line, f"release year {year} is after {MAX_YEAR}")
    return year


def _users(path: Path, occupations: OccupationIds, notes: list[str]) -> list[User]:
    """Return the users of NAME.user: gender, age in years (or an ML-1M bucket), occupation by its code or
    name, zip code; any of them may be missing or empty."""
    columns, rows = _table(path, USER_FIELDS, ("user",), notes)
    roles = ("gender", "age", "occupation", "zip")
    users, seen = [], set[int]()
    for line, fields in rows:
        user_id = new_id(path, line, "user", fields[columns["user"]], seen)
        values = [fields[columns[r]] if r in columns else "" for r in roles]
        users.append(user(path, line, user_id, values, occupations))
    return users


def _ratings(path: Path, notes: list[str]) -> RatingColumns:
    """Return the ratings of NAME.inter: stars as floats (half stars too), timestamps as float seconds."""
    columns, rows = _table(path, INTER_FIELDS, ("user", "item", "rating", "time"), notes)
    user_col, item_col, rating_col, time_col = (columns[r] for r in ("user", "item", "rating", "time"))
    lines, users, movies, times = array("q"), array("q"), array("q"), array("q")
    ratings = array("d")
    for line, fields in rows:
        lines.append(line)
        users.append(integer(path, line, "user id", fields[user_col]))
        movies.append(integer(path, line, "item id", fields[item_col]))
        ratings.append(stars(path, line, fields[rating_col]))
        times.append(_seconds(path, line, fields[time_col]))
    return RatingColumns(path, (users, movies, ratings, times), lines)


def _seconds(path: Path, line: int, text: str) -> int:
    """Return whole seconds since the epoch from a float field."""
    try:
        value = float(text)
    except ValueError:
        raise MalformedDataError(path, line, f"timestamp is not a number of seconds: {text[:40]!r}") from None
    if not (math.isfinite(value) and 0 <= value <= MAX_SECONDS):
        raise MalformedDataError(path, line, f"timestamp {text[:40]} is not seconds from 1970 to 9999")
    return int(value)
