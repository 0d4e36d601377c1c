"""Recommendation queries: for a user, for an anonymous profile, and movies similar to a movie."""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
from anyio import to_thread
from sqlalchemy import Connection, Insert, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.orm import Session

from api.dataimport.upsert import upsert_statement
from api.db import DriverRead, read_async, utcnow
from api.errors import BadUserInput, ModelNotReady, NotFound, Unavailable
from api.metrics import ANSWERS, STAGE
from api.movies.models import Movie
from api.movies.service import check_genre_names, genre_names
from api.ratings.service import HISTORY, RATED, check_stars, parse_rated, rated_movie_ids
from api.recommend.models import KeptList
from api.recommend.popular import Popularity, Snapshot
from api.state import AppState
from api.users.models import User
from api.users.service import check_demographics
from api.vectors.filters import MAX_YEAR, MIN_YEAR, FilterError, build_filter
from api.vectors.store import Hit, VectorStore
from api.versions.registry import ActiveModel
from ml.serving import HistoryItem, UserFeatures

LIKED = 4  # stars from which a rated movie can explain a recommendation ("because you liked")
BECAUSE_MAX = 2
PROFILE_MAX_RATINGS = 200
READ_TIMEOUT_S = 30  # the event loop's read, bounded as make_engine bounds a thread's
KEPT_LIMIT = 20  # movies kept per user: any limit up to this is answered from the kept list
KEPT, COMPUTED = ANSWERS.labels("kept"), ANSWERS.labels("computed")


@dataclass(frozen=True)
class Recommended:
    movie_id: int
    score: float
    because: list[int] = field(default_factory=list)
    source: str = "model"  # "model", or "popularity" for someone with no ratings yet


@dataclass(frozen=True)
class Filters:
    genres: Sequence[str] | None = None
    year_from: int | None = None
    year_to: int | None = None


NO_FILTERS = Filters()


def require_model(active: ActiveModel | None) -> ActiveModel:
    if active is None:
        raise ModelNotReady("no model has been trained and activated yet; run `movierec train`")
    return active


@dataclass(frozen=True)
class UserState:
    """What a user's recommendations are computed from besides their ratings, and their kept list."""

    gender: str | None  # each None when unknown
    age: int | None
    occupation_id: int | None
    zip_code: str | None
    ratings_version: int  # bumped with every change to the user's ratings (api/ratings/writes.py)
    newest_movie: int | None  # the catalogue's highest movie id: a new movie changes it
    kept: KeptRow | None = None


@dataclass(frozen=True)
class KeptRow:
    fingerprint: str
    newest_rating: int | None
    items: str  # JSON, parsed only when the fingerprint matches


_users, _kept = User.__table__.c, KeptList.__table__.c
NEWEST_MOVIE = select(func.max(Movie.id)).scalar_subquery()
USER_STATE_COLUMNS = (
    _users.gender, _users.age, _users.occupation_id, _users.zip_code, _users.ratings_version, NEWEST_MOVIE
)  # fmt: skip
# A request's one read: the user's state and kept list together.
USER_READ = (
    select(*USER_STATE_COLUMNS, _kept.fingerprint, _kept.newest_rating, _kept["items"])
    .select_from(User.__table__.outerjoin(KeptList.__table__, _kept.user_id == _users.id))
    .where(_users.id == bindparam("user_id"))
)


USER_DRIVER_READ, HISTORY_DRIVER_READ, RATED_DRIVER_READ = (
    DriverRead(USER_READ), DriverRead(HISTORY), DriverRead(RATED)
)  # fmt: skip


def read_user(*, session: Session, user_id: int) -> UserState:
    """Return the user's state and kept list in one statement, or raise NotFound."""
    row = session.execute(USER_READ, {"user_id": user_id}).one_or_none()
    if row is None:
        raise NotFound(f"user {user_id} does not exist")
    return _user_state(row)


def _user_state(row: Any) -> UserState:
    gender, age, occupation_id, zip_code, ratings_version, newest_movie, kept_as, newest_rating, items = row
    kept = None if kept_as is None else KeptRow(kept_as, newest_rating, items)
    return UserState(gender, age, occupation_id, zip_code, ratings_version, newest_movie, kept)


