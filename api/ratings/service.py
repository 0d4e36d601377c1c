"""Queries of ratings, and the check of a star rating (the writes are api/ratings/writes.py)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Row, Select, bindparam, func, select, tuple_
from sqlalchemy.orm import Session

from api.errors import BadUserInput
from api.ratings.models import Rating


@dataclass(frozen=True)
class RatingStats:
    average: float | None
    count: int


NEWEST_FIRST = (Rating.rated_at.desc(), Rating.movie_id.desc())


def latest_records(
    *, session: Session, user_id: int, limit: int | None = None
) -> list[Row[int, float, datetime]]:
    """Return the user's newest ratings first (all of them without a limit): movie_id, rating, rated_at."""
    query = select(Rating.movie_id, Rating.rating, Rating.rated_at).where(Rating.user_id == user_id)
    return list(session.execute(query.order_by(*NEWEST_FIRST).limit(limit)))


def rating_stats_by_movie(*, session: Session, ids: Sequence[int]) -> dict[int, RatingStats]:
    """Return the average rating and the number of ratings of each rated movie."""
    rows = session.execute(
        select(Rating.movie_id, func.avg(Rating.rating), func.count())
        .where(Rating.movie_id.in_(set(ids)))
        .group_by(Rating.movie_id)
    )
    return {movie_id: RatingStats(round(float(average), 4), int(count)) for movie_id, average, count in rows}


# A user's rated movies joined by commas, one string a user: a heavy rater costs one row to parse
# (MySQL's limit on its length is raised in api.db._server_defaults).
RATED: Select[str | bytes | None] = select(func.group_concat(Rating.movie_id)).where(
    Rating.user_id == bindparam("user_id")
)


def parse_rated(joined: str | bytes | None) -> set[int]:
    """Return the ids of RATED's string."""
    if isinstance(joined, bytes):  # MySQL types it binary for integer arguments
        joined = joined.decode()
    return {int(movie_id) for movie_id in joined.split(",")} if joined else set()


def ratings_page(
    *, session: Session, user_id: int, first: int, after: tuple[datetime, int] | None = None
) -> list[Rating]:
    """Return up to first + 1 of the user's ratings, newest first, after the (rated_at, movie_id) cursor."""
    query = select(Rating).where(Rating.user_id == user_id).order_by(*NEWEST_FIRST).limit(first + 1)
    if after is not None:
        query = query.where(tuple_(Rating.rated_at, Rating.movie_id) < tuple_(*after))
    return list(session.execute(query).scalars())


def check_stars(stars: float, what: str = "rating") -> float:
    """Return the stars, or raise BadUserInput unless 0.5 to 5 in half steps (as the database checks)."""
    if isinstance(stars, bool) or not isinstance(stars, int | float) or not math.isfinite(stars):
        raise BadUserInput(f"{what} must be a number of stars")
    if not (0.5 <= stars <= 5 and float(2 * stars).is_integer()):
        raise BadUserInput(f"{what} must be 0.5 to 5 stars in half steps, not {stars:g}")
    return float(stars)
