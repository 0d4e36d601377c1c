"""GraphQL types and resolvers for recommendations and the serving model."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import strawberry
from sqlalchemy.orm import Session
from strawberry.scalars import JSON

from api.graphql.context import Info
from api.movies.service import MovieRecord
from api.movies.types import Movie
from api.recommend.pipeline import recommend_user
from api.recommend.service import (
    NO_FILTERS,
    Filters,
    Recommended,
    popular_movies,
    require_model,
    similar_movies,
)
from api.state import AppState
from api.users.service import check_gender_and_age, check_occupation


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
    hr_at_10: float | None = strawberry.field(
        name="hrAt10",
        description="Test HR@10, NCF protocol: the held-out movie among 99 sampled unrated ones.",
    )
    ndcg_at_10: float | None = strawberry.field(name="ndcgAt10", description="Test NDCG@10, NCF protocol.")
    full_hr_at_10: float | None = strawberry.field(
        name="fullHrAt10",
        description="Test HR@10 ranking the held-out movie against every movie the user had not rated.",
    )
    full_ndcg_at_10: float | None = strawberry.field(
        name="fullNdcgAt10", description="Test NDCG@10, full ranking."
    )
    recall_at_20: float | None = strawberry.field(
        name="recallAt20", description="Test Recall@20, full ranking."
    )


async def recommend(
    info: Info, service: Callable[..., list[Recommended]], **arguments: Any
) -> list[Recommendation]:
    """Return the GraphQL results of a recommendation service, called in a worker thread with the
    operation's resources."""
    state = info.context.state

    def work(session: Session) -> tuple[list[Recommended], dict[int, MovieRecord]]:
        found = service(session=session, store=state.store, active=state.models.get(session), **arguments)
        return found, movies_of(state, session, found)

    return results(*await info.context.run(work))


def movie_ids(found: list[Recommended]) -> list[int]:
    """Return the ids of the recommended movies and of their reasons."""
    return list({r.movie_id for r in found} | {m for r in found for m in r.because})


def movies_of(state: AppState, session: Session, found: list[Recommended]) -> dict[int, MovieRecord]:
    """Return the titles and years of the recommended movies and their reasons, from the catalogue."""
    return state.titles.get_many(session=session, ids=movie_ids(found))


def results(found: list[Recommended], movies: dict[int, MovieRecord]) -> list[Recommendation]:
    """Return the GraphQL objects of recommendations."""

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
    """Answer through the recommendation pipeline (api/recommend/pipeline.py)."""
    state = info.context.state
    found = await recommend_user(
        state.sources, require_model(await info.context.active_model()), state.read_engine,
        user_id=user_id, limit=limit, filters=filters, exclude_rated=exclude_rated,
    )  # fmt: skip
    return await with_movies(info, found)


async def popular_for_visitor(
    info: Info, *, gender: str | None, age: int | None, occupation: int | None, limit: int, filters: Filters
) -> list[Recommendation]:
    """Answer a visitor without ratings with the popular movies, on the event loop: a worker thread
    only checks an occupation or reads titles the catalogue does not hold."""
    context = info.context
    require_model(await context.active_model())
    check_gender_and_age(gender, age)
    if occupation is not None:
        await context.run(lambda session: check_occupation(session=session, occupation=occupation))
    snapshot = await context.state.popular.snapshot()
    return await with_movies(
        info, popular_movies(snapshot=snapshot, limit=limit, filters=filters, exclude=set())
    )


async def with_movies(info: Info, found: list[Recommended]) -> list[Recommendation]:
    """Return the GraphQL results of recommendations, their movies from the catalogue, read in a worker
    thread only when it lacks some."""
    state = info.context.state
    movies = state.titles.cached(movie_ids(found))
    if movies is None:
        movies = await info.context.run(lambda session: movies_of(state, session, found))
    return results(found, movies)


async def similar_movies_field(info: Info, movie_id: int, limit: int) -> list[Recommendation]:
    return await recommend(info, similar_movies, movie_id=movie_id, limit=limit)