def fingerprint(model: ActiveModel, user: UserState, newest_rating: int | None, now: int) -> str:
    """Return the fingerprint of everything a user's default recommendations depend on at `now`.

    The model version, the user's demographics and ratings (through their ratings version, and
    the time of the newest, which the ratings version fixes), the catalogue (its newest movie)
    and the model's view of the time since that newest rating. Two computations with the same
    fingerprint return the same list, so a kept list answers exactly when its fingerprint is the
    one of the request.
    """
    inputs = (
        model.version_id, user.ratings_version, user.newest_movie, model.model.time_key(newest_rating, now),
        user.gender, user.age, user.occupation_id, user.zip_code,
    )  # fmt: skip
    return hashlib.blake2b(repr(inputs).encode(), digest_size=16).hexdigest()


@dataclass(frozen=True)
class Ranked:
    """A request's recommendations, and the kept list to store when they were computed for keeping."""

    found: list[Recommended]
    keep: dict[str, object] | None = None


def is_default(limit: int, filters: Filters, exclude_rated: bool) -> bool:
    """Return whether a request is answered from the user's kept list (its first `limit` movies)."""
    return limit <= KEPT_LIMIT and filters == NO_FILTERS and exclude_rated


def recommend_for_user(
    *,
    session: Session,
    store: VectorStore,
    active: ActiveModel | None,
    popular: Popularity,
    user_id: int,
    limit: int,
    filters: Filters = NO_FILTERS,
    exclude_rated: bool = True,
    use_kept: bool = True,
) -> Ranked:
    """Return the user's top movies from their demographics and latest ratings, read now: from
    their kept list when it is current (kept_answer), else computed (compute_for_user)."""
    model = require_model(active)
    now = int(time.time())
    with STAGE.labels("database").time():
        user = read_user(session=session, user_id=user_id)
    found = kept_answer(model, user, limit, filters, exclude_rated, now) if use_kept else None
    if found is not None:
        return Ranked(found)
    return compute_for_user(
        session=session, store=store, model=model, popular=popular, user_id=user_id, user=user,
        limit=limit, filters=filters, exclude_rated=exclude_rated, use_kept=use_kept, now=now,
    )  # fmt: skip


async def read_user_async(*, engine: AsyncEngine, user_id: int) -> UserState:
    """Return what read_user does, read on the event loop by the driver (api.db.DriverRead)."""
    try:
        [rows] = await read_async(engine, (USER_DRIVER_READ, {"user_id": user_id}), timeout=READ_TIMEOUT_S)
    except TimeoutError:
        raise Unavailable("the database is unavailable; try again shortly") from None
    if not rows:
        raise NotFound(f"user {user_id} does not exist")
    return _user_state(rows[0])


async def read_history_async(
    *, engine: AsyncEngine, user_id: int, limit: int, rated: bool
) -> tuple[list[HistoryItem], set[int]]:
    """Return the user's `limit` newest ratings (HISTORY) and, when `rated`, the ids of every movie
    they rated (RATED), read on the event loop by the driver in one connection."""
    reads = [(HISTORY_DRIVER_READ, {"user_id": user_id, "limit": limit})]
    if rated:
        reads.append((RATED_DRIVER_READ, {"user_id": user_id}))
    try:
        history, *joined = await read_async(engine, *reads, timeout=READ_TIMEOUT_S)
    except TimeoutError:
        raise Unavailable("the database is unavailable; try again shortly") from None
    return [HistoryItem(*row) for row in history], parse_rated(joined[0][0][0] if joined else None)


def kept_answer(
    model: ActiveModel, user: UserState, limit: int, filters: Filters, exclude_rated: bool, now: int
) -> list[Recommended] | None:
    """Return the request's answer from the user's kept list, or None unless the request is a
    default one (is_default) and the list's fingerprint is the one computed for it now."""
    kept = user.kept
    if (
        not is_default(limit, filters, exclude_rated)
        or kept is None
        or kept.fingerprint != fingerprint(model, user, kept.newest_rating, now)
    ):
        return None
    KEPT.inc()
    items = orjson.loads(kept.items)[:limit]
    return [Recommended(movie_id, score, because) for movie_id, score, because in items]


