"""Kept lists: one row per user with one fingerprint; they answer exactly what computing would, only
while the fingerprint is current, and a computed answer is stored for every process to share."""

from __future__ import annotations

import calendar
import dataclasses
import functools
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import orjson
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, sessionmaker

from api.db import make_async_engine, make_engine, make_session_factory, run_on
from api.movies.models import Movie
from api.movies.service import create_movie
from api.ratings.models import Rating
from api.ratings.service import latest_records
from api.ratings.writes import rate_movie
from api.recommend import exact
from api.recommend import kept as kept_module
from api.recommend.exact import ExactIndex
from api.recommend.kept import keep_lists
from api.recommend.models import KeptList
from api.recommend.pipeline import (
    KEPT_LIMIT,
    Ask,
    UserState,
    answer,
    encode,
    fingerprint,
    read_user,
    recommend_user,
)
from api.recommend.popular import Popularity
from api.recommend.service import Recommended, Sources
from api.vectors.store import VectorStore
from api.versions.registry import ActiveModel, ModelRegistry
from ml.serving import HistoryItem
from tests.api.conftest import GraphQL, Stack, StatementCounter

RECS = "query($u: Int!, $n: Int!) { recommendations(userId: $u, limit: $n) { score movie { id } because { id } } }"


def _answers(source: str) -> float:
    return REGISTRY.get_sample_value("movierec_recommendation_answers_total", {"source": source}) or 0.0


