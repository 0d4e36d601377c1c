"""GraphQL resolvers of a user's and a visitor's recommendations, and the serving model's type."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from api.graphql.context import Info
from api.graphql.movies import Recommendation, with_movies
from api.recommend.pipeline import recommend_user
from api.recommend.service import NO_FILTERS, Filters, popular_movies, require_model
from api.users.service import check_gender_and_age, check_occupation


@strawberry.type(description="The model version that serves recommendations.")
class ModelInfo:
    version: int
    trained_at: datetime | None
    collection: str
    metrics: JSON = strawberry.field(description="Every metric the training run recorded.")
    hr_at_10: float | None = strawberry.field(
        description="Test HR@10, NCF protocol: the held-out movie among 99 sampled unrated ones.",
    )
    ndcg_at_10: float | None = strawberry.field(description="Test NDCG@10, NCF protocol.")
    full_hr_at_10: float | None = strawberry.field(
        description="Test HR@10 ranking the held-out movie against every movie the user had not rated.",
    )
    full_ndcg_at_10: float | None = strawberry.field(description="Test NDCG@10, full ranking.")
    recall_at_20: float | None = strawberry.field(description="Test Recall@20, full ranking.")


async def user_recommendations(
    info: Info, *, user_id: int, limit: int, filters: Filters = NO_FILTERS, exclude_rated: bool = True
) -> list[Recommendation]:
    """Answer through the recommendation pipeline (api/recommend/pipeline.py)."""
    state = info.context.state
    found = await recommend_user(
        state.sources, require_model(await info.context.state.active_model()), info.context.run,
        user_id=user_id, limit=limit, filters=filters, exclude_rated=exclude_rated,
    )  # fmt: skip
    return await with_movies(info, found)


async def popular_for_visitor(
    info: Info, *, gender: str | None, age: int | None, occupation: int | None, limit: int, filters: Filters
) -> list[Recommendation]:
    """Answer a visitor without ratings with the popular movies, on the event loop: a worker thread
    only checks an occupation or reads titles the catalogue does not hold."""
    context = info.context
    require_model(await context.state.active_model())
    check_gender_and_age(gender, age)
    if occupation is not None:
        await context.run(lambda session: check_occupation(session=session, occupation=occupation))
    snapshot = await context.state.popular.snapshot()
    return await with_movies(
        info, popular_movies(snapshot=snapshot, limit=limit, filters=filters, exclude=set())
    )