def compute_for_user(
    *,
    session: Session,
    store: VectorStore,
    model: ActiveModel,
    popular: Popularity,
    user_id: int,
    user: UserState,
    limit: int,
    filters: Filters,
    exclude_rated: bool,
    use_kept: bool,
    now: int,
) -> Ranked:
    """Compute the user's top movies. A default request computes the top KEPT_LIMIT, exactly as the
    kept list is computed, and answers their first `limit` with the row to keep: so a kept answer
    and a computed one are the same list, whatever index Milvus searches."""
    default = is_default(limit, filters, exclude_rated)
    with STAGE.labels("database").time():
        rows = session.execute(HISTORY, {"user_id": user_id, "limit": model.model.history_length})
        history = [HistoryItem(*row) for row in rows]
        rated = rated_movie_ids(session=session, user_id=user_id) if exclude_rated else set()
    found, newest = rank_for_user(
        session=session, store=store, model=model, popular=popular, user_id=user_id, user=user,
        history=history, rated=rated, limit=KEPT_LIMIT if default else limit, filters=filters, now=now,
    )  # fmt: skip
    COMPUTED.inc()
    keep = kept_row(model, user_id, user, newest, found, now) if use_kept and default else None
    return Ranked(found[:limit], keep)


def kept_row(
    model: ActiveModel, user_id: int, user: UserState, newest: int | None, found: list[Recommended], now: int
) -> dict[str, object] | None:
    """Return the kept_recommendations row of a user's top KEPT_LIMIT (None for a user without
    ratings: the popular movies change with everybody's ratings, so they are read each time)."""
    if newest is None:
        return None
    return {
        "user_id": user_id,
        "fingerprint": fingerprint(model, user, newest, now),
        "newest_rating": newest,
        "items": orjson.dumps([[r.movie_id, r.score, r.because] for r in found]).decode(),
        "computed_at": utcnow(),
    }


def store_kept(*, session: Session, rows: Sequence[dict[str, object]]) -> None:
    """Insert or replace kept lists (the caller commits). A row computed from older inputs than the
    one it replaces only makes the next request compute again: its fingerprint no longer matches."""
    if rows:
        session.execute(_kept_upsert(session.connection()), list(rows))


async def store_kept_async(*, engine: AsyncEngine, rows: Sequence[dict[str, object]]) -> None:
    """Do what store_kept does, in a transaction of its own on the event loop."""
    async with engine.begin() as connection:
        await connection.execute(_kept_upsert(connection), list(rows))


def _kept_upsert(connection: Connection | AsyncConnection) -> Insert:
    return upsert_statement(
        connection, KeptList.__table__, ["user_id"], ["fingerprint", "newest_rating", "items", "computed_at"]
    )


def rank_for_user(
    *,
    session: Session,
    store: VectorStore,
    model: ActiveModel,
    popular: Popularity,
    user_id: int,
    user: UserState,
    history: Sequence[HistoryItem],
    rated: set[int],
    limit: int,
    filters: Filters,
    now: int,
) -> tuple[list[Recommended], int | None]:
    """Return the user's top movies but the `rated` ones, from their state and latest ratings
    (newest first, at least the model's history length of them), and the time of their newest
    rating (None for someone without ratings, who gets the popular movies)."""
    known = set(genre_names(session=session)) if filters.genres else set()
    plan = plan_search(model, user_id, user, history, rated, filters, known, now)
    if plan is None:
        return popular_movies(snapshot=popular.current(), limit=limit, filters=filters, exclude=rated), None
    with STAGE.labels("vector_search").time():
        hits = store.search(model.collection, plan.vector, limit=limit, expr=plan.expr)
    return explain(hits, plan.liked, movie_vectors(store, model, to_explain(hits, plan.liked))), plan.newest


async def compute_async(
    *,
    state: AppState,
    model: ActiveModel,
    user_id: int,
    user: UserState,
    limit: int,
    filters: Filters,
    exclude_rated: bool,
    use_kept: bool,
    now: int,
) -> Ranked:
    """Return what compute_for_user does, on the event loop: the reads through the asyncio engine,
    the encode inline (about 0.3 ms), the search through Milvus's asyncio client, the popular
    movies of a user without ratings from the process's snapshot. Only what is rare goes to a
    worker thread: genre names for a genre filter, vectors of movies added after training."""
    default = is_default(limit, filters, exclude_rated)
    with STAGE.labels("database").time():
        history, rated = await read_history_async(
            engine=state.read_engine, user_id=user_id, limit=model.model.history_length, rated=exclude_rated
        )
    known = set(await state.run(lambda s: genre_names(session=s))) if filters.genres else set()
    size = KEPT_LIMIT if default else limit
    plan = plan_search(model, user_id, user, history, rated, filters, known, now)
    if plan is None:
        snapshot = await state.popular.snapshot()
        found = popular_movies(snapshot=snapshot, limit=size, filters=filters, exclude=rated)
        newest = None
    else:
        with STAGE.labels("vector_search").time():
            hits = await state.store.asearch(model.collection, plan.vector, limit=size, expr=plan.expr)
        vectors, missing = _model_vectors(model, to_explain(hits, plan.liked))
        if missing:  # movies created after training
            vectors.update(await to_thread.run_sync(state.store.vectors, model.collection, missing))
        found, newest = explain(hits, plan.liked, vectors), plan.newest
    COMPUTED.inc()
    keep = kept_row(model, user_id, user, newest, found, now) if use_kept and default else None
    return Ranked(found[:limit], keep)


