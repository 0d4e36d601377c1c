"""A user's recommendations as one ordered list of stages over the requests being answered: the
user's kept list, else the model, else the most-rated movies. Each stage answers only the requests
still unanswered, so the order reads here and nowhere else. A GraphQL request, the dashboard's
playground and keep_lists (many users at once) all run it.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from anyio import to_thread
from sqlalchemy.ext.asyncio import AsyncEngine

from api.metrics import ANSWERS, STAGE
from api.movies.service import genre_names
from api.recommend.popular import Popularity
from api.recommend.service import (
    KEPT_LIMIT,
    NO_FILTERS,
    Filters,
    Recommended,
    UserState,
    explain,
    is_default,
    kept_answer,
    kept_row,
    movie_vectors,
    plan_searches,
    popular_movies,
    read_user,
    search_filter,
    store_kept,
    to_explain,
)
from api.state import AppState
from api.vectors.store import Hit, VectorStore
from api.versions.registry import ActiveModel

KEPT, COMPUTED = ANSWERS.labels("kept"), ANSWERS.labels("computed")
# Ranks many users' default lists at once: vectors (users, dim) and each user's rated movies in,
# each user's top KEPT_LIMIT unrated movies out (api/recommend/kept.py).
RankMany = Callable[[npt.NDArray[np.float32], Sequence[set[int]]], list[list[Hit]]]


@dataclass
class Ask:
    """One user's request, and its answer once a stage has given it."""

    user_id: int
    user: UserState
    limit: int
    filters: Filters = NO_FILTERS
    exclude_rated: bool = True
    found: list[Recommended] | None = None
    kept: bool = False  # answered from the kept list
    keep: dict[str, object] | None = None  # the kept list to store, computed for a default request

    @property
    def default(self) -> bool:
        return is_default(self.limit, self.filters, self.exclude_rated)


@dataclass(frozen=True)
class Sources:
    """What the stages answer from."""

    model: ActiveModel
    store: VectorStore
    popular: Popularity
    genres: Callable[[], Awaitable[Collection[str]]]  # every genre name, for a genre filter
    use_kept: bool = True  # answer from kept lists, and compute lists to keep
    # Ranks default requests in one go, in a worker thread: keep_lists runs on an event loop of its
    # own, where the store's asyncio client (made on the app's loop) must not be used.
    rank_many: RankMany | None = None

    @classmethod
    def of(cls, state: AppState, model: ActiveModel) -> Sources:
        async def genres() -> Collection[str]:
            return await state.run(lambda session: genre_names(session=session))

        return cls(model, state.store, state.popular, genres, state.settings.kept_lists)


async def from_kept(sources: Sources, asks: list[Ask], now: int) -> None:
    """Answer default requests whose kept list is current."""
    if not sources.use_kept:
        return
    for ask in asks:
        if ask.default and (found := kept_answer(sources.model, ask.user, ask.limit, now)) is not None:
            ask.found, ask.kept = found, True


async def from_model(sources: Sources, asks: list[Ask], now: int) -> None:
    """Answer users with ratings from the model. A default request is ranked to KEPT_LIMIT exactly as
    its kept list is, so that a kept answer and a computed one are the same list."""
    asks = [ask for ask in asks if ask.user.history]
    if not asks:
        return
    model = sources.model
    known = set(await sources.genres()) if any(ask.filters.genres for ask in asks) else set()
    exprs = [search_filter(a.filters, known, a.user.rated if a.exclude_rated else set()) for a in asks]
    users = [(ask.user_id, ask.user) for ask in asks]
    with STAGE.labels("encode").time():  # one user's encode is shorter than a thread hop
        plans = (
            plan_searches(model, users, now)
            if len(asks) == 1
            else await to_thread.run_sync(plan_searches, model, users, now)
        )
    sizes = [KEPT_LIMIT if ask.default else ask.limit for ask in asks]
    with STAGE.labels("vector_search").time():
        if sources.rank_many is not None and all(ask.default for ask in asks):
            vectors = np.stack([plan.vector for plan in plans])
            hits = await to_thread.run_sync(sources.rank_many, vectors, [ask.user.rated for ask in asks])
        else:
            hits = [
                await sources.store.asearch(model.collection, plan.vector, limit=size, expr=expr)
                for plan, size, expr in zip(plans, sizes, exprs, strict=True)
            ]
    wanted = [m for plan, found in zip(plans, hits, strict=True) for m in to_explain(found, plan.liked)]
    if all(model.vector_of(m) is not None for m in wanted):
        vectors_of = movie_vectors(sources.store, model, wanted)
    else:  # movies created after training: Milvus holds their vectors
        vectors_of = await to_thread.run_sync(movie_vectors, sources.store, model, wanted)
    for ask, plan, found in zip(asks, plans, hits, strict=True):
        ranked = explain(found, plan.liked, vectors_of)
        ask.found = ranked[: ask.limit]
        if sources.use_kept and ask.default:
            ask.keep = kept_row(model, ask.user_id, ask.user, plan.newest, ranked, now)


async def from_popular(sources: Sources, asks: list[Ask], now: int) -> None:
    """Answer users without ratings with the most-rated movies (never kept: they change with
    everybody's ratings)."""
    snapshot = await sources.popular.snapshot()
    for ask in asks:
        exclude = ask.user.rated if ask.exclude_rated else set()
        ask.found = popular_movies(snapshot=snapshot, limit=ask.limit, filters=ask.filters, exclude=exclude)


STAGES = (from_kept, from_model, from_popular)


async def answer(sources: Sources, asks: list[Ask], now: int) -> None:
    """Run the stages in order, each over the requests still unanswered."""
    for stage in STAGES:
        pending = [ask for ask in asks if ask.found is None]
        if pending:
            await stage(sources, pending, now)


async def recommend_user(
    sources: Sources,
    engine: AsyncEngine,
    *,
    user_id: int,
    limit: int,
    filters: Filters = NO_FILTERS,
    exclude_rated: bool = True,
) -> Ask:
    """Return a user's request answered: one read (the user, their kept list and ratings), then the stages."""
    now = int(time.time())
    with STAGE.labels("database").time():
        length = sources.model.model.history_length
        user = await read_user(engine=engine, user_id=user_id, history_length=length)
    ask = Ask(user_id, user, limit, filters, exclude_rated)
    await answer(sources, [ask], now)
    (KEPT if ask.kept else COMPUTED).inc()
    return ask


async def recommendations(
    state: AppState,
    model: ActiveModel,
    *,
    user_id: int,
    limit: int,
    filters: Filters = NO_FILTERS,
    exclude_rated: bool = True,
) -> list[Recommended]:
    """Return a user's recommendations (recommend_user), storing a computed list to keep after the answer."""
    ask = await recommend_user(
        Sources.of(state, model), state.read_engine,
        user_id=user_id, limit=limit, filters=filters, exclude_rated=exclude_rated,
    )  # fmt: skip
    if ask.keep is not None:
        rows = [ask.keep]
        state.in_background(state.run(lambda session: store_kept(session=session, rows=rows), write=True))
    assert ask.found is not None
    return ask.found
