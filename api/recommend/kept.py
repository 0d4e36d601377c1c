"""Every user's kept list, computed ahead through the pipeline when a version is activated (and, when
an experiment starts, its treatment users' with the treatment version), so that even a user's first
request is answered from it (a list answers while its fingerprint matches)."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence

import anyio
import numpy as np
import numpy.typing as npt
from anyio import to_thread
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session, sessionmaker

from api.movies.models import Movie
from api.ratings.models import Rating
from api.recommend.exact import ExactIndex
from api.recommend.pipeline import (
    KEPT_LIMIT,
    RATING_ITEM,
    USER_STATE_COLUMNS,
    Ask,
    UserState,
    answer,
    store_kept,
)
from api.recommend.popular import Popularity
from api.recommend.service import NO_FILTERS, RankMany, Sources, search_filter
from api.users.models import User
from api.vectors.store import MAX_TOPK, Hit, VectorStore
from api.versions.jobs import KeptJob
from api.versions.models import Experiment
from api.versions.registry import ActiveModel, arm_of, load_active_model
from api.versions.service import active_version, get_version, running_experiment

log = logging.getLogger(__name__)
CHUNK = 500  # users per transaction of keep_lists
SEARCH_BATCH = 64  # query vectors per batched Milvus search (search_unrated)
FIRST_EXTRA = 64  # movies past the kept list a first batched search asks for (search_unrated)


class Superseded(Exception):
    """Another version became active while a version's lists were being kept: they would never answer."""


