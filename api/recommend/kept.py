"""Kept lists: every user's default recommendations computed ahead of requests, shared by all processes.

After a version is activated, `keep_lists` computes each user's top KEPT_LIMIT movies exactly as a
request would (rank_for_user: the same reads, encoder and Milvus search) and stores them with
what they were computed from. A `recommendations` request without filters and with a limit up
to KEPT_LIMIT is then answered from the user's row by the one read it makes anyway
(api/recommend/freshness.py), in whichever process it lands, as long as the row is current: same
active version, same ratings version, same newest movie, same time bucket. Any change to those
makes the row stale and the request computes, so a kept answer is what computing would return.
Exact search returns the top `limit` as the first `limit` of the top KEPT_LIMIT.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable

import orjson
from sqlalchemy import delete, insert, select
from sqlalchemy.orm import sessionmaker

from api.db import utcnow
from api.metrics import STAGE
from api.ratings.models import Rating
from api.ratings.service import RatingRecord
from api.recommend.freshness import USER_STATE_COLUMNS, Freshness, FreshnessBatcher, UserState
from api.recommend.memo import LOOKUPS, RecommendationMemo
from api.recommend.models import KeptList
from api.recommend.service import NO_FILTERS, Filters, Recommended, memo_key, rank_for_user, require_model
from api.users.models import User
from api.vectors.store import VectorStore
from api.versions.registry import ActiveModel, load_active_model
from api.versions.service import get_version

log = logging.getLogger(__name__)
KEPT_LIMIT = 20  # movies kept per user: any limit up to this is answered from the list
CHUNK = 500  # users per transaction of keep_lists
KEPT = LOOKUPS.labels("kept")


def from_kept(
    model: ActiveModel, fresh: Freshness, *, limit: int, filters: Filters, exclude_rated: bool, now: int
) -> list[Recommended] | None:
    """Return the user's recommendations from their kept list if it answers this request and is current."""
    kept = fresh.kept
    if kept is None or filters != NO_FILTERS or not exclude_rated or limit > KEPT_LIMIT:
        return None
    if (
        kept.model_version_id != model.version_id
        or kept.ratings_version != fresh.ratings_version
        or kept.newest_movie != fresh.newest_movie
        or kept.time_key != model.model.time_key(kept.newest_rating, now)
    ):
        return None
    KEPT.inc()
    items = orjson.loads(kept.items)[:limit]
    return [Recommended(movie_id, score, because) for movie_id, score, because in items]


async def kept_recommendations(
    *,
    memo: RecommendationMemo[list[Recommended]],
    freshness: FreshnessBatcher,
    active: ActiveModel | None,
    user_id: int,
    limit: int,
    filters: Filters = NO_FILTERS,
    exclude_rated: bool = True,
) -> list[Recommended] | None:
    """Return what recommend_for_user would, from the user's kept list or this process's memo; one
    database round trip, shared with the requests asking at the same moment. None means it must be
    computed (recommend_for_user with the same memo keeps it).
    """
    model = require_model(active)
    with STAGE.labels("database").time():
        fresh = await freshness.read(user_id)
    now = int(time.time())
    found = from_kept(model, fresh, limit=limit, filters=filters, exclude_rated=exclude_rated, now=now)
    if found is not None:
        return found
    key = memo_key(model, user_id, fresh, limit, filters, exclude_rated)
    return memo.get(key, lambda newest: model.model.time_key(newest, now))


def keep_version_lists(
    *,
    sessions: sessionmaker,
    store: VectorStore,
    version_id: int,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Load a version's model and keep every user's list for it (keep_lists); return how many were stored."""
    with sessions() as session:
        model = load_active_model(get_version(session=session, version_id=version_id))
    return keep_lists(sessions=sessions, store=store, model=model, progress=progress)


def keep_in_background(*, sessions: sessionmaker, store: VectorStore, version_id: int) -> threading.Thread:
    """Start keep_version_lists in a daemon thread (after the dashboard activates a version)."""

    def run() -> None:
        try:
            keep_version_lists(sessions=sessions, store=store, version_id=version_id)
        except Exception:  # requests compute until the lists exist; nothing is lost
            log.exception("keeping the recommendations of version %d failed", version_id)

    thread = threading.Thread(target=run, name=f"keep-lists-v{version_id}", daemon=True)
    thread.start()
    return thread


def keep_lists(
    *,
    sessions: sessionmaker,
    store: VectorStore,
    model: ActiveModel,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Compute and store the kept list of every user with ratings; return how many were stored.

    Each chunk of users is read in one snapshot and replaced in one transaction, so a rating
    written meanwhile leaves its user's row stale (its ratings version moved on), never wrong.
    """
    with sessions() as session:
        user_ids = list(session.execute(select(User.id).order_by(User.id)).scalars())
    stored = 0
    started = time.monotonic()
    for start in range(0, len(user_ids), CHUNK):
        ids = user_ids[start : start + CHUNK]
        now = int(time.time())
        with sessions.begin() as session:
            users = session.execute(select(User.id, *USER_STATE_COLUMNS).where(User.id.in_(ids))).all()
            records: dict[int, list[RatingRecord]] = defaultdict(list)
            rows = session.execute(
                select(Rating.user_id, Rating.movie_id, Rating.rating, Rating.rated_at)
                .where(Rating.user_id.in_(ids))
                .order_by(Rating.user_id, Rating.rated_at.desc(), Rating.movie_id.desc())
            )  # the order of latest_records, per user
            for user_id, movie_id, stars, rated_at in rows:
                records[user_id].append(RatingRecord(movie_id, stars, rated_at))
            kept = []
            for user_id, *columns in users:
                if not records[user_id]:
                    continue  # no ratings: the popular movies, read at request time
                state = UserState(*columns)
                found, newest = rank_for_user(
                    session=session, store=store, model=model, user_id=user_id, user=state,
                    records=records[user_id], limit=KEPT_LIMIT, filters=NO_FILTERS, exclude_rated=True,
                    now=now,
                )  # fmt: skip
                kept.append(
                    {
                        "user_id": user_id,
                        "model_version_id": model.version_id,
                        "ratings_version": state.ratings_version,
                        "newest_movie": state.newest_movie,
                        "time_key": model.model.time_key(newest, now),
                        "newest_rating": newest,
                        "items": orjson.dumps([[r.movie_id, r.score, r.because] for r in found]).decode(),
                        "computed_at": utcnow(),
                    }
                )
            session.execute(delete(KeptList).where(KeptList.user_id.in_(ids)))
            if kept:
                session.execute(insert(KeptList), kept)
        stored += len(kept)
        if progress is not None:
            progress(min(start + CHUNK, len(user_ids)), len(user_ids))
    log.info("kept %d lists for version %d in %.1f s", stored, model.version_id, time.monotonic() - started)
    return stored