@dataclass(frozen=True)
class SearchPlan:
    """A user's search: their vector, the filter expression, their liked movies (newest first) to
    explain the results with, and the time of their newest rating."""

    vector: npt.NDArray[np.float32]
    expr: str
    liked: list[int]
    newest: int


def plan_search(
    model: ActiveModel,
    user_id: int,
    user: UserState,
    history: Sequence[HistoryItem],
    exclude: set[int],
    filters: Filters,
    known_genres: set[str],
    now: int,
) -> SearchPlan | None:
    """Return the search of a user's top movies from their state and latest ratings (newest first,
    at least the model's history length of them), or None for someone without ratings (who gets the
    popular movies)."""
    if not history:
        return None
    expr = search_filter(filters, known_genres, exclude)
    with STAGE.labels("encode").time():
        (plan,) = plan_searches(model, [(user_id, user, history)], now)
    return dataclasses.replace(plan, expr=expr)


def plan_searches(
    model: ActiveModel, users: Sequence[tuple[int, UserState, Sequence[HistoryItem]]], now: int
) -> list[SearchPlan]:
    """Return the unfiltered searches of users with ratings (id, state, latest ratings newest first),
    their vectors encoded together."""
    recent = [history[: model.model.history_length] for _, _, history in users]
    features = [
        (UserFeatures(user.gender, user.age, user.occupation_id, user.zip_code, user_id), history)
        for (user_id, user, _), history in zip(users, recent, strict=True)
    ]
    vectors = model.model.encode_users(features, at=now)
    return [
        SearchPlan(
            vector, "", [h.movie_id for h in history if h.rating >= LIKED], max(h.timestamp for h in history)
        )
        for vector, history in zip(vectors, recent, strict=True)
    ]


def popular_movies(
    *, snapshot: Snapshot, limit: int, filters: Filters, exclude: set[int]
) -> list[Recommended]:
    """Return the most-rated movies that pass the filters, scored by their share of the top count.

    Demographics alone rank worse than popularity (HR@10 0.30 against 0.45 on ml-1m-head, see
    docs/figures.md), so someone without a single rating gets this list, marked as such. The counts are
    the process's snapshot of them (api/recommend/popular.py): no request reads `ratings` for it.
    """
    _check_years(filters)
    genres = check_genre_names(filters.genres, snapshot.genre_names) if filters.genres else None
    rows = snapshot.top(
        limit, genres=genres, year_from=filters.year_from, year_to=filters.year_to, exclude=exclude
    )
    top = rows[0][1] if rows else 1
    return [Recommended(movie_id, round(n / top, 6), [], "popularity") for movie_id, n in rows]


def _check_years(filters: Filters) -> None:
    for name, value in (("yearFrom", filters.year_from), ("yearTo", filters.year_to)):
        if value is not None and not MIN_YEAR <= value <= MAX_YEAR:
            raise BadUserInput(f"{name} must be a year between {MIN_YEAR} and {MAX_YEAR}")
    if filters.year_from is not None and filters.year_to is not None and filters.year_from > filters.year_to:
        raise BadUserInput("yearFrom must not be after yearTo")


def recommend_for_profile(
    *,
    session: Session,
    store: VectorStore,
    active: ActiveModel | None,
    gender: str | None,
    age: int | None,
    occupation: int | None,
    rated: Sequence[tuple[int, float]],
    limit: int,
    filters: Filters = NO_FILTERS,
) -> list[Recommended]:
    """Return top movies for a visitor described by demographics and (movie, stars) in the order rated
    (at least one: api.recommend.types.popular_for_visitor answers a visitor without)."""
    model = require_model(active)
    check_demographics(session=session, gender=gender, age=age, occupation=occupation)
    if len(rated) > PROFILE_MAX_RATINGS:
        raise BadUserInput(f"ratedMovies holds at most {PROFILE_MAX_RATINGS} ratings")
    for _movie_id, stars in rated:
        check_stars(stars, "every rating")
    ids = [m for m, _ in rated]
    known = set(session.execute(select(Movie.id).where(Movie.id.in_(ids))).scalars()) if ids else set()
    missing = [m for m in ids if m not in known]
    if missing:
        raise NotFound(f"movie {missing[0]} does not exist")
    now = int(time.time())
    history = [HistoryItem(m, s, now - (len(rated) - i)) for i, (m, s) in enumerate(rated)]
    vector = model.model.encode_user(UserFeatures(gender, age, occupation, None, None), history)
    liked = [m for m, s in reversed(rated) if s >= LIKED]
    return _search(session, store, model, vector, limit, filters, set(ids), liked)


