"""The popular movies (users and visitors without ratings): ranked from a per-process snapshot of the
rating counts that equals a count of the ratings, read at most once a minute by one thread, so that
no request reads `ratings` for them."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, insert, select, text
from sqlalchemy.orm import Session, sessionmaker
from starlette.testclient import TestClient

from api.app import create_app
from api.db import make_engine, make_session_factory
from api.errors import BadUserInput
from api.movies.models import Genre, Movie, movie_genres
from api.movies.service import check_genres
from api.ratings.models import Rating
from api.ratings.writes import delete_rating, rate_movie
from api.recommend.popular import MAX_AGE_S, RETRY_S, Popularity, Snapshot, read_snapshot
from api.recommend.service import NO_FILTERS, Filters, popular_movies
from api.users.models import User
from tests.api.conftest import GraphQL, Stack, StatementCounter
from tests.conftest import DatabaseFactory, upgrade

GUARD_S = 60  # only ends a test that would otherwise hang: a held count that nothing releases
WHEN = datetime(2001, 1, 1, 12, 0, 0)
# movie id: (year, genres, raters among users 1-5)
SMALL = {
    10: (1995, ["Comedy"], 3),
    11: (1990, ["Drama"], 3),
    12: (None, ["Comedy", "Drama"], 5),
    13: (1980, ["Horror"], 1),
    14: (2000, ["Comedy"], 0),
    15: (1985, ["Drama", "Horror"], 3),
}


def counted(session: Session, filters: Filters, exclude: set[int], limit: int) -> list[tuple[int, float]]:
    """Return (movie id, score) of the most-rated movies that pass, counted over every rating now."""
    count = func.count(Rating.movie_id).label("n")
    query = (
        select(Movie.id, count)
        .join(Rating, Rating.movie_id == Movie.id)
        .group_by(Movie.id)
        .order_by(count.desc(), Movie.id)
        .limit(limit)
    )
    if filters.genres:
        with_genre = select(movie_genres.c.movie_id).join(Genre, Genre.id == movie_genres.c.genre_id)
        query = query.where(Movie.id.in_(with_genre.where(Genre.name.in_(filters.genres))))
    if filters.year_from is not None:
        query = query.where(Movie.year >= filters.year_from)
    if filters.year_to is not None:
        query = query.where(Movie.year <= filters.year_to)
    if exclude:
        query = query.where(Movie.id.not_in(exclude))
    rows = session.execute(query).all()
    top = rows[0][1] if rows else 1
    return [(movie_id, round(n / top, 6)) for movie_id, n in rows]


def ranked(snapshot: Snapshot, filters: Filters, exclude: set[int], limit: int) -> list[tuple[int, float]]:
    """Return (movie id, score) of the popular movies the snapshot gives."""
    found = popular_movies(snapshot=snapshot, limit=limit, filters=filters, exclude=exclude)
    assert all(r.source == "popularity" and r.because == [] for r in found)
    return [(r.movie_id, r.score) for r in found]


@pytest.fixture(scope="module")
def small(database_factory: DatabaseFactory) -> Iterator[sessionmaker]:
    """Return sessions of a database of its own holding SMALL: ties, a movie without a year, and a
    movie nobody rated."""
    url = database_factory.new_url()
    upgrade(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    with sessions.begin() as session:
        genre_ids = dict(session.execute(select(Genre.name, Genre.id)).all())
        session.execute(insert(User), [{"id": u} for u in range(1, 6)])
        session.execute(
            insert(Movie),
            [  # with the counts the rating writes keep
                {"id": m, "title": f"Movie {m}", "year": year, "rating_count": raters}
                for m, (year, _, raters) in SMALL.items()
            ],
        )
        session.execute(
            insert(movie_genres),
            [
                {"movie_id": m, "genre_id": genre_ids[g]}
                for m, (_, genres, _) in SMALL.items()
                for g in genres
            ],
        )
        session.execute(
            insert(Rating),
            [
                {"user_id": u, "movie_id": m, "rating": 4, "rated_at": WHEN}
                for m, (_, _, raters) in SMALL.items()
                for u in range(1, raters + 1)
            ],
        )
    yield sessions
    engine.dispose()


def test_the_snapshot_ranks_as_a_count_of_the_ratings(small: sessionmaker) -> None:
    """Most-rated first, ties by the lower id, scored by the share of the top count left after the
    exclusions; a movie without a year passes no year bound, a movie nobody rated is never listed."""
    every, none = [(12, 1.0), (10, 0.6), (11, 0.6), (15, 0.6), (13, 0.2)], frozenset[int]()
    cases: list[tuple[Filters, frozenset[int], int, list[tuple[int, float]]]] = [
        (NO_FILTERS, none, 10, every),
        (Filters(["Comedy"]), none, 10, [(12, 1.0), (10, 0.6)]),
        (Filters(["Horror", "Drama", "Horror"]), none, 10, [(12, 1.0), (11, 0.6), (15, 0.6), (13, 0.2)]),
        (Filters(None, None, 1990), none, 10, [(11, 1.0), (15, 1.0), (13, 0.333333)]),
        (Filters(None, 1985, 1995), none, 2, [(10, 1.0), (11, 1.0)]),
        (Filters(["Drama", "Horror"], 1981), none, 10, [(11, 1.0), (15, 1.0)]),
        (NO_FILTERS, frozenset({12, 11}), 2, [(10, 1.0), (15, 1.0)]),
        (Filters(["Comedy"], 1800, 2100), frozenset({10}), 10, []),
    ]
    with small() as session:
        snapshot = read_snapshot(session)
        for filters, exclude, limit, expected in cases:
            assert ranked(snapshot, filters, set(exclude), limit) == expected, (filters, exclude)
            assert counted(session, filters, set(exclude), limit) == expected, (filters, exclude)


def test_bad_filters_keep_their_messages(small: sessionmaker) -> None:
    with small() as session:
        snapshot = read_snapshot(session)
        with pytest.raises(BadUserInput) as unknown:
            check_genres(session=session, genres=["Comedy", "Nope"])
    for filters, message in (
        (Filters(["Comedy", "Nope"]), str(unknown.value)),
        (Filters(None, 1799), "yearFrom must be a year between 1800 and 2100"),
        (Filters(None, None, 2101), "yearTo must be a year between 1800 and 2100"),
        (Filters(None, 1990, 1980), "yearFrom must not be after yearTo"),
    ):
        with pytest.raises(BadUserInput) as error:
            popular_movies(snapshot=snapshot, limit=10, filters=filters, exclude=set())
        assert str(error.value) == message
    assert str(unknown.value).startswith("unknown genre 'Nope'; known genres: Action, ")


def test_the_snapshot_equals_a_count_of_the_stack_ratings(stack: Stack) -> None:
    engine = make_engine(stack.settings.resolved_database_url)
    with make_session_factory(engine)() as session:
        snapshot = read_snapshot(session)
        everything = counted(session, NO_FILTERS, set(), 1000)
        assert len({score for _, score in everything}) < len(everything) / 2  # many ties to order
        top = {movie_id for movie_id, _ in everything[:3]}
        for filters in (
            NO_FILTERS, Filters(["Comedy", "Drama"]), Filters(None, 1970, 1990), Filters(None, 1990),
            Filters(None, None, 1975), Filters(["Horror"], 1960, 2000),
        ):  # fmt: skip
            for exclude, limit in ((set(), 1000), (set(), 10), (top, 10)):
                assert ranked(snapshot, filters, exclude, limit) == counted(session, filters, exclude, limit)
    engine.dispose()


class HeldCounts:
    """An engine event that counts the snapshot's reads of the rating counts and holds each until
    released."""

    def __init__(self) -> None:
        self.count = 0
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, _connection: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if is_count(statement):
            self.count += 1
            self.started.set()
            if not self.release.wait(GUARD_S):
                raise AssertionError("a held count was never released")


@contextmanager
def held_counts() -> Iterator[HeldCounts]:
    """Yield the event, listening to every engine; wait for the held reads to end before leaving."""
    held = HeldCounts()
    event.listen(Engine, "before_cursor_execute", held)
    try:
        yield held
    finally:
        held.release.set()
        event.remove(Engine, "before_cursor_execute", held)


def is_count(statement: str) -> bool:
    """Return whether a statement is the snapshot's read of the rated movies' counts."""
    return re.search(r"\bmovies\.rating_count > ", statement) is not None


def test_the_counts_are_read_once_a_minute_by_one_thread_while_the_last_ones_answer(
    small: sessionmaker, statements: StatementCounter
) -> None:
    clock = [0.0]
    popular = Popularity(small.kw["bind"], clock=lambda: clock[0])

    def counts() -> int:
        return sum(map(is_count, statements.texts))

    async def after(old: Snapshot, reads: int) -> Snapshot:
        """Return the snapshot once `reads` counts have run and it is no longer `old` (the read under
        way ended), waiting on the event loop as requests do."""
        for _ in range(GUARD_S * 100):
            found = await popular.snapshot()
            if counts() == reads and found is not old:
                return found
            await asyncio.sleep(0.01)
        raise AssertionError(f"no new snapshot after {reads} counts")

    async def scenario() -> None:
        first = await popular.snapshot()
        assert [is_count(s) for s in statements.naming("movies")] == [True]
        clock[0] = MAX_AGE_S - 1
        assert all([await popular.snapshot() is first for _ in range(5)])
        assert len(statements.naming("movies")) == 1  # within the minute: no read
        with small.begin() as session:  # a rating of a movie nobody had rated
            rate_movie(session=session, user_id=1, movie_id=14, rating=3)

        clock[0] = MAX_AGE_S
        with held_counts() as held:
            try:
                answers = await asyncio.gather(*(popular.snapshot() for _ in range(40)))
                assert await asyncio.to_thread(held.started.wait, GUARD_S)  # the loop runs the read's start
                assert all(answer is first for answer in answers)  # answered by the last counts, not waiting
                assert held.count == 1  # one read, however many asked
            finally:
                held.release.set()
            # Before the event goes: removing it under a running read fails that read.
            second = await after(first, 2)
        assert ranked(second, Filters(None, 2000), set(), 10) == [(14, 1.0)]
        assert ranked(first, Filters(None, 2000), set(), 10) == []

        # A read that fails leaves the last counts answering, and is tried again RETRY_S later.
        clock[0] += MAX_AGE_S
        rename = "ALTER TABLE {} RENAME TO {}"
        with small.begin() as session:
            session.execute(text(rename.format("movie_genres", "movie_genres_gone")))
        try:
            assert await popular.snapshot() is second
            for _ in range(GUARD_S * 100):  # until the read has failed
                if counts() == 3:
                    break
                await asyncio.sleep(0.01)
            assert all([await popular.snapshot() is second for _ in range(5)])
            assert counts() == 3  # the one that failed
        finally:
            with small.begin() as session:
                session.execute(text(rename.format("movie_genres_gone", "movie_genres")))
        clock[0] += RETRY_S
        assert await popular.snapshot() is second
        third = await after(second, 4)
        assert ranked(third, NO_FILTERS, set(), 10) == ranked(second, NO_FILTERS, set(), 10)

    asyncio.run(scenario())
    with small.begin() as session:
        delete_rating(session=session, user_id=1, movie_id=14)


def thirty(field: str, first_year: int, span: int) -> str:
    """Return one operation of 30 aliases of a recommendation field, each with a year range of its own."""
    aliases = (
        f"a{i}: {field}yearFrom: {first_year + i}, yearTo: {first_year + span + i}) {{ score movie {{ id }} }}"
        for i in range(30)
    )
    return "{ " + " ".join(aliases) + " }"


def expected_lists(stack: Stack, first_year: int, span: int) -> dict[str, list[tuple[int, float]]]:
    """Return what `thirty` answers for someone without ratings, counting the ratings now."""
    engine = make_engine(stack.settings.resolved_database_url)
    with make_session_factory(engine)() as session:
        lists = {
            f"a{i}": counted(session, Filters(None, first_year + i, first_year + span + i), set(), 10)
            for i in range(30)
        }
    engine.dispose()
    return lists


def answered(data: dict[str, Any]) -> dict[str, list[tuple[int, float]]]:
    return {alias: [(r["movie"]["id"], r["score"]) for r in recs] for alias, recs in data.items()}


def test_thirty_popular_lists_of_fresh_year_ranges_read_no_ratings(
    stack: Stack, statements: StatementCounter
) -> None:
    """An anonymous visitor without ratings asking 30 year ranges at a time, each new to the process,
    and a user without ratings doing the same: answered from the process's counts. (Each test here
    asks ranges of its own: a cache of earlier answers by filter would answer them unread.)"""
    with TestClient(create_app(stack.settings)) as client:
        client.app_state["movierec"].popular.max_age = math.inf  # only requests' reads are counted here
        anonymous, keyed = GraphQL(client, None), GraphQL(client, stack.api_key)
        anonymous.data(thirty("recommendationsForProfile(ratedMovies: [], ", 1900, 20))  # the first read
        user = keyed.data("mutation { createUser(input: {age: 25}) { id } }")["createUser"]["id"]
        statements.texts.clear()
        profiles = anonymous.data(thirty("recommendationsForProfile(ratedMovies: [], ", 1950, 20))
        assert statements.naming("ratings") == []
        users = keyed.data(thirty(f"recommendations(userId: {user}, ", 1950, 30))
        # The user's own ratings are read (api.db.read); nobody else's are counted.
        assert not [s for s in statements.texts if is_count(s)]
    assert answered(profiles) == expected_lists(stack, 1950, 20)
    assert answered(users) == expected_lists(stack, 1950, 30)
    assert all(profiles.values()) and all(users.values())


def test_requests_waiting_for_the_first_counts_hold_no_worker_thread(stack: Stack) -> None:
    """30 aliases wait for a process's first read of the counts while another client's
    `movies(first: 5)` is answered: they wait on the event loop, not in the worker threads it needs."""
    query = thirty("recommendationsForProfile(ratedMovies: [], ", 1940, 25)
    with (
        held_counts() as held,
        TestClient(create_app(stack.settings)) as client,
        ThreadPoolExecutor(2) as pool,
    ):
        anonymous, keyed = GraphQL(client, None), GraphQL(client, stack.api_key)
        try:
            waiting = pool.submit(anonymous.data, query)
            assert held.started.wait(GUARD_S)
            movies = pool.submit(keyed.data, "{ movies(first: 5) { nodes { id } } }")
            assert len(movies.result(timeout=GUARD_S)["movies"]["nodes"]) == 5
            assert not waiting.done()
        finally:
            held.release.set()
        profiles = waiting.result(timeout=GUARD_S)
    assert held.count == 1
    assert answered(profiles) == expected_lists(stack, 1940, 25)


def test_visitors_without_ratings_are_answered_while_every_connection_is_taken(stack: Stack) -> None:
    """A flood of popular lists takes no database connection, so it never queues behind the reads of
    other clients (title searches here, waiting for a connection while every one is taken)."""
    query = thirty("recommendationsForProfile(ratedMovies: [], ", 1945, 15)
    with TestClient(create_app(stack.settings)) as client, ThreadPoolExecutor(2) as pool:
        state = client.app_state["movierec"]
        state.models.check_interval = math.inf  # the model is read once: no connection to check it again
        state.popular.max_age = math.inf
        anonymous = GraphQL(client, None)
        expected = anonymous.data(query)  # the counts, and the titles into the catalogue
        engine = state.async_engine

        async def take_all() -> list[Any]:
            return [await engine.connect() for _ in range(engine.pool.size() + engine.pool._max_overflow)]

        taken = client.portal.call(take_all)
        try:
            search = pool.submit(anonymous.data, '{ movies(first: 5, search: "the") { nodes { id } } }')
            assert anonymous.data(query) == expected
            assert not search.done()
        finally:
            for connection in taken:
                client.portal.call(connection.close)
        assert len(search.result(timeout=GUARD_S)["movies"]["nodes"]) == 5


def test_a_first_count_that_fails_after_its_requests_left_leaves_no_unretrieved_error(tmp_path: Path) -> None:
    """The first read fails after every request waiting for it has left: its error is retrieved all
    the same, so asyncio reports no task exception that was never retrieved."""
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")  # no tables: the count fails
    popular = Popularity(engine)
    reported: list[dict[str, Any]] = []

    async def scenario() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, context: reported.append(context))
        waiter = asyncio.ensure_future(popular.snapshot())
        await asyncio.sleep(0)  # the read starts
        waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiter
        for _ in range(GUARD_S * 100):  # until the read has failed
            if popular._reading is None:
                break
            await asyncio.sleep(0.01)
        gc.collect()  # a task whose error nobody retrieved reports it when it is collected

    asyncio.run(scenario())
    engine.dispose()
    assert popular._reading is None and not reported
