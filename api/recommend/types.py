"""GraphQL types and resolvers for recommendations and the serving model."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from api.graphql.context import Info
from api.movies.service import MovieRecord
from api.movies.types import Movie
from api.recommend.kept import kept_recommendations
from api.recommend.service import NO_FILTERS, Filters, Recommended, recommend_for_user, similar_movies


@strawberry.type(description="A recommended movie, its score and why.")
class Recommendation:
    movie: Movie
    score: float = strawberry.field(
        description="Inner product of the user and movie vectors (higher is better)."
    )
    source: str = strawberry.field(
        description="model: ranked by the two-tower model; popularity: the most-rated movies, "
        "for someone with no ratings yet (demographics alone rank worse than popularity)"
    )
    because_ids: strawberry.Private[list[int]]
    movies: strawberry.Private[dict[int, MovieRecord]]

    @strawberry.field(description="Up to two of the user's highly rated movies closest to this one.")
    def because(self) -> list[Movie]:
        """Built only when asked for: most queries do not."""
        return [Movie.from_row(self.movies[m]) for m in self.because_ids if m in self.movies]


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
    return results(info, found)


def results(info: Info, found: list[Recommended]) -> list[Recommendation]:
    """Return the GraphQL objects of recommendations, titles from the process's catalogue."""
    context = info.context
    ids = {r.movie_id for r in found} | {m for r in found for m in r.because}
    movies = context.state.catalogue.get_many(session=lambda: context.session, ids=list(ids))

    def movie(movie_id: int) -> Movie:
        row = movies.get(movie_id)
        if row is None:  # in the collection but deleted from the database since
            return Movie(id=movie_id, title="(removed)", year=None)
        return Movie.from_row(row)

    return [
        Recommendation(
            movie=movie(r.movie_id),
            score=round(r.score, 6),
            source=r.source,
            because_ids=r.because,
            movies=movies,
        )
        for r in found
    ]


async def user_recommendations(
    info: Info, *, user_id: int, limit: int, filters: Filters = NO_FILTERS, exclude_rated: bool = True
) -> list[Recommendation]:
    """Answer from the user's kept list or this process's memo when nothing changed (one round trip),
    else compute and keep; a cache size of 0 computes every request."""
    context = info.context
    state = context.state
    active = context.active_model()
    arguments: dict[str, Any] = {
        "user_id": user_id, "limit": limit, "filters": filters, "exclude_rated": exclude_rated
    }  # fmt: skip
    found = None
    if state.memo.capacity > 0:
        found = await kept_recommendations(
            memo=state.memo, freshness=state.freshness_batches, active=active, **arguments
        )
    if found is None:
        found = recommend_for_user(
            session=context.session, store=state.store, active=active, memo=state.memo, **arguments
        )
    return results(info, found)


async def similar_movies_field(info: Info, movie_id: int, limit: int) -> list[Recommendation]:
    return recommend(info, similar_movies, movie_id=movie_id, limit=limit)