def keep_version_lists(
    *,
    sessions: sessionmaker,
    store: VectorStore,
    version_id: int,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Keep every user's list for a version (keep_lists) and return how many were stored; progress
    and outcome go to its newest activation (KeptJob). Raises Superseded once it is not active."""
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
            # In an experiment of this version against another, its users are the control's.
            experiment = running_experiment(session=session)
            only = None
            if experiment is not None and experiment.control_version_id == version_id:
                only = in_arm(experiment, "control")
        stored = anyio.run(
            lambda: keep_lists(sessions=sessions, store=store, model=model, progress=on_chunk, only=only)
        )
    except Superseded as superseded:
        job.finished("superseded", str(superseded))
        raise
    except Exception as error:
        job.finished("failed", f"{type(error).__name__}: {error}")
        raise
    job.finished("succeeded")
    return stored


def in_arm(experiment: Experiment, arm: str) -> Callable[[int], bool]:
    return lambda user_id: arm_of(user_id, experiment.salt, experiment.treatment_share) == arm


def keep_treatment_lists(*, sessions: sessionmaker, store: VectorStore, experiment_id: int) -> int:
    """Keep the lists of an experiment's treatment users with its treatment version (the control's users
    keep theirs); return how many were stored."""
    with sessions() as session:
        experiment = session.get(Experiment, experiment_id)
        assert experiment is not None, f"experiment {experiment_id} does not exist"
        model = load_active_model(get_version(session=session, version_id=experiment.treatment_version_id))
    only = in_arm(experiment, "treatment")
    return anyio.run(lambda: keep_lists(sessions=sessions, store=store, model=model, only=only))


def keep_in_background(
    *, sessions: sessionmaker, store: VectorStore, version_id: int, experiment_id: int | None = None
) -> threading.Thread:
    """Start keep_version_lists in a daemon thread (after the dashboard activates a version), or with an
    experiment, keep_treatment_lists (after the dashboard starts it)."""

    def run() -> None:
        try:
            if experiment_id is not None:
                keep_treatment_lists(sessions=sessions, store=store, experiment_id=experiment_id)
            else:
                keep_version_lists(sessions=sessions, store=store, version_id=version_id)
        except Superseded as superseded:  # recorded; the new version's own job keeps its lists
            log.info("stopped keeping the lists of version %d: %s", version_id, superseded)
        except Exception:  # recorded for the dashboard; requests compute until the lists exist
            log.exception("keeping the recommendations of version %d failed", version_id)

    thread = threading.Thread(target=run, name=f"keep-lists-v{version_id}", daemon=True)
    thread.start()
    return thread


async def keep_lists(
    *,
    sessions: sessionmaker,
    store: VectorStore,
    model: ActiveModel,
    progress: Callable[[int, int], None] | None = None,
    only: Callable[[int], bool] | None = None,
) -> int:
    """Compute and store the kept list of every user with ratings (`only` those it accepts); return how
    many were stored. A chunk of users is ranked together: in process (ExactIndex), else by batched
    searches (search_unrated)."""
    user_ids = [u for u in await to_thread.run_sync(_user_ids, sessions) if only is None or only(u)]
    length = model.model.history_length
    popular = Popularity(sessions.kw["bind"])  # never read: every user here has ratings
    stored = 0
    started = time.monotonic()
    index: ExactIndex | None = None
    in_process = True  # until the collection turns out not to be searched exactly (ExactIndex.read)

    def read(ids: list[int]) -> list[tuple[int, UserState]]:
        nonlocal index, in_process
        with sessions() as session:
            users = read_users(session=session, ids=ids, length=length)
            newest = users[0][1].newest_movie if users else None
            # The vectors are read first, and again once movies were added (ids start at 1).
            if in_process and users and (index is None or (newest or 0) > (index.newest_movie or 0)):
                movie_ids = list(session.execute(select(Movie.id)).scalars())
                index = ExactIndex.read(store, model.collection, movie_ids)
                in_process = index is not None
        return users

    for start in range(0, len(user_ids), CHUNK):
        users = await to_thread.run_sync(read, user_ids[start : start + CHUNK])
        if index is not None:
            rank_many: RankMany = functools.partial(index.top_unrated, limit=KEPT_LIMIT)
        else:
            rank_many = functools.partial(search_unrated, store, model.collection, limit=KEPT_LIMIT)
        sources = Sources(store, popular, rank_many=rank_many)
        asks = [Ask(user_id, user, KEPT_LIMIT) for user_id, user in users]
        await answer(sources, model, asks, int(time.time()))
        rows = [ask.keep for ask in asks if ask.keep is not None]
        await to_thread.run_sync(_store, sessions, rows)
        stored += len(rows)
        if progress is not None:
            await to_thread.run_sync(progress, min(start + CHUNK, len(user_ids)), len(user_ids))
    log.info("kept %d lists for version %d in %.1f s", stored, model.version_id, time.monotonic() - started)
    return stored


def _user_ids(sessions: sessionmaker) -> list[int]:
    with sessions() as session:
        return list(session.execute(select(User.id).order_by(User.id)).scalars())


def _store(sessions: sessionmaker, rows: list[dict[str, object]]) -> None:
    with sessions.begin() as session:
        store_kept(session=session, rows=rows)


def read_users(*, session: Session, ids: Sequence[int], length: int) -> list[tuple[int, UserState]]:
    """Return the users with ratings among `ids`, each read as read_user reads one (the newest `length`
    ratings of each by a window function)."""
    users = session.execute(select(User.id, *USER_STATE_COLUMNS).where(User.id.in_(ids))).all()
    order = (Rating.rated_at.desc(), Rating.movie_id.desc())
    ranked = (
        select(
            Rating.user_id,
            Rating.movie_id,
            RATING_ITEM.label("item"),
            func.row_number().over(partition_by=Rating.user_id, order_by=order).label("n"),
        )
        .where(Rating.user_id.in_(ids))
        .subquery()
    )
    newest = func.group_concat(case((ranked.c.n <= length, ranked.c.item)))  # GROUP_CONCAT skips NULL
    query = select(ranked.c.user_id, newest, func.group_concat(ranked.c.movie_id)).group_by(ranked.c.user_id)
    ratings = {user_id: (history, rated) for user_id, history, rated in session.execute(query)}
    return [
        (user_id, UserState.of(state, newest_ratings=ratings[user_id][0], rated_ids=ratings[user_id][1]))
        for user_id, *state in users
        if user_id in ratings
    ]


def search_unrated(
    store: VectorStore, name: str, vectors: npt.NDArray[np.float32], rated: Sequence[set[int]], limit: int
) -> list[list[Hit]]:
    """Return the top `limit` movies of each vector but its user's rated ones.

    A batched search has no filter per query vector, so each asks for more and drops the rated: at
    most FIRST_EXTRA more first, then as many more as the user rated for those left short (pymilvus
    parses every hit into Python objects: asking everyone for that many is slow). Users go sorted by
    ratings, SEARCH_BATCH a search; one past Milvus's top-k bound is searched alone with the filter.
    """
    found: list[list[Hit]] = [[] for _ in rated]
    pending = sorted(range(len(rated)), key=lambda i: len(rated[i]))
    for cap in (FIRST_EXTRA, MAX_TOPK):
        short = []
        for start in range(0, len(pending), SEARCH_BATCH):
            batch = pending[start : start + SEARCH_BATCH]
            size = limit + min(len(rated[batch[-1]]), cap)  # the batch's heaviest rater
            if size > MAX_TOPK:
                for i in batch:
                    expr = search_filter(NO_FILTERS, set(), rated[i])
                    found[i] = store.search_many(name, vectors[i : i + 1], limit=limit, expr=expr)[0]
                continue
            for i, hits in zip(batch, store.search_many(name, vectors[batch], limit=size), strict=True):
                found[i] = [hit for hit in hits if hit.movie_id not in rated[i]][:limit]
                # short of `limit` while rated movies may still hide the rest: ask again, wider
                if len(found[i]) < limit and len(hits) == size and size < limit + len(rated[i]):
                    short.append(i)
        pending = short
    return found
