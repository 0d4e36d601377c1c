"""GraphQL types and resolvers for recommendations and the serving model."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from api.graphql.context import Info
from api.movies.types import Movie
from api.recommend.service import NO_FILTERS, Filters, Recommended, recommend_for_user, similar_movies


@strawberry.type(description="A recommended movie, its score and why.")
class Recommendation:
    movie_id: strawberry.Private[int]
    score: float = strawberry.field(
        description="Inner product of the user and movie vectors (higher is better)."
    )
    because_ids: strawberry.Private[list[int]]
    source: str = strawberry.field(
        description="model: ranked by the two-tower model; popularity: the most-rated movies, "
        "for someone with no ratings yet (demographics alone rank worse than popularity)"
    )

    @strawberry.field
    async def movie(self, info: Info) -> Movie:
        row = await info.context.loaders.movie.load(self.movie_id)
        if row is None:  # in the collection but deleted from the database since
            return Movie(id=self.movie_id, title="(removed)", year=None)
        return Movie.from_row(row)

    @strawberry.field(description="Up to two of the user's highly rated movies closest to this one.")
    async def because(self, info: Info) -> list[Movie]:
        rows = await info.context.loaders.movie.load_many(self.because_ids)
        return [Movie.from_row(r) for r in rows if r is not None]


@strawberry.type(description="The model version that serves recommendations.")
class ModelInfo:
    version: int
    trained_at: datetime | None
    collection: str
    metrics: JSON = strawberry.field(description="Every metric the training run recorded.")
    hr_at_10: float | None = strawberry.field(name="hrAt10")
    ndcg_at_10: float | None = strawberry.field(name="ndcgAt10")
    recall_at_20: float | None = strawberry.field(name="recallAt20")


def recommend(
    info: Info, service: Callable[..., list[Recommended]], **arguments: Any
) -> list[Recommendation]:
    """Return the GraphQL results of a recommendation service, called with the operation's resources."""
    context = info.context
    found = service(
        session=context.session, store=context.state.store, active=context.active_model(), **arguments
    )
    return [
        Recommendation(movie_id=r.movie_id, score=round(r.score, 6), because_ids=r.because, source=r.source)
        for r in found
    ]


def user_recommendations(
    info: Info, *, user_id: int, limit: int, filters: Filters = NO_FILTERS, exclude_rated: bool = True
) -> list[Recommendation]:
    return recommend(
        info, recommend_for_user, user_id=user_id, limit=limit, filters=filters, exclude_rated=exclude_rated
    )


async def similar_movies_field(info: Info, movie_id: int, limit: int) -> list[Recommendation]:
    return recommend(info, similar_movies, movie_id=movie_id, limit=limit)
