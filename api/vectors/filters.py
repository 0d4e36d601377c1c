"""Milvus filter expressions built only from validated values, never from raw user text."""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence

# Genre names are a closed vocabulary; this pattern is a second line of defence after the caller
# has checked membership: no quotes, backslashes or operators can reach an expression.
_SAFE_GENRE = re.compile(r"^[A-Za-z][A-Za-z' -]{0,31}$")
MIN_YEAR, MAX_YEAR = 1800, 2100


class FilterError(ValueError):
    """A filter value that cannot be used."""


def build_filter(
    *,
    genres: Sequence[str] | None = None,
    known_genres: Collection[str],
    year_from: int | None = None,
    year_to: int | None = None,
    exclude_ids: Sequence[int] = (),
) -> str:
    """Return a Milvus boolean expression for the given constraints ("" when there are none)."""
    clauses: list[str] = []
    if genres:
        for genre in genres:
            if genre not in known_genres or not _SAFE_GENRE.match(genre):
                raise FilterError(f"unknown genre {genre!r}")
        quoted = ", ".join(f'"{g}"' for g in sorted(set(genres)))
        clauses.append(f"ARRAY_CONTAINS_ANY(genres, [{quoted}])")
    for name, value, op in (("yearFrom", year_from, ">="), ("yearTo", year_to, "<=")):
        if value is None:
            continue
        if type(value) is not int or not MIN_YEAR <= value <= MAX_YEAR:
            raise FilterError(f"{name} must be a year between {MIN_YEAR} and {MAX_YEAR}")
        clauses.append(f"year {op} {value}")
    if exclude_ids:
        ids = ", ".join(str(int(i)) for i in exclude_ids)
        clauses.append(f"movie_id not in [{ids}]")
    return " and ".join(clauses)
