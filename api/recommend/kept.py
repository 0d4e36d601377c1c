"""Kept lists for every user, computed ahead after a version is activated.

A user's kept list is their top KEPT_LIMIT movies with the fingerprint of what they were computed
from (api/recommend/service.py: `fingerprint`). A request reads it with the user's row, answers
from it while the fingerprint is current, and otherwise computes and stores it again, so every
process and replica shares every list. `keep_lists` fills the table for a newly active version,
so that the first request of each user is answered from it too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from api.db import epoch_seconds
from api.ratings.models import Rating
from api.recommend.service import (
    KEPT_LIMIT,
    NO_FILTERS,
    USER_STATE_COLUMNS,
    UserState,
    kept_row,
    rank_for_user,
    store_kept,
)
from api.users.models import User
from api.vectors.store import VectorStore
from api.versions.history import KeptJob
from api.versions.registry import ActiveModel, load_active_model
from api.versions.service import active_version, get_version
from ml.encoder import HistoryItem

log = logging.getLogger(__name__)
CHUNK = 500  # users per transaction of keep_lists


class Superseded(Exception):
    """Another version became active while a version's lists were being kept: they would never answer."""


def keep_version_lists(
    *,
    sessions: sessionmaker,
    store: VectorStore,
    version_id: int,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Load a version's model and keep every user's list for it (keep_lists); return how many were
    stored. The job's progress and outcome go to the version's newest activation (KeptJob); it
    stops, raising Superseded, once the version is no longer the active one."""
    job = KeptJob(sessions, version_id)

    def on_chunk(done: int, total: int) -> None:
        with sessions() as session:
            active = active_version(session=session)
        if active is None or active.id != version_id:
            raise Superseded(f"version {active.id if active else 'none'} became active instead")
        job.progress(done, total)
        if progress is not None:
            progress(done, total)

    try:
        with sessions() as session:
            model = load_active_model(get_version(session=session, version_id=version_id))
        stored = keep_lists(sessions=sessions, store=store, model=model, progress=on_chunk)
    except Superseded as superseded:
        job.finished("superseded", str(superseded))
        raise
    except Exception as error:
        job.finished("failed", f"{type(error).__name__}: {error}")
        raise
    job.finished("succeeded")
    return stored


def keep_in_background(*, sessions: sessionmaker, store: VectorStore, version_id: int) -> threading.Thread:
    """Start keep_version_lists in a daemon thread (after the dashboard activates a version)."""

    def run() -> None:
        try:
            keep_version_lists(sessions=sessions, store=store, version_id=version_id)
        except Superseded as superseded:  # recorded; the new version's own job keeps its lists
            log.info("stopped keeping the lists of version %d: %s", version_id, superseded)
        except Exception:  # recorded for the dashboard; requests compute until the lists exist
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

    Each chunk of users is read in one snapshot and written in one transaction, through the
    functions a request uses (rank_for_user, kept_row, store_kept).
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
            histories: dict[int, list[HistoryItem]] = defaultdict(list)
            rows = session.execute(
                select(Rating.user_id, Rating.movie_id, Rating.rating, epoch_seconds(Rating.rated_at))
                .where(Rating.user_id.in_(ids))
                .order_by(Rating.user_id, Rating.rated_at.desc(), Rating.movie_id.desc())
            )  # the order of HISTORY, per user
            for user_id, *item in rows:
                histories[user_id].append(HistoryItem(*item))
            kept = []
            for user_id, *columns in users:
                if not histories[user_id]:
                    continue  # no ratings: the popular movies, read at request time
                state = UserState(*columns)
                found, newest = rank_for_user(
                    session=session, store=store, model=model, user_id=user_id, user=state,
                    history=histories[user_id], rated={h.movie_id for h in histories[user_id]},
                    limit=KEPT_LIMIT, filters=NO_FILTERS, now=now,
                )  # fmt: skip
                row = kept_row(model, user_id, state, newest, found, now)
                if row is not None:
                    kept.append(row)
            store_kept(session=session, rows=kept)
        stored += len(kept)
        if progress is not None:
            progress(min(start + CHUNK, len(user_ids)), len(user_ids))
    log.info("kept %d lists for version %d in %.1f s", stored, model.version_id, time.monotonic() - started)
    return stored
