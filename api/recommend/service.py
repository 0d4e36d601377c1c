"""Recommendation queries: for a user, for an anonymous profile, and movies similar to a movie."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
from sqlalchemy import String, bindparam, cast, func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session

from api.dataimport.upsert import upsert_statement
from api.db import DriverRead, epoch_seconds, read_async, utcnow
from api.errors import BadUserInput, ModelNotReady, NotFound, Unavailable
from api.metrics import STAGE
from api.movies.models import Movie
from api.movies.service import check_genre_names, genre_names
from api.ratings.models import Rating
from api.ratings.service import RATED, check_stars, parse_rated
from api.recommend.models import KeptList
from api.recommend.popular import Snapshot
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
    """What a user's recommendations are computed from, and their kept list: the request's one read."""

    gender: str | None  # each None when unknown
    age: int | None
    occupation_id: int | None
    zip_code: str | None
    ratings_version: int  # bumped with every change to the user's ratings (api/ratings/writes.py)
    newest_movie: int | None  # the catalogue's highest movie id: a new movie changes it
    kept: KeptRow | None = None
    history: list[HistoryItem] = field(default_factory=list)  # the newest ratings, newest first
    rated: set[int] = field(default_factory=set)  # every movie the user rated

    @classmethod
    def of(cls, columns: Sequence[Any], **rest: Any) -> UserState:
        """Return the state of USER_STATE_COLUMNS' values, with the rest of the fields given."""
        return cls(*columns, **rest)


@dataclass(frozen=True)
class KeptRow:
    fingerprint: str
    newest_rating: int | None
    items: str  # JSON, parsed only when the fingerprint matches


_users, _kept, _ratings = User.__table__.c, KeptList.__table__.c, Rating.__table__.c
NEWEST_MOVIE = select(func.max(Movie.id)).scalar_subquery()
USER_STATE_COLUMNS = (
    _users.gender, _users.age, _users.occupation_id, _users.zip_code, _users.ratings_version, NEWEST_MOVIE
)  # fmt: skip
_newest = (
    select(
        (
            cast(_ratings.movie_id, String)
            + ":"
            + cast(_ratings.rating, String)
            + ":"
            + cast(epoch_seconds(_ratings.rated_at), String)
        ).label("item")
    )
    .where(_ratings.user_id == bindparam("user_id"))
    .order_by(_ratings.rated_at.desc(), _ratings.movie_id.desc())
    .limit(bindparam("limit"))
    .subquery()
)
# A request's one read: the user's state, kept list, newest ratings ("movie:stars:seconds") and rated
# ids, each list one string, so that a heavy rater costs one row through the driver.
_READ_COLUMNS = (
    *USER_STATE_COLUMNS, _kept.fingerprint, _kept.newest_rating, _kept["items"],
    select(func.group_concat(_newest.c.item)).scalar_subquery(), RATED.scalar_subquery(),
)  # fmt: skip
USER_SELECT = (
    select(*_READ_COLUMNS)
    .select_from(User.__table__.outerjoin(KeptList.__table__, _kept.user_id == _users.id))
    .where(_users.id == bindparam("user_id"))
)
USER_READ = DriverRead(USER_SELECT)


async def read_user(*, engine: AsyncEngine, user_id: int, history_length: int) -> UserState:
    """Return the user's state, kept list, newest `history_length` ratings and rated movies, read on
    the event loop by the driver (api.db.DriverRead), or raise NotFound."""
    try:
        parameters = {"user_id": user_id, "limit": history_length}
        [rows] = await read_async(engine, (USER_READ, parameters), timeout=READ_TIMEOUT_S)
    except TimeoutError:
        raise Unavailable("the database is unavailable; try again shortly") from None
    if not rows:
        raise NotFound(f"user {user_id} does not exist")
    *columns, kept_as, newest_rating, items, history, rated = rows[0]
    kept = None if kept_as is None else KeptRow(kept_as, newest_rating, items)
    return UserState.of(columns, kept=kept, history=parse_history(history), rated=parse_rated(rated))


def parse_history(joined: str | bytes | None) -> list[HistoryItem]:
    """Return the ratings of USER_READ's history string, newest first (joined in any order)."""
    if isinstance(joined, bytes):
        joined = joined.decode()
    items = [item.split(":") for item in joined.split(",")] if joined else []
    history = [HistoryItem(int(movie), float(stars), int(seconds)) for movie, stars, seconds in items]
    history.sort(key=lambda h: (h.timestamp, h.movie_id), reverse=True)
    return history


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


def is_default(limit: int, filters: Filters, exclude_rated: bool) -> bool:
    """Return whether a request is answered from the user's kept list (its first `limit` movies)."""
    return limit <= KEPT_LIMIT and filters == NO_FILTERS and exclude_rated


def kept_answer(model: ActiveModel, user: UserState, limit: int, now: int) -> list[Recommended] | None:
    """Return the first `limit` movies of the user's kept list, or None unless its fingerprint is
    the one computed for it now."""
    kept = user.kept
    if kept is None or kept.fingerprint != fingerprint(model, user, kept.newest_rating, now):
        return None
    items = orjson.loads(kept.items)[:limit]
    return [Recommended(movie_id, score, because) for movie_id, score, because in items]


def kept_row(
    model: ActiveModel, user_id: int, user: UserState, newest: int, found: list[Recommended], now: int
) -> dict[str, object]:
    """Return the kept_recommendations row of a user's top KEPT_LIMIT."""
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
        columns = ["fingerprint", "newest_rating", "items", "computed_at"]
        upsert = upsert_statement(session.connection(), KeptList.__table__, ["user_id"], columns)
        session.execute(upsert, list(rows))


@dataclass(frozen=True)
class SearchPlan:
    """A user's search: their vector, their liked movies (newest first) to explain the results with,
    and the time of their newest rating."""

    vector: npt.NDArray[np.float32]
    liked: list[int]
    newest: int


def plan_searches(model: ActiveModel, users: Sequence[tuple[int, UserState]], now: int) -> list[SearchPlan]:
    """Return the searches of users with ratings, their vectors encoded together."""
    recent = [user.history[: model.model.history_length] for _, user in users]
    features = [
        (UserFeatures(user.gender, user.age, user.occupation_id, user.zip_code, user_id), history)
        for (user_id, user), history in zip(users, recent, strict=True)
    ]
    vectors = model.model.encode_users(features, at=now)
    return [
        SearchPlan(vector, [h.movie_id for h in items if h.rating >= LIKED], max(h.timestamp for h in items))
        for vector, items in zip(vectors, recent, strict=True)
    ]


def popular_movies(
    *, snapshot: Snapshot, limit: int, filters: Filters, exclude: set[int]
) -> list[Recommended]:
    """Return the most-rated movies that pass the filters, scored by their share of the top count.

    Demographics alone rank worse than popularity (docs/figures.md), so someone without a single
    rating gets this list, marked as such. The counts are the process's snapshot of them
    (api/recommend/popular.py): no request reads `ratings` for it.
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
    found = {m: v for m in movie_ids if (v := model.vector_of(m)) is not None}
    missing = [m for m in dict.fromkeys(movie_ids) if m not in found]
    if missing:
        found.update(store.vectors(model.collection, missing))
    return found
