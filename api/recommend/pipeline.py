"""A user's recommendations: one read of the user, then stages in order (the kept list, else the
model, else the most-rated movies), each answering only what is still unanswered. GraphQL, the
dashboard's playground and keep_lists (many users at once) all run it."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property, partial
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
from anyio import to_thread
from sqlalchemy import String, bindparam, cast, func, select
from sqlalchemy.orm import Session

from api.db import Run, all_rows, epoch_seconds, utcnow
from api.errors import NotFound
from api.metrics import ANSWERS, STAGE
from api.movies.models import Movie
from api.movies.service import genre_names
from api.ratings.models import Rating
from api.ratings.service import RATED, parse_rated
from api.recommend.models import KeptList
from api.recommend.service import (
    LIKED,
    NO_FILTERS,
    Filters,
    Recommended,
    Sources,
    explain,
    movie_vectors,
    popular_movies,
    search_filter,
    to_explain,
)
from api.upsert import upsert_statement
from api.users.models import User
from api.versions.registry import ActiveModel
from ml.serving import HistoryItem, UserFeatures

KEPT_LIMIT = 20  # movies kept per user: any limit up to this is answered from the kept list
KEPT, COMPUTED = ANSWERS.labels("kept"), ANSWERS.labels("computed")


@dataclass(frozen=True)
class KeptRow:
    fingerprint: str
    newest_rating: int | None
    items: str  # JSON, parsed only when the fingerprint matches


@dataclass(frozen=True)
class UserState:
    """What a user's recommendations are computed from, and their kept list. The ratings come as the
    database joins them and are parsed only when the model is asked: a kept answer never needs them."""

    gender: str | None  # each None when unknown
    age: int | None
    occupation_id: int | None
    zip_code: str | None
    ratings_version: int  # bumped with every change to the user's ratings (api/ratings/writes.py)
    newest_movie: int | None  # the catalogue's highest movie id: a new movie changes it
    kept: KeptRow | None = None
    newest_ratings: str | bytes | None = None  # the newest ones as "movie:stars:seconds", in any order
    rated_ids: str | bytes | None = None  # the ids of every movie rated, comma-separated
    ratings_read: bool = True  # False: read without them, for a kept list to answer

    @classmethod
    def of(cls, columns: Sequence[Any], **rest: Any) -> UserState:
        return cls(*columns, **rest)  # USER_STATE_COLUMNS' values, typed as a sequence

    @cached_property
    def history(self) -> list[HistoryItem]:
        """The newest ratings, newest first (ties: higher movie id first, as the model reads them)."""
        joined = self.newest_ratings
        if isinstance(joined, bytes):  # MySQL types GROUP_CONCAT binary for some arguments
            joined = joined.decode()
        items = [item.split(":") for item in joined.split(",")] if joined else []
        history = [HistoryItem(int(movie), float(stars), int(seconds)) for movie, stars, seconds in items]
        return sorted(history, key=lambda h: (h.timestamp, h.movie_id), reverse=True)

    @cached_property
    def rated(self) -> set[int]:
        return parse_rated(self.rated_ids)


_users, _kept = User.__table__.c, KeptList.__table__.c
USER_STATE_COLUMNS = (
    _users.gender, _users.age, _users.occupation_id, _users.zip_code, _users.ratings_version,
    select(func.max(Movie.id)).scalar_subquery(),
)  # fmt: skip


# A rating as the text "movie:stars:seconds" (UserState.newest_ratings joins them).
RATING_ITEM = (
    cast(Rating.movie_id, String) + ":" + cast(Rating.rating, String) + ":"
    + cast(epoch_seconds(Rating.rated_at), String)
)  # fmt: skip
_newest = (
    select(RATING_ITEM.label("item"))
    .where(Rating.user_id == bindparam("user_id"))
    .order_by(Rating.rated_at.desc(), Rating.movie_id.desc())
    .limit(bindparam("limit"))
    .subquery()
)
_RATINGS = (select(func.group_concat(_newest.c.item)).scalar_subquery(), RATED.scalar_subquery())
# A request's one read: the user's state and kept list and, unless the kept list may answer, their
# newest ratings and rated ids, each list one string, so that a heavy rater costs one row.
KEPT_SELECT = (
    select(*USER_STATE_COLUMNS, _kept.fingerprint, _kept.newest_rating, _kept["items"])
    .select_from(User.__table__.outerjoin(KeptList.__table__, _kept.user_id == _users.id))
    .where(_users.id == bindparam("user_id"))
)
USER_SELECT = KEPT_SELECT.add_columns(*_RATINGS)
# The ratings a kept list did not answer for after all (a stale list): the second read of the request.
RATINGS_SELECT = select(*_RATINGS)


def read_user(session: Session, *, user_id: int, history_length: int, ratings: bool = True) -> UserState:
    """Return the user's state and kept list, with (`ratings`) their newest `history_length` ratings
    and rated movies, or raise NotFound."""
    parameters = {"user_id": user_id, "limit": history_length}
    rows = all_rows(USER_SELECT if ratings else KEPT_SELECT, parameters, session)
    if not rows:
        raise NotFound(f"user {user_id} does not exist")
    row, n = rows[0], len(USER_STATE_COLUMNS)
    kept = None if row[n] is None else KeptRow(*row[n : n + 3])
    if not ratings:
        return UserState.of(row[:n], kept=kept, ratings_read=False)
    return UserState.of(row[:n], kept=kept, newest_ratings=row[n + 3], rated_ids=row[n + 4])


def fingerprint(model: ActiveModel, user: UserState, newest_rating: int | None, now: int) -> str:
    """Return the fingerprint of everything a user's default list depends on at `now`: equal
    fingerprints compute equal lists, so a kept list answers exactly when its fingerprint matches."""
    inputs = (
        model.version_id, user.ratings_version, user.newest_movie, model.model.time_key(newest_rating, now),
        user.gender, user.age, user.occupation_id, user.zip_code,
    )  # fmt: skip
    return hashlib.blake2b(repr(inputs).encode(), digest_size=16).hexdigest()


def store_kept(*, session: Session, rows: Sequence[dict[str, object]]) -> None:
    """Insert or replace kept lists (the caller commits); one from older inputs only fails to match."""
    if rows:
        columns = ["fingerprint", "newest_rating", "items", "computed_at"]
        upsert = upsert_statement(session.connection(), KeptList.__table__, ["user_id"], columns)
        session.execute(upsert, list(rows))


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
    run: Run | None = None  # the request's session, for what its first read left out

    @property
    def default(self) -> bool:
        return is_default(self.limit, self.filters, self.exclude_rated)


def is_default(limit: int, filters: Filters, exclude_rated: bool) -> bool:
    """Whether the kept list answers a request (its first `limit` movies)."""
    return limit <= KEPT_LIMIT and filters == NO_FILTERS and exclude_rated


async def from_kept(sources: Sources, model: ActiveModel, asks: list[Ask], now: int) -> None:
    """Answer default requests whose kept list's fingerprint is the one computed for them now."""
    for ask in asks:
        kept = ask.user.kept
        if (
            sources.use_kept
            and ask.default
            and kept is not None
            and kept.fingerprint == fingerprint(model, ask.user, kept.newest_rating, now)
        ):
            items = orjson.loads(kept.items)[: ask.limit]
            ask.found, ask.kept = [Recommended(m, score, because) for m, score, because in items], True


