"""Recommendation queries: for a user, for an anonymous profile, and movies similar to a movie."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC

import numpy as np
import numpy.typing as npt
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.errors import BadUserInput, ModelNotReady, NotFound
from api.metrics import STAGE
from api.movies.models import Genre, Movie, movie_genres
from api.movies.service import check_genres, genre_names
from api.ratings.models import Rating
from api.ratings.service import RatingRecord, latest_records
from api.recommend.freshness import Freshness, UserState, user_state
from api.recommend.memo import Entry, RecommendationMemo
from api.users.service import check_demographics
from api.vectors.filters import MAX_YEAR, MIN_YEAR, FilterError, build_filter
from api.vectors.store import VectorStore
from api.versions.registry import ActiveModel
from ml.encoder import HistoryItem, UserFeatures

LIKED = 4  # stars from which a rated movie can explain a recommendation ("because you liked")
BECAUSE_MAX = 2
PROFILE_MAX_RATINGS = 200


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


def recommend_for_user(
    *,
    session: Session,
    store: VectorStore,
    active: ActiveModel | None,
    user_id: int,
    limit: int,
    filters: Filters = NO_FILTERS,
    exclude_rated: bool = True,
    memo: RecommendationMemo[list[Recommended]] | None = None,
) -> list[Recommended]:
    """Return the user's top movies from their demographics and latest ratings, read now.

    With a memo, the result is kept for kept_recommendations to answer the next same request.
    """
    model = require_model(active)
    now = int(time.time())
    with STAGE.labels("database").time():
        # One snapshot for the versions and the history: the entry kept is keyed by what it read.
        user = user_state(session=session, user_id=user_id)
        records = latest_records(session=session, user_id=user_id)
    found, newest = rank_for_user(
        session=session, store=store, model=model, user_id=user_id, user=user, records=records,
        limit=limit, filters=filters, exclude_rated=exclude_rated, now=now,
    )  # fmt: skip
    if memo is not None and newest is not None:
        key = memo_key(model, user_id, user, limit, filters, exclude_rated)
        memo.put(key, Entry(model.model.time_key(newest, now), newest, found))
    return found


def rank_for_user(
    *,
    session: Session,
    store: VectorStore,
    model: ActiveModel,
    user_id: int,
    user: UserState,
    records: Sequence[RatingRecord],
    limit: int,
    filters: Filters,
    exclude_rated: bool,
    now: int,
) -> tuple[list[Recommended], int | None]:
    """Return the user's top movies from their state and ratings (newest first) as read, and the
    time of their newest rating (None for someone without ratings, who gets the popular movies)."""
    history = [
        HistoryItem(r.movie_id, r.rating, int(r.rated_at.replace(tzinfo=UTC).timestamp()))
        for r in records[: model.model.history_length]
    ]
    exclude = {r.movie_id for r in records} if exclude_rated else set()
    if not history:
        return popular_movies(session=session, limit=limit, filters=filters, exclude=exclude), None
    features = UserFeatures(user.gender, user.age, user.occupation_id, user.zip_code, user_id)
    with STAGE.labels("encode").time():
        vector = model.model.encode_user(features, history, at=now)
    liked = [h.movie_id for h in history if h.rating >= LIKED]
    found = _search(session, store, model, vector, limit, filters, exclude, liked)
    return found, max(h.timestamp for h in history)


def memo_key(
    model: ActiveModel,
    user_id: int,
    user: UserState | Freshness,
    limit: int,
    filters: Filters,
    exclude_rated: bool,
) -> tuple[object, ...]:
    """Return everything a user's recommendations depend on but the time (api/recommend/memo.py)."""
    genres = tuple(filters.genres) if filters.genres is not None else None
    return (
        model.version_id, user_id, user.ratings_version, user.newest_movie, limit, genres,
        filters.year_from, filters.year_to, exclude_rated,
    )  # fmt: skip


POPULAR_MAX_AGE_S = 60.0  # the most-rated movies are counted again at most this often per process
_popular: dict[tuple[object, ...], tuple[float, int, list[tuple[int, int]]]] = {}
_popular_lock = threading.Lock()


def popular_movies(*, session: Session, limit: int, filters: Filters, exclude: set[int]) -> list[Recommended]:
    """Return the most-rated movies that pass the filters, scored by their share of the top count.

    Demographics alone rank worse than popularity (HR@10 0.30 against 0.45 on ml-1m-head, see
    ml/README.md), so someone without a single rating gets this list, marked as such. Counting
    every rating takes about 110 ms on ml-1m-head, so each process reuses a count for
    POPULAR_MAX_AGE_S: the ranking of a million ratings barely moves in a minute.
    """
    _check_years(filters)
    wanted = check_genres(session=session, genres=filters.genres) if filters.genres else None
    size = limit + len(exclude)
    key = (str(session.get_bind().engine.url), tuple(wanted or ()), filters.year_from, filters.year_to)
    now = time.monotonic()
    with _popular_lock:
        cached = _popular.get(key)
    if cached is None or now - cached[0] > POPULAR_MAX_AGE_S or cached[1] < size:
        cached = (now, size, _count_popular(session, size, wanted, filters))
        with _popular_lock:
            _popular[key] = cached
    rows = [(m, n) for m, n in cached[2] if m not in exclude][:limit]
    top = rows[0][1] if rows else 1
    return [Recommended(movie_id, round(n / top, 6), [], "popularity") for movie_id, n in rows]