@pytest.fixture(scope="module")
def sessions(stack: Stack) -> Iterator[sessionmaker]:
    engine = make_engine(stack.settings.resolved_database_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture(scope="module")
def model(sessions: sessionmaker) -> ActiveModel:
    with sessions() as session:
        active = ModelRegistry().get(session)
    assert active is not None
    return active


@pytest.fixture(scope="module")
def kept(stack: Stack, sessions: sessionmaker, model: ActiveModel) -> Iterator[int]:
    """Keep every user's list for the active version; remove them after the module (the stack is shared)."""
    store = VectorStore(stack.settings.resolved_milvus_uri)
    seen: list[tuple[int, int]] = []
    stored = anyio.run(
        lambda: keep_lists(sessions=sessions, store=store, model=model, progress=lambda *p: seen.append(p))
    )
    store.close()
    assert seen[-1][0] == seen[-1][1]  # progress reached every user
    yield stored
    with sessions.begin() as session:
        session.execute(delete(KeptList))


def _sources(sessions: sessionmaker, store: VectorStore) -> Sources:
    """Return the pipeline's sources of a computed reference: kept lists neither read nor stored."""

    return Sources(store, Popularity(sessions.kw["bind"]), use_kept=False)


def _computed(
    stack: Stack, sessions: sessionmaker, user_id: int, limit: int
) -> list[tuple[int, float, list[int]]]:
    """Return the user's recommendations computed now through the pipeline, kept lists off."""
    with sessions() as session:
        model = ModelRegistry().get(session)
    assert model is not None

    async def compute() -> list[Recommended]:
        engine = make_async_engine(stack.settings.resolved_database_url)
        store = VectorStore(stack.settings.resolved_milvus_uri)

        async def run(work: Callable[[Session], Any]) -> Any:  # as an operation runs its reads
            return await run_on(AsyncSession(engine), work)

        try:
            return await recommend_user(
                run=run, sources=_sources(sessions, store), model=model, user_id=user_id, limit=limit
            )
        finally:
            await store.aclose()
            await engine.dispose()

    return [(r.movie_id, round(r.score, 6), r.because) for r in anyio.run(compute)]


def _read_user(stack: Stack, model: ActiveModel, user_id: int) -> UserState:
    """Return what a request reads of the user."""
    engine = make_engine(stack.settings.resolved_database_url)
    try:  # only reads, as a request: on SQLite it waits for no writer (api.db._sqlite_on_begin)
        with Session(engine.execution_options(deferred_begin=True)) as session:
            return read_user(session, user_id=user_id, history_length=model.model.history_length)
    finally:
        engine.dispose()


def _ids(rows: list[dict]) -> list[tuple[int, float, list[int]]]:
    return [(r["movie"]["id"], r["score"], [b["id"] for b in r["because"]]) for r in rows]


def assert_same_ranking(
    found: list[tuple[int, float, list[int]]], expected: list[tuple[int, float, list[int]]]
) -> None:
    """The same movies, each with the same reasons, and scores equal but for float rounding: keep_lists
    encodes its users together (a batch of them comes out within 1e-7 of one encoded alone) and may
    score them by its own matrix product; scores read through the API are rounded to 6 places, so a
    rounding either side of a boundary adds 1e-6."""
    assert [(m, because) for m, _, because in found] == [(m, because) for m, _, because in expected]
    assert [score for _, score, _ in found] == pytest.approx([score for _, score, _ in expected], abs=2e-6)


def _wait_for_row(sessions: sessionmaker, user_id: int) -> KeptList:
    """Return the user's kept row once the background write has stored it."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with sessions() as session:
            row = session.get(KeptList, user_id)
        if row is not None:
            return row
        time.sleep(0.05)
    raise AssertionError(f"no kept list was stored for user {user_id}")


def test_every_user_with_ratings_gets_a_list(kept: int, sessions: sessionmaker) -> None:
    with sessions() as session:
        raters = session.execute(select(func.count(func.distinct(Rating.user_id)))).scalar_one()
        rows = session.execute(select(func.count()).select_from(KeptList)).scalar_one()
    assert kept == raters == rows


@pytest.mark.parametrize("limit", [1, 10, KEPT_LIMIT])
def test_a_kept_answer_is_what_computing_returns(
    kept: int, gql: GraphQL, stack: Stack, sessions: sessionmaker, limit: int
) -> None:
    user = stack.dataset.users[40].id
    before = _answers("kept")
    answered = _ids(gql.data(RECS, u=user, n=limit)["recommendations"])
    assert _answers("kept") == before + 1
    assert_same_ranking(answered, _computed(stack, sessions, user, limit))
    assert len(answered) == limit


def test_more_than_kept_or_filters_are_computed(kept: int, gql: GraphQL, stack: Stack) -> None:
    user = stack.dataset.users[41].id
    before = _answers("kept"), _answers("computed")
    gql.data(RECS, u=user, n=KEPT_LIMIT + 1)
    genre = stack.dataset.movies[0].genres[0]
    gql.data(
        "query($u: Int!, $g: [String!]) { recommendations(userId: $u, genres: $g) { movie { id } } }",
        u=user, g=[genre],
    )  # fmt: skip
    gql.data("query($u: Int!) { recommendations(userId: $u, excludeRated: false) { movie { id } } }", u=user)
    assert (_answers("kept"), _answers("computed")) == (before[0], before[1] + 3)


def test_a_new_rating_computes_at_once_and_the_new_list_is_stored_for_the_next_request(
    kept: int, gql: GraphQL, stack: Stack, sessions: sessionmaker
) -> None:
    user = stack.dataset.users[42].id
    first = [r[0] for r in _ids(gql.data(RECS, u=user, n=10)["recommendations"])]
    with sessions() as session:
        old = session.get(KeptList, user)
    assert old is not None
    with sessions.begin() as session:  # another process: its own engine and transaction
        rate_movie(session=session, user_id=user, movie_id=first[0], rating=5)
    before = _answers("computed")
    after = _ids(gql.data(RECS, u=user, n=10)["recommendations"])
    assert _answers("computed") == before + 1
    assert first[0] not in [r[0] for r in after]
    assert after == _computed(stack, sessions, user, 10)
    # The computed list replaced the stale one: the next request, in any process, reads it.
    deadline = time.monotonic() + 10
    while _wait_for_row(sessions, user).fingerprint == old.fingerprint and time.monotonic() < deadline:
        time.sleep(0.05)
    kept_before = _answers("kept")
    assert _ids(gql.data(RECS, u=user, n=10)["recommendations"]) == after
    assert _answers("kept") == kept_before + 1


def test_a_kept_answer_reads_no_rating_and_a_stale_list_reads_them_once(
    kept: int, gql: GraphQL, stack: Stack, sessions: sessionmaker, statements: StatementCounter
) -> None:
    """A default request reads the user and their kept list only; the ratings are read (a second
    statement) only when the list turns out stale."""
    user = stack.dataset.users[46].id
    _ids(gql.data(RECS, u=user, n=10)["recommendations"])  # a current list, stored if it was not
    _wait_for_row(sessions, user)
    statements.texts.clear()
    kept_before = _answers("kept")
    first = _ids(gql.data(RECS, u=user, n=10)["recommendations"])
    assert _answers("kept") == kept_before + 1
    assert len(statements.naming("kept_recommendations")) == 1 and statements.naming("ratings") == []
    with sessions.begin() as session:
        rate_movie(session=session, user_id=user, movie_id=first[0][0], rating=5)
    statements.texts.clear()
    computed_before = _answers("computed")
    after = _ids(gql.data(RECS, u=user, n=10)["recommendations"])
    assert _answers("computed") == computed_before + 1
    reads = [s for s in statements.texts if s.lstrip().upper().startswith("SELECT")]
    assert [bool(re.search(r"\bratings\b", s)) for s in reads if re.search(r"\b(users|ratings)\b", s)] == [
        False,
        True,
    ]  # the user and kept list, then their ratings
    assert after == _computed(stack, sessions, user, 10)


def test_a_user_without_a_row_is_computed_then_answered_from_the_stored_one(
    kept: int, gql: GraphQL, stack: Stack, sessions: sessionmaker
) -> None:
    user = stack.dataset.users[44].id
    with sessions.begin() as session:
        session.execute(delete(KeptList).where(KeptList.user_id == user))
    computed = _ids(gql.data(RECS, u=user, n=5)["recommendations"])
    _wait_for_row(sessions, user)
    before = _answers("kept")
    assert (
        _ids(gql.data(RECS, u=user, n=5)["recommendations"])
        == computed
        == _computed(stack, sessions, user, 5)
    )
    assert _answers("kept") == before + 1


def test_the_fingerprint_changes_with_every_input(
    kept: int, stack: Stack, sessions: sessionmaker, model: ActiveModel
) -> None:
    user_id = stack.dataset.users[43].id
    user = _read_user(stack, model, user_id)
    assert user.kept is not None
    newest, now = user.kept.newest_rating, int(time.time())
    assert newest is not None
    base = fingerprint(model, user, newest, now)
    assert base == user.kept.fingerprint  # as stored by keep_lists moments ago (same time bucket)
    changed = [
        fingerprint(dataclasses.replace(model, version_id=model.version_id + 1), user, newest, now),
        fingerprint(model, dataclasses.replace(user, ratings_version=user.ratings_version + 1), newest, now),
        fingerprint(model, dataclasses.replace(user, newest_movie=(user.newest_movie or 0) + 1), newest, now),
        fingerprint(model, dataclasses.replace(user, age=99), newest, now),
    ]
    later = fingerprint(model, user, newest, newest + 60)
    if model.model.config.gap_feature:  # a minute after the newest rating is another time bucket than now
        changed.append(later)
    else:  # the default model reads no clock: a kept list never ages
        assert later == base
    assert len({base, *changed}) == len(changed) + 1


@pytest.mark.parametrize("in_process", [False, True], ids=["milvus", "in-process"])
def test_batched_searches_find_what_each_user_filtered_search_finds(
    stack: Stack,
    sessions: sessionmaker,
    model: ActiveModel,
    monkeypatch: pytest.MonkeyPatch,
    in_process: bool,
) -> None:
    """keep_lists encodes a chunk of users at once and ranks them together: on Milvus, in batched
    searches, each query asking for more movies than the list and dropping its user's rated ones
    (through batches of several sizes, both passes, and the filtered one-by-one path of users past the
    top-k bound); in process, by matrix products over the collection's vectors. Either way the lists
    equal a request's own filtered search."""
    length = model.model.history_length
    with sessions() as session:
        ids = list(
            session.execute(select(Rating.user_id).distinct().order_by(Rating.user_id).limit(60)).scalars()
        )
        users = kept_module.read_users(session=session, ids=ids, length=length)
        movie_ids = list(session.execute(select(Movie.id)).scalars())
        for user_id, state in users:  # what a request reads of the user, read for many at once
            records = latest_records(session=session, user_id=user_id)
            assert state.history == [
                HistoryItem(r.movie_id, r.rating, calendar.timegm(r.rated_at.timetuple()))
                for r in records[:length]
            ]
            assert state.rated == {r.movie_id for r in records}
            assert len(state.history) == min(length, len(state.rated))
            read = _read_user(stack, model, user_id)
            assert (read.history, read.rated, read.ratings_version) == (
                state.history,
                state.rated,
                state.ratings_version,
            )
    counts = sorted(len(state.rated) for _, state in users)
    monkeypatch.setattr(kept_module, "SEARCH_BATCH", 7)
    monkeypatch.setattr(kept_module, "FIRST_EXTRA", 2)  # most users short after the first pass
    monkeypatch.setattr(kept_module, "MAX_TOPK", KEPT_LIMIT + counts[len(counts) // 2])  # half go alone
    monkeypatch.setattr(exact, "RANK_BATCH", 7)
    store = VectorStore(stack.settings.resolved_milvus_uri)
    index = ExactIndex.read(store, model.collection, movie_ids) if in_process else None
    assert (index is not None) == in_process  # Milvus Lite: FLAT
    if index is not None:
        rank_many = functools.partial(index.top_unrated, limit=KEPT_LIMIT)
    else:
        rank_many = functools.partial(kept_module.search_unrated, store, model.collection, limit=KEPT_LIMIT)
    batched = dataclasses.replace(_sources(sessions, store), rank_many=rank_many)
    alone = _sources(sessions, store)
    now = int(time.time())

    async def rank() -> tuple[list[Ask], list[Ask]]:
        together = [Ask(user_id, state, KEPT_LIMIT) for user_id, state in users]
        await answer(batched, model, together, now)
        each = []
        for user_id, state in users:  # a request's own filtered search
            ask = Ask(user_id, state, KEPT_LIMIT)
            await answer(alone, model, [ask], now)
            each.append(ask)
        await store.aclose()
        return together, each

    together, each = anyio.run(rank)
    assert len(together) == len(ids)
    for (_, state), found, expected in zip(users, together, each, strict=True):
        assert found.found is not None and expected.found is not None
        assert_same_ranking(
            [(r.movie_id, r.score, r.because) for r in found.found],
            [(r.movie_id, r.score, r.because) for r in expected.found],
        )
        assert len(found.found) == KEPT_LIMIT and not {r.movie_id for r in found.found} & state.rated


def test_a_movie_added_while_lists_are_kept_is_ranked_from_the_next_chunk(
    kept: int, stack: Stack, sessions: sessionmaker, model: ActiveModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ranking in process, keep_lists holds the vectors it read; a movie added meanwhile (its vector
    stored before its row commits, as createMovie does) is read before the next chunk is ranked, so
    a later user's list holds it as a request would. The module's lists are kept again afterwards,
    without the movie, so that no test depends on running before or after this one."""
    monkeypatch.setattr(kept_module, "CHUNK", 10)
    store = VectorStore(stack.settings.resolved_milvus_uri)
    with sessions() as session:
        last = session.execute(select(func.max(Rating.user_id))).scalar_one()
        users = kept_module.read_users(session=session, ids=[last], length=model.model.history_length)
    vectors, _, _ = encode(
        model, [Ask(user_id, user, KEPT_LIMIT) for user_id, user in users], int(time.time())
    )
    added: list[int] = []

    def add_movie_once(done: int, total: int) -> None:
        if added:
            return
        with sessions.begin() as session:
            movie = create_movie(session=session, title="Added While Keeping (2024)", year=2024, genres=[])
            store.upsert(model.collection, [movie.id], vectors[:1], [[]], [2024])  # the user's own
            added.append(movie.id)

    try:
        anyio.run(lambda: keep_lists(sessions=sessions, store=store, model=model, progress=add_movie_once))
        with sessions() as session:
            row = session.get(KeptList, last)
        user = _read_user(stack, model, last)
        assert row is not None and orjson.loads(row.items)[0][:2] == [added[0], pytest.approx(1.0, abs=1e-5)]
        assert row.fingerprint == fingerprint(model, user, row.newest_rating, int(time.time()))
    finally:
        if added:
            store.delete(model.collection, added)
            with sessions.begin() as session:
                session.execute(delete(Movie).where(Movie.id == added[0]))
            anyio.run(
                lambda: keep_lists(sessions=sessions, store=store, model=model, progress=lambda *_: None)
            )
        store.close()
