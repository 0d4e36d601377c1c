"""GraphQL types for ratings."""

from __future__ import annotations

import contextlib
from datetime import datetime

import strawberry

from api.graphql.context import Info
from api.graphql.movies import Movie
from api.graphql.pagination import Connection, check_bound, decode_cursor, encode_cursor
from api.ids import parse_id
from api.ratings.models import Rating as RatingRow
from api.ratings.service import ratings_page

CURSOR = "rating"


@strawberry.type(description="A user's star rating of a movie.")
class Rating:
    user_id: int
    movie_id: int
    rating: float = strawberry.field(description="0.5 to 5 stars, in half steps.")
    rated_at: datetime = strawberry.field(description="When it was rated (UTC).")

    @classmethod
    def from_row(cls, row: RatingRow) -> Rating:
        return cls(user_id=row.user_id, movie_id=row.movie_id, rating=row.rating, rated_at=row.rated_at)

    @strawberry.field
    async def movie(self, info: Info) -> Movie:
        row = await info.context.loaders.movie.load(self.movie_id)
        assert row is not None  # a foreign key guarantees it
        return Movie.from_row(row)


@strawberry.type(description="A page of ratings.")
class RatingConnection(Connection[Rating]):
    pass


def _cursor(row: RatingRow) -> str:
    return encode_cursor(CURSOR, f"{row.rated_at.isoformat()}|{row.movie_id}")


def _position(value: str) -> tuple[datetime, int] | None:
    """Return the (rated at, movie id) a rating cursor holds, or None."""
    stamp, _, movie = value.partition("|")
    movie_id = parse_id(movie)
    with contextlib.suppress(ValueError):
        if movie_id is not None and len(stamp) <= 32:
            return datetime.fromisoformat(stamp), movie_id
    return None


async def ratings_connection(info: Info, user_id: int, first: int, after: str | None) -> RatingConnection:
    check_bound(first, "first")
    cursor = decode_cursor(CURSOR, after, _position)
    rows = await info.context.run(
        lambda session: ratings_page(session=session, user_id=user_id, first=first, after=cursor)
    )
    return RatingConnection.of(rows, first, _cursor, Rating.from_row)