async def from_model(sources: Sources, model: ActiveModel, asks: list[Ask], now: int) -> None:
    """Answer users with ratings from the model, first reading the ratings left out for a kept list that
    did not answer (a stale one). A default request is ranked to KEPT_LIMIT exactly as its kept list
    is, so that a kept answer and a computed one are the same list."""
    for ask in asks:
        if not ask.user.ratings_read:  # the popular movies need them too
            assert ask.run is not None, "a user read without ratings needs a way to read them"
            parameters = {"user_id": ask.user_id, "limit": model.model.history_length}
            with STAGE.labels("database").time():
                newest, rated = (await ask.run(partial(all_rows, RATINGS_SELECT, parameters)))[0]
            ask.user = replace(ask.user, newest_ratings=newest, rated_ids=rated, ratings_read=True)
    asks = [ask for ask in asks if ask.user.history]
    if not asks:
        return
    known: set[str] = set()
    if any(ask.filters.genres for ask in asks):  # a request's own (keep_lists filters nothing)
        assert asks[0].run is not None, "a genre filter needs the request's session"
        known = set(await asks[0].run(lambda session: genre_names(session=session)))
    exprs = [search_filter(a.filters, known, a.user.rated if a.exclude_rated else set()) for a in asks]
    with STAGE.labels("encode").time():  # one user's encode is shorter than a thread hop
        vectors, liked, newest = (
            encode(model, asks, now) if len(asks) == 1 else await to_thread.run_sync(encode, model, asks, now)
        )
    with STAGE.labels("vector_search").time():
        if sources.rank_many is not None and all(ask.default for ask in asks):
            hits = await to_thread.run_sync(sources.rank_many, vectors, [ask.user.rated for ask in asks])
        else:
            hits = [
                await sources.store.search(
                    model.collection, vector, limit=KEPT_LIMIT if ask.default else ask.limit, expr=expr
                )
                for ask, vector, expr in zip(asks, vectors, exprs, strict=True)
            ]
    wanted = [m for found, likes in zip(hits, liked, strict=True) for m in to_explain(found, likes)]
    vectors_of = await movie_vectors(sources.store, model, wanted)
    for ask, found, likes, last in zip(asks, hits, liked, newest, strict=True):
        ranked = explain(found, likes, vectors_of)
        ask.found = ranked[: ask.limit]
        if sources.use_kept and ask.default:
            ask.keep = {
                "user_id": ask.user_id,
                "fingerprint": fingerprint(model, ask.user, last, now),
                "newest_rating": last,
                "items": orjson.dumps([[r.movie_id, r.score, r.because] for r in ranked]).decode(),
                "computed_at": utcnow(),
            }