def _count_popular(
    session: Session, size: int, genres: list[str] | None, filters: Filters
) -> list[tuple[int, int]]:
    count = func.count(Rating.movie_id).label("ratings")
    query = (
        select(Movie.id, count)
        .join(Rating, Rating.movie_id == Movie.id)
        .group_by(Movie.id)
        .order_by(count.desc(), Movie.id)
        .limit(size)
    )
    if genres:
        query = query.where(
            Movie.id.in_(
                select(movie_genres.c.movie_id)
                .join(Genre, Genre.id == movie_genres.c.genre_id)
                .where(Genre.name.in_(genres))
            )
        )
    if filters.year_from is not None:
        query = query.where(Movie.year >= filters.year_from)
    if filters.year_to is not None:
        query = query.where(Movie.year <= filters.year_to)
    return [(movie_id, n) for movie_id, n in session.execute(query)]


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
    gender: str,
    age: int,
    occupation: int,
    rated: Sequence[tuple[int, int]],
    limit: int,
    filters: Filters = NO_FILTERS,
) -> list[Recommended]:
    """Return top movies for a visitor described by demographics and (movie, stars) in the order rated."""
    model = require_model(active)
    check_demographics(session=session, gender=gender, age=age, occupation=occupation)
    if len(rated) > PROFILE_MAX_RATINGS:
        raise BadUserInput(f"ratedMovies holds at most {PROFILE_MAX_RATINGS} ratings")
    for _movie_id, stars in rated:
        if not 1 <= stars <= 5:
            raise BadUserInput("every rating must be a whole number of stars from 1 to 5")
    ids = [m for m, _ in rated]
    known = set(session.execute(select(Movie.id).where(Movie.id.in_(ids))).scalars()) if ids else set()
    missing = [m for m in ids if m not in known]
    if missing:
        raise NotFound(f"movie {missing[0]} does not exist")
    if not rated:
        return popular_movies(session=session, limit=limit, filters=filters, exclude=set())
    now = int(time.time())
    history = [HistoryItem(m, s, now - (len(rated) - i)) for i, (m, s) in enumerate(rated)]
    vector = model.model.encode_user(UserFeatures(gender, age, occupation, "", None), history)
    liked = [m for m, s in reversed(rated) if s >= LIKED]
    return _search(session, store, model, vector, limit, filters, set(ids), liked)


def similar_movies(
    *, session: Session, store: VectorStore, active: ActiveModel | None, movie_id: int, limit: int
) -> list[Recommended]:
    """Return the movies whose vectors are closest to the movie's own."""
    model = require_model(active)
    if session.get(Movie, movie_id) is None:
        raise NotFound(f"movie {movie_id} does not exist")
    vector = _vectors(store, model, [movie_id]).get(movie_id)
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
    _check_years(filters)
    known = set(genre_names(session=session)) if filters.genres else set()
    try:
        # Excluded ids are integers from our own database; Milvus filters them cheaper than a bigger top-k.
        expr = build_filter(
            genres=filters.genres,
            known_genres=known,
            year_from=filters.year_from,
            year_to=filters.year_to,
            exclude_ids=sorted(exclude),
        )
    except FilterError as error:
        raise BadUserInput(str(error)) from None
    with STAGE.labels("vector_search").time():
        chosen = store.search(model.collection, vector, limit=limit, expr=expr)
    reasons = _because(store, model, [h.movie_id for h in chosen], liked)
    return [Recommended(h.movie_id, h.score, reasons.get(h.movie_id, [])) for h in chosen]


def _because(
    store: VectorStore, model: ActiveModel, movie_ids: list[int], liked: list[int]
) -> dict[int, list[int]]:
    """Return, for each movie, up to two liked movies whose vectors are closest to it."""
    if not movie_ids or not liked:
        return {}
    vectors = _vectors(store, model, list(dict.fromkeys(movie_ids + liked)))
    liked = [m for m in liked if m in vectors]
    if not liked:
        return {}
    liked_matrix = np.stack([vectors[m] for m in liked])  # (n_liked, dim)
    result = {}
    for movie_id in movie_ids:
        if movie_id not in vectors:
            continue
        similarity = liked_matrix @ vectors[movie_id]  # (n_liked,)
        best = np.argsort(-similarity)[:BECAUSE_MAX]
        result[movie_id] = [liked[i] for i in best if similarity[i] > 0]
    return result


def _vectors(
    store: VectorStore, model: ActiveModel, movie_ids: list[int]
) -> dict[int, npt.NDArray[np.float32]]:
    """Return movie vectors from the loaded model, asking Milvus only for movies added after training."""
    found: dict[int, npt.NDArray[np.float32]] = {}
    missing = []
    for movie_id in movie_ids:
        vector = model.vector_of(movie_id)
        if vector is None:
            missing.append(movie_id)
        else:
            found[movie_id] = vector
    if missing:
        found.update(store.vectors(model.collection, missing))
    return found
