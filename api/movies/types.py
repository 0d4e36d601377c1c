"""GraphQL types for movies."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import strawberry

from api.graphql.context import Info
from api.graphql.pagination import check_bound
from api.movies.models import Movie as MovieRow
from api.movies.service import MovieRecord

if TYPE_CHECKING:
    from api.recommend.types import Recommendation


@strawberry.type(description="A movie of the catalogue.")
class Movie:
    id: int
    title: str = strawberry.field(
        description="Title as in MovieLens, year included, e.g. 'Toy Story (1995)'."
    )
    year: int | None = strawberry.field(description="Release year parsed from the title.")

    @classmethod
    def from_row(cls, row: MovieRow | MovieRecord) -> Movie:
        return cls(id=row.id, title=row.title, year=row.year)

    @strawberry.field(description="Genre names, alphabetically.")
    async def genres(self, info: Info) -> list[str]:
        return await info.context.loaders.genres.load(self.id)

    @strawberry.field(description="Mean star rating, or null when nobody has rated it.")
    async def average_rating(self, info: Info) -> float | None:
        return (await info.context.loaders.rating_stats.load(self.id)).average

    @strawberry.field(description="How many users rated it.")
    async def ratings_count(self, info: Info) -> int:
        return (await info.context.loaders.rating_stats.load(self.id)).count

    @strawberry.field(description="Movies whose vectors are closest to this one's in the active model.")
    async def similar(
        self, info: Info, limit: int = 10
    ) -> list[Annotated[Recommendation, strawberry.lazy("api.recommend.types")]]:
        from api.recommend.types import similar_movies_field

        return await similar_movies_field(info, self.id, check_bound(limit, "limit"))