def encode(
    model: ActiveModel, asks: Sequence[Ask], now: int
) -> tuple[npt.NDArray[np.float32], list[list[int]], list[int]]:
    """Return the vectors (users, dim) of users with ratings, encoded together, with each one's liked
    movies (newest first) and the time of their newest rating."""
    recent = [ask.user.history[: model.model.history_length] for ask in asks]
    features = [
        (UserFeatures(a.user.gender, a.user.age, a.user.occupation_id, a.user.zip_code, a.user_id), history)
        for a, history in zip(asks, recent, strict=True)
    ]
    liked = [[h.movie_id for h in history if h.rating >= LIKED] for history in recent]
    return model.model.encode_users(features, at=now), liked, [history[0].timestamp for history in recent]


async def from_popular(sources: Sources, model: ActiveModel, asks: list[Ask], now: int) -> None:
    """Answer users without ratings with the most-rated movies (never kept: everybody's ratings move them)."""
    snapshot = await sources.popular.snapshot()
    for ask in asks:
        exclude = ask.user.rated if ask.exclude_rated else set()
        ask.found = popular_movies(snapshot=snapshot, limit=ask.limit, filters=ask.filters, exclude=exclude)


STAGES = (from_kept, from_model, from_popular)


async def answer(sources: Sources, model: ActiveModel, asks: list[Ask], now: int) -> None:
    """Run the stages in order, each over the requests still unanswered."""
    for stage in STAGES:
        pending = [ask for ask in asks if ask.found is None]
        if pending:
            await stage(sources, model, pending, now)


async def recommend_user(
    *,
    run: Run,
    sources: Sources,
    model: ActiveModel,
    user_id: int,
    limit: int,
    filters: Filters = NO_FILTERS,
    exclude_rated: bool = True,
) -> list[Recommended]:
    """Return a user's recommendations: one read, then the stages; a computed list to keep is handed to
    the sources to store after the answer."""
    now = int(time.time())
    length = model.model.history_length
    with STAGE.labels("database").time():  # the ratings too, unless the kept list may answer
        ratings = not (sources.use_kept and is_default(limit, filters, exclude_rated))
        user = await run(partial(read_user, user_id=user_id, history_length=length, ratings=ratings))
    ask = Ask(user_id, user, limit, filters, exclude_rated, run=run)
    await answer(sources, model, [ask], now)
    (KEPT if ask.kept else COMPUTED).inc()
    if ask.keep is not None and sources.keep is not None:
        sources.keep([ask.keep])
    assert ask.found is not None
    return ask.found