def similar_movies(
    *, session: Session, store: VectorStore, active: ActiveModel | None, movie_id: int, limit: int
) -> list[Recommended]:
    """Return the movies whose vectors are closest to the movie's own."""
    model = require_model(active)
    if session.get(Movie, movie_id) is None:
        raise NotFound(f"movie {movie_id} does not exist")
    vector = movie_vectors(store, model, [movie_id]).get(movie_id)
    if vector is None:
        raise NotFound(f"movie {movie_id} has no vector in the active model")
    hits = store.search(model.collection, vector, limit=limit + 1)
    return [Recommended(h.movie_id, h.score) for h in hits if h.movie_id != movie_id][:limit]


def _search(
    session: Session,
    store: VectorStore,
    model: ActiveModel,
    vector: npt.NDArray[np.float32],
    limit: int,
    filters: Filters,
    exclude: set[int],
    liked: list[int],
) -> list[Recommended]:
    known = set(genre_names(session=session)) if filters.genres else set()
    expr = search_filter(filters, known, exclude)
    with STAGE.labels("vector_search").time():
        chosen = store.search(model.collection, vector, limit=limit, expr=expr)
    return explain(chosen, liked, movie_vectors(store, model, to_explain(chosen, liked)))


def search_filter(filters: Filters, known_genres: set[str], exclude: set[int]) -> str:
    """Return the Milvus filter of a search, or raise BadUserInput for filters out of range."""
    _check_years(filters)
    try:
        # Excluded ids are integers from our own database; Milvus filters them cheaper than a bigger top-k.
        return build_filter(
            genres=filters.genres,
            known_genres=known_genres,
            year_from=filters.year_from,
            year_to=filters.year_to,
            exclude_ids=sorted(exclude),
        )
    except FilterError as error:
        raise BadUserInput(str(error)) from None


def to_explain(hits: Sequence[Hit], liked: list[int]) -> list[int]:
    """Return the movies whose vectors explain hits by liked movies: none without a liked one."""
    return [h.movie_id for h in hits] + liked if liked else []


def explain(
    hits: Sequence[Hit], liked: list[int], vectors: dict[int, npt.NDArray[np.float32]]
) -> list[Recommended]:
    """Return the hits as recommendations, each with up to two liked movies whose vectors are
    closest to it (`vectors` holds those of the hits and the liked movies)."""
    liked = [m for m in liked if m in vectors]
    reasons: dict[int, list[int]] = {}
    if liked:
        liked_matrix = np.stack([vectors[m] for m in liked])  # (n_liked, dim)
        for hit in hits:
            if hit.movie_id in vectors:
                similarity = liked_matrix @ vectors[hit.movie_id]  # (n_liked,)
                best = np.argsort(-similarity)[:BECAUSE_MAX]
                reasons[hit.movie_id] = [liked[i] for i in best if similarity[i] > 0]
    return [Recommended(h.movie_id, h.score, reasons.get(h.movie_id, [])) for h in hits]


def movie_vectors(
    store: VectorStore, model: ActiveModel, movie_ids: list[int]
) -> dict[int, npt.NDArray[np.float32]]:
    """Return movie vectors from the loaded model, asking Milvus only for movies added after training."""
    found, missing = _model_vectors(model, movie_ids)
    if missing:
        found.update(store.vectors(model.collection, missing))
    return found


def _model_vectors(
    model: ActiveModel, movie_ids: list[int]
) -> tuple[dict[int, npt.NDArray[np.float32]], list[int]]:
    """Return the vectors of the loaded model, and the ids of movies it has none of (added since)."""
    found: dict[int, npt.NDArray[np.float32]] = {}
    missing = []
    for movie_id in dict.fromkeys(movie_ids):
        vector = model.vector_of(movie_id)
        if vector is None:
            missing.append(movie_id)
        else:
            found[movie_id] = vector
    return found, missing
